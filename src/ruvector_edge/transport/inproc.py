"""In-process transport (``inproc://NAME``): two endpoints in one event loop.

Real frames, real handshake, real limits — only the byte mover is trivial: a write hands
the (immutable) frame bytes straight to the peer connection's decoder, which queues the
decoded messages in its bounded inbox. When that inbox is full the peer pauses its link
and writers wait on it, exactly as they would wait on a full ring or socket. So tests and
single-process swarms run the identical code path as the networked transports.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

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

__all__ = ["InProcListener", "connect_inproc", "listen_inproc"]

_registry: dict[str, InProcListener] = {}
_ids = itertools.count(1)


class _InProcLink(Link):
    """One end of an in-process link pair."""

    kind = "inproc"

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.peer: _InProcLink | None = None
        self._paused = False
        self._closed = False
        self._resume_waiters: list[asyncio.Future[None]] = []

    def _start(self) -> None:
        pass

    def try_write(self, data: bytes) -> bool:
        peer = self.peer
        if self._closed or peer is None or peer._closed or peer._paused:
            return False
        peer._emit_bytes(data)
        return True

    async def write(self, frames: Sequence[bytes]) -> None:
        loop = asyncio.get_running_loop()
        for frame in frames:
            while True:
                peer = self.peer
                if self._closed or peer is None or peer._closed:
                    raise ConnectionClosedError(f"{self.label}: peer closed", reason="peer closed")
                if not peer._paused:
                    break
                waiter: asyncio.Future[None] = loop.create_future()
                peer._resume_waiters.append(waiter)
                await waiter
            peer._emit_bytes(frame)

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        self._wake_writers()

    async def aclose(self, reason: str) -> None:
        self._shut(reason, graceful=True)

    def abort(self) -> None:
        self._shut("aborted", graceful=False)

    def _wake_writers(self) -> None:
        waiters, self._resume_waiters = self._resume_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _shut(self, reason: str, *, graceful: bool) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake_writers()
        peer = self.peer
        if peer is not None and not peer._closed:
            # Deliver the end asynchronously: the peer must not re-enter our caller.
            asyncio.get_running_loop().call_soon(peer._remote_closed, reason, graceful)

    def _remote_closed(self, reason: str, graceful: bool) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake_writers()
        why = f"closed by peer ({reason})"
        self._emit_lost(why, None if graceful else ConnectionClosedError(why, reason=reason))


class InProcListener(Listener):
    """Listens on ``inproc://NAME`` in this process."""

    transport = "inproc"

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
            raise TransportError("inproc:// needs a name, e.g. inproc://swarm", code="bad_url")
        existing = _registry.get(name)
        if existing is not None and not existing.closed:
            raise TransportError(
                f"inproc://{name} already has a listener in this process; pick another name",
                code="address_in_use",
            )
        super().__init__(identity, admission, welcome=welcome, options=options, handler=handler)
        self.name = name
        _registry[name] = self

    @property
    def url(self) -> str:
        return f"inproc://{self.name}"

    def _dial(self) -> _InProcLink:
        if self.closed:
            raise TransportError(f"{self.url} is closed", code="no_listener")
        if asyncio.get_running_loop() is not self._loop:
            raise TransportError(
                f"{self.url} runs in another event loop; in-process links need one loop",
                code="no_listener",
            )
        n = next(_ids)
        client = _InProcLink(f"{self.url}#{n} (client)")
        server = _InProcLink(f"{self.url}#{n} (server)")
        client.peer, server.peer = server, client
        self._accept_link(server, f"{self.url}#{n}")
        return client

    async def _stop_accepting(self) -> None:
        if _registry.get(self.name) is self:
            del _registry[self.name]

    async def _cleanup(self) -> None:
        pass


async def listen_inproc(
    name: str,
    identity: Identity,
    admission: Admission,
    *,
    welcome: WelcomeProvider | None = None,
    options: TransportOptions | None = None,
    handler: ConnectionHandler | None = None,
) -> InProcListener:
    """Start an in-process listener called ``name``."""
    return InProcListener(
        name, identity, admission, welcome=welcome, options=options, handler=handler
    )


async def connect_inproc(
    name: str,
    identity: Identity,
    join: JoinRequest,
    options: TransportOptions,
) -> Connection:
    """Connect to the in-process listener ``name`` and run the handshake."""
    url = f"inproc://{name}"

    async def dial() -> Link:
        listener = _registry.get(name)
        if listener is None or listener.closed:
            raise TransportError(
                f"no in-process listener at {url}; start one with listen({url!r}, ...)",
                code="no_listener",
            )
        return listener._dial()

    return await open_connection(
        dial, identity=identity, join=join, options=options, url=url, transport="inproc"
    )
