"""Shared-memory transport: the SPSC ring, and links between real processes.

Child processes are started with the ``spawn`` method and run the module-level ``_child_*``
functions below (they import only installed code plus this module).
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import signal
import socket
import sys
from collections import deque
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _waiting import eventually
from ruvector_edge.errors import ProtocolError
from ruvector_edge.identity import Admission, Identity
from ruvector_edge.transport import (
    Connection,
    ReconnectPolicy,
    ShmListener,
    SlowPeerError,
    SpscRing,
    TransportError,
    TransportOptions,
    connect,
    listen,
)
from ruvector_edge.transport.shm import RING_HEADER_SIZE, PollPolicy, shm_paths, stale_segments
from ruvector_edge.wire import SwarmMessage, SyncPatternsPayload

pytestmark = pytest.mark.skipif(
    not Path("/dev/shm").is_dir(), reason="needs POSIX shared memory listed in /dev/shm"
)

TOKEN = "shm-test-token"
COORD = Identity.from_seed(b"s" * 32, "coord")
_names = itertools.count()
SPAWN = multiprocessing.get_context("spawn")


def fresh_name() -> str:
    return f"rvx-test-{os.getpid()}-{next(_names)}"


def data_msg(sender: str, size: int, seq: int = 0) -> SwarmMessage:
    payload = SyncPatternsPayload(data=bytes([seq % 251]) * size, version=seq)
    return SwarmMessage.new(sender, payload, seq=seq)


async def shm_listen(
    name: str | None = None, options: TransportOptions | None = None
) -> ShmListener:
    listener = await listen(
        f"shm://{name or fresh_name()}", COORD, Admission(TOKEN), options=options
    )
    assert isinstance(listener, ShmListener)
    return listener


# -- children (run in spawned processes) ----------------------------------------------------


def _child_echo(name: str, count: int) -> None:
    """Connect, echo ``count`` messages back, say goodbye."""

    async def run() -> None:
        conn = await connect(f"shm://{name}", Identity.generate("echo-child"), join_token=TOKEN)
        for _ in range(count):
            await conn.send(await conn.recv(timeout=30))
        await conn.close("child done")

    asyncio.run(run())


def _child_stream(name: str) -> None:
    """Connect and send numbered messages until killed."""

    async def run() -> None:
        conn = await connect(f"shm://{name}", Identity.generate("stream-child"), join_token=TOKEN)
        for seq in itertools.count():
            await conn.send(data_msg("stream-child", 64, seq))

    asyncio.run(run())


def _child_listener(name: str) -> None:
    """Listen on ``shm://name`` and echo everything until killed."""

    async def run() -> None:
        async def echo(conn: Connection) -> None:
            async for msg in conn:
                await conn.send(msg)

        # Same identity as the parent's COORD: a restarted coordinator keeps its key.
        await listen(f"shm://{name}", COORD, Admission(TOKEN), handler=echo)
        await asyncio.Event().wait()

    asyncio.run(run())


# -- the ring ---------------------------------------------------------------------------------


def ring_pair(capacity: int = 4096) -> tuple[SpscRing, SpscRing, memoryview]:
    buf = memoryview(bytearray(RING_HEADER_SIZE + capacity))
    producer = SpscRing(buf, capacity=capacity)
    consumer = SpscRing(buf)
    return producer, consumer, buf


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("put"), st.integers(min_value=1, max_value=2040)),
            st.tuples(st.just("read"), st.integers(min_value=1, max_value=5000)),
        ),
        min_size=1,
        max_size=120,
    )
)
def test_ring_preserves_records_across_wraparound_and_never_overfills(
    ops: list[tuple[str, int]],
) -> None:
    producer, consumer, _ = ring_pair(4096)
    model: deque[bytes] = deque()
    used = 0
    counter = itertools.count()
    for op, arg in ops:
        if op == "put":
            payload = bytes([next(counter) % 256]) * arg
            size = (8 + arg + 7) & ~7
            accepted = producer.try_put(payload)
            assert accepted == (4096 - used >= size)  # refuses exactly when it cannot fit
            if accepted:
                model.append(payload)
                used += size
        else:
            got = consumer.read(arg)
            expected = []
            taken = 0
            while model and taken < arg:
                expected.append(model.popleft())
                taken += (8 + len(expected[-1]) + 7) & ~7
            used -= taken
            assert got == expected
        assert producer.free_space() == 4096 - used
        assert consumer.readable == used
    assert consumer.read(1 << 20) == list(model)


