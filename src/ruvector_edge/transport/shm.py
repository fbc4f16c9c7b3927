"""Shared-memory transport (``shm://NAME``): two processes, one ring per direction.

**Rings.** Each direction is a single-producer/single-consumer ring in its own
``multiprocessing.shared_memory`` segment: a 256-byte header (monotonic ``tail`` written
only by the producer and ``head`` written only by the consumer, on separate cache lines,
plus one wake-up flag each) and a power-of-two data area holding length-prefixed records
(``len u32 | 0 u32 | payload``, 8-byte aligned, wrapping around the end in two copies).
A record is one link write — a frame, or one piece of a frame larger than half the ring
(pieces are re-joined by the wire ``FrameDecoder``, which checks the announced length
before buffering anything). A full ring never overwrites: the producer waits for the
consumer. Counters are validated on every read, so a corrupt or hostile peer can make us
close the link but never read or write outside the segment.

**Memory ordering.** Data is copied before ``tail`` is stored, and ``tail`` is loaded
before data is read. Counters are aligned 8-byte stores (one ``mov`` via a ``'Q'``
memoryview), so on x86-64 (TSO: stores become visible in order, loads are not
reordered with loads) that is enough. The sleep/wake flags are a Dekker pattern (store
my flag, load the other side's counter), which TSO may reorder; a full fence between the
two is taken from an uncontended lock round trip (a ``lock``-prefixed instruction).
Weakly ordered CPUs (ARM64) would need a real barrier between data and counter stores;
this module has only been verified on x86-64.

**Wake-up.** The rendezvous socket (below) stays open as a control channel. A producer
that publishes while the consumer has declared itself idle sends one byte on it; a
consumer that frees space while the producer waits does the same. Both ends watch the
socket with ``loop.add_reader``, so a wake-up costs one ``send``/``recv`` pair and an
idle link costs nothing.

**Adaptive poll (spin-then-park).** A kernel wake-up is slow on a virtual machine: a raw
``os.pipe`` ping-pong between two idle processes measured 56 µs p50 here, because each
hop wakes a halted vCPU. So a *hot* link — one whose last two arrivals were at most
``_HOT_GAP`` (1 ms) apart — keeps looking at its ring through the event loop for
``shm_poll_us`` (default 200 µs) after it empties, with its sleep flag clear, so the
producer's next record needs no syscall and no wake-up. The look yields to the loop
between turns, so other tasks keep running. A link that is idle or slow (gaps above
1 ms) parks at once and never spins. When most recent windows found nothing (the peer
is slow, or shares our core and our spinning delays it), the link polls on at most one
chance in five (:class:`PollPolicy`), so polling that does not pay fades out, while a
rare miss from a scheduling hiccup changes nothing. ``shm_poll_us=0`` turns polling off.

**Liveness.** The control socket also gives crash detection for free: when the peer
process dies the kernel closes it and we read EOF. A pipe/eventfd pair would need fds
passed with ``SCM_RIGHTS`` and a separate liveness check; the socket is already there.

**Rendezvous and lifetime.** The listener binds a Unix socket at
``$TMPDIR/ruvector-edge-$UID/<sha256(NAME)>.sock`` (directory mode 0700). For each
client it creates two segments named ``rvx<hash(NAME)>_<pid>_<n>{a,b}``, sends their
names, waits for the client's ack, then unlinks both at once: from then on only the two
mappings keep the memory alive, so nothing is left in ``/dev/shm`` whatever happens to
either process. A listener killed inside that short window leaves segments that its
resource tracker unlinks, and the next listener on NAME removes any survivors by prefix
along with the stale socket file. Python 3.11 registers *attached* segments with the
attaching process's resource tracker, which would unlink them (and warn) at exit; the
client therefore maps them without registering (3.13+: ``track=False``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import importlib
import itertools
import logging
import mmap
import os
import socket
import stat
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any, Final

import msgspec

from ruvector_edge.errors import ProtocolError
from ruvector_edge.identity import Admission, Identity
from ruvector_edge.transport.connection import (
    Connection,
    JoinRequest,
    Link,
    WelcomeProvider,
    open_connection,
)
from ruvector_edge.transport.errors import ConnectionClosedError, TransportError
from ruvector_edge.transport.listener import ConnectionHandler, Listener
from ruvector_edge.transport.options import TransportOptions

__all__ = [
    "RING_HEADER_SIZE",
    "PollPolicy",
    "ShmListener",
    "SpscRing",
    "connect_shm",
    "listen_shm",
    "shm_paths",
    "stale_segments",
]

logger = logging.getLogger("ruvector_edge.transport")

RING_HEADER_SIZE: Final = 256
_MAGIC: Final = 0x31474E4952585652  # b"RVXRING1" little endian
_VERSION: Final = 1
# u64 word indices inside the header
_W_MAGIC, _W_VERSION, _W_CAP = 0, 1, 2
_W_TAIL, _W_PWAIT = 8, 9  # producer's cache line
_W_HEAD, _W_CSLEEP = 16, 17  # consumer's cache line
_REC: Final = struct.Struct("<II")
_REC_SIZE: Final = 8
_LEN: Final = struct.Struct("<I")
_OFFER_MAGIC: Final = "rvx-shm"
_MAX_OFFER: Final = 4096
_READ_BUDGET: Final = 4 * 1024 * 1024  # bytes per loop callback before yielding
_HOT_GAP: Final = 0.001  # s between arrivals below which a link polls before parking

_fence_lock = threading.Lock()


def _fence() -> None:
    """A full memory barrier: acquiring and releasing a lock runs a locked instruction."""
    _fence_lock.acquire()
    _fence_lock.release()


def _corrupt(detail: str) -> ProtocolError:
    return ProtocolError(f"shared-memory ring corrupted by the peer: {detail}", code="ring_corrupt")


class SpscRing:
    """A single-producer/single-consumer record ring over a shared buffer (see module doc).

    ``SpscRing(buf, capacity=n)`` initialises a fresh header (creator); ``SpscRing(buf)``
    attaches to an initialised one and validates it. One process calls only the producer
    methods, the other only the consumer methods.
    """

    __slots__ = ("_data", "_head", "_mask", "_tail", "_words", "capacity", "max_record")

    def __init__(self, buf: memoryview, *, capacity: int | None = None) -> None:
        if len(buf) < RING_HEADER_SIZE + 4096:
            raise ProtocolError(f"shared-memory segment of {len(buf)} bytes is too small")
        words = buf[:RING_HEADER_SIZE].cast("Q")
        try:
            if capacity is not None:
                if capacity < 4096 or capacity & (capacity - 1):
                    raise ValueError(f"ring capacity must be a power of two >= 4096: {capacity}")
                if RING_HEADER_SIZE + capacity > len(buf):
                    raise ValueError("segment smaller than header + capacity")
                for i in range(len(words)):
                    words[i] = 0
                words[_W_CAP] = capacity
                words[_W_VERSION] = _VERSION
                words[_W_MAGIC] = _MAGIC
            else:
                if words[_W_MAGIC] != _MAGIC or words[_W_VERSION] != _VERSION:
                    raise ProtocolError("shared-memory segment is not a ruvector-edge ring v1")
                capacity = int(words[_W_CAP])
                if capacity < 4096 or capacity & (capacity - 1):
                    raise _corrupt(f"capacity {capacity}")
                if RING_HEADER_SIZE + capacity > len(buf):
                    raise _corrupt("capacity larger than the segment")
        except BaseException:
            words.release()
            raise
        self._words = words
        self._data = buf[RING_HEADER_SIZE : RING_HEADER_SIZE + capacity]
        self.capacity = capacity
        self._mask = capacity - 1
        # Local mirrors of the counter each side owns (never re-read from shared memory).
        self._tail = int(words[_W_TAIL])
        self._head = int(words[_W_HEAD])
        # At most half the ring per record, so a piece always fits once the ring drains.
        self.max_record = capacity // 2 - _REC_SIZE

    def release(self) -> None:
        """Drop the views into the segment (required before the segment can close)."""
        self._words.release()
        self._data.release()

    # -- producer ------------------------------------------------------------------------
    def free_space(self) -> int:
        """Bytes the producer may still write."""
        used = self._tail - self._words[_W_HEAD]
        if not 0 <= used <= self.capacity:
            raise _corrupt(f"head is {used} bytes behind tail")
        return self.capacity - used

    def try_put(self, payload: bytes | memoryview) -> bool:
        """Append one record and publish it; False (nothing written) if it does not fit."""
        n = len(payload)
        if not 0 < n <= self.max_record:
            raise ValueError(f"record payload must be 1..{self.max_record} bytes, got {n}")
        size = (_REC_SIZE + n + 7) & ~7
        tail = self._tail
        cap = self.capacity
        used = tail - self._words[_W_HEAD]
        if not 0 <= used <= cap:
            raise _corrupt(f"head is {used} bytes behind tail")
        if cap - used < size:
            return False
        data = self._data
        pos = tail & self._mask
        _REC.pack_into(data, pos, n, 0)
        start = (pos + _REC_SIZE) & self._mask
        first = cap - start
        if n <= first:
            data[start : start + n] = payload
        else:
            view = memoryview(payload)
            data[start:cap] = view[:first]
            data[: n - first] = view[first:]
        self._tail = tail + size
        self._words[_W_TAIL] = self._tail  # publish after the data
        return True

    def consumer_sleeping(self) -> bool:
        """Whether the consumer asked to be woken for new data (call after a fence)."""
        return self._words[_W_CSLEEP] != 0

    def producer_wait_for(self, size: int) -> bool:
        """Flag that the producer waits for room; True (flag cleared) if room appeared."""
        self._words[_W_PWAIT] = 1
        _fence()
        if self.free_space() >= (_REC_SIZE + size + 7) & ~7:
            self._words[_W_PWAIT] = 0
            return True
        return False

    def producer_resumed(self) -> None:
        """Clear the producer's waiting flag."""
        self._words[_W_PWAIT] = 0

    # -- consumer ------------------------------------------------------------------------
    def read(self, max_bytes: int) -> list[bytes]:
        """Copy out and release records (at least one if any, about ``max_bytes`` at most)."""
        words = self._words
        head = self._head
        avail = words[_W_TAIL] - head
        if avail == 0:
            return []
        cap = self.capacity
        if not 0 < avail <= cap:
            raise _corrupt(f"tail is {avail} bytes ahead of head")
        data, mask = self._data, self._mask
        out: list[bytes] = []
        taken = 0
        while avail > 0 and taken < max_bytes:
            pos = head & mask
            n, reserved = _REC.unpack_from(data, pos)
            size = (_REC_SIZE + n + 7) & ~7
            if reserved or n == 0 or size > avail:
                raise _corrupt(f"record of {n} bytes with {avail} bytes published")
            start = (pos + _REC_SIZE) & mask
            end = start + n
            if end <= cap:
                out.append(bytes(data[start:end]))
            else:
                out.append(b"".join((data[start:cap], data[: end - cap])))
            head += size
            avail -= size
            taken += size
        self._head = head
        words[_W_HEAD] = head  # release the space after the copies
        return out

    def consumer_awake(self) -> None:
        """The consumer is reading: no wake-ups needed."""
        self._words[_W_CSLEEP] = 0

    def consumer_idle(self) -> bool:
        """Ask for a wake-up; False (flag cleared) if data arrived meanwhile."""
        words = self._words
        words[_W_CSLEEP] = 1
        _fence()
        if words[_W_TAIL] != self._head:
            words[_W_CSLEEP] = 0
            return False
        return True

    def producer_waiting(self) -> bool:
        """Whether the producer waits for room (call after a fence)."""
        return self._words[_W_PWAIT] != 0

    @property
    def readable(self) -> int:
        """Bytes published and not yet consumed (consumer side)."""
        return int(self._words[_W_TAIL]) - self._head


