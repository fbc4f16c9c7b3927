"""The ``Learner`` interface shared by all ten algorithms, plus tabular plumbing.

Calling conventions (every learner):

* ``update(state, action, reward, next_state=None, done=False, *, next_action=None,
  next_actions=None) -> float`` learns from one transition. ``next_action`` is the action
  taken in ``next_state`` (on-policy learners use it; when missing they sample it from their
  own policy). ``next_actions`` are the actions available in ``next_state`` (default: every
  action the learner knows). **Contextual-bandit shortcut:** with ``next_state=None`` the
  transition is a finished one-step episode, so the value of ``(state, action)`` moves toward
  ``reward`` itself (``update_pattern(state, action, reward)`` is the named form).
  Episodic learners (Monte Carlo, PPO, the decision transformer) buffer steps and learn
  when the episode ends (``done=True``, ``next_state=None`` or :meth:`Learner.end_episode`).
* ``update_trajectory(trajectory)`` learns from a whole episode.
* ``values(state, actions)``, ``best_action(state, actions)`` (greedy, deterministic: first
  maximal candidate), ``act(state, actions)`` (through the learner's exploration policy).
* ``stats() -> LearnerStats``.

A learner whose ``conditions_on_history`` is true (the decision transformer) acts on the
episode so far, so it must get ``update``/``observe`` for a step before ``act`` on the next
state; the others take ``next_action`` in ``update`` and so want ``act`` first.
:func:`~ruvector_edge.learning.algorithms.envs.run_episode` follows both orders.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ruvector_edge.errors import CapacityError, ConfigError, InvalidInputError
from ruvector_edge.learning.algorithms.policies import (
    EpsilonGreedyPolicy,
    Policy,
    SeedLike,
    as_generator,
)
from ruvector_edge.learning.trajectory import Action, State, Trajectory

__all__ = ["KeyIndex", "Learner", "LearnerStats", "StateEncoder", "TabularLearner"]

F64: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.intp]

_INITIAL_CAPACITY = 16


@dataclass(frozen=True, slots=True)
class LearnerStats:
    """What a learner has done so far.

    ``mean_error`` is the running mean of the absolute TD error (tabular and actor-critic
    learners) or of the training loss (PPO surrogate, DQN Huber, decision-transformer
    cross-entropy) over the last ~100 learning signals (exponential average).
    ``exploration`` is ε, the softmax temperature or UCB's c (``None`` for greedy).
    ``extra`` holds algorithm-specific numbers (clip fraction, replay size, ...).
    """

    algorithm: str
    updates: int
    episodes: int
    steps: int
    mean_error: float
    exploration: float | None
    n_states: int
    n_actions: int
    extra: Mapping[str, float] = field(default_factory=dict)


def check_unit_open(name: str, value: float) -> float:
    """``value`` in ``(0, 1]`` or a ConfigError (learning rates such as alpha)."""
    v = _real(name, value)
    if not 0.0 < v <= 1.0:
        raise ConfigError(f"{name} must lie in (0, 1], got {value}")
    return v


def check_unit(name: str, value: float) -> float:
    """``value`` in ``[0, 1]`` or a ConfigError (gamma, lambda...)."""
    v = _real(name, value)
    if not 0.0 <= v <= 1.0:
        raise ConfigError(f"{name} must lie in [0, 1], got {value}")
    return v


def check_positive(name: str, value: float) -> float:
    """A finite ``value > 0`` or a ConfigError."""
    v = _real(name, value)
    if not v > 0.0 or math.isinf(v):
        raise ConfigError(f"{name} must be a finite number > 0, got {value}")
    return v


def check_count(name: str, value: int, *, minimum: int = 1) -> int:
    """An int ``>= minimum`` or a ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _real(name: str, value: float) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(v):
        raise ConfigError(f"{name} must be a number, got NaN")
    return v


def check_reward(reward: float) -> float:
    """A finite float reward or an InvalidInputError."""
    try:
        r = float(reward)
    except (TypeError, ValueError):
        raise InvalidInputError(f"reward must be a real number, got {reward!r}") from None
    if not math.isfinite(r):
        raise InvalidInputError(f"reward must be finite, got {r}; clip or drop the step")
    return r


