"""``Connection``: an authenticated, flow-controlled message link over any byte mover.

Layering: a transport supplies a :class:`Link` (it only moves bytes: an asyncio queue pair,
shared-memory rings, a WebSocket). The connection owns the link's
:class:`~ruvector_edge.wire.MessageCodec` and drives the JOIN/WELCOME handshake from
``wire``/``identity`` over it; after that every frame is sealed and checked by the codec.
Nothing here frames bytes or touches keys.

Flow control, both ways bounded:

* sending — ``send`` encodes and, when nothing is queued, hands the frame straight to the
  link (no task switch). Further messages sent in the same event-loop turn are gathered
  and sealed together as one batch frame when the turn ends (one AEAD operation and one
  link write for the burst; a lone request still leaves at once). Frames the link cannot
  take yet join a bounded queue drained by one writer task. When the queue is full
  ``send`` waits up to ``send_timeout``; a peer that has not drained it by then is
  disconnected and ``send`` raises ``SlowPeerError``. Disconnecting
  (rather than raising and keeping the link) is deliberate: a peer that stalls that long
  is broken, and keeping it would pin the queue's memory for every later send.
* receiving — decoded messages wait in a bounded inbox; when it is full the connection
  pauses the link, so unread data stays in the transport's own bounded buffer (ring,
  socket window) and the sender's queue fills: back-pressure reaches the producer.

Bad input: a frame the codec rejects (bad tag, replay, wrong type...) is counted in
``stats.rejected_by_code``, logged, and the connection carries on; a framing error
(bad magic, oversize, garbage) poisons the stream, so the connection sends an ERROR and
closes. Handshakes, idle links and slow peers are all bounded by timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from enum import Enum
from typing import Any, Literal, Protocol

from ruvector_edge.config import AgentRole
from ruvector_edge.errors import AuthError, CapacityError, EdgeError, ProtocolError
from ruvector_edge.identity import TRAILER_SIZE, Identity, PeerInfo
from ruvector_edge.transport.errors import (
    ConnectionClosedError,
    SlowPeerError,
    TransportError,
    TransportTimeoutError,
)
from ruvector_edge.transport.options import TransportOptions, WelcomeSettings
from ruvector_edge.wire import (
    BATCH_OVERHEAD,
    FrameRejected,
    JoinPayload,
    LinkInitiator,
    LinkResponder,
    MessageCodec,
    SwarmMessage,
    WelcomePayload,
)

__all__ = [
    "Connection",
    "ConnectionStats",
    "JoinRequest",
    "Link",
    "LinkSink",
    "WelcomeProvider",
]

logger = logging.getLogger("ruvector_edge.transport")

WelcomeProvider = (
    WelcomeSettings
    | Callable[[PeerInfo, JoinPayload], WelcomeSettings | Awaitable[WelcomeSettings]]
)
"""The WELCOME fields a listener sends: fixed settings, or a (possibly async) callback that
sees the authenticated peer and its JOIN — and may raise ``AuthError`` to refuse it."""

_MAX_BATCH = 256  # messages per batch frame: bounds the receiver's burst into its inbox
_MAX_BATCH_BYTES = 256 * 1024
_LOUD_REJECTS = 10  # per connection; later rejects are logged at DEBUG (a flood cannot spam)


class LinkSink(Protocol):
    """What a link reports to: bytes in arrival order, and the link's end."""

    def _on_bytes(self, data: bytes) -> None: ...

    def _on_lost(self, reason: str, error: BaseException | None) -> None: ...


class Link(ABC):
    """A raw byte mover for one connection; each transport implements one.

    Contract: ``start`` begins delivering received chunks to the sink in order (a chunk is
    whatever one peer write produced, possibly several frames or part of one);
    ``try_write`` writes now or returns False (never raises, never blocks); ``write`` writes
    a batch in order, waiting for the peer as needed, and raises ``ConnectionClosedError``
    if the link dies; ``pause_reading``/``resume_reading`` stop and restart delivery;
    ``aclose`` ends the link gracefully after everything written was handed over; ``abort``
    drops it now. The link reports its end once through ``_on_lost``.
    """

    kind: str = "link"

    def __init__(self, label: str) -> None:
        self.label = label
        self._sink: LinkSink | None = None

    def start(self, sink: LinkSink) -> None:
        """Attach the sink and start reading."""
        self._sink = sink
        self._start()

    def detach(self) -> None:
        """Stop reporting to the sink (used when a connection replaces its link)."""
        self._sink = None

    def _emit_bytes(self, data: bytes) -> None:
        sink = self._sink
        if sink is not None:
            sink._on_bytes(data)

    def _emit_lost(self, reason: str, error: BaseException | None = None) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            sink._on_lost(reason, error)

    @abstractmethod
    def _start(self) -> None: ...

    @abstractmethod
    def try_write(self, data: bytes) -> bool: ...

    @abstractmethod
    async def write(self, frames: Sequence[bytes]) -> None: ...

    @abstractmethod
    def pause_reading(self) -> None: ...

    @abstractmethod
    def resume_reading(self) -> None: ...

    @abstractmethod
    async def aclose(self, reason: str) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...


