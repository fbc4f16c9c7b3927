"""Action-selection policies over value estimates: greedy, ε-greedy, UCB1, softmax.

Each policy turns a vector of value estimates (one per candidate action) — plus visit
counts for UCB1 — into action probabilities and a sampled action index. All of them are
vectorized over actions and draw randomness only from their seeded
``numpy.random.Generator``, so runs are reproducible.

Ties among maximal values are broken uniformly at random (a fixed first-index rule would
make a fresh learner always try the same action and can stall exploration).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ruvector_edge.errors import ConfigError, InvalidInputError

__all__ = [
    "BoltzmannPolicy",
    "EpsilonGreedyPolicy",
    "GreedyPolicy",
    "Policy",
    "SoftmaxPolicy",
    "UCB1Policy",
    "as_generator",
    "create_policy",
]

F64: TypeAlias = NDArray[np.float64]
SeedLike: TypeAlias = int | np.random.Generator | None


def as_generator(seed: SeedLike) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a seed, an existing generator, or fresh entropy."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ConfigError(f"seed must be a non-negative int or a numpy Generator, got {seed!r}")
    return np.random.default_rng(seed)


def _values(values: ArrayLike) -> F64:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.shape[0] == 0:
        raise InvalidInputError(
            f"a policy needs a non-empty 1-D vector of action values, got shape {v.shape}"
        )
    if np.isnan(v).any():
        raise InvalidInputError("action values contain NaN; the learner diverged or was fed NaN")
    return v


def _argmax_mask(v: F64) -> NDArray[np.bool_]:
    return np.asarray(v == v.max(), dtype=np.bool_)


def _uniform_over(mask: NDArray[np.bool_]) -> F64:
    return np.asarray(mask / mask.sum(), dtype=np.float64)


def _check_unit(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ConfigError(f"{name} must lie in [0, 1], got {value}")
    return float(value)


class Policy(ABC):
    """Chooses an action index from value estimates (and visit counts, for UCB1)."""

    name: str = "policy"
    needs_counts: bool = False

    def __init__(self, rng: SeedLike = None) -> None:
        self.rng = as_generator(rng)

    @abstractmethod
    def probabilities(self, values: ArrayLike, counts: ArrayLike | None = None) -> F64:
        """The probability of choosing each action (sums to 1)."""

    def select(self, values: ArrayLike, counts: ArrayLike | None = None) -> int:
        """Sample an action index according to :meth:`probabilities`."""
        p = self.probabilities(values, counts)
        # Inverse-CDF draw: one uniform number, vectorized search over actions.
        idx = int(np.searchsorted(np.cumsum(p), self.rng.random() * p.sum(), side="right"))
        return min(idx, int(p.shape[0]) - 1)

    def end_episode(self) -> None:  # noqa: B027 - optional hook
        """Hook called by learners at each episode end (decaying policies decay here)."""

    @property
    def parameter(self) -> float | None:
        """The exploration parameter (ε, temperature, UCB c), or ``None`` for greedy."""
        return None


class GreedyPolicy(Policy):
    """Always picks a maximal-value action; ties are broken uniformly at random."""

    name = "greedy"

    def probabilities(self, values: ArrayLike, counts: ArrayLike | None = None) -> F64:
        """Uniform over the maximal actions, zero elsewhere."""
        return _uniform_over(_argmax_mask(_values(values)))

    def select(self, values: ArrayLike, counts: ArrayLike | None = None) -> int:
        """A maximal-value action (random among ties)."""
        best = np.flatnonzero(_argmax_mask(_values(values)))
        return int(best[0] if best.shape[0] == 1 else best[self.rng.integers(best.shape[0])])


class EpsilonGreedyPolicy(Policy):
    """With probability ε a uniformly random action, otherwise a greedy one.

    ``decay`` multiplies ε at every :meth:`end_episode` (down to ``min_epsilon``).
    """

    name = "epsilon-greedy"

    def __init__(
        self,
        epsilon: float = 0.1,
        *,
        decay: float = 1.0,
        min_epsilon: float = 0.0,
        rng: SeedLike = None,
    ) -> None:
        super().__init__(rng)
        self.epsilon = _check_unit("epsilon", epsilon)
        self.decay = _check_unit("epsilon decay", decay)
        self.min_epsilon = _check_unit("min_epsilon", min_epsilon)
        if self.min_epsilon > self.epsilon:
            raise ConfigError(f"min_epsilon ({min_epsilon}) must not exceed epsilon ({epsilon})")

    def probabilities(self, values: ArrayLike, counts: ArrayLike | None = None) -> F64:
        """``ε / n`` everywhere plus ``1 - ε`` shared by the maximal actions."""
        v = _values(values)
        greedy = _uniform_over(_argmax_mask(v))
        return np.asarray(self.epsilon / v.shape[0] + (1.0 - self.epsilon) * greedy)

    def select(self, values: ArrayLike, counts: ArrayLike | None = None) -> int:
        """Explore with probability ε, else exploit (random among tied maxima)."""
        v = _values(values)
        if self.epsilon > 0.0 and self.rng.random() < self.epsilon:
            return int(self.rng.integers(v.shape[0]))
        best = np.flatnonzero(_argmax_mask(v))
        return int(best[0] if best.shape[0] == 1 else best[self.rng.integers(best.shape[0])])

    def end_episode(self) -> None:
        """Decay ε toward ``min_epsilon``."""
        self.epsilon = max(self.min_epsilon, self.epsilon * self.decay)

    @property
    def parameter(self) -> float:
        """The current ε."""
        return self.epsilon


class UCB1Policy(Policy):
    """UCB1 (Auer et al. 2002): ``argmax_a Q(a) + c * sqrt(ln N / n_a)``.

    Untried actions (``n_a == 0``) come first. ``N`` is the total count over the candidate
    actions. Needs visit counts, so only learners that keep them (the tabular ones) use it.
    """

    name = "ucb1"
    needs_counts = True

    def __init__(self, c: float = math.sqrt(2.0), *, rng: SeedLike = None) -> None:
        super().__init__(rng)
        if not c >= 0.0 or math.isinf(c):
            raise ConfigError(f"UCB1 exploration constant c must be finite and >= 0, got {c}")
        self.c = float(c)

    def scores(self, values: ArrayLike, counts: ArrayLike | None) -> F64:
        """Upper confidence bounds (``+inf`` for untried actions)."""
        v = _values(values)
        if counts is None:
            raise InvalidInputError("UCB1 needs the visit count of every candidate action")
        n = np.asarray(counts, dtype=np.float64)
        if n.shape != v.shape or (n < 0).any():
            raise InvalidInputError(
                f"UCB1 counts must be non-negative with the values' shape {v.shape}, "
                f"got shape {n.shape}"
            )
        total = n.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            bonus = self.c * np.sqrt(math.log(max(total, 1.0)) / n)
        return np.where(n > 0, v + bonus, np.inf)

    def probabilities(self, values: ArrayLike, counts: ArrayLike | None = None) -> F64:
        """Uniform over the actions with the highest bound."""
        return _uniform_over(_argmax_mask(self.scores(values, counts)))

    def select(self, values: ArrayLike, counts: ArrayLike | None = None) -> int:
        """The action with the highest bound (random among ties)."""
        best = np.flatnonzero(_argmax_mask(self.scores(values, counts)))
        return int(best[0] if best.shape[0] == 1 else best[self.rng.integers(best.shape[0])])

    @property
    def parameter(self) -> float:
        """The exploration constant c."""
        return self.c


class SoftmaxPolicy(Policy):
    """Boltzmann exploration: ``p(a) ∝ exp(Q(a) / T)``.

    ``decay`` multiplies the temperature at every :meth:`end_episode` (down to
    ``min_temperature``).
    """

    name = "softmax"

    def __init__(
        self,
        temperature: float = 1.0,
        *,
        decay: float = 1.0,
        min_temperature: float = 1e-3,
        rng: SeedLike = None,
    ) -> None:
        super().__init__(rng)
        if not temperature > 0.0 or math.isinf(temperature):
            raise ConfigError(f"temperature must be finite and > 0, got {temperature}")
        if not min_temperature > 0.0 or min_temperature > temperature:
            raise ConfigError(
                f"min_temperature must lie in (0, temperature={temperature}], got {min_temperature}"
            )
        self.temperature = float(temperature)
        self.decay = _check_unit("temperature decay", decay)
        self.min_temperature = float(min_temperature)

    def probabilities(self, values: ArrayLike, counts: ArrayLike | None = None) -> F64:
        """Numerically stable softmax of ``values / T``."""
        v = _values(values)
        if np.isposinf(v).any():
            return _uniform_over(np.isposinf(v))
        top = v.max()
        if np.isneginf(top):
            return np.full(v.shape[0], 1.0 / v.shape[0])
        with np.errstate(over="ignore"):  # -inf differences are fine: exp gives 0
            z = (v - top) / self.temperature
        e = np.exp(z)
        return np.asarray(e / e.sum())

    def end_episode(self) -> None:
        """Decay the temperature toward ``min_temperature``."""
        self.temperature = max(self.min_temperature, self.temperature * self.decay)

    @property
    def parameter(self) -> float:
        """The current temperature."""
        return self.temperature


BoltzmannPolicy = SoftmaxPolicy
"""Another name for :class:`SoftmaxPolicy`."""


_POLICIES: dict[str, type[Policy]] = {
    "greedy": GreedyPolicy,
    "epsilon-greedy": EpsilonGreedyPolicy,
    "ucb1": UCB1Policy,
    "softmax": SoftmaxPolicy,
    "boltzmann": SoftmaxPolicy,
}


def create_policy(name: str, *, rng: SeedLike = None, **kwargs: Any) -> Policy:
    """A policy by name: ``greedy``, ``epsilon-greedy``, ``ucb1``, ``softmax``/``boltzmann``."""
    key = name.strip().lower().replace("_", "-")
    cls = _POLICIES.get(key)
    if cls is None:
        raise ConfigError(f"unknown policy {name!r}; choose one of {', '.join(sorted(_POLICIES))}")
    try:
        return cls(rng=rng, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad arguments for policy {name!r}: {exc}") from None
