"""Swarm runtime: agents per coordinator, learning propagation, task throughput.

One run measures, each against a baseline in the same run:

1. **Agents per coordinator.** The coordinator runs in its own process on
   ``ws://127.0.0.1:0``; K agents run in one other process (two when one would saturate
   its core), each with a 1 s sync and heartbeat interval and one ``learn()`` a second,
   so every sync carries a real delta. K ramps up until a K is not "on time": no agent
   lost, all K connected, every agent made at least ``window - 2`` pattern syncs that
   were ACKed, and the coordinator's sync latency p99 is at most 1 s. Per K: connect
   time, coordinator and agent-process CPU (cpu seconds / window), coordinator RSS, sync
   p50/p99, syncs merged/s. Baseline: a bare ``websockets`` echo server process with the
   same K clients each sending one 200-byte message a second (its CPU and the ratio).
2. **Propagation**: ``learn()`` on one agent until ``get_best_action()`` reflects it on
   every other agent (10 and 100 agents, one process, ws://127.0.0.1), sync interval
   1000 ms and 100 ms, against the interval itself; plus the coordinator's own
   ``latency_summary()`` propagation numbers.
3. **Tasks**: 4 agents with a trivial handler; N tasks via ``Coordinator.submit_task``
   (a burst, then one at a time for unloaded latency), inproc:// and ws://127.0.0.1,
   against calling the handler directly.

Run: ``python -m benchmarks.bench_swarm`` (``BENCH_QUICK=1`` for a short run);
``python -m benchmarks.bench_swarm --profile K`` profiles the coordinator and agent processes
(cProfile, top functions) during one capacity window with K agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import io
import logging
import multiprocessing as mp
import os
import pstats
import random
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any

from rich.console import Console
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve

from benchmarks.harness import LOOP, QUICK, Report, run_loop
from ruvector_edge.config import SwarmConfig
from ruvector_edge.swarm import Coordinator, SwarmAgent, TaskContext, TaskHandler, TaskOutcome
from ruvector_edge.transport import TransportOptions
from ruvector_edge.wire import TaskPayload

AREA = "swarm"
RAMP = (100, 500) if QUICK else (100, 250, 500, 1000, 2000)
WINDOW = 6.0 if QUICK else 15.0  # seconds observed per K
SETTLE = 1.5 if QUICK else 3.0  # after the last join, before the window
BASE_WINDOW = 4.0 if QUICK else 6.0  # echo baseline window
CONNECT_LIMIT = 30.0 if QUICK else 60.0  # stop ramping when connecting K takes longer
BISECT_STEPS = 0 if QUICK else 2  # after the first K not on time, halve the gap this often
JOIN_CONCURRENCY = 64
INTERVAL_MS = 1000  # sync and heartbeat interval of the capacity phase
# Seconds between two learn() calls of one agent: 1 s makes every sync carry a delta and
# every agent merge every other agent's change each second (O(K^2) merges in all); 10 s is
# a fleet where an agent finishes a task every ten seconds.
LEARN_PERIODS = (10.0, 1.0)
P99_LIMIT_MS = 1000.0
SATURATED = 90.0  # CPU % of one core at which a process counts as saturated
CONTENDED = 25.0  # CPU % used by other processes at which a window is flagged
ECHO_BYTES = 200
PROP_SIZES = (10, 100)
PROP_INTERVALS = (1000, 100)
PROP_SAMPLES = 5 if QUICK else 20
TASKS_BURST = 300 if QUICK else 2000
TASKS_SEQ = 100 if QUICK else 300
TASK_AGENTS = 4
AGENTS_TARGET = 1000
AGENTS_STRETCH = 10_000

COLUMNS = (
    "phase",
    "case",
    "agents",
    "connect s",
    "coord CPU %",
    "agents CPU %",
    "RSS MB",
    "p50 ms",
    "p99 ms",
    "per s",
    "on time",
    "vs baseline",
    "detail",
)


# -- process plumbing -------------------------------------------------------------------------


def _raise_nofile() -> int:
    """Raise the open-file soft limit to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _quiet() -> None:
    """Overload makes the runtime log warnings (lost agents, dropped links): keep it quiet."""
    logging.getLogger("ruvector_edge").setLevel(logging.ERROR)
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)


