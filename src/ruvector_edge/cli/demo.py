"""``edge-demo``: a swarm that learns, end to end, over real transports.

``edge-demo [--agents N] [--transport ws|shm|inproc] [--tasks N]`` starts a coordinator in
this process and N agent processes (``python -m ruvector_edge.cli.agent``; with
``--transport inproc`` the agents run in this process instead), then submits a learning
workload (:mod:`ruvector_edge.cli.demo_workload`): six task types whose best approach and
best capability are known only to the reward function. The agents really run each task
(parsing, resampling, summarizing, SQL, compression, tokenizing); the reward is a
synthetic hidden table. Agents pick approaches epsilon-greedily from the patterns the
whole swarm shares, and the coordinator's allocator learns which capability to send
each type to. A progress bar, then a table: success in the first vs the last tenth of
the tasks, patterns and memories synced, sync latency, and how long a pattern learned by
one agent took to reach all the others.

Exit status: 0 when the last tenth succeeded more often than the first (learning paid
off), 1 when it did not, 2 for a setup error, 130 when interrupted.

``edge-demo --showcase`` runs the older tour of the codec, wire and identity layers.

Roles: ``agent-0`` is a scout (three times the exploration; files what it sees into
shared memory), the others are workers. No specialist is started: a specialist only
takes tasks its capabilities name, and choosing those would mean knowing the hidden
table the demo is meant to discover.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ruvector_edge.cli import demo_workload as workload
from ruvector_edge.cli._common import run_loop
from ruvector_edge.codec import CompressionLevel, TensorCodec
from ruvector_edge.config import AgentRole, SwarmConfig, Transport
from ruvector_edge.errors import ConfigError, EdgeError, TransportError
from ruvector_edge.identity import Admission, Identity, generate_join_token
from ruvector_edge.swarm import (
    ALLOCATORS,
    Coordinator,
    CoordinatorStats,
    SwarmAgent,
    task_state,
)
from ruvector_edge.wire import (
    FrameRejected,
    LinkInitiator,
    LinkResponder,
    MessageCodec,
    SwarmMessage,
    SyncPatternsPayload,
)

__all__ = [
    "DemoReport",
    "TaskRow",
    "agent_plan",
    "app",
    "main",
    "render_report",
    "run_demo",
    "showcase",
]

app = typer.Typer(add_completion=False, help=__doc__)

AGENT_MODULE = "ruvector_edge.cli.agent"
HANDLERS_SPEC = "ruvector_edge.cli.demo_workload:HANDLERS"
_TASK_TIMEOUT_MS = 10_000
_HEARTBEAT_MS = 250
_GRACE_S = 3.0  # after Ctrl-C: time for agents that got it too to leave on their own
_STDERR_TAIL = 20


# ============================================================================ the report
@dataclasses.dataclass(frozen=True, slots=True)
class TaskRow:
    """One finished task, in submission order."""

    index: int
    task_type: str
    success: bool
    attempts: int
    reward: float
    action: str | None
    agent: str | None = None  # the agent of the final attempt

    @property
    def first_try(self) -> bool:
        """Succeeded on its first assignment (no retry on another agent)."""
        return self.success and self.attempts == 1


def _rate(rows: Sequence[TaskRow], what: Callable[[TaskRow], float]) -> float:
    return sum(what(r) for r in rows) / len(rows) if rows else 0.0


@dataclasses.dataclass(slots=True)
class DemoReport:
    """What a demo run measured (``run_demo``)."""

    transport: str
    url: str
    agents: int
    seed: int
    rows: list[TaskRow]
    stats: CoordinatorStats
    latency: dict[str, float | None]
    converged: bool
    wall_s: float  # submitting the first task -> the last result
    startup_s: float  # coordinator start -> every agent joined
    learned: dict[str, str | None]  # task type -> the approach the swarm rates best
    plan: list[tuple[str, AgentRole, tuple[str, ...]]]

    @property
    def tenth(self) -> int:
        """Tasks in one tenth of the run."""
        return max(1, len(self.rows) // 10)

    @property
    def first(self) -> list[TaskRow]:
        """The first tenth of the tasks (submission order)."""
        return self.rows[: self.tenth]

    @property
    def last(self) -> list[TaskRow]:
        """The last tenth of the tasks."""
        return self.rows[-self.tenth :]

    def success_rate(self, rows: Sequence[TaskRow], *, first_try: bool = True) -> float:
        """Share of ``rows`` that succeeded (by default: on the first attempt)."""
        return _rate(rows, lambda r: float(r.first_try if first_try else r.success))

    @property
    def first_success(self) -> float:
        """First-attempt success rate of the first tenth."""
        return self.success_rate(self.first)

    @property
    def last_success(self) -> float:
        """First-attempt success rate of the last tenth."""
        return self.success_rate(self.last)

    def routing(self, task_type: str) -> tuple[str | None, float]:
        """The agent that ran most ``task_type`` tasks in the last quarter of the run, and
        its share of them."""
        tail = self.rows[-max(1, len(self.rows) // 4) :]
        agents = collections.Counter(r.agent for r in tail if r.task_type == task_type)
        if not agents:
            return None, 0.0
        agent, count = agents.most_common(1)[0]
        return agent, count / sum(agents.values())

    @property
    def paid_off(self) -> bool:
        """Whether the last tenth succeeded more often than the first."""
        return self.last_success > self.first_success


# ============================================================================ agents
def agent_plan(n: int) -> list[tuple[str, AgentRole, tuple[str, ...]]]:
    """``(agent_id, role, capabilities)`` for ``n`` agents: ``agent-0`` scouts, the rest
    work; capabilities are dealt round-robin from the pool so each one exists (with fewer
    agents than capabilities some agents hold several)."""
    if n < 1:
        raise ConfigError(f"the demo needs at least one agent, got {n}")
    pool = workload.CAPABILITIES
    plan = []
    for i in range(n):
        caps = [pool[j] for j in range(len(pool)) if j % n == i] or [pool[i % len(pool)]]
        role = AgentRole.SCOUT if i == 0 else AgentRole.WORKER
        plan.append((f"agent-{i}", role, tuple(caps)))
    return plan


@dataclasses.dataclass(slots=True)
class _Child:
    agent_id: str
    proc: asyncio.subprocess.Process
    log: Path

    def tail(self, lines: int = _STDERR_TAIL) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no output)"
        kept = text.strip().splitlines()[-lines:]
        return "\n".join(kept) if kept else "(no output)"


class _Swarm:
    """The agents of one run: child processes or in-process ``SwarmAgent`` s."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.children: list[_Child] = []
        self.local: list[SwarmAgent] = []

    async def spawn(
        self,
        plan: Sequence[tuple[str, AgentRole, tuple[str, ...]]],
        url: str,
        token: str,
        *,
        sync_interval_ms: int,
        heartbeat_ms: int,
        seed: int,
        module: str,
    ) -> None:
        env = dict(os.environ)
        env["SWARM_JOIN_TOKEN"] = token  # never on argv: other users can read argv
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        env.setdefault("PYTHONUNBUFFERED", "1")
        for i, (agent_id, role, caps) in enumerate(plan):
            log = self.logs / f"{agent_id}.log"
            with log.open("wb") as out:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    module,
                    "--id",
                    agent_id,
                    "--role",
                    role.value,
                    "--coordinator",
                    url,
                    "--capabilities",
                    ",".join(caps),
                    "--handlers",
                    HANDLERS_SPEC,
                    "--sync-interval",
                    str(sync_interval_ms),
                    "--heartbeat-interval",
                    str(heartbeat_ms),
                    "--seed",
                    str(seed * 1000 + i),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    env=env,
                )
            self.children.append(_Child(agent_id, proc, log))

    async def start_local(
        self,
        plan: Sequence[tuple[str, AgentRole, tuple[str, ...]]],
        url: str,
        token: str,
        *,
        sync_interval_ms: int,
        heartbeat_ms: int,
        seed: int,
    ) -> None:
        for i, (agent_id, role, caps) in enumerate(plan):
            config = SwarmConfig(
                agent_id=agent_id,
                agent_role=role,
                transport=Transport.IN_PROCESS,
                sync_interval_ms=sync_interval_ms,
                heartbeat_interval_ms=heartbeat_ms,
                join_token=token,
            )
            agent = SwarmAgent(
                config, capabilities=caps, handlers=workload.HANDLERS, seed=seed * 1000 + i
            )
            self.local.append(agent)
            await agent.join_swarm(url, timeout=15.0)

    def failure_report(self) -> str:
        parts = []
        for child in self.children:
            rc = child.proc.returncode
            state = "running" if rc is None else f"exited with status {rc}"
            parts.append(f"--- {child.agent_id} ({state}); last output:\n{child.tail()}")
        return "\n".join(parts)

    async def wait_joined(self, coordinator: Coordinator, count: int, timeout: float) -> None:
        """Wait until ``count`` agents joined; fail fast when a child process exits."""
        joined = asyncio.ensure_future(coordinator.wait_for_agents(count, timeout))
        exits = [asyncio.ensure_future(c.proc.wait()) for c in self.children]
        try:
            await asyncio.wait([joined, *exits], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in exits:
                fut.cancel()
            if not joined.done():
                joined.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await joined
        if not joined.cancelled() and joined.exception() is None:
            return
        why = (
            "an agent process exited before joining"
            if any(c.proc.returncode is not None for c in self.children)
            else f"only {coordinator.connected_agents()} of {count} agents joined "
            f"within {timeout:.0f} s"
        )
        raise TransportError(
            f"the demo swarm did not come up: {why}.\n{self.failure_report()}",
            code="agents_not_ready",
        )

    async def watch(self) -> None:
        """Return once every agent process has exited (never, for in-process agents)."""
        if not self.children:
            await asyncio.Event().wait()
        await asyncio.gather(*(c.proc.wait() for c in self.children))

    async def close(self, *, interrupted: bool = False, timeout: float = 10.0) -> None:
        """Let every agent leave: SIGINT the children (they send LEAVE), wait, then kill."""
        await asyncio.gather(*(a.leave_swarm("demo finished") for a in self.local))
        procs = [c.proc for c in self.children]
        if interrupted:
            # Ctrl-C in a terminal reached the children too: give them time to leave first.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), _GRACE_S)
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


# ============================================================================ the run
def _is_learned(allocator: str) -> bool:
    return allocator.strip().lower() == "learned"


def _listen_url(transport: Transport) -> str:
    tag = f"edge-demo-{os.getpid()}-{secrets.token_hex(3)}"
    if transport is Transport.WEBSOCKET:
        return "ws://127.0.0.1:0"
    if transport is Transport.SHARED_MEMORY:
        return f"shm://{tag}"
    return f"inproc://{tag}"


def _learned(coordinator: Coordinator) -> dict[str, str | None]:
    """Per task type: the approach the swarm's merged patterns now rate best."""
    out: dict[str, str | None] = {}
    for task_type, approaches in workload.APPROACHES.items():
        best = coordinator.intelligence.get_best_action(task_state(task_type), approaches)
        out[task_type] = None if best is None else best[0]
    return out


async def run_demo(
    *,
    agents: int = 4,
    transport: str | Transport = Transport.WEBSOCKET,
    tasks: int = 400,
    seed: int = 0,
    sync_interval_ms: int = 200,
    allocator: str = "learned",
    console: Console | None = None,
    on_progress: Callable[[TaskRow], None] | None = None,
    agent_module: str = AGENT_MODULE,
    join_timeout: float = 60.0,
    task_timeout: float = 60.0,
    converge_timeout: float | None = None,
) -> DemoReport:
    """Start a coordinator and ``agents`` agents over ``transport``, run ``tasks`` tasks
    of the learning workload, and measure how the swarm improved.

    Agent processes run ``python -m <agent_module>`` with the ``edge-agent`` flags and
    get the join token in ``SWARM_JOIN_TOKEN``. ``on_progress`` is called with each task
    as it finishes. Raises ``ConfigError`` for bad settings and ``TransportError`` when
    the agents do not come up or a task gets no result within ``task_timeout`` seconds.
    After the last task it waits up to ``converge_timeout`` seconds (default: twenty sync
    intervals) for every agent to hold every agent's patterns.
    """
    kind = Transport.parse(transport)
    if not 1 <= agents <= 64:
        raise ConfigError(f"--agents must be between 1 and 64, got {agents}")
    if tasks < 10:
        raise ConfigError(f"--tasks must be at least 10 (the report compares tenths), got {tasks}")
    if not 10 <= sync_interval_ms <= 60_000:
        raise ConfigError(
            f"--sync-interval must be between 10 and 60000 ms, got {sync_interval_ms}"
        )
    say = console.print if console is not None else (lambda *_a, **_k: None)
    # A short heartbeat notices a dead agent within a second; the agents get the same
    # interval, so an idle one pings often enough not to be taken for dead.
    heartbeat_ms = _HEARTBEAT_MS
    window = 2 * agents
    config = SwarmConfig(
        agent_id="demo-coordinator",
        agent_role=AgentRole.COORDINATOR,
        transport=kind,
        sync_interval_ms=sync_interval_ms,
        heartbeat_interval_ms=heartbeat_ms,
        max_agents=max(agents, 8),
    )
    coordinator = Coordinator(
        config,
        listen=_listen_url(kind),
        allocator=allocator,
        allocator_options={"seed": seed} if _is_learned(allocator) else None,
        # Room for the whole submission window on any agent, so the allocator's choice,
        # not a full agent, decides where a task goes.
        max_tasks_per_agent=window,
    )
    plan = agent_plan(agents)
    interrupted = False
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edge-demo-") as logs:
        swarm = _Swarm(Path(logs))
        await coordinator.start()
        try:
            token = coordinator.join_token
            assert token is not None
            say(f"coordinator [bold]{coordinator.agent_id}[/] listening on {coordinator.url}")
            if kind is Transport.IN_PROCESS:
                say(f"starting {agents} agents [bold]in this process[/] (inproc transport)")
                await swarm.start_local(
                    plan,
                    coordinator.url,
                    token,
                    sync_interval_ms=sync_interval_ms,
                    heartbeat_ms=heartbeat_ms,
                    seed=seed,
                )
            else:
                say(f"starting {agents} agent processes ({agent_module})")
                await swarm.spawn(
                    plan,
                    coordinator.url,
                    token,
                    sync_interval_ms=sync_interval_ms,
                    heartbeat_ms=heartbeat_ms,
                    seed=seed,
                    module=agent_module,
                )
            await swarm.wait_joined(coordinator, agents, join_timeout)
            for agent_id, role, caps in plan:
                say(f"  {agent_id:10} {role.value:8} capabilities: {', '.join(caps)}")
            startup = time.monotonic() - started
            started = time.monotonic()
            rows = await _watched(
                _run_tasks(
                    coordinator,
                    workload.make_tasks(tasks, seed),
                    window=window,
                    timeout=task_timeout,
                    on_progress=on_progress,
                    swarm=swarm,
                ),
                swarm,
            )
            wall = time.monotonic() - started
            ids = [agent_id for agent_id, _, _ in plan]
            # Let the last patterns reach the coordinator and every agent, and their
            # propagation samples close (bounded wait).
            converged = False
            with contextlib.suppress(TimeoutError):
                await coordinator.wait_until(
                    lambda: (
                        coordinator.patterns_delivered(ids) and not coordinator.propagation_pending
                    ),
                    timeout=(
                        20 * sync_interval_ms / 1000
                        if converge_timeout is None
                        else converge_timeout
                    ),
                )
                converged = True
            if not converged:
                converged = coordinator.patterns_delivered(ids)
            return DemoReport(
                transport=kind.value,
                url=coordinator.url,
                agents=agents,
                seed=seed,
                rows=rows,
                stats=coordinator.stats(),
                latency=coordinator.latency_summary(),
                converged=converged,
                wall_s=wall,
                startup_s=startup,
                learned=_learned(coordinator),
                plan=plan,
            )
        except asyncio.CancelledError:
            interrupted = True
            raise
        finally:
            # Links closing while a last reply is in flight are expected now, not news.
            transport_log = logging.getLogger("ruvector_edge.transport")
            level = transport_log.level
            transport_log.setLevel(logging.ERROR)
            try:
                await swarm.close(interrupted=interrupted)
            finally:
                try:
                    await coordinator.stop()
                finally:
                    transport_log.setLevel(level)


async def _watched(work: Coroutine[Any, Any, list[TaskRow]], swarm: _Swarm) -> list[TaskRow]:
    """Run ``work``, failing fast if every agent process exits meanwhile (a lone agent
    may die: the coordinator hands its tasks to the others)."""
    job = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(swarm.watch())
    try:
        await asyncio.wait([job, watch], return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not job.done():
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
    if job.cancelled():
        raise TransportError(
            f"every agent process exited before the tasks were done.\n{swarm.failure_report()}",
            code="agents_gone",
        )
    return job.result()


async def _run_tasks(
    coordinator: Coordinator,
    tasks: Sequence[tuple[str, dict[str, object]]],
    *,
    window: int,
    timeout: float,
    on_progress: Callable[[TaskRow], None] | None,
    swarm: _Swarm,
) -> list[TaskRow]:
    """Submit ``tasks`` in order with at most ``window`` in flight; rows in task order."""
    rows: list[TaskRow | None] = [None] * len(tasks)
    slots = asyncio.Semaphore(window)

    async def one(index: int, task_type: str, parameters: dict[str, object]) -> None:
        try:
            task_id = coordinator.submit_task(
                task_type,
                parameters,
                description=f"demo task {index}",
                timeout_ms=_TASK_TIMEOUT_MS,
            )
            try:
                result = await coordinator.wait_task(task_id, timeout)
            except TimeoutError:
                raise TransportError(
                    f"task {index} ({task_type}) got no result within {timeout:.0f} s.\n"
                    f"{swarm.failure_report()}",
                    code="task_timeout",
                ) from None
            agent = result.result.get("agent") if isinstance(result.result, dict) else None
            row = TaskRow(
                index,
                task_type,
                result.success,
                coordinator.task(task_id).attempts,
                float(result.reward),
                result.action,
                agent if isinstance(agent, str) else None,
            )
            rows[index] = row
            if on_progress is not None:
                on_progress(row)
        finally:
            slots.release()

    running: list[asyncio.Task[None]] = []
    try:
        for index, (task_type, parameters) in enumerate(tasks):
            await slots.acquire()
            for done in running:
                failure = done.exception() if done.done() else None
                if failure is not None:
                    raise failure
            running.append(asyncio.ensure_future(one(index, task_type, parameters)))
        await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    return [r for r in rows if r is not None]


# ============================================================================ output
def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def render_report(console: Console, report: DemoReport) -> None:
    """Print the results table, what the swarm learned, and the verdict."""
    first, last = report.first, report.last
    s = report.stats
    lat = report.latency
    table = Table(title=f"edge-demo: {len(report.rows)} tasks, {report.agents} agents")
    table.add_column("metric")
    table.add_column(f"first tenth ({len(first)})", justify="right")
    table.add_column(f"last tenth ({len(last)})", justify="right")
    table.add_row(
        "success (first attempt)",
        _pct(report.success_rate(first)),
        f"[bold]{_pct(report.success_rate(last))}",
    )
    table.add_row(
        "success (after retries)",
        _pct(report.success_rate(first, first_try=False)),
        _pct(report.success_rate(last, first_try=False)),
    )
    table.add_row(
        "mean reward (final attempt)",
        f"{_rate(first, lambda r: r.reward):.2f}",
        f"{_rate(last, lambda r: r.reward):.2f}",
    )
    table.add_row(
        "attempts per task",
        f"{_rate(first, lambda r: r.attempts):.2f}",
        f"{_rate(last, lambda r: r.attempts):.2f}",
    )
    table.add_section()
    done = sum(r.success for r in report.rows)
    table.add_row("tasks done / failed", f"{done} / {len(report.rows) - done}", "")
    table.add_row("retries (other agent)", str(s.tasks_retried), "")
    table.add_row(
        "patterns at the coordinator", f"{s.patterns} from {s.pattern_origins} origins", ""
    )
    table.add_row("pattern syncs merged", str(s.pattern_syncs), "")
    table.add_row("memories synced", f"{s.memories} ({s.memory_syncs} memory syncs)", "")
    table.add_row(
        "sync latency p50/p99",
        f"{_ms(lat.get('sync_p50_ms'))} / {_ms(lat.get('sync_p99_ms'))}",
        f"{int(lat.get('sync_samples') or 0)} samples",
    )
    table.add_row(
        "pattern -> all agents p50/p99",
        f"{_ms(lat.get('propagation_p50_ms'))} / {_ms(lat.get('propagation_p99_ms'))}",
        f"{int(lat.get('propagation_samples') or 0)} samples",
    )
    table.add_row("all agents hold all patterns", "yes" if report.converged else "not yet", "")
    table.add_row("agents up after", f"{report.startup_s:.1f} s", "")
    table.add_row(
        "tasks took",
        f"{report.wall_s:.1f} s",
        f"{len(report.rows) / max(report.wall_s, 1e-9):.0f} tasks/s",
    )
    console.print(table)

    truth = workload.reveal()
    caps = {agent_id: c for agent_id, _, c in report.plan}
    learned = Table(
        title="what the swarm learned vs the hidden table (revealed now)",
        caption="runs on: the agent that ran most of the type's tasks in the last quarter",
    )
    for col in ("task type", "approach learned", "runs on", "hidden best"):
        learned.add_column(col)
    for task_type, approach in report.learned.items():
        best_cap, best_approach = truth[task_type]
        agent, share = report.routing(task_type)
        right_agent = best_cap in caps.get(agent or "", ())
        learned.add_row(
            task_type,
            _mark(approach, approach == best_approach),
            _mark(None if agent is None else f"{agent} {_pct(share)}", right_agent),
            f"{best_cap}/{best_approach}",
        )
    console.print(learned)
    console.print(
        "[dim]Handlers do real work (JSON parsing, image resampling, summaries, SQL, "
        "compression, tokenizing); the reward is a synthetic hidden table "
        "(0.55 x best approach + 0.35 x best capability + noise; success >= 0.6).[/]"
    )
    before, after = _pct(report.first_success), _pct(report.last_success)
    if report.paid_off:
        console.print(f"[bold green]learning paid off: success {before} -> {after}[/]")
    else:
        console.print(f"[bold red]learning did not pay off: success {before} -> {after}[/]")


def _mark(value: str | None, right: bool) -> str:
    if value is None:
        return "[dim]-"
    return f"[green]{value} ✓" if right else f"[yellow]{value} ✗"


# ============================================================================ showcase
def _link(
    agent: Identity, coordinator: Identity, admission: Admission, token: str | None, encrypt: bool
) -> tuple[MessageCodec, MessageCodec]:
    """Run JOIN/WELCOME over frames between two codecs; return (agent, coordinator) codecs."""
    agent_codec, coord_codec = MessageCodec(encrypt=encrypt), MessageCodec(encrypt=encrypt)
    initiator = LinkInitiator(agent, "worker", ["python", "rust"], join_token=token)
    responder = LinkResponder(coordinator, admission)
    [join] = coord_codec.feed(agent_codec.encode(initiator.join_message()))
    assert isinstance(join, SwarmMessage)
    try:
        responder.accept_join(join)
    except EdgeError as exc:
        reply = SwarmMessage.error(coordinator.agent_id, exc.code, exc.message)
        [error] = agent_codec.feed(coord_codec.encode(reply))
        assert isinstance(error, SwarmMessage)
        initiator.complete(error)  # raises AuthError("join refused: ...")
    welcome, coord_session = responder.welcome_message("demo-swarm", members=[agent.agent_id])
    [welcome_in] = agent_codec.feed(coord_codec.encode(welcome))
    assert isinstance(welcome_in, SwarmMessage)
    agent_codec.attach_session(initiator.complete(welcome_in))
    coord_codec.attach_session(coord_session)
    return agent_codec, coord_codec


def showcase(
    console: Console, *, agents: int = 3, size: int = 100_000, encrypt: bool = True, seed: int = 0
) -> None:
    """The foundation-layer tour: agents join a coordinator through the signed handshake,
    share compressed tensors over authenticated frames, and bad input is refused."""
    token = generate_join_token()
    coordinator = Identity.generate("coordinator")
    admission = Admission(token)
    console.rule("[bold]1. identities and the signed JOIN/WELCOME handshake")
    links: dict[str, tuple[MessageCodec, MessageCodec]] = {}
    roster = Table("agent", "key fingerprint", "session id", "payloads")
    for i in range(agents):
        ident = Identity.generate(f"worker-{i + 1}")
        links[ident.agent_id] = _link(ident, coordinator, admission, token, encrypt)
        session = links[ident.agent_id][0].session
        assert session is not None
        roster.add_row(
            ident.agent_id,
            ident.fingerprint[:16],
            session.session_id.hex()[:16],
            "encrypted" if encrypt else "authenticated",
        )
    console.print(roster)

    console.rule("[bold]2. compressed tensors over authenticated frames")
    rng = np.random.default_rng(seed)
    tensor = rng.standard_normal(size).astype(np.float32)
    agent_id = next(iter(links))
    agent_codec, coord_codec = links[agent_id]
    table = Table("level", "blob bytes", "ratio", "max abs error", "frame bytes", "received")
    for level in CompressionLevel:
        codec = TensorCodec.with_level(level)
        blob = codec.compress_tensor(tensor)
        frame = agent_codec.encode(SwarmMessage.sync_patterns(agent_id, blob, entry_count=size))
        [msg] = coord_codec.feed(frame)
        assert isinstance(msg, SwarmMessage)
        assert isinstance(msg.payload, SyncPatternsPayload)
        # Any codec decodes any blob: the blob says how it was made.
        restored = TensorCodec().decompress_tensor(msg.payload.data)
        error = float(np.max(np.abs(restored - tensor))) if size else 0.0
        table.add_row(
            level.name,
            f"{len(blob):,}",
            f"{tensor.nbytes / len(blob):.2f}x",
            f"{error:.2e}",
            f"{len(frame):,}",
            "ok",
        )
    console.print(table)

    console.rule("[bold]3. bad input is refused; the link keeps serving")
    refusals = Table("attack", "result")
    stranger = Identity.generate("stranger")
    for label, ident, tok in (
        ("join with a wrong token", stranger, "not-the-token"),
        ("join without a token", stranger, None),
        ("claim worker-1's id with another key", Identity.generate("worker-1"), token),
    ):
        try:
            _link(ident, coordinator, admission, tok, encrypt)
            refusals.add_row(label, "[red]admitted (unexpected)")
        except EdgeError as exc:
            refusals.add_row(label, f"[green]{type(exc).__name__}[/]: {exc.message}")
    good = agent_codec.encode(SwarmMessage.ping(agent_id, 1))
    tampered = bytearray(agent_codec.encode(SwarmMessage.ping(agent_id, 2)))
    tampered[20] ^= 0x01
    after = agent_codec.encode(SwarmMessage.ping(agent_id, 3))
    results = coord_codec.feed(good + bytes(tampered) + good + after)
    for label, item in zip(
        ("genuine PING", "PING with one flipped bit", "replayed PING", "next genuine PING"),
        results,
        strict=True,
    ):
        if isinstance(item, FrameRejected):
            refusals.add_row(label, f"[green]{type(item.error).__name__}[/]: {item.error.message}")
        else:
            refusals.add_row(label, "accepted")
    console.print(refusals)
    stats = coord_codec.stats
    console.print(
        f"coordinator link: {stats.frames_in} frames in, {stats.rejected} rejected "
        f"({dict(stats.rejected_by_code)}), {stats.bytes_in:,} bytes"
    )


# ============================================================================ the CLI
@app.command()
def run(
    *,
    agents: Annotated[int, typer.Option(min=1, max=64, help="Number of agents.")] = 4,
    transport: Annotated[
        str, typer.Option(help="ws (WebSocket on 127.0.0.1), shm (shared memory) or inproc.")
    ] = "ws",
    tasks: Annotated[int, typer.Option(min=10, help="Tasks in the learning workload.")] = 400,
    seed: Annotated[int, typer.Option(help="Seed of the workload and the agents' RNGs.")] = 0,
    sync_interval: Annotated[
        int, typer.Option(min=10, max=60_000, help="Pattern/memory sync interval (ms).")
    ] = 200,
    allocator: Annotated[
        str, typer.Option(help=f"Coordinator allocator: {', '.join(ALLOCATORS)}.")
    ] = "learned",
    showcase_only: Annotated[
        bool,
        typer.Option(
            "--showcase", help="Run the codec / wire / identity tour instead of the swarm."
        ),
    ] = False,
    size: Annotated[
        int, typer.Option(min=1, max=4_000_000, help="Showcase: elements in the tensor.")
    ] = 100_000,
    encrypt: Annotated[bool, typer.Option(help="Showcase: encrypt frame payloads.")] = True,
) -> None:
    """Run a learning swarm and show that learning pays off (or --showcase)."""
    console = Console()
    if showcase_only:
        showcase(console, agents=agents, size=size, encrypt=encrypt, seed=seed)
        return
    try:
        kind = Transport.parse(transport)
        report = _run_with_progress(
            console,
            agents=agents,
            kind=kind,
            tasks=tasks,
            seed=seed,
            sync_interval=sync_interval,
            allocator=allocator,
        )
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: agents told to leave, coordinator stopped")
        raise typer.Exit(130) from None
    except EdgeError as exc:
        console.print(f"[bold red]edge-demo failed ({exc.code}):[/] {exc.message}")
        raise typer.Exit(2) from None
    render_report(console, report)
    raise typer.Exit(0 if report.paid_off else 1)


def _run_with_progress(
    console: Console,
    *,
    agents: int,
    kind: Transport,
    tasks: int,
    seed: int,
    sync_interval: int,
    allocator: str,
) -> DemoReport:
    progress = Progress(
        TextColumn("[bold]tasks"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[ok]}"),
        TimeElapsedColumn(),
        console=console,
    )
    bar = progress.add_task("tasks", total=tasks, ok="")
    recent: list[bool] = []

    def tick(row: TaskRow) -> None:
        recent.append(row.first_try)
        window = recent[-max(10, tasks // 10) :]
        ok = f"success (recent {len(window)}): {_pct(sum(window) / len(window))}"
        progress.update(bar, advance=1, ok=ok)

    demo = run_demo(
        agents=agents,
        transport=kind,
        tasks=tasks,
        seed=seed,
        sync_interval_ms=sync_interval,
        allocator=allocator,
        console=console,
        on_progress=tick,
    )
    with progress:
        return run_loop(demo)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
