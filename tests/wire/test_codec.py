from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ruvector_edge.errors import AuthError, FrameTooLargeError, ProtocolError, ReplayError
from ruvector_edge.identity import Admission, Identity
from ruvector_edge.wire import (
    FLAG_AUTHENTICATED,
    FLAG_BATCH,
    FrameRejected,
    LinkInitiator,
    LinkResponder,
    MessageCodec,
    PingPayload,
    SwarmMessage,
    encode_frame,
    encode_message,
    frame_header,
)

AGENT = Identity.from_seed(b"a" * 32, "agent-1")
COORD = Identity.from_seed(b"c" * 32, "coord")


def linked_pair(
    encrypt: bool = False, max_frame_size: int = 1 << 20
) -> tuple[MessageCodec, MessageCodec]:
    """Agent and coordinator codecs after a real JOIN/WELCOME handshake over frames."""
    agent = MessageCodec(max_frame_size=max_frame_size, encrypt=encrypt)
    coord = MessageCodec(max_frame_size=max_frame_size, encrypt=encrypt)
    initiator = LinkInitiator(AGENT, "worker", ["ts"], join_token="tok")
    responder = LinkResponder(COORD, Admission("tok"))
    [join] = coord.feed(agent.encode(initiator.join_message()))
    assert isinstance(join, SwarmMessage)
    responder.accept_join(join)
    welcome, coord_session = responder.welcome_message("swarm-1", members=["agent-1"])
    [welcome_in] = agent.feed(coord.encode(welcome))
    assert isinstance(welcome_in, SwarmMessage)
    agent.attach_session(initiator.complete(welcome_in))
    coord.attach_session(coord_session)
    assert initiator.welcome is not None
    assert initiator.welcome.swarm_id == "swarm-1"
    return agent, coord


@pytest.mark.parametrize("encrypt", [False, True])
def test_authenticated_messages_flow_both_ways(encrypt: bool) -> None:
    agent, coord = linked_pair(encrypt)
    msgs = [SwarmMessage.ping("agent-1", i) for i in range(10)]
    stream = b"".join(agent.encode(m) for m in msgs)
    assert coord.feed(stream) == msgs
    back = SwarmMessage.pong("coord", "agent-1", 3)
    assert agent.feed(coord.encode(back)) == [back]
    assert coord.stats.frames_in == 11
    assert coord.stats.rejected == 0
    assert (b"agent-1" in stream) is not encrypt


def test_bad_frames_are_rejected_but_the_stream_keeps_working() -> None:
    agent, coord = linked_pair()
    good = agent.encode(SwarmMessage.ping("agent-1", 1))
    tampered = bytearray(agent.encode(SwarmMessage.ping("agent-1", 2)))
    tampered[12] ^= 0x40
    plain_ping = encode_frame(encode_message(SwarmMessage.ping("agent-1", 3)))
    garbage_body = encode_frame(b"\xc1\xc1")
    after = agent.encode(SwarmMessage.ping("agent-1", 4))
    out = coord.feed(good + bytes(tampered) + good + plain_ping + garbage_body + after)
    kinds = [type(x.error).__name__ if isinstance(x, FrameRejected) else "ok" for x in out]
    assert kinds == ["ok", "AuthError", "ReplayError", "AuthError", "AuthError", "ok"]
    assert coord.stats.rejected == 4
    assert coord.stats.rejected_by_code["replay"] == 1
    last = out[-1]
    assert isinstance(last, SwarmMessage)
    assert isinstance(last.payload, PingPayload)
    assert last.payload.nonce == 4


def test_plain_codec_accepts_only_handshake_traffic() -> None:
    codec = MessageCodec()
    with pytest.raises(ProtocolError, match="needs an authenticated link"):
        codec.encode(SwarmMessage.ping("a"))
    [rejected] = codec.feed(encode_frame(encode_message(SwarmMessage.ping("a"))))
    assert isinstance(rejected, FrameRejected)
    assert isinstance(rejected.error, AuthError)
    [rejected] = codec.feed(encode_frame(b"x" * 30, FLAG_AUTHENTICATED))
    assert isinstance(rejected, FrameRejected)
    assert "before the handshake" in rejected.error.message


def test_stale_timestamp_is_rejected_after_authentication() -> None:
    agent, coord = linked_pair()
    old = SwarmMessage.ping("agent-1")
    old.ts_ms -= 10 * 60_000
    [rejected] = coord.feed(agent.encode(old))
    assert isinstance(rejected, FrameRejected)
    assert isinstance(rejected.error, ReplayError)


def test_oversize_outgoing_and_incoming() -> None:
    agent, coord = linked_pair(max_frame_size=600)
    big = SwarmMessage.sync_patterns("agent-1", b"x" * 1000)
    with pytest.raises(ProtocolError, match="exceeds"):
        agent.encode(big)
    # The refused message consumed no counter: the next frame still authenticates.
    assert coord.feed(agent.encode(SwarmMessage.ping("agent-1"))) != []
    assert coord.stats.rejected == 0
    with pytest.raises(FrameTooLargeError):
        coord.feed(b"\xedR\x01\x01\xff\xff\xff\xff")


