"""Feeds ruvLLM feedback into a SONA engine and reads its learned patterns back.

Each feedback event becomes one SONA trajectory: the query embedding, one step whose
activations are the embedding and whose reward is the quality, the chosen model as the
route and the request id as context. SONA clusters good trajectories into patterns
(its background loop); :meth:`SonaSink.learned_routes` hands those patterns
(centroid, best route, mean quality) to the router as extra training examples.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ruvector_edge.sona import LearnedPattern, SonaConfig, SonaEngine

__all__ = ["SonaSink"]

F32 = NDArray[np.float32]


class SonaSink:
    """A :class:`~ruvector_edge.llm.orchestrator.LearningSink` backed by ``SonaEngine``.

    The engine is not thread-safe; the sink serialises access with a lock.
    """

    def __init__(self, engine: SonaEngine) -> None:
        self.engine = engine
        self.recorded = 0
        self._lock = threading.Lock()
        self._consumed: set[tuple[int, int]] = set()

    @classmethod
    def create(cls, dim: int, *, background_interval_ms: int = 60_000, seed: int = 0) -> SonaSink:
        """A sink with a fresh engine for ``dim``-dimensional embeddings."""
        cfg = SonaConfig(
            hidden_dim=dim,
            embedding_dim=dim,
            background_interval_ms=background_interval_ms,
            seed=seed,
        )
        return cls(SonaEngine.with_config(cfg))

    def record(self, embedding: F32, model: str, quality: float, context: str) -> None:
        """One feedback event as a SONA trajectory; runs the background loop when due."""
        q = float(min(1.0, max(0.0, quality)))
        with self._lock:
            b = self.engine.begin_trajectory(np.asarray(embedding, dtype=np.float32))
            b.add_step(np.asarray(embedding, dtype=np.float32), None, q)
            b.set_model_route(model)
            b.add_context(context[:128])
            self.engine.end_trajectory(b, q)
            self.engine.tick()
            self.recorded += 1

    def learn_now(self) -> None:
        """Run SONA's background loop now (pattern extraction)."""
        with self._lock:
            self.engine.run_background_cycle()

    def learned_routes(self) -> list[LearnedPattern]:
        """Patterns with a route not handed out before (their size changes re-offer them)."""
        with self._lock:
            pats = self.engine.get_all_patterns()
            fresh = []
            for p in pats:
                key = (p.id, p.cluster_size)
                if p.model_route is not None and key not in self._consumed:
                    self._consumed.add(key)
                    fresh.append(p)
            return fresh

    def patterns(self, limit: int) -> list[dict[str, Any]]:
        """SONA's patterns as JSON-serialisable dicts, heaviest first."""
        with self._lock:
            pats = self.engine.get_all_patterns()[:limit]
        return [
            {
                "id": f"sona:{p.id}",
                "model": p.model_route,
                "cluster_size": int(p.cluster_size),
                "avg_quality": float(p.avg_quality),
                "total_weight": float(p.total_weight),
                "access_count": int(p.access_count),
                "pattern_type": str(getattr(p.pattern_type, "value", p.pattern_type)),
                "source": "sona",
            }
            for p in pats
        ]

    def stats(self) -> dict[str, Any]:
        """SONA engine statistics (JSON-serialisable)."""
        with self._lock:
            s = self.engine.stats()
        return {
            "recorded": self.recorded,
            "trajectories_seen": int(s.trajectories_seen),
            "patterns": int(s.patterns_stored),
            "background_cycles": int(s.background_cycles),
            "micro_updates": int(s.micro_updates),
        }
