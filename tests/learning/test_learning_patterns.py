"""PatternStore: columnar statistics, entry order, merged view, deltas, owner protection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ruvector_edge.errors import InvalidInputError, SyncError
from ruvector_edge.learning import EntryBatch, EntryRecord, PatternStore, pattern_confidence


def snapshot(store: PatternStore) -> tuple[object, ...]:
    """Everything observable about a replica, in canonical form."""
    return (store.select().records(), store.view().to_dict(), store.version_vector())


def batch(*records: tuple[str, str, str, float, int, int, int]) -> EntryBatch:
    return EntryBatch.from_records(records)


def test_record_keeps_a_running_mean_and_counts_visits() -> None:
    store = PatternStore()
    for version, reward in enumerate([1.0, 0.0, 0.5, 0.9], start=1):
        store.record("me", "s", "a", reward, version=version, updated_ms=100 + version)
    stats = store.get("s", "a")
    assert stats is not None
    assert stats.value == pytest.approx(0.6)
    assert stats.visits == 4
    assert stats.origins == 1
    assert stats.updated_ms == 104
    assert stats.confidence == pytest.approx(4 / 9)
    assert store.max_version("me") == 4
    [entry] = store.select().records()
    assert entry == EntryRecord("me", "s", "a", entry.value, 4, 4, 104)


def test_record_with_learning_rate_moves_toward_the_reward() -> None:
    store = PatternStore()
    store.record("me", "s", "a", 1.0, version=1, updated_ms=0, learning_rate=0.1)
    store.record("me", "s", "a", 0.0, version=2, updated_ms=0, learning_rate=0.1)
    stats = store.get("s", "a")
    assert stats is not None
    assert stats.value == pytest.approx(0.9)


def test_record_refuses_bad_input_and_non_increasing_versions() -> None:
    store = PatternStore()
    store.record("me", "s", "a", 1.0, version=5, updated_ms=0)
    before = snapshot(store)
    with pytest.raises(InvalidInputError, match="does not exceed"):
        store.record("me", "s", "a", 1.0, version=5, updated_ms=0)
    for bad in (math.nan, math.inf, 1e16):
        with pytest.raises(InvalidInputError, match="finite"):
            store.record("me", "s", "a", bad, version=6, updated_ms=0)
    with pytest.raises(InvalidInputError, match="state"):
        store.record("me", "", "a", 1.0, version=6, updated_ms=0)
    with pytest.raises(InvalidInputError, match="learning_rate"):
        store.record("me", "s", "a", 1.0, version=6, updated_ms=0, learning_rate=1.5)
    assert snapshot(store) == before


def test_merged_view_is_the_visit_weighted_mean_over_origins() -> None:
    store = PatternStore()
    store.merge(
        batch(
            ("a1", "s", "x", 0.5, 2, 1, 10),
            ("a2", "s", "x", 1.0, 3, 7, 30),
            ("a3", "s", "x", 0.2, 5, 2, 20),
            ("a3", "s", "y", -1.0, 1, 3, 5),
        )
    )
    x = store.get("s", "x")
    assert x is not None
    # (2*0.5 + 3*1.0 + 5*0.2) / (2 + 3 + 5) = 5 / 10
    assert x.value == pytest.approx(0.5)
    assert x.visits == 10
    assert x.origins == 3
    assert x.updated_ms == 30
    assert x.confidence == pytest.approx(10 / 15)
    y = store.get("s", "y")
    assert y is not None
    assert (y.value, y.visits, y.origins) == (-1.0, 1, 1)
    assert store.get("s", "z") is None
    assert store.get("nope", "x") is None
    assert store.version_vector() == {"a1": 1, "a2": 7, "a3": 3}
    assert store.totals() == pytest.approx((2, 11, (10 / 15 + 1 / 6) / 2))


def test_single_origin_value_is_exact() -> None:
    store = PatternStore()
    store.merge(batch(("a1", "s", "x", 0.1, 3, 1, 0)))
    stats = store.get("s", "x")
    assert stats is not None
    assert stats.value == 0.1  # not (3 * 0.1) / 3 == 0.10000000000000002


def test_newer_version_wins_and_older_is_ignored() -> None:
    store = PatternStore()
    store.merge(batch(("a", "s", "x", 0.5, 4, 10, 0)))
    stats = store.merge(batch(("a", "s", "x", 0.9, 9, 9, 0)))
    assert stats.applied == 0
    assert store.get("s", "x") == pytest.approx((0.5, 4, 4 / 9, 1, 0))
    stats = store.merge(batch(("a", "s", "x", 0.1, 5, 11, 0)))
    assert (stats.applied, stats.new_keys) == (1, 0)
    got = store.get("s", "x")
    assert got is not None
    assert (got.value, got.visits) == (0.1, 5)
    assert store.version_vector() == {"a": 11}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("a", "s", "x", 0.9, 4, 10, 7), ("a", "s", "x", 0.1, 5, 10, 0)),  # more visits
        (("a", "s", "x", 0.1, 5, 10, 7), ("a", "s", "x", 0.2, 5, 10, 0)),  # larger value
        (("a", "s", "x", 0.2, 5, 10, 0), ("a", "s", "x", 0.2, 5, 10, 1)),  # later update
    ],
)
def test_equal_versions_break_ties_deterministically(
    first: tuple[str, str, str, float, int, int, int],
    second: tuple[str, str, str, float, int, int, int],
) -> None:
    """A buggy peer reusing a version still gets one winner whatever the merge order."""
    one, two = PatternStore(), PatternStore()
    one.merge(batch(first))
    one.merge(batch(second))
    two.merge(batch(second))
    two.merge(batch(first))
    assert snapshot(one) == snapshot(two)
    assert one.select().records() == [EntryRecord(*second)]


def test_negative_zero_is_stored_as_zero() -> None:
    one, two = PatternStore(), PatternStore()
    one.merge(batch(("a", "s", "x", -0.0, 1, 1, 0)))
    two.merge(batch(("a", "s", "x", 0.0, 1, 1, 0)))
    one.merge(batch(("a", "s", "x", 0.0, 1, 1, 0)))
    two.merge(batch(("a", "s", "x", -0.0, 1, 1, 0)))
    assert math.copysign(1.0, one.select().value[0]) == 1.0
    assert snapshot(one) == snapshot(two)


def test_remerging_changes_nothing() -> None:
    store = PatternStore()
    b = batch(("a", "s", "x", 0.5, 2, 1, 0), ("b", "s", "x", 0.7, 3, 4, 0))
    assert store.merge(b).applied == 2
    before = snapshot(store)
    again = store.merge(b)
    assert (again.applied, again.new_keys, again.reissued) == (0, 0, 0)
    assert snapshot(store) == before
    stats = store.get("s", "x")
    assert stats is not None
    assert stats.visits == 5  # not doubled


def test_select_returns_entries_newer_than_a_version_vector() -> None:
    store = PatternStore()
    store.merge(
        batch(
            ("a", "s1", "x", 0.1, 1, 1, 0),
            ("a", "s2", "x", 0.2, 1, 5, 0),
            ("b", "s1", "x", 0.3, 1, 2, 0),
            ("c", "s3", "y", 0.4, 1, 9, 0),
        )
    )
    delta = store.select({"a": 3, "b": 2})
    assert [(r.origin, r.state) for r in delta.records()] == [("a", "s2"), ("c", "s3")]
    # name tables only list what the delta references
    assert sorted(delta.origins) == ["a", "c"]
    assert sorted(delta.states) == ["s2", "s3"]
    assert len(store.select({"a": 99, "b": 99, "c": 99})) == 0
    assert len(store.select({})) == 4
    assert len(store.select({"unknown": 3})) == 4


def test_duplicate_entries_in_one_batch_are_refused() -> None:
    store = PatternStore()
    store.merge(batch(("a", "s", "x", 0.5, 2, 1, 0)))
    before = snapshot(store)
    dup = EntryBatch.from_arrays(
        ["b"],
        ["s", "t"],
        ["x"],
        origin_idx=[0, 0, 0],
        state_idx=[1, 0, 1],
        action_idx=[0, 0, 0],
        value=[0.1, 0.2, 0.3],
        visits=[1, 1, 1],
        version=[1, 2, 3],
        updated_ms=[0, 0, 0],
    )
    with pytest.raises(SyncError, match="twice"):
        store.merge(dup)
    assert snapshot(store) == before
    assert store.get("t", "x") is None


@pytest.mark.parametrize(
    ("column", "bad", "match"),
    [
        ("value", [math.nan], "NaN"),
        ("value", [math.inf], "NaN or infinite"),
        ("value", [2e15], "magnitude"),
        ("visits", [0], "visits"),
        ("visits", [-3], "visits"),
        ("visits", [2**41], "visits"),
        ("version", [0], "versions"),
        ("updated_ms", [-1], "updated_ms"),
        ("state_idx", [5], "name table"),
    ],
)
def test_out_of_range_batches_are_refused_without_changes(
    column: str, bad: list[float], match: str
) -> None:
    store = PatternStore()
    store.merge(batch(("a", "s", "x", 0.5, 2, 1, 0)))
    before = snapshot(store)
    cols: dict[str, list[float]] = {
        "origin_idx": [0],
        "state_idx": [0],
        "action_idx": [0],
        "value": [0.5],
        "visits": [1],
        "version": [9],
        "updated_ms": [0],
    }
    cols[column] = bad
    with pytest.raises(SyncError, match=match):
        store.merge(EntryBatch.from_arrays(["new-origin"], ["new-state"], ["x"], **cols))
    assert snapshot(store) == before
    assert "new-origin" not in store.origins()


def test_malformed_batches_are_refused() -> None:
    store = PatternStore()
    with pytest.raises(SyncError, match="twice"):
        store.merge(
            EntryBatch.from_arrays(
                ["a", "a"],
                ["s"],
                ["x"],
                origin_idx=[0],
                state_idx=[0],
                action_idx=[0],
                value=[0.5],
                visits=[1],
                version=[1],
                updated_ms=[0],
            )
        )
    with pytest.raises(SyncError, match=r"non-empty|characters"):
        store.merge(
            EntryBatch.from_arrays(
                [""],
                ["s"],
                ["x"],
                origin_idx=[0],
                state_idx=[0],
                action_idx=[0],
                value=[0.5],
                visits=[1],
                version=[1],
                updated_ms=[0],
            )
        )
    with pytest.raises(SyncError, match=r"integers|cannot hold"):
        EntryBatch.from_arrays(
            ["a"],
            ["s"],
            ["x"],
            origin_idx=[0.5],
            state_idx=[0],
            action_idx=[0],
            value=[0.5],
            visits=[1],
            version=[1],
            updated_ms=[0],
        )
    with pytest.raises(SyncError, match="range"):
        EntryBatch.from_arrays(
            ["a"],
            ["s"],
            ["x"],
            origin_idx=[-1],
            state_idx=[0],
            action_idx=[0],
            value=[0.5],
            visits=[1],
            version=[1],
            updated_ms=[0],
        )
    ragged = EntryBatch(
        ["a"],
        ["s"],
        ["x"],
        np.zeros(2, np.uint32),
        np.zeros(1, np.uint32),
        np.zeros(1, np.uint32),
        np.zeros(1),
        np.ones(1, np.int64),
        np.ones(1, np.int64),
        np.zeros(1, np.int64),
    )
    with pytest.raises(SyncError, match="origin_idx"):
        store.merge(ragged)
    assert len(store) == 0


def test_growth_and_index_buffer_keep_every_pattern_reachable() -> None:
    """Thousands of single inserts (index buffer folds) interleaved with bulk merges."""
    store = PatternStore(capacity=4)
    n_single = 3000
    for i in range(n_single):
        store.record("me", f"s{i % 97}", f"a{i}", float(i), version=i + 1, updated_ms=i)
    rng = np.random.default_rng(0)
    n_bulk = 5000
    keys = rng.permutation(n_bulk)
    store.merge(
        EntryBatch.from_arrays(
            ["peer"],
            [f"s{i}" for i in range(97)],
            [f"a{i}" for i in range(n_bulk)],
            origin_idx=np.zeros(n_bulk, int),
            state_idx=keys % 97,
            action_idx=keys,
            value=keys * 2.0,
            visits=np.ones(n_bulk, int),
            version=keys + 1,
            updated_ms=np.zeros(n_bulk, int),
        )
    )
    for i in range(n_single, n_single + 2500):
        store.record("me", f"s{i % 97}", f"a{i}", float(i), version=i + 1, updated_ms=i)
    assert store.entry_count == n_single + 2500 + n_bulk
    for i in range(0, n_single + 2500, 7):
        stats = store.get(f"s{i % 97}", f"a{i}")
        assert stats is not None
        if i < n_bulk:  # both "me" (value i, 1 visit) and "peer" (value 2i, 1 visit)
            assert (stats.visits, stats.origins) == (2, 2)
            assert stats.value == pytest.approx(1.5 * i)
        else:
            assert (stats.value, stats.visits) == (float(i), 1)
    values, visits = store.lookup("s5", ["a5", "a102", "zzz", "a5000"])
    assert visits.tolist() == [2, 2, 0, 0]
    assert values.tolist() == [7.5, 153.0, 0.0, 0.0]


def test_copy_is_independent() -> None:
    store = PatternStore()
    store.record("me", "s", "a", 1.0, version=1, updated_ms=0)
    clone = store.copy()
    clone.record("me", "s", "a", 0.0, version=2, updated_ms=0)
    clone.record("me", "s", "b", 0.0, version=3, updated_ms=0)
    assert store.get("s", "a") == pytest.approx((1.0, 1, 1 / 6, 1, 0))
    assert len(store) == 1
    assert len(clone) == 2


def test_owner_entries_cannot_be_overwritten_by_peers() -> None:
    store = PatternStore()
    store.record("me", "s", "x", 0.2, version=1, updated_ms=0)
    store.record("me", "s", "y", 0.4, version=2, updated_ms=0)
    forged = batch(("me", "s", "x", 99.0, 1000, 50, 0), ("peer", "s", "x", 0.6, 1, 3, 0))
    stats = store.merge(forged, owner="me")
    assert stats.applied == 1  # only the peer's own entry
    mine = {(r.state, r.action): r for r in store.select().records() if r.origin == "me"}
    assert (mine["s", "x"].value, mine["s", "x"].visits) == (0.2, 1)
    # Both own entries are re-issued above the forged version, so ours win on the next sync.
    assert mine["s", "x"].version == mine["s", "y"].version == 51
    assert stats.reissued == 2
    assert store.max_version("me") == 51
    x = store.get("s", "x")
    assert x is not None
    assert (x.value, x.visits) == pytest.approx((0.4, 2))
    # The forger's replica takes our re-issued entries.
    forger = PatternStore()
    forger.merge(forged)
    forger.merge(store.select())
    assert forger.select().records() == store.select().records()


def test_stale_own_copy_below_the_counter_reissues_only_that_entry() -> None:
    store = PatternStore()
    for v in range(1, 11):
        store.record("me", "s", f"a{v % 3}", 0.5, version=v, updated_ms=0)
    # latest own versions: a0 9, a1 10, a2 8. A peer holds our a2 entry at version 9:
    # newer than our entry, not above our counter (a copy from before a restart).
    stats = store.merge(batch(("me", "s", "a2", 0.9, 9, 9, 0)), owner="me")
    assert (stats.applied, stats.reissued) == (0, 1)
    versions = {r.action: r.version for r in store.select().records()}
    assert versions == {"a0": 9, "a1": 10, "a2": 11}
    assert store.max_version("me") == 11
    a2 = store.get("s", "a2")
    assert a2 is not None
    assert a2.value == 0.5
    # an older copy of our own entry changes nothing
    stats = store.merge(batch(("me", "s", "a1", 0.9, 9, 2, 0)), owner="me")
    assert (stats.applied, stats.reissued) == (0, 0)


def test_owner_adopts_its_history_for_patterns_it_does_not_hold() -> None:
    """Warm start: a restarted agent gets its old entries back and resumes its counter."""
    old = batch(("me", "s", "x", 0.7, 4, 40, 0), ("me", "s", "y", 0.1, 2, 41, 0))
    store = PatternStore()
    stats = store.merge(old, owner="me")
    assert (stats.applied, stats.new_keys, stats.reissued) == (2, 2, 0)
    assert store.max_version("me") == 41
    assert store.select().records() == old.records()


def test_history_above_the_counter_reissues_what_the_owner_wrote_since_restart() -> None:
    store = PatternStore()
    store.record("me", "s", "new", 0.3, version=1, updated_ms=0)  # written before warm start
    store.record("me", "s", "x", 0.5, version=2, updated_ms=0)
    old = batch(("me", "s", "x", 0.7, 4, 40, 0), ("me", "s", "y", 0.1, 2, 41, 0))
    stats = store.merge(old, owner="me")
    assert (stats.applied, stats.reissued) == (1, 2)  # y adopted; new and x re-issued
    records = {r.action: r for r in store.select().records()}
    assert records["new"].version == records["x"].version == 42
    assert (records["x"].value, records["x"].visits) == (0.5, 1)  # ours, not the old copy
    assert records["y"].version == 41
    # A peer that saw the old history (version vector me=41) still receives both.
    assert {r.action for r in store.select({"me": 41}).records()} == {"new", "x"}


def test_pattern_confidence_formula() -> None:
    assert pattern_confidence([0, 5, 45], prior=5).tolist() == [0.0, 0.5, 0.9]


def test_many_small_merges_use_the_index_buffer_and_stay_consistent() -> None:
    store = PatternStore()
    store.merge(
        EntryBatch.from_arrays(
            ["seed"], ["s"], [f"a{i}" for i in range(2000)],
            origin_idx=np.zeros(2000, int), state_idx=np.zeros(2000, int),
            action_idx=np.arange(2000), value=np.full(2000, 1.0),
            visits=np.ones(2000, int), version=np.arange(1, 2001), updated_ms=np.zeros(2000, int),
        )
    )  # fmt: skip
    for step in range(300):  # 300 deltas of 5 entries: new keys and new origins on old keys
        recs = [("peer", "s", f"a{(step * 5 + j) * 2}", 3.0, 1, step * 5 + j + 1, 0)
                for j in range(5)]  # fmt: skip
        store.merge(batch(*recs))
    assert (store.entry_count, len(store)) == (2000 + 1500, 2000 + 500)
    for i in range(0, 4000, 7):
        stats = store.get("s", f"a{i}")
        seed, peer = i < 2000, i % 2 == 0 and i < 3000
        if seed and peer:
            assert stats is not None
            assert (stats.visits, stats.value) == (2, 2.0)
        elif seed or peer:
            assert stats is not None
            assert (stats.visits, stats.value) == (1, 1.0 if seed else 3.0)
        else:
            assert stats is None
    assert store.version_vector() == {"seed": 2000, "peer": 1500}