def rss_mb() -> float:
    """Resident set size of this process (``VmRSS``), MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def pct_ms(samples: list[float], q: float) -> float | str:
    """Percentile ``q`` of samples in seconds, in ms ("" without samples)."""
    if not samples:
        return ""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0


class _Window:
    """CPU seconds, wall time and the worst event-loop lag between ``mark`` and ``read``."""

    def __init__(self) -> None:
        self.cpu = time.process_time()
        self.wall = time.perf_counter()
        self.lag = 0.0

    def mark(self) -> None:
        self.cpu = time.process_time()
        self.wall = time.perf_counter()
        self.lag = 0.0

    def read(self) -> dict[str, float]:
        return {
            "cpu": time.process_time() - self.cpu,
            "wall": time.perf_counter() - self.wall,
            "lag": self.lag,
            "rss": rss_mb(),
        }

    async def watch_lag(self, period: float = 0.05) -> None:
        """Run forever, keeping the longest overshoot of a ``period`` sleep (a stalled loop)."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + period
            await asyncio.sleep(period)
            self.lag = max(self.lag, loop.time() - due)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine, from ``/proc/stat``."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


async def _exit_with_parent() -> None:
    """Child-side watchdog: never outlive the benchmark process."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    os._exit(1)


Handler = Callable[..., Awaitable[Any]]


async def _serve_commands(pipe: Pipe, handlers: dict[str, Handler]) -> None:
    """Answer ``(command, *args)`` tuples from the parent until ``quit``."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(pipe.fileno(), readable.set)
    try:
        while True:
            await readable.wait()
            readable.clear()
            while pipe.poll():
                cmd, *args = pipe.recv()
                if cmd == "quit":
                    return
                pipe.send(await handlers[cmd](*args))
    finally:
        loop.remove_reader(pipe.fileno())


