"""ruvector-edge: a runtime and library for self-learning agent swarms."""

from ruvector_edge.codec import CompressionLevel, TensorCodec
from ruvector_edge.config import AgentRole, SwarmConfig, Transport
from ruvector_edge.errors import (
    AuthError,
    CapacityError,
    CodecError,
    ConfigError,
    ConnectionClosedError,
    DimensionError,
    EdgeError,
    FrameTooLargeError,
    IdentityError,
    InvalidInputError,
    NotFoundError,
    ProtocolError,
    ReplayError,
    SlowPeerError,
    StorageError,
    SyncError,
    TransportError,
    TransportTimeoutError,
)
from ruvector_edge.learning import IntelligenceSync
from ruvector_edge.memory import SearchHit, TierPolicy, VectorEntry, VectorMemory
from ruvector_edge.swarm import Coordinator, SwarmAgent, TaskContext, TaskOutcome

__version__ = "0.1.0"

__all__ = [
    "AgentRole",
    "AuthError",
    "CapacityError",
    "CodecError",
    "CompressionLevel",
    "ConfigError",
    "ConnectionClosedError",
    "Coordinator",
    "DimensionError",
    "EdgeError",
    "FrameTooLargeError",
    "IdentityError",
    "IntelligenceSync",
    "InvalidInputError",
    "NotFoundError",
    "ProtocolError",
    "ReplayError",
    "SearchHit",
    "SlowPeerError",
    "StorageError",
    "SwarmAgent",
    "SwarmConfig",
    "SyncError",
    "TaskContext",
    "TaskOutcome",
    "TensorCodec",
    "TierPolicy",
    "Transport",
    "TransportError",
    "TransportTimeoutError",
    "VectorEntry",
    "VectorMemory",
    "__version__",
]
