"""Message types, payload structs and the ``SwarmMessage`` envelope.

Every payload is a msgspec struct tagged with its message type, so decoding validates
structure and types in one native pass, and an envelope whose ``type`` disagrees with
its payload is refused.
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from ruvector_edge.config import AgentRole
from ruvector_edge.identity.replay import now_ms

__all__ = [
    "DEFAULT_TTL",
    "AckPayload",
    "AgentExportPayload",
    "CoordinatorPayload",
    "DataPayload",
    "ElectionPayload",
    "Envelope",
    "ErrorPayload",
    "JoinPayload",
    "LeavePayload",
    "MessageType",
    "Payload",
    "PingPayload",
    "PongPayload",
    "RequestMemoriesPayload",
    "RequestPatternsPayload",
    "SwarmMessage",
    "SyncMemoriesPayload",
    "SyncPatternsPayload",
    "TaskPayload",
    "TaskResultPayload",
    "VotePayload",
    "WelcomePayload",
    "new_message_id",
]

DEFAULT_TTL = 8
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Text = Annotated[str, msgspec.Meta(max_length=65_536)]
Count = Annotated[int, msgspec.Meta(ge=0)]


class MessageType(StrEnum):
    """Every message kind on the wire (the seed's set plus what the product needs)."""

    JOIN = "join"
    WELCOME = "welcome"
    LEAVE = "leave"
    PING = "ping"
    PONG = "pong"
    SYNC_PATTERNS = "sync_patterns"
    REQUEST_PATTERNS = "request_patterns"
    SYNC_MEMORIES = "sync_memories"
    REQUEST_MEMORIES = "request_memories"
    BROADCAST_TASK = "broadcast_task"
    TASK_RESULT = "task_result"
    ELECTION = "election"
    COORDINATOR = "coordinator"
    ERROR = "error"
    ACK = "ack"
    AGENT_EXPORT = "agent_export"
    VOTE = "vote"
    DATA = "data"


class _Payload(msgspec.Struct, kw_only=True, tag_field="t", forbid_unknown_fields=False):
    """Base of all payloads; unknown fields are ignored so newer peers can add some."""


class JoinPayload(_Payload, tag=MessageType.JOIN.value):
    """An agent asks to join; ``handshake`` is the signed link hello from ``identity``."""

    agent_role: AgentRole
    capabilities: list[Id] = msgspec.field(default_factory=list)
    version: Annotated[str, msgspec.Meta(max_length=64)] = ""
    handshake: bytes = b""


class WelcomePayload(_Payload, tag=MessageType.WELCOME.value):
    """The coordinator admits an agent and tells it the swarm's settings."""

    swarm_id: Id
    coordinator_id: Id
    handshake: bytes = b""
    sync_interval_ms: Count = 1000
    heartbeat_interval_ms: Count = 1000
    max_frame_size: Count = 16 * 1024 * 1024
    members: list[Id] = msgspec.field(default_factory=list)


class LeavePayload(_Payload, tag=MessageType.LEAVE.value):
    """An agent leaves gracefully."""

    reason: Text = ""


class PingPayload(_Payload, tag=MessageType.PING.value):
    """Heartbeat; ``load`` is the sender's current load (0..1 or tasks in flight)."""

    nonce: Count = 0
    load: float = 0.0


class PongPayload(_Payload, tag=MessageType.PONG.value):
    """Answer to a PING with the same nonce."""

    nonce: Count = 0
    load: float = 0.0


class _SyncBase(_Payload):
    data: bytes
    version: Count = 0
    version_vector: dict[Id, Count] = msgspec.field(default_factory=dict)
    entry_count: Count = 0
    origin: Id | None = None
    signature: bytes = b""


class SyncPatternsPayload(_SyncBase, tag=MessageType.SYNC_PATTERNS.value):
    """A learning-state delta (codec-compressed ``data``), optionally origin-signed."""


class SyncMemoriesPayload(_SyncBase, tag=MessageType.SYNC_MEMORIES.value):
    """A vector-memory delta (codec-compressed ``data``), optionally origin-signed."""


class _RequestBase(_Payload):
    since_version: Count = 0
    # 0 = no limit; otherwise the answer may be partial (patterns: whole origins, at
    # least one; memories: the oldest changes first) and the requester asks again.
    max_entries: Count = 0
    version_vector: dict[Id, Count] = msgspec.field(default_factory=dict)
    # After answering, keep pushing what changes to the requester on this link (one
    # shared delta per sync interval instead of a pull per agent per interval).
    subscribe: bool = False


class RequestPatternsPayload(_RequestBase, tag=MessageType.REQUEST_PATTERNS.value):
    """Ask for learning-state entries newer than the requester's version vector."""


class RequestMemoriesPayload(_RequestBase, tag=MessageType.REQUEST_MEMORIES.value):
    """Ask for memory entries newer than the requester's version vector."""


class TaskPayload(_Payload, tag=MessageType.BROADCAST_TASK.value):
    """A task to run (the seed's fields plus required capabilities)."""

    task_id: Id
    task_type: Id
    description: Text = ""
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    priority: int = 0
    timeout_ms: Count = 30_000
    required_capabilities: list[Id] = msgspec.field(default_factory=list)


class TaskResultPayload(_Payload, tag=MessageType.TASK_RESULT.value):
    """The outcome of a task; ``reward`` feeds learning."""

    task_id: Id
    success: bool
    result: Any = None
    reward: float = 0.0
    error: Text | None = None
    execution_time_ms: Count = 0
    action: Id | None = None


class ElectionPayload(_Payload, tag=MessageType.ELECTION.value):
    """A coordinator candidate asks for votes in ``term``."""

    candidate_id: Id
    priority: int = 0
    term: Count = 0
    last_version: Count = 0


class CoordinatorPayload(_Payload, tag=MessageType.COORDINATOR.value):
    """Announces the elected coordinator for ``term``."""

    coordinator_id: Id
    term: Count = 0
    url: Text | None = None


class ErrorPayload(_Payload, tag=MessageType.ERROR.value):
    """Why something was refused; ``ref_id`` names the offending message if known."""

    code: Id
    message: Text
    ref_id: Id | None = None


class AckPayload(_Payload, tag=MessageType.ACK.value):
    """Acknowledges a message (e.g. a durable write) by id."""

    ack_id: Id
    detail: Text = ""


class AgentExportPayload(_Payload, tag=MessageType.AGENT_EXPORT.value):
    """A federated-learning export from an agent (codec-compressed, origin-signed)."""

    data: bytes
    format: Id = "sona-export/1"
    origin: Id | None = None
    signature: bytes = b""


class VotePayload(_Payload, tag=MessageType.VOTE.value):
    """A coordinator's answer to an ELECTION: vote ``granted`` for the candidate in ``term``."""

    candidate_id: Id
    term: Count = 0
    granted: bool = False


class DataPayload(_Payload, tag=MessageType.DATA.value):
    """An application message between agents (``send_message``/``broadcast``).

    ``topic`` lets receivers dispatch; ``data`` is any msgpack-encodable value.
    """

    topic: Id
    data: Any = None


Payload = (
    JoinPayload
    | WelcomePayload
    | LeavePayload
    | PingPayload
    | PongPayload
    | SyncPatternsPayload
    | RequestPatternsPayload
    | SyncMemoriesPayload
    | RequestMemoriesPayload
    | TaskPayload
    | TaskResultPayload
    | ElectionPayload
    | CoordinatorPayload
    | ErrorPayload
    | AckPayload
    | AgentExportPayload
    | VotePayload
    | DataPayload
)


def new_message_id() -> str:
    """A random 128-bit message id as 32 hex characters."""
    return os.urandom(16).hex()


_PAYLOAD_TAGS: dict[type, Any] = {}  # payload struct -> its tag, checked per message


class SwarmMessage(msgspec.Struct, array_like=True, kw_only=True):
    """The envelope: ``{id, type, sender, recipient|None, ts_ms, seq, ttl, payload}``."""

    id: Id
    type: MessageType
    sender: Id
    recipient: Id | None
    ts_ms: Count
    seq: Count
    ttl: Annotated[int, msgspec.Meta(ge=0, le=255)]
    payload: Payload

    def __post_init__(self) -> None:
        kind = type(self.payload)
        tag = _PAYLOAD_TAGS.get(kind)
        if tag is None:
            tag = _PAYLOAD_TAGS[kind] = kind.__struct_config__.tag
        if tag != self.type:  # a StrEnum member equals its value; .value is slow
            raise ValueError(f"envelope type {self.type.value!r} carries a {tag!r} payload")

    # -- constructors (the seed's names) --------------------------------------------
    @classmethod
    def new(
        cls,
        sender: str,
        payload: Payload,
        *,
        recipient: str | None = None,
        ttl: int = DEFAULT_TTL,
        seq: int = 0,
    ) -> SwarmMessage:
        """A message whose type is taken from ``payload``."""
        kind = MessageType(str(type(payload).__struct_config__.tag))
        return cls(
            id=new_message_id(),
            type=kind,
            sender=sender,
            recipient=recipient,
            ts_ms=now_ms(),
            seq=seq,
            ttl=ttl,
            payload=payload,
        )

    @classmethod
    def directed(cls, sender: str, recipient: str, payload: Payload) -> SwarmMessage:
        """A message for one recipient."""
        return cls.new(sender, payload, recipient=recipient)

    @classmethod
    def join(
        cls,
        agent_id: str,
        role: AgentRole | str,
        capabilities: list[str] | None = None,
        *,
        version: str = "",
        handshake: bytes = b"",
    ) -> SwarmMessage:
        """JOIN from ``agent_id``."""
        payload = JoinPayload(
            agent_role=AgentRole.parse(role),
            capabilities=list(capabilities or []),
            version=version,
            handshake=handshake,
        )
        return cls.new(agent_id, payload)

    @classmethod
    def leave(cls, agent_id: str, reason: str = "") -> SwarmMessage:
        """LEAVE from ``agent_id``."""
        return cls.new(agent_id, LeavePayload(reason=reason))

    @classmethod
    def ping(cls, agent_id: str, nonce: int = 0, load: float = 0.0) -> SwarmMessage:
        """PING heartbeat."""
        return cls.new(agent_id, PingPayload(nonce=nonce, load=load))

    @classmethod
    def pong(cls, agent_id: str, recipient: str, nonce: int = 0, load: float = 0.0) -> SwarmMessage:
        """PONG answering a PING."""
        return cls.new(agent_id, PongPayload(nonce=nonce, load=load), recipient=recipient)

    @classmethod
    def sync_patterns(
        cls,
        agent_id: str,
        data: bytes,
        *,
        version: int = 0,
        version_vector: dict[str, int] | None = None,
        entry_count: int = 0,
        recipient: str | None = None,
    ) -> SwarmMessage:
        """SYNC_PATTERNS carrying a serialized learning delta."""
        payload = SyncPatternsPayload(
            data=data,
            version=version,
            version_vector=dict(version_vector or {}),
            entry_count=entry_count,
        )
        return cls.new(agent_id, payload, recipient=recipient)

    @classmethod
    def request_patterns(
        cls,
        agent_id: str,
        recipient: str | None = None,
        *,
        since_version: int = 0,
        max_entries: int = 0,
        version_vector: dict[str, int] | None = None,
        subscribe: bool = False,
    ) -> SwarmMessage:
        """REQUEST_PATTERNS for entries newer than ``version_vector`` (and, with
        ``subscribe``, every later change pushed on this link)."""
        payload = RequestPatternsPayload(
            since_version=since_version,
            max_entries=max_entries,
            version_vector=dict(version_vector or {}),
            subscribe=subscribe,
        )
        return cls.new(agent_id, payload, recipient=recipient)

    @classmethod
    def broadcast_task(
        cls,
        sender: str,
        task_id: str,
        task_type: str,
        description: str = "",
        parameters: dict[str, Any] | None = None,
        *,
        priority: int = 0,
        timeout_ms: int = 30_000,
        required_capabilities: list[str] | None = None,
    ) -> SwarmMessage:
        """BROADCAST_TASK: a task for the swarm."""
        payload = TaskPayload(
            task_id=task_id,
            task_type=task_type,
            description=description,
            parameters=dict(parameters or {}),
            priority=priority,
            timeout_ms=timeout_ms,
            required_capabilities=list(required_capabilities or []),
        )
        return cls.new(sender, payload)

    @classmethod
    def task_result(
        cls,
        sender: str,
        recipient: str | None,
        task_id: str,
        success: bool,
        *,
        result: Any = None,
        reward: float = 0.0,
        error: str | None = None,
        execution_time_ms: int = 0,
        action: str | None = None,
    ) -> SwarmMessage:
        """TASK_RESULT for ``task_id``."""
        payload = TaskResultPayload(
            task_id=task_id,
            success=success,
            result=result,
            reward=reward,
            error=error,
            execution_time_ms=execution_time_ms,
            action=action,
        )
        return cls.new(sender, payload, recipient=recipient)

    @classmethod
    def election(cls, candidate_id: str, term: int, priority: int = 0) -> SwarmMessage:
        """ELECTION: ``candidate_id`` stands for ``term``."""
        return cls.new(
            candidate_id, ElectionPayload(candidate_id=candidate_id, priority=priority, term=term)
        )

    @classmethod
    def coordinator(cls, coordinator_id: str, term: int, url: str | None = None) -> SwarmMessage:
        """COORDINATOR: announces the leader of ``term``."""
        payload = CoordinatorPayload(coordinator_id=coordinator_id, term=term, url=url)
        return cls.new(coordinator_id, payload)

    @classmethod
    def error(
        cls,
        sender: str,
        code: str,
        message: str,
        *,
        recipient: str | None = None,
        ref_id: str | None = None,
    ) -> SwarmMessage:
        """ERROR with a stable ``code`` and a human message."""
        payload = ErrorPayload(code=code, message=message[:65_536], ref_id=ref_id)
        return cls.new(sender, payload, recipient=recipient)

    @classmethod
    def vote(cls, voter_id: str, candidate_id: str, term: int, granted: bool) -> SwarmMessage:
        """VOTE from ``voter_id`` for ``candidate_id`` in ``term`` (granted or not)."""
        payload = VotePayload(candidate_id=candidate_id, term=term, granted=granted)
        return cls.new(voter_id, payload, recipient=candidate_id)

    @classmethod
    def data(
        cls, sender: str, topic: str, data: Any = None, *, recipient: str | None = None
    ) -> SwarmMessage:
        """DATA: an application message on ``topic`` (to ``recipient``, or everyone)."""
        return cls.new(sender, DataPayload(topic=topic, data=data), recipient=recipient)

    @classmethod
    def ack(cls, sender: str, recipient: str | None, ack_id: str, detail: str = "") -> SwarmMessage:
        """ACK of message ``ack_id``."""
        return cls.new(sender, AckPayload(ack_id=ack_id, detail=detail), recipient=recipient)

    # -- routing helpers ------------------------------------------------------------
    def decrement_ttl(self) -> bool:
        """Spend one hop; return False (and keep ttl at 0) when the message must be dropped."""
        if self.ttl <= 0:
            return False
        self.ttl -= 1
        return True

    def age_ms(self, now: int | None = None) -> int:
        """Milliseconds since ``ts_ms``; 0 for timestamps in the future (never negative)."""
        current = now_ms() if now is None else now
        return max(0, current - self.ts_ms)

    def is_expired(self, max_age_ms: int, now: int | None = None) -> bool:
        """Whether the message is older than ``max_age_ms`` (future timestamps are not)."""
        return self.age_ms(now) > max_age_ms

    @property
    def is_broadcast(self) -> bool:
        """True when the message has no single recipient."""
        return self.recipient is None


Envelope = SwarmMessage
"""DESIGN.md's name for the envelope struct."""