def test_join_fields_are_bound_to_the_signature() -> None:
    initiator = LinkInitiator(AGENT, "worker", ["ts"], join_token="tok")
    join = initiator.join_message()
    join.payload = msgspec.structs.replace(join.payload, capabilities=["root"])
    with pytest.raises(AuthError, match="do not match the signed handshake"):
        LinkResponder(COORD, Admission("tok")).accept_join(join)


def test_join_sender_must_match_signed_id() -> None:
    join = LinkInitiator(AGENT, "worker", join_token="tok").join_message()
    join.sender = "coord"
    with pytest.raises(AuthError, match="differs from the signed agent id"):
        LinkResponder(COORD, Admission("tok")).accept_join(join)


def test_error_reply_surfaces_as_auth_error() -> None:
    initiator = LinkInitiator(AGENT, "worker", join_token="wrong")
    responder = LinkResponder(COORD, Admission("tok"))
    with pytest.raises(AuthError) as info:
        responder.accept_join(initiator.join_message())
    reply = SwarmMessage.error("coord", info.value.code, info.value.message)
    with pytest.raises(AuthError, match="join refused: wrong join token") as refused:
        initiator.complete(reply)
    assert refused.value.code == "bad_token"


@given(st.binary(max_size=400))
def test_fuzzed_streams_never_crash_an_authenticated_codec(garbage: bytes) -> None:
    _agent, coord = linked_pair()
    try:
        out = coord.feed(garbage)
    except ProtocolError:
        return
    assert all(isinstance(x, FrameRejected) for x in out)


# -- batch frames -----------------------------------------------------------------------


def _pings(count: int, start: int = 0) -> list[SwarmMessage]:
    return [SwarmMessage.ping("agent-1", start + i) for i in range(count)]


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 300), min_size=1, max_size=8),
    encrypt=st.booleans(),
    chunk=st.integers(1, 97),
)
def test_batches_round_trip_in_order_whatever_the_chunking(
    sizes: list[int], encrypt: bool, chunk: int
) -> None:
    agent, coord = linked_pair(encrypt)
    frames_in, frames_out = coord.stats.frames_in, agent.stats.frames_out
    sent: list[SwarmMessage] = []
    stream = b""
    for size in sizes:
        batch = _pings(size, len(sent))
        sent += batch
        stream += agent.seal([agent.encode_body(m) for m in batch])
    got: list[SwarmMessage | FrameRejected] = []
    for pos in range(0, len(stream), chunk):
        got += coord.feed(stream[pos : pos + chunk])
    assert got == sent
    assert coord.stats.frames_in - frames_in == len(sizes)  # one AEAD check per batch
    assert agent.stats.frames_out - frames_out == len(sizes)


def test_a_batch_is_smaller_than_its_messages_sent_alone() -> None:
    agent, _ = linked_pair()
    msgs = _pings(50)
    alone = sum(len(agent.encode(m)) for m in msgs)
    batched = len(agent.seal([agent.encode_body(m) for m in msgs]))
    assert batched < alone - 49 * 30  # a header and a trailer saved per message


def test_tampered_batch_is_rejected_whole_and_the_stream_goes_on() -> None:
    agent, coord = linked_pair()
    frame = bytearray(agent.seal([agent.encode_body(m) for m in _pings(5)]))
    frame[20] ^= 0x01
    after = _pings(1, 5)
    got = coord.feed(bytes(frame) + agent.encode(after[0]))
    assert isinstance(got[0], FrameRejected)
    assert isinstance(got[0].error, AuthError)
    assert got[1:] == after


def test_a_stale_message_inside_a_batch_is_rejected_alone() -> None:
    agent, coord = linked_pair()
    fresh = _pings(3)
    stale = msgspec.structs.replace(fresh[1], ts_ms=fresh[1].ts_ms - 10 * 60_000)
    batch = [fresh[0], stale, fresh[2]]
    got = coord.feed(agent.seal([agent.encode_body(m) for m in batch]))
    assert got[0] == fresh[0]
    assert got[2] == fresh[2]
    assert isinstance(got[1], FrameRejected)
    assert isinstance(got[1].error, ReplayError)
    assert coord.stats.rejected == 1


def test_replayed_batch_is_rejected() -> None:
    agent, coord = linked_pair()
    frame = agent.seal([agent.encode_body(m) for m in _pings(4)])
    assert len(coord.feed(frame)) == 4
    [again] = coord.feed(frame)
    assert isinstance(again, FrameRejected)
    assert isinstance(again.error, ReplayError)


def test_batch_flag_needs_authentication_and_a_session() -> None:
    plain = MessageCodec()
    with pytest.raises(ProtocolError, match="authenticated link"):
        plain.seal([encode_message(m) for m in _pings(2)])
    with pytest.raises(ProtocolError, match="batched frame must also be authenticated"):
        frame_header(10, FLAG_BATCH)
    # A batch frame that does not authenticate on the peer's side never yields messages.
    bogus = frame_header(10 + 24, FLAG_AUTHENTICATED | FLAG_BATCH) + b"\x92" + b"\x00" * 33
    _, coord = linked_pair()
    [rejected] = coord.feed(bogus)
    assert isinstance(rejected, FrameRejected)


def test_oversize_batch_is_refused_before_sealing() -> None:
    agent, _ = linked_pair(max_frame_size=1000)
    bodies = [agent.encode_body(m) for m in _pings(40)]
    with pytest.raises(FrameTooLargeError, match="batch of 40 messages"):
        agent.seal(bodies)
