"""Trajectories: ordered ``(state, action, reward, next_state, done)`` steps and their returns.

A :class:`Trajectory` is what episodic learners (Monte Carlo, PPO, the decision transformer)
learn from, and what every learner accepts through ``update_trajectory``. Returns are
computed with numpy (:func:`discounted_cumsum`), never with a per-step Python loop.

States and actions are hashable keys (strings, ints, tuples...); a learner that works on
feature vectors (DQN, the decision transformer) may also take a 1-D numpy array as a state.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ruvector_edge.errors import InvalidInputError

__all__ = [
    "Action",
    "State",
    "Trajectory",
    "TrajectoryStep",
    "discounted_cumsum",
]

State: TypeAlias = Hashable | NDArray[Any]
"""A state: a hashable key, or a feature vector for learners that take features."""
Action: TypeAlias = Hashable
"""An action: any hashable key (an agent type, a model name, an arm index...)."""

F64: TypeAlias = NDArray[np.float64]

# The blockwise scan keeps factor**k above this, far from float64 underflow (1e-308).
_MIN_SCALE: Final = 1e-150


def discounted_cumsum(x: ArrayLike, factor: float) -> F64:
    """``y[t] = sum_{k >= t} factor**(k - t) * x[k]``, vectorized (reverse discounted sum).

    With ``factor = gamma`` this gives discounted returns-to-go; with ``gamma * lambda``
    applied to TD errors it gives GAE advantages. The sum runs blockwise: inside a block
    the scaled terms ``factor**k * x[k]`` are summed with one reversed ``cumsum`` (blocks are
    short enough that ``factor**k`` stays far from underflow), and each block adds the
    discounted carry of the blocks after it. ``factor`` must lie in ``[0, 1]``.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise InvalidInputError(f"discounted_cumsum expects a 1-D array, got shape {arr.shape}")
    if not 0.0 <= factor <= 1.0 or math.isnan(factor):
        raise InvalidInputError(f"discount factor must lie in [0, 1], got {factor}")
    n = arr.shape[0]
    if n == 0:
        return arr.copy()
    if factor == 0.0:
        return arr.copy()
    if factor == 1.0:
        return np.cumsum(arr[::-1])[::-1].copy()
    log_f = math.log(factor)
    block = max(1, min(n, int(math.log(_MIN_SCALE) / log_f)))
    out = np.empty(n, dtype=np.float64)
    # exp(k log f) instead of f**k: same values to ~1e-14 relative, several times faster.
    powers = np.exp(np.arange(block, dtype=np.float64) * log_f)
    carry = 0.0
    # One vectorized pass per block of `block` steps (a single block unless factor**n
    # would underflow), walking from the end so each block sees the sum after it.
    for end in range(n, 0, -block):
        start = max(0, end - block)
        m = end - start
        p = powers[:m]
        tail = np.cumsum((arr[start:end] * p)[::-1])[::-1]
        tail /= p
        if carry != 0.0:
            # carry is the value at `end`; it reaches t discounted by f**(end - t).
            tail += (carry * factor) * p[::-1]
        out[start:end] = tail
        carry = float(tail[0])
    return out


@dataclass(frozen=True, slots=True)
class TrajectoryStep:
    """One transition: in ``state`` the agent took ``action``, got ``reward``, reached
    ``next_state`` (``None`` when unknown or irrelevant, e.g. a one-shot bandit outcome)
    and ``done`` tells whether the episode ended there."""

    state: State
    action: Action
    reward: float
    next_state: State | None = None
    done: bool = False


def _check_reward(reward: float) -> float:
    try:
        value = float(reward)
    except (TypeError, ValueError):
        raise InvalidInputError(f"reward must be a real number, got {reward!r}") from None
    if not math.isfinite(value):
        raise InvalidInputError(f"reward must be finite, got {value}; clip or drop the step")
    return value