# -- paths, names, segments -------------------------------------------------------------


def shm_paths(name: str, shm_dir: Path | None = None) -> tuple[Path, str]:
    """The rendezvous socket path and the segment-name prefix for ``shm://name``."""
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    base = shm_dir if shm_dir is not None else _default_dir()
    return base / f"{digest[:24]}.sock", f"rvx{digest[:12]}_"


def _default_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"ruvector-edge-{os.getuid()}"


def _prepare_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise TransportError(
            f"{path} must be owned by this user with mode 0700 (it holds shm rendezvous "
            "sockets); remove it or set shm_dir",
            code="unsafe_dir",
        )


def _segment_exists_dir() -> Path | None:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() else None


def _unlink_segment(name: str) -> bool:
    """Unlink segment ``name`` if it exists (attach + unlink keeps the tracker balanced)."""
    try:
        seg = SharedMemory(name=name)
    except FileNotFoundError:
        return False
    seg.close()
    seg.unlink()
    return True


def stale_segments(prefix: str) -> list[str]:
    """Segment names in ``/dev/shm`` that start with ``prefix`` (empty where not listable)."""
    root = _segment_exists_dir()
    if root is None:
        return []
    return sorted(entry for entry in os.listdir(root) if entry.startswith(prefix))


def _create_segment(name: str, size: int) -> SharedMemory:
    try:
        return SharedMemory(name=name, create=True, size=size)
    except FileExistsError:  # left by a crashed process with a recycled pid
        _unlink_segment(name)
        return SharedMemory(name=name, create=True, size=size)


