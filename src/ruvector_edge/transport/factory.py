"""Pick a transport from a URL (``inproc://``, ``shm://``, ``ws://``, ``wss://``) or a config."""

from __future__ import annotations

import dataclasses
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from typing import ClassVar

from ruvector_edge.config import AgentRole, SwarmConfig, Transport
from ruvector_edge.errors import ConfigError
from ruvector_edge.identity import Admission, Identity
from ruvector_edge.transport.connection import Connection, JoinRequest, WelcomeProvider
from ruvector_edge.transport.inproc import connect_inproc, listen_inproc
from ruvector_edge.transport.listener import ConnectionHandler, Listener
from ruvector_edge.transport.options import TransportOptions
from ruvector_edge.transport.shm import connect_shm, listen_shm
from ruvector_edge.transport.websocket import connect_ws, listen_ws

__all__ = [
    "Endpoint",
    "InProcTransport",
    "SharedMemoryTransport",
    "TransportBackend",
    "WebSocketTransport",
    "connect",
    "listen",
    "parse_url",
    "transport_for",
]

_SCHEMES = {
    "inproc": Transport.IN_PROCESS,
    "shm": Transport.SHARED_MEMORY,
    "ws": Transport.WEBSOCKET,
    "wss": Transport.WEBSOCKET,
}


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed transport URL: ``name`` for inproc/shm, ``host``/``port`` for WebSocket."""

    kind: Transport
    scheme: str
    name: str = ""
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def secure(self) -> bool:
        """True for ``wss://``."""
        return self.scheme == "wss"

    @property
    def url(self) -> str:
        """The canonical URL."""
        if self.kind is Transport.WEBSOCKET:
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"{self.scheme}://{host}:{self.port}{self.path}"
        return f"{self.scheme}://{self.name}"


def parse_url(url: str, default: Transport | str | None = None) -> Endpoint:
    """Parse a transport URL; without a scheme, ``default`` (a ``Transport``) decides.

    ``inproc://NAME``, ``shm://NAME``, ``ws://HOST:PORT[/path]``, ``wss://HOST:PORT``.
    Raises ``ConfigError`` saying what is wrong.
    """
    text = url.strip()
    if "://" not in text:
        if default is None:
            raise ConfigError(
                f"transport URL {url!r} has no scheme; use inproc://NAME, shm://NAME, "
                "ws://HOST:PORT or wss://HOST:PORT"
            )
        kind = Transport.parse(default)
        scheme = {v: k for k, v in _SCHEMES.items() if k != "wss"}[kind]
        text = f"{scheme}://{text}"
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    if scheme not in _SCHEMES:
        raise ConfigError(
            f"unknown transport scheme {scheme!r} in {url!r}; expected inproc, shm, ws or wss"
        )
    kind = _SCHEMES[scheme]
    if kind is not Transport.WEBSOCKET:
        if not rest or "/" in rest:
            raise ConfigError(
                f"{scheme}:// needs a plain name, e.g. {scheme}://swarm (got {url!r})"
            )
        return Endpoint(kind, scheme, name=rest)
    parts = urllib.parse.urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"invalid port in {url!r}") from None
    if not parts.hostname:
        raise ConfigError(f"{scheme}:// needs a host, e.g. {scheme}://127.0.0.1:8080 (got {url!r})")
    if port is None:
        port = 443 if scheme == "wss" else 80
    return Endpoint(kind, scheme, host=parts.hostname, port=port, path=parts.path)


class TransportBackend(ABC):
    """One kind of transport: how to connect to and listen on its endpoints."""

    kind: Transport
    schemes: tuple[str, ...]

    @abstractmethod
    async def connect(
        self,
        endpoint: Endpoint,
        identity: Identity,
        join: JoinRequest,
        options: TransportOptions,
    ) -> Connection:
        """Open an authenticated connection to ``endpoint``."""

    @abstractmethod
    async def listen(
        self,
        endpoint: Endpoint,
        identity: Identity,
        admission: Admission,
        *,
        welcome: WelcomeProvider | None,
        options: TransportOptions,
        handler: ConnectionHandler | None,
    ) -> Listener:
        """Start accepting authenticated connections on ``endpoint``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'/'.join(self.schemes)}>"


class _NamedTransport(TransportBackend):
    """A backend addressed by ``scheme://NAME`` on one host: forwards to its two functions."""

    _connect: ClassVar[Callable[..., Awaitable[Connection]]]
    _listen: ClassVar[Callable[..., Awaitable[Listener]]]

    async def connect(
        self, endpoint: Endpoint, identity: Identity, join: JoinRequest, options: TransportOptions
    ) -> Connection:
        return await type(self)._connect(endpoint.name, identity, join, options)

    async def listen(
        self,
        endpoint: Endpoint,
        identity: Identity,
        admission: Admission,
        *,
        welcome: WelcomeProvider | None,
        options: TransportOptions,
        handler: ConnectionHandler | None,
    ) -> Listener:
        return await type(self)._listen(
            endpoint.name, identity, admission, welcome=welcome, options=options, handler=handler
        )


