"""The ``EdgeError`` hierarchy: every failure a user or a peer can cause.

Each error says what was wrong and, where it helps, what to do. Network-facing code
catches ``EdgeError`` on a frame-by-frame basis, so bad input never takes a process down.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "CapacityError",
    "CodecError",
    "ConfigError",
    "ConnectionClosedError",
    "DimensionError",
    "EdgeError",
    "FrameTooLargeError",
    "IdentityError",
    "InvalidInputError",
    "NotFoundError",
    "ProtocolError",
    "ReplayError",
    "SlowPeerError",
    "StorageError",
    "SyncError",
    "TransportError",
    "TransportTimeoutError",
]


class EdgeError(Exception):
    """Base class of every error ruvector-edge raises on purpose.

    ``code`` is a short stable identifier that travels in ERROR messages.
    """

    code: str = "edge_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self.args[0]) if self.args else ""


class ConfigError(EdgeError, ValueError):
    """A setting has an invalid value (bad env var, unknown role, negative interval...)."""

    code = "config_error"


class CodecError(EdgeError, ValueError):
    """Bytes or tensors could not be compressed or decoded (truncated, corrupt, NaN...)."""

    code = "codec_error"


class ProtocolError(EdgeError):
    """A frame or message breaks the wire protocol (bad magic, version, length, body)."""

    code = "protocol_error"


class FrameTooLargeError(ProtocolError):
    """A frame announces a length above the configured maximum; nothing was allocated."""

    code = "frame_too_large"


class IdentityError(EdgeError):
    """A key file or key material is missing, malformed or has unsafe permissions."""

    code = "identity_error"


class AuthError(EdgeError):
    """Authentication or admission failed: bad signature, tag, token or key binding."""

    code = "auth_error"


class ReplayError(AuthError):
    """An authenticated frame or handshake was seen before or lies outside the skew bound."""

    code = "replay"


class InvalidInputError(EdgeError, ValueError):
    """An argument is invalid: NaN in a vector, empty content, a negative count..."""

    code = "invalid_input"


class DimensionError(InvalidInputError):
    """A vector or tensor has the wrong dimension for the store it is used with."""

    code = "dimension_mismatch"


class NotFoundError(EdgeError, KeyError):
    """An id, key or name does not exist."""

    code = "not_found"

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class CapacityError(EdgeError):
    """A bounded store or queue is full and its policy forbids making room."""

    code = "capacity"


class SyncError(EdgeError):
    """Peer state cannot be merged (foreign format, wrong owner, bad signature...)."""

    code = "sync_error"


class StorageError(EdgeError):
    """Persistence failed: unreadable data dir, corrupt database or index file."""

    code = "storage_error"


class TransportError(EdgeError):
    """A link could not be opened or used (refused, unreachable, no listener, TLS failure)."""

    code = "transport_error"


class ConnectionClosedError(TransportError):
    """The connection is closed (by either side); ``reason`` says why."""

    code = "connection_closed"

    def __init__(self, message: str, *, reason: str = "", code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.reason = reason or message


class TransportTimeoutError(TransportError, TimeoutError):
    """A deadline passed: handshake, connect, receive, or a send while the link was down."""

    code = "timeout"


class SlowPeerError(CapacityError):
    """The peer did not drain its send queue within ``send_timeout``; it was disconnected."""

    code = "slow_peer"
