"""Transport latency and throughput: in-process, shared memory, WebSocket, and raw baselines.

One run measures, for a 64-byte and a 4 KiB payload carried in an authenticated
SYNC_PATTERNS frame (ChaCha20-Poly1305 tag; the frame size on the wire is reported):

* round-trip latency p50/p99 (send, peer echoes, receive) per transport;
* one-way throughput (messages/s and MB/s of frame bytes; the peer acknowledges the last);
* baselines in the same run: a raw ``os.pipe`` ping-pong and one-way stream between the
  *same two processes* used for shared memory, and an unauthenticated ``websockets`` echo /
  stream with messages of the same size as our frames.

The peer is a separate process (``python -m benchmarks.bench_transport --peer ...``) started
once; it serves every phase, so shared memory, WebSocket and the pipes connect the same two
processes. In-process runs both ends in this process. Both processes run uvloop, the loop
the ruvector-edge commands use (``BENCH_LOOP=asyncio`` for the standard library's).

Run: ``python -m benchmarks.bench_transport`` (``BENCH_QUICK=1`` for a short run).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from rich.console import Console
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve

from benchmarks.harness import LOOP, QUICK, Report, run_loop
from ruvector_edge.identity import Admission, Identity, generate_join_token, now_ms
from ruvector_edge.transport import Connection, TransportOptions, connect, listen
from ruvector_edge.wire import (
    AckPayload,
    LinkInitiator,
    LinkResponder,
    MessageCodec,
    SwarmMessage,
    SyncPatternsPayload,
)

AREA = "transport"
SIZES = (64, 4096)
RTT_N = 400 if QUICK else 3000
TPUT_N = {64: 8_000 if QUICK else 60_000, 4096: 3_000 if QUICK else 20_000}
WARMUP = 100 if QUICK else 300
ECHO, COUNT, DONE = 0, 1, 2  # SyncPatternsPayload.version tells the peer what to do
SHM_RTT_TARGET_US = 50.0
WS_RTT_TARGET_US = 500.0
WS_TPUT_RATIO_TARGET = 0.5
INPROC_TARGET = 200_000.0

COLUMNS = (
    "transport",
    "case",
    "payload B",
    "frame B",
    "p50 µs",
    "p99 µs",
    "msgs/s",
    "MB/s",
    "vs baseline",
)


# -- messages ---------------------------------------------------------------------------------


def message(sender: str, size: int, mode: int) -> SwarmMessage:
    """A SYNC_PATTERNS message with ``size`` bytes of data; ``mode`` is ECHO/COUNT/DONE."""
    return SwarmMessage.new(sender, SyncPatternsPayload(data=os.urandom(size), version=mode))


def codec_pair() -> tuple[MessageCodec, MessageCodec]:
    """Two codecs joined by a real handshake (sender, receiver)."""
    token = generate_join_token()
    initiator = LinkInitiator(Identity.generate("bench"), join_token=token)
    responder = LinkResponder(Identity.generate("peer"), Admission(token))
    responder.accept_join(initiator.join_message())
    welcome, session = responder.welcome_message("bench")
    return MessageCodec(initiator.complete(welcome)), MessageCodec(session)


def frame_size(size: int) -> int:
    """Bytes on the wire for an authenticated frame carrying ``size`` bytes of data."""
    return len(codec_pair()[0].encode(message("bench", size, COUNT)))


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


# -- the peer process -----------------------------------------------------------------------------


def _read_exact(fd: int, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError("pipe closed")
        buf += chunk
    return bytes(buf)


async def _exit_with_parent() -> None:
    """Peer-side watchdog: never outlive the benchmark process."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    os._exit(1)