class Child:
    """A spawned benchmark process and its command pipe."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        ctx = mp.get_context("spawn")
        self.pipe, child_end = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child_end, *args), daemon=True)
        self.proc.start()
        child_end.close()

    def call(self, *cmd: Any, timeout: float = 60.0) -> Any:
        """Send a command and wait for its reply."""
        self.pipe.send(cmd)
        return self.reply(timeout)

    def reply(self, timeout: float = 60.0) -> Any:
        if not self.pipe.poll(timeout):
            raise RuntimeError(f"benchmark child {self.proc.pid} did not answer in {timeout}s")
        return self.pipe.recv()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.pipe.send(("quit",))
        self.proc.join(15)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.pipe.close()


# -- 1. agents per coordinator: the processes -------------------------------------------------


def _profile_text(profiler: cProfile.Profile | None) -> str:
    if profiler is None:
        return ""
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    return text.getvalue()


def _coordinator_child(pipe: Pipe, max_agents: int, profile: bool) -> None:
    _raise_nofile()
    _quiet()
    run_loop(_coordinator_main(pipe, max_agents, profile))


async def _coordinator_main(pipe: Pipe, max_agents: int, profile: bool) -> None:
    watchdog = asyncio.create_task(_exit_with_parent())
    config = SwarmConfig(
        agent_id="bench-coordinator",
        max_agents=max_agents,
        sync_interval_ms=INTERVAL_MS,
        heartbeat_interval_ms=INTERVAL_MS,
    )
    options = TransportOptions.from_config(
        config, max_connections=max_agents + 16, backlog=max(128, JOIN_CONCURRENCY * 4)
    )
    coord = await Coordinator(config, listen="ws://127.0.0.1:0", options=options).start()
    window = _Window()
    base: dict[str, int] = {}
    profiler = cProfile.Profile(time.process_time) if profile else None

    async def mark() -> str:
        # The latency deques also hold the join phase; the window should stand alone.
        coord._sync_latency.clear()
        coord._propagation.clear()
        s = coord.stats()
        base.update(syncs=s.pattern_syncs, msgs=s.messages_in, dropped=s.replies_dropped)
        if profiler is not None:
            profiler.enable()
        window.mark()
        return "ok"

    async def report() -> dict[str, Any]:
        if profiler is not None:
            profiler.disable()
        s = coord.stats()
        out: dict[str, Any] = {
            **window.read(),
            "connected": s.agents_connected,
            "lost": s.agents_lost,
            "syncs": s.pattern_syncs - base["syncs"],
            "msgs": s.messages_in - base["msgs"],
            "dropped": s.replies_dropped - base["dropped"],
            "rejected": s.rejected,
            "latency": coord.latency_summary(),
        }
        out["profile"] = _profile_text(profiler)
        return out

    lag = asyncio.create_task(window.watch_lag())
    pipe.send(("ready", coord.url, coord.join_token))
    try:
        await _serve_commands(pipe, {"mark": mark, "report": report})
    finally:
        lag.cancel()
        await coord.stop()
        watchdog.cancel()


@dataclass(frozen=True)
class AgentsSpec:
    """What one agent process runs: agents ``first .. first + count - 1``."""

    url: str
    token: str
    first: int
    count: int
    learn_period: float
    profile: bool = False


def _agents_child(pipe: Pipe, spec: AgentsSpec) -> None:
    _raise_nofile()
    _quiet()
    run_loop(_agents_main(pipe, spec))


async def _agents_main(pipe: Pipe, spec: AgentsSpec) -> None:
    url, token, first, count = spec.url, spec.token, spec.first, spec.count
    watchdog = asyncio.create_task(_exit_with_parent())
    agents = [
        SwarmAgent(
            SwarmConfig(
                agent_id=f"agent-{i}",
                join_token=token,
                sync_interval_ms=INTERVAL_MS,
                heartbeat_interval_ms=INTERVAL_MS,
            ),
            seed=i,
        )
        for i in range(first, first + count)
    ]
    gate = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def join(agent: SwarmAgent) -> None:
        async with gate:
            await agent.join_swarm(url, timeout=CONNECT_LIMIT + 30)

    start = time.perf_counter()
    joined = await asyncio.gather(*(join(a) for a in agents), return_exceptions=True)
    elapsed = time.perf_counter() - start
    errors = [repr(e) for e in joined if isinstance(e, BaseException)]
    learner = asyncio.create_task(_learn_loop(agents, spec.learn_period))
    window = _Window()
    base: list[int] = []
    base_in: list[int] = []

    profiler = cProfile.Profile(time.process_time) if spec.profile else None

    async def mark() -> str:
        if profiler is not None:
            profiler.enable()
        base[:] = [a.get_stats().pattern_syncs_sent for a in agents]
        base_in[:] = [a.get_stats().pattern_syncs_received for a in agents]
        window.mark()
        return "ok"

    async def report() -> dict[str, Any]:
        if profiler is not None:
            profiler.disable()
        measured = window.read()
        stats = [a.get_stats() for a in agents]
        syncs = [s.pattern_syncs_sent - b for s, b in zip(stats, base, strict=True)]
        received = [s.pattern_syncs_received - b for s, b in zip(stats, base_in, strict=True)]
        rtts = [s.last_sync_rtt_ms for s in stats]
        return {
            **measured,
            "syncs": syncs,
            "received": received,
            "connected": sum(s.connected for s in stats),
            "no_ack": sum(r is None for r in rtts),
            "max_rtt": max((r for r in rtts if r is not None), default=None),
            "reconnects": sum(s.reconnects for s in stats),
            "profile": _profile_text(profiler),
        }

    lag = asyncio.create_task(window.watch_lag())
    pipe.send(("joined", elapsed, count - len(errors), errors[:3]))
    try:
        await _serve_commands(pipe, {"mark": mark, "report": report})
    finally:
        lag.cancel()
        learner.cancel()
        watchdog.cancel()
    # No leave_swarm: process exit closes every link; the coordinator is stopped next.


async def _learn_loop(agents: list[SwarmAgent], period: float) -> None:
    """Each agent learns once every ``period`` seconds, spread evenly over the period.

    The schedule is absolute: when the event loop falls behind, the learns that fell due
    are made at once, so a slow loop cannot quietly lower the learning rate.
    """
    rng = random.Random(7)
    n = max(1, len(agents))
    start = time.monotonic()
    done = 0
    while True:
        due = int((time.monotonic() - start) / period * n)
        while done < due:
            i, rounds = done % n, done // n
            agents[i].learn(f"state-{(rounds + i) % 16}", f"action-{i % 4}", rng.random())
            done += 1
        await asyncio.sleep(min(0.05, period / n))


def _echo_server_child(pipe: Pipe) -> None:
    _raise_nofile()
    _quiet()
    run_loop(_echo_server_main(pipe))


async def _echo_server_main(pipe: Pipe) -> None:
    watchdog = asyncio.create_task(_exit_with_parent())
    window = _Window()
    count = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal count
        async for data in ws:
            count += 1
            await ws.send(data)

    async def mark() -> str:
        nonlocal count
        count = 0
        window.mark()
        return "ok"

    async def report() -> dict[str, Any]:
        return {**window.read(), "msgs": count}

    lag = asyncio.create_task(window.watch_lag())
    async with serve(handler, "127.0.0.1", 0, compression=None, backlog=1024) as server:
        pipe.send(("ready", f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"))
        await _serve_commands(pipe, {"mark": mark, "report": report})
    lag.cancel()
    watchdog.cancel()


def _echo_clients_child(pipe: Pipe, url: str, count: int) -> None:
    _raise_nofile()
    _quiet()
    run_loop(_echo_clients_main(pipe, url, count))


async def _echo_clients_main(pipe: Pipe, url: str, count: int) -> None:
    watchdog = asyncio.create_task(_exit_with_parent())
    gate = asyncio.Semaphore(JOIN_CONCURRENCY)
    payload = os.urandom(ECHO_BYTES)
    rtts: list[float] = []

    async def open_one() -> ClientConnection:
        async with gate:
            return await ws_connect(url, compression=None, proxy=None, open_timeout=60)

    async def run(ws: ClientConnection, phase: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + phase
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            start = time.perf_counter()
            await ws.send(payload)
            await ws.recv()
            rtts.append(time.perf_counter() - start)
            due += 1.0

    start = time.perf_counter()
    conns = await asyncio.gather(*(open_one() for _ in range(count)))
    elapsed = time.perf_counter() - start
    runners = [asyncio.create_task(run(ws, i / count)) for i, ws in enumerate(conns)]
    window = _Window()

    async def mark() -> str:
        rtts.clear()
        window.mark()
        return "ok"

    async def report() -> dict[str, Any]:
        return {**window.read(), "p50": pct_ms(rtts, 0.5), "p99": pct_ms(rtts, 0.99)}

    pipe.send(("joined", elapsed))
    try:
        await _serve_commands(pipe, {"mark": mark, "report": report})
    finally:
        for task in runners:
            task.cancel()
        watchdog.cancel()


# -- 1. agents per coordinator: the orchestration ---------------------------------------------


@dataclass
class CapacityResult:
    """One K of the ramp."""

    k: int
    procs: int
    learn_period: float
    connect_s: float
    coord: dict[str, Any]
    agents: list[dict[str, Any]]
    machine_cpu: float  # % of one core, whole machine, over the window
    join_errors: list[str] = field(default_factory=list)
    profile: str = ""

    @property
    def coord_cpu(self) -> float:
        return 100.0 * float(self.coord["cpu"]) / float(self.coord["wall"])

    @property
    def agent_cpus(self) -> list[float]:
        return [100.0 * a["cpu"] / a["wall"] for a in self.agents]

    @property
    def min_syncs(self) -> int:
        return min((min(a["syncs"]) for a in self.agents if a["syncs"]), default=0)

    @property
    def min_received(self) -> int:
        return min((min(a["received"]) for a in self.agents if a["received"]), default=0)

    @property
    def need_syncs(self) -> int:
        """ACKed own syncs every agent must make in the window (one per learn period)."""
        return max(1, int(WINDOW / max(self.learn_period, INTERVAL_MS / 1000)) - 2)

    def failures(self) -> list[str]:
        """Why this K is not on time (empty: on time)."""
        why = []
        if self.join_errors:
            why.append(f"{len(self.join_errors)} joins failed")
        if self.coord["lost"]:
            why.append(f"{self.coord['lost']} agents lost")
        reconnects = sum(a["reconnects"] for a in self.agents)
        if reconnects:
            why.append(f"{reconnects} agent reconnects (links dropped)")
        if self.coord["connected"] != self.k:
            why.append(f"{self.coord['connected']}/{self.k} connected")
        if self.min_syncs < self.need_syncs:
            why.append(f"min ACKed syncs {self.min_syncs} < {self.need_syncs}")
        need_in = int(WINDOW * 1000 / INTERVAL_MS) - 2
        if self.min_received < need_in:
            why.append(f"min pattern deltas received {self.min_received} < {need_in}")
        if any(a["no_ack"] for a in self.agents):
            why.append(f"{sum(a['no_ack'] for a in self.agents)} agents never ACKed")
        p99 = self.coord["latency"].get("sync_p99_ms")
        if p99 is None or p99 > P99_LIMIT_MS:
            why.append(f"sync p99 {p99} ms > {P99_LIMIT_MS:.0f}")
        return why

    def limited_by(self) -> str:
        """Which process ran out of CPU (a saturated process explains lateness)."""
        coord = self.coord_cpu >= SATURATED
        agents = any(c >= SATURATED for c in self.agent_cpus)
        if coord and agents:
            return "both coordinator and agent process CPU"
        if coord:
            return "coordinator CPU"
        if agents:
            return "agent process CPU"
        if self.machine_cpu >= 100.0 * (os.cpu_count() or 1) * 0.9:
            return f"machine CPU (all cores busy, {self.others_cpu:.0f}% other processes)"
        return "not CPU"

    @property
    def others_cpu(self) -> float:
        """CPU % used by processes outside this benchmark during the window."""
        return max(0.0, self.machine_cpu - self.coord_cpu - sum(self.agent_cpus))


def run_capacity(
    k: int, procs: int, learn_period: float, *, profile: bool = False
) -> CapacityResult:
    """Coordinator process + ``procs`` agent processes with ``k`` agents in all."""
    coord = Child(_coordinator_child, k + 16, profile)
    agents: list[Child] = []
    try:
        _, url, token = coord.reply(60)
        share = [k // procs + (1 if i < k % procs else 0) for i in range(procs)]
        first = 0
        for n in share:
            spec = AgentsSpec(url, token, first, n, learn_period, profile)
            agents.append(Child(_agents_child, spec))
            first += n
        joined = [a.reply(CONNECT_LIMIT + 90) for a in agents]
        connect_s = max(j[1] for j in joined)  # the agents' own clock, without spawn time
        errors = [e for j in joined for e in j[3]]
        missing = k - sum(j[2] for j in joined)
        if missing:
            errors.insert(0, f"{missing} agents failed to join")
        time.sleep(SETTLE)
        ticks = machine_ticks()
        coord.call("mark")
        for a in agents:
            a.call("mark")
        time.sleep(WINDOW)
        coord_report = coord.call("report", timeout=120)
        agent_reports = [a.call("report", timeout=120) for a in agents]
        busy, total = (now - then for now, then in zip(machine_ticks(), ticks, strict=True))
        return CapacityResult(
            k,
            procs,
            learn_period,
            connect_s,
            coord_report,
            agent_reports,
            100.0 * (os.cpu_count() or 1) * busy / max(total, 1),
            errors,
            coord_report.get("profile", ""),
        )
    finally:
        for a in agents:
            a.close()
        coord.close()


@dataclass
class EchoResult:
    """The websockets echo baseline at one K."""

    k: int
    connect_s: float
    server: dict[str, Any]
    clients: dict[str, Any]

    @property
    def server_cpu(self) -> float:
        return 100.0 * float(self.server["cpu"]) / float(self.server["wall"])

    @property
    def clients_cpu(self) -> float:
        return 100.0 * float(self.clients["cpu"]) / float(self.clients["wall"])


def run_echo(k: int) -> EchoResult:
    """A bare websockets echo server process and ``k`` clients in one other process."""
    server = Child(_echo_server_child)
    clients: Child | None = None
    try:
        _, url = server.reply(60)
        clients = Child(_echo_clients_child, url, k)
        _, connect_s = clients.reply(CONNECT_LIMIT + 90)
        time.sleep(1.0)
        server.call("mark")
        clients.call("mark")
        time.sleep(BASE_WINDOW)
        srv = server.call("report")
        cli = clients.call("report")
        return EchoResult(k, connect_s, srv, cli)
    finally:
        if clients is not None:
            clients.close()
        server.close()


def echo_rows(report: Report, k: int) -> float:
    """Run the websockets echo baseline at ``k``, add its row, return its server CPU %."""
    echo = run_echo(k)
    report.add(
        **{
            "phase": "agents per coordinator",
            "case": f"baseline: websockets echo, {ECHO_BYTES} B/s per client",
            "agents": k,
            "connect s": echo.connect_s,
            "coord CPU %": echo.server_cpu,
            "agents CPU %": echo.clients_cpu,
            "RSS MB": echo.server["rss"],
            "p50 ms": echo.clients["p50"],
            "p99 ms": echo.clients["p99"],
            "per s": echo.server["msgs"] / echo.server["wall"],
            "on time": "",
            "detail": f"loop lag max {echo.server['lag'] * 1000:.0f}/"
            f"{echo.clients['lag'] * 1000:.0f} ms",
        }
    )
    return echo.server_cpu


def capacity_rows(
    report: Report, k: int, procs: int, learn_period: float, echo_cpu: dict[int, float]
) -> CapacityResult:
    """Measure ours (and, once per K, the echo baseline) at ``k``; add the rows."""
    ours = run_capacity(k, procs, learn_period)
    if k not in echo_cpu:
        echo_cpu[k] = echo_rows(report, k)
    why = ours.failures()
    lat = ours.coord["latency"]
    dropped = ours.coord["dropped"]
    report.add(
        **{
            "phase": "agents per coordinator",
            "case": f"ours, learn every {learn_period:.0f}s, "
            f"{procs} agent process{'es' if procs > 1 else ''}",
            "agents": k,
            "connect s": ours.connect_s,
            "coord CPU %": ours.coord_cpu,
            "agents CPU %": (
                ours.agent_cpus[0]
                if procs == 1
                else " + ".join(f"{c:.0f}" for c in ours.agent_cpus)
            ),
            "RSS MB": ours.coord["rss"],
            "p50 ms": lat.get("sync_p50_ms") or "",
            "p99 ms": lat.get("sync_p99_ms") or "",
            "per s": ours.coord["syncs"] / ours.coord["wall"],
            "on time": "NO" if why else "yes",
            "vs baseline": f"{ours.coord_cpu / max(echo_cpu[k], 0.1):.1f}x CPU",
            "detail": "; ".join(
                [
                    f"{ours.coord['msgs'] / ours.coord['wall']:.0f} msgs in/s",
                    f"min {ours.min_syncs} syncs + {ours.min_received} deltas in/agent",
                    f"loop lag max {ours.coord['lag'] * 1000:.0f}/"
                    + "/".join(f"{a['lag'] * 1000:.0f}" for a in ours.agents)
                    + " ms",
                    f"others {ours.others_cpu:.0f}% CPU",
                    *([f"{dropped} replies dropped"] if dropped else []),
                ]
            ),
        }
    )
    report.notes.append(
        f"K={k}, learn every {learn_period:.0f}s: "
        + (f"not on time ({'; '.join(why)}); limited by {ours.limited_by()}" if why else "on time")
        + (
            f"; WARNING: other processes used {ours.others_cpu:.0f}% CPU during the window "
            "(numbers are pessimistic)"
            if ours.others_cpu >= CONTENDED
            else ""
        )
    )
    return ours


def capacity(report: Report, learn_period: float, echo_cpu: dict[int, float]) -> int:
    """Ramp K up until one is not on time, then bisect below it; returns the largest on time."""
    largest, failed = 0, 0
    procs = 1
    for k in RAMP:
        ours = capacity_rows(report, k, procs, learn_period, echo_cpu)
        if ours.failures():
            failed = k
            break
        largest = k
        if ours.connect_s > CONNECT_LIMIT:
            report.notes.append(
                f"stopped ramping: connecting {k} agents took {ours.connect_s:.0f}s"
            )
            break
        # Split the agents when the next K would saturate one agent process.
        if procs == 1 and max(ours.agent_cpus) * 2 >= SATURATED:
            procs = 2
    # Even a quick run looks below a first K that fails, so it reports some K.
    steps = 0 if not failed else BISECT_STEPS if largest else max(BISECT_STEPS, 1)
    for _ in range(steps):
        k = (largest + failed) // 2 // 10 * 10
        if k <= largest or k < 10:
            break
        if capacity_rows(report, k, procs, learn_period, echo_cpu).failures():
            failed = k
        else:
            largest = k
    return largest


# -- 2. propagation ---------------------------------------------------------------------------


async def _swarm(
    n: int, interval_ms: int, listen: str, handler: TaskHandler | None = None
) -> tuple[Coordinator, list[SwarmAgent]]:
    """A coordinator on ``listen`` and ``n`` joined agents (with ``handler`` for any task)."""
    config = SwarmConfig(
        agent_id="bench-coordinator", max_agents=n + 8, sync_interval_ms=interval_ms
    )
    coord = await Coordinator(config, listen=listen).start()
    assert coord.join_token is not None
    agents = [
        SwarmAgent(
            SwarmConfig(
                agent_id=f"agent-{i}", join_token=coord.join_token, sync_interval_ms=interval_ms
            ),
            handlers={"*": handler} if handler is not None else None,
            seed=i,
        )
        for i in range(n)
    ]
    gate = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def join(agent: SwarmAgent) -> None:
        async with gate:
            await agent.join_swarm(coord.url)

    await asyncio.gather(*(join(a) for a in agents))
    await coord.wait_for_agents(n, timeout=30)
    return coord, agents


async def _close(coord: Coordinator, agents: list[SwarmAgent]) -> None:
    await asyncio.gather(*(a.leave_swarm() for a in agents), return_exceptions=True)
    await coord.stop()


async def propagation(n: int, interval_ms: int) -> tuple[list[float], dict[str, float | None]]:
    """Seconds from learn() on one agent to every other agent's get_best_action seeing it."""
    coord, agents = await _swarm(n, interval_ms, "ws://127.0.0.1:0")
    rng = random.Random(n * 7919 + interval_ms)
    interval = interval_ms / 1000.0
    samples: list[float] = []
    try:
        await asyncio.sleep(interval * 2)  # every sync loop running
        coord._propagation.clear()  # only the samples of this phase
        for s in range(PROP_SAMPLES):
            await asyncio.sleep(rng.uniform(0, interval))  # learn at a random sync phase
            sender = agents[s % n]
            state = f"prop-{interval_ms}-{s}"
            start = time.perf_counter()
            sender.learn(state, "go", 1.0)
            waiting = [a for a in agents if a is not sender]
            while waiting:
                await asyncio.sleep(0.005)
                waiting = [a for a in waiting if a.get_best_action(state, ["go"]) is None]
                if time.perf_counter() - start > 60:
                    raise RuntimeError(f"{len(waiting)} agents never saw {state}")
            samples.append(time.perf_counter() - start)
        await asyncio.sleep(interval * 1.5)  # let the coordinator see the last reports
        return samples, coord.latency_summary()
    finally:
        await _close(coord, agents)


