"""``SwarmAgent``: joins a coordinator, learns, shares what it learns, runs tasks.

The seed's API (DESIGN.md §5): local state calls are synchronous (``learn``,
``get_best_action``, ``store_memory``, ``search_memory``, ``get_peers``, ``get_stats``);
anything that touches the network is ``async`` (``join_swarm``, ``leave_swarm``,
``send_message``, ``broadcast``, ``submit_task``).

Background work while joined:

* a receive loop answering the coordinator (tasks, sync deltas, ACKs, leader changes);
* a sync loop every ``sync_interval_ms``: sends this agent's own new patterns and
  memories (SYNC_PATTERNS / SYNC_MEMORIES, kept until ACKed, resent after a reconnect)
  and asks for what others learned (REQUEST_PATTERNS with its version vector,
  REQUEST_MEMORIES with the coordinator memory version it has seen);
* heartbeats (PING) when nothing else was sent for a heartbeat interval;
* reconnection with jittered exponential backoff; a refused JOIN is not retried.

Roles: WORKER runs tasks; SCOUT runs tasks with three times the exploration and files
what it saw into shared memory; SPECIALIST accepts only tasks matching its capabilities;
COORDINATOR-role agents are clients that never receive tasks (the ``edge-agent`` CLI
runs a :class:`~ruvector_edge.swarm.Coordinator` for that role).

Tasks run in handlers registered per task type (``"*"`` catches all); a handler gets a
:class:`TaskContext` and returns a :class:`TaskOutcome` (or any value, meaning success).
An outcome with ``action`` and ``reward`` is learned as ``(task:<type>, action)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from numpy.typing import ArrayLike

from ruvector_edge.config import AgentRole, SwarmConfig
from ruvector_edge.errors import (
    AuthError,
    ConfigError,
    EdgeError,
    InvalidInputError,
    TransportError,
    TransportTimeoutError,
)
from ruvector_edge.identity import Identity
from ruvector_edge.learning import IntelligenceSync
from ruvector_edge.memory import VectorMemory, hash_embedding
from ruvector_edge.sona import AgentExport, encode_export
from ruvector_edge.swarm.allocation import Candidate, eligible
from ruvector_edge.swarm.protocol import (
    COORDINATORS_TOPIC,
    ROSTER_TOPIC,
    ErrorCode,
    PeerInfo,
    task_state,
)
from ruvector_edge.transport import (
    Connection,
    ConnectionClosedError,
    ReconnectPolicy,
    TransportOptions,
    connect,
)
from ruvector_edge.wire import (
    AckPayload,
    CoordinatorPayload,
    DataPayload,
    ErrorPayload,
    MessageType,
    RequestMemoriesPayload,
    SwarmMessage,
    SyncMemoriesPayload,
    SyncPatternsPayload,
    TaskPayload,
    TaskResultPayload,
)

__all__ = [
    "AgentStats",
    "MessageHandler",
    "SwarmAgent",
    "TaskContext",
    "TaskHandler",
    "TaskOutcome",
]

logger = logging.getLogger("ruvector_edge.swarm.agent")

_EXPLORATION = {
    AgentRole.WORKER: 0.1,
    AgentRole.SCOUT: 0.3,
    AgentRole.SPECIALIST: 0.05,
    AgentRole.COORDINATOR: 0.0,
}
_PATTERNS_FILE = "patterns.blob"
_KEY_FILE = "agent.key"
_RESULT_CACHE = 10_000
_SAVE_EVERY = 5.0  # seconds between pattern snapshots in data_dir while running
_MAX_COORDINATOR_URLS = 16  # failover candidates taken from one coordinator list


@dataclasses.dataclass(slots=True)
class TaskOutcome:
    """What a task handler returns: success, a result, and what to learn from it."""

    success: bool = True
    result: Any = None
    reward: float | None = None
    action: str | None = None
    error: str | None = None


class TaskContext:
    """Handed to a task handler: the task, the agent, and learning helpers."""

    def __init__(self, agent: SwarmAgent, task: TaskPayload) -> None:
        self.agent = agent
        self.task = task

    @property
    def state(self) -> str:
        """The learning state of this task type (``task:<type>``)."""
        return task_state(self.task.task_type)

    @property
    def exploration(self) -> float:
        """This agent's exploration rate (by role unless set explicitly)."""
        return self.agent.exploration

    def choose(self, actions: Sequence[str]) -> str:
        """Epsilon-greedy choice among ``actions`` from what the whole swarm learned.

        Untried actions are preferred over exploiting (the swarm's knowledge decides
        which are tried), then the best known action with probability ``1 - exploration``.
        """
        if not actions:
            raise InvalidInputError("choose() needs at least one action")
        rng = self.agent.rng
        if rng.random() < self.exploration:
            return rng.choice(list(actions))
        best = self.agent.get_best_action(self.state, actions)
        if best is None:
            return rng.choice(list(actions))
        untried = [a for a in actions if self.agent.intelligence.get_pattern(self.state, a) is None]
        if untried and rng.random() < self.exploration * 2:
            return rng.choice(untried)
        return best[0]

    def remember(self, content: str, metadata: Mapping[str, Any] | None = None) -> str:
        """File ``content`` into (shared) memory under a hash embedding; returns its id."""
        meta = {"task_type": self.task.task_type, "agent": self.agent.agent_id}
        meta.update(metadata or {})
        return self.agent.store_memory(
            content, hash_embedding(content, self.agent.memory_dim), meta
        )