def check_actions(actions: Sequence[Action]) -> Sequence[Action]:
    """A non-empty sequence of candidate actions or an InvalidInputError."""
    if isinstance(actions, str | bytes) or not isinstance(actions, Sequence):
        raise InvalidInputError(
            f"actions must be a sequence of candidate actions, got {type(actions).__name__}"
        )
    if len(actions) == 0:
        raise InvalidInputError("actions is empty; pass at least one candidate action")
    return actions


def hashable_key(key: State, what: str) -> Hashable:
    """A state/action usable as a dict key; arrays become their bytes (plus shape)."""
    if isinstance(key, np.ndarray):
        return (key.shape, str(key.dtype), key.tobytes())
    try:
        hash(key)
    except TypeError:
        raise InvalidInputError(
            f"{what} {key!r} is not hashable; use a str/int/tuple key or a numpy vector"
        ) from None
    return key


class KeyIndex:
    """Maps hashable keys to dense indices ``0, 1, 2...`` in order of first appearance."""

    __slots__ = ("_index", "_keys", "capacity", "what")

    def __init__(self, what: str, capacity: int | None = None) -> None:
        self.what = what
        self.capacity = capacity
        self._index: dict[Hashable, int] = {}
        self._keys: list[Hashable] = []

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, key: Hashable) -> int | None:
        """The index of ``key`` or ``None``."""
        return self._index.get(key)

    def add(self, key: Hashable) -> int:
        """The index of ``key``, registering it if new."""
        idx = self._index.get(key)
        if idx is not None:
            return idx
        if self.capacity is not None and len(self._keys) >= self.capacity:
            raise CapacityError(
                f"more than {self.capacity} distinct {self.what}s (new: {key!r}); "
                f"raise n_{self.what}s or leave it unset so tables grow"
            )
        idx = len(self._keys)
        self._index[key] = idx
        self._keys.append(key)
        return idx

    def key(self, idx: int) -> Hashable:
        """The key at ``idx``."""
        return self._keys[idx]

    @property
    def keys(self) -> list[Hashable]:
        """All keys in index order."""
        return list(self._keys)


