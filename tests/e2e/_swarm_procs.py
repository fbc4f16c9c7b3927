"""Child processes for the end-to-end swarm tests, and their parent-side handles.

Children are started with the ``spawn`` method. They import this module by name: pytest
puts ``tests/e2e`` on ``sys.path`` (rootdir-relative "prepend" import mode, no
``__init__.py``) and ``spawn`` hands the parent's ``sys.path`` to the child.

Each child runs one asyncio loop around a :class:`~ruvector_edge.swarm.SwarmAgent` or a
:class:`~ruvector_edge.swarm.Coordinator` and obeys commands from a pipe. The parent sends
``(request_id, command, args)``; the child answers ``("reply", request_id, ok, value)``
(``value`` is ``(type, code, message)`` when the command raised) and pushes
``("event", name, data)`` on its own, e.g. ``("started", (task_id, agent_id))`` when a task
handler begins and ``("ran", (task_id, agent_id))`` when it finishes its work. A child
whose parent vanished (pipe EOF) exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import multiprocessing
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Sequence
from multiprocessing.connection import Connection as Pipe
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from ruvector_edge.config import AgentRole, SwarmConfig
from ruvector_edge.identity import Identity
from ruvector_edge.swarm import Coordinator, SwarmAgent, TaskContext, TaskOutcome
from ruvector_edge.transport import Connection, ReconnectPolicy, connect
from ruvector_edge.transport.shm import shm_paths, stale_segments
from ruvector_edge.wire import (
    ErrorPayload,
    LinkInitiator,
    MessageCodec,
    PongPayload,
    SwarmMessage,
)

__all__ = [
    "SPAWN",
    "TOKEN",
    "AgentSpec",
    "Child",
    "ChildError",
    "ChildGoneError",
    "Children",
    "CoordinatorSpec",
    "FlooderSpec",
    "cleanup_shm",
    "free_port",
    "pong_nonces",
    "raw_join",
    "read_raw",
    "run_agent",
    "run_coordinator",
    "run_flooder",
    "shm_name",
    "tampered",
]

SPAWN = multiprocessing.get_context("spawn")
TOKEN = "e2e-swarm-token"
_names = itertools.count()

Command = Callable[..., Awaitable[Any]]


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """How a child agent is built. ``hold_blocks``: ``hold`` tasks wait for ``release``;
    ``key_seed``: a fixed key (an agent restarted with it keeps its identity)."""

    agent_id: str
    token: str = TOKEN
    capabilities: tuple[str, ...] = ()
    interval_ms: int = 200
    hold_blocks: bool = True
    seed: int = 0
    key_seed: bytes | None = None


@dataclasses.dataclass(frozen=True)
class CoordinatorSpec:
    """How a child coordinator is built (it starts listening on the ``start`` command)."""

    listen: str
    data_dir: str | None = None
    token: str = TOKEN
    interval_ms: int = 200
    agent_id: str = "coord"


@dataclasses.dataclass(frozen=True)
class FlooderSpec:
    """A hostile client: ``agent_id`` it joins as (with a valid token)."""

    agent_id: str
    token: str = TOKEN


# -- helpers --------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shm_name(tag: str = "e2e") -> str:
    """A shared-memory endpoint name unique to this test process."""
    return f"rvx-{tag}-{os.getpid()}-{next(_names)}"


def cleanup_shm(name: str) -> list[str]:
    """Remove what a killed listener on ``shm://name`` may have left; returns the
    segment names that were still there."""
    sock_path, prefix = shm_paths(name)
    left = stale_segments(prefix)
    for seg in left:
        with contextlib.suppress(OSError):
            segment = SharedMemory(name=seg)
            segment.close()
            segment.unlink()
    with contextlib.suppress(OSError):
        sock_path.unlink()
    return left


async def raw_join(
    url: str, agent_id: str, token: str = TOKEN
) -> tuple[ClientConnection, MessageCodec]:
    """A bare WebSocket that completes the JOIN/WELCOME handshake by hand, so it can then
    send any bytes (sealed with the session it negotiated)."""
    ws = await ws_connect(url, compression=None, proxy=None, max_size=None, close_timeout=0.5)
    codec = MessageCodec()
    initiator = LinkInitiator(Identity.generate(agent_id), join_token=token)
    await ws.send(codec.encode(initiator.join_message()))
    (welcome,) = codec.feed(await asyncio.wait_for(ws.recv(decode=False), 10))
    assert isinstance(welcome, SwarmMessage)
    codec.attach_session(initiator.complete(welcome))
    return ws, codec


async def read_raw(
    ws: ClientConnection, codec: MessageCodec, until: Callable[[list[SwarmMessage]], bool]
) -> list[SwarmMessage]:
    """Messages received on a raw link until ``until(messages)`` holds or it closes."""
    out: list[SwarmMessage] = []
    try:
        while not until(out):
            data = await asyncio.wait_for(ws.recv(decode=False), 10)
            out.extend(m for m in codec.feed(data) if isinstance(m, SwarmMessage))
    except ConnectionClosed:
        pass
    return out


def tampered(codec: MessageCodec, msg: SwarmMessage) -> bytes:
    """``msg`` sealed for the session, with one bit of its authentication tag flipped."""
    sealed = bytearray(codec.encode(msg))
    sealed[-1] ^= 0x01
    return bytes(sealed)


def pong_nonces(msgs: Sequence[SwarmMessage]) -> list[int]:
    """The nonces of the PONGs among ``msgs``."""
    return [m.payload.nonce for m in msgs if isinstance(m.payload, PongPayload)]


def _error_value(exc: BaseException) -> tuple[str, str | None, str]:
    return (type(exc).__name__, getattr(exc, "code", None), str(exc))


async def _serve_commands(pipe: Pipe, commands: dict[str, Command], final: str) -> None:
    """Run commands from ``pipe`` (each in its own task) until ``final`` ran or EOF."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[int, str, tuple[Any, ...]] | None] = asyncio.Queue()

    def readable() -> None:
        try:
            while pipe.poll():
                inbox.put_nowait(pipe.recv())
        except (EOFError, OSError):
            loop.remove_reader(pipe.fileno())
            inbox.put_nowait(None)

    async def run(req: int, name: str, args: tuple[Any, ...]) -> None:
        try:
            value = await commands[name](*args)
        except Exception as exc:  # reported to the parent, which decides
            reply: tuple[Any, ...] = ("reply", req, False, _error_value(exc))
        else:
            reply = ("reply", req, True, value)
        with contextlib.suppress(OSError):
            pipe.send(reply)

    loop.add_reader(pipe.fileno(), readable)
    running: set[asyncio.Task[None]] = set()
    while True:
        item = await inbox.get()
        if item is None:  # the parent is gone
            return
        req, name, args = item
        task = asyncio.ensure_future(run(req, name, args))
        running.add(task)
        task.add_done_callback(running.discard)
        if name == final:
            await task
            return


