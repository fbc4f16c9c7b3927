"""Conventions shared by coordinators and agents on top of the wire messages.

* Learning keys: an agent that ran a task of type ``T`` with approach ``a`` learns
  ``(task_state(T), a)``; the coordinator's learned allocator learns
  ``(alloc_state(T), "role:<role>" | "cap:<capability>")``.
* Error codes sent in ERROR messages (``ErrorPayload.code``).
* The roster snapshot an agent asks for with ``DATA(topic=ROSTER_TOPIC)``; the task
  records a leader replicates to its peers with ``DATA(topic=TASKS_TOPIC)``.
"""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = [
    "COORDINATORS_TOPIC",
    "PEER_LINK_CAPABILITY",
    "ROSTER_TOPIC",
    "TASKS_TOPIC",
    "ErrorCode",
    "PeerInfo",
    "alloc_state",
    "task_state",
]

ROSTER_TOPIC: Final = "swarm.roster"
#: The URLs of every coordinator serving the swarm, sent to an agent when it joins.
COORDINATORS_TOPIC: Final = "swarm.coordinators"
#: Task records the leader replicates to its peer coordinators (``DATA`` on the peer link).
TASKS_TOPIC: Final = "swarm.tasks"
#: Capability a coordinator presents when it links to a peer coordinator (elections, state
#: exchange); other COORDINATOR-role members are clients that never receive tasks.
PEER_LINK_CAPABILITY: Final = "swarm:coordinator-link"


def task_state(task_type: str) -> str:
    """The learning state an agent uses for tasks of ``task_type``."""
    return f"task:{task_type}"


def alloc_state(task_type: str) -> str:
    """The learning state the coordinator's allocator uses for ``task_type``."""
    return f"alloc:{task_type}"


class ErrorCode:
    """Stable ``code`` strings of the swarm's ERROR messages."""

    FORGED_SENDER: Final = "forged_sender"
    UNKNOWN_RECIPIENT: Final = "unknown_recipient"
    NOT_LEADER: Final = "not_leader"
    TASK_CANCELLED: Final = "task_cancelled"
    SWARM_FULL: Final = "swarm_full"
    BAD_PAYLOAD: Final = "bad_payload"
    UNSUPPORTED: Final = "unsupported"
    OVERLOADED: Final = "overloaded"


class PeerInfo(msgspec.Struct, array_like=True, frozen=True):
    """One roster row as agents see it (``get_peers``)."""

    agent_id: str
    role: str
    capabilities: list[str]
    load: float
    connected: bool
    last_seen_ms: int
