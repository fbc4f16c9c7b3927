"""Settings shared by every transport: limits, timeouts, back-pressure and reconnection."""

from __future__ import annotations

import dataclasses
import random
import ssl
from collections.abc import Iterator
from pathlib import Path

from ruvector_edge.config import DEFAULT_MAX_FRAME_SIZE, SwarmConfig
from ruvector_edge.errors import ConfigError

__all__ = ["ReconnectPolicy", "TransportOptions", "WelcomeSettings"]


@dataclasses.dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Jittered exponential backoff for a client that redials a dropped link.

    Attempt ``n`` (0-based) waits ``d_n = min(max_delay, initial_delay * multiplier**n)``
    scaled by a uniform factor in ``[1 - jitter, 1]``, so a swarm of agents whose
    coordinator restarted does not reconnect in lock-step. ``max_attempts=None`` retries
    until the connection is closed. A refused handshake (``AuthError``) is never retried:
    a wrong token does not get better by waiting.
    """

    initial_delay: float = 0.1
    max_delay: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.initial_delay <= self.max_delay:
            raise ConfigError(
                f"reconnect delays need 0 < initial_delay <= max_delay, got "
                f"{self.initial_delay} and {self.max_delay}"
            )
        if self.multiplier < 1:
            raise ConfigError(f"reconnect multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"reconnect jitter must be within [0, 1], got {self.jitter}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1 or None, got {self.max_attempts}")

    def delays(self) -> Iterator[float]:
        """The successive waits (seconds); finite when ``max_attempts`` is set."""
        rng = random.Random(self.seed)
        base = self.initial_delay
        n = 0
        while self.max_attempts is None or n < self.max_attempts:
            yield base * (1.0 - self.jitter * rng.random())
            base = min(self.max_delay, base * self.multiplier)
            n += 1


@dataclasses.dataclass(frozen=True, slots=True)
class WelcomeSettings:
    """What a listener tells an admitted agent in its WELCOME (signed into the handshake)."""

    swarm_id: str = "ruvector-edge"
    sync_interval_ms: int = 1000
    heartbeat_interval_ms: int = 1000
    members: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: SwarmConfig, swarm_id: str = "ruvector-edge") -> WelcomeSettings:
        """The swarm's intervals from ``config``."""
        return cls(
            swarm_id=swarm_id,
            sync_interval_ms=config.sync_interval_ms,
            heartbeat_interval_ms=config.heartbeat_interval_ms,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class TransportOptions:
    """Limits and timeouts for one connection or listener (all times in seconds).

    Memory per connection is bounded on both sides: at most ``max_send_queue`` messages /
    ``max_send_bytes`` bytes wait to be written (plus one frame larger than that limit,
    so a big frame can always be sent alone), and at most ``max_recv_queue`` messages /
    ``max_recv_bytes`` bytes wait to be read by the application (exceeded by at most one
    batch frame: 256 messages or 256 KiB); beyond that the connection stops reading from
    the link, so the peer's sends back up to its own bounded queue. A ``send`` that finds
    the queue full waits up to ``send_timeout``; if the peer still has not drained it, the
    peer is deemed stuck, the connection is aborted and ``send`` raises ``SlowPeerError``.

    Fields: ``max_frame_size`` (bytes per frame, checked before buffering; a listener
    announces it in the WELCOME and the initiator never sends more), ``encrypt`` (encrypt
    payloads, not only authenticate them), ``max_clock_skew_ms`` (handshake and frame
    timestamps), ``handshake_timeout`` (JOIN -> WELCOME, and the shm rendezvous),
    ``connect_timeout`` (dial, including retries), ``idle_timeout`` (close a link that
    received nothing for that long; ``None``: never), ``send_timeout``, ``close_timeout``
    (flush on close, close handshakes, handler grace on listener shutdown),
    ``max_connections``/``backlog`` (listener: live connections / admitted but not yet
    accepted; beyond them a JOIN gets ERROR ``capacity``), ``reconnect`` (client: redial a
    dropped link, see :class:`ReconnectPolicy`). WebSocket: ``ws_ping_interval``/
    ``ws_ping_timeout`` (keep-alive), ``ws_coalesce`` (pack queued frames into one
    message), ``ssl`` (an ``SSLContext``; required for ``wss://`` listeners). Shared
    memory: ``shm_ring_size`` (bytes per direction, a power of two, set by the listener),
    ``shm_dir`` (rendezvous directory), ``shm_poll_us`` (on a hot link — arrivals at most
    1 ms apart — keep polling the emptied inbound ring through the event loop for this
    many microseconds before parking on the wake-up socket, so the peer's next record
    needs no syscall; an idle link never polls; 0 makes the link purely event-driven).
    """

    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    encrypt: bool = False
    max_clock_skew_ms: int = 30_000
    handshake_timeout: float = 10.0
    connect_timeout: float = 10.0
    idle_timeout: float | None = None
    send_timeout: float = 10.0
    close_timeout: float = 5.0
    max_send_queue: int = 1024
    max_send_bytes: int = 8 * 1024 * 1024
    max_recv_queue: int = 1024
    max_recv_bytes: int = 8 * 1024 * 1024
    max_connections: int = 1024
    backlog: int = 128
    reconnect: ReconnectPolicy | None = None
    # WebSocket
    ws_ping_interval: float | None = 20.0
    ws_ping_timeout: float | None = 20.0
    ws_coalesce: bool = True
    ssl: ssl.SSLContext | None = None
    # Shared memory
    shm_ring_size: int = 1 << 20
    shm_poll_us: int = 200
    shm_dir: Path | None = None

    def __post_init__(self) -> None:
        if not 64 <= self.max_frame_size <= 1 << 31:
            raise ConfigError(
                f"max_frame_size must be between 64 bytes and 2 GiB, got {self.max_frame_size}"
            )
        for name in ("handshake_timeout", "connect_timeout", "send_timeout", "close_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ConfigError(f"idle_timeout must be positive or None, got {self.idle_timeout}")
        for name in (
            "max_send_queue",
            "max_send_bytes",
            "max_recv_queue",
            "max_recv_bytes",
            "max_connections",
            "backlog",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.shm_poll_us <= 10_000:
            raise ConfigError(f"shm_poll_us must be within 0..10000, got {self.shm_poll_us}")
        ring = self.shm_ring_size
        if ring < 4096 or ring & (ring - 1) or ring > 1 << 30:
            raise ConfigError(
                f"shm_ring_size must be a power of two between 4 KiB and 1 GiB, got {ring}"
            )

    def replace(self, **changes: object) -> TransportOptions:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_config(cls, config: SwarmConfig, **overrides: object) -> TransportOptions:
        """Options matching a ``SwarmConfig``: frame size, encryption, clock skew, and an
        idle timeout of ten heartbeats (at least 5 s) so a silent peer is dropped."""
        idle = max(5.0, 10 * config.heartbeat_interval_ms / 1000.0)
        base = cls(
            max_frame_size=config.max_frame_size,
            encrypt=config.encrypt_payloads,
            max_clock_skew_ms=config.max_clock_skew_ms,
            idle_timeout=idle,
            max_connections=max(1, config.max_agents),
        )
        return base.replace(**overrides) if overrides else base
