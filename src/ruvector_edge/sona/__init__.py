"""SONA: self-optimising learning (MicroLoRA, BaseLoRA, ReasoningBank, EWC++) and
federated learning across ephemeral agents.

Quick use::

    engine = SonaEngine(256)
    b = engine.begin_trajectory(query_embedding)
    b.add_step(activations, attention_weights, reward)
    engine.end_trajectory(b, quality)           # instant MicroLoRA step
    adapted = engine.apply_micro_lora(hidden)   # new array: hidden + LoRA delta
    engine.tick()                                # background loop when due
    engine.find_patterns(query_embedding, 5)     # nearest learned patterns

See :mod:`ruvector_edge.sona.engine` for the learning-signal rule and
:mod:`ruvector_edge.sona.federated` for FedAvg.
"""

from __future__ import annotations

from ruvector_edge.sona.config import SonaConfig
from ruvector_edge.sona.engine import (
    BackgroundResult,
    LoraWeights,
    SonaEngine,
    SonaStats,
    learning_signal,
)
from ruvector_edge.sona.ewc import EwcConfig, EwcPlusPlus, TaskBoundaryDetector
from ruvector_edge.sona.exchange import (
    EXPORT_FORMAT,
    MAX_EXPORT_BYTES,
    decode_export,
    encode_export,
)
from ruvector_edge.sona.federated import (
    AgentContribution,
    AgentExport,
    AgentExportStats,
    AggregationResult,
    CoordinatorStats,
    EphemeralAgent,
    FederatedCoordinator,
    FederatedNetwork,
    FederatedTopology,
    TopologyKind,
    TrajectoryExport,
    WarmStart,
    federated_average,
    fit_base_rank,
)
from ruvector_edge.sona.lora import BaseLoRA, MicroLoRA
from ruvector_edge.sona.reasoning_bank import (
    PatternConfig,
    ReasoningBank,
    adjusted_rand_index,
    kmeans,
    kmeans_plus_plus,
)
from ruvector_edge.sona.trajectory import TrajectoryBuffer, TrajectoryBuilder
from ruvector_edge.sona.types import LearnedPattern, PatternType, QueryTrajectory, TrajectoryStep

__all__ = [
    "EXPORT_FORMAT",
    "MAX_EXPORT_BYTES",
    "AgentContribution",
    "AgentExport",
    "AgentExportStats",
    "AggregationResult",
    "BackgroundResult",
    "BaseLoRA",
    "CoordinatorStats",
    "EphemeralAgent",
    "EwcConfig",
    "EwcPlusPlus",
    "FederatedCoordinator",
    "FederatedNetwork",
    "FederatedTopology",
    "LearnedPattern",
    "LoraWeights",
    "MicroLoRA",
    "PatternConfig",
    "PatternType",
    "QueryTrajectory",
    "ReasoningBank",
    "SonaConfig",
    "SonaEngine",
    "SonaStats",
    "TaskBoundaryDetector",
    "TopologyKind",
    "TrajectoryBuffer",
    "TrajectoryBuilder",
    "TrajectoryExport",
    "TrajectoryStep",
    "WarmStart",
    "adjusted_rand_index",
    "decode_export",
    "encode_export",
    "federated_average",
    "fit_base_rank",
    "kmeans",
    "kmeans_plus_plus",
    "learning_signal",
]
