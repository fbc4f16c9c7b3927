"""Federated learning across ephemeral agents (seed names, real averaging).

* :class:`EphemeralAgent` learns locally and exports trajectories **and** its LoRA weights.
* :class:`FederatedCoordinator` filters trajectories by quality, replays the accepted ones
  into its master engine (ReasoningBank patterns, and MicroLoRA learning when the export
  carries activations), and folds the exported weights into its own by online FedAvg::

      c_i = sum of accepted qualities of export i   (= accepted trajectories x mean quality)
      C  <- C + c_i
      W  <- W + (c_i / C) * (W_i - W)              # for every adapter matrix

  Without replay learning ``W`` is exactly ``sum_i c_i W_i / sum_i c_i``. All agents of one
  federation must start from the same adapter initialisation (same ``SonaConfig.seed``, the
  default, or a warm start from the coordinator) so that averaging factors is meaningful.
  BaseLoRA ranks may differ: lower ranks are zero-padded (exact), higher ranks re-factorised
  by truncated SVD of ``up @ down`` (:func:`fit_base_rank`).
* New agents warm-start from :meth:`FederatedCoordinator.warm_start` (weights + patterns).
"""

from __future__ import annotations

import dataclasses
import enum
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec
import numpy as np

from ruvector_edge.errors import CodecError, ConfigError, DimensionError, InvalidInputError
from ruvector_edge.sona._util import F32, as_quality, as_vector
from ruvector_edge.sona.config import SonaConfig
from ruvector_edge.sona.engine import LoraWeights, SonaEngine
from ruvector_edge.sona.lora import fit_base_rank
from ruvector_edge.sona.types import LearnedPattern

__all__ = [
    "AgentContribution",
    "AgentExport",
    "AgentExportStats",
    "AggregationResult",
    "CoordinatorStats",
    "EphemeralAgent",
    "FederatedCoordinator",
    "FederatedNetwork",
    "FederatedTopology",
    "TopologyKind",
    "TrajectoryExport",
    "WarmStart",
    "federated_average",
    "fit_base_rank",
]

_F32 = np.float32
ClockMs = Callable[[], int]


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- data types ------------------------------------------------------------------------
@dataclass
class TrajectoryExport:
    """One exported trajectory (seed fields plus the activations the agent used)."""

    embedding: Any
    quality: float
    route: str | None = None
    context: list[str] = field(default_factory=list)
    timestamp: int = 0
    activations: Any = None


@dataclass
class AgentExportStats:
    """Agent statistics in an export."""

    total_trajectories: int = 0
    avg_quality: float = 0.0
    patterns_learned: int = 0


@dataclass
class AgentExport:
    """Everything an agent hands to a coordinator before it ends."""

    agent_id: str
    trajectories: list[TrajectoryExport] = field(default_factory=list)
    stats: AgentExportStats = field(default_factory=AgentExportStats)
    session_duration_ms: int = 0
    timestamp: int = 0
    weights: LoraWeights | None = None


@dataclass
class AgentContribution:
    """What one agent (or region) contributed so far."""

    trajectory_count: int
    avg_quality: float
    timestamp: int
    session_duration_ms: int
    fedavg_weight: float = 0.0


@dataclass
class AggregationResult:
    """Outcome of :meth:`FederatedCoordinator.aggregate`."""

    agent_id: str
    trajectories_accepted: int
    trajectories_rejected: int
    consolidated: bool
    total_agents: int
    total_trajectories: int
    fedavg_weight: float = 0.0
    duplicate: bool = False


@dataclass
class CoordinatorStats:
    """Coordinator statistics."""

    coordinator_id: str
    total_agents: int
    total_trajectories: int
    patterns_learned: int
    avg_quality: float
    quality_threshold: float

    def __str__(self) -> str:
        return (
            f"Coordinator(id={self.coordinator_id}, agents={self.total_agents}, "
            f"trajectories={self.total_trajectories}, patterns={self.patterns_learned}, "
            f"avg_quality={self.avg_quality:.4f})"
        )


@dataclass
class WarmStart:
    """Initial state for a new agent: coordinator weights and its best patterns."""

    weights: LoraWeights
    patterns: list[LearnedPattern]