def test_ring_counters_from_a_hostile_peer_are_refused() -> None:
    producer, consumer, buf = ring_pair(4096)
    words = buf[:RING_HEADER_SIZE].cast("Q")
    assert producer.try_put(b"x" * 100)
    words[8] = words[16] + 4096 + 8  # tail claims more than the ring holds
    with pytest.raises(ProtocolError, match="corrupted") as info:
        consumer.read(1 << 20)
    assert info.value.code == "ring_corrupt"
    words[8] = 112  # back to the truth: one 100-byte record
    struct_view = buf[RING_HEADER_SIZE:].cast("I")
    struct_view[1] = 7  # reserved field of the record header must be 0
    with pytest.raises(ProtocolError, match="corrupted"):
        consumer.read(1 << 20)
    struct_view[1] = 0
    struct_view[0] = 4000  # a record longer than what was published
    with pytest.raises(ProtocolError, match="corrupted"):
        consumer.read(1 << 20)
    words[16] = 10_000  # head ahead of tail, seen by the producer
    with pytest.raises(ProtocolError, match="corrupted"):
        producer.try_put(b"y")
    struct_view.release()
    words.release()
    producer.release()
    consumer.release()


def test_ring_wakeup_flags_follow_the_sleep_protocol() -> None:
    producer, consumer, _ = ring_pair()
    assert consumer.consumer_idle()  # empty: it may sleep, and says so
    assert producer.consumer_sleeping()
    assert producer.try_put(b"hello")
    consumer.consumer_awake()
    assert not producer.consumer_sleeping()
    consumer.consumer_awake()
    assert not consumer.consumer_idle()  # data is waiting: refuse to sleep, flag cleared
    assert not producer.consumer_sleeping()
    assert consumer.read(100) == [b"hello"]
    # Producer side: waiting for room.
    big = b"z" * producer.max_record  # half the ring per record: two fit exactly
    assert producer.try_put(big)
    assert producer.try_put(big)
    assert producer.free_space() == 0
    assert not producer.try_put(big)
    assert not producer.producer_wait_for(len(big))
    assert consumer.producer_waiting()
    consumer.read(1 << 20)
    assert producer.producer_wait_for(len(big))  # room appeared: flag cleared
    assert not consumer.producer_waiting()


def test_ring_rejects_bad_geometry() -> None:
    with pytest.raises(ValueError, match="power of two"):
        SpscRing(memoryview(bytearray(RING_HEADER_SIZE + 6000)), capacity=6000)
    with pytest.raises(ProtocolError, match="not a ruvector-edge ring"):
        SpscRing(memoryview(bytearray(RING_HEADER_SIZE + 4096)))
    producer, _, _ = ring_pair()
    with pytest.raises(ValueError, match="record payload"):
        producer.try_put(b"x" * (producer.max_record + 1))


# -- links in one process ----------------------------------------------------------------------


@pytest.mark.parametrize("poll_us", [0, 300])
async def test_messages_and_a_frame_larger_than_the_ring_cross_intact(poll_us: int) -> None:
    opts = TransportOptions(shm_ring_size=4096, shm_poll_us=poll_us)
    listener = await shm_listen(options=opts)
    conn = await connect(listener.url, Identity.generate("w"), join_token=TOKEN, options=opts)
    server = await listener.accept(timeout=5)
    sizes = [10, 30_000, 1, 2040, 4096, 100_000, 7]
    sender = asyncio.create_task(_send_all(conn, sizes))
    got = [await server.recv(timeout=10) for _ in sizes]
    await sender
    assert [len(m.payload.data) for m in got] == sizes  # type: ignore[union-attr]
    assert [m.payload.data[:1] for m in got] == [bytes([i]) for i in range(len(sizes))]  # type: ignore[union-attr]
    await server.send(SwarmMessage.ping("coord", nonce=4))
    assert (await conn.recv(timeout=5)).payload.nonce == 4  # type: ignore[union-attr]
    await listener.close()
    assert stale_segments(listener.segment_prefix) == []


async def _send_all(conn: Connection, sizes: list[int]) -> None:
    for i, n in enumerate(sizes):
        await conn.send(data_msg("w", n, i))


async def test_a_stuck_reader_fills_the_ring_then_the_queue_then_is_dropped() -> None:
    opts = TransportOptions(
        shm_ring_size=4096, max_send_queue=4, max_recv_queue=4, send_timeout=0.3
    )
    listener = await shm_listen(options=opts)
    conn = await connect(listener.url, Identity.generate("w"), join_token=TOKEN, options=opts)
    server = await listener.accept(timeout=5)
    sent = 0
    peak = 0

    async def flood() -> None:
        nonlocal sent, peak
        for i in range(100_000):
            await conn.send(data_msg("w", 500, i))
            sent += 1
            peak = max(peak, conn.queued_frames)

    with pytest.raises(SlowPeerError):
        await flood()
    assert peak <= 4
    # Inbox (4 + one batch) + ring (4 KiB / ~560 B) + queue (4): a few dozen at most.
    assert sent < 40
    assert conn.closed
    # The server still holds what arrived; reading it reaches the end of the link.
    got = [m.seq async for m in server]
    assert got == list(range(len(got)))
    assert len(got) >= 4
    assert server.closed
    await listener.close()


