"""``search_records`` (the column-wise search of hot paths) against ``search``, and the
per-query fast paths under it: int8 query codes, lean int8 decoding, frequency updates."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from ruvector_edge.codec import Int8Quantizer
from ruvector_edge.errors import StorageError
from ruvector_edge.memory import Metric, SearchRecords, Tier, TierPolicy, VectorMemory
from ruvector_edge.memory._tiers import TierIndex

F32 = NDArray[np.float32]
DIM = 24


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _vectors(n: int, seed: int = 0) -> F32:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _memory(tiers: TierPolicy | None, n: int = 300, clock: Clock | None = None) -> VectorMemory:
    mem = VectorMemory("a", 10_000, dim=DIM, tiers=tiers, clock=clock or Clock())
    mem.store_many(
        [f"text {i}" for i in range(n)],
        _vectors(n),
        [{"i": i, "tag": ["x", i % 3]} for i in range(n)],
    )
    return mem


POLICIES = {
    "float32": None,
    "int8": TierPolicy(initial=Tier.COOL, rebalance_every=0),
    "float16": TierPolicy(initial=Tier.WARM, rebalance_every=0),
}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_search_records_returns_what_search_returns(name: str) -> None:
    a = b = _memory(POLICIES[name])  # searches do not change the index
    for q in _vectors(20, seed=5):
        hits = a.search(q, 7)
        rec = b.search_records(q, 7)
        assert isinstance(rec, SearchRecords)
        assert rec.ids == [h.entry.id for h in hits]
        assert rec.contents == [h.entry.content for h in hits]
        assert rec.metadata == [h.entry.metadata for h in hits]
        assert rec.scores == [h.score for h in hits]
        assert rec.vectors.dtype == np.float32
        assert rec.vectors.shape == (7, DIM)
        np.testing.assert_array_equal(rec.vectors, np.stack([h.entry.embedding for h in hits]))


def test_search_records_over_mixed_tiers_matches_search() -> None:
    clock = Clock()
    policy = TierPolicy(half_life_s=100.0, hot=4, warm=1, cool=0.25, rebalance_every=0)
    mem = _memory(policy, clock=clock)
    mem._freq[:100] = 8.0  # HOT
    mem._freq[100:200] = 2.0  # WARM
    mem._freq[200:300] = 0.5  # COOL
    mem.rebalance()
    assert sum(1 for n in mem.stats().tiers.values() if n) == 3
    a = b = mem
    for q in _vectors(10, seed=9):
        hits = a.search(q, 10)
        rec = b.search_records(q, 10)
        assert rec.ids == [h.entry.id for h in hits]
        assert rec.scores == [h.score for h in hits]
        np.testing.assert_array_equal(rec.vectors, np.stack([h.entry.embedding for h in hits]))


def test_search_records_counts_accesses_and_copies_metadata() -> None:
    mem = _memory(POLICIES["int8"])
    q = _vectors(1, seed=3)[0]
    first = mem.search_records(q, 3)
    top = first.ids[0]
    assert mem.get(top).access_count == 1
    mem.search_records(q, 3)
    assert mem.get(top).access_count == 2
    assert mem.stats().searches == 2
    assert mem.ids()[-1] in first.ids  # LRU: hits move to the end of the eviction order
    first.metadata[0]["i"] = -1
    assert mem.get(top).metadata["i"] != -1


def test_search_records_edge_cases() -> None:
    empty = VectorMemory("a", 10, dim=DIM)
    got = empty.search_records(_vectors(1)[0], 5)
    assert got.ids == []
    assert got.scores == []
    assert got.vectors.shape == (0, DIM)
    mem = _memory(None, n=4)
    assert mem.search_records(_vectors(1)[0], 0).ids == []
    assert len(mem.search_records(_vectors(1)[0], 10).ids) == 4  # k above the size
    mem.close()
    with pytest.raises(StorageError):
        mem.search_records(_vectors(1)[0], 1)


def test_touch_decays_frequency_per_hit() -> None:
    clock = Clock(1000.0)
    policy = TierPolicy(half_life_s=10.0, initial=Tier.COOL, rebalance_every=0)
    mem = _memory(policy, n=50, clock=clock)
    q = _vectors(1, seed=4)[0]
    slot = mem._by_id[mem.search_records(q, 1).ids[0]].slot
    f0 = float(mem._freq[slot])  # after that first hit at t=1000
    clock.t += 10.0  # one half-life later
    mem.search_records(q, 1)
    assert mem._freq[slot] == pytest.approx(f0 * 0.5 + 1.0)
    assert mem._ftime[slot] == 1010.0
    clock.t -= 5.0  # a clock that steps back never inflates the frequency
    mem.search(q, 1)
    assert mem._freq[slot] == pytest.approx(f0 * 0.5 + 2.0)


@pytest.mark.parametrize("metric", [Metric.COSINE, Metric.L2, Metric.IP])
def test_int8_single_query_path_matches_the_batch_path(metric: Metric) -> None:
    tier = TierIndex(Tier.COOL, DIM, metric, connectivity=16, expansion_add=64, expansion_search=64)
    x = _vectors(500)
    tier.add(np.arange(500, dtype=np.uint64), x)
    for q in _vectors(20, seed=8):
        k1, s1 = tier.search_one(q, 5)
        k2, s2 = tier.search(q.reshape(1, -1), 5)[0]
        np.testing.assert_array_equal(k1, k2)
        np.testing.assert_allclose(s1, s2, rtol=0, atol=1e-6)


def test_int8_query_codes_are_the_quantizer_codes() -> None:
    from ruvector_edge.memory._tiers import _i8_query

    for q in _vectors(50, seed=2):
        codes, _ = Int8Quantizer().encode(q.reshape(1, -1))
        np.testing.assert_array_equal(_i8_query(q.reshape(1, -1)), codes)


def test_int8_vectors_decode_like_the_quantizer() -> None:
    tier = TierIndex(
        Tier.COOL, DIM, Metric.COSINE, connectivity=16, expansion_add=64, expansion_search=64
    )
    x = _vectors(40)
    tier.add(np.arange(40, dtype=np.uint64), x)
    codes, scales = Int8Quantizer().encode(x)
    keys = np.array([3, 17, 5], dtype=np.uint64)
    got = tier.vectors(keys)
    assert got.dtype == np.float32
    rows = [3, 17, 5]
    np.testing.assert_array_equal(got, Int8Quantizer().decode(codes[rows], scales[rows]))
