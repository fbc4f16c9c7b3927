"""ruvector-edge: a runtime and library for self-learning agent swarms."""

from ruvector_edge.config import AgentRole, SwarmConfig, Transport
from ruvector_edge.errors import (
    AuthError,
    CodecError,
    ConfigError,
    EdgeError,
    FrameTooLargeError,
    IdentityError,
    ProtocolError,
    ReplayError,
)

__version__ = "0.1.0"

__all__ = [
    "AgentRole",
    "AuthError",
    "CodecError",
    "ConfigError",
    "EdgeError",
    "FrameTooLargeError",
    "IdentityError",
    "ProtocolError",
    "ReplayError",
    "SwarmConfig",
    "Transport",
    "__version__",
]