class Learner(ABC):
    """A reinforcement learner over hashable states and actions (see module docstring)."""

    name: ClassVar[str] = "learner"
    episodic: ClassVar[bool] = False
    """True when the learner learns at episode ends rather than at every step."""
    conditions_on_history: ClassVar[bool] = False
    """True when ``act`` depends on the episode so far (the decision transformer): such a
    learner must see ``update``/``observe`` of a step before ``act`` in the next state."""

    def __init__(self, *, gamma: float, seed: SeedLike) -> None:
        self.gamma = check_unit("gamma", gamma)
        self.rng = as_generator(seed)
        self._updates = 0
        self._episodes = 0
        self._steps = 0
        self._err_ema = 0.0
        self._err_weight = 0.0

    # -- learning -------------------------------------------------------------------------
    @abstractmethod
    def update(
        self,
        state: State,
        action: Action,
        reward: float,
        next_state: State | None = None,
        done: bool = False,
        *,
        next_action: Action | None = None,
        next_actions: Sequence[Action] | None = None,
    ) -> float:
        """Learn from one transition; returns the TD error or loss it produced (0.0 when the
        step was only buffered). ``next_state=None`` is the contextual-bandit shortcut: the
        value of ``(state, action)`` moves toward ``reward``."""

    def update_pattern(self, state: State, action: Action, reward: float) -> float:
        """Contextual-bandit update: ``(state, action)``'s value moves toward ``reward``."""
        return self.update(state, action, reward)

    def update_trajectory(self, trajectory: Trajectory) -> float:
        """Learn from a whole episode; returns the mean absolute TD error (or final loss).

        Step-wise learners replay the steps in order (``next_action`` taken from the next
        step), then close the episode.
        """
        if not isinstance(trajectory, Trajectory):
            raise InvalidInputError(
                f"update_trajectory expects a Trajectory, got {type(trajectory).__name__}"
            )
        steps = trajectory.steps
        if not steps:
            return 0.0
        total = 0.0
        for i, step in enumerate(steps):
            nxt = steps[i + 1].action if i + 1 < len(steps) else None
            total += abs(
                self.update(
                    step.state,
                    step.action,
                    step.reward,
                    step.next_state,
                    step.done,
                    next_action=nxt,
                )
            )
        if not steps[-1].done and steps[-1].next_state is not None:
            self.end_episode()
        return total / len(steps)

    def begin_episode(self, target_return: float | None = None) -> None:  # noqa: B027
        """Called before an episode starts. ``target_return`` is for return-conditioned
        learners (the decision transformer resets its context to it); others ignore it."""

    def end_episode(self) -> None:
        """Close the current episode: flush buffers, reset traces, decay exploration.

        ``update(..., done=True)`` and bandit updates call it themselves; call it directly
        when an episode is cut short (time limit).
        """
        self._episodes += 1
        policy = self.policy
        if policy is not None:
            policy.end_episode()

    def observe(self, state: State, action: Action, reward: float) -> None:  # noqa: B027
        """Record a step without learning (keeps the episode context of sequence models)."""

    # -- acting ---------------------------------------------------------------------------
    @abstractmethod
    def values(self, state: State, actions: Sequence[Action]) -> F64:
        """The learner's value (or preference) for each candidate action in ``state``."""

    def counts(self, state: State, actions: Sequence[Action]) -> F64 | None:
        """Visit counts per candidate action, or ``None`` when the learner keeps none."""
        return None

    @property
    @abstractmethod
    def policy(self) -> Policy | None:
        """The exploration policy ``act`` uses."""

    def best_action(self, state: State, actions: Sequence[Action]) -> Action:
        """The greedy action: the first candidate with the highest value."""
        candidates = check_actions(actions)
        return candidates[int(np.argmax(self.values(state, candidates)))]

    def act(self, state: State, actions: Sequence[Action]) -> Action:
        """An action chosen by the exploration policy."""
        candidates = check_actions(actions)
        policy = self.policy
        if policy is None:
            return self.best_action(state, candidates)
        v = self.values(state, candidates)
        c = self.counts(state, candidates) if policy.needs_counts else None
        return candidates[policy.select(v, c)]

    # -- stats ----------------------------------------------------------------------------
    def _record_error(self, err: float) -> None:
        # Bias-corrected EMA with a ~100-sample horizon.
        self._err_weight = 0.99 * self._err_weight + 0.01
        self._err_ema = 0.99 * self._err_ema + 0.01 * abs(err)

    @property
    def mean_error(self) -> float:
        """Running mean of the absolute TD error / loss."""
        return self._err_ema / self._err_weight if self._err_weight > 0 else 0.0

    def _extra_stats(self) -> dict[str, float]:
        return {}

    def _sizes(self) -> tuple[int, int]:
        return 0, 0

    def stats(self) -> LearnerStats:
        """Counters and running error for this learner."""
        policy = self.policy
        n_s, n_a = self._sizes()
        return LearnerStats(
            algorithm=self.name,
            updates=self._updates,
            episodes=self._episodes,
            steps=self._steps,
            mean_error=self.mean_error,
            exploration=None if policy is None else policy.parameter,
            n_states=n_s,
            n_actions=n_a,
            extra=self._extra_stats(),
        )

    def __repr__(self) -> str:
        s = self.stats()
        return f"<{type(self).__name__} updates={s.updates} episodes={s.episodes}>"


