"""Tabular value learners: Q-learning, SARSA, expected SARSA, double Q, Monte Carlo, SARSA(λ).

All keep ``Q[state, action]`` in a growing numpy table (see
:class:`~ruvector_edge.learning.algorithms.base.TabularLearner`). One transition touches one
cell (plus, for SARSA(λ), the rows with a live eligibility trace), so per-step updates are
scalar by nature; whole-episode work (Monte Carlo returns and averages, trace decay) is
vectorized.

Contextual-bandit shortcut: ``update(state, action, reward)`` with no ``next_state`` ends a
one-step episode, so ``Q[state, action]`` moves toward ``reward`` by ``alpha`` (Monte Carlo
with sample averages: becomes the mean of the rewards seen).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from ruvector_edge.errors import ConfigError
from ruvector_edge.learning.algorithms.base import (
    F64,
    IntArray,
    TabularLearner,
    check_unit,
    check_unit_open,
)
from ruvector_edge.learning.algorithms.policies import Policy, SeedLike
from ruvector_edge.learning.trajectory import Action, State, Trajectory, discounted_cumsum

__all__ = [
    "DoubleQLearning",
    "ExpectedSarsa",
    "MonteCarlo",
    "QLearning",
    "Sarsa",
    "TDLambda",
]


class _StepSizeLearner(TabularLearner):
    """A tabular learner with a constant step size ``alpha`` and the tables ``_TABLES``."""

    _TABLES: ClassVar[tuple[str, ...]] = ("q",)

    def __init__(
        self,
        *,
        alpha: float = 0.1,
        gamma: float = 0.99,
        policy: Policy | None = None,
        n_states: int | None = None,
        n_actions: int | None = None,
        initial_value: float = 0.0,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            gamma=gamma,
            seed=seed,
            policy=policy,
            n_states=n_states,
            n_actions=n_actions,
            initial_value=initial_value,
            table_names=self._TABLES,
        )
        self.alpha = check_unit_open("alpha", alpha)


class _OneStepTD(_StepSizeLearner):
    """One-step TD control: ``Q[s,a] += alpha * (r + gamma * bootstrap(s') - Q[s,a])``."""

    @abstractmethod
    def _bootstrap(self, next_row: int, cols: IntArray, next_action: Action | None) -> float:
        """The estimate of the next state's value the target uses."""

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
        """One TD update; returns the TD error. No ``next_state``: bandit update toward
        ``reward``."""
        s, a, r, cols = self._begin_update(state, action, reward, next_actions)
        nr = self._next_row(next_state, done)
        target = r if nr is None else r + self.gamma * self._bootstrap(nr, cols, next_action)
        q = self._tables["q"]  # read after any growth above
        delta = target - float(q[s, a])
        q[s, a] += self.alpha * delta
        self._updates += 1
        self._record_error(delta)
        if nr is None:
            self.end_episode()
        return delta

    def values(self, state: State, actions: Sequence[Action]) -> F64:
        """``Q[state, a]`` for each candidate (``initial_value`` when unseen)."""
        return self._read(self._tables["q"], self.initial_value, state, actions)


class QLearning(_OneStepTD):
    """Q-learning (Watkins 1989): off-policy target ``r + gamma * max_a' Q[s', a']``.

    The max runs over ``next_actions`` (default: every known action).
    """

    name: ClassVar[str] = "q-learning"

    def _bootstrap(self, next_row: int, cols: IntArray, next_action: Action | None) -> float:
        return float(self._tables["q"][next_row, cols].max())


class Sarsa(_OneStepTD):
    """SARSA: on-policy target ``r + gamma * Q[s', a']`` with ``a'`` the action taken next.

    Pass ``next_action``; without it ``a'`` is sampled from this learner's policy, which
    keeps the update an on-policy sample.
    """

    name: ClassVar[str] = "sarsa"

    def _bootstrap(self, next_row: int, cols: IntArray, next_action: Action | None) -> float:
        col = self._on_policy_next_col(next_row, next_action, cols, self._tables["q"])
        return float(self._tables["q"][next_row, col])


class ExpectedSarsa(_OneStepTD):
    """Expected SARSA: target ``r + gamma * sum_a' pi(a'|s') Q[s', a']`` under the policy.

    The expectation over the exploration policy replaces SARSA's sampled ``a'``, which
    removes that sampling variance (van Seijen et al. 2009).
    """

    name: ClassVar[str] = "expected-sarsa"

    def _bootstrap(self, next_row: int, cols: IntArray, next_action: Action | None) -> float:
        q = self._tables["q"][next_row, cols]
        policy = self._policy
        if policy is None:
            return float(q.max())
        c = self._counts[next_row, cols] if policy.needs_counts else None
        return float(policy.probabilities(q, c) @ q)


class DoubleQLearning(_StepSizeLearner):
    """Double Q-learning (van Hasselt 2010): two tables, each updated half the time with
    the other's estimate of its own greedy action, which removes max's upward bias.

    Acting and ``values`` use the mean ``(QA + QB) / 2``.
    """

    name: ClassVar[str] = "double-q"
    _TABLES: ClassVar[tuple[str, ...]] = ("qa", "qb")

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
        """Update one of the two tables (fair coin); returns its TD error."""
        s, a, r, cols = self._begin_update(state, action, reward, next_actions)
        nr = self._next_row(next_state, done)
        first = bool(self.rng.random() < 0.5)
        upd, other = (
            (self._tables["qa"], self._tables["qb"])
            if first
            else (self._tables["qb"], self._tables["qa"])
        )
        if nr is None:
            target = r
        else:
            best = int(cols[int(np.argmax(upd[nr, cols]))])
            target = r + self.gamma * float(other[nr, best])
        delta = target - float(upd[s, a])
        upd[s, a] += self.alpha * delta
        self._updates += 1
        self._record_error(delta)
        if nr is None:
            self.end_episode()
        return delta

    def values(self, state: State, actions: Sequence[Action]) -> F64:
        """``(QA + QB) / 2`` for each candidate."""
        qa = self._read(self._tables["qa"], self.initial_value, state, actions)
        qb = self._read(self._tables["qb"], self.initial_value, state, actions)
        return np.asarray((qa + qb) * 0.5)

    def table(self, name: str = "q") -> F64:
        """``"qa"``, ``"qb"``, ``"counts"``, or ``"q"`` for their mean."""
        if name == "q":
            return np.asarray((super().table("qa") + super().table("qb")) * 0.5)
        return super().table(name)


class MonteCarlo(TabularLearner):
    """On-policy Monte Carlo control.

    Buffers an episode and, when it ends, moves ``Q[s, a]`` toward the discounted returns
    that followed each visit. **First-visit** by default (``first_visit=False``: every
    visit). ``alpha=None`` (default) keeps exact sample averages of the returns; a float
    ``alpha`` is a constant step toward this episode's mean return per pair. A truncated
    episode (``end_episode()`` without ``done``) uses the returns observed so far.
    """

    name: ClassVar[str] = "monte-carlo"
    episodic: ClassVar[bool] = True

    def __init__(
        self,
        *,
        alpha: float | None = None,
        gamma: float = 0.99,
        first_visit: bool = True,
        policy: Policy | None = None,
        n_states: int | None = None,
        n_actions: int | None = None,
        initial_value: float = 0.0,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            gamma=gamma,
            seed=seed,
            policy=policy,
            n_states=n_states,
            n_actions=n_actions,
            initial_value=initial_value,
            table_names=("q", "n"),
        )
        self.alpha = None if alpha is None else check_unit_open("alpha", alpha)
        self.first_visit = bool(first_visit)
        self._rows: list[int] = []
        self._cols: list[int] = []
        self._rewards: list[float] = []
        self._last_error = 0.0

    def _fill(self, table: str) -> float:
        return 0.0 if table == "n" else self.initial_value

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
        """Buffer the step; at the episode's end (``done`` or no ``next_state``) learn from
        it and return the mean absolute error ``|G - Q|`` (0.0 while only buffering)."""
        s, a, r, _ = self._begin_update(state, action, reward, None)
        self._rows.append(s)
        self._cols.append(a)
        self._rewards.append(r)
        if next_state is None or done:
            self.end_episode()
            return self._last_error
        return 0.0

    def end_episode(self) -> None:
        """Learn from the buffered episode, then close it."""
        if self._rows:
            self._last_error = self._flush()
        super().end_episode()

    def _flush(self) -> float:
        rows = np.asarray(self._rows, dtype=np.intp)
        cols = np.asarray(self._cols, dtype=np.intp)
        g = discounted_cumsum(np.asarray(self._rewards, dtype=np.float64), self.gamma)
        self._rows, self._cols, self._rewards = [], [], []
        q, n = self._tables["q"], self._tables["n"]
        flat = np.ravel_multi_index((rows, cols), q.shape)
        pairs, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
        visits: F64
        if self.first_visit:
            sums, visits = g[first], np.ones(pairs.shape[0], dtype=np.float64)
        else:
            sums = np.asarray(
                np.bincount(inverse, weights=g, minlength=pairs.shape[0]), dtype=np.float64
            )
            visits = np.bincount(inverse, minlength=pairs.shape[0]).astype(np.float64)
        qf, nf = q.reshape(-1), n.reshape(-1)
        old = qf[pairs]
        err = float(np.abs(sums / visits - old).mean())
        if self.alpha is None:
            nf[pairs] += visits
            qf[pairs] = old + (sums - visits * old) / nf[pairs]
        else:
            nf[pairs] += visits
            qf[pairs] = old + self.alpha * (sums / visits - old)
        self._updates += int(pairs.shape[0])
        self._record_error(err)
        return err

    def update_trajectory(self, trajectory: Trajectory) -> float:
        """Learn from one episode; returns the mean absolute error ``|G - Q|``."""
        super().update_trajectory(trajectory)
        return self._last_error

    def values(self, state: State, actions: Sequence[Action]) -> F64:
        """``Q[state, a]`` for each candidate."""
        return self._read(self._tables["q"], self.initial_value, state, actions)


class TDLambda(TabularLearner):
    """SARSA(λ): on-policy TD(λ) control with eligibility traces.

    Each step: ``delta = r + gamma * Q[s', a'] - Q[s, a]``; the visited pair's trace is set to
    1 (**replacing** traces, the default) or incremented (``traces="accumulating"``); then
    every pair moves by ``alpha * delta * e`` and every trace decays by ``gamma * lambda``.
    Traces reset at episode ends. Only rows visited in the current episode can hold a
    non-zero trace, so the update touches just those rows (vectorized), not the whole table;
    rows whose traces all fell below ``trace_cutoff`` (default 1e-10, 0 disables) are
    zeroed and dropped from that set every 32 steps, which bounds the work in long
    episodes at a negligible approximation.
    ``a'`` is ``next_action``, or sampled from the policy when not given.
    """

    name: ClassVar[str] = "td-lambda"

    def __init__(
        self,
        *,
        alpha: float = 0.1,
        gamma: float = 0.99,
        lam: float = 0.8,
        traces: str = "replacing",
        trace_cutoff: float = 1e-10,
        policy: Policy | None = None,
        n_states: int | None = None,
        n_actions: int | None = None,
        initial_value: float = 0.0,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            gamma=gamma,
            seed=seed,
            policy=policy,
            n_states=n_states,
            n_actions=n_actions,
            initial_value=initial_value,
            table_names=("q", "e"),
        )
        self.alpha = check_unit_open("alpha", alpha)
        self.lam = check_unit("lam", lam)
        if traces not in ("replacing", "accumulating"):
            raise ConfigError(f"traces must be 'replacing' or 'accumulating', got {traces!r}")
        self.traces = traces
        self.trace_cutoff = check_unit("trace_cutoff", trace_cutoff)
        self._since_prune = 0
        self._active: list[int] = []
        self._active_mask = np.zeros(self._counts.shape[0], dtype=np.bool_)
        self._active_idx = np.zeros(0, dtype=np.intp)

    def _fill(self, table: str) -> float:
        return 0.0 if table == "e" else self.initial_value

    def _on_grow(self, rows: int, cols: int) -> None:
        mask = np.zeros(rows, dtype=np.bool_)
        mask[: self._active_mask.shape[0]] = self._active_mask
        self._active_mask = mask

    def trace(self, state: State, action: Action) -> float:
        """The current eligibility trace of ``(state, action)``."""
        return float(self._read(self._tables["e"], 0.0, state, [action])[0])

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
        """One SARSA(λ) step; returns the TD error. No ``next_state``: bandit update."""
        s, a, r, cols = self._begin_update(state, action, reward, next_actions)
        nr = self._next_row(next_state, done)
        if nr is None:
            target = r
        else:
            a2 = self._on_policy_next_col(nr, next_action, cols, self._tables["q"])
            target = r + self.gamma * float(self._tables["q"][nr, a2])
        q, e = self._tables["q"], self._tables["e"]  # after any growth
        delta = target - float(q[s, a])
        if self.traces == "replacing":
            e[s, a] = 1.0
        else:
            e[s, a] += 1.0
        if not self._active_mask[s]:
            self._active_mask[s] = True
            self._active.append(s)
            self._active_idx = np.asarray(self._active, dtype=np.intp)
        rows = self._active_idx
        q[rows] += (self.alpha * delta) * e[rows]
        e[rows] *= self.gamma * self.lam
        self._since_prune += 1
        if self._since_prune >= 32 and self.trace_cutoff > 0.0:
            self._prune(rows, e)
        self._updates += 1
        self._record_error(delta)
        if nr is None:
            self.end_episode()
        return delta

    def _prune(self, rows: IntArray, e: F64) -> None:
        self._since_prune = 0
        live = np.abs(e[rows]).max(axis=1) >= self.trace_cutoff
        if live.all():
            return
        dead = rows[~live]
        e[dead] = 0.0
        self._active_mask[dead] = False
        self._active_idx = rows[live]
        self._active = self._active_idx.tolist()

    def end_episode(self) -> None:
        """Reset the traces, then close the episode."""
        if self._active:
            self._tables["e"][self._active_idx] = 0.0
            self._active_mask[self._active_idx] = False
            self._active = []
            self._active_idx = np.zeros(0, dtype=np.intp)
        super().end_episode()

    def values(self, state: State, actions: Sequence[Action]) -> F64:
        """``Q[state, a]`` for each candidate."""
        return self._read(self._tables["q"], self.initial_value, state, actions)
