"""The link handshake and per-link authenticated encryption (sans-I/O).

Flow (a signed ephemeral Diffie-Hellman, like TLS 1.3 / SIGMA):

1. The initiator sends a *hello*: its agent id, Ed25519 static key, fresh X25519
   ephemeral key, a random nonce and a timestamp, application data (the JOIN fields),
   an optional join-token MAC, all signed with its static key.
2. The responder checks signature, freshness and admission, then answers with a
   *welcome*: its own id, static and ephemeral keys, application data and the hash of
   the hello, signed (and MACed with the join token when it has one).
3. Both derive two ChaCha20-Poly1305 keys (one per direction) with HKDF-SHA256 from the
   X25519 secret, salted with the transcript hash. Ephemeral keys are discarded, which
   gives forward secrecy.

Afterwards every frame carries ``counter(8, LE) | tag(16)``; the frame header is
authenticated as AAD, the body is authenticated and optionally encrypted. The counter
is the AEAD nonce and feeds the link's :class:`ReplayGuard` after the tag checks out.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Final

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ruvector_edge.errors import AuthError, ProtocolError
from ruvector_edge.identity.admission import Admission, join_token_mac
from ruvector_edge.identity.keys import Identity, verify_signature
from ruvector_edge.identity.replay import ReplayGuard, now_ms

__all__ = [
    "LINK_PROTOCOL",
    "TRAILER_SIZE",
    "ClientHandshake",
    "LinkSession",
    "PeerInfo",
    "ServerHandshake",
]

LINK_PROTOCOL: Final = "rvx-link/1"
TAG_SIZE: Final = 16
COUNTER_SIZE: Final = 8
TRAILER_SIZE: Final = COUNTER_SIZE + TAG_SIZE
MAX_APP_DATA: Final = 64 * 1024
_MAX_COUNTER: Final = (1 << 64) - 1
_HKDF_INFO: Final = b"ruvector-edge/link/v1/session-keys"
_NONCE_PREFIX: Final = b"\x00\x00\x00\x00"
_pack_counter = struct.Struct("<Q").pack
_unpack_counter = struct.Struct("<Q").unpack_from

Key32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
Sig64 = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
AgentId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class _Hello(msgspec.Struct, array_like=True, frozen=True):
    protocol: Annotated[str, msgspec.Meta(max_length=32)]
    agent_id: AgentId
    static_key: Key32
    ephemeral_key: Key32
    nonce: Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
    ts_ms: int
    app_data: Annotated[bytes, msgspec.Meta(max_length=MAX_APP_DATA)]
    token_mac: Annotated[bytes, msgspec.Meta(max_length=32)]
    signature: Sig64


class _Welcome(msgspec.Struct, array_like=True, frozen=True):
    protocol: Annotated[str, msgspec.Meta(max_length=32)]
    agent_id: AgentId
    static_key: Key32
    ephemeral_key: Key32
    hello_hash: Key32
    ts_ms: int
    app_data: Annotated[bytes, msgspec.Meta(max_length=MAX_APP_DATA)]
    token_mac: Annotated[bytes, msgspec.Meta(max_length=32)]
    signature: Sig64


_encode = msgspec.msgpack.Encoder().encode
_hello_decoder = msgspec.msgpack.Decoder(_Hello)
_welcome_decoder = msgspec.msgpack.Decoder(_Welcome)
_ZERO_SIG = bytes(64)


def _signed_part(msg: _Hello | _Welcome) -> bytes:
    """Canonical bytes covered by the MAC: every field but ``token_mac`` and ``signature``."""
    fields = msgspec.structs.astuple(msg)[:-2]
    return _encode(fields)


def _signature_input(msg: _Hello | _Welcome) -> bytes:
    """Canonical bytes covered by the signature: everything but the signature."""
    return _encode(msgspec.structs.astuple(msg)[:-1])


def _x25519_public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def _derive_keys(private: X25519PrivateKey, peer_public: bytes, transcript: bytes) -> bytes:
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:
        raise AuthError("peer sent an invalid (low-order) ephemeral key") from None
    return HKDF(hashes.SHA256(), 64, salt=transcript, info=_HKDF_INFO).derive(shared)


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """The authenticated peer at the other end of a link."""

    agent_id: str
    public_key: bytes
    app_data: bytes
    ts_ms: int


class LinkSession:
    """Per-link authenticated encryption with ChaCha20-Poly1305 and replay protection.

    ``seal`` appends ``counter | tag`` to a frame body; ``open`` verifies and strips it.
    The frame header is AAD, so flags and length cannot be altered either.
    """

    __slots__ = (
        "_recv",
        "_send",
        "_send_counter",
        "local_id",
        "peer",
        "replay_guard",
        "session_id",
    )

    def __init__(
        self,
        send_key: bytes,
        recv_key: bytes,
        *,
        local_id: str,
        peer: PeerInfo,
        session_id: bytes,
        replay_window: int = 1024,
        max_skew_ms: int = 30_000,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._send = ChaCha20Poly1305(send_key)
        self._recv = ChaCha20Poly1305(recv_key)
        self._send_counter = 0
        self.local_id = local_id
        self.peer = peer
        self.session_id = session_id
        self.replay_guard = ReplayGuard(replay_window, max_skew_ms, clock)

    @property
    def frames_sent(self) -> int:
        """How many frames this side has sealed."""
        return self._send_counter

    def seal(self, header: bytes, body: bytes, *, encrypt: bool = False) -> bytes:
        """Return ``body' | counter | tag`` (``body'`` encrypted when ``encrypt``)."""
        counter = self._send_counter
        if counter >= _MAX_COUNTER:
            raise AuthError("link counter exhausted; reconnect to re-key")
        self._send_counter = counter + 1
        ctr = _pack_counter(counter)
        nonce = _NONCE_PREFIX + ctr
        if encrypt:
            sealed = self._send.encrypt(nonce, body, header + ctr)
            return b"".join((memoryview(sealed)[:-TAG_SIZE], ctr, memoryview(sealed)[-TAG_SIZE:]))
        tag = self._send.encrypt(nonce, b"", b"".join((header, ctr, body)))
        return b"".join((body, ctr, tag))

    def open(self, header: bytes, sealed: bytes | memoryview, *, encrypted: bool = False) -> bytes:
        """Verify ``sealed`` (from :meth:`seal`) under ``header``; return the plain body.

        Raises ``AuthError`` for a bad tag and ``ReplayError`` for a replayed counter.
        Replay state changes only after the tag has been verified.
        """
        if len(sealed) < TRAILER_SIZE:
            raise AuthError("frame is shorter than its authentication trailer")
        if not isinstance(sealed, bytes):
            sealed = bytes(sealed)
        ctr = sealed[-TRAILER_SIZE:-TAG_SIZE]
        (counter,) = _unpack_counter(ctr)
        guard = self.replay_guard
        if not guard.would_accept(counter):
            guard.check_and_update(counter)  # raises the precise ReplayError
        nonce = _NONCE_PREFIX + ctr
        try:
            if encrypted:
                body = self._recv.decrypt(
                    nonce, sealed[:-TRAILER_SIZE] + sealed[-TAG_SIZE:], header + ctr
                )
            else:
                body = sealed[:-TRAILER_SIZE]
                self._recv.decrypt(nonce, sealed[-TAG_SIZE:], header + ctr + body)
        except InvalidTag:
            raise AuthError("frame authentication tag is invalid (tampered or wrong key)") from None
        guard.check_and_update(counter)
        return body


class _State(Enum):
    START = "start"
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"


class ClientHandshake:
    """Initiator side: ``hello()`` then ``receive_welcome(data)`` -> ``LinkSession``.

    ``join_token`` proves membership to the responder and, when the responder also holds
    it, authenticates the responder back. ``expected_peer_key`` pins the responder's key.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        join_token: str | bytes | None = None,
        app_data: bytes = b"",
        expected_peer_key: bytes | None = None,
        require_peer_token: bool = True,
        replay_window: int = 1024,
        max_skew_ms: int = 30_000,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if len(app_data) > MAX_APP_DATA:
            raise ProtocolError(f"handshake app data is limited to {MAX_APP_DATA} bytes")
        self.identity = identity
        self.join_token = join_token
        self.app_data = app_data
        self.expected_peer_key = expected_peer_key
        self.require_peer_token = require_peer_token and join_token is not None
        self._replay_window = replay_window
        self._max_skew_ms = max_skew_ms
        self._clock = clock
        self._ephemeral = X25519PrivateKey.generate()
        self._hello_bytes = b""
        self._state = _State.START

    def hello(self) -> bytes:
        """The signed hello to send (once)."""
        if self._state is not _State.START:
            raise ProtocolError("hello() was already called for this handshake")
        unsigned = _Hello(
            protocol=LINK_PROTOCOL,
            agent_id=self.identity.agent_id,
            static_key=self.identity.public_key,
            ephemeral_key=_x25519_public(self._ephemeral),
            nonce=os.urandom(16),
            ts_ms=self._clock(),
            app_data=self.app_data,
            token_mac=b"",
            signature=_ZERO_SIG,
        )
        mac = (
            join_token_mac(self.join_token, "hello", _signed_part(unsigned))
            if self.join_token is not None
            else b""
        )
        with_mac = msgspec.structs.replace(unsigned, token_mac=mac)
        signature = self.identity.sign(_signature_input(with_mac), context="link-hello")
        self._hello_bytes = _encode(msgspec.structs.replace(with_mac, signature=signature))
        self._state = _State.WAITING
        return self._hello_bytes

    def receive_welcome(self, data: bytes) -> LinkSession:
        """Verify the responder's welcome and return the established session."""
        if self._state is not _State.WAITING:
            raise ProtocolError(f"unexpected welcome in handshake state {self._state.value}")
        self._state = _State.FAILED
        try:
            welcome = _welcome_decoder.decode(data)
        except (msgspec.MsgspecError, ValueError) as exc:  # ValueError: bad UTF-8
            raise ProtocolError(f"malformed handshake welcome: {exc}") from None
        if welcome.protocol != LINK_PROTOCOL:
            raise ProtocolError(f"peer speaks {welcome.protocol!r}, expected {LINK_PROTOCOL!r}")
        verify_signature(
            welcome.static_key,
            _signature_input(welcome),
            welcome.signature,
            context="link-welcome",
        )
        if not hmac.compare_digest(welcome.hello_hash, hashlib.sha256(self._hello_bytes).digest()):
            raise AuthError("welcome answers a different hello (possible replay or relay)")
        if self.expected_peer_key is not None and not hmac.compare_digest(
            welcome.static_key, self.expected_peer_key
        ):
            raise AuthError(f"peer {welcome.agent_id!r} presented an unexpected public key")
        if self.require_peer_token:
            assert self.join_token is not None
            expected = join_token_mac(self.join_token, "welcome", _signed_part(welcome))
            if not hmac.compare_digest(expected, welcome.token_mac):
                raise AuthError("peer does not hold this swarm's join token", code="bad_token")
        transcript = hashlib.sha256(self._hello_bytes + _signature_input(welcome)).digest()
        okm = _derive_keys(self._ephemeral, welcome.ephemeral_key, transcript)
        peer = PeerInfo(welcome.agent_id, welcome.static_key, welcome.app_data, welcome.ts_ms)
        self._state = _State.DONE
        return LinkSession(
            okm[:32],
            okm[32:],
            local_id=self.identity.agent_id,
            peer=peer,
            session_id=transcript[:16],
            replay_window=self._replay_window,
            max_skew_ms=self._max_skew_ms,
            clock=self._clock,
        )


