"""Trajectories and vectorized (discounted) returns."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ruvector_edge.errors import InvalidInputError
from ruvector_edge.learning.trajectory import Trajectory, TrajectoryStep, discounted_cumsum


def naive_returns(rewards: list[float], gamma: float) -> list[float]:
    out = [0.0] * len(rewards)
    g = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


@given(
    st.lists(st.floats(-1e3, 1e3), max_size=200),
    st.floats(0.0, 1.0),
)
def test_discounted_cumsum_matches_the_backward_recursion(
    rewards: list[float], gamma: float
) -> None:
    got = discounted_cumsum(rewards, gamma)
    want = naive_returns(rewards, gamma)
    assert got.shape == (len(rewards),)
    scale = sum(abs(r) for r in rewards) + 1.0
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * scale)


@pytest.mark.parametrize("gamma", [0.01, 0.3, 0.9, 0.999])
def test_discounted_cumsum_long_sequences_do_not_underflow(gamma: float) -> None:
    # 20k steps: gamma**20000 underflows for every gamma here, so a single power-scaled
    # cumsum would produce inf/NaN; the blockwise scan must stay exact.
    rng = np.random.default_rng(1)
    r = rng.standard_normal(20_000)
    got = discounted_cumsum(r, gamma)
    assert np.isfinite(got).all()
    want = naive_returns(r.tolist(), gamma)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_discounted_cumsum_edge_factors_and_errors() -> None:
    r = [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(discounted_cumsum(r, 0.0), r)
    np.testing.assert_array_equal(discounted_cumsum(r, 1.0), [6.0, 5.0, 3.0])
    assert discounted_cumsum([], 0.9).shape == (0,)
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        discounted_cumsum(r, 1.5)
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        discounted_cumsum(r, math.nan)
    with pytest.raises(InvalidInputError, match="1-D"):
        discounted_cumsum(np.ones((2, 2)), 0.5)


def test_trajectory_add_and_helpers() -> None:
    t = Trajectory()
    t.add("s0", "a", 1.0, "s1")
    t.add("s1", "b", 0.0, "s2")
    t.add("s2", "a", 2.0, "s3", done=True)
    assert len(t) == t.length == 3
    assert t.done
    assert t.total_reward == 3.0
    assert t.states == ["s0", "s1", "s2"]
    assert t.actions == ["a", "b", "a"]
    assert t.next_states == ["s1", "s2", "s3"]
    np.testing.assert_array_equal(t.dones, [False, False, True])
    np.testing.assert_allclose(t.returns(0.5), [1.0 + 0.25 * 2.0, 1.0, 2.0])
    np.testing.assert_allclose(t.returns_to_go(), [3.0, 2.0, 2.0])
    assert t.discounted_return(0.5) == pytest.approx(1.5)
    assert isinstance(t[0], TrajectoryStep)
    assert t[0].reward == 1.0
    sub = t[1:]
    assert isinstance(sub, Trajectory)
    assert sub.total_reward == 2.0
    assert [s.state for s in t] == t.states


def test_trajectory_from_arrays_chains_next_states() -> None:
    t = Trajectory.from_arrays([0, 1, 2], ["r", "r", "l"], [0.0, 0.0, 5.0], final_state=3)
    assert t.next_states == [1, 2, 3]
    np.testing.assert_array_equal(t.dones, [False, False, True])
    open_ended = Trajectory.from_arrays([0, 1], ["r", "r"], [1.0, 1.0], done=False)
    assert not open_ended.done
    assert open_ended.next_states == [1, None]
    with pytest.raises(InvalidInputError, match="one entry per step"):
        Trajectory.from_arrays([0, 1], ["r"], [1.0, 2.0])


def test_trajectory_rejects_bad_rewards_and_steps_after_done() -> None:
    t = Trajectory()
    with pytest.raises(InvalidInputError, match="finite"):
        t.add("s", "a", math.nan)
    with pytest.raises(InvalidInputError, match="finite"):
        t.add("s", "a", math.inf)
    with pytest.raises(InvalidInputError, match="real number"):
        t.add("s", "a", "lots")  # type: ignore[arg-type]
    t.add("s", "a", 1.0, "t", done=True)
    with pytest.raises(InvalidInputError, match="already ended"):
        t.add("t", "a", 1.0)
    with pytest.raises(InvalidInputError, match="TrajectorySteps"):
        Trajectory(["not a step"])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="finite"):
        Trajectory([TrajectoryStep("s", "a", math.nan)])


def test_empty_trajectory() -> None:
    t = Trajectory()
    assert len(t) == 0
    assert not t.done
    assert t.total_reward == 0.0
    assert t.discounted_return(0.9) == 0.0
    assert t.returns(0.9).shape == (0,)


def test_extend_copies_steps() -> None:
    a = Trajectory.from_arrays([0, 1], ["x", "y"], [1.0, 2.0], final_state=2, done=False)
    b = Trajectory()
    b.extend(a)
    assert b.states == a.states
    assert b.total_reward == 3.0