async def _serve_ours(url: str, token: str, poll_us: int) -> None:
    """Echo ECHO messages, count COUNT messages, answer DONE with the count, until closed."""
    watchdog = asyncio.create_task(_exit_with_parent())
    options = TransportOptions(shm_poll_us=poll_us, connect_timeout=30)
    conn = await connect(url, Identity.generate("bench-peer"), join_token=token, options=options)
    count = 0
    async for msg in conn:
        payload = msg.payload
        assert isinstance(payload, SyncPatternsPayload)
        if payload.version == ECHO:
            await conn.send(msg)
        elif payload.version == COUNT:
            count += 1
        else:
            await conn.send(SwarmMessage.ack("bench-peer", None, str(count)))
            count = 0
    watchdog.cancel()


async def _raw_ws_server(ctl_out: int) -> None:
    """Unauthenticated websockets: echo b'E...', count b'C...', answer 'done', stop on 'quit'."""
    finished = asyncio.Event()
    watchdog = asyncio.create_task(_exit_with_parent())

    async def handler(ws: ServerConnection) -> None:
        count = 0
        async for data in ws:
            if data == "quit":
                finished.set()
            elif isinstance(data, str):
                await ws.send(str(count))
                count = 0
            elif data[:1] == b"E":
                await ws.send(data)
            else:
                count += 1

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        os.write(ctl_out, f"{port}\n".encode())
        await finished.wait()
    watchdog.cancel()


