"""k-means++, ARI, ReasoningBank extraction/consolidation/pruning/search."""

from __future__ import annotations

import numpy as np
import pytest

from ruvector_edge.errors import DimensionError, InvalidInputError
from ruvector_edge.sona import (
    LearnedPattern,
    PatternConfig,
    ReasoningBank,
    adjusted_rand_index,
    kmeans,
    kmeans_plus_plus,
)


def _blobs(n: int = 600, k: int = 6, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 5
    labels = rng.integers(k, size=n)
    return (centers[labels] + rng.standard_normal((n, d))).astype(np.float32), labels


def test_kmeans_plus_plus_is_seeded_d2_sampling() -> None:
    x, _ = _blobs()
    a = kmeans_plus_plus(x, 6, np.random.default_rng(1))
    b = kmeans_plus_plus(x, 6, np.random.default_rng(1))
    c = kmeans_plus_plus(x, 6, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # random, not farthest-first
    rows = {tuple(r) for r in x}
    assert all(tuple(r) in rows for r in a)
    with pytest.raises(InvalidInputError):
        kmeans_plus_plus(x, 0, np.random.default_rng(0))


def test_kmeans_recovers_blobs_and_matches_sklearn_ari() -> None:
    from sklearn.metrics import adjusted_rand_score

    x, labels = _blobs()
    _, pred, iters = kmeans(x, 6, seed=0)
    assert adjusted_rand_index(labels, pred) > 0.99
    assert iters >= 1
    rng = np.random.default_rng(3)
    for _ in range(5):
        a = rng.integers(4, size=50)
        b = rng.integers(5, size=50)
        assert adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(a, b))
    assert adjusted_rand_index([0, 0, 1, 1], [5, 5, 7, 7]) == 1.0
    with pytest.raises(DimensionError):
        adjusted_rand_index([0, 1], [0])


def test_kmeans_handles_empty_clusters_without_zero_centroids() -> None:
    x = np.repeat(np.eye(3, dtype=np.float32) * 10, 20, axis=0)
    init = np.array([[10, 0, 0], [0, 10, 0], [0, 0, 10], [100, 100, 100]], dtype=np.float32)
    centers, labels, _ = kmeans(x, 4, init=init)
    assert not (np.abs(centers).sum(axis=1) == 0).any()
    assert len(np.unique(labels)) >= 3


def _bank(**kw: object) -> ReasoningBank:
    cfg = PatternConfig(embedding_dim=4, k_clusters=2, min_cluster_size=2, quality_threshold=0.0)
    for k, v in kw.items():
        setattr(cfg, k, v)
    now = [1000.0]
    bank = ReasoningBank(cfg, clock=lambda: now[0])
    bank.now = now  # type: ignore[attr-defined]
    return bank


def _add(bank: ReasoningBank, vec: list[float], q: float, n: int, route: str | None = None) -> None:
    bank.add_batch(np.tile(np.array(vec, np.float32), (n, 1)), np.full(n, q), [route] * n)


def test_extract_find_and_quality_filter() -> None:
    bank = _bank(quality_threshold=0.5)
    _add(bank, [1, 0, 0, 0], 0.8, 5, "a")
    _add(bank, [0, 1, 0, 0], 0.2, 5, "b")  # below threshold: no pattern
    made = bank.extract_patterns()
    assert len(made) == 1
    assert made[0].avg_quality == pytest.approx(0.8)
    assert made[0].model_route == "a"
    assert made[0].cluster_size == 5
    hit = bank.find_similar([0.9, 0.1, 0, 0], 1)
    assert hit[0].id == made[0].id
    assert hit[0].access_count == 1
    assert bank.find_similar([0, 1, 0, 0], 5) == hit  # only one pattern exists
    with pytest.raises(InvalidInputError):
        bank.find_similar([1, 0, 0, 0], 0)


def test_repeated_cycles_merge_instead_of_piling_up() -> None:
    bank = _bank()
    for _ in range(4):
        _add(bank, [1, 0, 0, 0], 0.8, 5)
        _add(bank, [0, 1, 0, 0], 0.6, 5)
        bank.extract_patterns()
    assert bank.pattern_count() == 2
    sizes = sorted(p.cluster_size for p in bank.get_all_patterns())
    assert sizes == [20, 20]


def test_consolidate_and_prune() -> None:
    bank = _bank(merge_similarity=0.999)
    bank.add_pattern(LearnedPattern(0, np.array([1, 0, 0, 0], np.float32), 4, 4.0, 0.9))
    bank.add_pattern(LearnedPattern(0, np.array([1, 0.01, 0, 0], np.float32), 2, 2.0, 0.6))
    bank.add_pattern(LearnedPattern(0, np.array([0, 0, 1, 0], np.float32), 1, 0.1, 0.1))
    assert bank.pattern_count() == 2  # the near-duplicate merged on insert
    assert bank.consolidate(0.0) == 1
    bank2 = _bank()
    bank2.add_pattern(LearnedPattern(0, np.array([1, 0, 0, 0], np.float32), 4, 4.0, 0.9))
    bank2.add_pattern(LearnedPattern(0, np.array([0, 0, 1, 0], np.float32), 1, 0.1, 0.1))
    for p in bank2.get_all_patterns():
        p.last_accessed = 0.0
    bank2.now[0] = 1e9  # type: ignore[attr-defined]
    assert bank2.prune_patterns(min_quality=0.3, min_accesses=1, max_age_secs=10) == 1
    assert [p.avg_quality for p in bank2.get_all_patterns()] == [0.9]


def test_store_drops_oldest_when_full() -> None:
    bank = _bank(max_trajectories=8)
    _add(bank, [1, 0, 0, 0], 0.5, 6)
    _add(bank, [0, 1, 0, 0], 0.5, 6)
    assert bank.trajectory_count() == 8
    assert bank.dropped == 4


def test_store_grows_past_its_initial_allocation() -> None:
    cfg = PatternConfig(embedding_dim=8, k_clusters=3, min_cluster_size=5, quality_threshold=0.0)
    cfg.max_trajectories = 5000
    bank = ReasoningBank(cfg, seed=1)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 8)) * 5
    labels = rng.integers(3, size=3500)
    x = (centres[labels] + rng.standard_normal((3500, 8))).astype(np.float32)
    for start in range(0, 3500, 700):
        bank.add_batch(x[start : start + 700], np.full(700, 0.9), [None] * 700)
    assert bank.trajectory_count() == 3500
    assert bank.dropped == 0
    assert len(bank.extract_patterns()) == 3
    assert adjusted_rand_index(labels, bank.assign(x)) == 1.0
