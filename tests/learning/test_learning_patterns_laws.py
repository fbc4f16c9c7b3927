"""CRDT laws of PatternStore.merge, property-tested with hypothesis.

Replicas hold arbitrary entries (ties, equal versions, negative zero included), so the laws
are checked against buggy peers too; bit-exact equality of the merged views is expected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from ruvector_edge.learning import EntryBatch, EntryRecord, PatternStore

Record = tuple[str, str, str, float, int, int, int]

values = st.one_of(
    st.sampled_from([0.0, -0.0, 0.1, 0.2, 1 / 3, -1.5, 7.0]),
    st.floats(-10, 10, allow_nan=False),
)
records = st.tuples(
    st.sampled_from(["o1", "o2", "o3", "o4"]),
    st.sampled_from(["s1", "s2"]),
    st.sampled_from(["x", "y"]),
    values,
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(0, 2),
)
batches = st.lists(records, max_size=10, unique_by=lambda r: r[:3]).map(EntryBatch.from_records)


@st.composite
def replicas(draw: st.DrawFn) -> PatternStore:
    store = PatternStore()
    for b in draw(st.lists(batches, max_size=3)):
        store.merge(b)
    return store


def snapshot(store: PatternStore) -> tuple[object, ...]:
    return (store.select().records(), store.view().to_dict(), store.version_vector())


def union(*stores: PatternStore) -> PatternStore:
    out = stores[0].copy()
    for other in stores[1:]:
        out.merge(other.select())
    return out


@given(replicas(), replicas())
def test_merge_is_commutative(a: PatternStore, b: PatternStore) -> None:
    assert snapshot(union(a, b)) == snapshot(union(b, a))


@given(replicas(), replicas(), replicas())
def test_merge_is_associative(a: PatternStore, b: PatternStore, c: PatternStore) -> None:
    assert snapshot(union(union(a, b), c)) == snapshot(union(a, union(b, c)))


@given(replicas(), replicas())
def test_merge_is_idempotent(a: PatternStore, b: PatternStore) -> None:
    assert snapshot(union(a, a)) == snapshot(a)
    ab = union(a, b)
    assert snapshot(union(ab, b)) == snapshot(ab)
    assert snapshot(union(ab, a)) == snapshot(ab)


def _key(r: EntryRecord) -> tuple[int, int, float, int]:
    return (r.version, r.visits, r.value + 0.0, r.updated_ms)


@given(st.lists(batches, min_size=1, max_size=4))
def test_merge_keeps_the_greatest_entry_and_the_weighted_mean(bs: Sequence[EntryBatch]) -> None:
    store = PatternStore()
    best: dict[tuple[str, str, str], EntryRecord] = {}
    for b in bs:
        store.merge(b)
        for r in b.records():
            k = (r.origin, r.state, r.action)
            if k not in best or _key(r) > _key(best[k]):
                best[k] = r
    got = store.select().records()
    assert [(r.origin, r.state, r.action, *_key(r)) for r in got] == sorted(
        (*k, *_key(r)) for k, r in best.items()
    )
    view = store.view().to_dict()
    assert set(view) == {(s, a) for _, s, a in best}
    for (s, a), stats in view.items():
        entries = [r for (_, s2, a2), r in best.items() if (s2, a2) == (s, a)]
        visits = sum(r.visits for r in entries)
        assert stats.visits == visits
        assert stats.origins == len(entries)
        assert math.isclose(
            stats.value, math.fsum(r.visits * r.value for r in entries) / visits, abs_tol=1e-12
        )
        assert stats.updated_ms == max(r.updated_ms for r in entries)


# -- honest histories: each origin bumps its own counter; replicas merge snapshots ----------

ops = st.lists(
    st.tuples(
        st.sampled_from(["o1", "o2", "o3", "o4", "o5"]),
        st.sampled_from(["s1", "s2"]),
        st.sampled_from(["x", "y", "z"]),
        st.floats(-1, 1, allow_nan=False),
    ),
    min_size=1,
    max_size=25,
)


def histories(history: list[tuple[str, str, str, float]]) -> list[PatternStore]:
    """Snapshots of every origin after each of its updates."""
    origins: dict[str, PatternStore] = {}
    snaps = []
    for step, (origin, state, action, reward) in enumerate(history):
        store = origins.setdefault(origin, PatternStore())
        version = store.max_version(origin) + 1
        store.record(origin, state, action, reward, version=version, updated_ms=step)
        snaps.append(store.copy())
    return snaps


@settings(max_examples=40)
@given(ops, st.data())
def test_delta_against_a_version_vector_equals_full_merge(
    history: list[tuple[str, str, str, float]], data: st.DataObject
) -> None:
    snaps = histories(history)
    pick = st.lists(st.sampled_from(snaps), min_size=1, max_size=4)
    r1 = union(*data.draw(pick))
    r2 = union(*data.draw(pick))
    full = union(r1, r2)
    via_delta = r1.copy()
    via_delta.merge(r2.select(r1.version_vector()))
    assert snapshot(via_delta) == snapshot(full)


@settings(max_examples=40)
@given(ops)
def test_local_update_path_matches_the_merge_path_bit_for_bit(
    history: list[tuple[str, str, str, float]],
) -> None:
    """record() recomputes one key with scalar code; merge() vectorized. Same bits."""
    direct = PatternStore()
    counters: dict[str, int] = {}
    for step, (origin, state, action, reward) in enumerate(history):
        counters[origin] = counters.get(origin, 0) + 1
        direct.record(origin, state, action, reward, version=counters[origin], updated_ms=step)
    merged = PatternStore()
    merged.merge(direct.select())
    assert snapshot(merged) == snapshot(direct)