class _Tokens:
    """Wake-up bytes on a pipe, delivered to one waiting coroutine (``add_reader``)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending = 0
        self.waiter: asyncio.Future[None] | None = None
        asyncio.get_running_loop().add_reader(fd, self._readable)

    def _readable(self) -> None:
        self.pending += len(os.read(self.fd, 4096))
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def take(self) -> None:
        while not self.pending:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        self.pending -= 1

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)


async def _floor_peer(pipe_in: int, pipe_out: int, size: int, n: int) -> None:
    """Reference echo: wake on a pipe, do the seal/open work of one hop, answer."""
    sender, receiver = codec_pair()
    tokens = _Tokens(pipe_in)
    for _ in range(n):
        await tokens.take()
        receiver.feed(sender.encode(message("peer", size, ECHO)))
        os.write(pipe_out, b"x")
    tokens.close()


def peer_main(ctl_in: int, ctl_out: int, pipe_in: int, pipe_out: int) -> None:
    """Command loop of the peer process (one command per line on ``ctl_in``)."""
    lines = os.fdopen(ctl_in, "rb", buffering=0)
    os.write(ctl_out, b"ready\n")  # imports done: the parent may start measuring
    while True:
        line = lines.readline()
        if not line:
            return
        cmd, *args = line.decode().split()
        if cmd == "pipe-rtt":
            size, n = int(args[0]), int(args[1])
            for _ in range(n):
                os.write(pipe_out, _read_exact(pipe_in, size))
        elif cmd == "pipe-stream":
            total = int(args[0]) * int(args[1])
            got = 0
            while got < total:
                got += len(os.read(pipe_in, min(1 << 20, total - got)))
            os.write(pipe_out, b"k")
        elif cmd == "serve":
            run_loop(_serve_ours(args[0], args[1], int(args[2])))
        elif cmd == "raw-ws":
            run_loop(_raw_ws_server(ctl_out))  # writes its port first, "ok" when done
        elif cmd == "floor":
            run_loop(_floor_peer(pipe_in, pipe_out, int(args[0]), int(args[1])))
        elif cmd == "quit":
            return
        os.write(ctl_out, b"ok\n")


class Peer:
    """The peer process and its pipes."""

    def __init__(self) -> None:
        ctl_down_r, self.ctl_down = os.pipe()
        self.ctl_up, ctl_up_w = os.pipe()
        data_down_r, self.data_down = os.pipe()
        self.data_up, data_up_w = os.pipe()
        child_fds = (ctl_down_r, ctl_up_w, data_down_r, data_up_w)
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_transport", "--peer", *map(str, child_fds)],
            pass_fds=child_fds,
            cwd=root,
        )
        for fd in child_fds:
            os.close(fd)
        self._up = os.fdopen(self.ctl_up, "rb", buffering=0)
        if self.reply() != "ready":
            raise RuntimeError("benchmark peer failed to start")

    def command(self, *words: object) -> None:
        os.write(self.ctl_down, (" ".join(map(str, words)) + "\n").encode())

    def reply(self) -> str:
        return self._up.readline().decode().strip()

    async def areply(self) -> str:
        return await asyncio.get_running_loop().run_in_executor(None, self.reply)

    def close(self) -> None:
        try:
            self.command("quit")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


# -- measurements ---------------------------------------------------------------------------------


async def measure_ours(conn: Connection, size: int) -> tuple[list[float], float]:
    """(round-trip samples in seconds, one-way seconds for TPUT_N[size] messages)."""
    for _ in range(WARMUP):
        await conn.send(message("bench", size, ECHO))
        await conn.recv()
    samples = []
    for _ in range(RTT_N):
        msg = message("bench", size, ECHO)
        start = time.perf_counter()
        await conn.send(msg)
        await conn.recv()
        samples.append(time.perf_counter() - start)
    n = TPUT_N[size]
    msg = message("bench", size, COUNT)
    start = time.perf_counter()
    stamp = now_ms()
    for i in range(n):
        if i % 4096 == 0 and now_ms() - stamp > 10_000:  # stay inside the clock-skew window
            msg, stamp = message("bench", size, COUNT), now_ms()
        await conn.send(msg)
    await conn.send(message("bench", size, DONE))
    reply = await conn.recv()
    elapsed = time.perf_counter() - start
    assert isinstance(reply.payload, AckPayload)
    if int(reply.payload.ack_id) != n:
        raise RuntimeError(f"peer counted {reply.payload.ack_id} of {n} messages")
    return samples, elapsed


def measure_pipe(peer: Peer, size: int) -> tuple[list[float], float]:
    """Raw os.pipe ping-pong and one-way stream with the peer process."""
    data = os.urandom(size)
    peer.command("pipe-rtt", size, WARMUP + RTT_N)
    for _ in range(WARMUP):
        os.write(peer.data_down, data)
        _read_exact(peer.data_up, size)
    samples = []
    for _ in range(RTT_N):
        start = time.perf_counter()
        os.write(peer.data_down, data)
        _read_exact(peer.data_up, size)
        samples.append(time.perf_counter() - start)
    assert peer.reply() == "ok"
    n = TPUT_N[size]
    peer.command("pipe-stream", size, n)
    start = time.perf_counter()
    for _ in range(n):
        os.write(peer.data_down, data)
    _read_exact(peer.data_up, 1)
    elapsed = time.perf_counter() - start
    assert peer.reply() == "ok"
    return samples, elapsed


async def measure_floor(peer: Peer, size: int) -> list[float]:
    """Round trips of the asyncio + seal/open floor (no transport) with the peer process."""
    sender, receiver = codec_pair()
    peer.command("floor", size, WARMUP + RTT_N)
    tokens = _Tokens(peer.data_up)
    samples = []
    for i in range(WARMUP + RTT_N):
        start = time.perf_counter()
        receiver.feed(sender.encode(message("bench", size, ECHO)))
        os.write(peer.data_down, b"x")
        await tokens.take()
        if i >= WARMUP:
            samples.append(time.perf_counter() - start)
    tokens.close()
    assert await peer.areply() == "ok"
    return samples


def measure_codec(size: int) -> Measured:
    """The ceiling for any transport in one process: seal + open, nothing else."""
    sender, receiver = codec_pair()
    msg = message("bench", size, COUNT)
    start = time.perf_counter()
    for _ in range(TPUT_N[size]):
        receiver.feed(sender.encode(msg))
    return [], time.perf_counter() - start


async def measure_raw_ws(url: str, size: int, n: int) -> tuple[list[float], float]:
    """Unauthenticated websockets echo and ``n``-message stream, messages of ``size`` bytes."""
    echo = b"E" + os.urandom(size - 1)
    count = b"C" + os.urandom(size - 1)
    async with ws_connect(url, compression=None, max_size=None, proxy=None) as ws:
        for _ in range(WARMUP):
            await ws.send(echo)
            await ws.recv()
        samples = []
        for _ in range(RTT_N):
            start = time.perf_counter()
            await ws.send(echo)
            await ws.recv()
            samples.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(n):
            await ws.send(count)
        await ws.send("done")
        got = await ws.recv(decode=True)
        elapsed = time.perf_counter() - start
        if int(got) != n:
            raise RuntimeError(f"raw websockets peer counted {got} of {n}")
    return samples, elapsed


async def inproc_pair(token: str) -> tuple[Connection, Callable[[], Awaitable[None]]]:
    """An in-process listener with an echo/count handler, and a connection to it."""

    async def handler(conn: Connection) -> None:
        count = 0
        async for msg in conn:
            payload = msg.payload
            assert isinstance(payload, SyncPatternsPayload)
            if payload.version == ECHO:
                await conn.send(msg)
            elif payload.version == COUNT:
                count += 1
            else:
                await conn.send(SwarmMessage.ack("peer", None, str(count)))
                count = 0

    listener = await listen(
        "inproc://bench", Identity.generate("coord"), Admission(token), handler=handler
    )
    conn = await connect(listener.url, Identity.generate("bench"), join_token=token)
    return conn, listener.close


# -- the run -------------------------------------------------------------------------------


Measured = tuple[list[float], float]  # (round-trip samples in s, seconds for the stream)


def add_row(
    report: Report,
    transport: str,
    case: str,
    *,
    size: int,
    frame: int,
    measured: Measured,
    baseline: float | None = None,
) -> float:
    """One table row; returns messages/s."""
    samples, elapsed = measured
    rate = TPUT_N[size] / elapsed if elapsed else 0.0
    report.add(
        **{
            "transport": transport,
            "case": case,
            "payload B": size,
            "frame B": frame,
            "p50 µs": pct(samples, 0.5) if samples else "",
            "p99 µs": pct(samples, 0.99) if samples else "",
            "msgs/s": rate if elapsed else "",
            "MB/s": rate * frame / 1e6 if elapsed else "",
            "vs baseline": "" if baseline is None or not elapsed else f"{rate / baseline:.2f}x",
        }
    )
    return rate


async def run(report: Report, peer: Peer) -> dict[str, float]:
    """Every phase; returns the numbers the targets need."""
    token = generate_join_token()
    coord = Identity.generate("coord")
    res: dict[str, float] = {}
    frames = {size: frame_size(size) for size in SIZES}

    def row(kind: str, case: str, size: int, measured: Measured, *, key: str) -> None:
        """Add a row; ``key`` names it in ``res``; ours are compared with their baseline."""
        baseline = res.get(base_of.get(f"{key}_{size}", ""))
        frame = size if key == "pipe" else frames[size]
        rate = add_row(
            report, kind, case, size=size, frame=frame, measured=measured, baseline=baseline
        )
        res[f"{key}_rate_{size}"] = rate
        if measured[0]:
            res[f"{key}_p50_{size}"] = pct(measured[0], 0.5)

    base_of = {
        f"{key}_{size}": f"{base}_rate_{size}"
        for size in SIZES
        for key, base in (
            ("inproc", "codec"),
            ("shm0", "pipe"),
            (f"shm{TransportOptions().shm_poll_us}", "pipe"),
            ("ws1", "rawws"),
            ("ws0", "rawws"),
        )
    }

    # In-process: both ends in this event loop, against the codec alone (its ceiling).
    for size in SIZES:
        row("in-process", "reference: seal + open only", size, measure_codec(size), key="codec")
    conn, stop = await inproc_pair(token)
    for size in SIZES:
        row("in-process", "ours, authenticated", size, await measure_ours(conn, size), key="inproc")
    await conn.close()
    await stop()

    # Shared memory, against a raw os.pipe between the same two processes, and the floor
    # of any asyncio design doing the same seal/open work (a pipe wake-up, no rings).
    for size in SIZES:
        row("shared memory", "baseline: raw os.pipe", size, measure_pipe(peer, size), key="pipe")
    for size in SIZES:
        floor = await measure_floor(peer, size)
        row("shared memory", "reference: asyncio + seal/open", size, (floor, 0.0), key="floor")
    name = f"bench-{os.getpid()}"
    default_poll = TransportOptions().shm_poll_us
    phases = [
        (default_poll, f"ours, authenticated (adaptive poll {default_poll} µs, default)"),
        (0, "ours, event-driven only (shm_poll_us=0)"),
    ]
    for poll_us, case in phases:
        options = TransportOptions(shm_poll_us=poll_us)
        listener = await listen(f"shm://{name}", coord, Admission(token), options=options)
        peer.command("serve", listener.url, token, poll_us)
        conn = await listener.accept(timeout=60)
        for size in SIZES:
            row("shared memory", case, size, await measure_ours(conn, size), key=f"shm{poll_us}")
        await conn.close()
        assert await peer.areply() == "ok"
        await listener.close()

    # WebSocket, against unauthenticated websockets with messages of our frame sizes.
    peer.command("raw-ws")
    port = int(await peer.areply())
    for size in SIZES:
        measured = await measure_raw_ws(f"ws://127.0.0.1:{port}", frames[size], TPUT_N[size])
        row("WebSocket", "baseline: raw websockets", size, measured, key="rawws")
    async with ws_connect(f"ws://127.0.0.1:{port}", proxy=None) as ws:
        await ws.send("quit")
    assert await peer.areply() == "ok"
    for coalesce, case in ((True, "ours, authenticated"), (False, "ours, one frame per message")):
        options = TransportOptions(ws_coalesce=coalesce)
        listener = await listen("ws://127.0.0.1:0", coord, Admission(token), options=options)
        peer.command("serve", listener.url, token, 0)
        conn = await listener.accept(timeout=60)
        for size in SIZES:
            row("WebSocket", case, size, await measure_ours(conn, size), key=f"ws{int(coalesce)}")
        await conn.close()
        assert await peer.areply() == "ok"
        await listener.close()
    return res


def main() -> None:
    """Run every phase, print the table and targets, save JSON."""
    report = Report(AREA, COLUMNS)
    load_before = os.getloadavg()
    peer = Peer()
    try:
        results = run_loop(run(report, peer))
    finally:
        peer.close()
    report.target(
        "shared-memory round trip p50, 64 B (µs)",
        results[f"shm{TransportOptions().shm_poll_us}_p50_64"],
        SHM_RTT_TARGET_US,
        higher_is_better=False,
    )
    report.target(
        "WebSocket round trip p50, 64 B (µs)",
        results["ws1_p50_64"],
        WS_RTT_TARGET_US,
        higher_is_better=False,
    )
    for size in SIZES:
        report.target(
            f"WebSocket msgs/s vs raw websockets, {size} B",
            results[f"ws1_rate_{size}"] / results[f"rawws_rate_{size}"],
            WS_TPUT_RATIO_TARGET,
        )
    report.target("in-process authenticated msgs/s, 64 B", results["inproc_rate_64"], INPROC_TARGET)
    report.notes.append(
        f"load average (1 min) before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} CPUs (other jobs on the machine inflate these numbers)"
    )
    report.notes.append(f"event loop in both processes: {LOOP}")
    report.notes.append(
        f"RTT over {RTT_N} round trips after {WARMUP} warm-up; throughput over "
        f"{TPUT_N[64]} (64 B) / {TPUT_N[4096]} (4 KiB) one-way messages, acknowledged at the end."
    )
    report.print(Console(width=150))
    report.save()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--peer":
        peer_main(*(int(a) for a in sys.argv[2:]))
    else:
        main()
