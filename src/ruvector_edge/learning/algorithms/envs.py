"""Small problems with known answers, for tests, benchmarks and demos.

* :class:`ContextualBandit` — ``k`` contexts x 10 arms with Gaussian rewards; the best arm
  of each context is known.
* :class:`ChainMDP` — the classic trap: a small reward one step to the left, a large one
  at the far right; with enough ``gamma`` the optimal policy is "always right".
* :class:`GridWorld` — a deterministic grid with walls, a goal and a pit.

The MDPs are deterministic and tabular (:class:`TabularMDP`), and compute their own
optimal ``Q*``/``V*`` by value iteration (vectorized over all states and actions), so tests
compare a learner's greedy policy against the analytic optimum, state by state.
:func:`run_episode` drives any :class:`~ruvector_edge.learning.algorithms.Learner` through
one episode with the SARSA-style loop (act, step, act again, update with ``next_action``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, TypeAlias, cast

import numpy as np
from numpy.typing import NDArray

from ruvector_edge.errors import ConfigError, InvalidInputError
from ruvector_edge.learning.algorithms.base import Learner, check_count, check_unit
from ruvector_edge.learning.algorithms.policies import SeedLike, as_generator
from ruvector_edge.learning.trajectory import Trajectory

__all__ = [
    "DEFAULT_GRID",
    "ChainMDP",
    "ContextualBandit",
    "GridWorld",
    "TabularMDP",
    "greedy_policy",
    "policy_mismatches",
    "run_bandit",
    "run_episode",
]

F64: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.intp]
BoolArray: TypeAlias = NDArray[np.bool_]


class TabularMDP:
    """A deterministic finite MDP: ``next_state[s, a]``, ``reward[s, a]``, ``terminal[s]``.

    States and actions are ints. Entering a terminal state ends the episode. ``reset``
    starts in one of ``start_states`` (uniformly).
    """

    def __init__(
        self,
        next_state: IntArray,
        reward: F64,
        terminal: BoolArray,
        start_states: Sequence[int],
        *,
        seed: SeedLike = 0,
    ) -> None:
        self.next_state = np.asarray(next_state, dtype=np.intp)
        self.reward = np.asarray(reward, dtype=np.float64)
        self.terminal = np.asarray(terminal, dtype=np.bool_)
        n_s, n_a = self.next_state.shape
        if self.reward.shape != (n_s, n_a) or self.terminal.shape != (n_s,):
            raise ConfigError("next_state, reward and terminal tables disagree in shape")
        if ((self.next_state < 0) | (self.next_state >= n_s)).any():
            raise ConfigError("next_state holds an index outside the state range")
        self.start_states = [int(s) for s in start_states]
        if not self.start_states or any(self.terminal[s] for s in self.start_states):
            raise ConfigError("start_states must be non-empty and non-terminal")
        self.n_states, self.n_actions = n_s, n_a
        self.rng = as_generator(seed)
        self.state = self.start_states[0]
        self._solved: dict[float, tuple[F64, F64]] = {}

    @property
    def actions(self) -> list[int]:
        """Action ids ``0 .. n_actions - 1``."""
        return list(range(self.n_actions))

    @property
    def non_terminal_states(self) -> list[int]:
        """States where a decision is made."""
        return [int(s) for s in np.flatnonzero(~self.terminal)]

    def reset(self, start: int | None = None) -> int:
        """Begin an episode in ``start`` (default: a random start state)."""
        if start is None:
            start = self.start_states[int(self.rng.integers(len(self.start_states)))]
        if not 0 <= start < self.n_states or self.terminal[start]:
            raise InvalidInputError(f"start state {start} is not a non-terminal state")
        self.state = int(start)
        return self.state

    def transition(self, state: int, action: int) -> tuple[int, float, bool]:
        """``(next_state, reward, done)`` of taking ``action`` in ``state`` (no side effects)."""
        if not 0 <= action < self.n_actions:
            raise InvalidInputError(f"action {action} outside [0, {self.n_actions})")
        s2 = int(self.next_state[state, action])
        return s2, float(self.reward[state, action]), bool(self.terminal[s2])

    def step(self, action: int) -> tuple[int, float, bool]:
        """Take ``action`` in the current state."""
        s2, r, done = self.transition(self.state, action)
        self.state = s2
        return s2, r, done

    def value_iteration(self, gamma: float, *, tol: float = 1e-12) -> tuple[F64, F64]:
        """Optimal ``(V*, Q*)`` for discount ``gamma`` (``gamma = 1`` needs every optimal
        path to end). Each sweep is one vectorized Bellman backup over all ``(s, a)``."""
        gamma = check_unit("gamma", gamma)
        if gamma in self._solved:
            v, q = self._solved[gamma]
            return v.copy(), q.copy()
        v = np.zeros(self.n_states)
        cont = ~self.terminal[self.next_state]  # bootstrap only from non-terminal states
        q = self.reward.copy()
        for _ in range(100_000):
            q = self.reward + gamma * np.where(cont, v[self.next_state], 0.0)
            v_new = np.where(self.terminal, 0.0, q.max(axis=1))
            if np.abs(v_new - v).max() <= tol:
                v = v_new
                break
            v = v_new
        else:  # pragma: no cover - only for gamma = 1 with unbounded positive cycles
            raise ConfigError(f"value iteration did not converge for gamma={gamma}")
        self._solved[gamma] = (v, q)
        return v.copy(), q.copy()

    def optimal_actions(self, gamma: float, *, tol: float = 1e-9) -> BoolArray:
        """``mask[s, a]``: action ``a`` is optimal in non-terminal ``s``."""
        _, q = self.value_iteration(gamma)
        mask = q >= q.max(axis=1, keepdims=True) - tol
        mask[self.terminal] = False
        return np.asarray(mask, dtype=np.bool_)

    def optimal_policy(self, gamma: float) -> IntArray:
        """One optimal action per state (the lowest id among ties; -1 for terminals)."""
        mask = self.optimal_actions(gamma)
        return np.where(self.terminal, -1, mask.argmax(axis=1)).astype(np.intp)


class ChainMDP(TabularMDP):
    """Chain of ``n_states``; action 0 moves left, 1 moves right.

    Both ends are terminal: entering state 0 pays ``small_reward``, entering state
    ``n_states - 1`` pays ``large_reward``; other moves pay ``step_reward``. Episodes start in
    ``start`` (default 1, next to the small reward: the trap) or, with
    ``random_start=True``, in any non-terminal state. With ``gamma`` above
    ``(small / large) ** (1 / (n_states - 3))`` the optimal policy is "right" everywhere.
    """

    LEFT: Final = 0
    RIGHT: Final = 1

    def __init__(
        self,
        n_states: int = 7,
        *,
        small_reward: float = 1.0,
        large_reward: float = 10.0,
        step_reward: float = 0.0,
        start: int = 1,
        random_start: bool = False,
        seed: SeedLike = 0,
    ) -> None:
        n = check_count("n_states", n_states, minimum=3)
        s = np.arange(n)
        nxt = np.stack([np.maximum(s - 1, 0), np.minimum(s + 1, n - 1)], axis=1)
        reward = np.full((n, 2), float(step_reward))
        reward[nxt == 0] = float(small_reward)
        reward[nxt == n - 1] = float(large_reward)
        terminal = np.zeros(n, dtype=np.bool_)
        terminal[[0, n - 1]] = True
        starts = list(range(1, n - 1)) if random_start else [start]
        super().__init__(nxt, reward, terminal, starts, seed=seed)


DEFAULT_GRID: Final = (
    "S...#",
    ".##..",
    "...#G",
    ".#..X",
    ".....",
)
"""5x5 grid: ``#`` wall, ``G`` goal (+1), ``X`` pit (-1), ``S`` start, ``.`` free."""


