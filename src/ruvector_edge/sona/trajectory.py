"""Trajectory recording: :class:`TrajectoryBuilder` and the bounded :class:`TrajectoryBuffer`."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np

from ruvector_edge.errors import ConfigError, DimensionError, InvalidInputError
from ruvector_edge.sona._util import F32, as_quality
from ruvector_edge.sona.types import QueryTrajectory, TrajectoryStep

__all__ = ["TrajectoryBuffer", "TrajectoryBuilder"]

_EMPTY: F32 = np.zeros(0, dtype=np.float32)
_EMPTY.flags.writeable = False


def _step_vector(values: Any, dim: int, what: str) -> F32:
    if values is None:
        return _EMPTY
    if type(values) is np.ndarray and values.dtype == np.float32 and values.ndim == 1:
        arr: F32 = values
    else:
        try:
            arr = np.asarray(values, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{what} must be numeric: {exc}") from None
    if arr.shape[0] not in (0, dim) and what == "activations":
        raise DimensionError(f"activations have length {arr.shape[0]}; expected {dim} or empty")
    return arr


class TrajectoryBuilder:
    """Records one query's steps; ``SonaEngine.end_trajectory`` turns it into learning.

    Activations must be ``hidden_dim`` long (or empty); attention weights any length.
    """

    __slots__ = ("_dim", "_started", "context_ids", "embedding", "id", "model_route", "steps")

    def __init__(self, trajectory_id: int, query_embedding: F32) -> None:
        self.id = trajectory_id
        self.embedding = query_embedding
        self._dim = int(query_embedding.shape[0])
        self.steps: list[TrajectoryStep] = []
        self.model_route: str | None = None
        self.context_ids: list[str] = []
        self._started = time.perf_counter_ns()

    def add_step(
        self, activations: Any, attention_weights: Any = None, reward: float = 0.0
    ) -> None:
        """Append a step (activations: hidden_dim floats or empty; reward: finite)."""
        r = as_quality(reward, "reward")
        self.steps.append(
            TrajectoryStep(
                _step_vector(activations, self._dim, "activations"),
                _step_vector(attention_weights, self._dim, "attention_weights"),
                r,
                len(self.steps),
            )
        )

    def add_named_step(
        self, name: str, activations: Any, attention_weights: Any = None, reward: float = 0.0
    ) -> None:
        """Like :meth:`add_step` with a layer name."""
        self.add_step(activations, attention_weights, reward)
        self.steps[-1].layer_name = str(name)

    def set_model_route(self, route: str) -> None:
        """Record the model/route that served the query."""
        if not isinstance(route, str) or not route:
            raise InvalidInputError(f"model route must be a non-empty string, got {route!r}")
        self.model_route = route

    def add_context(self, context_id: str) -> None:
        """Record a context id (document, memory, file) used to answer."""
        if not isinstance(context_id, str):
            raise InvalidInputError(f"context id must be a string, got {context_id!r}")
        self.context_ids.append(context_id)

    def build(self, quality: float) -> QueryTrajectory:
        """Finalize into a :class:`QueryTrajectory` with ``final_quality = quality``."""
        q = as_quality(quality)
        latency = (time.perf_counter_ns() - self._started) // 1000
        return QueryTrajectory(
            id=self.id,
            query_embedding=self.embedding,
            steps=self.steps,
            final_quality=q,
            latency_us=int(latency),
            model_route=self.model_route,
            context_ids=self.context_ids,
        )


class TrajectoryBuffer:
    """Bounded FIFO of trajectories waiting for the background loop.

    When full, new trajectories are rejected and counted in ``dropped`` (the seed's
    lock-free queue behaviour); ``success_rate`` is accepted / offered.
    """

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ConfigError(f"trajectory buffer capacity must be >= 1, got {capacity!r}")
        self.capacity = capacity
        self._items: deque[QueryTrajectory] = deque()
        self.dropped = 0
        self.accepted = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, trajectory: QueryTrajectory) -> bool:
        """Add ``trajectory``; False (and ``dropped += 1``) when full."""
        if len(self._items) >= self.capacity:
            self.dropped += 1
            return False
        self._items.append(trajectory)
        self.accepted += 1
        return True

    def drain(self) -> list[QueryTrajectory]:
        """Remove and return everything, oldest first."""
        items = list(self._items)
        self._items.clear()
        return items

    def peek_all(self) -> list[QueryTrajectory]:
        """A copy of the buffered trajectories without removing them."""
        return list(self._items)

    @property
    def success_rate(self) -> float:
        """Accepted / offered (1.0 before anything was offered)."""
        total = self.accepted + self.dropped
        return self.accepted / total if total else 1.0