class _AttachedSegment:
    """A segment mapped without telling the resource tracker (3.13's ``track=False``).

    Python 3.11/3.12 register *attached* segments with the attaching process's resource
    tracker, which unlinks them (and warns about a "leak") when that process exits — the
    listener's segments, from under it. Unregistering afterwards is not safe either: a
    ``spawn``ed child shares its parent's tracker, so it would cancel the *creator's*
    registration. So the client maps the segment itself, exactly as ``SharedMemory`` does
    minus the registration.
    """

    def __init__(self, name: str) -> None:
        posixshmem: Any = importlib.import_module("_posixshmem")
        fd = posixshmem.shm_open(f"/{name}", os.O_RDWR, mode=0o600)
        try:
            self._mmap = mmap.mmap(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        self.name = name
        self.buf: memoryview | None = memoryview(self._mmap)

    def close(self) -> None:
        if self.buf is not None:
            self.buf.release()
            self.buf = None
        self._mmap.close()


_Segment = SharedMemory | _AttachedSegment


def _attach_segment(name: str) -> _Segment:
    if sys.version_info >= (3, 13):
        return SharedMemory(name=name, track=False)
    return _AttachedSegment(name)


def _buffer(seg: _Segment) -> memoryview:
    buf = seg.buf
    if buf is None:
        raise TransportError(f"shared-memory segment {seg.name} is closed", code="segment_closed")
    return buf


def _close_segment(seg: _Segment) -> None:
    try:
        seg.close()
    except BufferError:  # a view is still alive somewhere; the mapping goes with the process
        logger.debug("shared-memory segment %s still has exported views", seg.name)


async def _recv_exact(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await loop.sock_recv(sock, n - len(buf))
        if not chunk:
            raise ConnectionClosedError("rendezvous socket closed early", reason="eof")
        buf += chunk
    return bytes(buf)


# -- the link -----------------------------------------------------------------------------


class PollPolicy:
    """When a consumer should poll its emptied ring before parking (see module doc).

    Poll only on a hot link (the last two arrivals at most ``hot_gap`` seconds apart)
    whose recent windows mostly found data. ``miss_rate`` is a moving average (weight
    1/8) of windows that found nothing; at ``max_miss_rate`` or above the link parks
    instead, and each chance it skips decays the rate by ``skip_decay`` so it tries again
    later. A rare miss (a scheduling hiccup) changes nothing; polling that keeps missing
    (the peer is slow, or shares our core) falls to one window in five chances or fewer.
    """

    __slots__ = ("_last", "hot", "hot_gap", "max_miss_rate", "miss_rate", "skip_decay")

    def __init__(
        self,
        hot_gap: float = _HOT_GAP,
        *,
        max_miss_rate: float = 0.5,
        skip_decay: float = 0.97,
    ) -> None:
        self.hot_gap = hot_gap
        self.max_miss_rate = max_miss_rate
        self.skip_decay = skip_decay
        self.hot = False
        self.miss_rate = 0.0
        self._last = -float("inf")

    def arrived(self, now: float) -> None:
        """Data was read at ``now`` (seconds, monotonic)."""
        self.hot = now - self._last <= self.hot_gap
        self._last = now

    def should_poll(self) -> bool:
        """Asked once each time the ring empties: poll now, or park?"""
        if not self.hot:
            return False
        if self.miss_rate >= self.max_miss_rate:
            self.miss_rate *= self.skip_decay
            return False
        return True

    def window_ended(self, *, found_data: bool) -> None:
        """Report how a poll window ended."""
        self.miss_rate += ((0.0 if found_data else 1.0) - self.miss_rate) / 8


class _ShmLink(Link):
    """Rings for data, the rendezvous socket for wake-ups and liveness."""

    kind = "shm"

    def __init__(
        self,
        label: str,
        sock: socket.socket,
        inbound: SpscRing,
        outbound: SpscRing,
        segments: Sequence[_Segment],
        *,
        poll_window: float = 0.0,
    ) -> None:
        super().__init__(label)
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._fd = sock.fileno()
        self._in = inbound
        self._out = outbound
        self._segments = list(segments)
        self._paused = False
        self._closed = False
        self._released = False
        self._peer_said_bye = False
        self._eof: tuple[str, BaseException | None] | None = None
        self._space: asyncio.Future[None] | None = None
        self._poll_window = poll_window
        self._poll_deadline = 0.0
        self._polling = False
        self._poll_policy = PollPolicy()
        # perf_counter, not loop.time(): uvloop's loop clock only ticks in milliseconds.

    def _start(self) -> None:
        self._loop.add_reader(self._fd, self._on_readable)
        self._loop.call_soon(self._drain)  # data may have been published before we watched

    # reading ----------------------------------------------------------------------
    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionResetError:
            data = b""  # a killed peer: same as EOF without a goodbye
        except OSError as exc:
            data = b""
            self._eof = (f"control socket failed: {exc}", exc)
        if not data:
            self._loop.remove_reader(self._fd)
            if self._eof is None:
                if self._peer_said_bye:
                    self._eof = ("closed by peer", None)
                else:
                    why = "peer process vanished (control socket closed without a goodbye)"
                    self._eof = (why, ConnectionClosedError(why, code="peer_vanished"))
        elif b"c" in data:
            self._peer_said_bye = True
        # Every token means "look again": drain inbound data and retry a waiting write.
        space = self._space
        if space is not None and not space.done():
            space.set_result(None)
        self._drain()

    def _stopped(self) -> bool:
        return self._closed or self._paused

    def _drain(self) -> None:
        if self._stopped():
            return
        ring = self._in
        budget = _READ_BUDGET
        try:
            ring.consumer_awake()
            while True:
                chunks = ring.read(256 * 1024)
                if not chunks:
                    if self._eof is not None:
                        self._lost(*self._eof)
                        return
                    if self._poll_window > 0 and self._poll_policy.should_poll():
                        # Stay awake briefly (see _poll); the producer needs no syscall then.
                        self._poll_deadline = time.perf_counter() + self._poll_window
                        if not self._polling:
                            self._polling = True
                            self._loop.call_soon(self._poll)
                        return
                    if ring.consumer_idle():
                        return
                    continue
                _fence()
                self._poll_policy.arrived(time.perf_counter())
                if ring.producer_waiting():
                    self._token(b"s")
                for chunk in chunks:
                    budget -= len(chunk)
                    self._emit_bytes(chunk)
                if self._stopped():  # the connection paused or closed us meanwhile
                    return
                if budget <= 0:
                    self._loop.call_soon(self._drain)  # let other tasks run
                    return
        except ProtocolError as exc:
            self._lost(str(exc), exc)

    def _poll(self) -> None:
        """One turn of the poll window: look at the ring, else come back next loop turn.

        Runs as a loop callback, so other tasks keep running between looks; when the
        window passes with nothing new, the consumer parks and waits for a wake-up byte.
        """
        if self._stopped():
            self._polling = False
            return
        ring = self._in
        try:
            if ring.readable:
                self._polling = False
                self._poll_policy.window_ended(found_data=True)
                self._drain()
            elif time.perf_counter() < self._poll_deadline:
                self._loop.call_soon(self._poll)
            else:
                self._polling = False
                self._poll_policy.window_ended(found_data=False)
                if not ring.consumer_idle():
                    self._drain()
        except ProtocolError as exc:
            self._lost(str(exc), exc)

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            self._loop.call_soon(self._drain)

    # writing ----------------------------------------------------------------------
    def _token(self, token: bytes) -> None:
        try:
            self._sock.send(token)
        except (BlockingIOError, InterruptedError):
            pass  # the peer has unread tokens, so it will wake and look anyway
        except (BrokenPipeError, ConnectionResetError):
            # The peer died. The reader sees EOF next and reports it as "vanished" once
            # the ring is drained, so a kill reads the same whichever side notices first.
            pass
        except OSError as exc:
            self._loop.call_soon(self._lost, f"peer gone: {exc}", exc)

    def _notify(self) -> None:
        if self._closed:
            return
        _fence()
        if self._out.consumer_sleeping():
            self._token(b"d")

    def try_write(self, data: bytes) -> bool:
        if self._closed or len(data) > self._out.max_record:
            return False
        try:
            if not self._out.try_put(data):
                return False
        except ProtocolError as exc:
            self._loop.call_soon(self._lost, str(exc), exc)
            return False
        self._notify()
        return True

    async def write(self, frames: Sequence[bytes]) -> None:
        ring = self._out
        step = ring.max_record
        try:
            for frame in frames:
                view = memoryview(frame)
                for offset in range(0, len(view), step):
                    piece = view[offset : offset + step]
                    while True:
                        if self._closed:  # checked after every wait: the rings may be unmapped
                            raise ConnectionClosedError(f"{self.label} closed", reason="closed")
                        if ring.try_put(piece):
                            break
                        self._notify()
                        await self._wait_space(len(piece))
        except ProtocolError as exc:
            self._lost(str(exc), exc)
            raise ConnectionClosedError(str(exc), reason="ring corrupt") from None
        self._notify()

    async def _wait_space(self, size: int) -> None:
        if self._closed:
            raise ConnectionClosedError(f"{self.label} closed", reason="closed")
        ring = self._out
        if ring.producer_wait_for(size):
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._space = waiter
        try:
            await waiter
        finally:
            self._space = None
            if not self._released:
                ring.producer_resumed()

    # closing ----------------------------------------------------------------------
    async def aclose(self, reason: str) -> None:
        if self._closed:
            return
        self._notify()
        with contextlib.suppress(OSError):
            await self._loop.sock_sendall(self._sock, b"c")
        self._shutdown()

    def abort(self) -> None:
        self._shutdown()

    def _lost(self, reason: str, error: BaseException | None) -> None:
        self._shutdown()
        self._emit_lost(reason, error)

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self._fd)
        with contextlib.suppress(OSError):
            self._sock.close()
        space = self._space
        if space is not None and not space.done():
            space.set_exception(ConnectionClosedError(f"{self.label} closed", reason="closed"))
        # A drain or write may be on the stack: unmap on the next loop turn.
        self._loop.call_soon(self._release)

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        self._in.release()
        self._out.release()
        for seg in self._segments:
            _close_segment(seg)

    def __del__(self) -> None:
        # A link dropped without closing (e.g. its loop died): unmap in the right order,
        # views before segments, or SharedMemory's own finalizer complains.
        with contextlib.suppress(Exception):
            self._release()


# -- listener and client ---------------------------------------------------------------------


class ShmListener(Listener):
    """Listens on ``shm://NAME``: a Unix-socket rendezvous handing out ring pairs."""

    transport = "shm"

    def __init__(
        self,
        name: str,
        identity: Identity,
        admission: Admission,
        *,
        welcome: WelcomeProvider | None = None,
        options: TransportOptions | None = None,
        handler: ConnectionHandler | None = None,
    ) -> None:
        if not name:
            raise TransportError("shm:// needs a name, e.g. shm://swarm", code="bad_url")
        super().__init__(identity, admission, welcome=welcome, options=options, handler=handler)
        self.name = name
        self.socket_path, self.segment_prefix = shm_paths(name, self.options.shm_dir)
        self._server: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._numbers = itertools.count(1)
        self.cleaned_segments: list[str] = []

    @property
    def url(self) -> str:
        return f"shm://{self.name}"

    def _claim(self) -> None:
        """Refuse if a live listener owns NAME; otherwise clear what a dead one left."""
        _prepare_dir(self.socket_path.parent)
        path = str(self.socket_path)
        if os.path.lexists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.setblocking(False)
            try:
                err = probe.connect_ex(path)
            finally:
                probe.close()
            if err not in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
                raise TransportError(
                    f"{self.url} already has a live listener ({path}); pick another name",
                    code="address_in_use",
                )
            os.unlink(path)
            logger.info("%s: removed stale rendezvous socket %s", self.url, path)
        for seg in stale_segments(self.segment_prefix):
            if _unlink_segment(seg):
                self.cleaned_segments.append(seg)
                logger.info("%s: unlinked stale shared-memory segment %s", self.url, seg)

    async def _start(self) -> None:
        self._claim()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            server.bind(str(self.socket_path))
        except OSError as exc:
            server.close()
            raise TransportError(
                f"cannot bind {self.url} at {self.socket_path}: {exc}", code="address_in_use"
            ) from exc
        os.chmod(self.socket_path, 0o600)
        server.listen(self.options.backlog)
        server.setblocking(False)
        self._server = server
        self._accept_task = self._loop.create_task(self._accept_loop())

    async def _accept_loop(self) -> None:
        assert self._server is not None
        while True:
            try:
                client, _ = await self._loop.sock_accept(self._server)
            except OSError as exc:
                if self.closed:
                    return
                logger.warning("%s: accept failed: %s", self.url, exc)
                await asyncio.sleep(0.05)
                continue
            n = next(self._numbers)
            self._spawn(self._rendezvous(client, n), f"handshake rendezvous {n}")

    async def _rendezvous(self, client: socket.socket, n: int) -> None:
        client.setblocking(False)
        cap = self.options.shm_ring_size
        names = [f"{self.segment_prefix}{os.getpid():x}_{n:x}{side}" for side in "ab"]
        segments: list[SharedMemory] = []
        rings: list[SpscRing] = []
        done = False
        try:
            async with asyncio.timeout(self.options.handshake_timeout):
                for seg_name in names:
                    segments.append(_create_segment(seg_name, RING_HEADER_SIZE + cap))
                rings = [SpscRing(_buffer(seg), capacity=cap) for seg in segments]
                offer = msgspec.msgpack.encode([_OFFER_MAGIC, _VERSION, cap, *names])
                await self._loop.sock_sendall(client, _LEN.pack(len(offer)) + offer)
                if await _recv_exact(self._loop, client, 1) != b"K":
                    raise ProtocolError("bad rendezvous acknowledgement")
            done = True
        except (OSError, TimeoutError, ProtocolError, ConnectionClosedError, ValueError) as exc:
            code = "handshake_timeout" if isinstance(exc, TimeoutError) else "rendezvous_failed"
            self.stats.count(code)
            logger.warning("%s: rendezvous %d failed (%s): %r", self.url, n, code, exc)
        finally:
            for seg in segments:  # both sides are mapped (or gave up): drop the names now
                with contextlib.suppress(FileNotFoundError):
                    seg.unlink()
            if not done:  # failed or cancelled (listener closing): free everything
                for ring in rings:
                    ring.release()
                for seg in segments:
                    _close_segment(seg)
                client.close()
        if not done:
            return
        link = _ShmLink(
            f"{self.url}#{n}",
            client,
            rings[0],
            rings[1],
            segments,
            poll_window=self.options.shm_poll_us / 1e6,
        )
        self._accept_link(link, f"{self.url}#{n}")

    async def _stop_accepting(self) -> None:
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
        if self._server is not None:
            self._server.close()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)

    async def _cleanup(self) -> None:
        mine = f"{self.segment_prefix}{os.getpid():x}_"
        for seg in stale_segments(mine):
            _unlink_segment(seg)


