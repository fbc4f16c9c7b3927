"""The link handshake carried in JOIN / WELCOME messages (sans-I/O).

The JOIN's role, capabilities and version are bound into the signed hello, and the
WELCOME's swarm settings into the signed welcome, so no field of either can be altered
in transit. Transports drive these two objects and then attach the resulting
``LinkSession`` to their :class:`MessageCodec`.
"""

from __future__ import annotations

import hmac

import msgspec

from ruvector_edge.config import AgentRole
from ruvector_edge.errors import AuthError, ProtocolError
from ruvector_edge.identity import (
    Admission,
    ClientHandshake,
    Identity,
    LinkSession,
    PeerInfo,
    ServerHandshake,
)
from ruvector_edge.wire.messages import (
    ErrorPayload,
    JoinPayload,
    MessageType,
    SwarmMessage,
    WelcomePayload,
)

__all__ = ["LinkInitiator", "LinkResponder"]

_encode = msgspec.msgpack.Encoder().encode


def _join_binding(payload: JoinPayload) -> bytes:
    return _encode(("join", payload.agent_role.value, payload.capabilities, payload.version))


def _welcome_binding(payload: WelcomePayload) -> bytes:
    return _encode(
        (
            "welcome",
            payload.swarm_id,
            payload.coordinator_id,
            payload.sync_interval_ms,
            payload.heartbeat_interval_ms,
            payload.max_frame_size,
            payload.members,
        )
    )


class LinkInitiator:
    """The joining side: build a signed JOIN, then verify the WELCOME."""

    def __init__(
        self,
        identity: Identity,
        role: AgentRole | str = AgentRole.WORKER,
        capabilities: list[str] | None = None,
        *,
        version: str = "",
        join_token: str | bytes | None = None,
        expected_peer_key: bytes | None = None,
        max_skew_ms: int = 30_000,
    ) -> None:
        self.identity = identity
        self._payload = JoinPayload(
            agent_role=AgentRole.parse(role),
            capabilities=list(capabilities or []),
            version=version,
        )
        self._handshake = ClientHandshake(
            identity,
            join_token=join_token,
            app_data=_join_binding(self._payload),
            expected_peer_key=expected_peer_key,
            max_skew_ms=max_skew_ms,
        )
        self.welcome: WelcomePayload | None = None
        self.peer: PeerInfo | None = None

    def join_message(self) -> SwarmMessage:
        """The JOIN to send first."""
        hello = self._handshake.hello()
        payload = msgspec.structs.replace(self._payload, handshake=hello)
        return SwarmMessage.new(self.identity.agent_id, payload)

    def complete(self, msg: SwarmMessage) -> LinkSession:
        """Verify the responder's WELCOME (or raise the ERROR it sent) -> session."""
        if isinstance(msg.payload, ErrorPayload):
            raise AuthError(f"join refused: {msg.payload.message}", code=msg.payload.code)
        if not isinstance(msg.payload, WelcomePayload):
            raise ProtocolError(f"expected WELCOME, got {msg.type.value}")
        session = self._handshake.receive_welcome(msg.payload.handshake)
        if not hmac.compare_digest(session.peer.app_data, _welcome_binding(msg.payload)):
            raise AuthError("WELCOME fields do not match the signed handshake (tampered)")
        if msg.sender != session.peer.agent_id:
            raise AuthError("WELCOME sender differs from the handshake's identity")
        self.welcome, self.peer = msg.payload, session.peer
        return session


class LinkResponder:
    """The admitting side: verify a JOIN against the admission policy, then WELCOME."""

    def __init__(self, identity: Identity, admission: Admission) -> None:
        self.identity = identity
        self._handshake = ServerHandshake(identity, admission)
        self.join: JoinPayload | None = None
        self.peer: PeerInfo | None = None

    def accept_join(self, msg: SwarmMessage) -> tuple[PeerInfo, JoinPayload]:
        """Authenticate and admit a JOIN; raises ``AuthError``/``ProtocolError``."""
        if msg.type is not MessageType.JOIN or not isinstance(msg.payload, JoinPayload):
            raise ProtocolError(f"expected JOIN, got {msg.type.value}")
        peer = self._handshake.receive_hello(msg.payload.handshake)
        if not hmac.compare_digest(peer.app_data, _join_binding(msg.payload)):
            raise AuthError("JOIN fields do not match the signed handshake (tampered)")
        if msg.sender != peer.agent_id:
            raise AuthError(
                f"JOIN sender {msg.sender!r} differs from the signed agent id {peer.agent_id!r}"
            )
        self.join, self.peer = msg.payload, peer
        return peer, msg.payload

    def welcome_message(
        self,
        swarm_id: str,
        *,
        sync_interval_ms: int = 1000,
        heartbeat_interval_ms: int = 1000,
        max_frame_size: int = 16 * 1024 * 1024,
        members: list[str] | None = None,
    ) -> tuple[SwarmMessage, LinkSession]:
        """The signed WELCOME to send back, and the established session."""
        if self.peer is None:
            raise ProtocolError("welcome_message() needs an accepted JOIN first")
        payload = WelcomePayload(
            swarm_id=swarm_id,
            coordinator_id=self.identity.agent_id,
            sync_interval_ms=sync_interval_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            max_frame_size=max_frame_size,
            members=list(members or []),
        )
        hs, session = self._handshake.welcome(_welcome_binding(payload))
        payload = msgspec.structs.replace(payload, handshake=hs)
        return SwarmMessage.new(
            self.identity.agent_id, payload, recipient=self.peer.agent_id
        ), session
