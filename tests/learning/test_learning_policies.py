"""Action-selection policies: greedy, ε-greedy, UCB1, softmax."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ruvector_edge.errors import ConfigError, InvalidInputError
from ruvector_edge.learning.algorithms import (
    BoltzmannPolicy,
    EpsilonGreedyPolicy,
    GreedyPolicy,
    Policy,
    SoftmaxPolicy,
    UCB1Policy,
    create_policy,
)

value_vectors = st.lists(st.floats(-50, 50), min_size=1, max_size=12)


def frequencies(policy: Policy, values: list[float], n: int, counts: list[float] | None = None):  # type: ignore[no-untyped-def]
    picks = np.array([policy.select(values, counts) for _ in range(n)])
    return np.bincount(picks, minlength=len(values)) / n


def all_policies() -> list[Policy]:
    return [
        GreedyPolicy(rng=0),
        EpsilonGreedyPolicy(0.3, rng=0),
        UCB1Policy(1.0, rng=0),
        SoftmaxPolicy(0.7, rng=0),
    ]


@given(value_vectors)
def test_probabilities_are_a_distribution(values: list[float]) -> None:
    counts = list(range(1, len(values) + 1))
    for policy in all_policies():
        p = policy.probabilities(values, counts)
        assert p.shape == (len(values),)
        assert (p >= 0).all()
        assert p.sum() == pytest.approx(1.0)
        assert 0 <= policy.select(values, counts) < len(values)


@given(value_vectors)
def test_greedy_only_picks_maximal_values(values: list[float]) -> None:
    policy = GreedyPolicy(rng=1)
    best = max(values)
    for _ in range(5):
        assert values[policy.select(values)] == best


def test_greedy_breaks_ties_uniformly() -> None:
    freq = frequencies(GreedyPolicy(rng=2), [1.0, 3.0, 3.0, 0.0, 3.0], 6000)
    assert freq[0] == 0
    assert freq[3] == 0
    np.testing.assert_allclose(freq[[1, 2, 4]], 1 / 3, atol=0.03)


def test_epsilon_greedy_frequencies_match_its_probabilities() -> None:
    policy = EpsilonGreedyPolicy(0.4, rng=3)
    values = [0.0, 1.0, 0.5, -1.0]
    p = policy.probabilities(values)
    np.testing.assert_allclose(p, [0.1, 0.7, 0.1, 0.1])
    np.testing.assert_allclose(frequencies(policy, values, 20_000), p, atol=0.015)


def test_epsilon_decays_per_episode_down_to_the_floor() -> None:
    policy = EpsilonGreedyPolicy(0.5, decay=0.5, min_epsilon=0.1)
    assert policy.parameter == 0.5
    policy.end_episode()
    assert policy.epsilon == pytest.approx(0.25)
    for _ in range(10):
        policy.end_episode()
    assert policy.epsilon == pytest.approx(0.1)


def test_ucb1_tries_untried_actions_first_then_uses_the_bound() -> None:
    policy = UCB1Policy(c=2.0, rng=0)
    assert policy.select([10.0, 0.0, 5.0], [3, 0, 2]) == 1
    values, counts = np.array([1.0, 0.9, 0.2]), np.array([100.0, 2.0, 1.0])
    total = counts.sum()
    expected = values + 2.0 * np.sqrt(math.log(total) / counts)
    np.testing.assert_allclose(policy.scores(values, counts), expected)
    assert policy.select(values, counts) == int(np.argmax(expected))
    # A heavily visited best arm wins once exploration bonuses shrink.
    assert policy.select([1.0, 0.5], [1e6, 1e6]) == 0


def test_ucb1_needs_matching_counts() -> None:
    policy = UCB1Policy()
    with pytest.raises(InvalidInputError, match="visit count"):
        policy.select([1.0, 2.0])
    with pytest.raises(InvalidInputError, match="shape"):
        policy.select([1.0, 2.0], [1.0])
    with pytest.raises(InvalidInputError, match="non-negative"):
        policy.select([1.0, 2.0], [1.0, -1.0])


def test_softmax_probabilities_and_temperature() -> None:
    values = np.array([1.0, 2.0, 0.0])
    hot = SoftmaxPolicy(100.0)
    cold = SoftmaxPolicy(0.01)
    mid = SoftmaxPolicy(1.0, rng=5)
    e = np.exp(values - values.max())
    np.testing.assert_allclose(mid.probabilities(values), e / e.sum())
    np.testing.assert_allclose(hot.probabilities(values), 1 / 3, atol=0.01)
    assert cold.probabilities(values)[1] == pytest.approx(1.0)
    np.testing.assert_allclose(frequencies(mid, list(values), 20_000), e / e.sum(), atol=0.015)
    # Huge values must not overflow.
    assert np.isfinite(mid.probabilities([1e308, -1e308, 0.0])).all()
    assert BoltzmannPolicy is SoftmaxPolicy


def test_softmax_temperature_decay() -> None:
    policy = SoftmaxPolicy(2.0, decay=0.5, min_temperature=0.3)
    policy.end_episode()
    assert policy.temperature == pytest.approx(1.0)
    for _ in range(5):
        policy.end_episode()
    assert policy.temperature == pytest.approx(0.3)


def test_seeded_policies_are_reproducible() -> None:
    values = [0.1, 0.2, 0.3, 0.25]
    a = [EpsilonGreedyPolicy(0.5, rng=42).select(values) for _ in range(1)]
    b = [EpsilonGreedyPolicy(0.5, rng=42).select(values) for _ in range(1)]
    assert a == b
    pa, pb = SoftmaxPolicy(1.0, rng=7), SoftmaxPolicy(1.0, rng=7)
    assert [pa.select(values) for _ in range(50)] == [pb.select(values) for _ in range(50)]


def test_bad_values_and_settings_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="non-empty"):
        GreedyPolicy().select([])
    with pytest.raises(InvalidInputError, match="NaN"):
        GreedyPolicy().select([1.0, math.nan])
    with pytest.raises(ConfigError, match="epsilon"):
        EpsilonGreedyPolicy(1.5)
    with pytest.raises(ConfigError, match="min_epsilon"):
        EpsilonGreedyPolicy(0.1, min_epsilon=0.2)
    with pytest.raises(ConfigError, match="temperature"):
        SoftmaxPolicy(0.0)
    with pytest.raises(ConfigError, match="temperature"):
        SoftmaxPolicy(math.inf)
    with pytest.raises(ConfigError, match="c must be"):
        UCB1Policy(-1.0)
    with pytest.raises(ConfigError, match="seed"):
        GreedyPolicy(rng=-3)


def test_create_policy_by_name() -> None:
    assert isinstance(create_policy("greedy"), GreedyPolicy)
    eps = create_policy("epsilon_greedy", epsilon=0.2)
    assert isinstance(eps, EpsilonGreedyPolicy)
    assert eps.epsilon == 0.2
    assert isinstance(create_policy("UCB1", c=1.0), UCB1Policy)
    assert isinstance(create_policy("boltzmann", temperature=0.5), SoftmaxPolicy)
    with pytest.raises(ConfigError, match="greedy"):
        create_policy("thompson")
    with pytest.raises(ConfigError, match="bad arguments"):
        create_policy("greedy", epsilon=0.1)