class GridWorld(TabularMDP):
    """Deterministic grid with walls. Actions: 0 up, 1 right, 2 down, 3 left; a move into a
    wall or the border leaves the agent in place. Entering ``G`` pays ``goal_reward`` and
    ``X`` pays ``pit_reward`` (both terminal); every other move pays ``step_reward``.
    States are ``row * width + col``; wall cells exist as unreachable states.
    """

    MOVES: Final = ((-1, 0), (0, 1), (1, 0), (0, -1))

    def __init__(
        self,
        layout: Sequence[str] = DEFAULT_GRID,
        *,
        goal_reward: float = 1.0,
        pit_reward: float = -1.0,
        step_reward: float = 0.0,
        random_start: bool = False,
        seed: SeedLike = 0,
    ) -> None:
        rows = [str(r) for r in layout]
        if not rows or len({len(r) for r in rows}) != 1:
            raise ConfigError("grid layout must be non-empty rows of equal length")
        grid = np.array([list(r) for r in rows])
        if not set(np.unique(grid)) <= set(".#GXS"):
            raise ConfigError("grid layout may only use the characters . # G X S")
        if not (grid == "G").any():
            raise ConfigError("grid layout needs at least one goal cell 'G'")
        self.height, self.width = grid.shape
        self.layout = tuple(rows)
        self.walls = grid.reshape(-1) == "#"
        n = grid.size
        r, c = np.divmod(np.arange(n), self.width)
        nxt = np.empty((n, 4), dtype=np.intp)
        for a, (dr, dc) in enumerate(self.MOVES):  # 4 vectorized moves
            r2, c2 = r + dr, c + dc
            inside = (r2 >= 0) & (r2 < self.height) & (c2 >= 0) & (c2 < self.width)
            cand = np.where(inside, r2 * self.width + c2, np.arange(n))
            nxt[:, a] = np.where(self.walls[cand], np.arange(n), cand)
        flat = grid.reshape(-1)
        reward = np.full((n, 4), float(step_reward))
        reward[flat[nxt] == "G"] = float(goal_reward)
        reward[flat[nxt] == "X"] = float(pit_reward)
        # Walls are modelled as terminal so they never count as decision states.
        terminal = (flat == "G") | (flat == "X") | self.walls
        if random_start:
            starts = [int(s) for s in np.flatnonzero(~terminal)]
        else:
            marked = np.flatnonzero(flat == "S")
            starts = [int(marked[0])] if marked.size else [int(np.flatnonzero(~terminal)[0])]
        super().__init__(nxt, reward, terminal, starts, seed=seed)

    def cell(self, state: int) -> tuple[int, int]:
        """``(row, col)`` of a state."""
        row, col = divmod(int(state), int(self.width))
        return row, col


