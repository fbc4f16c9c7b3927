"""Transport failures, re-exported from :mod:`ruvector_edge.errors` (one hierarchy)."""

from ruvector_edge.errors import (
    ConnectionClosedError,
    SlowPeerError,
    TransportError,
    TransportTimeoutError,
)

__all__ = [
    "ConnectionClosedError",
    "SlowPeerError",
    "TransportError",
    "TransportTimeoutError",
]