def propagation_rows(report: Report) -> None:
    """Every size x interval; one row each, with the coordinator's own numbers in detail."""
    for interval_ms in PROP_INTERVALS:
        for n in PROP_SIZES:
            load = time.process_time()
            wall = time.perf_counter()
            samples, summary = run_loop(propagation(n, interval_ms))
            cpu = 100.0 * (time.process_time() - load) / (time.perf_counter() - wall)
            p50 = statistics.median(samples) * 1000.0
            cp50, cp99 = summary.get("propagation_p50_ms"), summary.get("propagation_p99_ms")
            report.add(
                **{
                    "phase": "propagation",
                    "case": f"ours, sync interval {interval_ms} ms, ws, one process",
                    "agents": n,
                    "coord CPU %": cpu,
                    "p50 ms": p50,
                    "p99 ms": pct_ms(samples, 0.99),
                    "vs baseline": f"{p50 / interval_ms:.2f}x interval",
                    "detail": (
                        f"{len(samples)} samples; coordinator's own: p50 {cp50} / p99 {cp99} ms "
                        f"({int(summary.get('propagation_samples') or 0)})"
                    ),
                }
            )
        report.add(
            **{
                "phase": "propagation",
                "case": f"baseline: the sync interval ({interval_ms} ms)",
                "p50 ms": float(interval_ms),
            }
        )


