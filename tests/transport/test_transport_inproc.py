"""Connection semantics over the in-process transport (the code path every transport shares)."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _waiting import eventually
from ruvector_edge.config import AgentRole
from ruvector_edge.errors import AuthError, CapacityError, ProtocolError
from ruvector_edge.identity import Admission, Identity, PeerInfo
from ruvector_edge.transport import (
    Connection,
    ConnectionClosedError,
    Listener,
    ReconnectPolicy,
    SlowPeerError,
    TransportError,
    TransportOptions,
    WelcomeSettings,
    connect,
    listen,
)
from ruvector_edge.wire import (
    JoinPayload,
    MessageCodec,
    SwarmMessage,
    SyncPatternsPayload,
    encode_frame,
    encode_message,
)

TOKEN = "inproc-test-token"
COORD = Identity.from_seed(b"c" * 32, "coord")
_names = itertools.count()


def fresh_name() -> str:
    return f"test-{next(_names)}"


def data_msg(sender: str, size: int, seq: int = 0) -> SwarmMessage:
    payload = SyncPatternsPayload(data=bytes([seq % 256]) * size, version=seq)
    return SwarmMessage.new(sender, payload, seq=seq)


async def pair(
    *,
    server: TransportOptions | None = None,
    client: TransportOptions | None = None,
    agent: str = "worker-1",
    welcome: WelcomeSettings | None = None,
) -> tuple[Listener, Connection, Connection]:
    listener = await listen(
        f"inproc://{fresh_name()}", COORD, Admission(TOKEN), options=server, welcome=welcome
    )
    conn = await connect(listener.url, Identity.generate(agent), join_token=TOKEN, options=client)
    accepted = await listener.accept(timeout=5)
    return listener, conn, accepted


async def test_handshake_exposes_peer_identity_and_signed_fields() -> None:
    welcome = WelcomeSettings(swarm_id="swarm-a", sync_interval_ms=250, members=("coord", "w0"))
    listener = await listen(f"inproc://{fresh_name()}", COORD, Admission(TOKEN), welcome=welcome)
    agent = Identity.generate("scout-7")
    conn = await connect(
        listener.url,
        agent,
        role=AgentRole.SCOUT,
        capabilities=["rust", "search"],
        version="1.2",
        join_token=TOKEN,
    )
    server = await listener.accept(timeout=5)
    assert conn.is_open
    assert server.is_open
    assert conn.peer is not None
    assert conn.peer.public_key == COORD.public_key
    assert conn.peer_id == "coord"
    assert server.peer_id == "scout-7"
    assert server.peer is not None
    assert server.peer.public_key == agent.public_key
    assert server.join is not None
    assert server.join.agent_role is AgentRole.SCOUT
    assert server.join.capabilities == ["rust", "search"]
    assert server.join.version == "1.2"
    assert conn.welcome is not None
    assert conn.welcome.swarm_id == "swarm-a"
    assert conn.welcome.sync_interval_ms == 250
    assert conn.welcome.members == ["coord", "w0"]
    assert listener.stats.accepted == 1
    assert listener.stats.active == 1
    assert server in listener.connections
    await listener.close()
    assert listener.stats.active == 0
    await asyncio.wait_for(conn.wait_closed(), 5)
    assert "listener shutting down" in conn.close_reason


async def test_messages_flow_both_ways_in_order_with_matching_stats() -> None:
    listener, conn, server = await pair()
    for i in range(200):
        await conn.send(data_msg("worker-1", 10 + i, i))
        await server.send(data_msg("coord", 5, i))
    got_server = [await server.recv(timeout=5) for _ in range(200)]
    got_client = [await conn.recv(timeout=5) for _ in range(200)]
    assert [m.seq for m in got_server] == list(range(200))
    assert [m.seq for m in got_client] == list(range(200))
    assert all(isinstance(m.payload, SyncPatternsPayload) for m in got_server)
    assert [len(m.payload.data) for m in got_server] == [10 + i for i in range(200)]  # type: ignore[union-attr]
    assert conn.stats.bytes_out == server.stats.bytes_in
    assert server.stats.bytes_out == conn.stats.bytes_in
    assert server.stats.messages_in == 201  # + the JOIN
    assert conn.stats.messages_in == 201  # + the WELCOME
    assert conn.stats.messages_out == server.stats.messages_in
    assert conn.stats.errors == server.stats.errors == 0
    await listener.close()


async def test_unsealed_and_replayed_frames_are_rejected_counted_and_the_link_survives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listener, conn, server = await pair()
    caplog.set_level(logging.WARNING, logger="ruvector_edge.transport")
    plain = encode_frame(encode_message(SwarmMessage.ping("worker-1")))
    assert conn._link.try_write(plain)
    sealed = conn._codec.encode(SwarmMessage.ping("worker-1", nonce=1))
    assert conn._link.try_write(sealed)
    assert conn._link.try_write(sealed)  # the same sealed frame again: a replay
    await conn.send(SwarmMessage.ping("worker-1", nonce=2))
    first = await server.recv(timeout=5)
    second = await server.recv(timeout=5)
    assert [first.payload.nonce, second.payload.nonce] == [1, 2]  # type: ignore[union-attr]
    assert server.stats.rejected == 2
    assert server.stats.rejected_by_code == {"auth_error": 1, "replay": 1}
    assert listener.stats.errors_by_code == {"auth_error": 1, "replay": 1}
    assert server.is_open
    assert "unauthenticated frame" in caplog.text
    assert "already received" in caplog.text
    await listener.close()


async def test_garbage_closes_only_that_connection(caplog: pytest.LogCaptureFixture) -> None:
    listener, bad, bad_server = await pair(agent="bad")
    good = await connect(listener.url, Identity.generate("good"), join_token=TOKEN)
    good_server = await listener.accept(timeout=5)
    caplog.set_level(logging.WARNING, logger="ruvector_edge.transport")
    assert bad._link.try_write(b"GET / HTTP/1.1\r\n\r\n")
    await asyncio.wait_for(bad_server.wait_closed(), 5)
    assert bad_server.stats.errors_by_code == {"protocol_error": 1}
    assert "bad frame magic" in caplog.text
    # The offender gets an ERROR before the link closes, then its iteration ends.
    err = await bad.recv(timeout=5)
    assert err.payload.code == "protocol_error"  # type: ignore[union-attr]
    await asyncio.wait_for(bad.wait_closed(), 5)
    # Everyone else is unaffected.
    await good.send(SwarmMessage.ping("good", nonce=9))
    assert (await good_server.recv(timeout=5)).payload.nonce == 9  # type: ignore[union-attr]
    assert good_server.stats.errors == 0
    await listener.close()


async def test_wrong_token_is_refused_with_an_error_code(caplog: pytest.LogCaptureFixture) -> None:
    listener = await listen(f"inproc://{fresh_name()}", COORD, Admission(TOKEN))
    caplog.set_level(logging.INFO, logger="ruvector_edge.transport")
    with pytest.raises(AuthError) as info:
        await connect(listener.url, Identity.generate("intruder"), join_token="wrong")
    assert info.value.code == "bad_token"
    assert "wrong join token" in str(info.value)
    with pytest.raises(AuthError) as missing:
        await connect(listener.url, Identity.generate("intruder2"))
    assert missing.value.code == "no_token"
    await eventually(lambda: listener.stats.handshake_failures == 2)
    assert listener.stats.errors_by_code == {"bad_token": 1, "no_token": 1}
    assert listener.stats.accepted == 0
    assert "wrong join token" in caplog.text
    await listener.close()


async def test_stolen_agent_id_is_refused() -> None:
    listener = await listen(f"inproc://{fresh_name()}", COORD, Admission(TOKEN))
    owner = await connect(listener.url, Identity.generate("worker-9"), join_token=TOKEN)
    with pytest.raises(AuthError) as info:
        await connect(listener.url, Identity.generate("worker-9"), join_token=TOKEN)
    assert info.value.code == "id_taken"
    assert owner.is_open
    await listener.close()


async def test_welcome_callback_sees_the_join_and_may_refuse() -> None:
    seen: list[tuple[str, list[str]]] = []

    async def welcome(peer: PeerInfo, join: JoinPayload) -> WelcomeSettings:
        await asyncio.sleep(0)
        seen.append((peer.agent_id, join.capabilities))
        if "forbidden" in join.capabilities:
            raise AuthError("capability 'forbidden' is not allowed here", code="policy")
        return WelcomeSettings(swarm_id="cb-swarm", members=(peer.agent_id,))

    listener = await listen(f"inproc://{fresh_name()}", COORD, Admission(TOKEN), welcome=welcome)
    conn = await connect(
        listener.url, Identity.generate("a1"), capabilities=["ok"], join_token=TOKEN
    )
    assert conn.welcome is not None
    assert conn.welcome.swarm_id == "cb-swarm"
    assert conn.welcome.members == ["a1"]
    with pytest.raises(AuthError) as info:
        await connect(
            listener.url, Identity.generate("a2"), capabilities=["forbidden"], join_token=TOKEN
        )
    assert info.value.code == "policy"
    assert seen == [("a1", ["ok"]), ("a2", ["forbidden"])]
    await listener.close()


async def test_a_crashing_welcome_callback_refuses_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(peer: PeerInfo, join: JoinPayload) -> WelcomeSettings:
        raise RuntimeError("database is down")

    listener = await listen(f"inproc://{fresh_name()}", COORD, Admission(TOKEN), welcome=broken)
    with pytest.raises(AuthError) as info:
        await connect(listener.url, Identity.generate("w"), join_token=TOKEN)
    assert info.value.code == "internal_error"
    assert "database is down" in str(info.value)
    await eventually(lambda: listener.stats.handshake_failures == 1)
    assert "admitting the peer failed" in caplog.text
    await listener.close()


async def test_slow_peer_is_disconnected_and_queues_stay_bounded() -> None:
    opts = TransportOptions(max_send_queue=8, max_recv_queue=8, send_timeout=0.2)
    listener, conn, server = await pair(server=opts, client=opts)
    sent = 0
    peak = 0

    async def flood() -> None:
        nonlocal sent, peak
        for i in range(10_000):
            await conn.send(data_msg("worker-1", 100, i))
            sent += 1
            peak = max(peak, conn.queued_frames)

    with pytest.raises(SlowPeerError, match="did not read"):
        await flood()
    # Bounded: the peer's inbox (8, plus the frame that tipped it) and our queue (8).
    assert sent <= 8 + 1 + 8
    assert peak <= 8
    assert server.inbox_size <= 9
    assert conn.closed
    assert "slow peer" in conn.close_reason
    assert conn.stats.errors_by_code["slow_peer"] == 1
    await asyncio.wait_for(server.wait_closed(), 5)
    # Whatever the server had already received is still readable.
    drained = [m async for m in server]
    assert [m.seq for m in drained] == list(range(len(drained)))
    await listener.close()


async def test_back_pressure_blocks_the_sender_until_the_reader_catches_up() -> None:
    opts = TransportOptions(max_send_queue=4, max_recv_queue=4, send_timeout=5)
    listener, conn, server = await pair(server=opts, client=opts)
    total = 200

    async def produce() -> None:
        for i in range(total):
            await conn.send(data_msg("worker-1", 50, i))

    producer = asyncio.create_task(produce())
    for _ in range(50):
        await asyncio.sleep(0)
    assert not producer.done()  # stuck on the full queues, not buffering 200 frames
    assert conn.queued_frames <= 4
    got = [(await server.recv(timeout=5)).seq for _ in range(total)]
    await asyncio.wait_for(producer, 5)
    assert got == list(range(total))
    assert conn.stats.errors == 0
    await listener.close()


async def test_close_flushes_queued_frames_first() -> None:
    opts = TransportOptions(max_recv_queue=4, max_send_queue=100)
    listener, conn, server = await pair(server=opts, client=opts)
    for i in range(50):
        await conn.send(data_msg("worker-1", 20, i))
    assert conn.queued_frames > 0  # the receiver's inbox is full: the rest waits in our queue
    closing = asyncio.create_task(conn.close("done"))
    got = [m.seq async for m in server]
    await asyncio.wait_for(closing, 5)
    assert got == list(range(50))
    assert conn.stats.dropped == 0
    assert server.closed
    with pytest.raises(ConnectionClosedError, match="done"):
        await conn.send(SwarmMessage.ping("worker-1"))
    with pytest.raises(ConnectionClosedError):
        await server.recv(timeout=1)
    await listener.close()


async def test_idle_peer_is_dropped_after_idle_timeout() -> None:
    server_opts = TransportOptions(idle_timeout=0.2)
    listener, conn, server = await pair(server=server_opts)
    await asyncio.wait_for(server.wait_closed(), 5)
    assert server.stats.errors_by_code == {"idle_timeout": 1}
    assert "idle timeout" in server.close_reason
    notice = await conn.recv(timeout=5)  # the ERROR explaining why
    assert notice.payload.code == "idle_timeout"  # type: ignore[union-attr]
    await asyncio.wait_for(conn.wait_closed(), 5)
    await listener.close()


async def test_handshake_timeout_sends_an_error_and_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    opts = TransportOptions(handshake_timeout=0.2)
    listener = await listen(f"inproc://{fresh_name()}", COORD, Admission(TOKEN), options=opts)
    caplog.set_level(logging.WARNING, logger="ruvector_edge.transport")
    received: list[bytes] = []

    class Sink:
        def _on_bytes(self, data: bytes) -> None:
            received.append(data)

        def _on_lost(self, reason: str, error: BaseException | None) -> None:
            received.append(b"<lost>")

    raw = listener._dial()  # type: ignore[attr-defined]
    raw.start(Sink())  # a peer that opens a link and never sends its JOIN
    await eventually(lambda: b"<lost>" in received)
    await eventually(lambda: listener.stats.handshake_timeouts == 1)
    assert listener.stats.errors_by_code == {"handshake_timeout": 1}
    (error,) = MessageCodec().feed(b"".join(received[:-1]))
    assert isinstance(error, SwarmMessage)
    assert error.payload.code == "handshake_timeout"  # type: ignore[union-attr]
    assert "did not finish the handshake" in caplog.text
    # Still serving.
    conn = await connect(listener.url, Identity.generate("late"), join_token=TOKEN)
    assert conn.is_open
    await listener.close()


async def test_oversize_messages_fail_locally_and_the_link_survives() -> None:
    listener, conn, server = await pair(server=TransportOptions(max_frame_size=1024))
    with pytest.raises(ProtocolError) as info:  # clamped to the limit the WELCOME announced
        await conn.send(data_msg("worker-1", 2000))
    assert info.value.code == "frame_too_large"
    await conn.send(data_msg("worker-1", 100, 7))
    assert (await server.recv(timeout=5)).seq == 7
    await listener.close()


async def test_listener_capacity_refuses_extra_peers() -> None:
    opts = TransportOptions(max_connections=1)
    listener = await listen(f"inproc://{fresh_name()}", COORD, Admission(TOKEN), options=opts)
    first = await connect(listener.url, Identity.generate("w1"), join_token=TOKEN)
    with pytest.raises(AuthError) as info:
        await connect(listener.url, Identity.generate("w2"), join_token=TOKEN)
    assert info.value.code == "capacity"
    await eventually(lambda: listener.stats.refused_capacity == 1)
    assert first.is_open
    await listener.close()


async def test_names_are_exclusive_and_unknown_names_fail_clearly() -> None:
    name = fresh_name()
    listener = await listen(f"inproc://{name}", COORD, Admission(TOKEN))
    with pytest.raises(TransportError) as busy:
        await listen(f"inproc://{name}", COORD, Admission(TOKEN))
    assert busy.value.code == "address_in_use"
    await listener.close()
    with pytest.raises(TransportError) as gone:
        await connect(f"inproc://{name}", Identity.generate("w"), join_token=TOKEN)
    assert gone.value.code == "no_listener"
    relisten = await listen(f"inproc://{name}", COORD, Admission(TOKEN))
    await relisten.close()


async def test_send_nowait_reports_a_full_queue_without_disconnecting() -> None:
    opts = TransportOptions(max_send_queue=2, max_recv_queue=2)
    listener, conn, server = await pair(server=opts, client=opts)
    sent = 0

    def fill() -> None:
        nonlocal sent
        for i in range(100):
            conn.send_nowait(data_msg("worker-1", 10, i))
            sent += 1

    with pytest.raises(CapacityError, match="full"):
        fill()
    assert conn.is_open
    got = [(await server.recv(timeout=5)).seq for _ in range(sent)]
    assert got == list(range(sent))
    await listener.close()


async def test_handler_serves_each_connection_and_closes_it_after() -> None:
    async def echo(conn: Connection) -> None:
        async for msg in conn:
            if msg.type.value == "leave":
                return
            await conn.send(msg)

    listener = await listen(f"inproc://{fresh_name()}", COORD, Admission(TOKEN), handler=echo)
    conn = await connect(listener.url, Identity.generate("w"), join_token=TOKEN)
    await conn.send(SwarmMessage.ping("w", nonce=3))
    assert (await conn.recv(timeout=5)).payload.nonce == 3  # type: ignore[union-attr]
    await conn.send(SwarmMessage.leave("w"))
    await asyncio.wait_for(conn.wait_closed(), 5)
    assert "closed by peer" in conn.close_reason
    await listener.close()


async def test_client_reconnects_after_the_server_drops_the_link() -> None:
    policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, seed=1)
    listener, conn, server = await pair(client=TransportOptions(reconnect=policy))
    server.abort("test drop")
    replacement = await listener.accept(timeout=5)
    assert replacement is not server
    await conn.send(SwarmMessage.ping("worker-1", nonce=11))
    assert (await replacement.recv(timeout=5)).payload.nonce == 11  # type: ignore[union-attr]
    assert conn.stats.reconnects == 1
    assert conn.is_open
    await conn.close()
    await listener.close()


async def test_reconnect_refuses_a_different_server_key() -> None:
    policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.02, max_attempts=3, seed=4)
    name = fresh_name()
    listener = await listen(f"inproc://{name}", COORD, Admission(TOKEN))
    conn = await connect(
        listener.url,
        Identity.generate("pinned"),
        join_token=TOKEN,
        options=TransportOptions(reconnect=policy),
    )
    await listener.close()  # the coordinator goes away...
    impostor = await listen(f"inproc://{name}", Identity.generate("coord"), Admission(TOKEN))
    await asyncio.wait_for(conn.wait_closed(), 5)  # ...and another key answers on its name
    assert "refused" in conn.close_reason
    assert "unexpected public key" in conn.close_reason
    assert impostor.stats.accepted == 1  # it admitted us, but we did not accept it
    await impostor.close()


async def test_reconnect_stops_when_the_server_refuses() -> None:
    policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.02, seed=2)
    admission = Admission(TOKEN)
    listener = await listen(f"inproc://{fresh_name()}", COORD, admission)
    agent = Identity.generate("w-reconnect")
    conn = await connect(
        listener.url, agent, join_token=TOKEN, options=TransportOptions(reconnect=policy)
    )
    server = await listener.accept(timeout=5)
    admission.registry.unbind("w-reconnect")
    admission.registry.bind("w-reconnect", Identity.generate().public_key)  # id now taken
    server.abort("kick")
    await asyncio.wait_for(conn.wait_closed(), 5)
    assert "refused" in conn.close_reason
    assert "id_taken" in conn.close_reason
    await listener.close()


async def test_connect_retries_with_backoff_until_a_listener_appears() -> None:
    name = fresh_name()
    policy = ReconnectPolicy(initial_delay=0.02, max_delay=0.05, seed=3)
    opts = TransportOptions(reconnect=policy, connect_timeout=5)
    pending = asyncio.create_task(
        connect(f"inproc://{name}", Identity.generate("early"), join_token=TOKEN, options=opts)
    )
    await asyncio.sleep(0.1)
    assert not pending.done()
    listener = await listen(f"inproc://{name}", COORD, Admission(TOKEN))
    conn = await asyncio.wait_for(pending, 5)
    assert conn.is_open
    await listener.close()
    with pytest.raises(TransportError):
        await connect(
            f"inproc://{name}",
            Identity.generate("late"),
            join_token=TOKEN,
            options=TransportOptions(connect_timeout=0.2, reconnect=policy),
        )


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=70_000), min_size=1, max_size=12))
def test_any_mix_of_message_sizes_arrives_intact(sizes: list[int]) -> None:
    async def run() -> None:
        opts = TransportOptions(max_recv_queue=3, max_send_queue=3)
        listener, conn, server = await pair(server=opts, client=opts)

        async def produce() -> None:
            for i, n in enumerate(sizes):
                await conn.send(data_msg("worker-1", n, i))

        sender = asyncio.create_task(produce())
        got = [await server.recv(timeout=5) for _ in sizes]
        await sender
        assert [m.seq for m in got] == list(range(len(sizes)))
        for m, n in zip(got, sizes, strict=True):
            assert isinstance(m.payload, SyncPatternsPayload)
            assert m.payload.data == bytes([m.seq % 256]) * n
        await listener.close()

    asyncio.run(run())


# -- batching: messages sent in one loop turn share a frame -------------------------------


async def test_a_lone_message_leaves_at_once_and_a_burst_travels_batched() -> None:
    listener, conn, server = await pair()
    out_before, bytes_before = conn.stats.messages_out, conn.stats.bytes_out
    conn.send_nowait(data_msg("worker-1", 40, 0))
    assert server.inbox_size == 1  # not held back for a batch: request/response stays fast
    burst = 600
    for i in range(1, burst + 1):
        conn.send_nowait(data_msg("worker-1", 40, i))
    assert server.inbox_size == 1 + 2 * 256  # full batches went out; 88 wait for the turn
    got = [(await server.recv(timeout=5)).seq for _ in range(burst + 1)]
    assert got == list(range(burst + 1))
    assert conn.stats.messages_out - out_before == burst + 1
    # Batched, each message saves its own frame header and authentication trailer.
    alone = sum(len(encode_message(data_msg("worker-1", 40, i))) + 8 + 24 for i in range(601))
    assert conn.stats.bytes_out - bytes_before < alone - burst * 25
    await conn.close()
    await listener.close()


async def test_close_flushes_messages_still_being_gathered() -> None:
    listener, conn, server = await pair()
    for i in range(10):
        conn.send_nowait(data_msg("worker-1", 10, i))
    await conn.close()
    drained = [m.seq async for m in server]
    assert drained == list(range(10))
    assert conn.stats.dropped == 0
    await listener.close()


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.booleans()), min_size=1, max_size=6))
def test_bursts_arrive_complete_and_in_order(bursts: list[tuple[int, bool]]) -> None:
    async def run() -> None:
        opts = TransportOptions(max_send_queue=64, max_recv_queue=32)
        listener, conn, server = await pair(server=opts, client=opts)
        total = sum(n for n, _ in bursts)

        async def produce() -> None:
            seq = 0
            for n, awaited in bursts:
                for _ in range(n):
                    if awaited:
                        await conn.send(data_msg("worker-1", 30, seq))
                    else:
                        while True:
                            try:
                                conn.send_nowait(data_msg("worker-1", 30, seq))
                                break
                            except CapacityError:
                                await asyncio.sleep(0)
                    seq += 1
                await asyncio.sleep(0)

        producer = asyncio.create_task(produce())
        got = [(await server.recv(timeout=5)).seq for _ in range(total)]
        await producer
        assert got == list(range(total))
        assert server.inbox_size == 0
        await conn.close()
        await listener.close()

    asyncio.run(run())