TaskHandler = Callable[[TaskContext], Awaitable[Any]]
"""Runs one task: ``async def handler(ctx: TaskContext) -> TaskOutcome | Any``."""
MessageHandler = Callable[[SwarmMessage], Awaitable[None] | None]
"""Receives DATA messages of one topic."""


@dataclasses.dataclass(slots=True)
class AgentStats:
    """``SwarmAgent.get_stats()``: identity, link, learning, memory and task counters."""

    agent_id: str
    role: str
    connected: bool
    coordinator: str | None
    coordinator_url: str | None
    patterns: int
    pattern_origins: int
    local_version: int
    memories: int
    tasks_completed: int
    tasks_failed: int
    tasks_running: int
    pattern_syncs_sent: int
    pattern_syncs_received: int
    memory_syncs_sent: int
    memory_syncs_received: int
    last_sync_rtt_ms: float | None
    messages_in: int
    messages_out: int
    reconnects: int
    errors_received: dict[str, int]


@dataclasses.dataclass(slots=True)
class _Pending:
    kind: str
    version: int
    sent_at: float


class SwarmAgent:
    """A swarm member. ``agent = SwarmAgent(config); await agent.join_swarm(url)``.

    Args:
        config: settings (``agent_id``, ``agent_role``, ``coordinator_url``,
            ``sync_interval_ms``, ``heartbeat_interval_ms``, ``join_token``,
            ``enable_learning``, ``enable_memory_sync``, ``data_dir``).
        identity: this agent's key (default: ``data_dir/agent.key`` or a fresh key).
        capabilities: what this agent can do (capability match, specialists).
        handlers: ``{task_type: handler}``; more with :meth:`register_handler`.
        exploration: overrides the role's exploration rate.
        memory_dim: dimension of :meth:`TaskContext.remember` embeddings.
        max_concurrent_tasks: tasks run at once.
        reconnect: backoff for redialling the coordinator.
        options: transport options (default from ``config``).
        seed: RNG seed for exploration (reproducible runs).
    """

    def __init__(
        self,
        config: SwarmConfig | None = None,
        *,
        identity: Identity | None = None,
        capabilities: Sequence[str] = (),
        handlers: Mapping[str, TaskHandler] | None = None,
        exploration: float | None = None,
        memory_dim: int = 64,
        memory_max_entries: int = 100_000,
        max_concurrent_tasks: int = 4,
        reconnect: ReconnectPolicy | None = None,
        options: TransportOptions | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config or SwarmConfig()
        self.agent_id = self.config.agent_id
        self.role = self.config.agent_role
        self.capabilities = tuple(dict.fromkeys(capabilities))
        if exploration is not None and not 0.0 <= exploration <= 1.0:
            raise ConfigError(f"exploration must be within [0, 1], got {exploration}")
        self.exploration = _EXPLORATION[self.role] if exploration is None else exploration
        if max_concurrent_tasks < 1:
            raise ConfigError(f"max_concurrent_tasks must be >= 1, got {max_concurrent_tasks}")
        self.memory_dim = memory_dim
        self.rng = random.Random(seed)
        self.reconnect_policy = reconnect or ReconnectPolicy(
            initial_delay=0.1, max_delay=5.0, seed=seed
        )
        data_dir = self.config.data_dir
        if identity is None:
            if data_dir is not None:
                data_dir.mkdir(parents=True, exist_ok=True)
                identity = Identity.load_or_create(data_dir / _KEY_FILE, self.agent_id)
            else:
                identity = Identity.generate(self.agent_id)
        self.identity = identity
        self.intelligence = self._load_patterns(data_dir)
        self.memory = VectorMemory(
            self.agent_id,
            memory_max_entries,
            data_dir=None if data_dir is None else data_dir / "memory",
        )
        self.options = options or TransportOptions.from_config(self.config)
        self.handlers: dict[str, TaskHandler] = dict(handlers or {})
        self._message_handlers: dict[str, list[MessageHandler]] = {}
        self._slots = asyncio.Semaphore(max_concurrent_tasks)
        self._urls: list[str] = []
        self._conn: Connection | None = None
        self._coordinator_id: str | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._bg: set[asyncio.Task[Any]] = set()
        self._leaving = False
        self._joined = False
        self._fatal: EdgeError | None = None
        self._connected = asyncio.Event()
        self._warm = asyncio.Event()
        # Kinds ("patterns", "memories") the coordinator pushes on this link after our
        # first request was answered; no per-interval pull for those.
        self._subscribed: set[str] = set()
        # sync state
        self._acked_patterns = 0
        self._acked_memory = 0
        self._coord_memory_seen = 0
        self._pending: dict[str, _Pending] = {}
        self._requests: dict[str, tuple[str, float]] = {}  # msg id -> (kind, sent at)
        self._last_sent = 0.0
        self._sync_rtt: float | None = None
        self._answered = asyncio.Event()  # set whenever a sync or pull gets its answer
        self._saved_at = 0.0
        self._saved_version = self.intelligence.local_version
        # tasks
        self._running: dict[str, asyncio.Task[None]] = {}
        self._completed: OrderedDict[str, TaskResultPayload] = OrderedDict()
        self._unacked: set[str] = set()  # task ids whose result the coordinator has not ACKed
        self._result_msgs: dict[str, str] = {}  # TASK_RESULT msg id -> task id
        self._submit_acks: dict[str, asyncio.Future[str]] = {}
        self._results: dict[str, asyncio.Future[TaskResultPayload]] = {}
        self._roster: list[PeerInfo] = []
        self._roster_waiters: list[asyncio.Future[None]] = []
        # counters
        self._done = 0
        self._failed = 0
        self._pattern_sent = 0
        self._pattern_recv = 0
        self._memory_sent = 0
        self._memory_recv = 0
        self._reconnects = 0
        self._errors: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"SwarmAgent({self.agent_id!r}, role={self.role.value}, connected={self.connected})"

    # ================================================================ local state (sync)
    def learn(self, state: str, action: str, reward: float) -> None:
        """Record that ``action`` in ``state`` earned ``reward`` (shared on the next sync)."""
        if not self.config.enable_learning:
            return
        self.intelligence.update_pattern(state, action, reward)

    def get_best_action(self, state: str, actions: Sequence[str]) -> tuple[str, float] | None:
        """The swarm's best known action in ``state`` with its confidence, or None."""
        return self.intelligence.get_best_action(state, actions)

    def store_memory(
        self,
        content: str,
        embedding: ArrayLike,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Store a memory (shared with the swarm on the next sync); returns its id."""
        return self.memory.store(content, np.asarray(embedding, dtype=np.float32), metadata)

    def search_memory(
        self, embedding: ArrayLike, k: int = 5, **kwargs: Any
    ) -> list[tuple[str, float]]:
        """The ``k`` most similar memories as ``(content, score)``, best first."""
        hits = self.memory.search(np.asarray(embedding, dtype=np.float32), k, **kwargs)
        return [(h.content, h.score) for h in hits]

    def get_peers(self) -> list[PeerInfo]:
        """The last roster received (``await refresh_peers()`` asks for a fresh one)."""
        return list(self._roster)

    def get_stats(self) -> AgentStats:
        """Counters of this agent."""
        swarm = self.intelligence.get_swarm_stats()
        conn = self._conn
        return AgentStats(
            agent_id=self.agent_id,
            role=self.role.value,
            connected=self.connected,
            coordinator=self._coordinator_id,
            coordinator_url=self._urls[0] if self._urls else None,
            patterns=swarm.total_patterns,
            pattern_origins=len(self.intelligence.version_vector()),
            local_version=swarm.local_version,
            memories=self.memory.stats().entries,
            tasks_completed=self._done,
            tasks_failed=self._failed,
            tasks_running=len(self._running),
            pattern_syncs_sent=self._pattern_sent,
            pattern_syncs_received=self._pattern_recv,
            memory_syncs_sent=self._memory_sent,
            memory_syncs_received=self._memory_recv,
            last_sync_rtt_ms=None if self._sync_rtt is None else self._sync_rtt * 1000.0,
            messages_in=conn.stats.messages_in if conn is not None else 0,
            messages_out=conn.stats.messages_out if conn is not None else 0,
            reconnects=self._reconnects,
            errors_received=dict(self._errors),
        )

    def register_handler(self, task_type: str, handler: TaskHandler) -> None:
        """Run ``handler`` for tasks of ``task_type`` (``"*"``: any type without its own)."""
        self.handlers[task_type] = handler

    def on_message(self, topic: str, handler: MessageHandler) -> None:
        """Call ``handler(msg)`` for every DATA message on ``topic`` (``"*"``: all topics)."""
        self._message_handlers.setdefault(topic, []).append(handler)

    @property
    def connected(self) -> bool:
        """Whether the link to the coordinator is open."""
        return self._conn is not None and self._conn.is_open

    @property
    def coordinator_id(self) -> str | None:
        """The id of the coordinator this agent is connected to."""
        return self._coordinator_id

    # ================================================================ joining and leaving
    async def join_swarm(
        self, url: str | Sequence[str] | None = None, *, timeout: float = 15.0
    ) -> None:
        """Connect to the coordinator (first reachable of ``url``s), pull the swarm's
        knowledge (warm start), and start the background loops.

        Raises ``AuthError`` if the JOIN is refused, ``TransportError`` if no coordinator
        answers within ``timeout``.
        """
        if self._joined:
            raise InvalidInputError(f"{self.agent_id} has already joined; leave_swarm() first")
        urls = [url] if isinstance(url, str) else list(url or [])
        if not urls and self.config.coordinator_url:
            urls = [u.strip() for u in self.config.coordinator_url.split(",") if u.strip()]
        if not urls:
            raise ConfigError(
                "no coordinator to join: pass a URL or set coordinator_url / SWARM_COORDINATOR"
            )
        self._urls = urls
        self._leaving = False
        self._fatal = None
        conn = await self._dial_any(deadline=asyncio.get_running_loop().time() + timeout)
        self._joined = True
        self._attach(conn)
        self._supervisor = asyncio.ensure_future(self._supervise())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._warm.wait(), timeout)

    async def leave_swarm(self, reason: str = "leaving") -> None:
        """Send LEAVE, flush, stop the loops, persist state (with a data dir)."""
        if not self._joined:
            self._close_local()
            return
        self._leaving = True
        for task in list(self._running.values()):
            task.cancel()
        conn = self._conn
        if conn is not None and conn.is_open:
            with contextlib.suppress(EdgeError):
                await self._flush_sync(conn)
                await conn.send(SwarmMessage.leave(self.agent_id, reason))
            await conn.close(reason)
        tasks: list[asyncio.Task[Any]] = list(self._bg)
        if self._supervisor is not None:
            tasks.append(self._supervisor)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._joined = False
        self._conn = None
        self._close_local()

    async def __aenter__(self) -> SwarmAgent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.leave_swarm()

    def save_state(self) -> None:
        """Write learned patterns to ``data_dir`` (memories persist on every write)."""
        data_dir = self.config.data_dir
        if data_dir is None:
            return
        tmp = data_dir / (_PATTERNS_FILE + ".tmp")
        tmp.write_bytes(self.intelligence.serialize_state())
        os.replace(tmp, data_dir / _PATTERNS_FILE)

    def _close_local(self) -> None:
        with contextlib.suppress(EdgeError, OSError):
            self.save_state()
        with contextlib.suppress(EdgeError):
            self.memory.flush() if self.config.data_dir is not None else None

    def _load_patterns(self, data_dir: Path | None) -> IntelligenceSync:
        if data_dir is not None and (data_dir / _PATTERNS_FILE).exists():
            try:
                return IntelligenceSync.restore(
                    (data_dir / _PATTERNS_FILE).read_bytes(), agent_id=self.agent_id
                )
            except EdgeError as exc:
                logger.error("ignoring unreadable %s: %s", data_dir / _PATTERNS_FILE, exc)
        return IntelligenceSync(self.agent_id)

    async def _dial_any(self, deadline: float) -> Connection:
        loop = asyncio.get_running_loop()
        delays = self.reconnect_policy.delays()
        last: Exception | None = None
        while True:
            for url in list(self._urls):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    conn = await connect(
                        url,
                        self.identity,
                        role=self.role,
                        capabilities=self.capabilities,
                        join_token=self.config.join_token,
                        options=self.options.replace(
                            reconnect=None, connect_timeout=max(0.05, min(remaining, 10.0))
                        ),
                    )
                except AuthError:
                    raise
                except (TransportError, EdgeError, OSError) as exc:
                    last = exc
                    continue
                if url != self._urls[0]:  # remember the one that answered
                    self._urls.remove(url)
                    self._urls.insert(0, url)
                return conn
            delay = next(delays, None)
            if delay is None or loop.time() + delay >= deadline:
                raise TransportError(
                    f"no coordinator reachable at {', '.join(self._urls)}: {last}",
                    code="connect_failed",
                )
            await asyncio.sleep(delay)

    def _attach(self, conn: Connection) -> None:
        assert conn.peer is not None
        if conn.peer.agent_id != self._coordinator_id:
            self._coord_memory_seen = 0  # another coordinator: its versions mean other things
        self._conn = conn
        self._coordinator_id = conn.peer.agent_id
        # Send every own entry once per link: the coordinator may have lost state (no data
        # dir) or be another one after a failover. Merging is idempotent, so this is safe.
        self._acked_patterns = 0
        self._acked_memory = 0
        self._pending.clear()
        self._requests.clear()
        self._subscribed.clear()
        self._connected.set()
        logger.info("%s joined %s via %s", self.agent_id, self._coordinator_id, conn.url)
        # Results not yet acknowledged by the coordinator are sent again.
        self._result_msgs.clear()
        for task_id in list(self._unacked):
            self._send_result(conn, task_id)

    async def _supervise(self) -> None:
        """Run the session loops; redial when the link drops, until leaving."""
        loop = asyncio.get_running_loop()
        while not self._leaving:
            conn = self._conn
            assert conn is not None
            sync = asyncio.ensure_future(self._sync_loop(conn))
            try:
                await self._recv_loop(conn)
            finally:
                sync.cancel()
                with contextlib.suppress(asyncio.CancelledError, EdgeError):
                    await sync
            if self._stopping():
                return
            self._connected.clear()
            logger.info(
                "%s lost its coordinator link (%s); reconnecting", self.agent_id, conn.close_reason
            )
            while not self._leaving:
                try:
                    new = await self._dial_any(deadline=loop.time() + 3600.0)
                except AuthError as exc:
                    self._fatal = exc
                    logger.error(
                        "%s: the coordinator refused to re-admit us: %s", self.agent_id, exc
                    )
                    return
                except EdgeError as exc:
                    logger.info("%s: reconnect failed: %s", self.agent_id, exc)
                    continue
                self._reconnects += 1
                self._attach(new)
                break

    def _stopping(self) -> bool:
        return self._leaving

    # ================================================================ receiving
    async def _recv_loop(self, conn: Connection) -> None:
        async for msg in conn:
            try:
                await self._handle(conn, msg)
            except EdgeError as exc:
                logger.warning(
                    "%s: bad %s from coordinator: %s", self.agent_id, msg.type.value, exc
                )

    async def _handle(self, conn: Connection, msg: SwarmMessage) -> None:
        p = msg.payload
        match msg.type:
            case MessageType.ACK:
                assert isinstance(p, AckPayload)
                self._on_ack(p)
            case MessageType.SYNC_PATTERNS:
                assert isinstance(p, SyncPatternsPayload)
                if msg.sender == self._coordinator_id:
                    # If a push cannot be merged, pull again with the full version vector.
                    self._subscribed.discard("patterns")
                    # The coordinator wrote this blob and sent it on this authenticated link
                    # (merge checks the blob's author is the sender), so the link's AEAD
                    # already proves where it came from; its signature matters to relays.
                    self.intelligence.merge_peer_state(msg.sender, p.data)
                    self._pattern_recv += 1
                    self._answered_request("patterns")
                    self._warm.set()
            case MessageType.SYNC_MEMORIES:
                assert isinstance(p, SyncMemoriesPayload)
                if msg.sender == self._coordinator_id:
                    self._subscribed.discard("memories")
                    self.memory.merge(p.data)
                    self._coord_memory_seen = max(self._coord_memory_seen, p.version)
                    self._memory_recv += 1
                    self._answered_request("memories")
            case MessageType.BROADCAST_TASK:
                assert isinstance(p, TaskPayload)
                self._on_task(conn, p)
            case MessageType.TASK_RESULT:
                assert isinstance(p, TaskResultPayload)
                fut = self._results.get(p.task_id)
                if fut is None:
                    fut = self._results[p.task_id] = asyncio.get_running_loop().create_future()
                if not fut.done():
                    fut.set_result(p)
                while len(self._results) > _RESULT_CACHE:  # oldest results first
                    self._results.pop(next(iter(self._results)))
            case MessageType.ERROR:
                assert isinstance(p, ErrorPayload)
                self._on_error(p)
            case MessageType.COORDINATOR:
                assert isinstance(p, CoordinatorPayload)
                self._on_leader(conn, p)
            case MessageType.DATA:
                assert isinstance(p, DataPayload)
                await self._on_data(msg, p)
            case MessageType.PING:
                self._send(
                    conn, SwarmMessage.pong(self.agent_id, msg.sender, 0, len(self._running))
                )
            case _:
                pass

    def _on_ack(self, p: AckPayload) -> None:
        self._answered.set()
        pending = self._pending.pop(p.ack_id, None)
        if pending is not None:
            self._sync_rtt = time.monotonic() - pending.sent_at
            if pending.kind == "patterns":
                self._acked_patterns = max(self._acked_patterns, pending.version)
            elif pending.kind == "memories":
                self._acked_memory = max(self._acked_memory, pending.version)
            return
        request = self._requests.pop(p.ack_id, None)
        if request is not None:
            self._subscribed.add(request[0])
            self._warm.set()  # "up-to-date": nothing newer than what this agent has
            return
        task_id = self._result_msgs.pop(p.ack_id, None)
        if task_id is not None:
            self._unacked.discard(task_id)
            return
        fut = self._submit_acks.pop(p.ack_id, None)
        if fut is not None and not fut.done():
            fut.set_result(p.detail)

    def _on_error(self, p: ErrorPayload) -> None:
        self._errors[p.code] = self._errors.get(p.code, 0) + 1
        if p.code == ErrorCode.TASK_CANCELLED and p.ref_id in self._running:
            self._running[p.ref_id].cancel()
            return
        if p.ref_id is not None:
            fut = self._submit_acks.pop(p.ref_id, None)
            if fut is not None and not fut.done():
                fut.set_exception(EdgeError(p.message, code=p.code))
                return
            self._pending.pop(p.ref_id, None)
            self._requests.pop(p.ref_id, None)
            self._answered.set()
        logger.warning("%s: coordinator error %s: %s", self.agent_id, p.code, p.message)

    def _on_leader(self, conn: Connection, p: CoordinatorPayload) -> None:
        if p.coordinator_id == self._coordinator_id or not p.url:
            return
        logger.info(
            "%s: %s leads term %d at %s; moving there",
            self.agent_id,
            p.coordinator_id,
            p.term,
            p.url,
        )
        if p.url in self._urls:
            self._urls.remove(p.url)
        self._urls.insert(0, p.url)
        self._spawn(conn.close(f"moving to leader {p.coordinator_id}"))

    async def _on_data(self, msg: SwarmMessage, p: DataPayload) -> None:
        if p.topic == COORDINATORS_TOPIC and msg.sender == self._coordinator_id:
            try:
                urls = msgspec.convert(p.data, list[str])
            except msgspec.ValidationError as exc:
                raise InvalidInputError(f"bad coordinator list: {exc}") from None
            # Failover candidates go after the ones we already know (tried in order).
            self._urls.extend(u for u in urls[:_MAX_COORDINATOR_URLS] if u not in self._urls)
            return
        if p.topic == ROSTER_TOPIC and msg.sender == self._coordinator_id:
            try:
                self._roster = msgspec.convert(p.data, list[PeerInfo])
            except msgspec.ValidationError as exc:
                raise InvalidInputError(f"bad roster: {exc}") from None
            for fut in self._roster_waiters:
                if not fut.done():
                    fut.set_result(None)
            self._roster_waiters.clear()
            return
        for handler in [
            *self._message_handlers.get(p.topic, ()),
            *self._message_handlers.get("*", ()),
        ]:
            try:
                made = handler(msg)
                if made is not None:
                    await made
            except Exception:
                logger.exception("%s: message handler for %r failed", self.agent_id, p.topic)

    # ================================================================ syncing
    async def _sync_loop(self, conn: Connection) -> None:
        interval = self.config.sync_interval_ms / 1000.0
        heartbeat_ms = self.config.heartbeat_interval_ms
        if conn.welcome is not None and conn.welcome.heartbeat_interval_ms:
            # The coordinator declares an agent failed after three of *its* intervals.
            heartbeat_ms = min(heartbeat_ms, conn.welcome.heartbeat_interval_ms)
        heartbeat = heartbeat_ms / 1000.0
        next_sync = 0.0
        while conn.is_open:
            now = time.monotonic()
            if now >= next_sync:
                self._sync_once(conn, now, interval)
                next_sync = now + interval
            if now - self._last_sent >= heartbeat:
                self._send(conn, SwarmMessage.ping(self.agent_id, 0, float(len(self._running))))
            await asyncio.sleep(
                max(0.005, min(next_sync, self._last_sent + heartbeat) - time.monotonic())
            )

    def _sync_once(
        self, conn: Connection, now: float, interval: float, *, pull: bool = False
    ) -> None:
        """Send own changes; ask for the swarm's unless the coordinator pushes them
        (``pull`` asks anyway)."""
        if (
            self.config.data_dir is not None
            and now - self._saved_at >= _SAVE_EVERY
            and self.intelligence.local_version != self._saved_version
        ):
            self._saved_version = self.intelligence.local_version
            self._saved_at = now
            with contextlib.suppress(OSError, EdgeError):
                self.save_state()
        stale = now - 5 * interval
        for mid, pend in list(self._pending.items()):
            if pend.sent_at < stale:
                del self._pending[mid]  # lost in a reconnect: send again below
        for mid, (_, sent) in list(self._requests.items()):
            if sent < stale:
                del self._requests[mid]
        asked = {kind for kind, _ in self._requests.values()}
        kinds = {p.kind for p in self._pending.values()}
        if self.config.enable_learning and "patterns" not in kinds:
            version = self.intelligence.local_version
            if version > self._acked_patterns:
                data = self.intelligence.get_own_delta(self._acked_patterns)
                msg = SwarmMessage.sync_patterns(
                    self.agent_id, data, version=version, recipient=self._coordinator_id
                )
                if self._send(conn, msg):
                    self._pending[msg.id] = _Pending("patterns", version, now)
                    self._pattern_sent += 1
        mem_due = self.config.enable_memory_sync and "memories" not in kinds
        if mem_due and self.memory.version > self._acked_memory:
            delta = self.memory.export_delta(self._acked_memory, owner=self.agent_id, limit=2000)
            if delta.entries + delta.tombstones == 0:
                self._acked_memory = delta.version
            else:
                payload = SyncMemoriesPayload(
                    data=delta.data,
                    version=delta.version,
                    entry_count=delta.entries + delta.tombstones,
                    origin=self.agent_id,
                )
                msg = SwarmMessage.directed(self.agent_id, self._coordinator_id or "", payload)
                if self._send(conn, msg):
                    self._pending[msg.id] = _Pending("memories", delta.version, now)
                    self._memory_sent += 1
        if "patterns" not in asked and (pull or "patterns" not in self._subscribed):
            req = SwarmMessage.request_patterns(
                self.agent_id,
                self._coordinator_id,
                version_vector=self.intelligence.version_vector(),
                subscribe=True,
            )
            if self._send(conn, req):
                self._requests[req.id] = ("patterns", now)
        if (
            self.config.enable_memory_sync
            and "memories" not in asked
            and (pull or "memories" not in self._subscribed)
        ):
            mreq = SwarmMessage.new(
                self.agent_id,
                RequestMemoriesPayload(since_version=self._coord_memory_seen, subscribe=True),
                recipient=self._coordinator_id,
            )
            if self._send(conn, mreq):
                self._requests[mreq.id] = ("memories", now)

    def _answered_request(self, kind: str) -> None:
        self._answered.set()
        self._subscribed.add(kind)
        for mid, (k, _) in list(self._requests.items()):
            if k == kind:
                del self._requests[mid]

    async def _flush_sync(self, conn: Connection) -> None:
        """Send what was learned since the last sync and wait (briefly) for the ACKs."""
        self._pending.clear()
        self._sync_once(conn, time.monotonic(), self.config.sync_interval_ms / 1000.0)
        with contextlib.suppress(EdgeError):
            await self._wait_answered(conn, min(5.0, self.options.close_timeout), requests=False)

    async def sync_now(self, timeout: float = 10.0) -> None:
        """Push own changes, pull the swarm's, and wait until both were answered.

        Raises ``TransportError`` if the link drops meanwhile, ``TransportTimeoutError``
        if the coordinator does not answer within ``timeout`` seconds.
        """
        conn = self._conn
        if conn is None or not conn.is_open:
            raise TransportError(f"{self.agent_id} is not connected", code="link_down")
        self._pending.clear()
        self._requests.clear()
        self._sync_once(conn, time.monotonic(), self.config.sync_interval_ms / 1000.0, pull=True)
        await self._wait_answered(conn, timeout, requests=True)

    async def _wait_answered(self, conn: Connection, timeout: float, *, requests: bool) -> None:
        """Wait until every pending sync (and, with ``requests``, pull) was answered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._pending or (requests and self._requests):
            if not conn.is_open:
                raise TransportError(
                    f"{self.agent_id}: the link closed before the sync was answered",
                    code="link_down",
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TransportTimeoutError(
                    f"{self.agent_id}: the coordinator did not answer the sync within {timeout} s"
                )
            self._answered.clear()
            # The short cap re-checks the link, which closes without setting the event.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._answered.wait(), min(remaining, 0.25))

    def _send(self, conn: Connection, msg: SwarmMessage) -> bool:
        try:
            conn.send_nowait(msg)
        except (EdgeError, ConnectionClosedError) as exc:
            logger.debug("%s: could not send %s: %s", self.agent_id, msg.type.value, exc)
            return False
        self._last_sent = time.monotonic()
        return True

    # ================================================================ tasks
    def _on_task(self, conn: Connection, task: TaskPayload) -> None:
        if task.task_id in self._completed:  # ran it already: the result was lost, not the work
            self._unacked.add(task.task_id)
            self._send_result(conn, task.task_id)
            return
        if task.task_id in self._running:
            return
        me = Candidate(self.agent_id, self.role, frozenset(self.capabilities), len(self._running))
        if not eligible(task, me):
            self._finish_task(
                conn,
                TaskResultPayload(
                    task_id=task.task_id,
                    success=False,
                    error=f"{self.agent_id} ({self.role.value}) does not take "
                    f"{task.task_type!r} tasks needing {task.required_capabilities}",
                ),
            )
            return
        handler = self.handlers.get(task.task_type) or self.handlers.get("*")
        if handler is None:
            self._finish_task(
                conn,
                TaskResultPayload(
                    task_id=task.task_id,
                    success=False,
                    error=f"{self.agent_id} has no handler for {task.task_type!r}",
                ),
            )
            return
        self._running[task.task_id] = self._spawn(self._run_task(task, handler))

    async def _run_task(self, task: TaskPayload, handler: TaskHandler) -> None:
        start = time.monotonic()
        try:
            async with self._slots:
                ctx = TaskContext(self, task)
                try:
                    raw = await asyncio.wait_for(handler(ctx), task.timeout_ms / 1000.0)
                except TimeoutError:
                    outcome = TaskOutcome(False, error=f"timed out after {task.timeout_ms} ms")
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.exception("%s: handler for %s failed", self.agent_id, task.task_type)
                    outcome = TaskOutcome(False, error=f"{type(exc).__name__}: {exc}")
                else:
                    outcome = raw if isinstance(raw, TaskOutcome) else TaskOutcome(True, raw)
            if outcome.action is not None and outcome.reward is not None:
                self.learn(ctx.state, outcome.action, float(outcome.reward))
            if self.role is AgentRole.SCOUT and outcome.action is not None:
                ctx.remember(
                    f"{task.task_type}: {task.description} | approach {outcome.action} "
                    f"reward {outcome.reward if outcome.reward is not None else 'n/a'}",
                    {
                        "action": outcome.action,
                        "reward": outcome.reward,
                        "success": outcome.success,
                    },
                )
            result = TaskResultPayload(
                task_id=task.task_id,
                success=outcome.success,
                result=outcome.result,
                reward=float(outcome.reward or 0.0),
                error=outcome.error,
                execution_time_ms=int(1000 * (time.monotonic() - start)),
                action=outcome.action,
            )
        finally:
            self._running.pop(task.task_id, None)
        conn = self._conn
        if conn is not None:
            self._finish_task(conn, result)
        else:
            self._record_result(result)  # sent when the link is back

    def _record_result(self, result: TaskResultPayload) -> None:
        """Keep a result until the coordinator ACKs it (and longer, to answer repeats)."""
        self._completed[result.task_id] = result
        if len(self._completed) > _RESULT_CACHE:
            self._completed.popitem(last=False)
        self._unacked.add(result.task_id)
        if result.success:
            self._done += 1
        else:
            self._failed += 1

    def _finish_task(self, conn: Connection, result: TaskResultPayload) -> None:
        self._record_result(result)
        self._send_result(conn, result.task_id)

    def _send_result(self, conn: Connection, task_id: str) -> None:
        """Send a kept result to the current coordinator (a fresh message each time)."""
        result = self._completed.get(task_id)
        if result is None:
            self._unacked.discard(task_id)
            return
        msg = SwarmMessage.new(self.agent_id, result, recipient=self._coordinator_id)
        if self._send(conn, msg):
            self._result_msgs[msg.id] = task_id

    # ---------------------------------------------------------------- as a client
    async def submit_task(
        self,
        task_type: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        description: str = "",
        priority: int = 0,
        timeout_ms: int = 30_000,
        required_capabilities: Sequence[str] = (),
        task_id: str | None = None,
        timeout: float = 10.0,
    ) -> str:
        """Submit a task to the swarm; returns its id once the coordinator stored it."""
        conn = self._require_conn()
        tid = task_id or os.urandom(8).hex()
        msg = SwarmMessage.broadcast_task(
            self.agent_id,
            tid,
            task_type,
            description,
            dict(parameters or {}),
            priority=priority,
            timeout_ms=timeout_ms,
            required_capabilities=list(required_capabilities),
        )
        self._results.setdefault(tid, asyncio.get_running_loop().create_future())
        return await self._acknowledged(conn, msg, timeout) or tid

    async def send_export(self, export: AgentExport, *, timeout: float = 10.0) -> str:
        """Send a federated-learning export (``EphemeralAgent.export_state()``, signed
        here by this agent) to the coordinator; returns its summary once aggregated.

        The export's ``agent_id`` must be this agent's id (``AuthError`` otherwise); a
        coordinator without federated learning answers ``EdgeError(code="unsupported")``.
        """
        conn = self._require_conn()
        payload = encode_export(export, self.identity)
        msg = SwarmMessage.directed(self.agent_id, self._coordinator_id or "", payload)
        return await self._acknowledged(conn, msg, timeout)

    async def _acknowledged(self, conn: Connection, msg: SwarmMessage, timeout: float) -> str:
        """Send ``msg`` and wait for its ACK (its detail) or the ERROR refusing it."""
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._submit_acks[msg.id] = fut
        try:
            await conn.send(msg)
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._submit_acks.pop(msg.id, None)

    async def wait_task(self, task_id: str, timeout: float | None = None) -> TaskResultPayload:
        """The result of a task this agent submitted."""
        fut = self._results.setdefault(task_id, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(asyncio.shield(fut), timeout)

    # ---------------------------------------------------------------- messages
    async def send_message(
        self, recipient: str | SwarmMessage, topic: str = "message", data: Any = None
    ) -> None:
        """Send a DATA message to one agent (relayed by the coordinator), or a prepared
        ``SwarmMessage`` as is."""
        conn = self._require_conn()
        if isinstance(recipient, SwarmMessage):
            if recipient.sender != self.agent_id:
                raise InvalidInputError(
                    f"message sender {recipient.sender!r} is not this agent ({self.agent_id!r})"
                )
            await conn.send(recipient)
            return
        await conn.send(SwarmMessage.data(self.agent_id, topic, data, recipient=recipient))

    async def broadcast(self, topic: str | SwarmMessage, data: Any = None) -> None:
        """Send a DATA message to every other agent."""
        conn = self._require_conn()
        if isinstance(topic, SwarmMessage):
            topic.recipient = None
            await conn.send(topic)
            return
        await conn.send(SwarmMessage.data(self.agent_id, topic, data))

    async def refresh_peers(self, timeout: float = 5.0) -> list[PeerInfo]:
        """Ask the coordinator for its roster; returns it (also kept for ``get_peers``)."""
        conn = self._require_conn()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._roster_waiters.append(fut)
        await conn.send(
            SwarmMessage.data(self.agent_id, ROSTER_TOPIC, None, recipient=self._coordinator_id)
        )
        await asyncio.wait_for(fut, timeout)
        return self.get_peers()

    def _require_conn(self) -> Connection:
        conn = self._conn
        if conn is None or not conn.is_open:
            if self._fatal is not None:
                raise self._fatal
            raise TransportError(
                f"{self.agent_id} is not connected to a coordinator (join_swarm first)",
                code="link_down",
            )
        return conn

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)
        return task