class ServerHandshake:
    """Responder side: ``receive_hello(data)`` -> ``PeerInfo``, then ``welcome()``.

    ``receive_hello`` enforces signature, freshness and the :class:`Admission` policy and
    raises ``AuthError`` (or ``ProtocolError`` for malformed bytes) so the caller can send
    an ERROR instead of a welcome. Admission state (nonce cache, id binding) is updated
    only once every check has passed.
    """

    def __init__(
        self,
        identity: Identity,
        admission: Admission,
        *,
        replay_window: int = 1024,
    ) -> None:
        self.identity = identity
        self.admission = admission
        self._replay_window = replay_window
        self._hello: _Hello | None = None
        self._hello_bytes = b""
        self._state = _State.START

    def receive_hello(self, data: bytes) -> PeerInfo:
        """Authenticate and admit the initiator's hello."""
        if self._state is not _State.START:
            raise ProtocolError("this handshake already received a hello")
        self._state = _State.FAILED
        try:
            hello = _hello_decoder.decode(data)
        except (msgspec.MsgspecError, ValueError) as exc:  # ValueError: bad UTF-8
            raise ProtocolError(f"malformed handshake hello: {exc}") from None
        if hello.protocol != LINK_PROTOCOL:
            raise ProtocolError(f"peer speaks {hello.protocol!r}, expected {LINK_PROTOCOL!r}")
        verify_signature(
            hello.static_key, _signature_input(hello), hello.signature, context="link-hello"
        )
        admission = self.admission
        admission.nonces.check(hello.nonce, hello.ts_ms)
        admission.authorize(hello.agent_id, hello.static_key, _signed_part(hello), hello.token_mac)
        admission.nonces.add(hello.nonce, hello.ts_ms)
        admission.registry.bind(hello.agent_id, hello.static_key)
        self._hello, self._hello_bytes = hello, bytes(data)
        self._state = _State.WAITING
        return PeerInfo(hello.agent_id, hello.static_key, hello.app_data, hello.ts_ms)

    def welcome(self, app_data: bytes = b"") -> tuple[bytes, LinkSession]:
        """The signed welcome to send back, and the established session."""
        if self._state is not _State.WAITING or self._hello is None:
            raise ProtocolError("welcome() needs a successfully received hello first")
        if len(app_data) > MAX_APP_DATA:
            raise ProtocolError(f"handshake app data is limited to {MAX_APP_DATA} bytes")
        hello = self._hello
        ephemeral = X25519PrivateKey.generate()
        unsigned = _Welcome(
            protocol=LINK_PROTOCOL,
            agent_id=self.identity.agent_id,
            static_key=self.identity.public_key,
            ephemeral_key=_x25519_public(ephemeral),
            hello_hash=hashlib.sha256(self._hello_bytes).digest(),
            ts_ms=self.admission.clock(),
            app_data=app_data,
            token_mac=b"",
            signature=_ZERO_SIG,
        )
        token = self.admission.join_token
        mac = join_token_mac(token, "welcome", _signed_part(unsigned)) if token else b""
        with_mac = msgspec.structs.replace(unsigned, token_mac=mac)
        signature = self.identity.sign(_signature_input(with_mac), context="link-welcome")
        welcome = msgspec.structs.replace(with_mac, signature=signature)
        transcript = hashlib.sha256(self._hello_bytes + _signature_input(welcome)).digest()
        okm = _derive_keys(ephemeral, hello.ephemeral_key, transcript)
        peer = PeerInfo(hello.agent_id, hello.static_key, hello.app_data, hello.ts_ms)
        self._state = _State.DONE
        session = LinkSession(
            okm[32:],
            okm[:32],
            local_id=self.identity.agent_id,
            peer=peer,
            session_id=transcript[:16],
            replay_window=self._replay_window,
            max_skew_ms=self.admission.max_skew_ms,
            clock=self.admission.clock,
        )
        return _encode(welcome), session
