"""Adaptive tiers: movement by decayed access frequency, memory per tier, accuracy per tier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from ruvector_edge.memory import Tier, TierPolicy, VectorMemory

F32 = NDArray[np.float32]


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _clustered(n: int, dim: int, seed: int = 0) -> F32:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(2, n // 50), dim)).astype(np.float32)
    return (centers[rng.integers(0, len(centers), n)] + 0.5 * rng.standard_normal((n, dim))).astype(
        np.float32
    )


def test_tier_thresholds() -> None:
    p = TierPolicy(hot=4, warm=1, cool=0.25)
    got = p.tiers_for(np.array([10, 4, 3.9, 1, 0.5, 0.25, 0.1, 0]))
    assert got.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert TierPolicy(initial=Tier.WARM).initial_frequency() == 1.0


def test_entries_sink_one_tier_per_threshold_and_hot_ones_stay() -> None:
    clock = Clock()
    policy = TierPolicy(half_life_s=100.0, hot=4, warm=1, cool=0.25, rebalance_every=0)
    x = _clustered(200, 32)
    mem = VectorMemory("a", 1000, tiers=policy, clock=clock)
    ids = mem.store_many([str(i) for i in range(200)], x)
    assert mem.stats().tiers[Tier.HOT] == 200
    busy = ids[0]
    for _ in range(12):  # keep one entry busy: f tends to 1 / (1 - 2**-0.25) = 6.3
        clock.t += 25
        mem.search(x[0], 1)
    # 300 s = 3 half-lives after storing: f = 4/8 = 0.5 -> COOL for the idle ones.
    report = mem.rebalance()
    assert report.counts[Tier.COOL] == 199
    assert report.moved == {Tier.COOL: 199}
    assert mem.get(busy).tier is Tier.HOT
    clock.t += 200  # f = 0.125 -> COLD
    assert mem.rebalance().counts[Tier.COLD] == 199
    assert mem.get(ids[1]).tier is Tier.COLD
    # Searching an entry often brings it back up.
    for _ in range(8):
        mem.search(x[1], 1)
    mem.rebalance()
    assert mem.get(ids[1]).tier is Tier.HOT
    assert mem.get(busy).tier is Tier.WARM  # idle for 2 half-lives: 6.0 / 4 = 1.5


def test_warm_tier_entries_decay_from_their_threshold() -> None:
    clock = Clock()
    policy = TierPolicy(half_life_s=10.0, initial=Tier.WARM, rebalance_every=0)
    mem = VectorMemory("a", 10, tiers=policy, clock=clock)
    eid = mem.store("x", [1.0, 2.0, 3.0])
    assert mem.get(eid).tier is Tier.WARM
    clock.t += 10  # f = 0.5
    mem.rebalance()
    assert mem.get(eid).tier is Tier.COOL


def test_automatic_rebalance_every_n_writes() -> None:
    clock = Clock()
    policy = TierPolicy(half_life_s=1.0, rebalance_every=10)
    mem = VectorMemory("a", 100, tiers=policy, clock=clock)
    rng = np.random.default_rng(0)
    first = mem.store_many([str(i) for i in range(5)], rng.standard_normal((5, 8)))
    clock.t += 100
    mem.store_many([f"n{i}" for i in range(5)], rng.standard_normal((5, 8)))  # 10 writes
    assert all(mem.get(e).tier is Tier.COLD for e in first)
    assert mem.stats().tiers[Tier.HOT] == 5


def _memory_in_tier(tier: Tier, x: F32, metric: str = "cosine") -> VectorMemory:
    mem = VectorMemory(
        "a", len(x) + 10, metric=metric, tiers=TierPolicy(initial=tier, rebalance_every=0)
    )
    mem.store_many([str(i) for i in range(len(x))], x, ids=[str(i) for i in range(len(x))])
    assert mem.stats().tiers[tier] == len(x)
    return mem


@pytest.fixture(scope="module")
def corpus() -> tuple[F32, F32, NDArray[np.intp]]:
    both = _clustered(2040, 64, seed=5)
    x, q = both[:2000], both[2000:]
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    truth = np.argsort(-(qn @ xn.T), axis=1)[:, :10]
    return x, q, truth


@pytest.mark.parametrize(
    ("tier", "min_recall"),
    [(Tier.HOT, 0.95), (Tier.WARM, 0.95), (Tier.COOL, 0.9), (Tier.COLD, 0.2)],
)
def test_recall_per_tier_against_exact_float32(
    corpus: tuple[F32, F32, NDArray[np.intp]], tier: Tier, min_recall: float
) -> None:
    x, q, truth = corpus
    mem = _memory_in_tier(tier, x)
    hits = mem.search_batch(q, 10)
    recall = np.mean(
        [
            len({int(h.entry.content) for h in hs} & set(t.tolist())) / 10
            for hs, t in zip(hits, truth, strict=True)
        ]
    )
    assert recall >= min_recall
    # Random guessing would give 10/2000: even the 1-bit tier is far above it.
    assert all(h.entry.tier is tier for hs in hits for h in hs)


def test_memory_per_entry_shrinks_with_each_tier(corpus: tuple[F32, F32, NDArray[np.intp]]) -> None:
    x, _, _ = corpus
    per_entry = {t: _memory_in_tier(t, x).stats().bytes_per_entry[t] for t in Tier}
    dim = x.shape[1]
    assert per_entry[Tier.HOT] > per_entry[Tier.WARM] > per_entry[Tier.COOL] > per_entry[Tier.COLD]
    # The vector payload shrinks by the expected amount (the graph links are the same).
    assert per_entry[Tier.HOT] - per_entry[Tier.WARM] == pytest.approx(2 * dim, abs=1)
    assert per_entry[Tier.WARM] - per_entry[Tier.COOL] == pytest.approx(dim - 4, abs=1)
    assert per_entry[Tier.COOL] - per_entry[Tier.COLD] == pytest.approx(dim - dim // 8 - 4, abs=1)


def test_decoded_embeddings_per_tier(corpus: tuple[F32, F32, NDArray[np.intp]]) -> None:
    x, _, _ = corpus
    sample = x[:50]
    for tier in Tier:
        mem = _memory_in_tier(tier, sample)
        got = np.stack([mem.get(str(i)).embedding for i in range(50)])
        if tier is Tier.HOT:
            np.testing.assert_array_equal(got, sample)
        elif tier is Tier.WARM:
            np.testing.assert_allclose(got, sample, rtol=1e-3, atol=1e-4)
        elif tier is Tier.COOL:
            scale = np.abs(sample).max(axis=1, keepdims=True) / 127
            assert (np.abs(got - sample) <= scale / 2 + 1e-6).all()
        else:
            assert ((got > 0) == (sample > 0)).all()
            np.testing.assert_allclose(
                np.abs(got).mean(axis=1), np.abs(sample).mean(axis=1), rtol=1e-5
            )


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_mixed_tiers_search_finds_exact_matches_with_comparable_scores(metric: str) -> None:
    clock = Clock()
    x = _clustered(400, 32, seed=9)
    mem = VectorMemory(
        "a", 1000, metric=metric, clock=clock, tiers=TierPolicy(half_life_s=10, rebalance_every=0)
    )
    mem.store_many([str(i) for i in range(400)], x)
    # Put a quarter of the entries in each tier by giving them different access histories.
    for t, group in zip(Tier, np.array_split(np.arange(400), 4), strict=True):
        mem._freq[group] = (8.0, 2.0, 0.5, 0.0)[t.value]
        mem._ftime[group] = clock.t
    counts = mem.rebalance().counts
    assert all(counts[t] == 100 for t in Tier)
    for i in (5, 150, 250, 390):  # one per tier
        hits = mem.search(x[i], 20)
        self_hit = [h for h in hits if h.entry.content == str(i)]
        assert self_hit, f"entry {i} not found by its own vector"
        score = self_hit[0].score
        norm2 = float(x[i] @ x[i])
        if metric == "cosine":
            assert hits[0].entry.content == str(i)
            assert score == pytest.approx(1.0, abs=2e-3)
        elif metric == "l2":
            assert hits[0].entry.content == str(i)
            assert -0.05 * np.sqrt(norm2) <= score <= 0
        else:  # ip: the exact match need not be first, but its score must be right
            assert score == pytest.approx(norm2, rel=1e-2)
    # Filtered search across tiers still returns k hits, all matching.
    mem2_hits = mem.search(x[0], 12, filter={"nope": 1})
    assert mem2_hits == []


def test_filtered_search_across_tiers() -> None:
    clock = Clock()
    x = _clustered(600, 16, seed=3)
    mem = VectorMemory(
        "a",
        1000,
        clock=clock,
        exact_filter_limit=10,
        tiers=TierPolicy(half_life_s=10, rebalance_every=0),
    )
    mem.store_many([str(i) for i in range(600)], x, [{"g": i % 4} for i in range(600)])
    mem._freq[:300] = 0.0
    mem.rebalance()
    assert mem.stats().tiers[Tier.COLD] == 300
    for g in range(4):
        hits = mem.search(x[1], 15, filter={"g": g})
        assert len(hits) == 15
        assert {h.entry.metadata["g"] for h in hits} == {g}
        assert {h.entry.tier for h in hits} <= {Tier.HOT, Tier.COLD}
    hits = mem.search(x[1], 15, filter={"g": [1]})
    assert int(hits[0].entry.content) % 4 == 1


def test_promotion_restores_float32_originals_from_disk(tmp_path: Path) -> None:
    clock = Clock()
    x = _clustered(30, 16)
    policy = TierPolicy(half_life_s=10, rebalance_every=0)
    disk = VectorMemory.open(tmp_path, "a", tiers=policy, clock=clock)
    ram = VectorMemory("b", 100, tiers=policy, clock=clock)
    for mem in (disk, ram):
        mem.store_many([str(i) for i in range(30)], x, ids=[f"e{i}" for i in range(30)])
    clock.t += 1000
    for mem in (disk, ram):
        mem.rebalance()
        assert mem.get("e3").tier is Tier.COLD
        for _ in range(6):
            mem.search(x[3], 1)
        mem.rebalance()
        assert mem.get("e3").tier is Tier.HOT
    np.testing.assert_array_equal(disk.get("e3").embedding, x[3])  # exact again
    lossy = ram.get("e3").embedding  # RAM-only: the 1-bit copy is all that was left
    assert not np.array_equal(lossy, x[3])
    assert ((lossy > 0) == (x[3] > 0)).all()
    # Sync from the persistent memory ships the originals even for cold entries.
    other = VectorMemory("c", 100)
    other.merge(disk.serialize())
    np.testing.assert_array_equal(other.get("e7").embedding, x[7])
