"""``Listener``: accepts links, admits each peer with the JOIN/WELCOME handshake.

Transports only produce :class:`~ruvector_edge.transport.connection.Link` objects; this base
class runs the responder handshake on each (bounded by ``handshake_timeout``), refuses
over-capacity peers with an ERROR, counts every failure by code, and hands admitted
connections to ``accept()`` or to a per-connection ``handler`` task.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ruvector_edge.errors import CapacityError, EdgeError
from ruvector_edge.identity import Admission, Identity
from ruvector_edge.transport.connection import Connection, Link, WelcomeProvider
from ruvector_edge.transport.errors import ConnectionClosedError, TransportTimeoutError
from ruvector_edge.transport.options import TransportOptions, WelcomeSettings
from ruvector_edge.wire import LinkResponder

__all__ = ["ConnectionHandler", "Listener", "ListenerStats"]

logger = logging.getLogger("ruvector_edge.transport")

ConnectionHandler = Callable[[Connection], Awaitable[None]]
"""Serves one admitted connection; the connection is closed when it returns."""


@dataclasses.dataclass(slots=True)
class ListenerStats:
    """Counters for one listener (frame-level errors of live links included)."""

    accepted: int = 0
    active: int = 0
    handshake_failures: int = 0
    handshake_timeouts: int = 0
    refused_capacity: int = 0
    errors: int = 0
    errors_by_code: dict[str, int] = dataclasses.field(default_factory=dict)

    def count(self, code: str) -> None:
        """Count one error of kind ``code``."""
        self.errors += 1
        self.errors_by_code[code] = self.errors_by_code.get(code, 0) + 1


class Listener(ABC):
    """Accepts authenticated connections on one address (``url``)."""

    transport: str = "listener"

    def __init__(
        self,
        identity: Identity,
        admission: Admission,
        *,
        welcome: WelcomeProvider | None = None,
        options: TransportOptions | None = None,
        handler: ConnectionHandler | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.identity = identity
        self.admission = admission
        self.options = options or TransportOptions()
        self.welcome: WelcomeProvider = welcome if welcome is not None else WelcomeSettings()
        self.stats = ListenerStats()
        self._handler = handler
        self._ready: deque[Connection] = deque()
        self._accept_waiters: list[asyncio.Future[None]] = []
        self._handshaking: set[Connection] = set()
        self._connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # -- public ----------------------------------------------------------------------
    @property
    @abstractmethod
    def url(self) -> str:
        """The address peers connect to (with the real port for ``ws://...:0``)."""

    @property
    def connections(self) -> frozenset[Connection]:
        """Admitted connections that are still open."""
        return frozenset(self._connections)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    async def accept(self, timeout: float | None = None) -> Connection:
        """The next admitted connection (``ConnectionClosedError`` once the listener closed)."""
        loop = self._loop
        deadline = None if timeout is None else loop.time() + timeout
        while not self._ready:
            if self._closed:
                raise ConnectionClosedError(f"listener {self.url} is closed", reason="closed")
            waiter: asyncio.Future[None] = loop.create_future()
            self._accept_waiters.append(waiter)
            try:
                if deadline is None:
                    await waiter
                else:
                    await asyncio.wait_for(waiter, max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise TransportTimeoutError(
                    f"no connection on {self.url} within {timeout} s"
                ) from None
            finally:
                with contextlib.suppress(ValueError):
                    self._accept_waiters.remove(waiter)
        return self._ready.popleft()

    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> Connection:
        try:
            return await self.accept()
        except ConnectionClosedError:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        """Stop accepting, close every connection gracefully (flushing), free resources."""
        if self._closed:
            return
        self._closed = True
        await self._stop_accepting()
        for task in list(self._tasks):
            if not task.done() and task.get_name().startswith("handshake"):
                task.cancel()
        conns = [*self._handshaking, *self._connections, *self._ready]
        self._ready.clear()
        if conns:
            await asyncio.gather(
                *(c.close("listener shutting down") for c in conns), return_exceptions=True
            )
        for waiter in self._accept_waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self._tasks:
            # Handlers see their connection closed; give them close_timeout to return.
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.options.close_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        await self._cleanup()

    async def __aenter__(self) -> Listener:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} active={len(self._connections)}>"

    # -- for transports ----------------------------------------------------------------
    def _accept_link(self, link: Link, peer_address: str) -> Connection | None:
        """Start the responder handshake on a new link (or refuse it)."""
        if self._closed:
            link.abort()
            return None
        conn = Connection(
            link,
            identity=self.identity,
            options=self.options,
            side="responder",
            url=peer_address,
            transport=self.transport,
            on_error=self.stats.count,
        )
        busy = len(self._connections) + len(self._handshaking) >= self.options.max_connections
        if busy or len(self._ready) >= self.options.backlog:
            self.stats.refused_capacity += 1
            limit = "connection limit" if busy else "accept backlog"
            err = CapacityError(f"{self.url} is at its {limit}; try again later", code="capacity")
            self._spawn(conn._refuse(err, None), "refuse")
            return conn
        self._handshaking.add(conn)
        self._spawn(self._admit(conn), f"handshake {peer_address}")
        return conn

    async def _admit(self, conn: Connection) -> None:
        try:
            await conn._respond(LinkResponder(self.identity, self.admission), self.welcome)
        except TransportTimeoutError:
            self.stats.handshake_timeouts += 1
            conn.abort("handshake timeout")
            return
        except EdgeError as exc:
            self.stats.handshake_failures += 1
            logger.info("%s: handshake failed (%s): %s", self.url, exc.code, exc.message)
            conn.abort(f"handshake failed: {exc.code}")
            return
        except asyncio.CancelledError:
            conn.abort("listener shutting down")
            raise
        finally:
            self._handshaking.discard(conn)
        if self._closed:
            await conn.close("listener shutting down")
            return
        self.stats.accepted += 1
        self.stats.active += 1
        self._connections.add(conn)
        conn.add_close_callback(self._forget)
        logger.info("%s: admitted %s", self.url, conn.peer_id)
        if self._handler is not None:
            self._spawn(self._serve(conn, self._handler), f"serve {conn.peer_id}")
            return
        self._ready.append(conn)
        for waiter in self._accept_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._accept_waiters.clear()

    async def _serve(self, conn: Connection, handler: ConnectionHandler) -> None:
        try:
            await handler(conn)
        except Exception:
            logger.exception("%s: connection handler for %s failed", self.url, conn.peer_id)
        finally:
            await conn.close("handler finished")

    def _forget(self, conn: Connection) -> None:
        if conn in self._connections:
            self._connections.discard(conn)
            self.stats.active -= 1
        with contextlib.suppress(ValueError):
            self._ready.remove(conn)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = self._loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @abstractmethod
    async def _stop_accepting(self) -> None:
        """Stop taking new links (the transport's server socket, registry entry...)."""

    @abstractmethod
    async def _cleanup(self) -> None:
        """Release what the transport holds once every connection is closed."""
