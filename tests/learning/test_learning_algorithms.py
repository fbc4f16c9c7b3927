"""Update rules of each learner, checked against hand-computed values and laws."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ruvector_edge.errors import CapacityError, ConfigError, InvalidInputError
from ruvector_edge.learning.algorithms import (
    DQN,
    LEARNER_NAMES,
    PPO,
    ActorCritic,
    DecisionTransformer,
    DecisionTransformerModel,
    DoubleQLearning,
    EpsilonGreedyPolicy,
    ExpectedSarsa,
    GreedyPolicy,
    Learner,
    LearnerStats,
    MonteCarlo,
    QLearning,
    ReplayBuffer,
    Sarsa,
    SoftmaxPolicy,
    TDLambda,
    UCB1Policy,
    create_learner,
    ppo_clip_objective,
)
from ruvector_edge.learning.trajectory import Trajectory

LR = ["L", "R"]


def make(name: str, **kwargs: Any) -> Learner:
    if name in ("dqn", "decision-transformer"):
        kwargs.setdefault("n_states", 8)
        kwargs.setdefault("n_actions", 4)
    kwargs.setdefault("seed", 0)
    return create_learner(name, **kwargs)


# -- factory and validation ---------------------------------------------------------------


def test_factory_builds_every_named_algorithm() -> None:
    assert LEARNER_NAMES == (
        "q-learning",
        "sarsa",
        "expected-sarsa",
        "double-q",
        "monte-carlo",
        "td-lambda",
        "actor-critic",
        "ppo",
        "dqn",
        "decision-transformer",
    )
    for name in LEARNER_NAMES:
        learner = make(name)
        assert isinstance(learner, Learner)
        assert learner.name == name
        assert learner.stats().algorithm == name
    assert isinstance(create_learner("Q_Learning"), QLearning)
    assert isinstance(create_learner(" td-lambda "), TDLambda)


def test_unknown_learner_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError) as err:
        create_learner("a3c")
    for name in LEARNER_NAMES:
        assert name in str(err.value)
    with pytest.raises(ConfigError, match="bad arguments"):
        create_learner("q-learning", lam=0.5)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("q-learning", {"alpha": 0.0}, "alpha"),
        ("q-learning", {"alpha": 1.5}, "alpha"),
        ("q-learning", {"alpha": math.nan}, "alpha"),
        ("sarsa", {"gamma": -0.1}, "gamma"),
        ("expected-sarsa", {"gamma": 1.01}, "gamma"),
        ("double-q", {"alpha": -1.0}, "alpha"),
        ("monte-carlo", {"alpha": 2.0}, "alpha"),
        ("td-lambda", {"lam": 1.5}, "lam"),
        ("td-lambda", {"traces": "dutch"}, "traces"),
        ("actor-critic", {"alpha_actor": 0.0}, "alpha_actor"),
        ("actor-critic", {"alpha_critic": 1.2}, "alpha_critic"),
        ("ppo", {"clip_eps": 1.0}, "clip_eps"),
        ("ppo", {"epochs": 0}, "epochs"),
        ("ppo", {"gae_lambda": -0.5}, "gae_lambda"),
        ("dqn", {"lr": 0.0}, "lr"),
        ("dqn", {"hidden": (8, 8, 8)}, "hidden"),
        ("dqn", {"batch_size": 0}, "batch_size"),
        ("dqn", {"policy": UCB1Policy()}, "visit counts"),
        ("decision-transformer", {"context": 0}, "context"),
        ("decision-transformer", {"gamma": 0.0}, "gamma"),
        ("q-learning", {"n_states": 0}, "n_states"),
        ("q-learning", {"seed": -1}, "seed"),
        ("q-learning", {"policy": "greedy"}, "Policy"),
    ],
)
def test_invalid_hyperparameters_raise_config_error(
    name: str, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        make(name, **kwargs)


def test_network_learners_need_their_sizes() -> None:
    with pytest.raises(ConfigError, match="n_actions"):
        create_learner("dqn", n_states=4)
    with pytest.raises(ConfigError, match="exactly one"):
        create_learner("dqn", n_actions=2)
    with pytest.raises(ConfigError, match="exactly one"):
        create_learner("decision-transformer", n_actions=2, n_states=3, state_dim=3)


@pytest.mark.parametrize("name", LEARNER_NAMES)
def test_bad_call_arguments_raise_invalid_input(name: str) -> None:
    learner = make(name)
    with pytest.raises(InvalidInputError, match="finite"):
        learner.update(0, 1, math.nan)
    with pytest.raises(InvalidInputError, match="empty"):
        learner.best_action(0, [])
    with pytest.raises(InvalidInputError, match="sequence"):
        learner.act(0, "LR")
    with pytest.raises(InvalidInputError, match="Trajectory"):
        learner.update_trajectory([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", LEARNER_NAMES)
def test_bandit_shortcut_moves_the_value_toward_the_reward(name: str) -> None:
    """update(state, action, reward) with no next state: the rewarded action wins."""
    kwargs: dict[str, Any] = {}
    if name == "decision-transformer":
        kwargs = {"train_steps_per_episode": 2, "lr": 1e-2, "context": 2, "d_model": 16}
        kwargs |= {"d_hidden": 16, "batch_size": 16}
    if name in ("dqn",):
        kwargs = {"lr": 1e-2, "batch_size": 8}
    if name == "ppo":
        kwargs = {"episodes_per_batch": 4}
    learner = make(name, **kwargs)
    actions = [0, 1, 2, 3]
    for i in range(200):
        learner.update_pattern(5, i % 4, 1.0 if i % 4 == 2 else 0.0)
    if isinstance(learner, DecisionTransformer):
        learner.begin_episode(1.0)
    assert learner.best_action(5, actions) == 2
    values = learner.values(5, actions)
    assert values[2] == values.max()
    assert learner.stats().episodes == 200


# -- one-step tabular rules ------------------------------------------------------------------


def test_q_learning_matches_hand_computed_values() -> None:
    q = QLearning(alpha=0.5, gamma=0.9, seed=0)
    assert q.update("s0", "R", 1.0, "s1", next_actions=LR) == pytest.approx(1.0)
    assert q.values("s0", LR) == pytest.approx([0.0, 0.5])
    # target = 2 + 0.9 * max(Q[s0]) = 2.45
    q.update("s1", "L", 2.0, "s0", next_actions=LR)
    assert q.values("s1", ["L"])[0] == pytest.approx(1.225)
    # target = 0 + 0.9 * 1.225 = 1.1025; Q = 0.5 + 0.5 * (1.1025 - 0.5)
    delta = q.update("s0", "R", 0.0, "s1", next_actions=LR)
    assert delta == pytest.approx(0.6025)
    assert q.values("s0", ["R"])[0] == pytest.approx(0.80125)
    # Terminal transition: no bootstrap.
    q.update("s1", "R", 3.0, "end", done=True)
    assert q.values("s1", ["R"])[0] == pytest.approx(1.5)
    assert q.values("end", LR) == pytest.approx([0.0, 0.0])
    # Bandit shortcut: alpha * reward.
    q.update("s2", "L", 4.0)
    assert q.values("s2", ["L"])[0] == pytest.approx(2.0)
    s = q.stats()
    assert (s.updates, s.steps, s.episodes) == (5, 5, 2)
    assert s.exploration == pytest.approx(0.1)
    assert (s.n_states, s.n_actions) == (3, 2)  # "end" was terminal: never a table row


def test_sarsa_bootstraps_from_the_action_taken() -> None:
    s = Sarsa(alpha=0.5, gamma=0.9, seed=0)
    s.update("s0", "R", 1.0, "s1", next_action="L")
    # Q[s0] = [0, 0.5]; SARSA uses the action taken next (L, value 0), not the max.
    s.update("s1", "L", 2.0, "s0", next_action="L")
    assert s.values("s1", ["L"])[0] == pytest.approx(1.0)
    q = QLearning(alpha=0.5, gamma=0.9, seed=0)
    q.update("s0", "R", 1.0, "s1", next_actions=LR)
    q.update("s1", "L", 2.0, "s0", next_actions=LR)
    assert q.values("s1", ["L"])[0] == pytest.approx(1.225)


def test_sarsa_without_next_action_samples_from_its_policy() -> None:
    s = Sarsa(alpha=1.0, gamma=1.0, policy=GreedyPolicy(rng=0), seed=0)
    s.update("x", "a", 5.0)
    s.update("x", "b", 1.0)
    s.update("w", "a", 0.0, "x")  # greedy in x picks a (value 5)
    assert s.values("w", ["a"])[0] == pytest.approx(5.0)


def test_expected_sarsa_uses_the_policy_expectation() -> None:
    e = ExpectedSarsa(alpha=0.5, gamma=0.9, policy=EpsilonGreedyPolicy(0.2, rng=0), seed=0)
    e.update("s0", "L", 0.0, "s1", next_actions=LR)
    e.update("s0", "R", 1.0, "s1", next_actions=LR)
    # Q[s0] = [0, 0.5]; pi = [0.1, 0.9]; E[Q] = 0.45; target 2.405; Q = 1.2025
    e.update("s1", "L", 2.0, "s0", next_actions=LR)
    assert e.values("s1", ["L"])[0] == pytest.approx(1.2025)


def test_double_q_keeps_two_tables_and_updates_one_at_a_time() -> None:
    d = DoubleQLearning(alpha=1.0, gamma=0.5, seed=3)
    d.update("s", "a", 0.0)  # register the cell; reward 0 leaves both tables at 0
    changed = []
    for _ in range(40):
        before_a, before_b = d.table("qa").copy(), d.table("qb").copy()
        d.update("s", "a", 2.0)
        a_changed = not np.array_equal(before_a, d.table("qa"))
        b_changed = not np.array_equal(before_b, d.table("qb"))
        assert not (a_changed and b_changed)  # never both at once
        changed.append("a" if a_changed else "b" if b_changed else "-")
        if d.table("qa")[0, 0] == 2.0 and d.table("qb")[0, 0] == 2.0:
            break
    assert "a" in changed
    assert "b" in changed
    assert d.values("s", ["a"])[0] == pytest.approx(2.0)
    np.testing.assert_allclose(d.table("q"), (d.table("qa") + d.table("qb")) / 2)


def test_double_q_target_uses_the_other_tables_estimate() -> None:
    d = DoubleQLearning(alpha=1.0, gamma=1.0, seed=0)
    for a in ("x", "y"):  # register the keys
        d.update("n", a, 0.0)
    d.update("s", "x", 0.0)
    n, x, y = d.state_keys.index("n"), d.action_keys.index("x"), d.action_keys.index("y")
    # QA prefers x in state n, QB prefers y; each table's target must use the other.
    d._tables["qa"][n, [x, y]] = [10.0, 1.0]
    d._tables["qb"][n, [x, y]] = [3.0, 7.0]
    s = d.state_keys.index("s")
    qa_before, qb_before = d._tables["qa"][s, x], d._tables["qb"][s, x]
    d.update("s", "x", 0.0, "n", next_actions=["x", "y"])
    if d._tables["qa"][s, x] != qa_before:
        assert d._tables["qa"][s, x] == pytest.approx(3.0)  # QB's value of QA's argmax (x)
    else:
        assert d._tables["qb"][s, x] != qb_before
        assert d._tables["qb"][s, x] == pytest.approx(1.0)  # QA's value of QB's argmax (y)


# -- Monte Carlo ------------------------------------------------------------------------------


def episode() -> Trajectory:
    return Trajectory.from_arrays(["s0", "s1", "s0"], ["a", "a", "a"], [1.0, 0.0, 2.0])


def test_monte_carlo_first_visit_sample_averages() -> None:
    mc = MonteCarlo(gamma=0.5, seed=0)
    # Returns: G = [1 + 0.25*2, 0 + 0.5*2, 2] = [1.5, 1.0, 2.0]; first visits only.
    err = mc.update_trajectory(episode())
    assert err > 0
    assert mc.values("s0", ["a"])[0] == pytest.approx(1.5)
    assert mc.values("s1", ["a"])[0] == pytest.approx(1.0)
    mc.update_trajectory(Trajectory.from_arrays(["s0"], ["a"], [3.0]))
    assert mc.values("s0", ["a"])[0] == pytest.approx((1.5 + 3.0) / 2)
    assert mc.stats().episodes == 2


def test_monte_carlo_every_visit_and_constant_alpha() -> None:
    every = MonteCarlo(gamma=0.5, first_visit=False, seed=0)
    every.update_trajectory(episode())
    assert every.values("s0", ["a"])[0] == pytest.approx((1.5 + 2.0) / 2)
    const = MonteCarlo(gamma=0.5, alpha=0.5, first_visit=False, seed=0)
    const.update_trajectory(episode())
    assert const.values("s0", ["a"])[0] == pytest.approx(0.5 * 1.75)


def test_monte_carlo_buffers_until_the_episode_ends() -> None:
    mc = MonteCarlo(gamma=1.0, seed=0)
    assert mc.update("s0", "a", 1.0, "s1") == 0.0
    assert mc.values("s0", ["a"])[0] == 0.0  # nothing learned yet
    mc.update("s1", "a", 2.0, "s2")
    mc.end_episode()  # time limit: learn from what was seen
    assert mc.values("s0", ["a"])[0] == pytest.approx(3.0)
    assert mc.values("s1", ["a"])[0] == pytest.approx(2.0)


# -- SARSA(lambda) ------------------------------------------------------------------------------


def test_td_lambda_traces_decay_by_gamma_lambda() -> None:
    g, lam, alpha = 0.9, 0.5, 0.5
    td = TDLambda(alpha=alpha, gamma=g, lam=lam, seed=0)
    td.update("s0", "a", 0.0, "s1", next_action="a")
    assert td.trace("s0", "a") == pytest.approx(g * lam)
    delta = td.update("s1", "a", 1.0, "s2", next_action="a")
    assert delta == pytest.approx(1.0)
    assert td.trace("s0", "a") == pytest.approx((g * lam) ** 2)
    assert td.trace("s1", "a") == pytest.approx(g * lam)
    # The earlier pair got credit through its trace: alpha * delta * g * lam.
    assert td.values("s0", ["a"])[0] == pytest.approx(alpha * 1.0 * g * lam)
    assert td.values("s1", ["a"])[0] == pytest.approx(alpha)
    td.update("s2", "a", 0.0, "end", done=True)
    assert td.trace("s0", "a") == 0.0
    assert td.trace("s1", "a") == 0.0


@pytest.mark.parametrize(("traces", "expected"), [("replacing", 1.0), ("accumulating", 1.25)])
def test_td_lambda_replacing_versus_accumulating(traces: str, expected: float) -> None:
    td = TDLambda(alpha=0.1, gamma=0.5, lam=0.5, traces=traces, seed=0)
    td.update("s", "a", 0.0, "t", next_action="a")  # e = 1 -> 0.25 after decay
    td.update("s", "a", 0.0, "t", next_action="a")  # replace: 1; accumulate: 1.25
    assert td.trace("s", "a") == pytest.approx(expected * 0.25)


def test_td_lambda_trace_cutoff_bounds_work_without_changing_values() -> None:
    exact = TDLambda(alpha=0.2, gamma=0.9, lam=0.8, trace_cutoff=0.0, seed=0)
    pruned = TDLambda(alpha=0.2, gamma=0.9, lam=0.8, seed=0)
    rng = np.random.default_rng(5)
    rewards = rng.random(3000)
    for t in range(2999):  # one long episode through 3000 distinct states
        for td in (exact, pruned):
            td.update(t, t % 2, float(rewards[t]), t + 1, next_action=(t + 1) % 2)
    assert len(exact._active) == 2999
    # (0.72)**k < 1e-10 after ~70 steps; pruning runs every 32 steps.
    assert len(pruned._active) < 110
    np.testing.assert_allclose(pruned.table("q"), exact.table("q"), atol=1e-9)


def test_td_lambda_with_lambda_zero_is_sarsa() -> None:
    rng = np.random.default_rng(4)
    td = TDLambda(alpha=0.3, gamma=0.9, lam=0.0, seed=0)
    sa = Sarsa(alpha=0.3, gamma=0.9, seed=0)
    states = rng.integers(0, 5, 300)
    acts = rng.integers(0, 3, 300)
    for t in range(299):
        args = (int(states[t]), int(acts[t]), float(rng.random()), int(states[t + 1]))
        td.update(*args, next_action=int(acts[t + 1]))
        sa.update(*args, next_action=int(acts[t + 1]))
    np.testing.assert_allclose(td.table("q"), sa.table("q"))


# -- actor-critic and PPO -------------------------------------------------------------------


def test_actor_critic_hand_computed_step() -> None:
    ac = ActorCritic(alpha_actor=0.5, alpha_critic=0.5, gamma=0.9, seed=0)
    ac.update("s0", "a1", 0.0)  # registers a1; delta = 0
    delta = ac.update("s0", "a0", 1.0)
    assert delta == pytest.approx(1.0)
    assert ac.state_value("s0") == pytest.approx(0.5)
    # theta[s0] += 0.5 * 1 * (onehot(a0) - [0.5, 0.5])
    np.testing.assert_allclose(ac.values("s0", ["a0", "a1"]), [0.25, -0.25])
    p = ac.probabilities("s0", ["a0", "a1"])
    np.testing.assert_allclose(p, np.exp([0.25, -0.25]) / np.exp([0.25, -0.25]).sum())
    # Bootstrapped step: delta = r + gamma V(s0) - V(s1)
    d2 = ac.update("s1", "a0", 0.0, "s0")
    assert d2 == pytest.approx(0.9 * 0.5)


def test_ppo_clipped_surrogate_values_and_gradients() -> None:
    obj, grad = ppo_clip_objective([1.5, 0.5, 1.1], [2.0, 2.0, 2.0], 0.2)
    np.testing.assert_allclose(obj, [2.4, 1.0, 2.2])
    np.testing.assert_allclose(grad, [0.0, 2.0, 2.0])
    obj, grad = ppo_clip_objective([0.5, 1.5, 0.9], [-1.0, -1.0, -1.0], 0.2)
    np.testing.assert_allclose(obj, [-0.8, -1.5, -0.9])
    np.testing.assert_allclose(grad, [0.0, -1.0, -1.0])
    with pytest.raises(InvalidInputError, match="shape"):
        ppo_clip_objective([1.0], [1.0, 2.0])


@given(
    st.lists(st.tuples(st.floats(0.01, 5.0), st.floats(-10, 10)), min_size=1, max_size=30),
    st.floats(0.05, 0.5),
)
def test_ppo_surrogate_is_a_pessimistic_bound(pairs: list[tuple[float, float]], eps: float) -> None:
    ratio = np.array([p[0] for p in pairs])
    adv = np.array([p[1] for p in pairs])
    obj, grad = ppo_clip_objective(ratio, adv, eps)
    assert (obj <= ratio * adv + 1e-12).all()
    assert (obj <= np.clip(ratio, 1 - eps, 1 + eps) * adv + 1e-12).all()
    # No incentive to push the ratio past the band in the advantage's direction.
    assert (grad[(adv > 0) & (ratio > 1 + eps)] == 0).all()
    assert (grad[(adv < 0) & (ratio < 1 - eps)] == 0).all()
    # Inside the band the surrogate is the plain importance-weighted advantage.
    inside = (ratio > 1 - eps) & (ratio < 1 + eps)
    np.testing.assert_allclose(obj[inside], (ratio * adv)[inside])
    np.testing.assert_allclose(grad[inside], adv[inside])


@pytest.mark.parametrize(("clip_eps", "bounded"), [(0.2, True), (0.95, False)])
def test_ppo_clipping_limits_how_far_one_batch_moves_the_policy(
    clip_eps: float, bounded: bool
) -> None:
    """Many small steps on one batch: the clipped ratio stops near 1 + eps."""
    ppo = PPO(lr=0.01, epochs=1000, episodes_per_batch=8, clip_eps=clip_eps, seed=0)
    for i in range(8):  # a0 pays 1, a1 pays 0; one state -> advantages +1 / -1
        ppo.update("s", "a0" if i % 2 == 0 else "a1", 1.0 if i % 2 == 0 else 0.0)
    p_new = ppo.probabilities("s", ["a0", "a1"])
    ratio = p_new / 0.5  # the batch was collected under the uniform initial policy
    stats = ppo.stats()
    assert stats.updates == 1
    if bounded:
        assert 1.195 <= ratio[0] <= 1.2 + 0.005
        assert 0.8 - 0.005 <= ratio[1] <= 0.805
        assert stats.extra["clip_fraction"] > 0.5
    else:
        assert ratio[0] > 1.5


def test_ppo_buffers_until_a_batch_is_complete() -> None:
    ppo = PPO(episodes_per_batch=3, seed=0)
    assert ppo.update("s", "a", 1.0) == 0.0
    assert ppo.update("s", "b", 0.0) == 0.0
    assert ppo.stats().extra["buffered_steps"] == 2
    np.testing.assert_allclose(ppo.values("s", ["a", "b"]), [0.0, 0.0])
    ppo.update("s", "a", 1.0)
    assert ppo.stats().extra["buffered_steps"] == 0
    a, b = ppo.values("s", ["a", "b"])
    assert a > b
    # A truncated episode is closed by end_episode and bootstraps from V.
    ppo.update("s", "a", 0.0, "t")
    ppo.end_episode()
    assert ppo.stats().extra["buffered_steps"] == 1
    assert ppo.flush() != 0.0 or ppo.stats().extra["buffered_steps"] == 0
    assert ppo.stats().extra["buffered_steps"] == 0


# -- DQN ---------------------------------------------------------------------------------------


def test_replay_buffer_is_bounded_and_overwrites_the_oldest() -> None:
    buf = ReplayBuffer(50, state_dim=2, n_actions=3, rng=0)
    for i in range(200):
        buf.add(np.array([i, -i], dtype=np.float64), i % 3, float(i), None, True)
    assert len(buf) == 50
    assert buf.added == 200
    assert buf.states.shape == (50, 2)
    assert sorted(buf.rewards.tolist()) == [float(i) for i in range(150, 200)]
    batch = buf.sample(16)
    assert batch.states.shape == (16, 2)
    assert (batch.rewards >= 150).all()
    np.testing.assert_array_equal(batch.states[:, 0], batch.rewards)
    with pytest.raises(InvalidInputError, match="action index"):
        buf.add(np.zeros(2), 3, 0.0, None, True)


def test_replay_buffer_samples_uniformly() -> None:
    buf = ReplayBuffer(40, state_dim=1, n_actions=1, rng=1)
    for i in range(40):
        buf.add(np.array([float(i)]), 0, float(i), None, True)
    draws = np.concatenate([buf.sample(1000).indices for _ in range(100)])
    counts = np.bincount(draws, minlength=40)
    expected = draws.size / 40
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # 39 degrees of freedom: the 99.9% quantile is about 72.
    assert chi2 < 72.0
    with pytest.raises(InvalidInputError, match="empty"):
        ReplayBuffer(4, 1, 1).sample(1)


def test_dqn_syncs_its_target_network_every_n_steps() -> None:
    dqn = DQN(n_states=4, n_actions=2, target_sync=10, batch_size=4, lr=1e-2, seed=0)
    for i in range(9):
        dqn.update(i % 4, i % 2, 1.0, (i + 1) % 4)
    online, target = dqn.online.params, dqn.target.params
    assert any(not np.array_equal(p, q) for p, q in zip(online, target, strict=True))
    dqn.update(1, 0, 1.0, 2)  # step 10: sync
    assert all(np.array_equal(p, q) for p, q in zip(online, target, strict=True))
    assert dqn.stats().extra["target_syncs"] == 1
    assert dqn.stats().extra["replay_size"] == 10


def test_dqn_replay_is_bounded_by_buffer_size() -> None:
    dqn = DQN(n_states=3, n_actions=2, buffer_size=25, batch_size=4, seed=0)
    for i in range(100):
        dqn.update(i % 3, i % 2, 0.5)
    assert len(dqn.replay) == 25


def test_dqn_accepts_feature_vectors() -> None:
    dqn = DQN(state_dim=3, n_actions=2, batch_size=8, lr=1e-2, seed=0)
    x0, x1 = np.array([1.0, 0.0, 0.5]), np.array([0.0, 1.0, -0.5])
    for _ in range(300):
        dqn.update(x0, 0, 1.0)
        dqn.update(x0, 1, 0.0)
        dqn.update(x1, 1, 1.0)
        dqn.update(x1, 0, 0.0)
    assert dqn.best_action(x0, [0, 1]) == 0
    assert dqn.best_action(x1, [0, 1]) == 1
    assert dqn.values(x0, [0])[0] == pytest.approx(1.0, abs=0.15)
    with pytest.raises(InvalidInputError, match="3 features"):
        dqn.values(np.zeros(4), [0])
    with pytest.raises(InvalidInputError, match="feature vectors"):
        dqn.values("a key", [0])


def test_dqn_featurize_and_action_capacity() -> None:
    def featurize(state: object) -> list[float]:
        return [float(str(state)), 1.0]

    dqn = DQN(state_dim=2, featurize=featurize, actions=["x", "y"], seed=0)
    assert dqn.action_keys == ["x", "y"]
    assert dqn.values(3, ["x", "y"]).shape == (2,)
    with pytest.raises(CapacityError, match="n_actions"):
        dqn.values(3, ["z"])


# -- decision transformer -------------------------------------------------------------------------


def test_decision_transformer_gradients_match_finite_differences() -> None:
    rng = np.random.default_rng(0)
    model = DecisionTransformerModel(
        state_dim=3, n_actions=3, context=4, d_model=6, d_hidden=7, return_scale=2.0, rng=rng
    )
    b, steps = 3, 4
    rtg = rng.standard_normal((b, steps))
    states = rng.standard_normal((b, steps, 3))
    actions = rng.integers(0, 3, (b, steps))
    mask = np.ones((b, steps), dtype=np.bool_)
    mask[1, 3:] = False  # a padded window
    mask[2, 2:] = False
    _, grads = model.loss_and_grads(rtg, states, actions, mask)
    assert set(grads) == set(model.params)
    h = 1e-6
    for name, param in model.params.items():
        assert grads[name].shape == param.shape
        flat = param.reshape(-1)
        picks = rng.choice(flat.size, size=min(flat.size, 12), replace=False)
        for i in picks:
            old = flat[i]
            flat[i] = old + h
            up = model.loss(rtg, states, actions, mask)
            flat[i] = old - h
            down = model.loss(rtg, states, actions, mask)
            flat[i] = old
            numeric = (up - down) / (2 * h)
            analytic = grads[name].reshape(-1)[i]
            assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-8), (name, i)


def test_decision_transformer_is_causal() -> None:
    rng = np.random.default_rng(1)
    model = DecisionTransformerModel(state_dim=2, n_actions=2, context=3, rng=rng)
    rtg = rng.standard_normal((1, 3))
    states = rng.standard_normal((1, 3, 2))
    actions = np.array([[0, 1, 0]])
    logits, _ = model.forward(rtg, states, actions)
    changed = actions.copy()
    changed[0, 2] = 1  # the last action cannot influence any prediction
    states2 = states.copy()
    states2[0, 2] += 5.0  # the last state influences only the last prediction
    l2, _ = model.forward(rtg, states, changed)
    l3, _ = model.forward(rtg, states2, actions)
    np.testing.assert_allclose(l2, logits)
    np.testing.assert_allclose(l3[0, :2], logits[0, :2])
    assert not np.allclose(l3[0, 2], logits[0, 2])


def test_decision_transformer_context_follows_the_return_to_go() -> None:
    dt = DecisionTransformer(n_states=4, n_actions=2, context=3, gamma=1.0, seed=0)
    dt.begin_episode(10.0)
    assert dt.return_to_go == 10.0
    dt.observe(0, 1, 2.5)
    assert dt.return_to_go == pytest.approx(7.5)
    dt.observe(1, 1, 0.5)
    dt.observe(2, 0, 1.0)
    assert dt.return_to_go == pytest.approx(6.0)
    assert len(dt._ctx_x) == 2  # context - 1 earlier steps are kept
    assert dt.values(3, [0, 1]).shape == (2,)
    dt.begin_episode(1.0)
    assert dt.return_to_go == 1.0
    assert dt._ctx_x == []


def test_decision_transformer_dataset_and_fit() -> None:
    dt = DecisionTransformer(n_states=3, n_actions=2, context=2, max_dataset_steps=10, seed=0)
    with pytest.raises(InvalidInputError, match="no trajectories"):
        dt.train_step()
    for k in range(6):
        dt.add_trajectory(Trajectory.from_arrays([0, 1], [k % 2, 1], [1.0, float(k)]))
    # Bounded: oldest whole episodes are dropped.
    assert dt.data.size <= 10
    assert dt.data.episode_returns[-1] == pytest.approx(6.0)
    loss = dt.fit(20)
    assert math.isfinite(loss)
    assert dt.stats().updates == 20


# -- shared behaviour ------------------------------------------------------------------------------


def test_tables_grow_and_keep_their_values() -> None:
    q = QLearning(alpha=1.0, seed=0)
    for i in range(100):
        q.update(f"s{i}", f"a{i % 37}", float(i))
    assert q.table("q").shape == (100, 37)
    for i in (0, 17, 99):
        assert q.values(f"s{i}", [f"a{i % 37}"])[0] == float(i)
    assert q.stats().n_states == 100


def test_reads_do_not_register_keys() -> None:
    q = QLearning(initial_value=0.5, seed=0)
    np.testing.assert_allclose(q.values("never", ["x", "y"]), [0.5, 0.5])
    np.testing.assert_allclose(q.counts("never", ["x"]), [0.0])
    q.act("never", ["x", "y"])
    assert q.stats().n_states == 0
    assert q.stats().n_actions == 0


def test_fixed_table_sizes_raise_capacity_error() -> None:
    q = QLearning(n_states=2, n_actions=2, seed=0)
    q.update("a", 0, 1.0)
    q.update("b", 1, 1.0)
    with pytest.raises(CapacityError, match="n_states"):
        q.update("c", 0, 1.0)
    with pytest.raises(CapacityError, match="n_actions"):
        q.update("a", 2, 1.0)


def test_unhashable_states_are_rejected_and_arrays_are_keys() -> None:
    q = QLearning(alpha=1.0, seed=0)
    with pytest.raises(InvalidInputError, match="hashable"):
        q.update([1, 2], "a", 1.0)  # type: ignore[arg-type]
    q.update(np.array([1, 2]), "a", 3.0)
    assert q.values(np.array([1, 2]), ["a"])[0] == 3.0


def test_update_trajectory_equals_stepwise_updates() -> None:
    traj = Trajectory.from_arrays([0, 1, 2, 1, 3], ["r", "l", "r", "r", "r"], [0, 1, 0, 2, 5])
    a, b = Sarsa(alpha=0.4, gamma=0.8, seed=0), Sarsa(alpha=0.4, gamma=0.8, seed=0)
    a.update_trajectory(traj)
    for i, st_ in enumerate(traj):
        nxt = traj[i + 1].action if i + 1 < len(traj) else None
        b.update(st_.state, st_.action, st_.reward, st_.next_state, st_.done, next_action=nxt)
    np.testing.assert_allclose(a.table("q"), b.table("q"))
    assert a.stats().episodes == 1


def test_act_uses_the_policy_and_best_action_is_greedy() -> None:
    q = QLearning(alpha=1.0, policy=EpsilonGreedyPolicy(1.0, rng=0), seed=0)
    q.update("s", "good", 1.0)
    q.update("s", "bad", 0.0)
    picks = {q.act("s", ["good", "bad"]) for _ in range(100)}
    assert picks == {"good", "bad"}  # epsilon = 1 explores
    assert q.best_action("s", ["good", "bad"]) == "good"
    ucb = QLearning(policy=UCB1Policy(rng=0), seed=0)
    ucb.update("s", "tried", 1.0)
    assert ucb.act("s", ["tried", "untried"]) == "untried"


def test_stats_report_exploration_and_errors() -> None:
    q = QLearning(alpha=0.5, policy=SoftmaxPolicy(0.7), seed=0)
    assert q.stats().mean_error == 0.0
    for _ in range(10):
        q.update("s", "a", 1.0)
    s = q.stats()
    assert isinstance(s, LearnerStats)
    assert s.exploration == pytest.approx(0.7)
    assert 0 < s.mean_error < 1.0
    assert "updates=10" in repr(q)


@settings(max_examples=25)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.floats(-5, 5)), max_size=40))
def test_q_values_stay_within_reward_bounds(updates: list[tuple[int, int, float]]) -> None:
    """With gamma < 1 and alpha in (0, 1], |Q| <= max|r| / (1 - gamma) forever."""
    q = QLearning(alpha=0.7, gamma=0.5, seed=0)
    for i, (s, a, r) in enumerate(updates):
        q.update(s, a, r, (s + 1) % 4 if i % 3 else None)
    if updates:
        assert np.abs(q.table("q")).max() <= 5.0 / (1 - 0.5) + 1e-9


# -- episodes through the shared driver --------------------------------------------------------


class RecordingLearner(QLearning):
    """Logs the order of act/update calls and the next_action each update gets."""

    def __init__(self, history: bool) -> None:
        super().__init__(seed=0)
        self.conditions_on_history = history  # type: ignore[misc]
        self.calls: list[str] = []

    def act(self, state: Any, actions: Any) -> Any:
        self.calls.append(f"act{state}")
        return 1

    def update(self, state: Any, action: Any, reward: float, *args: Any, **kw: Any) -> float:
        self.calls.append(f"update{state}:{kw.get('next_action')}")
        return super().update(state, action, reward, *args, **kw)


def test_history_conditioned_learners_see_each_step_before_acting() -> None:
    from ruvector_edge.learning.algorithms import ChainMDP, run_episode

    seq = RecordingLearner(history=True)
    run_episode(ChainMDP(5, start=1), seq)
    assert seq.calls == ["act1", "update1:None", "act2", "update2:None", "act3", "update3:None"]
    # SARSA-style learners get the next action first, and with it the update.
    sarsa_like = RecordingLearner(history=False)
    run_episode(ChainMDP(5, start=1), sarsa_like)
    assert sarsa_like.calls == ["act1", "act2", "update1:1", "act3", "update2:1", "update3:None"]


@pytest.mark.parametrize("name", LEARNER_NAMES)
def test_every_learner_runs_episodes_and_trajectories(name: str) -> None:
    from ruvector_edge.learning.algorithms import GridWorld, run_episode

    grid = GridWorld(random_start=True, seed=0)
    kwargs: dict[str, Any] = {"gamma": 0.9}
    if name in ("dqn", "decision-transformer"):
        kwargs |= {"n_states": grid.n_states, "n_actions": grid.n_actions}
    if name == "decision-transformer":
        kwargs |= {"train_steps_per_episode": 2, "d_model": 8, "d_hidden": 8, "context": 3}
    learner = create_learner(name, seed=1, **kwargs)
    trajs = [run_episode(grid, learner, max_steps=20, exploring_start=True) for _ in range(5)]
    stats = learner.stats()
    assert stats.episodes == 5
    assert stats.steps == sum(len(t) for t in trajs)
    err = learner.update_trajectory(trajs[0])
    assert math.isfinite(err)
    assert learner.stats().episodes == 6
    if name == "decision-transformer":
        assert isinstance(learner, DecisionTransformer)
        assert learner.data.episodes == 6
        assert learner.stats().updates == 12
    action = learner.act(grid.reset(), grid.actions)
    assert action in grid.actions