class TabularLearner(Learner):
    """Base for table-based learners: keys map to rows/columns of numpy tables.

    Tables grow (capacity doubling, amortized O(1) per new key) as states and actions
    appear, unless ``n_states``/``n_actions`` fix their size (then an unknown key beyond
    that size raises :class:`~ruvector_edge.errors.CapacityError`). Reads never grow
    tables: an unseen ``(state, action)`` reads as ``initial_value`` with count 0.
    """

    def __init__(
        self,
        *,
        gamma: float,
        seed: SeedLike,
        policy: Policy | None,
        n_states: int | None,
        n_actions: int | None,
        initial_value: float,
        table_names: Sequence[str],
    ) -> None:
        super().__init__(gamma=gamma, seed=seed)
        if n_states is not None:
            n_states = check_count("n_states", n_states)
        if n_actions is not None:
            n_actions = check_count("n_actions", n_actions)
        self.initial_value = _real("initial_value", initial_value)
        if math.isinf(self.initial_value):
            raise ConfigError("initial_value must be finite")
        if policy is not None and not isinstance(policy, Policy):
            raise ConfigError(f"policy must be a Policy, got {type(policy).__name__}")
        self._policy: Policy | None = (
            policy if policy is not None else EpsilonGreedyPolicy(0.1, rng=self.rng)
        )
        self._states = KeyIndex("state", n_states)
        self._actions = KeyIndex("action", n_actions)
        rows = n_states if n_states is not None else _INITIAL_CAPACITY
        cols = n_actions if n_actions is not None else _INITIAL_CAPACITY
        self._table_names = tuple(table_names)
        self._tables: dict[str, F64] = {
            name: np.full((rows, cols), self._fill(name), dtype=np.float64)
            for name in self._table_names
        }
        self._counts = np.zeros((rows, cols), dtype=np.float64)

    def _fill(self, table: str) -> float:
        """Initial value of a new cell of ``table``."""
        return self.initial_value

    @property
    def policy(self) -> Policy | None:
        """The exploration policy."""
        return self._policy

    def _sizes(self) -> tuple[int, int]:
        return len(self._states), len(self._actions)

    def _grow(self, rows: int, cols: int) -> None:
        cap_r, cap_c = self._counts.shape
        if rows <= cap_r and cols <= cap_c:
            return
        new_r = cap_r if rows <= cap_r else max(rows, 2 * cap_r)
        new_c = cap_c if cols <= cap_c else max(cols, 2 * cap_c)
        for name, table in self._tables.items():
            grown = np.full((new_r, new_c), self._fill(name), dtype=np.float64)
            grown[:cap_r, :cap_c] = table
            self._tables[name] = grown
        counts = np.zeros((new_r, new_c), dtype=np.float64)
        counts[:cap_r, :cap_c] = self._counts
        self._counts = counts
        self._on_grow(new_r, new_c)

    def _on_grow(self, rows: int, cols: int) -> None:
        """Hook for subclasses with extra per-cell arrays."""

    def _state_row(self, state: State) -> int:
        idx = self._states.add(hashable_key(state, "state"))
        self._grow(idx + 1, len(self._actions))
        return idx

    def _action_col(self, action: Action) -> int:
        idx = self._actions.add(hashable_key(action, "action"))
        self._grow(len(self._states), idx + 1)
        return idx

    def _action_cols(self, actions: Sequence[Action] | None) -> IntArray:
        """Columns of ``actions`` (registered), or every known action for ``None``."""
        if actions is None:
            return np.arange(len(self._actions), dtype=np.intp)
        check_actions(actions)
        return np.fromiter(
            (self._action_col(a) for a in actions), dtype=np.intp, count=len(actions)
        )

    def _lookup(self, state: State, actions: Sequence[Action]) -> tuple[int | None, IntArray]:
        """Row of ``state`` (or None) and columns of ``actions`` (-1 for unknown); no growth."""
        check_actions(actions)
        row = self._states.get(hashable_key(state, "state"))
        cols = np.fromiter(
            (
                -1 if (c := self._actions.get(hashable_key(a, "action"))) is None else c
                for a in actions
            ),
            dtype=np.intp,
            count=len(actions),
        )
        return row, cols

    def _read(self, table: F64, fill: float, state: State, actions: Sequence[Action]) -> F64:
        row, cols = self._lookup(state, actions)
        out = np.full(cols.shape[0], fill, dtype=np.float64)
        if row is not None:
            known = cols >= 0
            out[known] = table[row, cols[known]]
        return out

    def counts(self, state: State, actions: Sequence[Action]) -> F64:
        """How often each candidate action was updated in ``state``."""
        return self._read(self._counts, 0.0, state, actions)

    def table(self, name: str = "q") -> F64:
        """A copy of one table, ``[n_states, n_actions]`` in key-index order."""
        if name == "counts":
            return self._counts[: len(self._states), : len(self._actions)].copy()
        if name not in self._tables:
            raise InvalidInputError(
                f"unknown table {name!r}; this learner has {', '.join(self._tables)}"
            )
        return self._tables[name][: len(self._states), : len(self._actions)].copy()

    @property
    def state_keys(self) -> list[Hashable]:
        """Known states in row order."""
        return self._states.keys

    @property
    def action_keys(self) -> list[Hashable]:
        """Known actions in column order."""
        return self._actions.keys

    def _begin_update(
        self, state: State, action: Action, reward: float, next_actions: Sequence[Action] | None
    ) -> tuple[int, int, float, IntArray]:
        r = check_reward(reward)
        s = self._state_row(state)
        a = self._action_col(action)
        cols = self._action_cols(next_actions)
        self._counts[s, a] += 1.0
        self._steps += 1
        return s, a, r, cols

    def _next_row(self, next_state: State | None, done: bool) -> int | None:
        """Row of the bootstrap state, or None when the step ends the episode."""
        if next_state is None or done:
            return None
        return self._state_row(next_state)

    def _on_policy_next_col(
        self, next_row: int, next_action: Action | None, cols: IntArray, table: F64
    ) -> int:
        """Column of the action taken in the next state; sampled from the policy if absent."""
        if next_action is not None:
            return self._action_col(next_action)
        policy = self._policy
        v = table[next_row, cols]
        if policy is None:
            return int(cols[int(np.argmax(v))])
        c = self._counts[next_row, cols] if policy.needs_counts else None
        return int(cols[policy.select(v, c)])