class ContextualBandit:
    """``n_contexts`` x ``n_arms`` Gaussian bandit with a fixed seed.

    Arm means are drawn from N(0, 1) per context; then each context's best arm is lifted
    so it beats the runner-up by at least ``min_gap``. A pull returns the mean plus
    N(0, ``noise``) noise. Contexts are the states, arms the actions.
    """

    def __init__(
        self,
        n_contexts: int = 10,
        n_arms: int = 10,
        *,
        noise: float = 1.0,
        min_gap: float = 0.2,
        seed: SeedLike = 0,
    ) -> None:
        self.n_contexts = check_count("n_contexts", n_contexts)
        self.n_arms = check_count("n_arms", n_arms, minimum=2)
        if not noise >= 0.0 or math.isinf(noise):
            raise ConfigError(f"noise must be finite and >= 0, got {noise}")
        if not min_gap >= 0.0 or math.isinf(min_gap):
            raise ConfigError(f"min_gap must be finite and >= 0, got {min_gap}")
        self.noise = float(noise)
        self.rng = as_generator(seed)
        means = self.rng.standard_normal((self.n_contexts, self.n_arms))
        rows = np.arange(self.n_contexts)
        best = means.argmax(axis=1)
        runner_up = np.sort(means, axis=1)[:, -2]
        means[rows, best] = np.maximum(means[rows, best], runner_up + float(min_gap))
        self.means = means
        self.best_arms = best.astype(np.intp)

    @property
    def contexts(self) -> list[int]:
        """Context ids."""
        return list(range(self.n_contexts))

    @property
    def arms(self) -> list[int]:
        """Arm ids."""
        return list(range(self.n_arms))

    def sample_context(self) -> int:
        """A uniformly random context."""
        return int(self.rng.integers(self.n_contexts))

    def pull(self, context: int, arm: int) -> float:
        """A noisy reward for ``arm`` in ``context``."""
        if not (0 <= context < self.n_contexts and 0 <= arm < self.n_arms):
            raise InvalidInputError(f"no arm {arm} in context {context}")
        return float(self.means[context, arm] + self.noise * self.rng.standard_normal())

    def best_arm(self, context: int) -> int:
        """The arm with the highest mean in ``context``."""
        return int(self.best_arms[context])

    def accuracy(self, learner: Learner) -> float:
        """Fraction of contexts where ``learner.best_action`` is the best arm."""
        arms = self.arms
        hits = [learner.best_action(c, arms) == self.best_arm(c) for c in self.contexts]
        return float(np.mean(hits))


