"""Every algorithm learns the optimal policy of a known problem within a stated budget.

Optima come from the environments' own value iteration (checked here against a BFS and
closed forms); "optimal" means the learner's greedy action is one of the optimal actions
in every non-terminal state. Budgets are in the test ids/docstrings; seeds are fixed.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import pytest

from ruvector_edge.errors import ConfigError, InvalidInputError
from ruvector_edge.learning.algorithms import (
    ChainMDP,
    ContextualBandit,
    DecisionTransformer,
    EpsilonGreedyPolicy,
    GridWorld,
    Learner,
    UCB1Policy,
    create_learner,
    greedy_policy,
    policy_mismatches,
    run_bandit,
    run_episode,
)
from ruvector_edge.learning.trajectory import Trajectory

GAMMA = 0.9


# -- the environments' optima are right ---------------------------------------------------------


def test_chain_value_iteration_matches_the_closed_form() -> None:
    chain = ChainMDP(7)
    v, q = chain.value_iteration(GAMMA)
    s = np.arange(1, 6)
    np.testing.assert_allclose(v[1:6], 10.0 * GAMMA ** (5 - s))
    assert v[0] == v[6] == 0.0
    np.testing.assert_array_equal(chain.optimal_policy(GAMMA)[1:6], [ChainMDP.RIGHT] * 5)
    # With a short horizon the trap wins in state 1: 1 > 10 * 0.5**4.
    assert chain.optimal_policy(0.5)[1] == ChainMDP.LEFT
    assert q[1, ChainMDP.LEFT] == 1.0


def bfs_values(grid: GridWorld, gamma: float) -> dict[int, float]:
    """V* by breadth-first search from the goal (only the goal pays; the pit is a dead end)."""
    goal = next(
        s for s in range(grid.n_states) if grid.layout[s // grid.width][s % grid.width] == "G"
    )
    dist = {goal: 0}
    queue = deque([goal])
    while queue:
        cur = queue.popleft()
        for s in grid.non_terminal_states:
            if s not in dist and cur in grid.next_state[s].tolist():
                dist[s] = dist[cur] + 1
                queue.append(s)
    return {s: gamma ** (d - 1) for s, d in dist.items() if s != goal}


def test_gridworld_value_iteration_matches_bfs() -> None:
    grid = GridWorld()
    v, _ = grid.value_iteration(GAMMA)
    expected = bfs_values(grid, GAMMA)
    assert set(expected) == set(grid.non_terminal_states)
    for s, value in expected.items():
        assert v[s] == pytest.approx(value)
    mask = grid.optimal_actions(GAMMA)
    assert mask[grid.non_terminal_states].any(axis=1).all()
    assert not mask[grid.terminal].any()
    # Next to the pit (row 4, col 4, below it), stepping up is never optimal.
    assert not mask[4 * 5 + 4, 0]


def test_environment_validation_and_helpers() -> None:
    with pytest.raises(ConfigError, match="goal"):
        GridWorld(["..", ".."])
    with pytest.raises(ConfigError, match="characters"):
        GridWorld(["G?"])
    with pytest.raises(ConfigError, match="n_states"):
        ChainMDP(2)
    chain = ChainMDP(5)
    with pytest.raises(InvalidInputError, match="non-terminal"):
        chain.reset(0)
    with pytest.raises(InvalidInputError, match="action"):
        chain.transition(1, 2)
    assert chain.transition(3, ChainMDP.RIGHT) == (4, 10.0, True)
    assert chain.transition(1, ChainMDP.LEFT) == (0, 1.0, True)
    grid = GridWorld()
    assert grid.cell(7) == (1, 2)
    assert grid.transition(0, 0) == (0, 0.0, False)  # bump into the border


def test_contextual_bandit_best_arms_and_gap() -> None:
    bandit = ContextualBandit(12, 10, min_gap=0.5, seed=3)
    assert bandit.means.shape == (12, 10)
    top2 = np.sort(bandit.means, axis=1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0] >= 0.5 - 1e-12).all()
    np.testing.assert_array_equal(bandit.best_arms, bandit.means.argmax(axis=1))
    rewards = np.array([bandit.pull(0, 3) for _ in range(4000)])
    assert rewards.mean() == pytest.approx(bandit.means[0, 3], abs=0.06)
    assert ContextualBandit(seed=3).means.tolist() == ContextualBandit(seed=3).means.tolist()


def test_run_episode_records_the_trajectory() -> None:
    chain = ChainMDP(5, start=2)
    learner = create_learner("q-learning", seed=0)
    traj = run_episode(chain, learner, max_steps=50)
    assert isinstance(traj, Trajectory)
    assert traj.done
    assert traj[0].state == 2
    assert traj[-1].next_state in (0, 4)
    assert learner.stats().episodes == 1
    short = run_episode(ChainMDP(50, start=25), learner, max_steps=3)
    assert len(short) == 3
    assert not short.done
    assert learner.stats().episodes == 2  # the time limit closed the episode


# -- tabular control on the gridworld ----------------------------------------------------------

TABULAR: dict[str, dict[str, Any]] = {
    "q-learning": {"alpha": 0.5},
    "sarsa": {"alpha": 0.5},
    "expected-sarsa": {"alpha": 0.5},
    "double-q": {"alpha": 0.5},
    "td-lambda": {"alpha": 0.3, "lam": 0.8},
    # First-visit, constant alpha: sample averages would keep the near-zero returns of the
    # early wall-bumping episodes forever (their test is on the chain below).
    "monte-carlo": {"alpha": 0.2},
}


def train_on_grid(
    learner: Learner, seed: int, episodes: int, *, exploring_starts: bool
) -> GridWorld:
    grid = GridWorld(random_start=True, seed=seed)
    for _ in range(episodes):
        run_episode(grid, learner, max_steps=100, exploring_start=exploring_starts)
    return grid


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", list(TABULAR))
def test_tabular_learner_finds_the_gridworld_optimum_in_1500_episodes(name: str, seed: int) -> None:
    """Budget: 1500 episodes (<= 100 steps each) on the 5x5 gridworld, gamma 0.9,
    exploring starts, GLIE ε-greedy (0.2 * 0.997**episode). Result: the greedy policy is
    optimal in all 17 non-terminal states."""
    policy = EpsilonGreedyPolicy(0.2, decay=0.997, rng=seed + 100)
    learner = create_learner(name, gamma=GAMMA, policy=policy, seed=seed, **TABULAR[name])
    grid = train_on_grid(learner, seed, 1500, exploring_starts=True)
    assert policy_mismatches(learner, grid, GAMMA) == []
    assert learner.stats().episodes == 1500


def test_sample_average_monte_carlo_finds_the_chain_optimum_in_300_episodes() -> None:
    """Budget: 300 episodes, random starts, exploring starts, ε = 0.1; Q is the exact mean
    of the first-visit returns. Result: 'right' in every state."""
    chain = ChainMDP(7, random_start=True, seed=0)
    learner = create_learner(
        "monte-carlo", gamma=GAMMA, policy=EpsilonGreedyPolicy(0.1, rng=0), seed=0
    )
    for _ in range(300):
        run_episode(chain, learner, max_steps=100, exploring_start=True)
    assert policy_mismatches(learner, chain, GAMMA) == []
    v, _ = chain.value_iteration(GAMMA)
    # From state 5 'right' ends the episode with 10: every return is exactly 10.
    assert learner.values(5, [ChainMDP.RIGHT])[0] == pytest.approx(10.0)
    # Elsewhere the ε-greedy policy's returns average below the optimum, but not far.
    for s in range(1, 5):
        assert 0.8 * v[s] < learner.values(s, [ChainMDP.RIGHT])[0] <= v[s] + 1e-9


def test_q_learning_escapes_the_chain_trap_with_optimistic_values() -> None:
    """Budget: 200 episodes from state 1 (next to the small reward), ε = 0.1, Q0 = 10.
    Result: 'right' in every state, though 'left' pays at once."""
    chain = ChainMDP(7, start=1, seed=0)
    learner = create_learner(
        "q-learning",
        alpha=0.5,
        gamma=GAMMA,
        initial_value=10.0,
        policy=EpsilonGreedyPolicy(0.1, rng=0),
        seed=0,
    )
    for _ in range(200):
        run_episode(chain, learner, max_steps=100)
    np.testing.assert_array_equal(greedy_policy(learner, chain)[1:6], [ChainMDP.RIGHT] * 5)
    greedy_run = run_episode(chain, learner, train=False, explore=False)
    assert greedy_run.total_reward == 10.0


# -- policy gradient ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_actor_critic_finds_the_gridworld_optimum_in_1000_episodes(seed: int) -> None:
    """Budget: 1000 episodes, gamma 0.9, softmax actor (alpha 0.5), TD critic (alpha 0.2)."""
    learner = create_learner(
        "actor-critic", gamma=GAMMA, alpha_actor=0.5, alpha_critic=0.2, seed=seed
    )
    grid = train_on_grid(learner, seed, 1000, exploring_starts=False)
    assert policy_mismatches(learner, grid, GAMMA) == []


@pytest.mark.parametrize("seed", [0, 1])
def test_ppo_finds_the_gridworld_optimum_in_1000_episodes(seed: int) -> None:
    """Budget: 1000 episodes = 125 PPO batches of 8 episodes, 4 epochs each, clip 0.2."""
    learner = create_learner("ppo", gamma=GAMMA, seed=seed)
    grid = train_on_grid(learner, seed, 1000, exploring_starts=False)
    assert policy_mismatches(learner, grid, GAMMA) == []
    stats = learner.stats()
    assert stats.updates == 125
    assert 0.0 <= stats.extra["clip_fraction"] <= 1.0


# -- DQN -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_dqn_finds_the_gridworld_optimum_in_400_episodes(seed: int) -> None:
    """Budget: 400 episodes (~5k steps, one Adam step each), one-hot states, 64 ReLU
    units, replay 10k, target sync every 100 steps, ε 0.3 -> 0.05."""
    grid = GridWorld(random_start=True, seed=seed)
    learner = create_learner(
        "dqn",
        gamma=GAMMA,
        n_states=grid.n_states,
        n_actions=grid.n_actions,
        policy=EpsilonGreedyPolicy(0.3, decay=0.99, min_epsilon=0.05, rng=seed),
        seed=seed,
    )
    for _ in range(400):
        run_episode(grid, learner, max_steps=100)
    assert policy_mismatches(learner, grid, GAMMA) == []
    v, _ = grid.value_iteration(GAMMA)
    states = grid.non_terminal_states
    q_best = np.array([learner.values(s, grid.actions).max() for s in states])
    np.testing.assert_allclose(q_best, v[states], atol=0.05)


# -- decision transformer ------------------------------------------------------------------


def random_chain_data(chain: ChainMDP, episodes: int, seed: int) -> list[Trajectory]:
    rng = np.random.default_rng(seed)
    data = []
    for _ in range(episodes):
        s = chain.reset()
        traj = Trajectory()
        for _ in range(30):
            a = int(rng.integers(2))
            s2, r, done = chain.step(a)
            traj.add(s, a, r, s2, done)
            s = s2
            if done:
                break
        data.append(traj)
    return data


@pytest.mark.parametrize("seed", [0, 1])
def test_decision_transformer_learns_the_chain_optimum_offline(seed: int) -> None:
    """Budget: 200 random-policy episodes, 300 Adam steps (batch 32, context 4).
    Conditioned on the optimal return of each state it goes right everywhere and the
    rollout earns that return; conditioned on the trap's return it goes left."""
    chain = ChainMDP(7, step_reward=-0.5, random_start=True, seed=seed)
    v, _ = chain.value_iteration(1.0)  # undiscounted: right pays 10 - 0.5 per extra step
    learner = create_learner(
        "decision-transformer", n_states=7, n_actions=2, context=4, return_scale=10.0, seed=seed
    )
    assert isinstance(learner, DecisionTransformer)
    loss = learner.fit(300, random_chain_data(chain, 200, seed))
    assert loss < 0.6  # random data: the best achievable is well above 0
    for s in chain.non_terminal_states:
        learner.begin_episode(float(v[s]))
        assert learner.best_action(s, [0, 1]) == ChainMDP.RIGHT
    rollout = run_episode(
        chain, learner, start=1, train=False, explore=False, target_return=float(v[1])
    )
    assert rollout.total_reward == pytest.approx(v[1])
    for s in chain.non_terminal_states:  # ask for the small reward: 1 - 0.5 * (s - 1)
        learner.begin_episode(1.0 - 0.5 * (s - 1))
        assert learner.best_action(s, [0, 1]) == ChainMDP.LEFT


