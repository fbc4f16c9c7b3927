"""IntelligenceSync: the seed API, blob format, deltas, own-entry rules, signatures, errors."""

from __future__ import annotations

import math
import threading
from typing import Any, Literal

import numpy as np
import pytest

from ruvector_edge.codec import CompressionLevel, TensorCodec
from ruvector_edge.errors import AuthError, CodecError, EdgeError, InvalidInputError, SyncError
from ruvector_edge.identity import Identity
from ruvector_edge.learning import (
    PATTERN_BLOB_TAG,
    EntryBatch,
    IntelligenceSync,
    MergeResult,
    PatternStats,
    SwarmStats,
    action_confidence,
    inspect_pattern_blob,
)
from ruvector_edge.learning import sync as sync_mod


def assert_best(got: tuple[str, float] | None, action: str, confidence: float) -> None:
    assert got is not None
    assert got[0] == action
    assert got[1] == pytest.approx(confidence)


def clock(ms: int = 1_000) -> Any:
    return lambda: ms


def observable(s: IntelligenceSync) -> tuple[object, ...]:
    return (s.entries(), s.get_state(), s.version_vector(), s.local_version)


def craft(
    sender: str,
    records: list[tuple[Any, ...]] | EntryBatch,
    *,
    kind: Literal["state", "delta"] = "state",
    vv: dict[str, int] | None = None,
    since: dict[str, int] | None = None,
    local_version: int | None = None,
) -> bytes:
    """A blob written directly by the encoder, bypassing the replica's invariants."""
    batch = records if isinstance(records, EntryBatch) else EntryBatch.from_records(records)
    if vv is None:
        vv = {}
        for o, v in zip(batch.origin_idx.tolist(), batch.version.tolist(), strict=True):
            vv[batch.origins[o]] = max(vv.get(batch.origins[o], 0), v)
    return sync_mod._encode_blob(
        TensorCodec(),
        batch,
        kind=kind,
        sender=sender,
        local_version=vv.get(sender, 0) if local_version is None else local_version,
        version_vector=vv,
        since=since or {},
        created_ms=0,
        identity=None,
    )


# -- the seed's example ----------------------------------------------------------------


def test_seed_example() -> None:
    sync = IntelligenceSync("agent-001")
    sync.update_pattern("edit_rs", "rust-developer", 0.95)
    data = sync.serialize_state()
    assert isinstance(data, bytes)

    peer = IntelligenceSync("peer-002")
    peer.update_pattern("edit_rs", "rust-developer", 0.75)
    peer.update_pattern("edit_ts", "typescript-developer", 0.9)
    result = sync.merge_peer_state("peer-002", peer.serialize_state())
    assert result == MergeResult("peer-002", merged_patterns=2, new_patterns=1, local_version=1)

    best = sync.get_best_action("edit_rs", ["coder", "rust-developer"])
    assert best is not None
    assert best[0] == "rust-developer"
    assert 0.0 < best[1] < 1.0
    stats = sync.get_swarm_stats()
    assert (stats.total_agents, stats.total_patterns, stats.total_visits) == (2, 2, 3)
    rs = sync.get_pattern("edit_rs", "rust-developer")
    assert rs is not None
    assert (rs.value, rs.visits, rs.origins) == pytest.approx((0.85, 2, 2))

    # the peer learns ours too, and both converge
    peer.merge_peer_state("agent-001", data)
    assert peer.get_state() == sync.get_state()


def test_update_pattern_is_a_running_mean_that_bumps_the_version() -> None:
    sync = IntelligenceSync("a", clock=clock(42))
    assert sync.local_version == 0
    for reward in (1.0, 0.0, 0.8):
        sync.update_pattern("s", "x", reward)
    sync.update_pattern("s", "y", -0.5)
    assert sync.local_version == 4
    assert sync.version_vector() == {"a": 4}
    assert sync.get_state() == {
        ("s", "x"): PatternStats(0.6, 3, 3 / 8, 1, 42),
        ("s", "y"): PatternStats(-0.5, 1, 1 / 6, 1, 42),
    }
    versions = {r.action: r.version for r in sync.entries()}
    assert versions == {"x": 3, "y": 4}


def test_update_pattern_with_learning_rate() -> None:
    sync = IntelligenceSync("a", learning_rate=0.5)
    for reward in (1.0, 0.0, 0.0):
        sync.update_pattern("s", "x", reward)
    got = sync.get_pattern("s", "x")
    assert got is not None
    assert got.value == pytest.approx(0.25)