# -- 3. tasks ---------------------------------------------------------------------------------


async def noop(ctx: TaskContext) -> TaskOutcome:
    """The trivial task handler."""
    return TaskOutcome(True)


async def tasks(listen: str) -> dict[str, Any]:
    """Burst of TASKS_BURST tasks, then TASKS_SEQ one at a time, on TASK_AGENTS agents."""
    coord, agents = await _swarm(TASK_AGENTS, 1000, listen, noop)
    try:
        loop = asyncio.get_running_loop()
        cpu0 = time.process_time()
        start = time.perf_counter()
        latencies: list[float] = []
        failed = 0

        async def wait(task_id: str, submitted: float) -> None:
            nonlocal failed
            result = await coord.wait_task(task_id, timeout=300)
            latencies.append(time.perf_counter() - submitted)
            failed += not result.success

        waits = []
        for _ in range(TASKS_BURST):
            tid = coord.submit_task("noop")
            waits.append(loop.create_task(wait(tid, time.perf_counter())))
        await asyncio.gather(*waits)
        burst_s = time.perf_counter() - start
        burst_cpu = time.process_time() - cpu0
        seq: list[float] = []
        for _ in range(TASKS_SEQ):
            t0 = time.perf_counter()
            result = await coord.wait_task(coord.submit_task("noop"), timeout=60)
            seq.append(time.perf_counter() - t0)
            failed += not result.success
        return {
            "burst_s": burst_s,
            "burst_cpu": burst_cpu,
            "burst_lat": latencies,
            "seq": seq,
            "failed": failed,
        }
    finally:
        await _close(coord, agents)


