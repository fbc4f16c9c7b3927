from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ruvector_edge.errors import AuthError, EdgeError, ProtocolError, ReplayError
from ruvector_edge.identity import (
    TRAILER_SIZE,
    Admission,
    ClientHandshake,
    Identity,
    LinkSession,
    ServerHandshake,
)

HEADER = b"\xedR\x01\x01\x00\x00\x00\x20"
AGENT = Identity.from_seed(b"a" * 32, "agent-1")
COORD = Identity.from_seed(b"c" * 32, "coord")


def handshake(
    token: str | None = "swarm-secret",
    admission: Admission | None = None,
    agent: Identity = AGENT,
) -> tuple[LinkSession, LinkSession]:
    admission = admission or Admission("swarm-secret")
    client = ClientHandshake(agent, join_token=token, app_data=b"join-fields")
    server = ServerHandshake(COORD, admission)
    peer = server.receive_hello(client.hello())
    assert peer.agent_id == agent.agent_id
    assert peer.app_data == b"join-fields"
    welcome, server_session = server.welcome(b"welcome-fields")
    client_session = client.receive_welcome(welcome)
    assert client_session.peer.agent_id == "coord"
    assert client_session.peer.app_data == b"welcome-fields"
    return client_session, server_session


@pytest.mark.parametrize("encrypt", [False, True])
def test_two_peers_exchange_frames_both_ways(encrypt: bool) -> None:
    client, server = handshake()
    assert client.session_id == server.session_id
    for i in range(5):
        body = f"message {i}".encode()
        sealed = client.seal(HEADER, body, encrypt=encrypt)
        assert len(sealed) == len(body) + TRAILER_SIZE
        assert (body in sealed) is not encrypt
        assert server.open(HEADER, sealed, encrypted=encrypt) == body
        back = server.seal(HEADER, body[::-1], encrypt=encrypt)
        assert client.open(HEADER, back, encrypted=encrypt) == body[::-1]


def test_sessions_are_unique_per_handshake() -> None:
    c1, _ = handshake()
    _, s2 = handshake()
    with pytest.raises(AuthError, match="tag is invalid"):
        s2.open(HEADER, c1.seal(HEADER, b"cross-session"))


