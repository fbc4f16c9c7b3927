"""IntelligenceSync convergence laws and fuzzing, property-tested with hypothesis."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ruvector_edge.codec import TensorCodec
from ruvector_edge.errors import EdgeError
from ruvector_edge.learning import IntelligenceSync, inspect_pattern_blob

AGENTS = ("a", "b", "c")

update = st.tuples(
    st.just("update"),
    st.sampled_from(AGENTS),
    st.sampled_from(["s1", "s2"]),
    st.sampled_from(["x", "y", "z"]),
    st.floats(-1, 1, allow_nan=False),
)
sync_op = st.tuples(
    st.sampled_from(["full", "delta", "int-delta"]),
    st.sampled_from(AGENTS),
    st.sampled_from(AGENTS),
)
scripts = st.lists(st.one_of(update, sync_op), min_size=1, max_size=30)


def observable(s: IntelligenceSync) -> tuple[object, ...]:
    return (s.entries(), s.get_state(), s.version_vector())


def run(script: list[tuple[Any, ...]]) -> tuple[dict[str, IntelligenceSync], list[bytes]]:
    """Play updates and syncs between agents; return the agents and every blob sent."""
    agents = {name: IntelligenceSync(name, clock=lambda: 7) for name in AGENTS}
    sent: list[bytes] = []
    for op in script:
        if op[0] == "update":
            _, name, state, action, reward = op
            agents[name].update_pattern(state, action, reward)
            continue
        kind, src, dst = op
        if src == dst:
            continue
        if kind == "full":
            blob = agents[src].serialize_state()
        elif kind == "delta":
            blob = agents[src].get_delta(agents[dst].version_vector())
        else:
            blob = agents[src].get_delta(agents[dst].version_vector().get(src, 0))
        sent.append(blob)
        agents[dst].merge_peer_state(src, blob)
    return agents, sent


def copy_of(s: IntelligenceSync) -> IntelligenceSync:
    return IntelligenceSync.restore(s.serialize_state())


@settings(max_examples=40)
@given(scripts)
def test_agents_converge_after_any_sync_history(script: list[tuple[Any, ...]]) -> None:
    agents, _ = run(script)
    for _ in range(2):  # two gossip rounds of deltas reach everyone
        for src in AGENTS:
            for dst in AGENTS:
                if src != dst:
                    delta = agents[src].get_delta(agents[dst].version_vector())
                    agents[dst].merge_peer_state(src, delta)
    first = observable(agents["a"])
    assert observable(agents["b"]) == first
    assert observable(agents["c"]) == first
    # the merged view counts every update exactly once
    n_updates = sum(1 for op in script if op[0] == "update")
    assert sum(p.visits for p in agents["a"].get_state().values()) == n_updates


@settings(max_examples=40)
@given(scripts, st.data())
def test_any_order_and_duplication_of_blobs_converges(
    script: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    agents, sent = run(script)
    blobs = sent + [a.get_delta(0) for a in agents.values()]
    order1 = data.draw(st.permutations(blobs))
    order2 = data.draw(st.permutations(blobs)) + data.draw(st.lists(st.sampled_from(blobs)))
    x, y = IntelligenceSync("observer-x"), IntelligenceSync("observer-y")
    for blob in order1:
        x.merge_peer_state(_sender(blob), blob)
    for blob in order2:
        y.merge_peer_state(_sender(blob), blob)
    assert observable(x) == observable(y)


def _sender(blob: bytes) -> str:
    return inspect_pattern_blob(blob).sender


@settings(max_examples=40)
@given(scripts, st.sampled_from(AGENTS), st.sampled_from(AGENTS))
def test_delta_for_a_version_vector_equals_the_full_merge(
    script: list[tuple[Any, ...]], p: str, q: str
) -> None:
    agents, _ = run(script)
    if p == q:
        return
    full, via_delta = copy_of(agents[p]), copy_of(agents[p])
    full.merge_peer_state(q, agents[q].serialize_state())
    via_delta.merge_peer_state(q, agents[q].get_delta(via_delta.version_vector()))
    assert observable(via_delta) == observable(full)


@settings(max_examples=30)
@given(scripts, st.sampled_from(AGENTS), st.sampled_from(AGENTS), st.sampled_from(AGENTS))
def test_merge_order_and_grouping_do_not_matter(
    script: list[tuple[Any, ...]], p: str, q: str, r: str
) -> None:
    agents, _ = run(script)
    blobs = {name: a.serialize_state() for name, a in agents.items()}
    # ((hub + p) + q) + r  versus  hub + (r merged into a copy of q) + p
    left = IntelligenceSync("hub")
    for name in (p, q, r):
        left.merge_peer_state(name, blobs[name])
    grouped = copy_of(agents[q])
    if r != q:
        grouped.merge_peer_state(r, blobs[r])
    right = IntelligenceSync("hub")
    right.merge_peer_state(q, grouped.serialize_state())
    right.merge_peer_state(p, blobs[p])
    assert observable(left) == observable(right)
    # idempotent: the same blobs again change nothing
    before = observable(left)
    for name in (r, q, p):
        result = left.merge_peer_state(name, blobs[name])
        assert result.merged_patterns == 0
    assert observable(left) == before


# -- fuzzing -----------------------------------------------------------------------------


def _victim() -> IntelligenceSync:
    me = IntelligenceSync("me", clock=lambda: 5)
    me.update_pattern("s", "x", 0.5)
    me.update_pattern("s", "y", -0.5)
    peer = IntelligenceSync("peer", clock=lambda: 5)
    peer.update_pattern("s", "x", 1.0)
    me.merge_peer_state("peer", peer.serialize_state())
    return me


def _valid_blob() -> bytes:
    src = IntelligenceSync("peer", clock=lambda: 9)
    for i in range(6):
        src.update_pattern(f"s{i % 2}", f"a{i % 3}", i / 6)
    return src.serialize_state()


VALID = _valid_blob()
VICTIM_STATE = observable(_victim())


@given(st.binary(max_size=300))
def test_random_bytes_raise_edge_error_and_change_nothing(data: bytes) -> None:
    me = _victim()
    try:
        me.merge_peer_state("peer", data)
    except EdgeError:
        pass
    else:  # pragma: no cover - random bytes are never a valid pattern blob
        raise AssertionError("random bytes were accepted")
    assert observable(me) == VICTIM_STATE


@given(st.data())
def test_corrupted_blobs_raise_edge_error_and_change_nothing(data: st.DataObject) -> None:
    blob = bytearray(VALID)
    kind = data.draw(st.sampled_from(["flip", "truncate", "splice"]))
    if kind == "flip":  # CRC-32 catches every error of up to 3 bits at this length
        bits = st.lists(st.integers(0, 8 * len(blob) - 1), min_size=1, max_size=3, unique=True)
        for bit in data.draw(bits):
            blob[bit // 8] ^= 1 << (bit % 8)
    elif kind == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    else:
        i = data.draw(st.integers(0, len(blob)))
        blob[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    me = _victim()
    try:
        me.merge_peer_state("peer", bytes(blob))
    except EdgeError:
        pass
    else:
        raise AssertionError("a corrupted blob was accepted")
    assert observable(me) == VICTIM_STATE


@given(st.data())
def test_content_corruption_under_a_valid_checksum_is_validated(data: st.DataObject) -> None:
    """Bit flips inside the decompressed content, re-wrapped with a valid CRC: either the
    result is still a well-formed blob (and merges), or an EdgeError leaves state untouched."""
    raw = bytearray(TensorCodec().decompress(VALID))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
    blob = TensorCodec().compress(bytes(raw))
    me = _victim()
    try:
        me.merge_peer_state("peer", blob)
    except EdgeError:
        assert observable(me) == VICTIM_STATE


@settings(max_examples=40)
@given(scripts, st.sampled_from(AGENTS), st.integers(0, 12))
def test_own_delta_holds_exactly_the_own_entries_after_since(
    script: list[tuple[Any, ...]], name: str, since: int
) -> None:
    agents, _ = run(script)
    me = agents[name]
    observer = IntelligenceSync("observer")
    observer.merge_peer_state(name, me.get_own_delta(since), only_origins={name})
    want = sorted(
        (e.state, e.action, e.version)
        for e in me.entries()
        if e.origin == name and e.version > since
    )
    assert sorted((e.state, e.action, e.version) for e in observer.entries()) == want
    assert {e.origin for e in observer.entries()} <= {name}


@settings(max_examples=40)
@given(scripts, st.sampled_from(AGENTS), st.sampled_from(AGENTS), st.integers(1, 4))
def test_capped_deltas_pulled_until_up_to_date_equal_the_full_merge(
    script: list[tuple[Any, ...]], p: str, q: str, cap: int
) -> None:
    agents, _ = run(script)
    if p == q:
        return
    full, capped = copy_of(agents[p]), copy_of(agents[p])
    full.merge_peer_state(q, agents[q].serialize_state())
    src = agents[q]
    for _ in range(len(AGENTS) + 1):  # each capped answer carries at least one origin
        blob = src.get_delta(capped.version_vector(), max_entries=cap)
        info = inspect_pattern_blob(blob)
        # Whole origins only: more than `cap` entries only when one origin alone has more.
        assert info.entry_count <= cap or len(info.version_vector) == 1
        capped.merge_peer_state(q, blob)
    assert observable(capped) == observable(full)