def as_float_vector(x: ArrayLike, dim: int, what: str) -> F64:
    """``x`` as a finite float64 vector of length ``dim`` or an InvalidInputError."""
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    if v.shape[0] != dim:
        raise InvalidInputError(f"{what} must have {dim} features, got {v.shape[0]}")
    if not np.isfinite(v).all():
        raise InvalidInputError(f"{what} contains NaN or infinity")
    return v


def kwargs_error(name: str, exc: TypeError) -> ConfigError:
    """A ConfigError for a bad keyword passed to a learner constructor."""
    return ConfigError(f"bad arguments for learner {name!r}: {exc}")


class StateEncoder:
    """Turns states into network inputs: one-hot of a key index (``n_states``) or feature
    vectors of length ``state_dim`` (given directly, or produced by ``featurize``)."""

    def __init__(
        self,
        *,
        n_states: int | None,
        state_dim: int | None,
        featurize: Callable[[State], ArrayLike] | None,
        owner: str,
    ) -> None:
        if (state_dim is None) == (n_states is None):
            raise ConfigError(
                f"{owner} needs exactly one of state_dim (states are feature vectors) or "
                "n_states (states are keys, one-hot encoded)"
            )
        if featurize is not None and state_dim is None:
            raise ConfigError("featurize needs state_dim (the length of its vectors)")
        self.owner = owner
        self.keys = KeyIndex("state", n_states) if n_states is not None else None
        self.dim = check_count(
            "n_states" if n_states is not None else "state_dim",
            n_states if n_states is not None else state_dim or 0,
        )
        self.featurize = featurize

    def __call__(self, state: State) -> F64:
        """The input vector for ``state`` (a new key gets the next one-hot slot)."""
        if self.keys is not None:
            x = np.zeros(self.dim, dtype=np.float64)
            x[self.keys.add(hashable_key(state, "state"))] = 1.0
            return x
        raw = self.featurize(state) if self.featurize is not None else state
        if not isinstance(raw, np.ndarray | list | tuple):
            raise InvalidInputError(
                f"{self.owner} with state_dim expects feature vectors (or a featurize "
                f"function), got {type(raw).__name__}"
            )
        return as_float_vector(raw, self.dim, "state")

    @property
    def n_keys(self) -> int:
        """How many state keys have a one-hot slot (0 in feature mode)."""
        return 0 if self.keys is None else len(self.keys)