# -- child: agent ---------------------------------------------------------------------------


def run_agent(pipe: Pipe, spec: AgentSpec) -> None:
    """Child entry point: a SwarmAgent driven by commands."""
    asyncio.run(_agent_main(pipe, spec))


async def _agent_main(pipe: Pipe, spec: AgentSpec) -> None:
    me = spec.agent_id
    gates: dict[str, asyncio.Event] = {}

    def emit(name: str, data: Any) -> None:
        with contextlib.suppress(OSError):
            pipe.send(("event", name, data))

    async def work(ctx: TaskContext) -> TaskOutcome:
        emit("ran", (ctx.task.task_id, me))
        return TaskOutcome(result={"by": me})

    async def hold(ctx: TaskContext) -> TaskOutcome:
        tid = ctx.task.task_id
        emit("started", (tid, me))
        if spec.hold_blocks:
            await gates.setdefault(tid, asyncio.Event()).wait()
        emit("ran", (tid, me))
        return TaskOutcome(result={"by": me})

    config = SwarmConfig(
        agent_id=me,
        join_token=spec.token,
        sync_interval_ms=spec.interval_ms,
        heartbeat_interval_ms=spec.interval_ms,
    )
    identity = None if spec.key_seed is None else Identity.from_seed(spec.key_seed, me)
    agent = SwarmAgent(
        config,
        identity=identity,
        capabilities=spec.capabilities,
        handlers={"work": work, "hold": hold},
        reconnect=ReconnectPolicy(initial_delay=0.05, max_delay=0.2, seed=spec.seed),
        seed=spec.seed,
    )

    async def join(url: str, timeout: float = 20.0) -> None:
        await agent.join_swarm(url, timeout=timeout)

    async def learn(state: str, action: str, reward: float, times: int = 1) -> None:
        for _ in range(times):
            agent.learn(state, action, reward)

    async def best(state: str, actions: Sequence[str]) -> tuple[str, float] | None:
        return agent.get_best_action(state, list(actions))

    async def sync(timeout: float = 10.0) -> None:
        await agent.sync_now(timeout)

    async def store(content: str, embedding: list[float]) -> str:
        return agent.store_memory(content, embedding)

    async def search(embedding: list[float], k: int = 3) -> list[tuple[str, float]]:
        return agent.search_memory(embedding, k)

    async def submit(task_type: str, capabilities: Sequence[str] = ()) -> str:
        return await agent.submit_task(
            task_type, {"from": me}, timeout_ms=60_000, required_capabilities=capabilities
        )

    async def wait_task(task_id: str, timeout: float = 20.0) -> dict[str, Any]:
        result = await agent.wait_task(task_id, timeout)
        return {"success": result.success, "result": result.result, "error": result.error}

    async def stats() -> dict[str, Any]:
        return dataclasses.asdict(agent.get_stats())

    async def release(task_id: str) -> None:
        gates.setdefault(task_id, asyncio.Event()).set()

    async def leave() -> None:
        await agent.leave_swarm("test finished")

    commands: dict[str, Command] = {
        "join": join,
        "learn": learn,
        "best": best,
        "sync": sync,
        "store": store,
        "search": search,
        "submit": submit,
        "wait_task": wait_task,
        "stats": stats,
        "release": release,
        "exit": leave,
    }
    try:
        await _serve_commands(pipe, commands, "exit")
    finally:
        with contextlib.suppress(Exception):
            await agent.leave_swarm("child exiting")


