"""Bad input and faults against a WebSocket listener, from a raw client.

The raw client speaks the protocol by hand (``wire``'s sans-I/O ``LinkInitiator`` and
``MessageCodec`` over a bare ``websockets`` connection), so it can send what a correct
transport never would. Each fault must be refused or timed out with a logged reason and a
counter, while an honest connection made beforehand keeps working and new ones are admitted.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from _waiting import eventually
from ruvector_edge.identity import Admission, Identity
from ruvector_edge.transport import (
    Connection,
    Listener,
    SlowPeerError,
    TransportOptions,
    connect,
    listen,
)
from ruvector_edge.wire import (
    LinkInitiator,
    MessageCodec,
    SwarmMessage,
    SyncPatternsPayload,
    frame_header,
)

TOKEN = "fault-token"
COORD = Identity.from_seed(b"f" * 32, "coord")
OPTS = TransportOptions(
    handshake_timeout=0.4,
    send_timeout=0.3,
    close_timeout=0.5,
    max_frame_size=64 * 1024,
    max_send_queue=16,
    ws_ping_interval=None,
)


@dataclass
class Server:
    listener: Listener
    good: Connection
    good_server: Connection
    handler_errors: list[BaseException]

    async def assert_still_serving(self) -> None:
        """The honest connection still works both ways, and a new peer is admitted."""
        await self.good.send(SwarmMessage.ping("good", nonce=123))
        ping = await self.good_server.recv(timeout=5)
        assert ping.payload.nonce == 123  # type: ignore[union-attr]
        await self.good_server.send(SwarmMessage.pong("coord", "good", nonce=321))
        assert (await self.good.recv(timeout=5)).payload.nonce == 321  # type: ignore[union-attr]
        assert self.good_server.stats.errors == 0
        fresh = await connect(self.listener.url, Identity.generate(), join_token=TOKEN)
        assert fresh.is_open
        await fresh.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    errors: list[BaseException] = []
    stalled: list[Connection] = []

    async def handler(conn: Connection) -> None:
        if conn.peer_id == "good":
            stalled.append(conn)
            await conn.wait_closed()
            return
        if conn.peer_id == "flood-me":
            try:
                while True:
                    await conn.send(
                        SwarmMessage.new("coord", SyncPatternsPayload(data=b"x" * 60_000))
                    )
            except Exception as exc:  # the test inspects what the flood ended with
                errors.append(exc)
            return
        async for _ in conn:
            pass

    listener = await listen(
        "ws://127.0.0.1:0", COORD, Admission(TOKEN), options=OPTS, handler=handler
    )
    good = await connect(listener.url, Identity.generate("good"), join_token=TOKEN)
    await eventually(lambda: bool(stalled))
    yield Server(listener, good, stalled[0], errors)
    await listener.close()


async def raw_join(
    url: str, agent_id: str = "raw", *, join: bool = True
) -> tuple[ClientConnection, MessageCodec]:
    """A bare WebSocket that (optionally) completes the JOIN/WELCOME handshake by hand."""
    ws = await ws_connect(url, compression=None, proxy=None, max_size=None, close_timeout=0.5)
    codec = MessageCodec()
    if join:
        initiator = LinkInitiator(Identity.generate(agent_id), join_token=TOKEN)
        await ws.send(codec.encode(initiator.join_message()))
        (welcome,) = codec.feed(await ws.recv(decode=False))
        assert isinstance(welcome, SwarmMessage)
        codec.attach_session(initiator.complete(welcome))
    return ws, codec


async def read_until_closed(ws: ClientConnection, codec: MessageCodec) -> list[SwarmMessage]:
    """Everything the server sent until it closed the WebSocket."""
    out: list[SwarmMessage] = []
    try:
        while True:
            data = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(data, bytes)
            out.extend(m for m in codec.feed(data) if isinstance(m, SwarmMessage))
    except ConnectionClosed:
        return out


def errors(server: Server) -> dict[str, int]:
    return server.listener.stats.errors_by_code


async def test_garbage_bytes_close_that_link_only(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ruvector_edge.transport")
    ws, codec = await raw_join(server.listener.url)
    await ws.send(b"\x00\x01 definitely not a frame \xff" * 4)
    replies = await read_until_closed(ws, codec)
    assert [m.payload.code for m in replies] == ["protocol_error"]  # type: ignore[union-attr]
    await eventually(lambda: errors(server).get("protocol_error") == 1)
    assert "bad frame magic" in caplog.text
    await server.assert_still_serving()


async def test_truncated_frame_is_counted_when_the_link_ends(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ruvector_edge.transport")
    ws, codec = await raw_join(server.listener.url)
    frame = codec.encode(SwarmMessage.ping("raw"))
    await ws.send(frame[: len(frame) // 2])
    await ws.close()
    await eventually(lambda: errors(server).get("truncated_frame") == 1)
    assert "ended inside a frame" in caplog.text
    await server.assert_still_serving()


async def test_oversize_frame_is_refused_before_buffering(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ruvector_edge.transport")
    ws, codec = await raw_join(server.listener.url)
    await ws.send(frame_header(1 << 30, 0x01) + b"\x00" * 16)  # announces 1 GiB
    replies = await read_until_closed(ws, codec)
    assert [m.payload.code for m in replies] == ["frame_too_large"]  # type: ignore[union-attr]
    await eventually(lambda: errors(server).get("frame_too_large") == 1)
    assert "exceeds the 65536-byte limit" in caplog.text
    await server.assert_still_serving()


async def test_oversize_websocket_message_is_refused(server: Server) -> None:
    ws, _ = await raw_join(server.listener.url)
    await ws.send(b"\xedR" + b"\x00" * (3 * 64 * 1024))  # above max_frame_size + one batch
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), 10)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1009
    await eventually(lambda: errors(server).get("frame_too_large") == 1)
    await server.assert_still_serving()


async def test_bad_tag_and_replay_are_rejected_and_the_link_survives(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ruvector_edge.transport")
    ws, codec = await raw_join(server.listener.url, "tamperer")
    (tamperer,) = [c for c in server.listener.connections if c.peer_id == "tamperer"]
    sealed = bytearray(codec.encode(SwarmMessage.ping("tamperer", nonce=1)))
    sealed[-1] ^= 0x01  # flip one bit of the tag
    await ws.send(bytes(sealed))
    replayed = codec.encode(SwarmMessage.ping("tamperer", nonce=2))
    await ws.send(replayed)
    await ws.send(replayed)
    await ws.send(codec.encode(SwarmMessage.ping("tamperer", nonce=3)))
    await eventually(lambda: tamperer.stats.messages_in >= 3)  # JOIN + two good pings
    assert tamperer.stats.rejected_by_code == {"auth_error": 1, "replay": 1}
    assert tamperer.is_open
    assert "authentication tag is invalid" in caplog.text
    assert "already received" in caplog.text
    await ws.close()
    await server.assert_still_serving()


async def test_client_that_never_joins_times_out(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ruvector_edge.transport")
    ws, codec = await raw_join(server.listener.url, join=False)
    replies = await read_until_closed(ws, codec)
    assert [m.payload.code for m in replies] == ["handshake_timeout"]  # type: ignore[union-attr]
    await eventually(lambda: server.listener.stats.handshake_timeouts == 1)
    assert "did not finish the handshake" in caplog.text
    await server.assert_still_serving()


async def test_half_a_join_then_silence_times_out(server: Server) -> None:
    ws, codec = await raw_join(server.listener.url, join=False)
    join = codec.encode(LinkInitiator(Identity.generate("half"), join_token=TOKEN).join_message())
    await ws.send(join[:40])
    replies = await read_until_closed(ws, MessageCodec())
    assert [m.payload.code for m in replies] == ["handshake_timeout"]  # type: ignore[union-attr]
    await eventually(lambda: server.listener.stats.handshake_timeouts == 1)
    await server.assert_still_serving()


async def test_tampered_join_is_refused_with_an_error(server: Server) -> None:
    ws, codec = await raw_join(server.listener.url, join=False)
    frame = bytearray(
        codec.encode(LinkInitiator(Identity.generate("forger"), join_token=TOKEN).join_message())
    )
    frame[-70] ^= 0x01  # inside the signed hello
    await ws.send(bytes(frame))
    replies = await read_until_closed(ws, codec)
    assert len(replies) == 1
    assert replies[0].payload.code in ("auth_error", "protocol_error")  # type: ignore[union-attr]
    await eventually(lambda: server.listener.stats.handshake_failures == 1)
    await server.assert_still_serving()


async def test_text_messages_are_a_protocol_violation(server: Server) -> None:
    ws, _ = await raw_join(server.listener.url)
    await ws.send("hello, I am text")
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), 10)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1003
    await eventually(lambda: errors(server).get("protocol_error") == 1)
    await server.assert_still_serving()


async def test_a_peer_that_stops_reading_is_disconnected(server: Server) -> None:
    ws, _ = await raw_join(server.listener.url, "flood-me")  # ...and never reads again
    await eventually(lambda: bool(server.handler_errors), timeout=30)
    (exc,) = server.handler_errors
    assert isinstance(exc, SlowPeerError)
    assert errors(server).get("slow_peer") == 1
    await server.assert_still_serving()
    await ws.close()


async def test_non_websocket_garbage_on_the_port_does_not_hurt(server: Server) -> None:
    host, port = server.listener.url.removeprefix("ws://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"\x16\x03\x01\x02\x00" + bytes(range(256)) * 4 + b"\r\n\r\n")
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), 10)  # the server answers and hangs up
    assert reply.startswith(b"HTTP/1.1 400") or reply == b""
    writer.close()
    assert server.listener.stats.accepted == 1  # only the honest peer
    await server.assert_still_serving()


async def test_silent_peer_is_dropped_by_the_idle_timeout() -> None:
    listener = await listen(
        "ws://127.0.0.1:0",
        COORD,
        Admission(TOKEN),
        options=OPTS.replace(idle_timeout=0.3),
    )
    ws, codec = await raw_join(listener.url, "sleepy")
    replies = await read_until_closed(ws, codec)
    assert [m.payload.code for m in replies] == ["idle_timeout"]  # type: ignore[union-attr]
    await eventually(lambda: listener.stats.errors_by_code.get("idle_timeout") == 1)
    await listener.close()


def test_frame_header_helper_matches_the_wire_layout() -> None:
    assert frame_header(5, 1) == b"\xedR\x01\x01" + struct.pack(">I", 5)