async def test_a_second_live_listener_on_the_same_name_is_refused() -> None:
    name = fresh_name()
    first = await shm_listen(name)
    with pytest.raises(TransportError) as info:
        await listen(f"shm://{name}", COORD, Admission(TOKEN))
    assert info.value.code == "address_in_use"
    conn = await connect(first.url, Identity.generate("w"), join_token=TOKEN)  # still fine
    assert conn.is_open
    await first.close()
    assert not first.socket_path.exists()
    with pytest.raises(TransportError) as gone:
        await connect(f"shm://{name}", Identity.generate("w2"), join_token=TOKEN)
    assert gone.value.code == "no_listener"


async def test_stalled_rendezvous_and_silent_clients_time_out_and_leave_nothing() -> None:
    opts = TransportOptions(handshake_timeout=0.3)
    listener = await shm_listen(options=opts)
    prefix = listener.segment_prefix
    # 1. Opens the rendezvous socket, reads the offer, never acknowledges it.
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(str(listener.socket_path))
    await eventually(lambda: len(stale_segments(prefix)) == 2)  # created for the offer
    await eventually(lambda: listener.stats.errors_by_code.get("handshake_timeout") == 1)
    assert stale_segments(prefix) == []  # unlinked when the rendezvous gave up
    raw.close()
    # 2. Maps the rings but never sends its JOIN.
    from ruvector_edge.transport import shm

    link = await shm._dial(listener.name, opts)  # a raw link: rings mapped, no Connection
    await eventually(lambda: listener.stats.handshake_timeouts == 1)
    link.abort()
    # Still serving.
    conn = await connect(listener.url, Identity.generate("ok"), join_token=TOKEN)
    assert conn.is_open
    await listener.close()
    assert stale_segments(prefix) == []


async def test_leftovers_of_a_crashed_listener_are_cleaned_on_the_next_start() -> None:
    name = fresh_name()
    sock_path, prefix = shm_paths(name)
    sock_path.parent.mkdir(mode=0o700, exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))  # bound, never listening, then gone: a dead listener's socket
    stale.close()
    orphan = SharedMemory(name=f"{prefix}dead_1a", create=True, size=8192)
    resource_tracker.unregister(f"/{orphan.name}", "shared_memory")  # as if its owner died
    orphan.close()
    assert stale_segments(prefix) == [f"{prefix}dead_1a"]
    listener = await shm_listen(name)
    assert listener.cleaned_segments == [f"{prefix}dead_1a"]
    assert stale_segments(prefix) == []
    conn = await connect(listener.url, Identity.generate("w"), join_token=TOKEN)
    assert conn.is_open
    await listener.close()


# -- across real processes ----------------------------------------------------------------------


async def test_echo_with_a_spawned_process() -> None:
    opts = TransportOptions(shm_ring_size=8192)
    listener = await shm_listen(options=opts)
    sizes = [64, 4096, 50_000, 1, 300]
    child = SPAWN.Process(target=_child_echo, args=(listener.name, len(sizes)))
    child.start()
    try:
        conn = await listener.accept(timeout=30)
        assert conn.peer_id == "echo-child"
        for i, n in enumerate(sizes):
            await conn.send(data_msg("coord", n, i))
        back = [await conn.recv(timeout=30) for _ in sizes]
        assert [m.seq for m in back] == list(range(len(sizes)))
        assert [len(m.payload.data) for m in back] == sizes  # type: ignore[union-attr]
        await asyncio.wait_for(conn.wait_closed(), 30)
        assert conn.close_reason.startswith("closed by peer")
        assert conn.stats.errors == 0
    finally:
        child.join(timeout=30)
        await listener.close()
    assert child.exitcode == 0
    assert stale_segments(listener.segment_prefix) == []


_TRACKER_CLIENT = """
import asyncio, sys
from ruvector_edge.identity import Identity
from ruvector_edge.transport import connect
from ruvector_edge.wire import SwarmMessage

async def main():
    conn = await connect(sys.argv[1], Identity.generate("tracked"), join_token=sys.argv[2])
    await conn.send(SwarmMessage.ping("tracked", nonce=7))
    reply = await conn.recv(timeout=30)
    assert reply.payload.nonce == 7
    await conn.close()

asyncio.run(main())
"""


async def test_a_client_process_exits_without_resource_tracker_complaints() -> None:
    # A plain subprocess has its own resource tracker: had the client registered the
    # listener's segments, that tracker would try to unlink them at exit and complain.
    async def echo(conn: Connection) -> None:
        async for msg in conn:
            await conn.send(msg)

    listener = await listen(f"shm://{fresh_name()}", COORD, Admission(TOKEN), handler=echo)
    assert isinstance(listener, ShmListener)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _TRACKER_CLIENT,
        listener.url,
        TOKEN,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    assert b"resource_tracker" not in stderr
    assert b"leaked" not in stderr
    await listener.close()
    assert stale_segments(listener.segment_prefix) == []