def test_update_pattern_rejects_bad_input() -> None:
    sync = IntelligenceSync("a")
    for bad in (math.nan, -math.inf, "0.5", True):
        with pytest.raises(InvalidInputError):
            sync.update_pattern("s", "x", bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        sync.update_pattern("", "x", 1.0)
    with pytest.raises(InvalidInputError):
        sync.update_pattern("s", "x" * 5000, 1.0)
    assert sync.local_version == 0
    with pytest.raises(InvalidInputError):
        IntelligenceSync("")
    with pytest.raises(InvalidInputError):
        IntelligenceSync("a", learning_rate=0.0)


# -- get_best_action -------------------------------------------------------------------


def test_get_best_action_returns_none_without_data() -> None:
    sync = IntelligenceSync("a")
    assert sync.get_best_action("s", ["x", "y"]) is None
    sync.update_pattern("s", "z", 1.0)
    assert sync.get_best_action("s", ["x", "y"]) is None
    assert sync.get_best_action("other", ["z"]) is None
    assert sync.get_best_action("s", []) is None


def test_get_best_action_confidence_formula() -> None:
    sync = IntelligenceSync("a")
    for _ in range(5):
        sync.update_pattern("s", "good", 0.9)
    sync.update_pattern("s", "bad", 0.8)
    # n=5, K=5 -> evidence 0.5; gap 0.1 = margin scale -> margin term 0.75
    assert_best(sync.get_best_action("s", ["bad", "good", "unknown"]), "good", 0.375)
    # only one candidate with data: evidence alone
    assert_best(sync.get_best_action("s", ["good", "unknown"]), "good", 0.5)
    assert action_confidence(5, 0.9, 0.8) == pytest.approx(0.375)
    assert action_confidence(95, 1.0, 1.0) == pytest.approx(0.95 * 0.5)
    assert action_confidence(95, 100.0, 0.0) == pytest.approx(0.95 * (0.5 + 0.5 * 100 / 100.1))


def test_get_best_action_ties_go_to_the_first_listed() -> None:
    sync = IntelligenceSync("a")
    sync.update_pattern("s", "x", 0.5)
    sync.update_pattern("s", "y", 0.5)
    assert_best(sync.get_best_action("s", ["y", "x", "y"]), "y", 0.5 / 6)
    assert_best(sync.get_best_action("s", ["x", "y"]), "x", 0.5 / 6)


def test_get_best_action_uses_the_merged_view() -> None:
    a, b = IntelligenceSync("a"), IntelligenceSync("b")
    a.update_pattern("s", "x", 1.0)
    a.update_pattern("s", "y", 0.0)
    for _ in range(9):
        b.update_pattern("s", "x", 0.0)
        b.update_pattern("s", "y", 0.5)
    a.merge_peer_state("b", b.serialize_state())
    best = a.get_best_action("s", ["x", "y"])
    assert best is not None
    assert best[0] == "y"  # 0.45 beats 0.1 once b's evidence is merged in
    with pytest.raises(InvalidInputError):
        a.get_best_action("s", "xy")
    with pytest.raises(InvalidInputError):
        a.get_best_action("s", ["x", 3])  # type: ignore[list-item]


# -- merge, stats, state ---------------------------------------------------------------


def test_visit_weighted_mean_across_three_agents_by_hand() -> None:
    agents = {name: IntelligenceSync(name) for name in ("a", "b", "c")}
    rewards = {"a": [1.0, 0.0], "b": [0.9, 0.9, 0.6], "c": [0.2]}
    for name, rs in rewards.items():
        for r in rs:
            agents[name].update_pattern("task", "coder", r)
    hub = IntelligenceSync("hub")
    for name, agent in agents.items():
        hub.merge_peer_state(name, agent.serialize_state())
    got = hub.get_pattern("task", "coder")
    assert got is not None
    # a: mean 0.5 x2, b: mean 0.8 x3, c: 0.2 x1 -> (1.0 + 2.4 + 0.2) / 6 = 0.6
    assert got.value == pytest.approx(0.6)
    assert (got.visits, got.origins) == (6, 3)
    assert got.confidence == pytest.approx(6 / 11)
    stats = hub.get_swarm_stats()
    assert stats == SwarmStats(4, 1, 6, stats.avg_confidence, 0)
    assert stats.avg_confidence == pytest.approx(6 / 11)


def test_swarm_stats_numbers() -> None:
    sync = IntelligenceSync("me")
    assert sync.get_swarm_stats() == SwarmStats(1, 0, 0, 0.0, 0)
    sync.update_pattern("s", "x", 1.0)
    sync.update_pattern("s", "x", 1.0)
    sync.update_pattern("t", "y", 1.0)
    peer = IntelligenceSync("peer")
    peer.update_pattern("t", "y", 0.0)
    peer.update_pattern("u", "z", 0.0)
    sync.merge_peer_state("peer", peer.serialize_state())
    stats = sync.get_swarm_stats()
    # patterns (s,x): 2 visits, (t,y): 2 visits, (u,z): 1 visit
    assert stats == SwarmStats(2, 3, 5, stats.avg_confidence, 3)
    assert stats.avg_confidence == pytest.approx((2 / 7 + 2 / 7 + 1 / 6) / 3)


def test_remerging_the_same_state_changes_nothing() -> None:
    a, b = IntelligenceSync("a"), IntelligenceSync("b")
    a.update_pattern("s", "x", 1.0)
    for r in (0.1, 0.2, 0.3):
        b.update_pattern("s", "x", r)
    blob = b.serialize_state()
    first = a.merge_peer_state("b", blob)
    before = observable(a)
    for _ in range(3):
        again = a.merge_peer_state("b", blob)
        assert (again.merged_patterns, again.new_patterns) == (0, 0)
    assert observable(a) == before
    got = a.get_pattern("s", "x")
    assert got is not None
    assert got.visits == 4  # visits never double
    assert first.merged_patterns == 1


def test_older_state_never_rolls_back_a_newer_one() -> None:
    a, b = IntelligenceSync("a"), IntelligenceSync("b")
    b.update_pattern("s", "x", 0.0)
    old = b.serialize_state()
    b.update_pattern("s", "x", 1.0)
    a.merge_peer_state("b", b.serialize_state())
    assert a.merge_peer_state("b", old).merged_patterns == 0
    got = a.get_pattern("s", "x")
    assert got is not None
    assert (got.value, got.visits) == (0.5, 2)


def test_restore_roundtrip_resumes_the_counter() -> None:
    a = IntelligenceSync("a")
    for i in range(10):
        a.update_pattern(f"s{i % 3}", f"x{i % 4}", i / 10)
    peer = IntelligenceSync("peer")
    peer.update_pattern("s0", "x0", 1.0)
    a.merge_peer_state("peer", peer.serialize_state())
    restored = IntelligenceSync.restore(a.serialize_state())
    assert restored.agent_id == "a"
    assert observable(restored) == observable(a)
    restored.update_pattern("s0", "x0", 0.0)
    assert restored.local_version == 11
    with pytest.raises(SyncError, match="written by"):
        IntelligenceSync.restore(a.serialize_state(), agent_id="b")


def test_get_state_is_a_snapshot() -> None:
    sync = IntelligenceSync("a")
    sync.update_pattern("s", "x", 1.0)
    state = sync.get_state()
    sync.update_pattern("s", "x", 0.0)
    assert state[("s", "x")].visits == 1
    assert sync.get_state()[("s", "x")].visits == 2


# -- deltas ----------------------------------------------------------------------------


def test_delta_with_an_int_since_covers_own_entries_newer_than_it() -> None:
    a, b = IntelligenceSync("a"), IntelligenceSync("b")
    b.update_pattern("t", "y", 0.5)
    a.merge_peer_state("b", b.serialize_state())
    for i in range(5):
        a.update_pattern("s", f"x{i}", 1.0)  # versions 1..5
    info = inspect_pattern_blob(a.get_delta(3))
    assert (info.kind, info.since, info.entry_count) == ("delta", {"a": 3}, 3)  # x3, x4 and b's
    fresh = IntelligenceSync("c")
    fresh.merge_peer_state("a", a.get_delta(3))
    assert {(r.origin, r.action) for r in fresh.entries()} == {("a", "x3"), ("a", "x4"), ("b", "y")}
    assert inspect_pattern_blob(a.get_delta(0)).entry_count == 6
    assert inspect_pattern_blob(a.get_delta(5)).entry_count == 1


def test_delta_with_a_version_vector() -> None:
    a, b = IntelligenceSync("a"), IntelligenceSync("b")
    for i in range(4):
        a.update_pattern("s", f"x{i}", float(i))
    b.merge_peer_state("a", a.serialize_state())
    a.update_pattern("s", "x0", 1.0)
    a.update_pattern("s", "new", 1.0)
    b.update_pattern("s", "x0", 0.0)
    delta = a.get_delta(b.version_vector())
    assert inspect_pattern_blob(delta).entry_count == 2
    result = b.merge_peer_state("a", delta)
    assert (result.merged_patterns, result.new_patterns) == (2, 1)
    assert b.get_delta(a.version_vector()) != b.get_delta({})
    a.merge_peer_state("b", b.get_delta(a.version_vector()))
    assert a.get_state() == b.get_state()
    assert a.version_vector() == b.version_vector() == {"a": 6, "b": 1}
    assert inspect_pattern_blob(a.get_delta(b.version_vector())).entry_count == 0


def test_huge_since_values_mean_nothing_is_newer() -> None:
    a = IntelligenceSync("a")
    a.update_pattern("s", "x", 1.0)
    assert inspect_pattern_blob(a.get_delta(2**80)).entry_count == 0
    assert inspect_pattern_blob(a.get_delta({"a": 2**80, "zz": 2**90})).entry_count == 0
    assert a.store.select({"a": 2**80}).records() == []


def test_numpy_scalar_rewards_are_accepted() -> None:
    a = IntelligenceSync("a")
    a.update_pattern("s", "x", np.float32(0.5))  # type: ignore[arg-type]
    a.update_pattern("s", "x", np.int64(1))  # type: ignore[arg-type]
    got = a.get_pattern("s", "x")
    assert got is not None
    assert (got.value, got.visits) == (0.75, 2)


@pytest.mark.parametrize("bad", [-1, True, {"a": -2}, {"a": 1.5}, {3: 1}, "a", [1]])
def test_get_delta_rejects_bad_since(bad: Any) -> None:
    with pytest.raises(InvalidInputError):
        IntelligenceSync("a").get_delta(bad)


# -- blob format -----------------------------------------------------------------------


def test_blob_is_self_describing() -> None:
    sync = IntelligenceSync("agent-7", clock=clock(1234))
    sync.update_pattern("s", "x", 1.0)
    blob = sync.serialize_state()
    assert blob[:4] == b"RVTC"  # a TensorCodec blob
    info = inspect_pattern_blob(blob)
    assert info.sender == "agent-7"
    assert (info.kind, info.format_version, info.entry_count) == ("state", 1, 1)
    assert (info.local_version, info.version_vector, info.created_ms) == (1, {"agent-7": 1}, 1234)
    assert not info.signed
    raw = TensorCodec().decompress(blob)
    assert PATTERN_BLOB_TAG.encode() in raw[:40]


@pytest.mark.parametrize("level", list(CompressionLevel))
def test_every_codec_level_roundtrips(level: CompressionLevel) -> None:
    a = IntelligenceSync("a", codec_level=level)
    for i in range(200):
        a.update_pattern(f"s{i % 17}", f"x{i % 5}", math.sin(i))
    b = IntelligenceSync("b")
    b.merge_peer_state("a", a.serialize_state())
    assert b.get_state() == a.get_state()


def test_large_state_roundtrips_through_a_blob() -> None:
    n = 20_000
    rng = np.random.default_rng(1)
    src = IntelligenceSync("hub")
    src.merge_entries(
        EntryBatch.from_arrays(
            ["a", "b", "c"],
            [f"s{i}" for i in range(n // 4)],
            ["x", "y", "z", "w"],
            origin_idx=rng.integers(0, 3, n),
            state_idx=np.arange(n) // 4,
            action_idx=np.arange(n) % 4,
            value=rng.standard_normal(n),
            visits=rng.integers(1, 50, n),
            version=rng.integers(1, 10**6, n),
            updated_ms=rng.integers(0, 10**12, n),
        )
    )
    dst = IntelligenceSync.restore(src.serialize_state())
    assert dst.entries() == src.entries()
    assert dst.version_vector() == src.version_vector()


# -- own entries -----------------------------------------------------------------------


def test_a_peer_cannot_forge_our_entries() -> None:
    me = IntelligenceSync("me")
    me.update_pattern("s", "x", 0.1)
    forged = craft(
        "mallory", [("me", "s", "x", 1.0, 10_000, 77, 0), ("mallory", "s", "x", 1.0, 1, 1, 0)]
    )
    result = me.merge_peer_state("mallory", forged)
    assert result.merged_patterns == 1  # mallory's own entry only
    assert result.local_version == 78  # ours re-issued above the forged version
    [mine] = [r for r in me.entries() if r.origin == "me"]
    assert (mine.value, mine.visits, mine.version) == (0.1, 1, 78)
    # whoever took the forgery takes our re-issued entry on the next sync
    victim = IntelligenceSync("victim")
    victim.merge_peer_state("mallory", forged)
    victim.merge_peer_state("me", me.get_delta(victim.version_vector()))
    assert victim.entries() == me.entries()


def test_warm_start_restores_own_history_from_a_peer() -> None:
    before = IntelligenceSync("me")
    for i in range(6):
        before.update_pattern("s", f"x{i % 2}", float(i))
    coordinator = IntelligenceSync("coordinator")
    coordinator.merge_peer_state("me", before.serialize_state())

    restarted = IntelligenceSync("me")  # lost its state
    result = restarted.merge_peer_state("coordinator", coordinator.serialize_state())
    assert result == MergeResult("coordinator", 2, 2, 6)
    assert restarted.entries() == before.entries()
    restarted.update_pattern("s", "x0", 10.0)
    assert restarted.local_version == 7
    coordinator.merge_peer_state("me", restarted.get_delta(coordinator.version_vector()))
    got = coordinator.get_pattern("s", "x0")
    assert got is not None
    assert (got.visits, got.value) == pytest.approx((4, (0 + 2 + 4 + 10) / 4))


def test_updates_made_before_warm_start_still_reach_peers() -> None:
    before = IntelligenceSync("me")
    for i in range(5):
        before.update_pattern("s", "old", float(i))
    coordinator = IntelligenceSync("coordinator")
    coordinator.merge_peer_state("me", before.serialize_state())

    restarted = IntelligenceSync("me")
    restarted.update_pattern("s", "fresh", 1.0)  # version 1, below what peers saw (5)
    restarted.merge_peer_state("coordinator", coordinator.serialize_state())
    assert restarted.local_version == 6  # re-issued above the old history
    delta = restarted.get_delta(coordinator.version_vector())
    coordinator.merge_peer_state("me", delta)
    assert coordinator.get_pattern("s", "fresh") is not None
    assert coordinator.entries() == restarted.entries()


# -- signatures ------------------------------------------------------------------------


def test_signed_blobs_verify_and_tampering_is_refused() -> None:
    ident = Identity.from_seed(b"k" * 32, "signer")
    other = Identity.from_seed(b"o" * 32, "signer")
    sync = IntelligenceSync("signer")
    sync.update_pattern("s", "x", 1.0)
    blob = sync.serialize_state(identity=ident)
    assert inspect_pattern_blob(blob).signed
    receiver = IntelligenceSync("r")
    receiver.merge_peer_state("signer", blob, public_key=ident.public_key)
    assert receiver.get_pattern("s", "x") is not None

    fresh = IntelligenceSync("r")
    with pytest.raises(AuthError):
        fresh.merge_peer_state("signer", blob, public_key=other.public_key)
    with pytest.raises(AuthError, match="unsigned"):
        fresh.merge_peer_state("signer", sync.serialize_state(), public_key=ident.public_key)
    # a relay that re-encodes the body with a different value keeps the old signature
    env = sync_mod._open_envelope(blob, 1 << 20)
    body = sync_mod._decode_body(env)
    body.value = sync_mod._shuffle(np.array([5.0]), "<f8")
    forged_env = sync_mod._Envelope(
        env.tag, env.format_version, env.sender, env.signature, sync_mod._ENCODER.encode(body)
    )
    forged = TensorCodec().compress(sync_mod._ENCODER.encode(forged_env))
    with pytest.raises(AuthError):
        fresh.merge_peer_state("signer", forged, public_key=ident.public_key)
    assert fresh.entries() == []
    delta = sync.get_delta(0, identity=ident)
    fresh.merge_peer_state("signer", delta, public_key=ident.public_key)
    assert fresh.entries() == sync.entries()
    with pytest.raises(InvalidInputError, match="identity"):
        IntelligenceSync("someone-else").serialize_state(identity=ident)


# -- foreign and invalid blobs ---------------------------------------------------------


def _seeded() -> IntelligenceSync:
    me = IntelligenceSync("me")
    me.update_pattern("s", "x", 0.5)
    me.update_pattern("t", "y", 0.25)
    return me


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (b"", CodecError, None),
        (b"not a blob at all", CodecError, None),
        (TensorCodec().compress_tensor(np.ones(4)), CodecError, "tensor"),
        (TensorCodec().compress(b"\x93\x01\x02\x03"), SyncError, "header|does not hold"),
        (TensorCodec().compress(b"\xc1"), SyncError, "does not hold"),
    ],
)
def test_foreign_bytes_are_refused(data: bytes, error: type[EdgeError], match: str | None) -> None:
    me = _seeded()
    before = observable(me)
    with pytest.raises(error, match=match):
        me.merge_peer_state("peer", data)
    assert observable(me) == before


def test_wrong_tag_version_and_sender_are_refused() -> None:
    me = _seeded()
    before = observable(me)
    good = craft("peer", [("peer", "s", "x", 0.5, 1, 1, 0)])
    env = sync_mod._open_envelope(good, 1 << 20)
    enc = sync_mod._ENCODER.encode
    wrong_tag = TensorCodec().compress(
        enc(sync_mod._Envelope("ruvector-edge/memories", 1, "peer", b"", env.body))
    )
    with pytest.raises(SyncError, match="memories"):
        me.merge_peer_state("peer", wrong_tag)
    v2 = TensorCodec().compress(enc(sync_mod._Envelope(PATTERN_BLOB_TAG, 2, "peer", b"", env.body)))
    with pytest.raises(SyncError, match="version 2"):
        me.merge_peer_state("peer", v2)
    with pytest.raises(SyncError, match="written by 'peer'"):
        me.merge_peer_state("someone-else", good)
    mismatch = TensorCodec().compress(
        enc(sync_mod._Envelope(PATTERN_BLOB_TAG, 1, "other", b"", env.body))
    )
    with pytest.raises(SyncError, match="envelope names"):
        me.merge_peer_state("other", mismatch)
    with pytest.raises(SyncError, match="malformed"):
        me.merge_peer_state(
            "peer",
            TensorCodec().compress(
                enc(sync_mod._Envelope(PATTERN_BLOB_TAG, 1, "peer", b"", b"\x92\x01"))
            ),
        )
    assert observable(me) == before


@pytest.mark.parametrize(
    ("blob_kwargs", "match"),
    [
        ({"records": [("peer", "s", "x", math.nan, 1, 1, 0)]}, "NaN"),
        ({"records": [("peer", "s", "x", 0.5, -4, 1, 0)]}, "visits"),
        ({"records": [("peer", "s", "x", 0.5, 1, 0, 0)]}, "version"),
        ({"records": [("peer", "s", "x", 0.5, 1, 3, 0)], "vv": {"peer": 2}}, "newer than"),
        (
            {"records": [("peer", "s", "x", 0.5, 1, 3, 0)], "vv": {"peer": 3}, "local_version": 5},
            "version vector says",
        ),
        (
            {"records": [("o", "s", "x", 0.5, 1, 3, 0)], "kind": "delta", "since": {"o": 3}},
            "since",
        ),
        ({"records": [("o", "s", "x", 0.5, 1, 3, 0)], "since": {"o": 1}}, "since"),
    ],
)
def test_invalid_content_is_refused_without_changes(
    blob_kwargs: dict[str, Any], match: str
) -> None:
    me = _seeded()
    before = observable(me)
    with pytest.raises(SyncError, match=match):
        me.merge_peer_state("peer", craft("peer", **blob_kwargs))
    assert observable(me) == before


def test_duplicate_and_out_of_range_entries_are_refused() -> None:
    me = _seeded()
    before = observable(me)
    dup = EntryBatch.from_arrays(
        ["peer"],
        ["s"],
        ["x"],
        origin_idx=[0, 0],
        state_idx=[0, 0],
        action_idx=[0, 0],
        value=[0.1, 0.2],
        visits=[1, 1],
        version=[1, 1],
        updated_ms=[0, 0],
    )
    with pytest.raises(SyncError, match="twice"):
        me.merge_peer_state("peer", craft("peer", dup))
    past = EntryBatch.from_arrays(
        ["peer"],
        ["s"],
        ["x"],
        origin_idx=[0],
        state_idx=[3],
        action_idx=[0],
        value=[0.1],
        visits=[1],
        version=[1],
        updated_ms=[0],
    )
    with pytest.raises(SyncError, match="name table"):
        me.merge_peer_state("peer", craft("peer", past, vv={"peer": 1}))
    env = sync_mod._open_envelope(craft("peer", [("peer", "s", "x", 0.5, 1, 1, 0)]), 1 << 20)
    body = sync_mod._decode_body(env)
    body.visits = body.visits[:-1]
    short = TensorCodec().compress(
        sync_mod._ENCODER.encode(
            sync_mod._Envelope(
                env.tag, env.format_version, env.sender, b"", sync_mod._ENCODER.encode(body)
            )
        )
    )
    with pytest.raises(SyncError, match="column visits"):
        me.merge_peer_state("peer", short)
    assert observable(me) == before


def test_max_blob_size_is_enforced() -> None:
    a = IntelligenceSync("a")
    for i in range(100):
        a.update_pattern(f"s{i}", "x", 1.0)
    small = IntelligenceSync("b", max_blob_size=256)
    with pytest.raises(CodecError):
        small.merge_peer_state("a", a.serialize_state())


# -- threads ---------------------------------------------------------------------------


def test_concurrent_updates_merges_and_reads_are_consistent() -> None:
    sync = IntelligenceSync("me")
    peers = []
    for p in range(4):
        peer = IntelligenceSync(f"peer{p}")
        for i in range(50):
            peer.update_pattern(f"s{i % 5}", f"x{p}", 1.0)
        peers.append(peer)
    n_threads, n_updates = 4, 300
    start = threading.Barrier(n_threads + 2)
    errors: list[BaseException] = []

    def learn(t: int) -> None:
        start.wait()
        for i in range(n_updates):
            sync.update_pattern(f"s{i % 5}", f"x{t % 2}", float(i % 2))

    def merge() -> None:
        start.wait()
        for peer in peers * 3:
            sync.merge_peer_state(peer.agent_id, peer.serialize_state())

    def read() -> None:
        start.wait()
        for _ in range(100):
            stats = sync.get_swarm_stats()
            state = sync.get_state()
            # a consistent snapshot: visits add up to what the stats say at that moment
            if sum(s.visits for s in state.values()) < stats.total_visits:
                errors.append(AssertionError("state older than stats"))
            sync.get_best_action("s0", ["x0", "x1"])
            blob = sync.serialize_state()
            IntelligenceSync("r").merge_peer_state("me", blob)

    threads = [threading.Thread(target=learn, args=(t,)) for t in range(n_threads)]
    threads += [threading.Thread(target=merge), threading.Thread(target=read)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
        assert not th.is_alive()
    assert not errors
    assert sync.local_version == n_threads * n_updates
    stats = sync.get_swarm_stats()
    assert stats.total_visits == n_threads * n_updates + 4 * 50
    assert stats.total_agents == 5


def test_copy_is_independent() -> None:
    a = IntelligenceSync("a")
    a.update_pattern("s", "x", 1.0)
    b = a.copy()
    b.update_pattern("s", "x", 0.0)
    assert (a.local_version, b.local_version) == (1, 2)
    got = a.get_pattern("s", "x")
    assert got is not None
    assert got.visits == 1
    assert b.agent_id == "a"


def test_keys_shared_by_many_origins_merge_to_the_exact_mean() -> None:
    """Past a few origins per key the view is recomputed by a table scan, not the chain."""
    rng = np.random.default_rng(7)
    hub = IntelligenceSync("hub")
    rewards: dict[tuple[str, str], list[float]] = {}
    for i in range(40):
        agent = IntelligenceSync(f"a{i}")
        for state, action in (("s", "x"), ("s", "y"), (f"own{i}", "z")):
            r = float(rng.random())
            agent.update_pattern(state, action, r)
            rewards.setdefault((state, action), []).append(r)
        hub.merge_peer_state(agent.agent_id, agent.serialize_state())
    view = hub.get_state()
    for key, values in rewards.items():
        assert view[key].visits == len(values)
        assert view[key].value == pytest.approx(sum(values) / len(values), rel=1e-12)
        assert view[key].origins == len(values)
