from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ruvector_edge.errors import AuthError, FrameTooLargeError, ProtocolError, ReplayError
from ruvector_edge.identity import Admission, Identity
from ruvector_edge.wire import (
    FLAG_AUTHENTICATED,
    FrameRejected,
    LinkInitiator,
    LinkResponder,
    MessageCodec,
    PingPayload,
    SwarmMessage,
    encode_frame,
    encode_message,
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