# -- child: coordinator ---------------------------------------------------------------------


def run_coordinator(pipe: Pipe, spec: CoordinatorSpec) -> None:
    """Child entry point: a Coordinator (with a data dir) driven by commands."""
    asyncio.run(_coordinator_main(pipe, spec))


async def _coordinator_main(pipe: Pipe, spec: CoordinatorSpec) -> None:
    config = SwarmConfig(
        agent_id=spec.agent_id,
        agent_role=AgentRole.COORDINATOR,
        sync_interval_ms=spec.interval_ms,
        heartbeat_interval_ms=spec.interval_ms,
        join_token=spec.token,
        data_dir=None if spec.data_dir is None else Path(spec.data_dir),
    )
    coordinator = Coordinator(config, listen=spec.listen)

    async def start() -> str:
        await coordinator.start()
        return coordinator.url

    async def stats() -> dict[str, Any]:
        return dataclasses.asdict(coordinator.stats())

    async def tasks() -> dict[str, dict[str, Any]]:
        return {
            rec.task_id: {**rec.summary(), "history": list(rec.history)}
            for rec in coordinator.tasks.records()
        }

    async def best(state: str, actions: Sequence[str]) -> tuple[str, float] | None:
        return coordinator.intelligence.get_best_action(state, list(actions))

    async def search(embedding: list[float], k: int = 3) -> list[str]:
        hits = coordinator.memory.search(np.asarray(embedding, dtype=np.float32), k)
        return [h.content for h in hits]

    async def stop() -> None:
        await coordinator.stop()

    commands: dict[str, Command] = {
        "start": start,
        "stats": stats,
        "tasks": tasks,
        "best": best,
        "search": search,
        "exit": stop,
    }
    try:
        await _serve_commands(pipe, commands, "exit")
    finally:
        with contextlib.suppress(Exception):
            await coordinator.stop()


