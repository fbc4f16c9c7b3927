"""``Coordinator``: admits agents, hands out tasks, merges what they learn, persists it all.

One coordinator serves a star of agents over any transport. Per connection it reads
messages and answers them without blocking on other peers (replies go through each
connection's bounded send queue; a full queue drops the reply and counts it). A
maintenance loop, every half heartbeat, detects failed agents (three missed intervals),
expires task attempts, dispatches pending tasks, compacts the pattern log and drives the
leader election when several coordinators serve one swarm.

Trust model: links are authenticated (``transport``); a message's ``sender`` must be the
link's peer, and a SYNC_PATTERNS / SYNC_MEMORIES from an agent may only carry entries
that agent wrote (``only_origins``), so no member can forge another's statistics. What
the coordinator sends back is signed with its own key. Peer coordinators (allow-listed
or holding the join token, role ``coordinator``) exchange merged state of every origin.

Durability: with ``data_dir`` every acknowledged write (a pattern delta, memory delta,
task submission or result) is committed to SQLite before its ACK is sent; see
:mod:`ruvector_edge.swarm.store`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import msgspec

from ruvector_edge.config import AgentRole, SwarmConfig
from ruvector_edge.errors import (
    AuthError,
    CapacityError,
    ConfigError,
    EdgeError,
    InvalidInputError,
    NotFoundError,
)
from ruvector_edge.identity import (
    Admission,
    Identity,
    KeyRegistry,
    generate_join_token,
    now_ms,
)
from ruvector_edge.identity import PeerInfo as LinkPeer
from ruvector_edge.learning import IntelligenceSync
from ruvector_edge.memory import VectorMemory
from ruvector_edge.sona import FederatedCoordinator, decode_export
from ruvector_edge.swarm.allocation import AllocationStrategy, Candidate, create_allocator, eligible
from ruvector_edge.swarm.election import LeaderElection, Outbound
from ruvector_edge.swarm.protocol import (
    COORDINATORS_TOPIC,
    PEER_LINK_CAPABILITY,
    ROSTER_TOPIC,
    TASKS_TOPIC,
    ErrorCode,
    PeerInfo,
)
from ruvector_edge.swarm.store import MemberRecord, StoredTask, SwarmStore
from ruvector_edge.swarm.tasks import TaskBoard, TaskRecord, TaskState
from ruvector_edge.transport import (
    Connection,
    Listener,
    ReconnectPolicy,
    TransportOptions,
    WelcomeSettings,
    connect,
    listen,
)
from ruvector_edge.wire import (
    AgentExportPayload,
    CoordinatorPayload,
    DataPayload,
    ErrorPayload,
    JoinPayload,
    LeavePayload,
    MessageType,
    PingPayload,
    RequestMemoriesPayload,
    RequestPatternsPayload,
    SwarmMessage,
    SyncMemoriesPayload,
    SyncPatternsPayload,
    TaskPayload,
    TaskResultPayload,
)

__all__ = ["Coordinator", "CoordinatorStats", "Member"]

logger = logging.getLogger("ruvector_edge.swarm.coordinator")

_TOKEN_FILE = "join_token"
_KEY_FILE = "coordinator.key"
_MISSED_HEARTBEATS = 3
_TASK_BATCH = 256  # task records per replication message
# Each sync interval is cut into this many push sub-ticks, each serving its share of the
# agents, so a thousand pushes (and the merges they trigger) do not land at one instant.
_PUSH_SLOTS = 10
_PUSH_HISTORY = 4 * _PUSH_SLOTS
_FEDERATED_META = "sona.federated"


@dataclasses.dataclass(slots=True)
class Member:
    """A live roster entry (``load`` = tasks in flight; times are ``time.monotonic()``)."""

    agent_id: str
    role: AgentRole
    capabilities: frozenset[str]
    public_key: bytes
    joined_ms: int
    conn: Connection | None = None
    last_seen: float = 0.0
    lost_at: float | None = None
    reported_load: float = 0.0
    messages: int = 0
    # Push subscriptions on the current link: the tick the member is caught up to, or -1.
    patterns_tick: int = -1
    memory_tick: int = -1
    push_slot: int = 0  # which of the interval's push sub-ticks serves this member

    @property
    def connected(self) -> bool:
        """Whether the member has an open connection."""
        return self.conn is not None and self.conn.is_open

    def candidate(self, in_flight: int) -> Candidate:
        """This member as an allocation candidate."""
        return Candidate(self.agent_id, self.role, self.capabilities, float(in_flight))


@dataclasses.dataclass(slots=True)
class CoordinatorStats:
    """Counters and gauges of a coordinator (``Coordinator.stats()``)."""

    coordinator_id: str
    url: str
    is_leader: bool
    term: int
    leader_id: str | None
    agents_connected: int
    agents_known: int
    patterns: int
    pattern_origins: int
    memories: int
    tasks: dict[str, int]
    messages_in: int
    pattern_syncs: int
    memory_syncs: int
    pulls: int
    pushes: int
    catch_ups: int
    tasks_dispatched: int
    tasks_retried: int
    agents_lost: int
    exports_aggregated: int
    tasks_replicated_in: int
    replies_dropped: int
    rejected: int
    rejected_by_code: dict[str, int]


class Coordinator:
    """The swarm's hub. ``await Coordinator(config, listen="ws://127.0.0.1:0").start()``.

    Args:
        config: swarm settings (``agent_id`` is the coordinator's id; ``max_agents``,
            ``heartbeat_interval_ms``, ``sync_interval_ms``, ``join_token``, ``data_dir``,
            ``coordinator_url`` as the default listen address).
        listen: address to listen on (``ws://HOST:PORT``, ``shm://NAME``, ``inproc://NAME``).
        identity: the coordinator's key (default: ``data_dir/coordinator.key``, created
            once, or a fresh key without a data dir).
        join_token: overrides ``config.join_token``. Without any token the coordinator
            uses the one stored in ``data_dir`` or generates one (``generated_token`` is
            then True so a CLI can print it once).
        insecure_open: admit anyone (explicit opt-in; never the default).
        allowed_keys: public keys admitted without a token (e.g. peer coordinators).
        allocator: ``"learned"`` (default), ``"round-robin"``, ``"least-loaded"``,
            ``"capability"``, or an :class:`AllocationStrategy`.
        peers: URLs of the other coordinators serving the same swarm (leader election).
        max_attempts: assignments per task before it fails for good.
        max_tasks_per_agent: tasks in flight per agent (the rest wait at the coordinator,
            so allocation keeps adapting).
        options: transport options (default from ``config``).
        federated: a :class:`~ruvector_edge.sona.FederatedCoordinator` that aggregates the
            AGENT_EXPORT messages agents send (``SwarmAgent.send_export``); each export must
            be signed by the agent that sends it. Without one, exports are refused.
    """

    def __init__(
        self,
        config: SwarmConfig | None = None,
        *,
        listen: str | None = None,
        identity: Identity | None = None,
        join_token: str | None = None,
        insecure_open: bool = False,
        allowed_keys: Iterable[bytes] = (),
        allocator: str | AllocationStrategy = "learned",
        allocator_options: dict[str, Any] | None = None,
        peers: Sequence[str] = (),
        max_attempts: int = 3,
        max_tasks_per_agent: int = 4,
        finished_task_retention: int = 10_000,
        compact_every: int = 2_000,
        memory_batch: int = 2_000,
        memory_max_entries: int = 100_000,
        options: TransportOptions | None = None,
        swarm_id: str = "ruvector-edge",
        federated: FederatedCoordinator | None = None,
    ) -> None:
        self.config = config or SwarmConfig().with_role(AgentRole.COORDINATOR)
        self.listen_url = listen or self.config.coordinator_url
        if not self.listen_url:
            raise ConfigError(
                "the coordinator needs an address to listen on: pass listen=... or set "
                "coordinator_url (e.g. ws://127.0.0.1:8080)"
            )
        if max_tasks_per_agent < 1:
            raise ConfigError(f"max_tasks_per_agent must be >= 1, got {max_tasks_per_agent}")
        self.agent_id = self.config.agent_id
        self.data_dir = self.config.data_dir
        self._identity = identity
        self._token_arg = join_token if join_token is not None else self.config.join_token
        self.insecure_open = insecure_open
        self._allowed_keys = [bytes(k) for k in allowed_keys]
        self._allocator_arg = allocator
        self._allocator_options = dict(allocator_options or {})
        self.peer_urls = [u for u in peers if u]
        self.max_tasks_per_agent = max_tasks_per_agent
        self.finished_task_retention = finished_task_retention
        self.compact_every = compact_every
        self.memory_batch = memory_batch
        self.memory_max_entries = memory_max_entries
        self.swarm_id = swarm_id
        self.federated = federated
        self._exports = 0
        self.heartbeat = self.config.heartbeat_interval_ms / 1000.0
        self.options = options or TransportOptions.from_config(
            self.config, max_connections=self.config.max_agents + 16 + len(self.peer_urls)
        )
        self.tasks = TaskBoard(max_attempts=max_attempts)
        self.join_token: str | None = None
        self.generated_token = False
        self.members: dict[str, Member] = {}
        self.peer_coordinators: dict[str, bytes] = {}  # id -> key of admitted coordinators
        self._peer_links: dict[str, Connection] = {}
        self._peer_ids_by_url: dict[str, str] = {}
        self._election_saved: tuple[int, str | None] = (0, None)
        self._store: SwarmStore | None = None
        self._listener: Listener | None = None
        self._election: LeaderElection | None = None
        self._tasks_bg: set[asyncio.Task[Any]] = set()
        self._waiters: dict[str, list[asyncio.Future[TaskResultPayload]]] = {}
        self._changed = asyncio.Event()
        self._dispatch_scheduled = False
        # Task replication to peer coordinators: every changed record gets a sequence
        # number; a peer link sends the records newer than what it last sent.
        self._task_seq = 0
        self._task_changes: OrderedDict[str, int] = OrderedDict()
        self._own_persisted = 0
        self._started = False
        self._stopping = False
        self._closed = False
        # counters
        self._messages_in = 0
        self._pattern_syncs = 0
        self._memory_syncs = 0
        self._dispatched = 0
        self._retried = 0
        self._lost = 0
        self._replicated_tasks = 0
        self._replies_dropped = 0
        self._rejected: dict[str, int] = {}
        # sync timing: SYNC send -> merged here; SYNC send -> every other agent has it
        self.agent_versions: dict[str, dict[str, int]] = {}
        self._sync_latency: deque[float] = deque(maxlen=4096)
        self._propagation: deque[float] = deque(maxlen=4096)
        self._spreading: list[_Spread] = []
        # Pushes: every sync interval one shared delta of what changed since the last tick.
        # tick -> (version vector, memory version) its slot's members were brought up to;
        # one empty round to start, so every slot's last tick is known (and >= 1).
        self._tick = _PUSH_SLOTS
        self._push_history: dict[int, tuple[dict[str, int], int]] = {
            t: ({}, 0) for t in range(1, _PUSH_SLOTS + 1)
        }
        self._slots_assigned = 0
        self._pushes = 0
        self._pulls = 0
        self._catch_ups = 0
        self.intelligence: IntelligenceSync
        self.memory: VectorMemory
        self.allocator: AllocationStrategy
        self.identity: Identity

    # ================================================================ lifecycle
    async def start(self) -> Coordinator:
        """Open storage, restore state, start listening and the maintenance loop."""
        if self._started:
            return self
        self._started = True
        try:
            self._open_state()
            admission = self._admission()
            self._listener = await listen(
                self.listen_url or "",
                self.identity,
                admission,
                welcome=self._welcome,
                options=self.options,
                handler=self._serve,
                config=self.config,
            )
        except BaseException:
            self._close_state()
            raise
        self.peer_urls = [u for u in self.peer_urls if u not in (self.url, self.listen_url)]
        if self.peer_urls:
            self._election = self._new_election()
            for url in self.peer_urls:
                self._spawn(self._peer_link_loop(url), f"peer {url}")
        self._spawn(self._maintain(), "maintain")
        self._spawn(self._push_loop(), "push")
        logger.info(
            "coordinator %s listening on %s (%d agents restored, %d tasks)",
            self.agent_id,
            self.url,
            len(self.members),
            len(self.tasks),
        )
        self._dispatch_soon()
        return self

    async def stop(self) -> None:
        """Close every connection (flushing), compact and close storage."""
        if self._closed or not self._started:
            return
        self._stopping = True
        for task in list(self._tasks_bg):
            task.cancel()
        await asyncio.gather(*self._tasks_bg, return_exceptions=True)
        for link in list(self._peer_links.values()):
            await link.close("coordinator stopping")
        if self._listener is not None:
            await self._listener.close()
        self._close_state()
        self._closed = True
        for waiters in self._waiters.values():
            for fut in waiters:
                if not fut.done():
                    fut.cancel()
        logger.info("coordinator %s stopped", self.agent_id)

    async def __aenter__(self) -> Coordinator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The address agents connect to (with the real port after ``:0``)."""
        return self._listener.url if self._listener is not None else (self.listen_url or "")

    @property
    def is_leader(self) -> bool:
        """True when this coordinator hands out tasks (always, without peers)."""
        return self._election is None or self._election.is_leader

    @property
    def leader_id(self) -> str | None:
        """The current leader's id (self without peers)."""
        return self.agent_id if self._election is None else self._election.leader_id

    @property
    def listener(self) -> Listener | None:
        """The transport listener (its ``stats`` count handshake failures)."""
        return self._listener

    def _open_state(self) -> None:
        data_dir = self.data_dir
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
            self._store = SwarmStore(data_dir)
        if self._identity is None:
            if data_dir is not None:
                self._identity = Identity.load_or_create(data_dir / _KEY_FILE, self.agent_id)
            else:
                self._identity = Identity.generate(self.agent_id)
        self.identity = self._identity
        self.join_token = self._resolve_token()
        self.intelligence = IntelligenceSync(self.agent_id)
        if self._store is not None:
            self._restore_patterns(self._store)
        self._own_persisted = self.intelligence.local_version
        mem_dir = None if data_dir is None else data_dir / "memory"
        self.memory = VectorMemory(self.agent_id, self.memory_max_entries, data_dir=mem_dir)
        if isinstance(self._allocator_arg, AllocationStrategy):
            self.allocator = self._allocator_arg
        else:
            self.allocator = create_allocator(
                self._allocator_arg, sync=self.intelligence, **self._allocator_options
            )
        if self._store is not None:
            now = time.monotonic()
            for rec in self._store.members():
                if PEER_LINK_CAPABILITY in rec.capabilities:
                    continue
                self.members[rec.agent_id] = Member(
                    rec.agent_id,
                    AgentRole.parse(rec.role),
                    frozenset(rec.capabilities),
                    rec.public_key,
                    rec.first_seen_ms,
                    last_seen=now,
                    lost_at=now,
                )
            records = [TaskRecord.from_bytes(t.record) for t in self._store.tasks()]
            self.tasks.restore(records, now, grace=_MISSED_HEARTBEATS * self.heartbeat)
            saved = self._store.get_meta(_FEDERATED_META)
            if saved and self.federated is not None:
                self.federated.load_state(saved)

    def _restore_patterns(self, store: SwarmStore) -> None:
        snapshot = store.pattern_snapshot()
        if snapshot is not None:
            self.intelligence.merge_peer_state(self.agent_id, snapshot)
        for origin, blob in store.pattern_log():
            try:
                self.intelligence.merge_peer_state(origin, blob)
            except EdgeError as exc:  # a row written by a buggy build must not block startup
                logger.error("skipping unreadable pattern log row from %s: %s", origin, exc)

    def _close_state(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(EdgeError):
                self._compact(store)
            store.close()
        if hasattr(self, "memory"):
            with contextlib.suppress(EdgeError):
                self.memory.close()

    def _resolve_token(self) -> str | None:
        token = self._token_arg
        path = None if self.data_dir is None else self.data_dir / _TOKEN_FILE
        if token:
            return token
        if path is not None and path.exists():
            stored = path.read_text().strip()
            if stored:
                return stored
        if self.insecure_open:
            return None
        token = generate_join_token()
        self.generated_token = True
        if path is not None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(token + "\n")
        return token

    def _admission(self) -> Admission:
        registry = KeyRegistry()
        if self._store is not None:
            for rec in self._store.members():
                registry.bind(rec.agent_id, rec.public_key)
        return Admission(
            self.join_token,
            self._allowed_keys,
            open_admission=self.insecure_open,
            registry=registry,
            max_skew_ms=self.config.max_clock_skew_ms,
        )

    # ================================================================ admission
    def _welcome(self, peer: LinkPeer, join: JoinPayload) -> WelcomeSettings:
        role = join.agent_role
        known = self.members.get(peer.agent_id)
        peer_link = PEER_LINK_CAPABILITY in join.capabilities
        if not peer_link and (known is None or not known.connected):
            live = sum(1 for m in self.members.values() if m.connected)
            if live >= self.config.max_agents:
                raise CapacityError(
                    f"the swarm is full: {live} agents connected (max {self.config.max_agents}"
                    "; raise --max-agents)",
                    code=ErrorCode.SWARM_FULL,
                )
        if self._store is not None:
            ms = now_ms()
            self._store.upsert_member(
                MemberRecord(
                    peer.agent_id,
                    peer.public_key,
                    role.value,
                    tuple(join.capabilities),
                    known.joined_ms if known is not None else ms,
                    ms,
                )
            )
        return WelcomeSettings(
            swarm_id=self.swarm_id,
            sync_interval_ms=self.config.sync_interval_ms,
            heartbeat_interval_ms=self.config.heartbeat_interval_ms,
            members=tuple(sorted(m for m, v in self.members.items() if v.connected)[:64]),
        )

    async def _serve(self, conn: Connection) -> None:
        assert conn.peer is not None
        assert conn.join is not None
        peer_id = conn.peer.agent_id
        if PEER_LINK_CAPABILITY in conn.join.capabilities:
            if conn.join.agent_role is not AgentRole.COORDINATOR or self._election is None:
                logger.warning("refused a coordinator link from %s: no peers configured", peer_id)
                return
            await self._serve_peer_coordinator(conn)
            return
        member = self._register(conn)
        try:
            async for msg in conn:
                self._handle(member, conn, msg)
        finally:
            if member.conn is conn:
                member.conn = None
                member.lost_at = time.monotonic()
                logger.info("agent %s disconnected (%s)", peer_id, conn.close_reason)
                self._notify()

    def _register(self, conn: Connection) -> Member:
        assert conn.peer is not None
        assert conn.join is not None
        now = time.monotonic()
        peer_id = conn.peer.agent_id
        member = self.members.get(peer_id)
        if member is None:
            member = Member(
                peer_id,
                conn.join.agent_role,
                frozenset(conn.join.capabilities),
                conn.peer.public_key,
                now_ms(),
                push_slot=self._slots_assigned % _PUSH_SLOTS,
            )
            self._slots_assigned += 1
            self.members[peer_id] = member
        else:
            old = member.conn
            if old is not None and old is not conn and not old.closed:
                old.abort("replaced by a new connection from the same agent")
            member.role = conn.join.agent_role
            member.capabilities = frozenset(conn.join.capabilities)
            member.public_key = conn.peer.public_key
        member.conn = conn
        member.last_seen = now
        member.lost_at = None
        member.patterns_tick = member.memory_tick = -1  # a new link subscribes anew
        for rec in self.tasks.assigned_to(peer_id):
            # Resumed: full time again, and the task once more in case the agent restarted
            # and forgot it (an agent that still runs or finished it ignores the repeat).
            rec.deadline = now + rec.task.timeout_ms / 1000.0
            self._reply(conn, SwarmMessage.directed(self.agent_id, peer_id, rec.task))
        logger.info("agent %s joined as %s", peer_id, member.role.value)
        if self.peer_urls:  # so the agent can fail over to any coordinator of the swarm
            self._reply(
                conn,
                SwarmMessage.data(
                    self.agent_id,
                    COORDINATORS_TOPIC,
                    [self.url, *self.peer_urls],
                    recipient=peer_id,
                ),
            )
        self._point_to_leader(member)
        self._notify()
        self._dispatch_soon()
        return member

    # ================================================================ message handling
    def _handle(self, member: Member, conn: Connection, msg: SwarmMessage) -> None:
        self._messages_in += 1
        member.messages += 1
        member.last_seen = time.monotonic()
        if msg.sender != member.agent_id:
            self._reject(
                conn,
                msg,
                ErrorCode.FORGED_SENDER,
                f"message claims sender {msg.sender!r} on {member.agent_id!r}'s link",
            )
            return
        recipient = msg.recipient
        if recipient is not None and recipient != self.agent_id:
            self._forward(conn, msg)
            return
        try:
            self._handle_own(member, conn, msg)
        except EdgeError as exc:
            self._reject(conn, msg, exc.code, exc.message)

    def _handle_own(self, member: Member, conn: Connection, msg: SwarmMessage) -> None:
        p = msg.payload
        match msg.type:
            case MessageType.PING:
                assert isinstance(p, PingPayload)
                member.reported_load = p.load
                self._reply(
                    conn,
                    SwarmMessage.pong(
                        self.agent_id,
                        member.agent_id,
                        p.nonce,
                        float(self.tasks.in_flight(member.agent_id)),
                    ),
                )
            case MessageType.PONG | MessageType.ACK:
                pass
            case MessageType.SYNC_PATTERNS:
                assert isinstance(p, SyncPatternsPayload)
                self._merge_patterns(member.agent_id, p.data, only={member.agent_id})
                self._reply(conn, SwarmMessage.ack(self.agent_id, member.agent_id, msg.id))
                self._track_spread(member.agent_id, p.version, msg.ts_ms)
            case MessageType.REQUEST_PATTERNS:
                assert isinstance(p, RequestPatternsPayload)
                self.agent_versions[member.agent_id] = p.version_vector
                self._pulls += 1
                self._answer_patterns(
                    conn, member.agent_id, msg.id, p.version_vector, p.max_entries
                )
                if p.subscribe:  # the answer covers all its slot's last push covered
                    member.patterns_tick = self._last_tick_of(member)
            case MessageType.SYNC_MEMORIES:
                assert isinstance(p, SyncMemoriesPayload)
                self.memory.merge_report(p.data, allowed_owners={member.agent_id})
                self._memory_syncs += 1
                self._reply(conn, SwarmMessage.ack(self.agent_id, member.agent_id, msg.id))
            case MessageType.REQUEST_MEMORIES:
                assert isinstance(p, RequestMemoriesPayload)
                self._answer_memories(conn, member.agent_id, msg.id, p.since_version, p.max_entries)
                if p.subscribe:
                    member.memory_tick = self._last_tick_of(member)
            case MessageType.BROADCAST_TASK:
                assert isinstance(p, TaskPayload)
                self._submit_remote(conn, member, msg, p)
            case MessageType.TASK_RESULT:
                assert isinstance(p, TaskResultPayload)
                if not self.is_leader:  # unacknowledged: the agent resends it to the leader
                    self._reject(conn, msg, ErrorCode.NOT_LEADER, f"send to {self.leader_id}")
                    return
                self._on_result(member.agent_id, p)
                self._reply(conn, SwarmMessage.ack(self.agent_id, member.agent_id, msg.id))
            case MessageType.LEAVE:
                assert isinstance(p, LeavePayload)
                self._on_leave(member, p.reason)
            case MessageType.DATA:
                assert isinstance(p, DataPayload)
                if msg.recipient is None:
                    self._fan_out(member.agent_id, msg)
                elif p.topic == ROSTER_TOPIC:
                    self._reply(
                        conn,
                        SwarmMessage.data(
                            self.agent_id, ROSTER_TOPIC, self._roster(), recipient=member.agent_id
                        ),
                    )
            case MessageType.AGENT_EXPORT:
                assert isinstance(p, AgentExportPayload)
                detail = self._aggregate_export(member, p)
                self._reply(conn, SwarmMessage.ack(self.agent_id, member.agent_id, msg.id, detail))
            case MessageType.ERROR:
                assert isinstance(p, ErrorPayload)
                logger.info("agent %s reports %s: %s", member.agent_id, p.code, p.message)
            case _:
                raise InvalidInputError(
                    f"{msg.type.value} is not handled by a coordinator on an agent link",
                    code=ErrorCode.UNSUPPORTED,
                )

    def _aggregate_export(self, member: Member, payload: AgentExportPayload) -> str:
        """Verify an agent's own federated export and fold it into ``federated``."""
        if self.federated is None:
            raise InvalidInputError(
                "this coordinator runs no federated learning (Coordinator(federated=...))",
                code=ErrorCode.UNSUPPORTED,
            )
        # Only the member's own key: an agent cannot hand in another agent's export.
        export = decode_export(payload, {member.agent_id: member.public_key})
        result = self.federated.aggregate(export)
        self._exports += 1
        if self._store is not None:  # durable before the ACK
            self._store.set_meta(_FEDERATED_META, self.federated.save_state())
        return (
            f"accepted={result.trajectories_accepted} rejected={result.trajectories_rejected} "
            f"agents={result.total_agents} consolidated={str(result.consolidated).lower()}"
        )

    def _reject(self, conn: Connection, msg: SwarmMessage, code: str, text: str) -> None:
        self._rejected[code] = self._rejected.get(code, 0) + 1
        level = logging.WARNING if sum(self._rejected.values()) <= 100 else logging.DEBUG
        logger.log(level, "rejected %s from %s (%s): %s", msg.type.value, conn.peer_id, code, text)
        self._reply(
            conn,
            SwarmMessage.error(self.agent_id, code, text, recipient=conn.peer_id, ref_id=msg.id),
        )

    def _reply(self, conn: Connection, msg: SwarmMessage) -> bool:
        try:
            conn.send_nowait(msg)
        except EdgeError as exc:
            self._replies_dropped += 1
            logger.debug("dropped a %s to %s: %s", msg.type.value, conn.peer_id, exc)
            return False
        return True

    def _forward(self, conn: Connection, msg: SwarmMessage) -> None:
        target = self.members.get(msg.recipient or "")
        if target is None or target.conn is None or not target.conn.is_open:
            self._reject(
                conn, msg, ErrorCode.UNKNOWN_RECIPIENT, f"{msg.recipient!r} is not connected here"
            )
            return
        if msg.decrement_ttl():
            self._reply(target.conn, msg)

    def _fan_out(self, sender: str, msg: SwarmMessage) -> None:
        if not msg.decrement_ttl():
            return
        for m in self.members.values():
            if m.agent_id != sender and m.conn is not None and m.conn.is_open:
                self._reply(m.conn, msg)

    def _roster(self) -> list[PeerInfo]:
        return [
            PeerInfo(
                m.agent_id,
                m.role.value,
                sorted(m.capabilities),
                float(self.tasks.in_flight(m.agent_id)),
                m.connected,
                now_ms() - int(1000 * (time.monotonic() - m.last_seen)),
            )
            for m in self.members.values()
        ]

    # ---------------------------------------------------------------- sync hub
    def _merge_patterns(self, origin: str, data: bytes, *, only: set[str] | None) -> None:
        public_key = None if only is not None else self.peer_coordinators.get(origin)
        self.intelligence.merge_peer_state(origin, data, public_key=public_key, only_origins=only)
        self._pattern_syncs += 1
        if self._store is not None:
            self._store.append_patterns(origin, data)

    def _track_spread(self, origin: str, version: int, sent_ms: int) -> None:
        self._sync_latency.append(max(0, now_ms() - sent_ms))
        if version > 0 and len(self._spreading) < 1024:
            self._spreading.append(_Spread(origin, version, sent_ms))

    # ---------------------------------------------------------------- pushes
    async def _push_loop(self) -> None:
        step = self.config.sync_interval_ms / 1000.0 / _PUSH_SLOTS
        due = time.monotonic()
        while True:
            due = max(due + step, time.monotonic())
            await asyncio.sleep(due - time.monotonic())
            try:
                self._push_once()
            except EdgeError:
                logger.exception("coordinator push step failed")

    def _last_tick_of(self, m: Member) -> int:
        """The latest push sub-tick (so far) that served ``m``'s slot."""
        return self._tick - (self._tick - m.push_slot) % _PUSH_SLOTS

    def _push_once(self) -> None:
        """One push sub-tick: send the agents of this tick's slot what changed since the
        slot's previous push, one sync interval ago.

        Agents caught up to that push share one delta, encoded and signed once; an agent
        that missed a push (full send queue, slow link, new subscription) gets its own
        catch-up delta. Repeats are harmless: merges are idempotent.
        """
        tick = self._tick = self._tick + 1
        slot, base_tick = tick % _PUSH_SLOTS, tick - _PUSH_SLOTS
        vv = self.intelligence.version_vector()
        mem_reached = self.memory.version
        patterns_msg = memory_msg = None
        base = self._push_history.get(base_tick)
        if base is not None:
            if vv != base[0]:
                patterns_msg = self._patterns_push(base[0], vv)
            if mem_reached != base[1]:
                memory_msg, mem_reached = self._memory_push(base[1])
        history = self._push_history
        history[tick] = (vv, mem_reached)
        history.pop(tick - _PUSH_HISTORY, None)
        behind = False
        for m in self.members.values():
            conn = m.conn
            if m.push_slot != slot or conn is None or not conn.is_open:
                continue
            if m.patterns_tick >= 0:
                if self._push_to(m, conn, base_tick, patterns_msg, tick):
                    m.patterns_tick = tick
                else:
                    behind = True
            if m.memory_tick >= 0 and self._push_to(
                m, conn, base_tick, memory_msg, tick, memories=True
            ):
                m.memory_tick = tick
        if patterns_msg is not None or memory_msg is not None:
            self._notify()
        if not behind and self._spreading:
            self._finish_spreads(tick)

    def _finish_spreads(self, tick: int) -> None:
        """Propagation samples: a version is out once every slot was pushed a snapshot
        holding it (the last ``_PUSH_SLOTS`` sub-ticks)."""
        window = [self._push_history.get(t) for t in range(tick - _PUSH_SLOTS + 1, tick + 1)]
        now = now_ms()
        keep = []
        for spread in self._spreading:
            if all(h is not None and h[0].get(spread.origin, 0) >= spread.version for h in window):
                self._propagation.append(max(0, now - spread.sent_ms))
            elif now - spread.sent_ms < 120_000:
                keep.append(spread)
        self._spreading = keep

    @property
    def propagation_pending(self) -> int:
        """Learned versions not yet pushed to every slot (their propagation samples are
        still open)."""
        return len(self._spreading)

    def patterns_delivered(self, agent_ids: Iterable[str]) -> bool:
        """Whether every pattern this coordinator holds was sent to each of ``agent_ids``
        (each subscribed, and its latest push covered the current state)."""
        vv = self.intelligence.version_vector()
        for agent_id in agent_ids:
            m = self.members.get(agent_id)
            if m is None or not m.connected or m.patterns_tick < 0:
                return False
            pushed = self._push_history.get(m.patterns_tick)
            if pushed is None or pushed[0] != vv:
                return False
        return True

    def _patterns_push(self, since: dict[str, int], vv: dict[str, int]) -> SwarmMessage:
        data = self.intelligence.get_delta(since, identity=self.identity)
        self._pushes += 1
        # recipient None: one envelope for every link (each link still authenticates it).
        return SwarmMessage.sync_patterns(self.agent_id, data, version=vv.get(self.agent_id, 0))

    def _memory_push(self, since: int) -> tuple[SwarmMessage, int]:
        """The shared memory delta after ``since`` and the version it reaches (at most
        ``memory_batch`` entries a tick; the rest follows on the next ticks)."""
        msg, version = self._memory_delta(since, None)
        self._pushes += 1
        return msg, version

    def _memory_delta(
        self, since: int, recipient: str | None, max_entries: int = 0
    ) -> tuple[SwarmMessage, int]:
        limit = min(self.memory_batch, max_entries) if max_entries else self.memory_batch
        delta = self.memory.export_delta(since, limit=limit)
        payload = SyncMemoriesPayload(
            data=delta.data,
            version=delta.version,
            entry_count=delta.entries + delta.tombstones,
            origin=self.agent_id,
        )
        return SwarmMessage.new(self.agent_id, payload, recipient=recipient), delta.version

    def _push_to(
        self,
        m: Member,
        conn: Connection,
        base_tick: int,
        shared: SwarmMessage | None,
        tick: int,
        *,
        memories: bool = False,
    ) -> bool:
        """The shared push for a member caught up to ``base_tick``, else a catch-up."""
        held = m.memory_tick if memories else m.patterns_tick
        if held != base_tick:
            return self._catch_up(m, conn, held, tick, memories=memories)
        return shared is None or self._reply(conn, shared)

    def _catch_up(
        self, m: Member, conn: Connection, held: int, tick: int, *, memories: bool
    ) -> bool:
        """A personal delta from what ``m`` holds (its last push, ``held``) to ``tick``."""
        self._catch_ups += 1
        base = self._push_history.get(held)
        if not memories:
            since_vv = base[0] if base is not None else self.agent_versions.get(m.agent_id, {})
            data = self.intelligence.get_delta(since_vv, identity=self.identity)
            msg = SwarmMessage.sync_patterns(self.agent_id, data, recipient=m.agent_id)
            return self._reply(conn, msg)
        # Memories up to the version this tick's shared push reached, in batches.
        since, target = (base[1] if base is not None else 0), self._push_history[tick][1]
        while since < target:
            msg, reached = self._memory_delta(since, m.agent_id)
            if not self._reply(conn, msg):
                return False
            if reached <= since:
                break
            since = reached
        return True

    def latency_summary(self) -> dict[str, float | None]:
        """p50/p99 (ms) of sync latency (an agent's SYNC sent -> merged here) and of
        propagation (SYNC sent -> pushed to every subscribed agent)."""
        out: dict[str, float | None] = {}
        for name, samples in (("sync", self._sync_latency), ("propagation", self._propagation)):
            data = sorted(samples)
            for q in (50, 99):
                out[f"{name}_p{q}_ms"] = (
                    float(data[min(len(data) - 1, len(data) * q // 100)]) if data else None
                )
            out[f"{name}_samples"] = float(len(data))
        return out

    def _answer_patterns(
        self,
        conn: Connection,
        requester: str,
        ref: str,
        seen: dict[str, int],
        max_entries: int = 0,
    ) -> None:
        ours = self.intelligence.version_vector()
        if all(seen.get(o, 0) >= v for o, v in ours.items()):
            self._reply(conn, SwarmMessage.ack(self.agent_id, requester, ref, "up-to-date"))
            return
        data = self.intelligence.get_delta(seen, identity=self.identity, max_entries=max_entries)
        self._reply(
            conn,
            SwarmMessage.sync_patterns(
                self.agent_id,
                data,
                version=ours.get(self.agent_id, 0),
                version_vector=ours,
                recipient=requester,
            ),
        )

    def _answer_memories(
        self, conn: Connection, requester: str, ref: str, since: int, max_entries: int = 0
    ) -> None:
        version = self.memory.version
        if since > version:
            since = 0  # the requester saw another history (e.g. a different coordinator)
        if since == version:
            self._reply(conn, SwarmMessage.ack(self.agent_id, requester, ref, "up-to-date"))
            return
        self._reply(conn, self._memory_delta(since, requester, max_entries)[0])

    # ---------------------------------------------------------------- tasks
    def submit_task(
        self,
        task_type: str,
        parameters: dict[str, Any] | None = None,
        *,
        description: str = "",
        priority: int = 0,
        timeout_ms: int = 30_000,
        required_capabilities: Sequence[str] = (),
        task_id: str | None = None,
    ) -> str:
        """Queue a task from this process; returns its id (``await wait_task(id)``)."""
        if not self.is_leader:
            raise AuthError(
                f"{self.agent_id} is not the leader (leader: {self.leader_id}); submit there",
                code=ErrorCode.NOT_LEADER,
            )
        payload = TaskPayload(
            task_id=task_id or os.urandom(8).hex(),
            task_type=task_type,
            description=description,
            parameters=dict(parameters or {}),
            priority=priority,
            timeout_ms=timeout_ms,
            required_capabilities=list(required_capabilities),
        )
        rec, _ = self.tasks.submit(payload, self.agent_id)
        self._persist(rec)
        self._dispatch_soon()
        return rec.task_id

    async def wait_task(self, task_id: str, timeout: float | None = None) -> TaskResultPayload:
        """The final result of ``task_id`` (done or failed after its retries)."""
        rec = self.tasks.get(task_id)
        if rec.state.finished and rec.result is not None:
            return rec.result
        fut: asyncio.Future[TaskResultPayload] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(fut)
        return await asyncio.wait_for(fut, timeout)

    def task(self, task_id: str) -> TaskRecord:
        """The record of ``task_id`` (``NotFoundError`` if unknown)."""
        return self.tasks.get(task_id)

    def _submit_remote(
        self, conn: Connection, member: Member, msg: SwarmMessage, task: TaskPayload
    ) -> None:
        if not self.is_leader:
            leader = self._election.leader_url if self._election is not None else None
            self._reject(
                conn, msg, ErrorCode.NOT_LEADER, f"submit to the leader {self.leader_id} ({leader})"
            )
            return
        rec, _ = self.tasks.submit(task, member.agent_id)
        self._persist(rec)
        self._reply(conn, SwarmMessage.ack(self.agent_id, member.agent_id, msg.id, rec.task_id))
        self._dispatch_soon()

    def _on_result(self, agent_id: str, result: TaskResultPayload) -> None:
        try:
            rec, accepted = self.tasks.complete(agent_id, result)
        except NotFoundError:
            logger.info("result for unknown task %s from %s", result.task_id, agent_id)
            return
        if not accepted:
            logger.debug("ignored a result for %s from %s", result.task_id, agent_id)
            return
        member = self.members.get(agent_id)
        if member is not None:
            self.allocator.observe(
                rec.task, member.candidate(0), float(result.reward), bool(result.success)
            )
            self._persist_own_patterns()
        if rec.state is TaskState.PENDING:
            self._retried += 1
        self._persist(rec)
        if rec.state.finished:
            self._finished(rec)
        self._dispatch_soon()

    def _finished(self, rec: TaskRecord) -> None:
        assert rec.result is not None
        for fut in self._waiters.pop(rec.task_id, []):
            if not fut.done():
                fut.set_result(rec.result)
        submitter = self.members.get(rec.submitter)
        if submitter is not None and submitter.conn is not None and submitter.conn.is_open:
            self._reply(
                submitter.conn,
                SwarmMessage.new(self.agent_id, rec.result, recipient=submitter.agent_id),
            )
        self._notify()

    def _persist(self, *recs: TaskRecord) -> None:
        """Store changed records and queue them for replication to peer coordinators."""
        changes = self._task_changes
        for rec in recs:
            self._task_seq += 1
            changes[rec.task_id] = self._task_seq
            changes.move_to_end(rec.task_id)
        if self._store is not None:
            self._store.put_tasks(
                StoredTask(r.task_id, r.state.value, r.to_bytes(), r.updated_ms) for r in recs
            )

    def _persist_own_patterns(self) -> None:
        version = self.intelligence.local_version
        if self._store is not None and version > self._own_persisted:
            blob = self.intelligence.get_own_delta(self._own_persisted)
            self._store.append_patterns(self.agent_id, blob)
        self._own_persisted = version

    def _dispatch_soon(self) -> None:
        if not self._dispatch_scheduled and not self._stopping:
            self._dispatch_scheduled = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_scheduled = False
        if not self.is_leader or self._stopping:
            return
        live = [
            m for m in self.members.values() if m.connected and m.role is not AgentRole.COORDINATOR
        ]
        if not live:
            return
        now = time.monotonic()
        changed: list[TaskRecord] = []
        slots = {
            m.agent_id: n
            for m in live
            if (n := self.tasks.in_flight(m.agent_id)) < self.max_tasks_per_agent
        }
        for rec in self.tasks.pending():
            if not slots:
                break  # every agent is busy: the rest wait for a result
            cands = [
                c
                for m in live
                if m.agent_id in slots and eligible(rec.task, c := m.candidate(slots[m.agent_id]))
            ]
            if not cands:
                continue
            fresh = [c for c in cands if c.agent_id not in rec.excluded]
            choice = self.allocator.choose(rec.task, fresh or cands)
            if choice is None:
                continue
            target = self.members[choice.agent_id]
            assert target.conn is not None
            self.tasks.assign(rec.task_id, choice.agent_id, now)
            changed.append(rec)
            self._dispatched += 1
            if slots[choice.agent_id] + 1 >= self.max_tasks_per_agent:
                del slots[choice.agent_id]
            else:
                slots[choice.agent_id] += 1
            if not self._reply(
                target.conn, SwarmMessage.directed(self.agent_id, choice.agent_id, rec.task)
            ):
                self.tasks.fail_attempt(rec.task_id, choice.agent_id, "send queue full")
        if changed:
            self._persist(*changed)

    def _on_leave(self, member: Member, reason: str) -> None:
        logger.info("agent %s left: %s", member.agent_id, reason or "no reason given")
        self._drop_member(member, "left the swarm")
        if member.conn is not None:
            conn, member.conn = member.conn, None
            self._spawn(conn.close("agent left"), "close")

    def _drop_member(self, member: Member, why: str) -> None:
        # A follower's board is a replica of the leader's: only the leader retries tasks.
        changed = self.tasks.agent_lost(member.agent_id) if self.is_leader else []
        for rec in changed:
            rec.history.append(why)
            if rec.state.finished:
                self._finished(rec)
        self._retried += sum(1 for r in changed if r.state is TaskState.PENDING)
        self._persist(*changed)
        self.members.pop(member.agent_id, None)
        self.agent_versions.pop(member.agent_id, None)
        self._notify()
        self._dispatch_soon()

    # ================================================================ maintenance
    async def _maintain(self) -> None:
        period = max(0.01, self.heartbeat / 2)
        due = time.monotonic() + period
        while True:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            now = time.monotonic()
            stall = now - due
            if stall > period:
                # This loop (and so every reader) was starved: what agents sent meanwhile
                # is still unread, so the stall must not count as their silence.
                logger.warning("coordinator event loop stalled for %.1f s", stall)
                for m in self.members.values():
                    m.last_seen += stall
                    if m.lost_at is not None:
                        m.lost_at += stall
            due = now + period
            try:
                self._maintain_once(now)
            except EdgeError:
                logger.exception("coordinator maintenance step failed")

    def _maintain_once(self, now: float) -> None:
        limit = _MISSED_HEARTBEATS * self.heartbeat
        for member in list(self.members.values()):
            if member.conn is not None and member.conn.is_open:
                if now - member.last_seen > limit:
                    logger.warning(
                        "agent %s missed %d heartbeats; declaring it failed",
                        member.agent_id,
                        _MISSED_HEARTBEATS,
                    )
                    member.conn.abort("heartbeat timeout")
                    member.conn = None
                    member.lost_at = now
            elif member.lost_at is not None and now - member.lost_at > limit:
                self._lost += 1
                logger.info("agent %s is gone; its tasks go to other agents", member.agent_id)
                self._drop_member(member, "agent lost")
        expired = self.tasks.expired(now) if self.is_leader else []
        for rec in expired:
            agent = rec.assigned_to or ""
            holder = self.members.get(agent)
            if holder is not None and holder.conn is not None and holder.conn.is_open:
                self._reply(
                    holder.conn,
                    SwarmMessage.error(
                        self.agent_id,
                        ErrorCode.TASK_CANCELLED,
                        f"task {rec.task_id} timed out after {rec.task.timeout_ms} ms",
                        recipient=agent,
                        ref_id=rec.task_id,
                    ),
                )
            elif holder is not None:
                continue  # disconnected holder: wait for the lost-agent rule above
            self.tasks.fail_attempt(rec.task_id, agent, "timed out")
            if rec.state is TaskState.PENDING:
                self._retried += 1
            elif rec.state.finished:
                self._finished(rec)
        if expired:
            self._persist(*expired)
        if len(self.tasks) > self.finished_task_retention:  # bounded with or without a store
            dropped = self.tasks.forget_finished(self.finished_task_retention)
            for tid in dropped:
                self._task_changes.pop(tid, None)
            if self._store is not None:
                self._store.delete_tasks(dropped)
        if self._store is not None and self._store.pattern_log_length >= self.compact_every:
            self._compact(self._store)
        if self._election is not None:
            self._send_election(self._election.tick())
        self._dispatch_soon()

    def _compact(self, store: SwarmStore) -> None:
        store.compact_patterns(self.intelligence.serialize_state())

    # ================================================================ waiting helpers
    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until ``predicate()`` holds (re-checked on every roster/task change)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                event = self._changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), 0.25)

    async def wait_for_agents(self, count: int, timeout: float = 30.0) -> None:
        """Wait until at least ``count`` agents are connected."""
        await self.wait_until(lambda: self.connected_agents() >= count, timeout)

    def connected_agents(self) -> int:
        """How many agents are connected now."""
        return sum(1 for m in self.members.values() if m.connected)

    def roster(self) -> list[PeerInfo]:
        """The live roster (connected and recently lost agents)."""
        return self._roster()

    def stats(self) -> CoordinatorStats:
        """A snapshot of counters and gauges."""
        swarm = self.intelligence.get_swarm_stats()
        listener_rejects = dict(self._listener.stats.errors_by_code) if self._listener else {}
        rejected = dict(self._rejected)
        for code, n in listener_rejects.items():
            rejected[code] = rejected.get(code, 0) + n
        return CoordinatorStats(
            coordinator_id=self.agent_id,
            url=self.url,
            is_leader=self.is_leader,
            term=0 if self._election is None else self._election.term,
            leader_id=self.leader_id,
            agents_connected=self.connected_agents(),
            agents_known=len(self.members),
            patterns=swarm.total_patterns,
            pattern_origins=len(self.intelligence.version_vector()),
            memories=self.memory.stats().entries if hasattr(self, "memory") else 0,
            tasks=self.tasks.counts(),
            messages_in=self._messages_in,
            pattern_syncs=self._pattern_syncs,
            memory_syncs=self._memory_syncs,
            pulls=self._pulls,
            pushes=self._pushes,
            catch_ups=self._catch_ups,
            tasks_dispatched=self._dispatched,
            tasks_retried=self._retried,
            agents_lost=self._lost,
            exports_aggregated=self._exports,
            tasks_replicated_in=self._replicated_tasks,
            replies_dropped=self._replies_dropped,
            rejected=sum(rejected.values()),
            rejected_by_code=rejected,
        )

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks_bg.add(task)
        task.add_done_callback(self._tasks_bg.discard)

    # ================================================================ coordinators
    def _new_election(self) -> LeaderElection:
        term, voted_for = 0, None
        if self._store is not None:
            raw = self._store.get_meta("election")
            if raw:
                t, _, v = raw.decode().partition(":")
                term, voted_for = int(t), (v or None)
        self._election_saved = (term, voted_for)
        election = LeaderElection(
            self.agent_id,
            self._election_peers(),
            url=self.url,
            heartbeat_interval=self.heartbeat,
            term=term,
            voted_for=voted_for,
        )
        election.on_leader_change = self._leader_changed
        return election

    def _election_peers(self) -> list[str]:
        # Until a peer's link is up its id is unknown; a placeholder keeps the cluster size
        # (and so the quorum) right, so a lone coordinator cannot elect itself at start.
        return [self._peer_ids_by_url.get(url, f"url:{url}") for url in self.peer_urls]

    def _leader_changed(self, leader_id: str | None, term: int) -> None:
        election = self._election
        assert election is not None
        logger.info("coordinator %s: leader of term %d is %s", self.agent_id, term, leader_id)
        self._notify()
        self._dispatch_soon()
        if leader_id == self.agent_id:
            # Taking over: agents of replicated assignments are still failing over to us.
            self.tasks.extend_deadlines(time.monotonic(), self._takeover_grace())
            return
        if leader_id is None or not election.leader_url:
            return
        for m in self.members.values():  # agents connected here move to the leader
            self._point_to_leader(m)

    def _takeover_grace(self) -> float:
        return (_MISSED_HEARTBEATS + 1) * self.heartbeat

    def _point_to_leader(self, member: Member) -> None:
        election = self._election
        if election is None or election.is_leader or not election.leader_url:
            return
        leader = election.leader_id
        if leader is None or member.conn is None or not member.conn.is_open:
            return
        notice = SwarmMessage.new(
            self.agent_id,
            CoordinatorPayload(coordinator_id=leader, term=election.term, url=election.leader_url),
            recipient=member.agent_id,
        )
        self._reply(member.conn, notice)

    async def _peer_link_loop(self, url: str) -> None:
        """Keep a link open to a peer coordinator; send it our state, take its election msgs."""
        policy = ReconnectPolicy(initial_delay=0.05, max_delay=max(0.2, self.heartbeat))
        delays = policy.delays()
        while not self._stopping:
            try:
                conn = await connect(
                    url,
                    self.identity,
                    role=AgentRole.COORDINATOR,
                    capabilities=(PEER_LINK_CAPABILITY,),
                    join_token=self.join_token,
                    # The peer answers on its own link, so this one is quiet by design.
                    options=self.options.replace(
                        reconnect=None, connect_timeout=2 * self.heartbeat + 1, idle_timeout=None
                    ),
                )
            except AuthError as exc:
                logger.error("peer coordinator %s refused us: %s", url, exc)
                return
            except EdgeError:
                await asyncio.sleep(next(delays))
                continue
            delays = policy.delays()
            assert conn.peer is not None
            peer_id = conn.peer.agent_id
            self.peer_coordinators[peer_id] = conn.peer.public_key
            self._peer_links[peer_id] = conn
            self._peer_ids_by_url[url] = peer_id
            self._update_election_peers()
            try:
                await self._peer_sync_loop(peer_id, conn)
            finally:
                self._peer_links.pop(peer_id, None)
                await conn.close("peer link ended")

    async def _peer_sync_loop(self, peer_id: str, conn: Connection) -> None:
        sent_vv: dict[str, int] = {}
        sent_mem = 0
        sent_tasks = 0
        interval = self.config.sync_interval_ms / 1000.0
        reader = asyncio.ensure_future(self._drain_peer_link(peer_id, conn))
        try:
            while conn.is_open and not reader.done():
                vv = self.intelligence.version_vector()
                if vv != sent_vv:
                    data = self.intelligence.get_delta(sent_vv, identity=self.identity)
                    conn.send_nowait(
                        SwarmMessage.sync_patterns(
                            self.agent_id, data, version_vector=vv, recipient=peer_id
                        )
                    )
                    sent_vv = vv
                if self.memory.version != sent_mem:
                    delta = self.memory.export_delta(sent_mem, limit=self.memory_batch)
                    conn.send_nowait(
                        SwarmMessage.directed(
                            self.agent_id,
                            peer_id,
                            SyncMemoriesPayload(data=delta.data, version=delta.version),
                        )
                    )
                    sent_mem = delta.version
                if self.is_leader and self._task_seq > sent_tasks:
                    self._replicate_tasks(peer_id, conn, sent_tasks)
                    sent_tasks = self._task_seq
                await asyncio.sleep(interval)
        except EdgeError as exc:
            logger.info("peer link to %s: %s", peer_id, exc)
        finally:
            reader.cancel()

    def _replicate_tasks(self, peer_id: str, conn: Connection, since: int) -> None:
        """Send ``peer_id`` every task record changed after sequence ``since``."""
        changed: list[str] = []
        for tid in reversed(self._task_changes):  # newest first; stop at what was sent
            if self._task_changes[tid] <= since:
                break
            changed.append(tid)
        records = [self.tasks.get(t).to_bytes() for t in reversed(changed) if t in self.tasks]
        term = self._election.term if self._election is not None else 0
        for i in range(0, len(records), _TASK_BATCH):
            conn.send_nowait(
                SwarmMessage.data(
                    self.agent_id,
                    TASKS_TOPIC,
                    {"term": term, "records": records[i : i + _TASK_BATCH]},
                    recipient=peer_id,
                )
            )

    def _adopt_tasks(self, peer_id: str, data: object) -> None:
        """Take task records replicated by the leader ``peer_id``."""
        election = self._election
        if election is None or election.leader_id != peer_id or election.is_leader:
            logger.debug("ignored task records from %s: not our leader", peer_id)
            return
        if not isinstance(data, dict) or not isinstance(data.get("records"), list):
            raise InvalidInputError("task replication needs {'term', 'records': [bytes...]}")
        try:
            records = [TaskRecord.from_bytes(bytes(r)) for r in data["records"]]
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"unreadable replicated task record: {exc}") from None
        self.tasks.restore(records, time.monotonic(), grace=self._takeover_grace())
        self._persist(*records)
        self._replicated_tasks += len(records)

    async def _drain_peer_link(self, peer_id: str, conn: Connection) -> None:
        async for msg in conn:  # the peer answers VOTEs on our link
            if msg.sender == peer_id and msg.type in _ELECTION_TYPES:
                self._on_election_message(msg)

    async def _serve_peer_coordinator(self, conn: Connection) -> None:
        assert conn.peer is not None
        peer_id = conn.peer.agent_id
        self.peer_coordinators[peer_id] = conn.peer.public_key
        async for msg in conn:
            if msg.sender != peer_id:
                self._reject(conn, msg, ErrorCode.FORGED_SENDER, "sender is not the link's peer")
                continue
            try:
                if msg.type is MessageType.SYNC_PATTERNS:
                    assert isinstance(msg.payload, SyncPatternsPayload)
                    self._merge_patterns(peer_id, msg.payload.data, only=None)
                elif msg.type is MessageType.SYNC_MEMORIES:
                    assert isinstance(msg.payload, SyncMemoriesPayload)
                    self.memory.merge(msg.payload.data)
                    self._memory_syncs += 1
                elif msg.type in _ELECTION_TYPES:
                    self._on_election_message(msg)
                elif msg.type is MessageType.DATA:
                    assert isinstance(msg.payload, DataPayload)
                    if msg.payload.topic == TASKS_TOPIC:
                        self._adopt_tasks(peer_id, msg.payload.data)
            except EdgeError as exc:
                self._reject(conn, msg, exc.code, exc.message)

    def _update_election_peers(self) -> None:
        if self._election is not None:
            self._election.set_peers(self._election_peers())

    def _on_election_message(self, msg: SwarmMessage) -> None:
        if self._election is None:
            return
        self._send_election(self._election.handle(msg))

    def _send_election(self, outbound: Sequence[Outbound]) -> None:
        election = self._election
        if election is None:
            return
        durable = election.durable_state()
        if durable != self._election_saved and self._store is not None:
            # Raft: persist (term, voted_for) before any message reveals them.
            self._store.set_meta("election", f"{durable[0]}:{durable[1] or ''}".encode())
        self._election_saved = durable
        for out in outbound:
            if out.recipient is None:
                links = list(self._peer_links.values())
            else:
                link = self._peer_links.get(out.recipient)
                links = [] if link is None else [link]
            for link in links:
                if link.is_open:
                    self._reply(link, out.message)


@dataclasses.dataclass(slots=True)
class _Spread:
    origin: str
    version: int
    sent_ms: int


_ELECTION_TYPES = frozenset({MessageType.ELECTION, MessageType.VOTE, MessageType.COORDINATOR})
