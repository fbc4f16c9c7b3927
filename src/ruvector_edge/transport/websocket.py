"""WebSocket transport (``ws://HOST:PORT``, ``wss://HOST:PORT``) on ``websockets``' asyncio API.

Each WebSocket message is a binary message carrying whole wire frames. When several
frames are queued at once the writer packs them into one message of at most
``WS_BATCH_LIMIT`` bytes (a frame larger than that travels alone), which turns a burst
of small sends into one syscall and one WebSocket frame; the receiver's ``FrameDecoder``
splits them again. Nothing waits to fill a batch, so a lone frame is sent immediately.
Text messages are a protocol violation (close 1003). The receive limit is
``max_frame_size + WS_BATCH_LIMIT``; permessage-deflate is off (frames are compressed
or sealed already, and deflate would cost latency). Keep-alive uses WebSocket ping/pong
(``ws_ping_interval``/``ws_ping_timeout``): a peer that stops answering is dropped.
TLS: pass an ``ssl.SSLContext`` in ``TransportOptions.ssl`` (server: with a cert chain;
client: trusting the server's CA) and use ``wss://``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from typing import Final

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidURI,
)
from websockets.frames import CloseCode

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
from ruvector_edge.wire import HEADER_SIZE

__all__ = ["WS_BATCH_LIMIT", "WsListener", "connect_ws", "listen_ws", "ws_max_message_size"]

WS_BATCH_LIMIT: Final = 64 * 1024
_WS_MAX_QUEUE: Final = 16  # websockets' buffered incoming messages before it stops reading


def ws_max_message_size(options: TransportOptions) -> int:
    """The largest WebSocket message accepted: one max-size frame or one batch."""
    return options.max_frame_size + HEADER_SIZE + WS_BATCH_LIMIT


def _close_code(exc: ConnectionClosed) -> tuple[str, str]:
    """(error code, human reason) for a closed WebSocket."""
    frame = exc.rcvd or exc.sent
    if frame is None:
        return "link_lost", "connection dropped without a close frame"
    code = frame.code
    detail = f"{code} {frame.reason}".strip()
    if code == CloseCode.MESSAGE_TOO_BIG:
        return "frame_too_large", f"message above the size limit ({detail})"
    if code == CloseCode.INTERNAL_ERROR and "keepalive" in frame.reason:
        return "keepalive_timeout", f"keep-alive ping unanswered ({detail})"
    if code == CloseCode.UNSUPPORTED_DATA:
        return "protocol_error", f"unsupported data ({detail})"
    return "connection_closed", detail


class _WsLink(Link):
    """A ``websockets`` connection as a link; one reader task per connection."""

    kind = "ws"

    def __init__(self, label: str, ws: ServerConnection | ClientConnection, coalesce: bool) -> None:
        super().__init__(label)
        self._ws = ws
        self._coalesce = coalesce
        self._resume = asyncio.Event()
        self._resume.set()
        self._reader: asyncio.Task[None] | None = None

    def _start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    async def finished(self) -> None:
        """Wait until the reader task has ended (the link is closed)."""
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._reader)

    async def _read_loop(self) -> None:
        ws = self._ws
        try:
            while True:
                if not self._resume.is_set():
                    await self._resume.wait()
                data = await ws.recv()
                if isinstance(data, str):
                    err = ProtocolError(
                        "received a text WebSocket message; ruvector-edge links carry binary "
                        "frames only"
                    )
                    with contextlib.suppress(ConnectionClosed):
                        await ws.close(CloseCode.UNSUPPORTED_DATA, "binary frames only")
                    self._emit_lost(str(err), err)
                    return
                self._emit_bytes(data)
        except ConnectionClosed as exc:
            code, reason = _close_code(exc)
            if isinstance(exc, ConnectionClosedOK):
                self._emit_lost(f"closed by peer ({reason})")
            else:
                self._emit_lost(reason, ConnectionClosedError(reason, code=code))
        except Exception as exc:  # never leave the connection waiting on a dead reader
            self.abort()
            self._emit_lost(f"WebSocket reader failed: {exc!r}", exc)

    def try_write(self, data: bytes) -> bool:
        return False  # websockets' send is a coroutine: always go through the writer task

    async def write(self, frames: Sequence[bytes]) -> None:
        ws = self._ws
        try:
            if not self._coalesce or len(frames) == 1:
                for frame in frames:
                    await ws.send(frame)
                return
            batch: list[bytes] = []
            size = 0
            for frame in frames:
                if batch and size + len(frame) > WS_BATCH_LIMIT:
                    await ws.send(b"".join(batch) if len(batch) > 1 else batch[0])
                    batch, size = [], 0
                batch.append(frame)
                size += len(frame)
            if batch:
                await ws.send(b"".join(batch) if len(batch) > 1 else batch[0])
        except ConnectionClosed as exc:
            code, reason = _close_code(exc)
            raise ConnectionClosedError(
                f"{self.label}: {reason}", reason=reason, code=code
            ) from None

    def pause_reading(self) -> None:
        self._resume.clear()

    def resume_reading(self) -> None:
        self._resume.set()

    async def aclose(self, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            # A close reason is limited to 123 bytes of UTF-8.
            short = reason.encode()[:120].decode(errors="ignore")
            await self._ws.close(CloseCode.NORMAL_CLOSURE, short)
        await self.finished()

    def abort(self) -> None:
        transport = self._ws.transport
        if transport is not None and not transport.is_closing():
            transport.abort()
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task() and not reader.done():
            reader.cancel()


class WsListener(Listener):
    """A WebSocket server admitting swarm peers (``ws://`` or, with ``options.ssl``, ``wss://``)."""

    transport = "ws"

    def __init__(
        self,
        host: str,
        port: int,
        identity: Identity,
        admission: Admission,
        *,
        secure: bool = False,
        welcome: WelcomeProvider | None = None,
        options: TransportOptions | None = None,
        handler: ConnectionHandler | None = None,
    ) -> None:
        super().__init__(identity, admission, welcome=welcome, options=options, handler=handler)
        if secure and self.options.ssl is None:
            raise TransportError(
                "wss:// needs TransportOptions(ssl=<server SSLContext with a cert chain>)",
                code="tls_required",
            )
        self.host = host
        self.port = port
        self.secure = secure
        self._server: Server | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self.secure else 'ws'}://{host}:{self.port}"

    async def _start(self) -> None:
        opts = self.options
        try:
            self._server = await serve(
                self._handle,
                self.host,
                self.port,
                compression=None,
                max_size=ws_max_message_size(opts),
                max_queue=_WS_MAX_QUEUE,
                ping_interval=opts.ws_ping_interval,
                ping_timeout=opts.ws_ping_timeout,
                open_timeout=opts.handshake_timeout,
                close_timeout=opts.close_timeout,
                ssl=opts.ssl if self.secure else None,
                server_header=None,
            )
        except OSError as exc:
            raise TransportError(
                f"cannot listen on {self.url}: {exc.strerror or exc}", code="address_in_use"
            ) from exc
        if self.port == 0:
            self.port = int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, ws: ServerConnection) -> None:
        address = ws.remote_address
        peer = f"{address[0]}:{address[1]}" if address else "?"
        link = _WsLink(f"{self.url} <- {peer}", ws, self.options.ws_coalesce)
        if self._accept_link(link, f"{self.url} <- {peer}") is None:
            return
        await link.finished()

    async def _stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close(close_connections=False)

    async def _cleanup(self) -> None:
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()


