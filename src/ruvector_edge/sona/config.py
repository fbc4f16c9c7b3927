"""``SonaConfig``: the seed's fields, defaults and presets, validated."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ruvector_edge.errors import ConfigError

__all__ = ["SonaConfig"]


@dataclass
class SonaConfig:
    """Settings of one :class:`~ruvector_edge.sona.SonaEngine` (seed names and defaults).

    Fields beyond the seed's (``base_lora_layers``, ``baseline_rate``, ``merge_similarity``,
    ``max_patterns``, ``seed``) have defaults that keep the seed's behaviour where it had one.
    """

    hidden_dim: int = 256
    embedding_dim: int = 256
    micro_lora_rank: int = 2
    base_lora_rank: int = 8
    micro_lora_lr: float = 0.002
    base_lora_lr: float = 0.0001
    ewc_lambda: float = 2000.0
    pattern_clusters: int = 100
    trajectory_capacity: int = 10000
    background_interval_ms: int = 3_600_000
    quality_threshold: float = 0.3
    enable_simd: bool = True
    # -- ours ----------------------------------------------------------------------------
    base_lora_layers: int = 12
    """Number of BaseLoRA layers (the seed hard-codes 12)."""
    baseline_rate: float = 0.05
    """Step size of the running quality baseline the learning signal is measured against."""
    merge_similarity: float = 0.95
    """Cosine similarity above which a new pattern merges into an existing one."""
    max_patterns: int = 10_000
    """Upper bound on stored patterns; the least valuable are pruned beyond it."""
    seed: int = 0
    """Seed of every random generator the engine uses (init, k-means++)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first invalid field."""
        ints = {
            "hidden_dim": (1, 1 << 16),
            "embedding_dim": (1, 1 << 16),
            "micro_lora_rank": (1, 2),
            "base_lora_rank": (1, 64),
            "pattern_clusters": (1, 100_000),
            "trajectory_capacity": (1, 10_000_000),
            "background_interval_ms": (0, 1 << 62),
            "base_lora_layers": (1, 256),
            "max_patterns": (1, 10_000_000),
            "seed": (0, (1 << 63) - 1),
        }
        for name, (lo, hi) in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"SonaConfig.{name} must be an int in [{lo}, {hi}], got {v!r}")
        if self.embedding_dim != self.hidden_dim:
            raise ConfigError(
                f"SonaConfig.embedding_dim ({self.embedding_dim}) must equal hidden_dim "
                f"({self.hidden_dim}): MicroLoRA adapts query embeddings in place"
            )
        floats = {
            "micro_lora_lr": (0.0, 10.0),
            "base_lora_lr": (0.0, 10.0),
            "ewc_lambda": (0.0, 1e9),
            "quality_threshold": (-1e9, 1e9),
            "baseline_rate": (1e-6, 1.0),
            "merge_similarity": (-1.0, 1.0),
        }
        for name, (flo, fhi) in floats.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not flo <= v <= fhi:
                raise ConfigError(f"SonaConfig.{name} must be in [{flo}, {fhi}], got {v!r}")

    def replace(self, **changes: Any) -> SonaConfig:
        """A validated copy with ``changes`` applied."""
        try:
            return dataclasses.replace(self, **changes)
        except TypeError as exc:
            raise ConfigError(f"unknown SonaConfig field: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (state files, exports)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SonaConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys raise ``ConfigError``."""
        if not isinstance(data, dict):
            raise ConfigError("SonaConfig data must be a mapping")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown SonaConfig fields: {sorted(unknown)}")
        return cls(**data)

    # -- presets (the seed's values) ----------------------------------------------------
    @classmethod
    def max_throughput(cls) -> SonaConfig:
        """Real-time chat: minimal base rank, conservative micro learning rate."""
        return cls(
            base_lora_rank=4,
            micro_lora_lr=0.0005,
            trajectory_capacity=5000,
            background_interval_ms=7_200_000,
            quality_threshold=0.4,
        )

    @classmethod
    def max_quality(cls) -> SonaConfig:
        """Research/batch: rank-16 base, aggressive base learning."""
        return cls(
            base_lora_rank=16,
            base_lora_lr=0.001,
            trajectory_capacity=20000,
            background_interval_ms=1_800_000,
            quality_threshold=0.2,
        )

    @classmethod
    def edge_deployment(cls) -> SonaConfig:
        """Edge/mobile (<5 MB): rank-1 micro, small buffer."""
        return cls(
            micro_lora_rank=1,
            base_lora_rank=4,
            micro_lora_lr=0.001,
            ewc_lambda=1000.0,
            pattern_clusters=50,
            trajectory_capacity=200,
            quality_threshold=0.5,
        )

    @classmethod
    def batch_processing(cls) -> SonaConfig:
        """Batch processing (50+ inferences/s)."""
        return cls(micro_lora_lr=0.001)

    @classmethod
    def for_ephemeral(cls) -> SonaConfig:
        """Ephemeral federated agents (~5 MB): small base, quick local cycles."""
        return cls(
            base_lora_rank=4,
            ewc_lambda=1000.0,
            pattern_clusters=50,
            trajectory_capacity=500,
            background_interval_ms=60_000,
        )

    @classmethod
    def for_coordinator(cls) -> SonaConfig:
        """Federated coordinator: rank-16 base, large buffer, many clusters."""
        return cls(
            base_lora_rank=16,
            micro_lora_lr=0.001,
            base_lora_lr=0.0005,
            pattern_clusters=200,
            trajectory_capacity=50000,
            background_interval_ms=300_000,
            quality_threshold=0.4,
        )
