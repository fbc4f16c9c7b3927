"""``SonaEngine``: the three learning loops wired together.

* **Instant loop** (every ``end_trajectory``): the MicroLoRA takes one REINFORCE step
  (Adam-normalised, see :mod:`ruvector_edge.sona.optim`).
* **Background loop** (``tick`` when ``background_interval_ms`` has passed, or
  ``force_learn``): buffered trajectories are clustered into patterns (ReasoningBank),
  the BaseLoRA layers take one batched step, patterns are consolidated and pruned.
* **Deep loop** (EWC++): every adapter step is penalised towards the parameters of
  earlier tasks; task boundaries are detected from the query stream (or marked with
  :meth:`SonaEngine.mark_task_boundary`).

Learning signal (the rule, used by both adapters)
-------------------------------------------------
For a trajectory with query ``x``, final quality ``q`` and steps with activations ``a_i``
and rewards ``r_i``::

    advantage = q - b                 # b: running quality baseline before this trajectory
    a_bar     = sum_i w_i a_i / sum_i w_i,   w_i = max(r_i, 0) + 1e-6
    e         = a_bar - y                   # y: the adapter's current output for x
    g         = advantage * e / mean(e**2)  # mean over dimensions
    b        <- b + baseline_rate * (q - b) # b starts at 0.5

``g`` is the REINFORCE estimate ``advantage * (a - mu) / sigma**2`` for a Gaussian policy
centred on the adapter's output, with ``sigma**2`` estimated from the deviation itself (so
the step does not depend on the exploration scale): when the activations the system
actually used scored above the baseline, the adapter is pulled towards them, otherwise
pushed away. For a quality linear in ``a`` its expectation is the quality gradient.
It is non-zero for single-step trajectories (unlike the seed's ``sum (r_i - mean r) a_i``,
which vanishes with one step). Steps without activations carry no direction, so a
trajectory without any gives no adapter update (it still feeds the ReasoningBank).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np

from ruvector_edge.errors import InvalidInputError, StorageError
from ruvector_edge.sona import _state
from ruvector_edge.sona._util import F32, Clock, as_vector, monotonic_clock, wall_clock
from ruvector_edge.sona.config import SonaConfig
from ruvector_edge.sona.ewc import EwcConfig, EwcPlusPlus, TaskBoundaryDetector
from ruvector_edge.sona.lora import BaseLoRA, MicroLoRA, fit_base_rank
from ruvector_edge.sona.optim import Adam
from ruvector_edge.sona.reasoning_bank import PatternConfig, ReasoningBank
from ruvector_edge.sona.trajectory import TrajectoryBuffer, TrajectoryBuilder
from ruvector_edge.sona.types import LearnedPattern, QueryTrajectory

__all__ = ["BackgroundResult", "LoraWeights", "SonaEngine", "SonaStats", "learning_signal"]

_F32 = np.float32
BASELINE_START = 0.5
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(
    fn: Callable[Concatenate[SonaEngine, _P], _R],
) -> Callable[Concatenate[SonaEngine, _P], _R]:
    @functools.wraps(fn)
    def wrapper(self: SonaEngine, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock:
            return fn(self, *args, **kwargs)

    return wrapper


@dataclass
class SonaStats:
    """Engine statistics (the seed's fields first)."""

    trajectories_buffered: int
    trajectories_dropped: int
    buffer_success_rate: float
    patterns_stored: int
    ewc_tasks: int
    instant_enabled: bool
    background_enabled: bool
    trajectories_seen: int = 0
    micro_updates: int = 0
    background_cycles: int = 0
    quality_baseline: float = BASELINE_START


@dataclass
class BackgroundResult:
    """What one background cycle did."""

    trajectories_processed: int
    patterns_extracted: int
    base_lora_samples: int
    patterns_merged: int
    patterns_pruned: int
    elapsed_s: float
    status: str


@dataclass
class LoraWeights:
    """Both adapters' weights.

    MicroLoRA ``(rank, d)``/``(d, rank)``; BaseLoRA ``(L, r, d)``/``(L, d, r)``.
    """

    micro_down: F32
    micro_up: F32
    base_down: F32
    base_up: F32

    def copy(self) -> LoraWeights:
        """Deep copy."""
        return LoraWeights(
            self.micro_down.copy(), self.micro_up.copy(), self.base_down.copy(), self.base_up.copy()
        )


def learning_signal(
    trajectory: QueryTrajectory, adapted: F32, baseline: float
) -> tuple[float, F32 | None]:
    """``(advantage, g)`` for ``trajectory`` (see the module docstring); ``g`` is None
    when no step has activations."""
    adv = float(trajectory.final_quality) - baseline
    acts = [s for s in trajectory.steps if s.activations.shape[0]]
    if not acts:
        return adv, None
    if len(acts) == 1:
        a_bar = acts[0].activations
    else:
        w = np.array([max(s.reward, 0.0) + 1e-6 for s in acts], dtype=_F32)
        a_bar = (w @ np.stack([s.activations for s in acts])) / w.sum()
    e = (a_bar - adapted).astype(_F32)
    var = float(np.dot(e, e)) / e.shape[0]
    if var <= 1e-12:
        return adv, None
    return adv, (e * _F32(adv / var)).astype(_F32)


class SonaEngine:
    """Self-optimising learning engine (MicroLoRA + BaseLoRA + ReasoningBank + EWC++).

    ``clock`` (monotonic seconds) drives the background interval and ``wall`` (epoch
    seconds) pattern timestamps; both are injectable for tests. Learning, pattern and state
    calls take an internal re-entrant lock, so threads may share an engine;
    ``apply_micro_lora`` is lock-free and always sees a consistent pair of projections.
    """

    def __init__(
        self,
        hidden_dim: int = 256,
        *,
        config: SonaConfig | None = None,
        clock: Clock = monotonic_clock,
        wall: Clock = wall_clock,
        auto_task_boundaries: bool = True,
    ) -> None:
        cfg = (
            config
            if config is not None
            else SonaConfig(hidden_dim=hidden_dim, embedding_dim=hidden_dim)
        )
        self._config = cfg
        self._clock = clock
        self._wall = wall
        d = cfg.hidden_dim
        self.micro_lora = MicroLoRA(d, cfg.micro_lora_rank, seed=cfg.seed)
        self.base_lora = BaseLoRA(d, cfg.base_lora_rank, cfg.base_lora_layers, seed=cfg.seed)
        self.reasoning_bank = ReasoningBank(
            PatternConfig(
                k_clusters=cfg.pattern_clusters,
                embedding_dim=d,
                max_trajectories=cfg.trajectory_capacity,
                quality_threshold=cfg.quality_threshold,
                merge_similarity=cfg.merge_similarity,
                max_patterns=cfg.max_patterns,
                prune_min_quality=cfg.quality_threshold,
            ),
            seed=cfg.seed,
            clock=wall,
        )
        lam = cfg.ewc_lambda
        lo, hi = min(100.0, lam), max(15000.0, lam)
        self.ewc_micro = EwcPlusPlus(
            EwcConfig(self.micro_lora.param_count, lam, min_lambda=lo, max_lambda=hi)
        )
        self.ewc_base = EwcPlusPlus(
            EwcConfig(self.base_lora.param_count, lam, min_lambda=lo, max_lambda=hi)
        )
        self.adam_micro = Adam(self.micro_lora.param_count)
        self.adam_base = Adam(self.base_lora.param_count)
        self.boundary_detector: TaskBoundaryDetector | None = (
            TaskBoundaryDetector(
                d,
                window=self.ewc_micro.config.gradient_history_size,
                threshold=self.ewc_micro.config.boundary_threshold,
            )
            if auto_task_boundaries
            else None
        )
        self.buffer = TrajectoryBuffer(cfg.trajectory_capacity)
        self._advantages: dict[int, float] = {}
        self._baseline = BASELINE_START
        self._next_id = 0
        self._seen = 0
        self._micro_updates = 0
        self._cycles = 0
        self._enabled = True
        self.instant_enabled = True
        self.background_enabled = True
        self._last_background = clock()
        self._lock = threading.RLock()

    @classmethod
    def with_config(
        cls,
        config: SonaConfig,
        *,
        clock: Clock = monotonic_clock,
        wall: Clock = wall_clock,
        auto_task_boundaries: bool = True,
    ) -> SonaEngine:
        """An engine for ``config``."""
        return cls(
            config.hidden_dim,
            config=config,
            clock=clock,
            wall=wall,
            auto_task_boundaries=auto_task_boundaries,
        )

    @property
    def config(self) -> SonaConfig:
        """The engine's configuration."""
        return self._config

    @property
    def hidden_dim(self) -> int:
        """Vector dimension."""
        return self._config.hidden_dim

    @property
    def quality_baseline(self) -> float:
        """Running quality baseline the learning signal is measured against."""
        return self._baseline

    # -- trajectories ------------------------------------------------------------------
    def begin_trajectory(self, embedding: Any) -> TrajectoryBuilder:
        """Start recording a query (``embedding``: hidden_dim finite floats)."""
        if type(embedding) is np.ndarray and embedding.dtype == _F32 and embedding.ndim == 1:
            if embedding.shape[0] != self._config.hidden_dim:
                as_vector(embedding, self._config.hidden_dim, "query embedding")
            emb = embedding.copy()
        else:
            emb = as_vector(embedding, self._config.hidden_dim, "query embedding").copy()
        tid = self._next_id
        self._next_id += 1
        return TrajectoryBuilder(tid, emb)

    def end_trajectory(self, builder: TrajectoryBuilder, quality: float) -> None:
        """Finish a trajectory: instant-loop update, then buffer it for the background loop."""
        if not isinstance(builder, TrajectoryBuilder):
            raise InvalidInputError("end_trajectory expects the builder from begin_trajectory")
        if not self._enabled:
            return
        self.submit_trajectory(builder.build(quality))

    @_locked
    def submit_trajectory(self, trajectory: QueryTrajectory) -> None:
        """Feed a pre-built trajectory (as ``end_trajectory`` does)."""
        if not self._enabled:
            return
        x = trajectory.query_embedding
        if np.isnan(trajectory.query_embedding).any() or x.shape != (self.hidden_dim,):
            as_vector(x, self.hidden_dim, "query embedding")
        self._seen += 1
        if self.boundary_detector is not None and self.boundary_detector.observe(x):
            self._consolidate()
        adv = trajectory.final_quality - self._baseline
        if self.instant_enabled:
            self._instant_update(trajectory)
        self._baseline += self._config.baseline_rate * (trajectory.final_quality - self._baseline)
        if self.buffer.push(trajectory):
            self._advantages[trajectory.id] = adv

    def _instant_update(self, trajectory: QueryTrajectory) -> None:
        lr = self._config.micro_lora_lr
        if lr <= 0:
            return
        x = trajectory.query_embedding
        y = self.micro_lora.forward(x)
        adv, g = learning_signal(trajectory, y, self._baseline)
        if g is None or adv == 0.0:
            return
        d_down, d_up = self.micro_lora.gradients(x, g)
        grad = np.concatenate([d_down.ravel(), d_up.ravel()])
        params = self.ewc_micro.step(
            self.micro_lora.parameters(), grad, lr, self.adam_micro.direction(grad)
        )
        self.micro_lora.set_parameters(params)
        self.micro_lora.updates += 1
        self._micro_updates += 1

    # -- adapters ----------------------------------------------------------------------
    def apply_micro_lora(self, input: Any, out: F32 | None = None) -> F32:
        """Adapted hidden state ``x + delta`` (new array; rows if 2-d), or ``out += delta``.

        A disabled engine returns the input unchanged (a copy) / leaves ``out`` alone.
        """
        if not self._enabled:
            if out is not None:
                return out
            return np.array(input, dtype=_F32)
        return self.micro_lora.forward(input, out)

    def apply_base_lora(self, layer: int, input: Any, out: F32 | None = None) -> F32:
        """BaseLoRA layer ``layer`` applied like :meth:`apply_micro_lora`."""
        if not self._enabled:
            if out is not None:
                return out
            return np.array(input, dtype=_F32)
        return self.base_lora.forward_layer(layer, input, out)

    # -- loops -------------------------------------------------------------------------
    @_locked
    def tick(self) -> str | None:
        """Run the background cycle if ``background_interval_ms`` has passed; report it."""
        if not self._enabled or not self.background_enabled:
            return None
        now = self._clock()
        if (now - self._last_background) * 1000.0 < self._config.background_interval_ms:
            return None
        if len(self.buffer) == 0:
            self._last_background = now
            return None
        r = self._background()
        return (
            f"Background cycle: {r.trajectories_processed} trajectories -> "
            f"{r.patterns_extracted} patterns in {r.elapsed_s * 1000:.1f} ms"
        )

    @_locked
    def force_learn(self) -> str:
        """Run the background cycle now; a one-line report."""
        r = self._background()
        return (
            f"Forced learning: {r.trajectories_processed} trajectories -> "
            f"{r.patterns_extracted} patterns, status: {r.status}"
        )

    @_locked
    def run_background_cycle(self) -> BackgroundResult:
        """Run the background cycle now and return its structured result."""
        return self._background()

    def flush(self) -> None:
        """Seed compatibility: instant-loop updates are applied as each trajectory ends, so
        nothing is ever pending."""

    @_locked
    def _background(self) -> BackgroundResult:
        start = time.perf_counter()
        self._last_background = self._clock()
        trajs = self.buffer.drain()
        advs = [self._advantages.pop(t.id, 0.0) for t in trajs]
        self._advantages.clear()
        if not trajs:
            return BackgroundResult(0, 0, 0, 0, 0, time.perf_counter() - start, "empty")
        self.reasoning_bank.add_trajectories(trajs)
        patterns = self.reasoning_bank.extract_patterns()
        samples = self._train_base(trajs, advs)
        merged = self.reasoning_bank.consolidate()
        pruned = self.reasoning_bank.prune_patterns()
        self._cycles += 1
        return BackgroundResult(
            trajectories_processed=len(trajs),
            patterns_extracted=len(patterns),
            base_lora_samples=samples,
            patterns_merged=merged,
            patterns_pruned=pruned,
            elapsed_s=time.perf_counter() - start,
            status="completed",
        )

    def _train_base(self, trajs: list[QueryTrajectory], advs: list[float]) -> int:
        """One batched BaseLoRA step: step ``i`` of a trajectory trains layer ``min(i, L-1)``
        with input = query (i = 0) or the previous step's activations."""
        lr = self._config.base_lora_lr
        if lr <= 0:
            return 0
        n_layers = self.base_lora.num_layers()
        d = self.hidden_dim
        per_layer: dict[int, tuple[list[F32], list[F32], list[float]]] = {}
        for t, adv in zip(trajs, advs, strict=True):
            if adv == 0.0:
                continue
            prev = t.query_embedding
            for i, s in enumerate(t.steps):
                if s.activations.shape[0] != d:
                    continue
                layer = min(i, n_layers - 1)
                xs, as_, ws = per_layer.setdefault(layer, ([], [], []))
                xs.append(prev)
                as_.append(s.activations)
                ws.append(adv)
                prev = s.activations
        if not per_layer:
            return 0
        base = self.base_lora
        total = sum(len(v[2]) for v in per_layer.values())
        d_down = np.zeros((n_layers, base.rank, d), dtype=_F32)
        d_up = np.zeros((n_layers, d, base.rank), dtype=_F32)
        for layer, (xs, as_, ws) in per_layer.items():
            x = np.stack(xs).astype(_F32)
            a = np.stack(as_).astype(_F32)
            w = np.asarray(ws, dtype=_F32)[:, None]
            y = base.forward_layer(layer, x)
            g = (w * (a - y)).astype(_F32)
            dd, du = base.gradients(layer, x, g)
            d_down[layer] = dd / total
            d_up[layer] = du / total
        grad = np.concatenate([d_down.ravel(), d_up.ravel()])
        direction = self.adam_base.direction(grad)
        base.set_parameters(self.ewc_base.step(base.parameters(), grad, lr, direction))
        return total

    # -- EWC ---------------------------------------------------------------------------
    @_locked
    def mark_task_boundary(self) -> None:
        """Consolidate now: current parameters become the EWC anchor of a finished task."""
        self._consolidate()
        if self.boundary_detector is not None:
            self.boundary_detector.reset()

    def _consolidate(self) -> None:
        self.ewc_micro.consolidate(self.micro_lora.parameters())
        self.ewc_base.consolidate(self.base_lora.parameters())

    # -- patterns ----------------------------------------------------------------------
    @_locked
    def find_patterns(self, query: Any, k: int) -> list[LearnedPattern]:
        """The ``k`` (>= 1) learned patterns most similar to ``query``, best first."""
        return self.reasoning_bank.find_similar(query, k)

    @_locked
    def get_all_patterns(self) -> list[LearnedPattern]:
        """Every learned pattern, heaviest first."""
        return self.reasoning_bank.get_all_patterns()

    # -- misc --------------------------------------------------------------------------
    @_locked
    def stats(self) -> SonaStats:
        """Current statistics."""
        return SonaStats(
            trajectories_buffered=len(self.buffer),
            trajectories_dropped=self.buffer.dropped,
            buffer_success_rate=self.buffer.success_rate,
            patterns_stored=self.reasoning_bank.pattern_count(),
            ewc_tasks=self.ewc_micro.task_count(),
            instant_enabled=self.instant_enabled,
            background_enabled=self.background_enabled,
            trajectories_seen=self._seen,
            micro_updates=self._micro_updates,
            background_cycles=self._cycles,
            quality_baseline=self._baseline,
        )

    def set_enabled(self, enabled: bool) -> None:
        """Enable/disable recording, learning and adaptation."""
        self._enabled = bool(enabled)

    def is_enabled(self) -> bool:
        """Whether the engine is enabled."""
        return self._enabled

    @_locked
    def export_weights(self) -> LoraWeights:
        """Copies of both adapters' weights."""
        md, mu = self.micro_lora.get_weights()
        bd, bu = self.base_lora.get_weights()
        return LoraWeights(md, mu, bd, bu)

    @_locked
    def import_weights(self, weights: LoraWeights) -> None:
        """Load adapter weights (shapes checked; BaseLoRA rank differences are re-factorised,
        see :func:`ruvector_edge.sona.lora.fit_base_rank`)."""
        self.micro_lora.set_weights(weights.micro_down, weights.micro_up)
        bd, bu = fit_base_rank(weights.base_down, weights.base_up, self.base_lora.rank)
        self.base_lora.set_weights(bd, bu)

    # -- state -------------------------------------------------------------------------
    @_locked
    def save_state(self) -> bytes:
        """Serialise weights, EWC state, baseline, counters and patterns (see ``_state``)."""
        return _state.dump_engine(self)

    @classmethod
    def load_state(
        cls, data: bytes, *, clock: Clock = monotonic_clock, wall: Clock = wall_clock
    ) -> SonaEngine:
        """Rebuild an engine from :meth:`save_state` bytes (typed errors on bad input)."""
        return _state.load_engine(cls, data, clock=clock, wall=wall)

    def save(self, path: str | Path) -> Path:
        """Write :meth:`save_state` to ``path`` atomically."""
        return _state.write_atomic(Path(path), self.save_state())

    @classmethod
    def load(cls, path: str | Path) -> SonaEngine:
        """Read an engine saved with :meth:`save`."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read SONA state {path}: {exc}") from None
        return cls.load_state(data)
