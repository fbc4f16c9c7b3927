"""Replay protection: a per-link sequence window and a bounded handshake-nonce cache.

Both are only ever updated *after* authentication succeeded, so a forged frame or
handshake cannot poison them (the seed updated replay state before checking signatures,
which let a forger lock out an honest sender).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from ruvector_edge.errors import ReplayError

__all__ = ["NonceCache", "ReplayGuard", "now_ms"]


def now_ms() -> int:
    """Wall-clock time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


class ReplayGuard:
    """Sliding-window replay check for one link direction (as in IPsec/WireGuard).

    Accepts each sequence number at most once; numbers up to ``window - 1`` below the
    highest seen are accepted once (reordering), older ones are refused. Memory is one
    integer bitmap of ``window`` bits, whatever the traffic. ``check_timestamp`` bounds
    the clock skew of a message's own timestamp in both directions.
    """

    __slots__ = ("_bitmap", "_clock", "_highest", "_mask", "max_skew_ms", "window")

    def __init__(
        self,
        window: int = 1024,
        max_skew_ms: int = 30_000,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self._mask = (1 << window) - 1
        self.max_skew_ms = max_skew_ms
        self._clock = clock
        self._highest = -1
        self._bitmap = 0  # bit i set <=> (highest - i) was seen

    @property
    def highest(self) -> int:
        """The highest sequence number accepted so far (-1 before any)."""
        return self._highest

    def would_accept(self, seq: int) -> bool:
        """Whether ``seq`` is fresh, without recording it."""
        if seq < 0:
            return False
        if seq > self._highest:
            return True
        offset = self._highest - seq
        return offset < self.window and not (self._bitmap >> offset) & 1

    def check_and_update(self, seq: int) -> None:
        """Record an authenticated ``seq``; raise ``ReplayError`` if it was seen or too old."""
        if seq < 0:
            raise ReplayError(f"negative sequence number {seq}")
        if seq > self._highest:
            shift = seq - self._highest
            self._bitmap = ((self._bitmap << shift) | 1) & self._mask
            self._highest = seq
            return
        offset = self._highest - seq
        if offset >= self.window:
            raise ReplayError(
                f"sequence {seq} is older than the replay window ({self.window} below "
                f"{self._highest})"
            )
        if (self._bitmap >> offset) & 1:
            raise ReplayError(f"sequence {seq} was already received (replay)")
        self._bitmap |= 1 << offset

    def timestamp_window(self) -> tuple[int, int]:
        """The ``(oldest, newest)`` timestamps :meth:`check_timestamp` accepts right now."""
        now = self._clock()
        return now - self.max_skew_ms, now + self.max_skew_ms

    def check_timestamp(self, ts_ms: int) -> None:
        """Raise ``ReplayError`` if ``ts_ms`` is further than ``max_skew_ms`` from now."""
        skew = ts_ms - self._clock()
        if abs(skew) > self.max_skew_ms:
            direction = "ahead of" if skew > 0 else "behind"
            raise ReplayError(
                f"message timestamp is {abs(skew)} ms {direction} local time "
                f"(bound {self.max_skew_ms} ms); check the clocks"
            )


class NonceCache:
    """Remembers handshake nonces for the skew window, with bounded memory.

    Entries older than ``max_skew_ms`` are dropped (their timestamps are refused anyway).
    When more than ``capacity`` fresh entries exist, the oldest is evicted and the
    acceptance floor rises to its timestamp, so an evicted nonce can never be replayed.
    """

    __slots__ = ("_clock", "_entries", "_floor_ms", "capacity", "max_skew_ms")

    def __init__(
        self,
        capacity: int = 65_536,
        max_skew_ms: int = 30_000,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.capacity = capacity
        self.max_skew_ms = max_skew_ms
        self._clock = clock
        self._entries: OrderedDict[bytes, int] = OrderedDict()  # nonce -> ts, oldest first
        self._floor_ms = -(1 << 62)

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, nonce: bytes, ts_ms: int) -> None:
        """Raise ``ReplayError`` if ``(nonce, ts_ms)`` is stale, skewed or already seen."""
        now = self._clock()
        if abs(ts_ms - now) > self.max_skew_ms:
            raise ReplayError(
                f"handshake timestamp differs from local time by {abs(ts_ms - now)} ms "
                f"(bound {self.max_skew_ms} ms); check the clocks"
            )
        if ts_ms <= self._floor_ms:
            raise ReplayError("handshake is older than the replay cache can vouch for; retry")
        if nonce in self._entries:
            raise ReplayError("handshake nonce was already used (replay)")

    def add(self, nonce: bytes, ts_ms: int) -> None:
        """Record an authenticated nonce (call :meth:`check` first)."""
        self._expire()
        self._entries[nonce] = ts_ms
        while len(self._entries) > self.capacity:
            _, oldest_ts = self._entries.popitem(last=False)
            self._floor_ms = max(self._floor_ms, oldest_ts)

    def _expire(self) -> None:
        limit = self._clock() - self.max_skew_ms
        # Entries are in arrival order, timestamps roughly so; stop at the first fresh one.
        while self._entries:
            nonce, ts = next(iter(self._entries.items()))
            if ts >= limit:
                break
            del self._entries[nonce]
