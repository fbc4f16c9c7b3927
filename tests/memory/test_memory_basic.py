"""VectorMemory: store/search/get/delete, scores per metric, errors, eviction, filters."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from ruvector_edge.errors import (
    ConfigError,
    DimensionError,
    EdgeError,
    InvalidInputError,
    NotFoundError,
)
from ruvector_edge.memory import (
    EvictionPolicy,
    Metric,
    SearchHit,
    Tier,
    TierPolicy,
    VectorEntry,
    VectorMemory,
)

F32 = NDArray[np.float32]


def _data(n: int, dim: int, seed: int = 0, clusters: int = 20) -> F32:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    labels = rng.integers(0, clusters, n)
    return (centers[labels] + 0.5 * rng.standard_normal((n, dim))).astype(np.float32)


def _exact_cosine(x: F32, q: F32, k: int) -> NDArray[np.intp]:
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    return np.argsort(-(qn @ xn.T), axis=1, kind="stable")[:, :k]


def test_store_get_roundtrip_keeps_every_field() -> None:
    mem = VectorMemory("agent-1", 10, clock=lambda: 1000.0)
    vec = np.arange(1, 5, dtype=np.float32)
    eid = mem.store("API authentication flow", vec, {"lang": "rust", "n": 3})
    entry = mem.get(eid)
    assert isinstance(entry, VectorEntry)
    assert entry.id == eid
    assert entry.content == "API authentication flow"
    np.testing.assert_array_equal(entry.embedding, vec)
    assert entry.metadata == {"lang": "rust", "n": 3}
    assert entry.timestamp == 1000 * 1_000_000
    assert entry.owner_agent == "agent-1"
    assert entry.access_count == 0
    assert entry.tier is Tier.HOT
    assert mem.dim == 4
    assert eid in mem
    assert len(mem) == 1


def test_store_with_id_replaces_and_timestamps_increase() -> None:
    mem = VectorMemory("a", 10, clock=lambda: 5.0)  # frozen clock: versions must still grow
    mem.store("first", [1.0, 0.0], id="doc")
    t1 = mem.get("doc").timestamp
    mem.store("second", [0.0, 1.0], {"v": 2}, id="doc")
    entry = mem.get("doc")
    assert entry.content == "second"
    assert entry.metadata == {"v": 2}
    assert entry.timestamp > t1
    assert len(mem) == 1
    hit = mem.search([0.0, 1.0], 1)[0]
    assert hit.entry.id == "doc"
    assert hit.score == pytest.approx(1.0)
    assert mem.search([0.0, 1.0], 5, filter={"v": 2})[0].entry.id == "doc"


def test_search_returns_best_first_and_finds_exact_match() -> None:
    x = _data(500, 32)
    mem = VectorMemory("a", 1000)
    ids = mem.store_many([f"doc {i}" for i in range(500)], x)
    hits = mem.search(x[17], 10)
    assert len(hits) == 10
    assert all(isinstance(h, SearchHit) for h in hits)
    assert hits[0].entry.id == ids[17]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    entry, score = hits[1]  # tuple-unpacks like the seed's (content, score)
    assert entry.content.startswith("doc ")
    assert -1.0 <= score <= 1.0


def test_recall_against_exact_search() -> None:
    both = _data(3050, 48, seed=1)
    x, q = both[:3000], both[3000:]
    mem = VectorMemory("a", 5000)
    ids = mem.store_many([str(i) for i in range(3000)], x)
    index_of = {eid: i for i, eid in enumerate(ids)}
    truth = _exact_cosine(x, q, 10)
    hits = mem.search_batch(q, 10)
    recall = np.mean(
        [
            len({index_of[h.entry.id] for h in hs} & set(t.tolist())) / 10
            for hs, t in zip(hits, truth, strict=True)
        ]
    )
    assert recall >= 0.95
    single = [mem.search(qq, 10) for qq in q[:5]]
    for a, b in zip(single, hits[:5], strict=True):
        assert [h.entry.id for h in a] == [h.entry.id for h in b]


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_scores_match_metric_definition(metric: str) -> None:
    x = _data(200, 16, seed=3)
    q = _data(1, 16, seed=4)[0]
    mem = VectorMemory("a", 500, metric=metric)
    ids = mem.store_many([str(i) for i in range(200)], x)
    hits = mem.search(q, 5)
    if metric == "cosine":
        ref = (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
    elif metric == "ip":
        ref = x @ q
    else:
        ref = -np.linalg.norm(x - q, axis=1)
    # HNSW is approximate (and built multi-threaded), so check the score definition per
    # hit and the ranking, not that the graph found exactly the brute-force top 5.
    index_of = {eid: i for i, eid in enumerate(ids)}
    for h in hits:
        assert h.score == pytest.approx(float(ref[index_of[h.entry.id]]), rel=1e-4, abs=1e-4)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    exact_top = {ids[i] for i in np.argsort(-ref)[:5]}
    assert hits[0].entry.id in exact_top
    assert len(exact_top & {h.entry.id for h in hits}) >= 4


def test_access_counts_bumped_only_for_returned_hits() -> None:
    x = _data(100, 8)
    mem = VectorMemory("a", 100)
    ids = mem.store_many([str(i) for i in range(100)], x)
    hits = mem.search(x[0], 3)
    returned = {h.entry.id for h in hits}
    assert all(h.entry.access_count == 1 for h in hits)
    for eid in ids:
        assert mem.get(eid).access_count == (1 if eid in returned else 0)
    mem.search(x[0], 3)
    assert mem.get(hits[0].entry.id).access_count == 2
    assert mem.stats().searches == 2


def test_lru_eviction_keeps_recently_searched_entries() -> None:
    mem = VectorMemory("a", 3, eviction="lru")
    a = mem.store("a", [1.0, 0.0, 0.0])
    b = mem.store("b", [0.0, 1.0, 0.0])
    c = mem.store("c", [0.0, 0.0, 1.0])
    mem.search([1.0, 0.0, 0.0], 1)  # touches a: b is now least recently used
    d = mem.store("d", [1.0, 1.0, 0.0])
    assert set(mem.ids()) == {a, c, d}
    assert b not in mem
    assert mem.stats().evictions == 1
    with pytest.raises(NotFoundError):
        mem.get(b)


def test_lru_order_follows_many_searches() -> None:
    vecs = np.eye(6, dtype=np.float32)
    mem = VectorMemory("a", 6, eviction="lru")
    ids = mem.store_many([f"e{i}" for i in range(6)], vecs)
    for i in (3, 0, 5, 1, 3, 4):  # top-1 searches touch exactly one entry each
        assert mem.search(vecs[i], 1)[0].entry.id == ids[i]
    assert mem.ids() == [ids[2], ids[0], ids[5], ids[1], ids[3], ids[4]]
    mem.store("new1", np.ones(6, dtype=np.float32))
    mem.store("new2", -np.ones(6, dtype=np.float32))
    assert ids[2] not in mem
    assert ids[0] not in mem
    assert all(i in mem for i in (ids[5], ids[1], ids[3], ids[4]))


def test_fifo_eviction_ignores_access() -> None:
    mem = VectorMemory("a", 3, eviction=EvictionPolicy.FIFO)
    a = mem.store("a", [1.0, 0.0, 0.0])
    b = mem.store("b", [0.0, 1.0, 0.0])
    mem.store("c", [0.0, 0.0, 1.0])
    mem.search([1.0, 0.0, 0.0], 3)
    mem.store("d", [1.0, 1.0, 0.0])
    assert a not in mem
    assert b in mem
    mem.store("e", [1.0, 1.0, 1.0])
    assert b not in mem
    assert len(mem) == 3
    assert mem.stats().evictions == 2
    # Evicted slots are reused: the index holds exactly the live entries.
    assert sum(mem.stats().tiers.values()) == 3


def test_store_many_larger_than_capacity_keeps_the_last_entries() -> None:
    mem = VectorMemory("a", 5)
    old = mem.store("old", [1.0, 2.0])
    ids = mem.store_many([f"n{i}" for i in range(8)], np.ones((8, 2)) + np.arange(8)[:, None])
    assert mem.ids() == ids[-5:]
    assert old not in mem
    assert mem.stats().evictions == 4  # 'old' plus the first three of the batch
    assert len(mem.search([1.0, 2.0], 10)) == 5


def test_eviction_picks_victims_without_scanning() -> None:
    # The victim is the front of the order dict: storing into a full memory must not
    # look at more entries than it evicts (the seed scanned all of them).
    mem = VectorMemory("a", 1000, eviction="fifo")
    mem.store_many([str(i) for i in range(1000)], _data(1000, 4))
    seen = 0

    class CountingOrder(OrderedDict[str, None]):
        def __iter__(self) -> Iterator[str]:
            nonlocal seen
            for key in super().__iter__():
                seen += 1
                yield key

    mem._order = CountingOrder(mem._order)
    mem.store("new", [1.0, 2.0, 3.0, 4.0])
    assert seen == 1
    assert len(mem) == 1000


def test_delete_removes_from_search_and_unknown_ids_raise() -> None:
    x = _data(50, 8)
    mem = VectorMemory("a", 100)
    ids = mem.store_many([str(i) for i in range(50)], x)
    mem.delete(ids[7])
    assert ids[7] not in mem
    assert all(h.entry.id != ids[7] for h in mem.search(x[7], 50))
    with pytest.raises(NotFoundError, match="no memory entry"):
        mem.delete(ids[7])
    with pytest.raises(NotFoundError):
        mem.get("nope")
    with pytest.raises(KeyError):  # NotFoundError is also a KeyError
        mem.get("nope")
    assert mem.stats().tombstones == 1


@pytest.mark.parametrize(
    ("content", "embedding", "error", "match"),
    [
        ("", [1.0, 2.0], InvalidInputError, "empty"),
        ("   ", [1.0, 2.0], InvalidInputError, "empty"),
        ("x", [1.0, float("nan")], InvalidInputError, "NaN"),
        ("x", [1.0, float("inf")], InvalidInputError, "NaN or infinity"),
        ("x", [1e39, 1.0], InvalidInputError, "float32"),
        ("x", [0.0, 0.0], InvalidInputError, "zero vector"),
        ("x", [[1.0, 2.0], [3.0, 4.0]], DimensionError, "1-D"),
        ("x", ["a", "b"], InvalidInputError, "real numbers"),
        ("x", [], DimensionError, "no dimensions"),
        (3, [1.0, 2.0], InvalidInputError, "str"),
    ],
)
def test_bad_input_raises_clear_errors(
    content: Any, embedding: Any, error: type[EdgeError], match: str
) -> None:
    mem = VectorMemory("a", 10)
    with pytest.raises(error, match=match):
        mem.store(content, embedding)
    assert len(mem) == 0
    assert mem.dim is None


def test_dimension_mismatch_on_store_and_search() -> None:
    mem = VectorMemory("a", 10, dim=3)
    with pytest.raises(DimensionError, match="dimension 2"):
        mem.store("x", [1.0, 2.0])
    mem.store("x", [1.0, 2.0, 3.0])
    with pytest.raises(DimensionError, match="3-dimensional"):
        mem.search([1.0, 2.0], 1)
    with pytest.raises(DimensionError):
        mem.search(np.ones(4, dtype=np.float32), 1)
    with pytest.raises(DimensionError):
        mem.search([[1.0, 2.0, 3.0]], 1)
    with pytest.raises(InvalidInputError, match="NaN"):
        mem.search(np.array([1.0, np.nan, 0.0], dtype=np.float32), 1)
    with pytest.raises(InvalidInputError, match="top_k"):
        mem.search([1.0, 2.0, 3.0], -1)
    assert mem.search([1.0, 2.0, 3.0], 0) == []


def test_bad_metadata_and_ids() -> None:
    mem = VectorMemory("a", 10)
    with pytest.raises(InvalidInputError, match="keys must be strings"):
        mem.store("x", [1.0], {1: "a"})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError):
        mem.store("x", [1.0], {"a": object()})
    with pytest.raises(InvalidInputError, match="mapping"):
        mem.store("x", [1.0], ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="id"):
        mem.store("x", [1.0], id="")
    with pytest.raises(InvalidInputError, match="twice"):
        mem.store_many(["x", "y"], [[1.0], [2.0]], ids=["same", "same"])
    assert len(mem) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_entries": 0}, "max_entries"),
        ({"max_entries": -5}, "max_entries"),
        ({"dim": 0}, "dim"),
        ({"metric": "hamming"}, "unknown metric"),
        ({"eviction": "random"}, "eviction"),
        ({"connectivity": 1}, "connectivity"),
        ({"ef_search": 0}, "ef_search"),
    ],
)
def test_bad_config_raises_config_error(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"max_entries": 10, **kwargs}
    with pytest.raises(ConfigError, match=match):
        VectorMemory("a", **args)


def test_tier_policy_validation() -> None:
    with pytest.raises(ConfigError, match="hot > warm > cool"):
        TierPolicy(hot=1.0, warm=2.0)
    with pytest.raises(ConfigError, match="half_life"):
        TierPolicy(half_life_s=0)
    with pytest.raises(ConfigError, match="TierPolicy"):
        VectorMemory("a", 10).rebalance()


def test_metric_aliases() -> None:
    assert Metric.parse("cos") is Metric.COSINE
    assert Metric.parse("l2sq") is Metric.L2
    assert Metric.parse("dot") is Metric.IP


def test_returned_metadata_is_a_copy() -> None:
    mem = VectorMemory("a", 10)
    eid = mem.store("x", [1.0, 0.0], {"tag": "a"})
    mem.get(eid).metadata["tag"] = "b"
    mem.search([1.0, 0.0], 1)[0].entry.metadata["tag"] = "c"
    assert mem.get(eid).metadata == {"tag": "a"}
    assert mem.search([1.0, 0.0], 1, filter={"tag": "a"})[0].entry.id == eid


# ---------------------------------------------------------------- filters
@pytest.fixture(scope="module")
def filtered_memory() -> tuple[VectorMemory, F32, list[str]]:
    x = _data(4020, 32, seed=7)[:4000]
    mem = VectorMemory("a", 5000, exact_filter_limit=100)
    metas = [
        {"cat": i % 10, "rare": i % 400 == 0, "lang": ("rust", "ts", "py")[i % 3], "tags": ["x"]}
        for i in range(4000)
    ]
    ids = mem.store_many([f"d{i}" for i in range(4000)], x, metas)
    return mem, x, ids


def _filtered_truth(x: F32, q: F32, mask: NDArray[np.bool_], k: int) -> list[int]:
    idx = np.nonzero(mask)[0]
    sims = (x[idx] @ q) / (np.linalg.norm(x[idx], axis=1) * np.linalg.norm(q))
    out: list[int] = idx[np.argsort(-sims)[:k]].tolist()
    return out


@pytest.mark.parametrize(
    ("flt", "mask_fn"),
    [
        ({"cat": 3}, lambda i: i % 10 == 3),
        ({"cat": [1, 2]}, lambda i: i % 10 in (1, 2)),
        ({"cat": 3, "lang": "ts"}, lambda i: i % 10 == 3 and i % 3 == 1),
        ({"rare": True}, lambda i: i % 400 == 0),  # 10 matches: exact path
        ({"lang": {"rust", "py"}}, lambda i: i % 3 != 1),
    ],
)
def test_filtered_search_returns_k_matching_hits_with_high_recall(
    filtered_memory: tuple[VectorMemory, F32, list[str]], flt: dict[str, Any], mask_fn: Any
) -> None:
    mem, x, ids = filtered_memory
    mask = np.array([mask_fn(i) for i in range(len(x))])
    index_of = {eid: i for i, eid in enumerate(ids)}
    queries = _data(4020, 32, seed=7)[4000:]
    recalls = []
    for q in queries:
        hits = mem.search(q, 10, filter=flt)
        want = min(10, int(mask.sum()))
        assert len(hits) == want
        got = [index_of[h.entry.id] for h in hits]
        assert all(mask[i] for i in got)
        truth = _filtered_truth(x, q, mask, 10)
        recalls.append(len(set(got) & set(truth)) / len(truth))
    assert np.mean(recalls) >= 0.9


def test_filter_edge_cases(filtered_memory: tuple[VectorMemory, F32, list[str]]) -> None:
    mem, x, _ = filtered_memory
    assert mem.search(x[0], 10, filter={"missing": 1}) == []
    assert mem.search(x[0], 10, filter={"cat": 99}) == []
    assert mem.search(x[0], 10, filter={"cat": []}) == []
    assert mem.search(x[0], 10, filter={"tags": "x"}) == []  # list values are not indexed
    assert len(mem.search(x[0], 10, filter={"cat": 1.0})) == 10  # 1 == 1.0
    assert mem.search(x[0], 10, filter={"rare": 1}) == []  # True is not 1
    with pytest.raises(InvalidInputError, match="filter value"):
        mem.search(x[0], 10, filter={"cat": {"$gt": 3}})
    batch = mem.search_batch(x[:3], 5, filter={"cat": 3})
    assert [len(b) for b in batch] == [5, 5, 5]
    assert all(h.entry.metadata["cat"] == 3 for b in batch for h in b)


def test_filter_follows_updates_and_deletes() -> None:
    mem = VectorMemory("a", 10)
    eid = mem.store("x", [1.0, 0.0], {"k": "old"})
    mem.store("x", [1.0, 0.0], {"k": "new"}, id=eid)
    assert mem.search([1.0, 0.0], 5, filter={"k": "old"}) == []
    assert len(mem.search([1.0, 0.0], 5, filter={"k": "new"})) == 1
    mem.delete(eid)
    assert mem.search([1.0, 0.0], 5, filter={"k": "new"}) == []


def test_filtered_search_falls_back_when_graph_misses_matches() -> None:
    # Matches far from the query in a big memory: oversampling alone may not reach them,
    # the exact fallback must still return k hits.
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    x[:, 0] = np.abs(x[:, 0]) + 3
    x[:50, 0] = -np.abs(x[:50, 0]) - 3  # the matching ones point the other way
    metas = [{"m": i < 50} for i in range(3000)]
    mem = VectorMemory("a", 3000, exact_filter_limit=10)
    mem.store_many([str(i) for i in range(3000)], x, metas)
    q = np.zeros(16, dtype=np.float32)
    q[0] = 1.0
    hits = mem.search(q, 20, filter={"m": True})
    assert len(hits) == 20
    assert all(h.entry.metadata["m"] is True for h in hits)
    idx = np.arange(50)
    sims = x[idx, 0] / np.linalg.norm(x[idx], axis=1)
    truth = set(np.argsort(-sims)[:20].tolist())
    assert {int(h.entry.content) for h in hits} == truth


_ops = st.lists(
    st.tuples(st.sampled_from(["store", "store", "search", "search", "delete"]), st.integers(0, 5)),
    max_size=40,
)


@settings(max_examples=150)
@given(capacity=st.integers(1, 4), policy=st.sampled_from(["lru", "fifo"]), ops=_ops)
def test_eviction_order_matches_a_reference_model(
    capacity: int, policy: str, ops: list[tuple[str, int]]
) -> None:
    basis = np.eye(8, dtype=np.float32)
    mem = VectorMemory("a", capacity, eviction=policy)
    model: OrderedDict[str, None] = OrderedDict()
    evictions = 0
    for kind, k in ops:
        key = f"k{k}"
        if kind == "store":
            if key in model:
                if policy == "lru":
                    model.move_to_end(key)
            else:
                if len(model) == capacity:
                    model.popitem(last=False)
                    evictions += 1
                model[key] = None
            mem.store(f"content {k}", basis[k], id=key)
        elif kind == "search" and key in model:
            assert mem.search(basis[k], 1)[0].entry.id == key
            if policy == "lru":
                model.move_to_end(key)
        elif kind == "delete" and key in model:
            del model[key]
            mem.delete(key)
        # Membership only: ids() would apply the recorded LRU uses early, and the point
        # is that writes apply them in the right order on their own.
        assert set(mem._by_id) == set(model)
    assert mem.ids() == list(model)
    assert mem.stats().evictions == evictions
    assert sum(mem.stats().tiers.values()) == len(model)


def test_set_ef_search_changes_the_live_beam_width() -> None:
    rng = np.random.default_rng(5)
    data = rng.normal(size=(3000, 32)).astype(np.float32)
    queries = rng.normal(size=(40, 32)).astype(np.float32)
    mem = VectorMemory("ef", max_entries=5000, connectivity=4, ef_construction=16)
    ids = mem.store_many([str(i) for i in range(len(data))], data)
    exact = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (
        data / np.linalg.norm(data, axis=1, keepdims=True)
    ).T
    truth = [set(np.argsort(-row)[:10].tolist()) for row in exact]
    index_of = {mid: i for i, mid in enumerate(ids)}

    def recall() -> float:
        got = [{index_of[h.entry.id] for h in mem.search(q, 10)} for q in queries]
        return float(np.mean([len(g & t) / 10 for g, t in zip(got, truth, strict=True)]))

    mem.set_ef_search(10)
    low = recall()
    mem.set_ef_search(400)
    assert mem.ef_search == 400
    assert recall() > low
    with pytest.raises(ConfigError):
        mem.set_ef_search(0)