async def direct_handler() -> float:
    """Seconds per direct ``await noop(ctx)`` (no swarm)."""
    ctx = TaskContext(SwarmAgent(), TaskPayload(task_id="t", task_type="noop"))
    n = TASKS_BURST * 10
    start = time.perf_counter()
    for _ in range(n):
        await noop(ctx)
    return (time.perf_counter() - start) / n


def task_rows(report: Report) -> None:
    """Rows for inproc and ws, after the direct-call baseline."""
    per_call = run_loop(direct_handler())
    report.add(
        **{
            "phase": "tasks",
            "case": "baseline: handler awaited directly (no swarm)",
            "agents": 0,
            "p50 ms": per_call * 1000.0,
            "per s": 1.0 / per_call,
        }
    )
    for name, listen in (("inproc", "inproc://bench-tasks"), ("ws", "ws://127.0.0.1:0")):
        res = run_loop(tasks(listen))
        rate = TASKS_BURST / res["burst_s"]
        report.add(
            **{
                "phase": "tasks",
                "case": f"ours, {name}, burst of {TASKS_BURST} (latency includes queueing)",
                "agents": TASK_AGENTS,
                "coord CPU %": 100.0 * res["burst_cpu"] / res["burst_s"],
                "p50 ms": pct_ms(res["burst_lat"], 0.5),
                "p99 ms": pct_ms(res["burst_lat"], 0.99),
                "per s": rate,
                "vs baseline": f"{(1.0 / rate) / per_call:,.0f}x time/task",
                "detail": f"{res['failed']} failed",
            }
        )
        seq_p50 = statistics.median(res["seq"])
        report.add(
            **{
                "phase": "tasks",
                "case": f"ours, {name}, {TASKS_SEQ} one at a time (submit -> result)",
                "agents": TASK_AGENTS,
                "p50 ms": seq_p50 * 1000.0,
                "p99 ms": pct_ms(res["seq"], 0.99),
                "per s": 1.0 / statistics.mean(res["seq"]),
                "vs baseline": f"{seq_p50 / per_call:,.0f}x time/task",
            }
        )