# -- child: flooder -------------------------------------------------------------------------


def run_flooder(pipe: Pipe, spec: FlooderSpec) -> None:
    """Child entry point: an admitted client that floods the coordinator with junk."""
    asyncio.run(_flooder_main(pipe, spec))


async def _flooder_main(pipe: Pipe, spec: FlooderSpec) -> None:
    me = spec.agent_id
    raw: list[tuple[ClientConnection, MessageCodec]] = []
    links: list[Connection] = []

    async def join_raw(url: str) -> None:
        raw.append(await raw_join(url, me, spec.token))

    async def flood_frames(count: int, alive_every: int = 100) -> int:
        """One valid PING, then ``count`` frames alternating bad tags and its replays, with
        a fresh valid PING after every ``alive_every`` of them (so the coordinator's
        heartbeat rule does not drop the link for silence); returns the valid ones sent."""
        ws, codec = raw[0]
        first = codec.encode(SwarmMessage.ping(me, nonce=0))
        await ws.send(first)
        valid = 1
        for i in range(count):
            await ws.send(first if i % 2 else tampered(codec, SwarmMessage.ping(me, nonce=i)))
            if (i + 1) % alive_every == 0:
                await ws.send(codec.encode(SwarmMessage.ping(me, nonce=count + valid)))
                valid += 1
        return valid

    async def garbage() -> dict[str, list[Any]]:
        """Bytes that are no frame at all; what came back until the link closed."""
        ws, codec = raw[0]
        await ws.send(b"\x00\x01 not a frame at all \xff" * 8)
        got = await read_raw(ws, codec, lambda ms: False)
        return {
            "errors": [m.payload.code for m in got if isinstance(m.payload, ErrorPayload)],
            "pongs": pong_nonces(got),
        }

    async def join_link(url: str) -> None:
        links.append(await connect(url, Identity.generate(me), join_token=spec.token))

    async def flood_forged(count: int, claimed: str) -> int:
        """``count`` well-sealed PINGs whose sender is ``claimed`` (not this client)."""
        for i in range(count):
            await links[0].send(SwarmMessage.ping(claimed, nonce=i))
        return count

    async def drain(count: int) -> dict[str, int]:
        """Read ``count`` messages; how many ERRORs of each code they were."""
        codes: dict[str, int] = {}
        for _ in range(count):
            msg = await links[0].recv(timeout=10)
            code = msg.payload.code if isinstance(msg.payload, ErrorPayload) else msg.type.value
            codes[code] = codes.get(code, 0) + 1
        return codes

    async def leave() -> None:
        for ws, _ in raw:
            await ws.close()
        for link in links:
            await link.close()

    commands: dict[str, Command] = {
        "join_raw": join_raw,
        "flood_frames": flood_frames,
        "garbage": garbage,
        "join_link": join_link,
        "flood_forged": flood_forged,
        "drain": drain,
        "exit": leave,
    }
    await _serve_commands(pipe, commands, "exit")


# -- parent side ----------------------------------------------------------------------------


class ChildGoneError(Exception):
    """The child process ended (or closed its pipe) before answering."""


class ChildError(Exception):
    """A command raised in the child: ``kind`` (exception type name), ``code``, message."""

    def __init__(self, kind: str, code: str | None, message: str) -> None:
        super().__init__(f"{kind}({code}): {message}")
        self.kind = kind
        self.code = code