# -- the contextual bandit --------------------------------------------------------------------

BANDIT: dict[str, dict[str, Any]] = {
    "q-learning": {"alpha": 0.1, "ucb": True},
    "sarsa": {"alpha": 0.1, "ucb": True},
    "expected-sarsa": {"alpha": 0.1, "ucb": True},
    "double-q": {"alpha": 0.1, "ucb": True},
    "td-lambda": {"alpha": 0.1, "ucb": True},
    "monte-carlo": {"ucb": True},
    "actor-critic": {"alpha_actor": 0.1, "alpha_critic": 0.05},
    "ppo": {"lr": 2.0, "episodes_per_batch": 32},
    "dqn": {"n_states": 10, "n_actions": 10, "lr": 3e-3, "epsilon": 0.1},
}


@pytest.mark.parametrize("name", list(BANDIT))
def test_bandit_shortcut_finds_the_best_arms_in_10k_pulls(name: str) -> None:
    """Budget: 10,000 pulls over 10 contexts x 10 arms (noise sd 1, best-arm gap >= 0.5),
    each learned with the bandit shortcut update(context, arm, reward). Result: the greedy
    arm is the best arm in >= 90% of contexts."""
    bandit = ContextualBandit(10, 10, noise=1.0, min_gap=0.5, seed=0)
    kwargs = dict(BANDIT[name])
    if kwargs.pop("ucb", False):
        kwargs["policy"] = UCB1Policy(1.0, rng=0)
    if "epsilon" in kwargs:
        kwargs["policy"] = EpsilonGreedyPolicy(kwargs.pop("epsilon"), rng=0)
    learner = create_learner(name, seed=0, **kwargs)
    mean_reward = run_bandit(bandit, learner, 10_000)
    assert bandit.accuracy(learner) >= 0.9
    # Far better than picking arms at random.
    assert mean_reward > bandit.means.mean() + 0.5
