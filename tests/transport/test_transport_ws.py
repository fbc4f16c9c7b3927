"""WebSocket transport: round trips, TLS, reconnection, keep-alive and graceful shutdown."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from _waiting import eventually
from ruvector_edge.errors import ProtocolError
from ruvector_edge.identity import Admission, Identity
from ruvector_edge.transport import (
    Connection,
    ReconnectPolicy,
    TransportError,
    TransportOptions,
    WsListener,
    connect,
    listen,
)
from ruvector_edge.wire import SwarmMessage, SyncPatternsPayload

TOKEN = "ws-test-token"
COORD = Identity.from_seed(b"w" * 32, "coord")


def data_msg(sender: str, size: int, seq: int = 0) -> SwarmMessage:
    return SwarmMessage.new(sender, SyncPatternsPayload(data=b"d" * size, version=seq), seq=seq)


async def ws_listen(
    url: str = "ws://127.0.0.1:0", options: TransportOptions | None = None, **kw: object
) -> WsListener:
    listener = await listen(url, COORD, Admission(TOKEN), options=options, **kw)  # type: ignore[arg-type]
    assert isinstance(listener, WsListener)
    return listener


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost, made with cryptography's x509 builder."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ruvector-edge test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_round_trip_on_a_real_port() -> None:
    listener = await ws_listen()
    assert listener.url.startswith("ws://127.0.0.1:")
    assert listener.port != 0
    conn = await connect(listener.url, Identity.generate("w1"), join_token=TOKEN)
    server = await listener.accept(timeout=5)
    assert conn.transport == server.transport == "ws"
    for i in range(100):
        await conn.send(data_msg("w1", i * 10, i))
    got = [await server.recv(timeout=5) for _ in range(100)]
    assert [m.seq for m in got] == list(range(100))
    await server.send(SwarmMessage.pong("coord", "w1", nonce=3))
    assert (await conn.recv(timeout=5)).payload.nonce == 3  # type: ignore[union-attr]
    assert conn.stats.bytes_out == server.stats.bytes_in
    await conn.close()
    await asyncio.wait_for(server.wait_closed(), 5)
    assert server.close_reason.startswith("closed by peer")
    await listener.close()


async def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cert)
    listener = await ws_listen("wss://127.0.0.1:0", TransportOptions(ssl=server_ctx))
    assert listener.url.startswith("wss://")
    conn = await connect(
        listener.url,
        Identity.generate("tls"),
        join_token=TOKEN,
        options=TransportOptions(ssl=client_ctx),
    )
    server = await listener.accept(timeout=5)
    await conn.send(SwarmMessage.ping("tls", nonce=42))
    assert (await server.recv(timeout=5)).payload.nonce == 42  # type: ignore[union-attr]
    # A client that does not trust the certificate never gets a link.
    with pytest.raises(TransportError) as info:
        await connect(
            listener.url,
            Identity.generate("untrusting"),
            join_token=TOKEN,
            options=TransportOptions(ssl=ssl.create_default_context(), connect_timeout=5),
        )
    assert info.value.code == "tls_error"
    assert "certificate" in str(info.value).lower()
    # And wss:// without a server certificate is a configuration error.
    with pytest.raises(TransportError, match="needs TransportOptions"):
        await ws_listen("wss://127.0.0.1:0")
    await listener.close()


async def test_client_redials_a_restarted_server_with_backoff() -> None:
    listener = await ws_listen()
    port = listener.port
    policy = ReconnectPolicy(initial_delay=0.05, max_delay=0.2, seed=7)
    conn = await connect(
        listener.url,
        Identity.generate("w-r"),
        join_token=TOKEN,
        options=TransportOptions(reconnect=policy),
    )
    await listener.accept(timeout=5)
    await listener.close()  # the coordinator restarts...
    await eventually(lambda: conn.state in ("reconnecting", "handshake"))
    with pytest.raises(TransportError, match="link to"):
        await conn.send(SwarmMessage.ping("w-r"), timeout=0.1)  # bounded wait while it is down
    restarted = await ws_listen(f"ws://127.0.0.1:{port}")
    server = await restarted.accept(timeout=10)
    await eventually(lambda: conn.is_open)
    assert conn.stats.reconnects == 1
    await conn.send(SwarmMessage.ping("w-r", nonce=77))
    assert (await server.recv(timeout=5)).payload.nonce == 77  # type: ignore[union-attr]
    await conn.close()
    await restarted.close()


async def test_keepalive_drops_a_peer_that_stops_answering_pings() -> None:
    opts = TransportOptions(
        ws_ping_interval=0.1, ws_ping_timeout=0.1, handshake_timeout=30, close_timeout=0.5
    )
    listener = await ws_listen(options=opts)
    # Complete the HTTP upgrade by hand, then go silent: never read, never pong.
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{listener.port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    status = await reader.readline()
    assert b"101" in status
    await eventually(lambda: listener.stats.errors_by_code.get("keepalive_timeout") == 1)
    assert listener.stats.handshake_failures == 1
    writer.close()
    await listener.close()


async def test_graceful_shutdown_flushes_queued_frames() -> None:
    count = 300

    async def burst(conn: Connection) -> None:
        for i in range(count):
            await conn.send(data_msg("coord", 200, i))
        await conn.wait_closed()  # stay until the listener closes us

    listener = await ws_listen(handler=burst)
    conn = await connect(listener.url, Identity.generate("w"), join_token=TOKEN)
    await eventually(lambda: len(listener.connections) == 1)
    (server,) = listener.connections
    # + 1: the WELCOME (handshake frames count as messages too)
    await eventually(lambda: server.stats.messages_out + server.queued_frames == count + 1)
    await listener.close()  # frames still queued must go out before the close frame
    got = [m.seq async for m in conn]
    assert got == list(range(count))
    assert conn.closed
    assert "listener shutting down" in conn.close_reason
    assert server.stats.dropped == 0


async def test_frame_limit_is_announced_and_enforced() -> None:
    listener = await ws_listen(options=TransportOptions(max_frame_size=4096))
    conn = await connect(listener.url, Identity.generate("w"), join_token=TOKEN)
    server = await listener.accept(timeout=5)
    with pytest.raises(ProtocolError) as info:
        await conn.send(data_msg("w", 5000))
    assert info.value.code == "frame_too_large"
    await conn.send(data_msg("w", 1000, 1))
    assert (await server.recv(timeout=5)).seq == 1
    await listener.close()


async def test_unreachable_server_fails_with_a_clear_error() -> None:
    listener = await ws_listen()
    url = listener.url
    await listener.close()
    with pytest.raises(TransportError) as info:
        await connect(
            url,
            Identity.generate("w"),
            join_token=TOKEN,
            options=TransportOptions(connect_timeout=2),
        )
    assert info.value.code == "connect_failed"
    assert url in str(info.value)