# -- weight algebra --------------------------------------------------------------------
def _check_micro(w: LoraWeights, ref: LoraWeights) -> None:
    if w.micro_down.shape != ref.micro_down.shape or w.micro_up.shape != ref.micro_up.shape:
        raise DimensionError(
            f"MicroLoRA shapes {w.micro_down.shape}/{w.micro_up.shape} do not match "
            f"{ref.micro_down.shape}/{ref.micro_up.shape}; "
            "federate agents of one dimension and rank"
        )
    if (
        w.base_down.shape[0] != ref.base_down.shape[0]
        or w.base_down.shape[2] != ref.base_down.shape[2]
    ):
        raise DimensionError("BaseLoRA layer count or dimension differs from the coordinator's")


def federated_average(weights: Sequence[LoraWeights], coefficients: Sequence[float]) -> LoraWeights:
    """``sum_i c_i W_i / sum_i c_i`` for every adapter matrix (BaseLoRA ranks fitted to the
    first entry's). Coefficients must be >= 0 with a positive sum."""
    if not weights or len(weights) != len(coefficients):
        raise InvalidInputError("federated_average needs as many coefficients as weights (>= 1)")
    c = np.asarray(coefficients, dtype=np.float64)
    if not np.isfinite(c).all() or (c < 0).any() or c.sum() <= 0:
        raise InvalidInputError("FedAvg coefficients must be finite, >= 0, with a positive sum")
    ref = weights[0]
    rank = ref.base_down.shape[1]
    acc = [np.zeros(ref.micro_down.shape), np.zeros(ref.micro_up.shape)]
    acc += [np.zeros(ref.base_down.shape), np.zeros(ref.base_up.shape)]
    for w, ci in zip(weights, c, strict=True):
        _check_micro(w, ref)
        bd, bu = fit_base_rank(w.base_down, w.base_up, rank)
        for i, m in enumerate((w.micro_down, w.micro_up, bd, bu)):
            acc[i] += ci * m
    total = c.sum()
    out = [(a / total).astype(_F32) for a in acc]
    return LoraWeights(out[0], out[1], out[2], out[3])


# -- agent -----------------------------------------------------------------------------
class _SavedCoordinator(msgspec.Struct, frozen=True):
    engine: bytes
    threshold: float
    interval: int
    total: int
    quality_sum: float
    fedavg_total: float
    contributions: dict[str, dict[str, Any]]
    seen: list[list[Any]]


class EphemeralAgent:
    """A short-lived learner that exports its state to a coordinator before it ends."""

    def __init__(
        self,
        agent_id: str,
        config: SonaConfig,
        *,
        warm_start: WarmStart | None = None,
        clock_ms: ClockMs = _now_ms,
    ) -> None:
        if not isinstance(agent_id, str) or not agent_id or len(agent_id) > 128:
            raise InvalidInputError(f"agent id must be 1-128 characters, got {agent_id!r}")
        self._agent_id = agent_id
        self._engine = SonaEngine.with_config(config)
        self._clock_ms = clock_ms
        self._start = clock_ms()
        self._trajectories: list[TrajectoryExport] = []
        self._quality_sum = 0.0
        if warm_start is not None:
            self._engine.import_weights(warm_start.weights)
            for p in warm_start.patterns:
                self._engine.reasoning_bank.add_pattern(p)

    @classmethod
    def default_federated(
        cls,
        agent_id: str,
        hidden_dim: int,
        *,
        warm_start: WarmStart | None = None,
        clock_ms: ClockMs = _now_ms,
        **overrides: Any,
    ) -> EphemeralAgent:
        """Seed defaults: micro rank 2, base rank 8, lr 0.002, 500 buffer, 25 clusters.

        ``overrides`` are :class:`SonaConfig` fields.
        """
        cfg = SonaConfig(
            hidden_dim=hidden_dim,
            embedding_dim=hidden_dim,
            micro_lora_rank=2,
            base_lora_rank=8,
            micro_lora_lr=0.002,
            trajectory_capacity=500,
            pattern_clusters=25,
        ).replace(**overrides)
        return cls(agent_id, cfg, warm_start=warm_start, clock_ms=clock_ms)

    @property
    def agent_id(self) -> str:
        """Agent identifier."""
        return self._agent_id

    @property
    def engine(self) -> SonaEngine:
        """The agent's engine."""
        return self._engine

    def process_trajectory(
        self,
        embedding: Any,
        activations: Any,
        quality: float,
        route: str | None = None,
        context: Sequence[str] = (),
    ) -> None:
        """Record a one-step trajectory locally (instant learning) and keep it for export."""
        q = as_quality(quality)
        emb = as_vector(embedding, self._engine.hidden_dim, "embedding")
        acts = None
        if activations is not None and len(activations):
            acts = as_vector(activations, self._engine.hidden_dim, "activations")
        b = self._engine.begin_trajectory(emb)
        if route is not None:
            b.set_model_route(route)
        ctx = [str(c) for c in context]
        for c in ctx:
            b.add_context(c)
        b.add_step(acts, None, q)
        self._engine.end_trajectory(b, q)
        self._trajectories.append(TrajectoryExport(emb, q, route, ctx, self._clock_ms(), acts))
        self._quality_sum += q

    def apply_micro_lora(self, input: Any, out: F32 | None = None) -> F32:
        """Adapted hidden state (new array) or ``out += delta`` (seed style)."""
        return self._engine.apply_micro_lora(input, out)

    def trajectory_count(self) -> int:
        """Trajectories collected."""
        return len(self._trajectories)

    def avg_quality(self) -> float:
        """Mean quality of collected trajectories (0 if none)."""
        n = len(self._trajectories)
        return self._quality_sum / n if n else 0.0

    def force_learn(self) -> str:
        """Run the agent's background cycle now."""
        return self._engine.force_learn()

    def export_state(self) -> AgentExport:
        """Learn once more, then export trajectories, stats and adapter weights."""
        now = self._clock_ms()
        self._engine.force_learn()
        return AgentExport(
            agent_id=self._agent_id,
            trajectories=list(self._trajectories),
            stats=AgentExportStats(
                total_trajectories=len(self._trajectories),
                avg_quality=self.avg_quality(),
                patterns_learned=self._engine.stats().patterns_stored,
            ),
            session_duration_ms=max(0, now - self._start),
            timestamp=now,
            weights=self._engine.export_weights(),
        )