class InProcTransport(_NamedTransport):
    """``inproc://NAME``: endpoints in one process and event loop."""

    kind = Transport.IN_PROCESS
    schemes = ("inproc",)
    _connect = staticmethod(connect_inproc)
    _listen = staticmethod(listen_inproc)


class SharedMemoryTransport(_NamedTransport):
    """``shm://NAME``: processes on one host, shared-memory rings."""

    kind = Transport.SHARED_MEMORY
    schemes = ("shm",)
    _connect = staticmethod(connect_shm)
    _listen = staticmethod(listen_shm)


class WebSocketTransport(TransportBackend):
    """``ws://HOST:PORT`` / ``wss://HOST:PORT``: anywhere on the network."""

    kind = Transport.WEBSOCKET
    schemes = ("ws", "wss")

    async def connect(
        self, endpoint: Endpoint, identity: Identity, join: JoinRequest, options: TransportOptions
    ) -> Connection:
        return await connect_ws(endpoint.url, identity, join, options)

    async def listen(
        self,
        endpoint: Endpoint,
        identity: Identity,
        admission: Admission,
        *,
        welcome: WelcomeProvider | None,
        options: TransportOptions,
        handler: ConnectionHandler | None,
    ) -> Listener:
        return await listen_ws(
            endpoint.host,
            endpoint.port,
            identity,
            admission,
            secure=endpoint.secure,
            welcome=welcome,
            options=options,
            handler=handler,
        )


_BACKENDS: dict[Transport, TransportBackend] = {
    Transport.IN_PROCESS: InProcTransport(),
    Transport.SHARED_MEMORY: SharedMemoryTransport(),
    Transport.WEBSOCKET: WebSocketTransport(),
}


def transport_for(kind: SwarmConfig | Transport | str) -> TransportBackend:
    """The backend for a ``SwarmConfig``'s transport, a ``Transport`` or a URL scheme."""
    if isinstance(kind, SwarmConfig):
        return _BACKENDS[kind.transport]
    if isinstance(kind, str) and kind.lower() in _SCHEMES:
        return _BACKENDS[_SCHEMES[kind.lower()]]
    return _BACKENDS[Transport.parse(kind)]


async def connect(
    url: str,
    identity: Identity,
    *,
    role: AgentRole | str | None = None,
    capabilities: Iterable[str] = (),
    version: str = "",
    join_token: str | bytes | None = None,
    expected_peer_key: bytes | None = None,
    options: TransportOptions | None = None,
    config: SwarmConfig | None = None,
) -> Connection:
    """Connect to ``url``, run the JOIN/WELCOME handshake, return the open connection.

    The transport comes from the URL's scheme (or ``config.transport`` when it has none);
    ``config`` also supplies defaults for the role, join token and options. Raises
    ``AuthError`` if the listener refuses the JOIN, ``TransportError`` if it cannot be
    reached within ``options.connect_timeout``.
    """
    endpoint = parse_url(url, config.transport if config is not None else None)
    if options is None:
        options = TransportOptions.from_config(config) if config is not None else TransportOptions()
    if role is None:
        role = config.agent_role if config is not None else AgentRole.WORKER
    if join_token is None and config is not None:
        join_token = config.join_token
    join = JoinRequest(
        role=role,
        capabilities=tuple(capabilities),
        version=version,
        join_token=join_token,
        expected_peer_key=expected_peer_key,
    )
    return await _BACKENDS[endpoint.kind].connect(endpoint, identity, join, options)


async def listen(
    url: str,
    identity: Identity,
    admission: Admission,
    *,
    welcome: WelcomeProvider | None = None,
    options: TransportOptions | None = None,
    handler: ConnectionHandler | None = None,
    config: SwarmConfig | None = None,
) -> Listener:
    """Listen on ``url`` (``ws://127.0.0.1:0`` picks a free port: read ``listener.url``).

    Each connecting peer runs the handshake against ``admission``; admitted connections
    come out of ``listener.accept()`` (or go to ``handler(conn)`` in their own task).
    """
    endpoint = parse_url(url, config.transport if config is not None else None)
    if options is None:
        options = TransportOptions.from_config(config) if config is not None else TransportOptions()
    return await _BACKENDS[endpoint.kind].listen(
        endpoint, identity, admission, welcome=welcome, options=options, handler=handler
    )