# -- the run ----------------------------------------------------------------------------------


def main() -> None:
    """Run every phase, print the table and targets, save JSON."""
    _quiet()
    _raise_nofile()
    report = Report(AREA, COLUMNS)
    load_before = os.getloadavg()
    started = time.perf_counter()
    clock = [time.perf_counter()]
    phases: list[str] = []

    def lap(name: str) -> None:
        phases.append(f"{name} {time.perf_counter() - clock[0]:.0f}s")
        clock[0] = time.perf_counter()

    echo_cpu: dict[int, float] = {}
    largest = {period: capacity(report, period, echo_cpu) for period in LEARN_PERIODS}
    lap("agents per coordinator")
    propagation_rows(report)
    lap("propagation")
    task_rows(report)
    lap("tasks")
    for period, k in largest.items():
        report.target(
            f"agents per coordinator on time (largest K), each learning every {period:.0f}s",
            float(k),
            AGENTS_TARGET,
        )
    report.notes.append(f"event loop in every process: {LOOP}")
    report.notes.append(
        f"agents per coordinator: stretch goal {AGENTS_STRETCH:,}; ramp {RAMP}; window "
        f"{WINDOW:.0f}s after {SETTLE:.1f}s settle; sync and heartbeat interval "
        f"{INTERVAL_MS} ms; on time = none lost, all connected, every agent received >= "
        f"{int(WINDOW * 1000 / INTERVAL_MS) - 2} pattern deltas and had its own syncs ACKed "
        f"(>= window / learn period - 2, at least 1), coordinator "
        f"sync p99 <= {P99_LIMIT_MS:.0f} ms. Coordinator latency_summary keeps the last 4096 "
        "samples, so at large K p50/p99 cover the window's last 4096 syncs; p50/p99 ms are "
        "the coordinator's sync latency (SYNC created on the agent -> merged), for the echo "
        "baseline the clients' round trip. Agents CPU % is "
        "per agent process (% of one core); RSS is the coordinator's (the echo server's); "
        "loop lag is the worst event-loop stall of coordinator/agent processes; 'others' is "
        "machine CPU used outside this benchmark during the window. Echo baseline: one "
        "message/s per client vs, per agent, one own sync per learn (or a heartbeat PING) "
        "in, and its ACK/PONG plus the pushed pattern delta out."
    )
    report.notes.append(
        "propagation: coordinator and agents in this process (CPU % = the whole process); "
        "baseline = the sync interval (interval/2 waiting for the sender's sync + interval/2 "
        "for the coordinator's next push). The coordinator's own numbers end when the push "
        "carrying the version was sent to every subscribed agent."
    )
    report.notes.append(
        "tasks: coordinator and 4 agents in this process (CPU % = the whole process); burst "
        "latency counts from submit, so it includes waiting behind the other tasks."
    )
    report.notes.append(
        f"load average (1 min) before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} CPUs; took {', '.join(phases)}, "
        f"total {time.perf_counter() - started:.0f}s"
    )
    report.print(Console(width=240))
    report.save()


def profile_main(k: int) -> None:
    """Profile the coordinator process during one capacity window with ``k`` agents."""
    _quiet()
    res = run_capacity(k, 1, LEARN_PERIODS[0], profile=True)
    print(
        f"K={k}: coordinator CPU {res.coord_cpu:.0f}%, agent CPU {res.agent_cpus}, "
        f"syncs merged/s {res.coord['syncs'] / res.coord['wall']:.0f}, "
        f"latency {res.coord['latency']}, on time: {res.failures() or 'yes'}"
    )
    print("coordinator process:", res.profile)
    for i, agents in enumerate(res.agents):
        print(f"agent process {i}:", agents["profile"])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--profile":
        profile_main(int(sys.argv[2]))
    else:
        main()