def run_bandit(bandit: ContextualBandit, learner: Learner, pulls: int) -> float:
    """``pulls`` rounds of: random context, ``learner.act``, pull, bandit ``update``.

    Returns the mean reward obtained.
    """
    arms = bandit.arms
    total = 0.0
    for _ in range(check_count("pulls", pulls, minimum=0)):
        ctx = bandit.sample_context()
        arm = learner.act(ctx, arms)
        r = bandit.pull(ctx, cast(int, arm))
        learner.update(ctx, arm, r)
        total += r
    return total / max(pulls, 1)


def run_episode(
    env: TabularMDP,
    learner: Learner,
    *,
    max_steps: int = 100,
    start: int | None = None,
    train: bool = True,
    explore: bool = True,
    target_return: float | None = None,
    exploring_start: bool = False,
) -> Trajectory:
    """One episode: act, step, choose the next action, then ``update`` with it (learners
    that condition on history are updated before choosing).

    ``train=False`` only ``observe``s (for evaluation); ``explore=False`` acts greedily. A
    time limit ends the episode with :meth:`Learner.end_episode`. ``target_return`` goes to
    :meth:`Learner.begin_episode` (return-conditioned learners use it).
    ``exploring_start=True`` draws the first action uniformly (with a random start state
    this is the "exploring starts" of Monte Carlo ES).
    """
    actions = env.actions

    def choose(s: int) -> int:
        a = learner.act(s, actions) if explore else learner.best_action(s, actions)
        return cast(int, a)

    learner.begin_episode(target_return)
    s = env.reset(start)
    a = int(env.rng.integers(env.n_actions)) if exploring_start else choose(s)
    traj = Trajectory()
    for _ in range(check_count("max_steps", max_steps)):
        s2, r, done = env.step(a)
        traj.add(s, a, r, s2, done)
        if done:
            if train:
                learner.update(s, a, r, s2, True)
            else:
                learner.observe(s, a, r)
            return traj
        if learner.conditions_on_history:  # the step must be in the context before acting
            if train:
                learner.update(s, a, r, s2, False, next_actions=actions)
            else:
                learner.observe(s, a, r)
            a2 = choose(s2)
        else:  # SARSA-style: the next action is chosen first and passed to update
            a2 = choose(s2)
            if train:
                learner.update(s, a, r, s2, False, next_action=a2, next_actions=actions)
        s, a = s2, a2
    if train:
        learner.end_episode()
    return traj


def greedy_policy(learner: Learner, env: TabularMDP) -> IntArray:
    """The learner's greedy action in every state (-1 for terminal states)."""
    actions = env.actions
    out = np.full(env.n_states, -1, dtype=np.intp)
    for s in env.non_terminal_states:
        out[s] = cast(int, learner.best_action(s, actions))
    return out


def policy_mismatches(learner: Learner, env: TabularMDP, gamma: float) -> list[int]:
    """Non-terminal states where the learner's greedy action is not optimal for ``gamma``."""
    mask = env.optimal_actions(gamma)
    pol = greedy_policy(learner, env)
    states = np.asarray(env.non_terminal_states, dtype=np.intp)
    return [int(s) for s in states[~mask[states, pol[states]]]]
