"""SONA data types: trajectories, steps and learned patterns (the seed's fields)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from ruvector_edge.sona._util import F32

__all__ = ["LearnedPattern", "PatternType", "QueryTrajectory", "TrajectoryStep"]


class PatternType(enum.Enum):
    """Pattern classification (seed names)."""

    GENERAL = "general"
    REASONING = "reasoning"
    FACTUAL = "factual"
    CREATIVE = "creative"
    CODE_GEN = "codegen"
    CONVERSATIONAL = "conversational"


@dataclass
class TrajectoryStep:
    """One step of a trajectory: activations (hidden_dim or empty), attention, reward."""

    activations: F32
    attention_weights: F32
    reward: float
    step_idx: int
    layer_name: str | None = None


@dataclass
class QueryTrajectory:
    """A recorded query: embedding, steps, final quality, route and context ids."""

    id: int
    query_embedding: F32
    steps: list[TrajectoryStep] = field(default_factory=list)
    final_quality: float = 0.0
    latency_us: int = 0
    model_route: str | None = None
    context_ids: list[str] = field(default_factory=list)

    def total_reward(self) -> float:
        """Sum of step rewards."""
        return float(sum(s.reward for s in self.steps))

    def avg_reward(self) -> float:
        """Mean step reward (0 without steps)."""
        return self.total_reward() / len(self.steps) if self.steps else 0.0


@dataclass
class LearnedPattern:
    """A cluster of successful trajectories (seed fields plus the best route seen).

    ``model_route`` is the route with the highest mean quality among the cluster's
    trajectories that named one (``None`` if none did).
    """

    id: int
    centroid: F32
    cluster_size: int = 1
    total_weight: float = 1.0
    avg_quality: float = 0.0
    created_at: float = 0.0
    last_accessed: float = 0.0
    access_count: int = 0
    pattern_type: PatternType = PatternType.GENERAL
    model_route: str | None = None

    def similarity(self, query: F32) -> float:
        """Cosine similarity with ``query`` (0 for a dimension mismatch or zero vector)."""
        q = np.asarray(query, dtype=np.float32)
        if q.shape != self.centroid.shape:
            return 0.0
        na = float(np.linalg.norm(self.centroid))
        nb = float(np.linalg.norm(q))
        if na <= 1e-8 or nb <= 1e-8:
            return 0.0
        return float(np.dot(self.centroid, q)) / (na * nb)

    def merge(self, other: LearnedPattern) -> LearnedPattern:
        """Size-weighted merge (keeps this id, the older creation and newer access)."""
        total = self.cluster_size + other.cluster_size
        w1 = self.cluster_size / total if total else 0.5
        w2 = 1.0 - w1
        route = self.model_route
        if other.model_route is not None and (
            route is None or other.avg_quality * w2 > self.avg_quality * w1
        ):
            route = other.model_route
        return LearnedPattern(
            id=self.id,
            centroid=(self.centroid * w1 + other.centroid * w2).astype(np.float32),
            cluster_size=total,
            total_weight=self.total_weight + other.total_weight,
            avg_quality=self.avg_quality * w1 + other.avg_quality * w2,
            created_at=min(self.created_at, other.created_at),
            last_accessed=max(self.last_accessed, other.last_accessed),
            access_count=self.access_count + other.access_count,
            pattern_type=self.pattern_type,
            model_route=route,
        )

    def decay(self, factor: float) -> None:
        """Scale the pattern's weight (importance decays with time)."""
        self.total_weight *= factor

    def touch(self, now: float) -> None:
        """Record an access at ``now`` (seconds)."""
        self.access_count += 1
        self.last_accessed = now

    def should_prune(
        self, min_quality: float, min_accesses: int, max_age_secs: float, now: float
    ) -> bool:
        """Seed rule: low quality AND rarely used AND not accessed for ``max_age_secs``."""
        age = now - self.last_accessed
        return (
            self.avg_quality < min_quality
            and self.access_count < min_accesses
            and age > max_age_secs
        )