async def test_peer_killed_mid_stream_is_detected_and_nothing_leaks() -> None:
    listener = await shm_listen()
    child = SPAWN.Process(target=_child_stream, args=(listener.name,))
    child.start()
    try:
        conn = await listener.accept(timeout=30)
        seqs = [(await conn.recv(timeout=30)).seq for _ in range(300)]
        assert seqs == list(range(300))
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        # Everything published before the kill is still delivered, in order, then the end.
        rest = [m.seq async for m in conn]
        assert rest == list(range(300, 300 + len(rest)))
        assert conn.closed
        assert "vanished" in conn.close_reason
        assert conn.stats.errors_by_code == {"peer_vanished": 1}
        assert listener.stats.errors_by_code == {"peer_vanished": 1}
        # The listener keeps serving.
        other = await connect(listener.url, Identity.generate("after"), join_token=TOKEN)
        server_side = await listener.accept(timeout=5)
        await other.send(SwarmMessage.ping("after", nonce=5))
        assert (await server_side.recv(timeout=5)).payload.nonce == 5  # type: ignore[union-attr]
    finally:
        child.join(timeout=30)
        await listener.close()
    assert stale_segments(listener.segment_prefix) == []
    assert not listener.socket_path.exists()


async def test_listener_process_killed_then_restarted_on_the_same_name() -> None:
    name = fresh_name()
    _, prefix = shm_paths(name)
    child = SPAWN.Process(target=_child_listener, args=(name,))
    child.start()
    try:
        opts = TransportOptions(
            connect_timeout=30, reconnect=ReconnectPolicy(initial_delay=0.05, max_delay=0.2)
        )
        conn = await connect(
            f"shm://{name}", Identity.generate("w"), join_token=TOKEN, options=opts
        )
        await conn.send(SwarmMessage.ping("w", nonce=1))
        assert (await conn.recv(timeout=30)).payload.nonce == 1  # type: ignore[union-attr]
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        await eventually(lambda: conn.state == "reconnecting" or conn.closed, 30)
        child.join(timeout=30)
        assert stale_segments(prefix) == []  # segments were unlinked right after rendezvous
        assert shm_paths(name)[0].exists()  # the dead listener's socket file is left behind
        # A new listener on the same name takes over (stale socket removed)...
        listener = await listen(f"shm://{name}", COORD, Admission(TOKEN))
        # ...and the client, redialling with backoff, finds it.
        server_side = await listener.accept(timeout=30)
        await eventually(lambda: conn.is_open, 30)
        assert conn.stats.reconnects == 1
        await conn.send(SwarmMessage.ping("w", nonce=2))
        assert (await server_side.recv(timeout=5)).payload.nonce == 2  # type: ignore[union-attr]
        await conn.close()
        await listener.close()
    finally:
        if child.is_alive():
            child.kill()
        child.join(timeout=30)
    assert stale_segments(prefix) == []


# -- adaptive poll policy -------------------------------------------------------------------


def test_poll_policy_polls_only_on_a_hot_link() -> None:
    policy = PollPolicy(hot_gap=0.001)
    policy.arrived(10.0)
    assert not policy.should_poll()  # first arrival: nothing to compare with
    policy.arrived(10.0005)
    assert policy.should_poll()  # 0.5 ms gap: hot
    policy.window_ended(found_data=True)
    policy.arrived(10.5)
    assert not policy.should_poll()  # a 0.5 s gap: idle links park at once, never spin


def test_poll_policy_ignores_a_rare_miss_but_fades_out_when_polls_keep_missing() -> None:
    policy = PollPolicy(hot_gap=1.0)
    now = 0.0

    def chance() -> bool:
        nonlocal now
        now += 0.001
        policy.arrived(now)
        return policy.should_poll()

    chance()  # first arrival: not hot yet
    # One miss among hits (a scheduling hiccup) never costs a poll.
    polled = []
    for i in range(40):
        polled.append(chance())
        policy.window_ended(found_data=i != 5)
    assert all(polled)
    # Windows that keep finding nothing: polling falls to at most one chance in five.
    results = []
    for _ in range(400):
        took = chance()
        results.append(took)
        if took:
            policy.window_ended(found_data=False)
    assert all(results[:5])  # it takes several misses to stop
    assert sum(results[100:]) <= len(results[100:]) / 5
    assert sum(results[100:]) >= 1  # it keeps trying now and then
    # Once windows pay again, polling comes back on every chance.
    for _ in range(60):
        if chance():
            policy.window_ended(found_data=True)
    assert all(chance() for _ in range(10))
