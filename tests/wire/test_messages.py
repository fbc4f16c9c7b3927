from __future__ import annotations

import contextlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ruvector_edge import AgentRole
from ruvector_edge.errors import ProtocolError
from ruvector_edge.wire import (
    JoinPayload,
    MessageType,
    PingPayload,
    SwarmMessage,
    SyncPatternsPayload,
    TaskPayload,
    decode_message,
    encode_message,
)

SEED_TYPES = {
    "JOIN", "LEAVE", "PING", "PONG", "SYNC_PATTERNS", "REQUEST_PATTERNS", "SYNC_MEMORIES",
    "REQUEST_MEMORIES", "BROADCAST_TASK", "TASK_RESULT", "ELECTION", "COORDINATOR", "ERROR",
}  # fmt: skip


def test_all_seed_message_types_exist_with_product_extras() -> None:
    names = {t.name for t in MessageType}
    assert names >= SEED_TYPES
    assert {"ACK", "WELCOME", "AGENT_EXPORT"} <= names


def sample_messages() -> list[SwarmMessage]:
    return [
        SwarmMessage.join("a", AgentRole.SCOUT, ["rust", "ts"], version="0.1"),
        SwarmMessage.leave("a", "bye"),
        SwarmMessage.ping("a", 7, load=0.5),
        SwarmMessage.pong("b", "a", 7),
        SwarmMessage.sync_patterns("a", b"\x00\x01", version=3, version_vector={"a": 3}),
        SwarmMessage.request_patterns("a", "coord", since_version=2, max_entries=10),
        SwarmMessage.broadcast_task(
            "c",
            "t-1",
            "edit_ts",
            "fix it",
            {"file": "a.ts", "n": [1, 2]},
            priority=5,
            timeout_ms=100,
        ),
        SwarmMessage.task_result("a", "c", "t-1", True, result={"ok": 1}, reward=0.9),
        SwarmMessage.election("c2", term=4, priority=1),
        SwarmMessage.coordinator("c2", term=4, url="ws://127.0.0.1:1"),
        SwarmMessage.error("c", "bad_token", "wrong join token", recipient="a"),
        SwarmMessage.ack("c", "a", "abc"),
        SwarmMessage.directed("a", "b", PingPayload(nonce=1)),
    ]


@pytest.mark.parametrize("msg", sample_messages(), ids=lambda m: m.type.value)
def test_round_trip_every_constructor(msg: SwarmMessage) -> None:
    assert decode_message(encode_message(msg)) == msg


def test_seed_payload_fields() -> None:
    task = SwarmMessage.broadcast_task("c", "t", "kind", "d", {"x": 1}, priority=2, timeout_ms=9)
    assert isinstance(task.payload, TaskPayload)
    assert (task.payload.task_id, task.payload.task_type, task.payload.description) == (
        "t", "kind", "d",
    )  # fmt: skip
    assert (task.payload.parameters, task.payload.priority, task.payload.timeout_ms) == (
        {"x": 1}, 2, 9,
    )  # fmt: skip
    join = SwarmMessage.join("a", "worker", ["x"], version="1")
    assert isinstance(join.payload, JoinPayload)
    assert join.payload.agent_role is AgentRole.WORKER


def test_envelope_type_must_match_payload() -> None:
    ping = SwarmMessage.ping("a")
    forged = msgspec.msgpack.encode(
        ["id", "pong", "a", None, 1, 0, 8, {"t": "ping", "nonce": 0, "load": 0.0}]
    )
    with pytest.raises(ProtocolError, match="carries a 'ping' payload"):
        decode_message(forged)
    assert decode_message(encode_message(ping)).type is MessageType.PING


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"\xc1", "undecodable"),
        (msgspec.msgpack.encode([1, 2, 3]), "invalid message"),
        (msgspec.msgpack.encode(["i", "ping", "a", None, -1, 0, 8, {"t": "ping"}]), ">= 0"),
        (msgspec.msgpack.encode(["i", "nope", "a", None, 1, 0, 8, {"t": "ping"}]), "invalid"),
        (msgspec.msgpack.encode(["i", "ping", "", None, 1, 0, 8, {"t": "ping"}]), "length"),
        (msgspec.msgpack.encode(["i", "ping", "a", None, 1, 0, 300, {"t": "ping"}]), "<= 255"),
    ],
)
def test_invalid_bodies_raise_protocol_error(body: bytes, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        decode_message(body)


def test_deep_nesting_and_bad_utf8_are_protocol_errors() -> None:
    raw = encode_message(SwarmMessage.task_result("a", None, "t", True, result=12345))
    i = raw.find(b"\xcd\x30\x39")
    with pytest.raises(ProtocolError, match="nested too deeply"):
        decode_message(raw[:i] + b"\x91" * 200_000 + b"\xc0" + raw[i + 3 :])
    ping = encode_message(SwarmMessage.ping("abc"))
    with pytest.raises(ProtocolError):
        decode_message(ping.replace(b"\xa3abc", b"\xa3\xff\xfe\xfd"))


@given(st.binary(max_size=300))
def test_fuzzed_bodies_only_raise_protocol_error(body: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_message(body)


def test_ttl_and_expiry() -> None:
    msg = SwarmMessage.ping("a")
    msg.ttl = 2
    assert msg.decrement_ttl()
    assert msg.ttl == 1
    assert msg.decrement_ttl()
    assert msg.ttl == 0
    assert not msg.decrement_ttl()
    assert msg.ttl == 0
    msg.ts_ms = 1_000
    assert msg.is_expired(500, now=2_000)
    assert not msg.is_expired(1_000, now=2_000)
    msg.ts_ms = 10_000  # a future timestamp: age 0, never "negative age" nonsense
    assert msg.age_ms(now=2_000) == 0
    assert not msg.is_expired(0, now=2_000)


def test_unknown_payload_fields_are_ignored_for_forward_compatibility() -> None:
    body = msgspec.msgpack.encode(
        ["i", "ping", "a", None, 1, 0, 8, {"t": "ping", "nonce": 3, "future_field": [1]}]
    )
    msg = decode_message(body)
    assert isinstance(msg.payload, PingPayload)
    assert msg.payload.nonce == 3


def test_sync_payload_carries_version_vector_and_signature() -> None:
    payload = SyncPatternsPayload(
        data=b"d", version=2, version_vector={"a": 2, "b": 1}, origin="a", signature=b"s" * 64
    )
    msg = SwarmMessage.new("a", payload)
    assert decode_message(encode_message(msg)).payload == payload
