"""Transports: move authenticated frames between agents, in-process, over shared memory
or WebSocket, behind one asyncio interface.

```python
listener = await listen("ws://127.0.0.1:0", coordinator, Admission(token))
conn = await connect(listener.url, agent, join_token=token)
await conn.send(SwarmMessage.ping(agent.agent_id))
server_side = await listener.accept()
async for msg in server_side: ...
```

Every connection runs the ``identity``/``wire`` JOIN/WELCOME handshake and then carries
only sealed frames; send and receive queues are bounded (a stuck peer is disconnected);
bad frames are counted and logged, never fatal to the listener.
"""

from ruvector_edge.transport.connection import (
    Connection,
    ConnectionStats,
    JoinRequest,
    Link,
    WelcomeProvider,
)
from ruvector_edge.transport.errors import (
    ConnectionClosedError,
    SlowPeerError,
    TransportError,
    TransportTimeoutError,
)
from ruvector_edge.transport.factory import (
    Endpoint,
    InProcTransport,
    SharedMemoryTransport,
    TransportBackend,
    WebSocketTransport,
    connect,
    listen,
    parse_url,
    transport_for,
)
from ruvector_edge.transport.inproc import InProcListener
from ruvector_edge.transport.listener import ConnectionHandler, Listener, ListenerStats
from ruvector_edge.transport.options import ReconnectPolicy, TransportOptions, WelcomeSettings
from ruvector_edge.transport.shm import ShmListener, SpscRing
from ruvector_edge.transport.websocket import WS_BATCH_LIMIT, WsListener

__all__ = [
    "WS_BATCH_LIMIT",
    "Connection",
    "ConnectionClosedError",
    "ConnectionHandler",
    "ConnectionStats",
    "Endpoint",
    "InProcListener",
    "InProcTransport",
    "JoinRequest",
    "Link",
    "Listener",
    "ListenerStats",
    "ReconnectPolicy",
    "SharedMemoryTransport",
    "ShmListener",
    "SlowPeerError",
    "SpscRing",
    "TransportBackend",
    "TransportError",
    "TransportOptions",
    "TransportTimeoutError",
    "WebSocketTransport",
    "WelcomeProvider",
    "WelcomeSettings",
    "WsListener",
    "connect",
    "listen",
    "parse_url",
    "transport_for",
]