async def listen_shm(
    name: str,
    identity: Identity,
    admission: Admission,
    *,
    welcome: WelcomeProvider | None = None,
    options: TransportOptions | None = None,
    handler: ConnectionHandler | None = None,
) -> ShmListener:
    """Start a shared-memory listener called ``name`` (cleans up after a crashed one)."""
    listener = ShmListener(
        name, identity, admission, welcome=welcome, options=options, handler=handler
    )
    await listener._start()
    return listener


async def _dial(name: str, options: TransportOptions) -> _ShmLink:
    loop = asyncio.get_running_loop()
    path, prefix = shm_paths(name, options.shm_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    segments: list[_Segment] = []
    rings: list[SpscRing] = []
    try:
        try:
            await loop.sock_connect(sock, str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise TransportError(
                f"no shared-memory listener at shm://{name} ({path}): {exc.strerror}",
                code="no_listener",
            ) from None
        (size,) = _LEN.unpack(await _recv_exact(loop, sock, _LEN.size))
        if size > _MAX_OFFER:
            raise ProtocolError(f"rendezvous offer of {size} bytes is too large")
        try:
            magic, version, cap, name_a, name_b = msgspec.msgpack.decode(
                await _recv_exact(loop, sock, size)
            )
        except (msgspec.DecodeError, ValueError, TypeError) as exc:
            raise ProtocolError(f"malformed rendezvous offer: {exc}") from None
        if magic != _OFFER_MAGIC or version != _VERSION:
            raise ProtocolError(f"shm://{name} speaks an unknown rendezvous ({magic!r} v{version})")
        for seg_name in (name_a, name_b):
            if not isinstance(seg_name, str) or not seg_name.startswith(prefix):
                raise ProtocolError(f"rendezvous offered a foreign segment {seg_name!r}")
            segments.append(_attach_segment(seg_name))
        rings = [SpscRing(_buffer(seg)) for seg in segments]
        if any(ring.capacity != cap for ring in rings):
            raise ProtocolError("rendezvous capacity does not match the segments")
        await loop.sock_sendall(sock, b"K")
    except BaseException:
        for ring in rings:
            ring.release()
        for seg in segments:
            _close_segment(seg)
        sock.close()
        raise
    return _ShmLink(
        f"shm://{name} (client)",
        sock,
        rings[1],
        rings[0],
        segments,
        poll_window=options.shm_poll_us / 1e6,
    )


async def connect_shm(
    name: str,
    identity: Identity,
    join: JoinRequest,
    options: TransportOptions,
) -> Connection:
    """Connect to the shared-memory listener ``name`` (another process) and handshake."""

    async def dial() -> Link:
        return await _dial(name, options)

    return await open_connection(
        dial, identity=identity, join=join, options=options, url=f"shm://{name}", transport="shm"
    )
