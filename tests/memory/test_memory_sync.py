"""Memory sync: deltas, last-writer-wins, tombstones, capacity, corrupt input, CRDT laws."""

from __future__ import annotations

import itertools
import zlib
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ruvector_edge.codec import CompressionLevel, TensorCodec
from ruvector_edge.errors import SyncError
from ruvector_edge.memory import MergeReport, VectorMemory
from ruvector_edge.memory._sync import FORMAT, FORMAT_VERSION, Snapshot, WireEntry

DIM = 8


def _vec(seed: int | str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(str(seed).encode()))
    return rng.standard_normal(DIM).astype(np.float32)


def _state(mem: VectorMemory) -> tuple[dict[str, Any], dict[str, tuple[int, str]]]:
    entries = {}
    for eid in mem.ids():
        e = mem.get(eid)
        entries[eid] = (e.content, e.metadata, e.timestamp, e.owner_agent, e.embedding.tobytes())
    return entries, mem.tombstones()


class Clock:
    """A settable clock (seconds)."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_merge_copies_entries_and_is_idempotent() -> None:
    a = VectorMemory("a", 100)
    ids = [a.store(f"fact {i}", _vec(i), {"i": i}) for i in range(20)]
    b = VectorMemory("b", 100)
    blob = a.serialize()
    report = b.merge_report(blob)
    assert isinstance(report, MergeReport)
    assert (report.applied, report.entries_written, report.stale, report.evicted) == (20, 20, 0, 0)
    assert report.origin == "a"
    assert _state(b) == _state(a)
    assert b.merge(blob) == 0  # the same versions again change nothing
    assert _state(b) == _state(a)
    hit = b.search(_vec(3), 1)[0]
    assert hit.entry.id == ids[3]
    assert hit.entry.owner_agent == "a"
    assert hit.entry.metadata == {"i": 3}


def test_delta_since_version_and_paging() -> None:
    a = VectorMemory("a", 100)
    for i in range(5):
        a.store(f"x{i}", _vec(i))
    v1 = a.version
    later = [a.store(f"y{i}", _vec(100 + i)) for i in range(3)]
    delta = a.export_delta(v1)
    assert (delta.entries, delta.tombstones, delta.version) == (3, 0, a.version)
    b = VectorMemory("b", 100)
    assert b.merge(delta.data) == 3
    assert set(b.ids()) == set(later)
    assert a.export_delta(a.version).entries == 0

    # Paging: a limit of 2 walks the whole history in order, resuming at each version.
    c = VectorMemory("c", 100)
    since, pages = 0, 0
    while True:
        d = a.export_delta(since, limit=2)
        if not d.entries and not d.tombstones:
            break
        c.merge(d.data)
        since, pages = d.version, pages + 1
    assert pages == 4
    assert _state(c) == _state(a)


def test_delete_propagates_as_tombstone_and_blocks_old_copies() -> None:
    clock = Clock()
    a = VectorMemory("a", 100, clock=clock)
    b = VectorMemory("b", 100, clock=clock)
    eid = a.store("secret", _vec(1))
    old_copy = a.serialize()
    b.merge(old_copy)
    clock.t += 1
    v = a.version
    a.delete(eid)
    delta = a.export_delta(v)
    assert (delta.entries, delta.tombstones) == (0, 1)
    assert b.merge(delta.data) == 1
    assert eid not in b
    assert b.tombstones()[eid][1] == "a"
    assert b.merge(old_copy) == 0  # an older version cannot resurrect it
    assert eid not in b
    # A newer write after the delete wins again.
    clock.t += 1
    a.store("back", _vec(2), id=eid)
    b.merge(a.export_delta(a.version - 1).data)
    assert b.get(eid).content == "back"
    assert eid not in b.tombstones()


def test_delete_of_a_merged_entry_wins_even_if_peer_clock_is_ahead() -> None:
    a = VectorMemory("a", 10, clock=Clock(10_000.0))  # a's clock is far ahead
    b = VectorMemory("b", 10, clock=Clock(1.0))
    eid = a.store("x", _vec(1))
    b.merge(a.serialize())
    b.delete(eid)
    assert b.tombstones()[eid][0] > a.get(eid).timestamp
    a.merge(b.serialize())
    assert eid not in a


def test_last_writer_wins_on_timestamp_then_owner() -> None:
    clock = Clock()
    a = VectorMemory("a", 10, clock=clock)
    b = VectorMemory("b", 10, clock=clock)
    a.store("from a", _vec(1), id="k")
    b.store("from b", _vec(2), id="k")  # same timestamp: owner "b" > "a" wins
    a.merge(b.serialize())
    b.merge(a.serialize())
    assert a.get("k").content == b.get("k").content == "from b"
    clock.t += 1
    a.store("newer a", _vec(3), id="k")
    b.merge(a.serialize())
    assert b.get("k").content == "newer a"
    np.testing.assert_array_equal(b.get("k").embedding, _vec(3))


def test_merge_into_full_memory_evicts_by_policy_and_counts() -> None:
    a = VectorMemory("a", 5, eviction="fifo")
    old = [a.store(f"old {i}", _vec(i)) for i in range(5)]
    peer = VectorMemory("p", 10)
    new = [peer.store(f"new {i}", _vec(100 + i)) for i in range(3)]
    report = a.merge_report(peer.serialize())
    assert (report.applied, report.evicted) == (3, 3)
    assert a.stats().evictions == 3
    assert set(a.ids()) == set(old[3:]) | set(new)
    # A blob larger than the whole memory keeps its newest entries and counts the rest.
    big = VectorMemory("q", 50)
    for i in range(12):
        big.store(f"big {i}", _vec(200 + i))
    r = a.merge_report(big.serialize())
    assert r.applied == 12
    assert r.evicted == 5 + 7
    assert len(a) == 5
    assert a.stats().evictions == 3 + 12


def test_merge_updates_and_tombstones_in_one_blob() -> None:
    clock = Clock()
    a = VectorMemory("a", 10, clock=clock)
    b = VectorMemory("b", 10, clock=clock)
    keep = a.store("keep", _vec(1), {"t": 1})
    gone = a.store("gone", _vec(2))
    b.merge(a.serialize())
    clock.t += 1
    a.store("keep v2", _vec(3), {"t": 2}, id=keep)
    a.delete(gone)
    report = b.merge_report(a.serialize())
    assert (report.entries_written, report.tombstones_applied, report.stale) == (1, 1, 0)
    assert b.get(keep).content == "keep v2"
    assert b.search(_vec(3), 5, filter={"t": 2})[0].entry.id == keep
    assert b.search(_vec(3), 5, filter={"t": 1}) == []
    assert gone not in b


def test_merge_rejects_dimension_mismatch_without_change() -> None:
    a = VectorMemory("a", 10)
    a.store("x", np.ones(4, dtype=np.float32))
    b = VectorMemory("b", 10)
    b.store("y", np.ones(8, dtype=np.float32))
    before = _state(b)
    with pytest.raises(SyncError, match="4-dimensional"):
        b.merge(a.serialize())
    assert _state(b) == before


def test_quantized_sync_is_smaller_and_close() -> None:
    a = VectorMemory("a", 1000)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 64)).astype(np.float32)
    a.store_many([f"d{i}" for i in range(500)], x)
    lossless = a.serialize()
    small = a.serialize(level=CompressionLevel.QUANTIZED8)
    assert len(small) < 0.45 * len(lossless)
    b = VectorMemory("b", 1000)
    b.merge(small)
    for eid in a.ids()[:20]:
        np.testing.assert_allclose(b.get(eid).embedding, a.get(eid).embedding, atol=0.05)


def _raw_snapshot(**overrides: Any) -> bytes:
    vec = np.ones((1, DIM), dtype=np.float32)
    fields: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "origin": "evil",
        "dim": DIM,
        "metric": "cosine",
        "since": 0,
        "version": 1,
        "entries": [WireEntry("id1", "content", {}, 5, "evil")],
        "tombstones": [],
        "vectors": TensorCodec().compress_tensor(vec),
    }
    fields.update(overrides)
    return TensorCodec().compress(msgspec.msgpack.encode(Snapshot(**fields)))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"format": "something-else"}, "not a memory sync blob"),
        ({"format_version": 99}, "version 99"),
        ({"vectors": TensorCodec().compress_tensor(np.ones((2, DIM)))}, "shape"),
        ({"vectors": b"garbage"}, "corrupt"),
        ({"entries": [WireEntry("id1", "   ", {}, 5, "evil")]}, "empty content"),
        ({"dim": 0}, "no dimension"),
        (
            {"entries": [], "vectors": TensorCodec().compress_tensor(np.ones((1, DIM)))},
            "no entries",
        ),
        ({"vectors": TensorCodec().compress_tensor(np.zeros((1, DIM)))}, "zero vector"),
    ],
)
def test_semantically_bad_blobs_raise_sync_error(overrides: dict[str, Any], match: str) -> None:
    mem = VectorMemory("me", 10)
    mem.store("mine", _vec(0))
    before = _state(mem)
    with pytest.raises(SyncError, match=match):
        mem.merge(_raw_snapshot(**overrides))
    assert _state(mem) == before


def test_nan_vectors_in_a_hand_made_blob_are_refused() -> None:
    # A lossless blob is not re-scanned by the codec; merge must check finiteness itself.
    good = TensorCodec(CompressionLevel.NONE).compress_tensor(np.ones((1, DIM)))
    header_len = len(good) - 4 - DIM * 4
    payload = bytearray(good[:-4])
    payload[header_len : header_len + 4] = np.float32(np.nan).tobytes()
    crc = zlib.crc32(bytes(payload)).to_bytes(4, "little")
    bad = bytes(payload) + crc
    mem = VectorMemory("me", 10)
    with pytest.raises(SyncError, match="NaN"):
        mem.merge(_raw_snapshot(vectors=bad))
    assert len(mem) == 0


def test_bad_metadata_in_blob_is_refused() -> None:
    ext = msgspec.msgpack.Ext(1, b"x")
    mem = VectorMemory("me", 10)
    with pytest.raises(SyncError, match="metadata"):
        mem.merge(_raw_snapshot(entries=[WireEntry("id1", "c", {"x": ext}, 5, "evil")]))
    assert len(mem) == 0


@settings(max_examples=60)
@given(
    data=st.data(),
    cut=st.integers(min_value=0, max_value=10_000),
)
def test_corrupt_blobs_raise_and_change_nothing(data: st.DataObject, cut: int) -> None:
    src = VectorMemory("src", 50, clock=Clock())
    for i in range(6):
        src.store(f"c{i}", _vec(i), {"i": i}, id=f"id{i}")
    src.delete("id0")
    blob = bytearray(src.serialize())
    kind = data.draw(st.sampled_from(["flip", "truncate", "random", "append"]))
    if kind == "flip":
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        blob = blob[: cut % len(blob)]
    elif kind == "append":
        blob += data.draw(st.binary(min_size=1, max_size=16))
    else:
        blob = bytearray(data.draw(st.binary(max_size=300)))
    mem = VectorMemory("me", 50)
    mem.store("mine", _vec("mine"))
    before = _state(mem)
    with pytest.raises(SyncError):
        mem.merge(bytes(blob))
    assert _state(mem) == before


# ---------------------------------------------------------------- CRDT laws
_op = st.tuples(
    st.sampled_from(["store", "store", "store", "delete"]),
    st.sampled_from(["k1", "k2", "k3", "k4"]),
    st.sampled_from(["alpha", "beta", "gamma"]),
    st.integers(min_value=0, max_value=2),  # clock step (0 = same microsecond again)
)


def _replica(name: str, ops: list[tuple[str, str, str, int]]) -> VectorMemory:
    clock = Clock(100.0)
    mem = VectorMemory(name, 100, clock=clock)
    for kind, key, content, step in ops:
        clock.t += step * 1e-6
        if kind == "store":
            mem.store(content, _vec(content), {"c": content}, id=key)
        elif key in mem:
            mem.delete(key)
    return mem


def _merged(blobs: list[bytes]) -> tuple[dict[str, Any], dict[str, tuple[int, str]]]:
    mem = VectorMemory("observer", 100)
    for b in blobs:
        mem.merge(b)
    return _state(mem)


@settings(max_examples=40)
@given(
    names=st.lists(st.sampled_from(["a", "b"]), min_size=3, max_size=3),
    ops=st.lists(st.lists(_op, max_size=8), min_size=3, max_size=3),
)
def test_merge_is_commutative_associative_idempotent(
    names: list[str], ops: list[list[tuple[str, str, str, int]]]
) -> None:
    # Replicas may share an agent name and a timestamp, which exercises every tie-break.
    blobs = [_replica(n, o).serialize() for n, o in zip(names, ops, strict=True)]
    reference = _merged(blobs)
    for perm in itertools.permutations(blobs):
        assert _merged(list(perm)) == reference
    assert _merged([*blobs, *blobs]) == reference  # idempotent
    # Associative: merge two, ship the merged state, then merge the third.
    ab = VectorMemory("ab", 100)
    ab.merge(blobs[0])
    ab.merge(blobs[1])
    assert _merged([blobs[2], ab.serialize()]) == reference
    # A replica that merges everyone converges to the same state as the observer.
    live = _replica(names[0], ops[0])
    for b in blobs[1:]:
        live.merge(b)
    assert _state(live) == reference