async def listen_ws(
    host: str,
    port: int,
    identity: Identity,
    admission: Admission,
    *,
    secure: bool = False,
    welcome: WelcomeProvider | None = None,
    options: TransportOptions | None = None,
    handler: ConnectionHandler | None = None,
) -> WsListener:
    """Start a WebSocket listener (port 0 picks a free port; read it back from ``url``)."""
    listener = WsListener(
        host,
        port,
        identity,
        admission,
        secure=secure,
        welcome=welcome,
        options=options,
        handler=handler,
    )
    await listener._start()
    return listener


async def _dial(url: str, secure: bool, options: TransportOptions) -> _WsLink:
    try:
        ws = await ws_connect(
            url,
            compression=None,
            max_size=ws_max_message_size(options),
            max_queue=_WS_MAX_QUEUE,
            ping_interval=options.ws_ping_interval,
            ping_timeout=options.ws_ping_timeout,
            open_timeout=options.connect_timeout,
            close_timeout=options.close_timeout,
            proxy=None,
            ssl=options.ssl if secure else None,
        )
    except InvalidURI as exc:
        raise TransportError(f"invalid WebSocket URL {url!r}: {exc}", code="bad_url") from None
    except ssl.SSLError as exc:
        raise TransportError(f"TLS handshake with {url} failed: {exc}", code="tls_error") from exc
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        raise TransportError(f"cannot open {url}: {exc}", code="connect_failed") from exc
    return _WsLink(url, ws, options.ws_coalesce)


async def connect_ws(
    url: str,
    identity: Identity,
    join: JoinRequest,
    options: TransportOptions,
) -> Connection:
    """Open ``ws://``/``wss://`` ``url`` and run the handshake over it."""
    secure = url.startswith("wss://")

    async def dial() -> Link:
        return await _dial(url, secure, options)

    return await open_connection(
        dial, identity=identity, join=join, options=options, url=url, transport="ws"
    )