@dataclasses.dataclass(slots=True)
class ConnectionStats:
    """Counters for one connection (they survive reconnects). Times are ``time.monotonic()``."""

    messages_out: int = 0
    messages_in: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    errors: int = 0
    errors_by_code: dict[str, int] = dataclasses.field(default_factory=dict)
    rejected: int = 0
    rejected_by_code: dict[str, int] = dataclasses.field(default_factory=dict)
    dropped: int = 0
    reconnects: int = 0
    connected_at: float = 0.0
    last_activity: float = 0.0
    last_received: float = 0.0

    @property
    def idle_for(self) -> float:
        """Seconds since the last byte moved in either direction."""
        return time.monotonic() - self.last_activity


@dataclasses.dataclass(frozen=True, slots=True)
class JoinRequest:
    """What an initiating side presents in its JOIN."""

    role: AgentRole | str = AgentRole.WORKER
    capabilities: tuple[str, ...] = ()
    version: str = ""
    join_token: str | bytes | None = None
    expected_peer_key: bytes | None = None


class _State(Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSING = "closing"
    CLOSED = "closed"


Dialer = Callable[[], Awaitable[Link]]


class Connection:
    """An authenticated link to one peer: ``await send(msg)``, ``async for msg in conn``.

    Created by a transport's ``connect``/``listen``, never directly. ``peer`` is the
    authenticated :class:`~ruvector_edge.identity.PeerInfo`; ``welcome`` (initiator side) or
    ``join`` (listener side) carries the peer's signed WELCOME / JOIN fields (swarm
    settings; role and capabilities).

    Delivery: messages sent by one task arrive in order, each at most once. With
    ``options.reconnect`` a dropped link is redialled (new handshake, new session keys,
    the first peer's key pinned); frames still queued when it dropped are discarded
    (``stats.dropped``) because they were sealed for the dead session, so protocols that
    need more than at-most-once acknowledge at their own level. Messages already received
    stay readable after the connection closes.
    """

    def __init__(
        self,
        link: Link,
        *,
        identity: Identity,
        options: TransportOptions,
        side: Literal["initiator", "responder"],
        url: str,
        transport: str,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.identity = identity
        self.options = options
        self.side = side
        self.url = url
        self.transport = transport
        self.peer: PeerInfo | None = None
        self.welcome: WelcomePayload | None = None
        self.join: JoinPayload | None = None
        self.stats = ConnectionStats()
        self.close_reason = ""
        self._on_error = on_error
        self._state = _State.HANDSHAKE
        self._link = link
        self._codec = self._new_codec()
        self._gen = 0
        # outgoing
        self._outq: deque[bytes] = deque()
        self._outq_counts: deque[int] = deque()  # messages in each queued frame
        self._outq_msgs = 0
        self._outq_bytes = 0
        self._batch: list[bytes] = []  # bodies sent this loop turn, sealed when it ends
        self._batch_bytes = 0
        self._batch_limit = min(
            _MAX_BATCH_BYTES, options.max_frame_size - TRAILER_SIZE - BATCH_OVERHEAD
        )
        self._corked = False
        self._writer: asyncio.Task[None] | None = None
        self._writer_wake: asyncio.Future[None] | None = None
        self._room_waiters: list[asyncio.Future[None]] = []
        self._flush_waiters: list[asyncio.Future[None]] = []
        # incoming
        self._inbox: deque[tuple[SwarmMessage, int]] = deque()
        self._inbox_bytes = 0
        self._pending_in = 0
        self._reading_paused = False
        self._recv_waiters: list[asyncio.Future[None]] = []
        # handshake
        self._hs_future: asyncio.Future[SwarmMessage] | None = None
        self._hs_got = False
        self._hs_buffer: list[bytes] = []
        self._hs_buffered = 0
        # lifecycle
        self._closing = False
        self._closed = self._loop.create_future()
        self._close_callbacks: list[Callable[[Connection], None]] = []
        self._idle_handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dial: Dialer | None = None
        self._join_request: JoinRequest | None = None
        self._pinned_key: bytes | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        now = time.monotonic()
        self.stats.last_activity = self.stats.last_received = now
        self._begin_handshake()
        link.start(self)

    # -- public ----------------------------------------------------------------------
    @property
    def label(self) -> str:
        """``transport:url peer`` for logs."""
        who = self.peer.agent_id if self.peer else "?"
        return f"{self.transport} {self.url} <-> {who}"

    @property
    def peer_id(self) -> str | None:
        """The authenticated peer's agent id (None before the handshake)."""
        return self.peer.agent_id if self.peer else None

    @property
    def is_open(self) -> bool:
        """True while messages can be sent."""
        return self._state is _State.OPEN

    @property
    def closed(self) -> bool:
        """True once the connection is closed for good."""
        return self._state is _State.CLOSED

    @property
    def state(self) -> str:
        """handshake, open, reconnecting, closing or closed."""
        return self._state.value

    @property
    def queued_frames(self) -> int:
        """Messages waiting to be written (queued alone, in a batch frame, or being gathered)."""
        return self._outq_msgs + len(self._batch)

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting to be written."""
        return self._outq_bytes + self._batch_bytes

    @property
    def inbox_size(self) -> int:
        """Messages received and not yet read."""
        return len(self._inbox)

    async def send(self, msg: SwarmMessage, *, timeout: float | None = None) -> None:
        """Seal and send ``msg``; waits (``timeout``, default ``send_timeout``) for queue room.

        Raises ``SlowPeerError`` (and disconnects) if the peer does not drain in time,
        ``ConnectionClosedError`` once closed, ``TransportTimeoutError`` if the link stays
        down while reconnecting, ``ProtocolError`` for a message above the frame limit.
        """
        options = self.options
        if (
            self._state is not _State.OPEN
            or self._outq_msgs + len(self._batch) >= options.max_send_queue
            or self._outq_bytes + self._batch_bytes >= options.max_send_bytes
        ):
            await self._wait_room(timeout)
        self._queue_body(self._codec.encode_body(msg))

    def send_nowait(self, msg: SwarmMessage) -> None:
        """Send without waiting, for broadcasters that must not stall on one peer.

        A full queue raises ``CapacityError`` and the connection stays up (the message is
        not sent); a link that is down raises ``TransportError``.
        """
        if self._state is not _State.OPEN:
            if self._state in _ENDED:
                raise self._closed_error()
            raise TransportError(
                f"{self.label} is {self._state.value}; the message was not sent",
                code="link_down",
            )
        if not self._has_room():
            raise CapacityError(
                f"send queue to {self.peer_id} is full ({self.queued_frames} frames, "
                f"{self.queued_bytes} bytes); retry later or use await send()"
            )
        self._queue_body(self._codec.encode_body(msg))

    async def recv(self, timeout: float | None = None) -> SwarmMessage:
        """The next message; ``ConnectionClosedError`` once closed and drained."""
        if self._inbox:
            return self._pop()
        loop = self._loop
        deadline = None if timeout is None else loop.time() + timeout
        while not self._inbox:
            if self._state is _State.CLOSED:
                raise self._closed_error()
            waiter: asyncio.Future[None] = loop.create_future()
            self._recv_waiters.append(waiter)
            try:
                if deadline is None:
                    await waiter
                else:
                    await asyncio.wait_for(waiter, max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise TransportTimeoutError(
                    f"no message from {self.peer_id} within {timeout} s"
                ) from None
            finally:
                waiters = self._recv_waiters
                if waiter in waiters:  # _wake empties the list; raising ValueError costs more
                    waiters.remove(waiter)
        return self._pop()

    def __aiter__(self) -> Connection:
        return self

    async def __anext__(self) -> SwarmMessage:
        if self._inbox:
            return self._pop()
        try:
            return await self.recv()
        except ConnectionClosedError:
            raise StopAsyncIteration from None

    async def close(
        self, reason: str = "closed by local side", *, timeout: float | None = None
    ) -> None:
        """Flush queued frames (up to ``close_timeout``), close the link, end the connection.

        Messages already received stay readable.
        """
        if self._state is _State.CLOSED:
            return
        if self._closing:
            await asyncio.shield(self._closed)
            return
        self._closing = True
        was_open = self._state is _State.OPEN
        self._state = _State.CLOSING
        self._cancel_task(self._reconnect_task)
        self._wake(self._room_waiters)
        if self._hs_future is not None and not self._hs_future.done():
            self._hs_future.set_exception(self._closed_error(reason))
        limit = self.options.close_timeout if timeout is None else timeout
        if was_open:
            self._flush_batch()
        if was_open and self._outq:
            try:
                await asyncio.wait_for(self._flush_wait(), limit)
            except TimeoutError:
                logger.warning(
                    "%s: %d frames not flushed within %.1f s of close",
                    self.label,
                    len(self._outq),
                    limit,
                )
        try:
            await asyncio.wait_for(self._link.aclose(reason), limit)
        except (TimeoutError, OSError, EdgeError):
            self._link.abort()
        self._finish(reason)

    def abort(self, reason: str = "aborted") -> None:
        """Drop the link now, discarding queued frames."""
        self._link.abort()
        self._finish(reason)

    async def wait_closed(self) -> None:
        """Return once the connection is closed."""
        await asyncio.shield(self._closed)

    def add_close_callback(self, callback: Callable[[Connection], None]) -> None:
        """Call ``callback(conn)`` once when the connection closes."""
        if self._state is _State.CLOSED:
            callback(self)
        else:
            self._close_callbacks.append(callback)

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Connection {self.label} {self._state.value}>"

    # -- handshake -------------------------------------------------------------------
    async def _initiate(self, join: JoinRequest) -> None:
        """Run JOIN -> WELCOME as the initiator (bounded by ``handshake_timeout``)."""
        self._join_request = join
        try:
            async with asyncio.timeout(self.options.handshake_timeout):
                await self._initiate_steps(join)
        except TimeoutError:
            err = TransportTimeoutError(
                f"no WELCOME from {self.url} within {self.options.handshake_timeout} s",
                code="handshake_timeout",
            )
            self._count_error(err.code)
            raise err from None

    async def _initiate_steps(self, join: JoinRequest) -> None:
        initiator = LinkInitiator(
            self.identity,
            join.role,
            list(join.capabilities),
            version=join.version,
            join_token=join.join_token,
            expected_peer_key=join.expected_peer_key or self._pinned_key,
            max_skew_ms=self.options.max_clock_skew_ms,
        )
        self._push(self._codec.encode(initiator.join_message()))
        msg = await self._handshake_message()
        try:
            session = initiator.complete(msg)
        except EdgeError as exc:
            self._count_error(exc.code)
            raise
        assert initiator.peer is not None
        assert initiator.welcome is not None
        self._codec.attach_session(session)
        if initiator.welcome.max_frame_size:  # never send what the peer would refuse
            self._codec.max_frame_size = min(
                self._codec.max_frame_size, initiator.welcome.max_frame_size
            )
        self.peer, self.welcome = initiator.peer, initiator.welcome
        self._pinned_key = initiator.peer.public_key
        self._open()

    async def _respond(self, responder: LinkResponder, welcome: WelcomeProvider) -> None:
        """Admit the peer's JOIN and answer WELCOME, or send ERROR and raise."""
        ref: SwarmMessage | None = None
        try:
            async with asyncio.timeout(self.options.handshake_timeout):
                ref = msg = await self._handshake_message()
                peer, join = responder.accept_join(msg)
                if isinstance(welcome, WelcomeSettings):
                    settings = welcome
                else:
                    made = welcome(peer, join)
                    settings = await made if inspect.isawaitable(made) else made
                reply, session = responder.welcome_message(
                    settings.swarm_id,
                    sync_interval_ms=settings.sync_interval_ms,
                    heartbeat_interval_ms=settings.heartbeat_interval_ms,
                    max_frame_size=self.options.max_frame_size,
                    members=list(settings.members),
                )
                self._push(self._codec.encode(reply))
                self._codec.attach_session(session)
                # The WELCOME must travel alone (the peer attaches its session after it).
                await self._flush_wait()
        except TimeoutError:
            err = TransportTimeoutError(
                f"peer at {self.url} did not finish the handshake within "
                f"{self.options.handshake_timeout} s",
                code="handshake_timeout",
            )
            self._count_error(err.code)
            await self._refuse(err, ref)
            raise err from None
        except ConnectionClosedError:
            raise
        except EdgeError as exc:
            self._count_error(exc.code)
            await self._refuse(exc, ref)
            raise
        except Exception as exc:  # a bug in the welcome provider: refuse, then surface it
            logger.exception("%s: admitting the peer failed", self.label)
            failure = EdgeError(
                f"the listener failed to admit this peer: {exc!r}", code="internal_error"
            )
            self._count_error(failure.code)
            await self._refuse(failure, ref)
            raise failure from exc
        self.peer, self.join = peer, join
        self._open()

    def _begin_handshake(self) -> None:
        self._state = _State.HANDSHAKE
        fut: asyncio.Future[SwarmMessage] = self._loop.create_future()
        # Mark a failure as retrieved even if nobody awaits it (e.g. refused at capacity).
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._hs_future = fut
        self._hs_got = False
        self._hs_buffer = []
        self._hs_buffered = 0

    async def _handshake_message(self) -> SwarmMessage:
        assert self._hs_future is not None
        return await self._hs_future

    def _handshake_bytes(self, data: bytes) -> None:
        if self._hs_got:
            # Arrived after the handshake message: keep for after the session is attached.
            self._hs_buffer.append(data)
            self._hs_buffered += len(data)
            if self._hs_buffered > self.options.max_recv_bytes:
                self._fail_handshake(
                    ProtocolError("peer sent too much data before the handshake finished")
                )
            return
        try:
            items = self._codec.feed(data)
        except ProtocolError as exc:
            self._fail_handshake(exc)
            return
        for item in items:
            if isinstance(item, FrameRejected):
                self._rejected(item)
                if not self._hs_got:
                    self._fail_handshake(item.error)
                    return
            elif self._hs_got:
                self._count_error("unexpected_frame")
                logger.warning(
                    "%s: dropped a %s sent before the handshake finished", self.label, item.type
                )
            else:
                self._hs_got = True
                self.stats.messages_in += 1
                assert self._hs_future is not None
                if not self._hs_future.done():
                    self._hs_future.set_result(item)

    def _fail_handshake(self, exc: BaseException) -> None:
        fut = self._hs_future
        self._hs_got = True
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    async def _refuse(self, exc: EdgeError, ref: SwarmMessage | None) -> None:
        """Send a plain ERROR (best effort), then close."""
        reason = f"handshake failed ({exc.code}): {exc.message}"
        logger.warning("%s: %s", self.label, reason)
        if self._state is _State.CLOSED:
            return
        with contextlib.suppress(EdgeError, OSError):
            error = SwarmMessage.error(
                self.identity.agent_id,
                exc.code,
                exc.message,
                recipient=ref.sender if ref is not None else None,
                ref_id=ref.id if ref is not None else None,
            )
            self._push(self._codec.encode(error))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._flush_wait(), min(1.0, self.options.close_timeout))
        await self._shutdown_link(reason)

    def _open(self) -> None:
        self._state = _State.OPEN
        now = time.monotonic()
        self.stats.connected_at = self.stats.last_activity = self.stats.last_received = now
        self._arm_idle()
        self._wake(self._room_waiters)
        buffered, self._hs_buffer = self._hs_buffer, []
        for chunk in buffered:
            self._deliver(chunk)

    # -- link callbacks --------------------------------------------------------------
    def _on_bytes(self, data: bytes) -> None:
        stats = self.stats
        stats.bytes_in += len(data)
        stats.last_received = stats.last_activity = time.monotonic()
        state = self._state
        if state is _State.OPEN or state is _State.CLOSING:
            self._deliver(data)
        elif state is _State.HANDSHAKE:
            self._handshake_bytes(data)

    def _deliver(self, data: bytes) -> None:
        try:
            items = self._codec.feed(data)
        except ProtocolError as exc:
            self._stream_failed(exc)
            return
        self._pending_in += len(data)
        if not items:
            return
        charge = self._pending_in // len(items) + 1
        self._pending_in = 0
        inbox = self._inbox
        received = 0
        for item in items:
            if isinstance(item, SwarmMessage):
                inbox.append((item, charge))
                received += 1
            else:
                self._rejected(item)
        if received:
            self.stats.messages_in += received
            self._inbox_bytes += charge * received
            if self._recv_waiters:
                self._wake(self._recv_waiters)
            if not self._reading_paused and (
                len(inbox) >= self.options.max_recv_queue
                or self._inbox_bytes >= self.options.max_recv_bytes
            ):
                self._reading_paused = True
                self._link.pause_reading()

    def _on_lost(self, reason: str, error: BaseException | None) -> None:
        state = self._state
        if state is _State.CLOSED or state is _State.RECONNECTING:
            return
        if self._codec.buffered:
            self._count_error("truncated_frame")
            logger.warning(
                "%s: link ended inside a frame (%d bytes of it were received)",
                self.label,
                self._codec.buffered,
            )
        if error is not None:
            code = error.code if isinstance(error, EdgeError) else "link_lost"
            self._count_error(code)
            logger.warning("%s: link lost: %s", self.label, reason)
        else:
            logger.info("%s: link closed: %s", self.label, reason)
        if state is _State.HANDSHAKE:
            self._fail_handshake(self._closed_error(reason))
            return
        if state is _State.CLOSING:
            self._drop_outq()
            self._wake(self._flush_waiters)
            return
        if self._dial is not None and self.options.reconnect is not None and not self._closing:
            self._reconnect_task = self._spawn(self._reconnect_loop(reason))
            return
        self._finish(reason)

    # -- sending internals -------------------------------------------------------------
    def _has_room(self) -> bool:
        return (
            self._outq_msgs + len(self._batch) < self.options.max_send_queue
            and self._outq_bytes + self._batch_bytes < self.options.max_send_bytes
        )

    def _queue_body(self, body: bytes) -> None:
        """Send the first message of a loop turn now; gather the rest into a batch."""
        if not self._corked:
            self._corked = True
            self._loop.call_soon(self._uncork)
            self._push(self._codec.seal((body,)))
            return
        batch = self._batch
        if batch and (
            len(batch) >= _MAX_BATCH or self._batch_bytes + len(body) > self._batch_limit
        ):
            self._flush_batch()
            batch = self._batch
        batch.append(body)
        self._batch_bytes += len(body)

    def _uncork(self) -> None:
        self._corked = False
        if self._batch:
            self._flush_batch()

    def _flush_batch(self) -> None:
        """Seal the gathered bodies into one frame and push it."""
        bodies = self._batch
        if not bodies:
            return
        self._batch = []
        self._batch_bytes = 0
        if self._state is not _State.OPEN and self._state is not _State.CLOSING:
            self.stats.dropped += len(bodies)  # the link went down in this very turn
            return
        try:
            frame = self._codec.seal(bodies)
        except EdgeError as exc:  # the link's counter ran out: it must re-key
            self.stats.dropped += len(bodies)
            self._count_error(exc.code)
            self.abort(f"cannot seal: {exc}")
            return
        self._push(frame, len(bodies))
        if self._room_waiters and self._has_room():
            self._wake(self._room_waiters)

    def _push(self, frame: bytes, messages: int = 1) -> None:
        """Write ``frame`` now if the link takes it, else queue it for the writer task."""
        outq = self._outq
        if not outq and self._link.try_write(frame):
            stats = self.stats
            stats.messages_out += messages
            stats.bytes_out += len(frame)
            stats.last_activity = time.monotonic()
            return
        outq.append(frame)
        self._outq_counts.append(messages)
        self._outq_msgs += messages
        self._outq_bytes += len(frame)
        if self._writer is None:
            self._writer = self._loop.create_task(self._write_loop())
        elif self._writer_wake is not None and not self._writer_wake.done():
            self._writer_wake.set_result(None)

    async def _write_loop(self) -> None:
        outq = self._outq
        while self._state is not _State.CLOSED:
            if not outq:
                self._wake(self._flush_waiters)
                wake: asyncio.Future[None] = self._loop.create_future()
                self._writer_wake = wake
                await wake
                continue
            gen, link = self._gen, self._link
            batch = list(outq)
            try:
                await link.write(batch)
            except (ConnectionClosedError, OSError) as exc:
                if gen == self._gen and link is self._link:
                    self._drop_outq()  # undeliverable on this link, whatever happens next
                    # A peer that closed cleanly is not an error, only the end of the link.
                    clean = isinstance(exc, ConnectionClosedError)
                    self._on_lost(f"write failed: {exc}", None if clean else exc)
                continue
            if gen != self._gen:
                continue  # the link was replaced meanwhile; its queue was dropped
            nbytes = nmsgs = 0
            counts = self._outq_counts
            for _ in range(len(batch)):
                nbytes += len(outq.popleft())
                nmsgs += counts.popleft()
            self._outq_bytes -= nbytes
            self._outq_msgs -= nmsgs
            stats = self.stats
            stats.messages_out += nmsgs
            stats.bytes_out += nbytes
            stats.last_activity = time.monotonic()
            if self._room_waiters:
                self._wake(self._room_waiters)

    async def _wait_room(self, timeout: float | None) -> None:
        limit = self.options.send_timeout if timeout is None else timeout
        loop = self._loop
        deadline = loop.time() + limit
        while True:
            state = self._state
            if state is _State.OPEN and self._has_room():
                return
            if state in _ENDED or self._closing:
                raise self._closed_error()
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            waiter: asyncio.Future[None] = loop.create_future()
            self._room_waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                break
            finally:
                waiters = self._room_waiters
                if waiter in waiters:  # _wake empties the list; raising ValueError costs more
                    waiters.remove(waiter)
        if self._state is _State.OPEN and not self._has_room():
            reason = (
                f"slow peer: {self.queued_frames} frames ({self.queued_bytes} bytes) not drained "
                f"within {limit:g} s"
            )
            self._count_error("slow_peer")
            logger.warning("%s: disconnecting %s", self.label, reason)
            self.abort(reason)
            raise SlowPeerError(
                f"{self.peer_id} did not read its messages for {limit:g} s; it was "
                "disconnected (raise send_timeout or max_send_queue for bursty peers)"
            )
        if self._state in _ENDED:
            raise self._closed_error()
        raise TransportTimeoutError(
            f"link to {self.url} is {self._state.value}; the message was not sent "
            f"within {limit:g} s",
            code="link_down",
        )

    async def _flush_wait(self) -> None:
        while self._outq and self._state is not _State.CLOSED:
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._flush_waiters.append(waiter)
            await waiter

    def _drop_outq(self) -> None:
        if self._outq:
            self.stats.dropped += self._outq_msgs
            self._outq.clear()
            self._outq_counts.clear()
            self._outq_msgs = self._outq_bytes = 0
        if self._batch:
            self.stats.dropped += len(self._batch)
            self._batch = []
            self._batch_bytes = 0

    # -- receiving internals -----------------------------------------------------------
    def _pop(self) -> SwarmMessage:
        msg, charge = self._inbox.popleft()
        self._inbox_bytes -= charge
        if (
            self._reading_paused
            and len(self._inbox) <= self.options.max_recv_queue // 2
            and self._inbox_bytes <= self.options.max_recv_bytes // 2
        ):
            self._reading_paused = False
            if self._state is not _State.CLOSED:
                self._link.resume_reading()
        return msg

    def _rejected(self, item: FrameRejected) -> None:
        code = item.error.code
        stats = self.stats
        stats.rejected += 1
        stats.rejected_by_code[code] = stats.rejected_by_code.get(code, 0) + 1
        self._count_error(code)
        logger.log(
            logging.WARNING if stats.rejected <= _LOUD_REJECTS else logging.DEBUG,
            "%s: rejected a %d-byte frame (%s): %s",
            self.label,
            item.size,
            code,
            item.error,
        )

    def _stream_failed(self, exc: ProtocolError) -> None:
        """A framing error: the byte stream cannot be trusted any more; close."""
        self._count_error(exc.code)
        logger.warning("%s: closing after a framing error (%s): %s", self.label, exc.code, exc)
        if not self._reading_paused:
            self._reading_paused = True
            self._link.pause_reading()
        if not self._closing:
            self._spawn(self._close_after_error(exc))

    async def _close_after_error(self, exc: EdgeError) -> None:
        with contextlib.suppress(EdgeError, OSError):
            if self._state is _State.OPEN:
                self._flush_batch()  # keep the order: what was sent before goes first
                self._push(
                    self._codec.encode(
                        SwarmMessage.error(
                            self.identity.agent_id, exc.code, exc.message, recipient=self.peer_id
                        )
                    )
                )
        await self.close(f"{exc.code}: {exc.message}", timeout=min(1.0, self.options.close_timeout))

    # -- lifecycle internals -----------------------------------------------------------
    def _count_error(self, code: str) -> None:
        stats = self.stats
        stats.errors += 1
        stats.errors_by_code[code] = stats.errors_by_code.get(code, 0) + 1
        if self._on_error is not None:
            self._on_error(code)

    def _arm_idle(self) -> None:
        timeout = self.options.idle_timeout
        if timeout is None:
            return
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        self._idle_handle = self._loop.call_later(timeout, self._idle_check)

    def _idle_check(self) -> None:
        timeout = self.options.idle_timeout
        self._idle_handle = None
        if timeout is None or self._state is not _State.OPEN:
            return
        silent = time.monotonic() - self.stats.last_received
        if silent < timeout:
            self._idle_handle = self._loop.call_later(timeout - silent, self._idle_check)
            return
        self._count_error("idle_timeout")
        logger.warning("%s: closing: peer silent for %.1f s (idle timeout)", self.label, silent)
        self._spawn(
            self._close_after_error(
                TransportTimeoutError(
                    f"no data for {timeout:g} s (idle timeout)", code="idle_timeout"
                )
            )
        )

    async def _shutdown_link(self, reason: str) -> None:
        try:
            await asyncio.wait_for(self._link.aclose(reason), self.options.close_timeout)
        except (TimeoutError, OSError, EdgeError):
            self._link.abort()
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        self.close_reason = reason
        self._drop_outq()
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        if self._hs_future is not None and not self._hs_future.done():
            self._hs_future.set_exception(self._closed_error(reason))
        link = self._link
        link.detach()
        link.abort()
        current = asyncio.current_task()
        for task in (self._writer, self._reconnect_task):
            if task is not None and task is not current:
                task.cancel()
        self._wake(self._recv_waiters)
        self._wake(self._room_waiters)
        self._wake(self._flush_waiters)
        if not self._closed.done():
            self._closed.set_result(None)
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:  # a faulty observer must not break the close path
                logger.exception("%s: close callback failed", self.label)
        logger.debug("%s: closed (%s)", self.label, reason)

    def _closed_error(self, reason: str | None = None) -> ConnectionClosedError:
        why = reason or self.close_reason or self._state.value
        return ConnectionClosedError(f"connection to {self.url} is closed: {why}", reason=why)

    def _new_codec(self) -> MessageCodec:
        return MessageCodec(
            max_frame_size=self.options.max_frame_size, encrypt=self.options.encrypt
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    def _cancel_task(task: asyncio.Task[None] | None) -> None:
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    @staticmethod
    def _wake(waiters: list[asyncio.Future[None]]) -> None:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        waiters.clear()

    # -- reconnection --------------------------------------------------------------------
    async def _reconnect_loop(self, reason: str) -> None:
        policy = self.options.reconnect
        assert policy is not None
        assert self._dial is not None
        assert self._join_request is not None
        self._state = _State.RECONNECTING
        self._gen += 1
        self._drop_outq()  # frames sealed for the dead session cannot be re-sent
        old = self._link
        old.detach()
        old.abort()
        self._reading_paused = False
        if self._writer_wake is not None and not self._writer_wake.done():
            self._writer_wake.set_result(None)
        last = reason
        attempts = 0
        for delay in policy.delays():
            attempts += 1
            await asyncio.sleep(delay)
            if self._closing:
                return
            try:
                async with asyncio.timeout(self.options.connect_timeout):
                    link = await self._dial()
                self._attach(link)
                await self._initiate(self._join_request)
            except AuthError as exc:
                self._link.abort()
                self._finish(f"reconnect refused ({exc.code}): {exc.message}")
                return
            except (EdgeError, OSError, TimeoutError) as exc:
                last = str(exc)
                logger.info("%s: reconnect attempt %d failed: %s", self.label, attempts, exc)
                self._link.detach()
                self._link.abort()
                self._state = _State.RECONNECTING
                continue
            self.stats.reconnects += 1
            logger.info("%s: reconnected after %d attempt(s)", self.label, attempts)
            return
        self._finish(f"gave up reconnecting after {attempts} attempts: {last}")

    def _attach(self, link: Link) -> None:
        self._gen += 1
        self._link = link
        self._codec = self._new_codec()
        self._pending_in = 0
        self._begin_handshake()
        link.start(self)


_ENDED = (_State.CLOSING, _State.CLOSED)


async def open_connection(
    dial: Dialer,
    *,
    identity: Identity,
    join: JoinRequest,
    options: TransportOptions,
    url: str,
    transport: str,
) -> Connection:
    """Dial, handshake, and return an open connection (the common half of every ``connect``).

    With ``options.reconnect`` set, failed dials are retried with its backoff until
    ``connect_timeout`` has passed, and the returned connection redials when its link
    drops. A refused JOIN raises ``AuthError`` at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.connect_timeout
    delays = options.reconnect.delays() if options.reconnect is not None else iter(())
    while True:
        conn: Connection | None = None
        try:
            async with asyncio.timeout(max(0.001, deadline - loop.time())):
                link = await dial()
            conn = Connection(
                link,
                identity=identity,
                options=options,
                side="initiator",
                url=url,
                transport=transport,
            )
            await conn._initiate(join)
        except AuthError:
            if conn is not None:
                await conn._shutdown_link("join refused")
            raise
        except (TransportError, ProtocolError, OSError, TimeoutError) as exc:
            if conn is not None:
                conn.abort(f"connect failed: {exc}")
            delay = next(delays, None)
            if delay is None or loop.time() + delay >= deadline:
                if isinstance(exc, EdgeError):
                    raise
                raise TransportError(
                    f"cannot connect to {url}: {exc}", code="connect_failed"
                ) from exc
            await asyncio.sleep(delay)
            continue
        except BaseException:
            if conn is not None:
                conn.abort("connect cancelled")
            raise
        conn._dial = dial
        return conn