class Child:
    """A spawned child driven through its pipe; create inside a running event loop."""

    def __init__(self, name: str, target: Callable[[Pipe, Any], None], spec: object) -> None:
        self.name = name
        parent_end, child_end = SPAWN.Pipe()
        self.process = SPAWN.Process(target=target, args=(child_end, spec), name=name, daemon=True)
        self.process.start()
        child_end.close()
        self._pipe = parent_end
        self._loop = asyncio.get_running_loop()
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[Any]] = {}
        self._changed = asyncio.Event()
        self.events: list[tuple[str, Any]] = []
        self.gone = False
        self._loop.add_reader(parent_end.fileno(), self._readable)

    def __repr__(self) -> str:
        return f"<Child {self.name} pid={self.process.pid} gone={self.gone}>"

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self.process.pid is not None
        return self.process.pid

    def _readable(self) -> None:
        try:
            while self._pipe.poll():
                msg = self._pipe.recv()
                if msg[0] == "reply":
                    _, req, ok, value = msg
                    fut = self._replies.pop(req, None)
                    if fut is not None and not fut.done():
                        if ok:
                            fut.set_result(value)
                        else:
                            fut.set_exception(ChildError(*value))
                else:
                    self.events.append((msg[1], msg[2]))
        except (EOFError, OSError):
            self._mark_gone()
        self._changed.set()
        self._changed = asyncio.Event()

    def _mark_gone(self) -> None:
        if self.gone:
            return
        self.gone = True
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self._pipe.fileno())
        for fut in self._replies.values():
            if not fut.done():
                fut.set_exception(ChildGoneError(f"{self.name} ended before answering"))
        self._replies.clear()

    async def call(self, command: str, *args: Any, timeout: float = 30.0) -> Any:
        """Run ``command(*args)`` in the child and return its value (``ChildError`` if it
        raised, ``ChildGoneError`` if the child died, ``TimeoutError`` after ``timeout``)."""
        if self.gone:
            raise ChildGoneError(f"{self.name} is gone")
        req = next(self._ids)
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._replies[req] = fut
        try:
            self._pipe.send((req, command, args))
        except OSError as exc:
            self._replies.pop(req, None)
            raise ChildGoneError(f"{self.name}: {exc}") from exc
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._replies.pop(req, None)

    def events_named(self, name: str) -> list[Any]:
        """The data of every event called ``name``, in arrival order."""
        return [data for ev, data in self.events if ev == name]

    async def wait_event(self, name: str, data: Any, timeout: float = 30.0) -> None:
        """Wait until the child pushed event ``(name, data)``."""
        async with asyncio.timeout(timeout):
            while (name, data) not in self.events:
                if self.gone:
                    raise ChildGoneError(f"{self.name} ended; events so far: {self.events}")
                await self._changed.wait()

    async def kill(self) -> None:
        """SIGKILL the child and reap it."""
        if self.process.is_alive():
            os.kill(self.pid, signal.SIGKILL)
        await asyncio.to_thread(self.process.join, 30)
        # Drain what it sent before dying, then note the pipe's end.
        self._readable()
        self._mark_gone()

    async def close(self) -> None:
        """Ask the child to exit (leave / stop), kill it if it does not, release the pipe."""
        if self.process.is_alive() and not self.gone:
            with contextlib.suppress(Exception):
                await self.call("exit", timeout=10)
            await asyncio.to_thread(self.process.join, 10)
        if self.process.is_alive():
            os.kill(self.pid, signal.SIGKILL)
            await asyncio.to_thread(self.process.join, 30)
        self._mark_gone()
        self._pipe.close()


class Children:
    """Every child a test started; ``close()`` ends them all (use in a fixture)."""

    def __init__(self) -> None:
        self.agents: list[Child] = []
        self.coordinators: list[Child] = []

    def agent(self, spec: AgentSpec) -> Child:
        """Spawn an agent child (it joins on the ``join`` command)."""
        child = Child(spec.agent_id, run_agent, spec)
        self.agents.append(child)
        return child

    def flooder(self, spec: FlooderSpec) -> Child:
        """Spawn a hostile client child (counted with the agents)."""
        child = Child(spec.agent_id, run_flooder, spec)
        self.agents.append(child)
        return child

    def coordinator(self, spec: CoordinatorSpec, name: str = "coordinator") -> Child:
        """Spawn a coordinator child (it listens on the ``start`` command)."""
        child = Child(name, run_coordinator, spec)
        self.coordinators.append(child)
        return child

    async def close(self) -> None:
        """End every child (agents first, so coordinators see them leave)."""
        for group in (self.agents, self.coordinators):
            await asyncio.gather(*(c.close() for c in group), return_exceptions=True)