@dataclass(slots=True)
class Trajectory:
    """An ordered list of :class:`TrajectoryStep`, usually one episode.

    Build one step by step with :meth:`add`, or from existing steps. ``returns`` and
    ``returns_to_go`` are numpy arrays aligned with the steps.
    """

    steps: list[TrajectoryStep] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.steps = list(self.steps)
        for step in self.steps:
            if not isinstance(step, TrajectoryStep):
                raise InvalidInputError(
                    f"a Trajectory holds TrajectorySteps, got {type(step).__name__}"
                )
            _check_reward(step.reward)

    @classmethod
    def from_arrays(
        cls,
        states: Sequence[State],
        actions: Sequence[Action],
        rewards: ArrayLike,
        *,
        final_state: State | None = None,
        done: bool = True,
    ) -> Trajectory:
        """A trajectory from parallel lists; step ``t`` leads to ``states[t + 1]``.

        The last step leads to ``final_state`` and carries ``done``.
        """
        r = np.asarray(rewards, dtype=np.float64).reshape(-1)
        if not len(states) == len(actions) == r.shape[0]:
            raise InvalidInputError(
                f"states, actions and rewards must have one entry per step, got "
                f"{len(states)}, {len(actions)} and {r.shape[0]}"
            )
        n = len(states)
        steps = [
            TrajectoryStep(
                states[t],
                actions[t],
                float(r[t]),
                states[t + 1] if t + 1 < n else final_state,
                done if t + 1 == n else False,
            )
            for t in range(n)
        ]
        return cls(steps)

    def add(
        self,
        state: State,
        action: Action,
        reward: float,
        next_state: State | None = None,
        done: bool = False,
    ) -> TrajectoryStep:
        """Append one step and return it."""
        if self.steps and self.steps[-1].done:
            raise InvalidInputError(
                "this trajectory already ended (its last step has done=True); start a new one"
            )
        step = TrajectoryStep(state, action, _check_reward(reward), next_state, bool(done))
        self.steps.append(step)
        return step

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[TrajectoryStep]:
        return iter(self.steps)

    @overload
    def __getitem__(self, index: int) -> TrajectoryStep: ...
    @overload
    def __getitem__(self, index: slice) -> Trajectory: ...
    def __getitem__(self, index: int | slice) -> TrajectoryStep | Trajectory:
        if isinstance(index, slice):
            return Trajectory(self.steps[index])
        return self.steps[index]

    @property
    def length(self) -> int:
        """Number of steps."""
        return len(self.steps)

    @property
    def done(self) -> bool:
        """Whether the last step ended the episode (``False`` for an empty trajectory)."""
        return bool(self.steps) and self.steps[-1].done

    @property
    def states(self) -> list[State]:
        """The state of each step."""
        return [s.state for s in self.steps]

    @property
    def actions(self) -> list[Action]:
        """The action of each step."""
        return [s.action for s in self.steps]

    @property
    def next_states(self) -> list[State | None]:
        """The next state of each step."""
        return [s.next_state for s in self.steps]

    @property
    def rewards(self) -> F64:
        """Rewards as a float64 array."""
        return np.fromiter((s.reward for s in self.steps), dtype=np.float64, count=len(self))

    @property
    def dones(self) -> NDArray[np.bool_]:
        """Done flags as a bool array."""
        return np.fromiter((s.done for s in self.steps), dtype=np.bool_, count=len(self))

    @property
    def total_reward(self) -> float:
        """Undiscounted sum of rewards."""
        return float(self.rewards.sum())

    def discounted_return(self, gamma: float) -> float:
        """``sum_t gamma**t * r_t`` from the first step."""
        if len(self) == 0:
            return 0.0
        return float(self.returns(gamma)[0])

    def returns(self, gamma: float) -> F64:
        """Discounted return-to-go of every step: ``G_t = r_t + gamma * G_{t+1}``."""
        return discounted_cumsum(self.rewards, gamma)

    def returns_to_go(self) -> F64:
        """Undiscounted return-to-go of every step (what a decision transformer conditions on)."""
        return discounted_cumsum(self.rewards, 1.0)

    def extend(self, steps: Iterable[TrajectoryStep]) -> None:
        """Append several steps."""
        for step in steps:
            self.add(step.state, step.action, step.reward, step.next_state, step.done)