# -- coordinator -----------------------------------------------------------------------
class FederatedCoordinator:
    """Aggregates agent exports: quality filter, replay, FedAvg, periodic consolidation.

    ``replay_learning`` lets replayed trajectories that carry activations train the master
    MicroLoRA as well (on top of FedAvg); turn it off for pure FedAvg.
    """

    def __init__(
        self,
        coordinator_id: str,
        config: SonaConfig,
        *,
        replay_learning: bool = True,
        clock_ms: ClockMs = _now_ms,
    ) -> None:
        self._id = coordinator_id
        self._engine = SonaEngine.with_config(config, auto_task_boundaries=False)
        self._contrib: dict[str, AgentContribution] = {}
        self._threshold = 0.4
        self._interval = 50
        self._total = 0
        self._quality_sum = 0.0
        self._fedavg_total = 0.0
        self._clock_ms = clock_ms
        self._seen: set[tuple[str, int, int]] = set()
        self._outbox: list[TrajectoryExport] = []
        self._outbox_weight = 0.0
        self.replay_learning = replay_learning
        self._last_export_ms = 0

    @classmethod
    def default_coordinator(
        cls, coordinator_id: str, hidden_dim: int, **overrides: Any
    ) -> FederatedCoordinator:
        """Seed defaults: micro rank 2, base rank 16, 50k buffer, 200 clusters, lambda 2000."""
        replay = bool(overrides.pop("replay_learning", True))
        cfg = SonaConfig(
            hidden_dim=hidden_dim,
            embedding_dim=hidden_dim,
            micro_lora_rank=2,
            base_lora_rank=16,
            trajectory_capacity=50000,
            pattern_clusters=200,
            ewc_lambda=2000.0,
        ).replace(**overrides)
        return cls(coordinator_id, cfg, replay_learning=replay)

    @property
    def coordinator_id(self) -> str:
        """Coordinator identifier."""
        return self._id

    @property
    def master_engine(self) -> SonaEngine:
        """The master engine holding aggregated patterns and weights."""
        return self._engine

    @property
    def quality_threshold(self) -> float:
        """Minimum quality of an accepted trajectory."""
        return self._threshold

    def set_quality_threshold(self, threshold: float) -> None:
        """Accept trajectories with ``quality >= threshold``."""
        self._threshold = as_quality(threshold, "quality threshold")

    def set_consolidation_interval(self, interval: int) -> None:
        """Consolidate every ``interval`` contributing agents (>= 1)."""
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ConfigError(f"consolidation interval must be an int >= 1, got {interval!r}")
        self._interval = interval

    def aggregate(self, export: AgentExport) -> AggregationResult:
        """Fold one export in (a repeated export of the same agent/timestamp is ignored)."""
        if not isinstance(export, AgentExport):
            raise InvalidInputError("aggregate expects an AgentExport")
        key = (export.agent_id, int(export.timestamp), len(export.trajectories))
        if export.timestamp and key in self._seen:
            return AggregationResult(
                export.agent_id, 0, 0, False, len(self._contrib), self._total, 0.0, True
            )
        d = self._engine.hidden_dim
        # Validate everything before any state changes: a bad export changes nothing.
        accepted: list[TrajectoryExport] = []
        rows: list[tuple[F32, F32 | None, float]] = []
        rejected = 0
        for t in export.trajectories:
            q = as_quality(t.quality)
            if q < self._threshold:
                rejected += 1
                continue
            emb = as_vector(t.embedding, d, "trajectory embedding")
            acts = None
            if t.activations is not None and len(t.activations):
                acts = as_vector(t.activations, d, "activations")
            if t.route is not None and (not isinstance(t.route, str) or not t.route):
                raise InvalidInputError(f"trajectory route must be a non-empty string: {t.route!r}")
            accepted.append(t)
            rows.append((emb, acts, q))
        weight = float(sum(q for _, _, q in rows))
        if export.weights is not None:
            _check_micro(export.weights, self._engine.export_weights())
        if export.weights is not None and weight > 0:
            self._fedavg(export.weights, weight)
        eng = self._engine
        saved = eng.instant_enabled
        eng.instant_enabled = self.replay_learning
        try:
            for t, (emb, acts, q) in zip(accepted, rows, strict=True):
                b = eng.begin_trajectory(emb)
                if t.route is not None:
                    b.set_model_route(t.route)
                for c in t.context:
                    b.add_context(str(c))
                if acts is not None:
                    b.add_step(acts, None, q)
                eng.end_trajectory(b, q)
        finally:
            eng.instant_enabled = saved
        self._total += len(accepted)
        self._quality_sum += weight
        self._outbox.extend(accepted)
        self._outbox_weight += weight
        if export.timestamp:
            self._seen.add(key)
        prev = self._contrib.get(export.agent_id)
        n = len(export.trajectories)
        self._contrib[export.agent_id] = AgentContribution(
            trajectory_count=n + (prev.trajectory_count if prev else 0),
            avg_quality=float(export.stats.avg_quality),
            timestamp=self._clock_ms(),
            session_duration_ms=int(export.session_duration_ms),
            fedavg_weight=weight + (prev.fedavg_weight if prev else 0.0),
        )
        consolidated = len(self._contrib) % self._interval == 0 and prev is None
        if consolidated:
            eng.force_learn()
        return AggregationResult(
            agent_id=export.agent_id,
            trajectories_accepted=len(accepted),
            trajectories_rejected=rejected,
            consolidated=consolidated,
            total_agents=len(self._contrib),
            total_trajectories=self._total,
            fedavg_weight=weight,
        )

    def _fedavg(self, incoming: LoraWeights, weight: float) -> None:
        current = self._engine.export_weights()
        _check_micro(incoming, current)
        bd, bu = fit_base_rank(incoming.base_down, incoming.base_up, current.base_down.shape[1])
        self._fedavg_total += weight
        step = _F32(weight / self._fedavg_total)
        merged = LoraWeights(
            current.micro_down + step * (incoming.micro_down - current.micro_down),
            current.micro_up + step * (incoming.micro_up - current.micro_up),
            current.base_down + step * (bd - current.base_down),
            current.base_up + step * (bu - current.base_up),
        )
        self._engine.import_weights(merged)

    def force_consolidate(self) -> str:
        """Run the master's background cycle now."""
        return self._engine.force_learn()

    def save_state(self) -> bytes:
        """Serialise the master engine, the counters, the contributions and the duplicate
        guard (not the forwarding outbox: call :meth:`export_state` before saving)."""
        doc = _SavedCoordinator(
            engine=self._engine.save_state(),
            threshold=self._threshold,
            interval=self._interval,
            total=self._total,
            quality_sum=self._quality_sum,
            fedavg_total=self._fedavg_total,
            contributions={k: dataclasses.asdict(v) for k, v in self._contrib.items()},
            seen=[list(k) for k in self._seen],
        )
        return msgspec.msgpack.encode(doc)

    def load_state(self, data: bytes) -> None:
        """Replace this coordinator's state with :meth:`save_state` output (same hidden
        dimension); damaged data raises ``CodecError`` and changes nothing."""
        try:
            doc = msgspec.msgpack.decode(data, type=_SavedCoordinator)
            contrib = {k: AgentContribution(**v) for k, v in doc.contributions.items()}
            seen = {(str(a), int(t), int(n)) for a, t, n in doc.seen}
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError, ValueError) as exc:
            raise CodecError(f"not a saved federated coordinator: {exc}") from None
        engine = SonaEngine.load_state(doc.engine)
        if engine.hidden_dim != self._engine.hidden_dim:
            raise DimensionError(
                f"saved coordinator has hidden_dim {engine.hidden_dim}, "
                f"this one {self._engine.hidden_dim}"
            )
        engine.boundary_detector = None  # as in __init__: task boundaries come from callers
        self._engine = engine
        self._threshold = doc.threshold
        self._interval = doc.interval
        self._total = doc.total
        self._quality_sum = doc.quality_sum
        self._fedavg_total = doc.fedavg_total
        self._contrib = contrib
        self._seen = seen

    def get_initial_patterns(self, k: int) -> list[LearnedPattern]:
        """The ``k`` heaviest patterns (for warm starts); all patterns if fewer."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise InvalidInputError(f"k must be an int >= 0, got {k!r}")
        return self._engine.get_all_patterns()[:k]

    def get_all_patterns(self) -> list[LearnedPattern]:
        """Every learned pattern, heaviest first."""
        return self._engine.get_all_patterns()

    def warm_start(self, k: int = 100) -> WarmStart:
        """Weights and the ``k`` heaviest patterns for a new agent."""
        return WarmStart(self._engine.export_weights(), self.get_initial_patterns(k))

    def stats(self) -> CoordinatorStats:
        """Coordinator statistics (``avg_quality`` over accepted trajectories)."""
        return CoordinatorStats(
            coordinator_id=self._id,
            total_agents=len(self._contrib),
            total_trajectories=self._total,
            patterns_learned=self._engine.stats().patterns_stored,
            avg_quality=self._quality_sum / self._total if self._total else 0.0,
            quality_threshold=self._threshold,
        )

    def contributions(self) -> dict[str, AgentContribution]:
        """Contribution per agent id (a copy)."""
        return dict(self._contrib)

    def export_state(self) -> AgentExport:
        """An export of what arrived since the last call (for forwarding up a hierarchy or
        to peers): accepted trajectories since then and the current master weights.
        Timestamps strictly increase, so receivers never mistake two forwards for one."""
        now = max(self._clock_ms(), self._last_export_ms + 1)
        self._last_export_ms = now
        trajs, self._outbox = self._outbox, []
        self._outbox_weight = 0.0
        q = [float(t.quality) for t in trajs]
        return AgentExport(
            agent_id=self._id,
            trajectories=trajs,
            stats=AgentExportStats(
                total_trajectories=len(trajs),
                avg_quality=float(np.mean(q)) if q else 0.0,
                patterns_learned=self._engine.stats().patterns_stored,
            ),
            session_duration_ms=0,
            timestamp=now,
            weights=self._engine.export_weights(),
        )


# -- topologies ------------------------------------------------------------------------
class TopologyKind(enum.Enum):
    """Shape of a federation."""

    STAR = "star"
    HIERARCHICAL = "hierarchical"
    PEER_TO_PEER = "peer_to_peer"


@dataclass(frozen=True)
class FederatedTopology:
    """``STAR``, ``HIERARCHICAL(regions)`` or ``PEER_TO_PEER`` (seed variants)."""

    kind: TopologyKind = TopologyKind.STAR
    regions: int = 1

    STAR: ClassVar[FederatedTopology]
    PEER_TO_PEER: ClassVar[FederatedTopology]

    def __post_init__(self) -> None:
        if self.regions < 1:
            raise ConfigError(f"a topology needs >= 1 region, got {self.regions}")

    @staticmethod
    def HIERARCHICAL(regions: int) -> FederatedTopology:  # noqa: N802
        """Agents -> ``regions`` regional coordinators -> one global coordinator."""
        return FederatedTopology(TopologyKind.HIERARCHICAL, regions)

    @staticmethod
    def hierarchical(regions: int) -> FederatedTopology:
        """Same as :meth:`HIERARCHICAL`."""
        return FederatedTopology(TopologyKind.HIERARCHICAL, regions)


FederatedTopology.STAR = FederatedTopology(TopologyKind.STAR)
FederatedTopology.PEER_TO_PEER = FederatedTopology(TopologyKind.PEER_TO_PEER)


def _stable_hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


class FederatedNetwork:
    """Runs a federation in one of the three topologies (in process; each export can also
    travel over the swarm transport with :func:`~ruvector_edge.sona.encode_export`).

    * STAR: every export goes to ``coordinators[0]``.
    * HIERARCHICAL(r): an agent's export goes to region ``crc32(agent_id) % r``;
      :meth:`sync` forwards each region's new data (its ``export_state``) to the global one.
    * PEER_TO_PEER: ``peers`` nodes, each a coordinator; an export lands on its agent's home
      peer and :meth:`sync` gossips every known export to ``fanout`` random peers per round
      until all peers have all exports (duplicates are ignored by each peer).
    """

    def __init__(
        self,
        topology: FederatedTopology,
        hidden_dim: int,
        *,
        peers: int = 4,
        fanout: int = 2,
        seed: int = 0,
        quality_threshold: float = 0.4,
        coordinator_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.topology = topology
        over = dict(coordinator_overrides or {})
        k = topology.kind

        def make(name: str) -> FederatedCoordinator:
            c = FederatedCoordinator.default_coordinator(name, hidden_dim, **dict(over))
            c.set_quality_threshold(quality_threshold)
            return c

        self.global_coordinator: FederatedCoordinator | None = None
        if k is TopologyKind.STAR:
            self.nodes = [make("global")]
            self.global_coordinator = self.nodes[0]
        elif k is TopologyKind.HIERARCHICAL:
            self.nodes = [make(f"region-{i}") for i in range(topology.regions)]
            self.global_coordinator = make("global")
            self.global_coordinator.set_quality_threshold(quality_threshold)
        else:
            if peers < 1:
                raise ConfigError("peer-to-peer federation needs >= 1 peer")
            self.nodes = [make(f"peer-{i}") for i in range(peers)]
        self.fanout = max(1, fanout)
        self._rng = np.random.default_rng(seed)
        self._known: list[dict[tuple[str, int], AgentExport]] = [{} for _ in self.nodes]

    def home(self, agent_id: str) -> int:
        """Index of the node that receives ``agent_id``'s exports."""
        return _stable_hash(agent_id) % len(self.nodes)

    def submit(self, export: AgentExport) -> AggregationResult:
        """Deliver an agent export to its home node."""
        i = self.home(export.agent_id)
        if self.topology.kind is TopologyKind.PEER_TO_PEER:
            self._known[i][(export.agent_id, export.timestamp)] = export
        return self.nodes[i].aggregate(export)

    def sync(self, max_rounds: int = 64) -> int:
        """Propagate learning: regions forward to the global node, or peers gossip until
        every peer has every export. Returns the number of rounds used."""
        k = self.topology.kind
        if k is TopologyKind.STAR:
            return 0
        if k is TopologyKind.HIERARCHICAL:
            assert self.global_coordinator is not None
            for node in self.nodes:
                fwd = node.export_state()
                if fwd.trajectories:
                    self.global_coordinator.aggregate(fwd)
            return 1
        everything = set().union(*(set(kn) for kn in self._known))
        n = len(self.nodes)
        for rnd in range(1, max_rounds + 1):
            deliveries: list[tuple[int, AgentExport]] = []
            for i in range(n):
                if n == 1:
                    break
                targets = self._rng.choice(
                    [j for j in range(n) if j != i], size=min(self.fanout, n - 1), replace=False
                )
                for j in targets:
                    for key, exp in self._known[i].items():
                        if key not in self._known[int(j)]:
                            deliveries.append((int(j), exp))
            for j, exp in deliveries:
                key = (exp.agent_id, exp.timestamp)
                if key not in self._known[j]:
                    self._known[j][key] = exp
                    self.nodes[j].aggregate(exp)
            if all(set(kn) == everything for kn in self._known):
                return rnd
        return max_rounds

    def model(self) -> FederatedCoordinator:
        """The node whose weights represent the federation (global, or peer 0)."""
        return self.global_coordinator if self.global_coordinator is not None else self.nodes[0]