@given(st.data())
def test_any_tampered_byte_is_detected(data: st.DataObject) -> None:
    client, server = handshake()
    encrypt = data.draw(st.booleans())
    body = data.draw(st.binary(min_size=0, max_size=64))
    sealed = bytearray(client.seal(HEADER, body, encrypt=encrypt))
    header = bytearray(HEADER)
    target = data.draw(st.sampled_from(["header", "sealed"]))
    buf = header if target == "header" else sealed
    index = data.draw(st.integers(0, len(buf) - 1))
    buf[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(AuthError):
        server.open(bytes(header), bytes(sealed), encrypted=encrypt)
    # The forged frame did not advance the replay window: the genuine frame still opens.
    assert (
        server.open(HEADER, client.seal(HEADER, body, encrypt=encrypt), encrypted=encrypt) == body
    )


def test_replayed_frame_is_refused_after_authentication() -> None:
    client, server = handshake()
    sealed = client.seal(HEADER, b"once")
    server.open(HEADER, sealed)
    with pytest.raises(ReplayError):
        server.open(HEADER, sealed)


def test_forged_frame_cannot_lock_out_the_sender() -> None:
    """A forger guessing a far-future counter must not move the window (seed bug)."""
    client, server = handshake()
    forged = bytearray(client.seal(HEADER, b"x"))
    forged[-TRAILER_SIZE : -TRAILER_SIZE + 8] = (10**9).to_bytes(8, "little")
    with pytest.raises(AuthError):
        server.open(HEADER, bytes(forged))
    assert server.replay_guard.highest == -1
    assert server.open(HEADER, client.seal(HEADER, b"y")) == b"y"


def test_wrong_or_missing_join_token_is_refused() -> None:
    with pytest.raises(AuthError, match="wrong join token"):
        handshake(token="guess")
    with pytest.raises(AuthError, match="join token is required"):
        handshake(token=None)


def test_allow_listed_key_joins_without_token() -> None:
    admission = Admission(allowed_keys=[AGENT.public_key])
    handshake(token=None, admission=admission)
    with pytest.raises(AuthError, match="allow-list"):
        handshake(token=None, admission=admission, agent=Identity.generate("stranger"))


def test_open_admission_admits_anyone() -> None:
    handshake(token=None, admission=Admission(open_admission=True))


def test_admission_requires_some_policy() -> None:
    with pytest.raises(AuthError, match="needs a join token"):
        Admission()


def test_nobody_can_claim_another_agents_id() -> None:
    admission = Admission("swarm-secret")
    handshake(admission=admission)
    impostor = Identity.generate(AGENT.agent_id)  # same name, different key
    with pytest.raises(AuthError, match="belongs to another key") as info:
        handshake(admission=admission, agent=impostor)
    assert info.value.code == "id_taken"
    handshake(admission=admission)  # the real owner can still join


def test_allow_list_mapping_pre_binds_ids() -> None:
    admission = Admission("swarm-secret", allowed_keys={"agent-1": AGENT.public_key})
    with pytest.raises(AuthError, match="belongs to another key"):
        handshake(admission=admission, agent=Identity.generate("agent-1"))


def test_replayed_hello_is_refused() -> None:
    admission = Admission("swarm-secret")
    hello = ClientHandshake(AGENT, join_token="swarm-secret").hello()
    ServerHandshake(COORD, admission).receive_hello(hello)
    with pytest.raises(ReplayError):
        ServerHandshake(COORD, admission).receive_hello(hello)


def test_stale_hello_is_refused() -> None:
    admission = Admission("swarm-secret", clock=lambda: 10_000_000)
    client = ClientHandshake(AGENT, join_token="swarm-secret", clock=lambda: 10_000_000 - 60_000)
    with pytest.raises(ReplayError, match="check the clocks"):
        ServerHandshake(COORD, admission).receive_hello(client.hello())


@given(st.data())
def test_tampered_hello_is_refused_and_leaves_no_state(data: st.DataObject) -> None:
    admission = Admission("swarm-secret")
    hello = bytearray(ClientHandshake(AGENT, join_token="swarm-secret").hello())
    index = data.draw(st.integers(0, len(hello) - 1))
    hello[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(EdgeError):
        ServerHandshake(COORD, admission).receive_hello(bytes(hello))
    assert len(admission.nonces) == 0
    assert len(admission.registry) == 0


@given(st.data())
def test_tampered_welcome_is_refused(data: st.DataObject) -> None:
    client = ClientHandshake(AGENT, join_token="swarm-secret")
    server = ServerHandshake(COORD, Admission("swarm-secret"))
    server.receive_hello(client.hello())
    welcome = bytearray(server.welcome(b"settings")[0])
    index = data.draw(st.integers(0, len(welcome) - 1))
    welcome[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(EdgeError):
        client.receive_welcome(bytes(welcome))


def test_client_rejects_a_responder_without_the_token() -> None:
    client = ClientHandshake(AGENT, join_token="swarm-secret")
    server = ServerHandshake(COORD, Admission(open_admission=True))
    server.receive_hello(client.hello())
    with pytest.raises(AuthError, match="does not hold this swarm's join token"):
        client.receive_welcome(server.welcome()[0])


def test_pinned_responder_key() -> None:
    client = ClientHandshake(AGENT, join_token="swarm-secret", expected_peer_key=AGENT.public_key)
    server = ServerHandshake(COORD, Admission("swarm-secret"))
    server.receive_hello(client.hello())
    with pytest.raises(AuthError, match="unexpected public key"):
        client.receive_welcome(server.welcome()[0])


def test_out_of_order_calls_and_garbage_are_protocol_errors() -> None:
    client = ClientHandshake(AGENT)
    with pytest.raises(ProtocolError):
        client.receive_welcome(b"")
    client.hello()
    with pytest.raises(ProtocolError):
        client.hello()
    server = ServerHandshake(COORD, Admission(open_admission=True))
    with pytest.raises(ProtocolError):
        server.welcome()
    with pytest.raises(ProtocolError, match="malformed"):
        server.receive_hello(b"\x00garbage")


def test_short_frame_is_an_auth_error() -> None:
    _, server = handshake()
    with pytest.raises(AuthError, match="shorter"):
        server.open(HEADER, b"tiny")
