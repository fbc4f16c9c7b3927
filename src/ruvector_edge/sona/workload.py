"""A synthetic task with a ground truth, shared by tests and benchmarks.

Queries come from ``clusters`` Gaussian clusters in ``dim`` dimensions. Each cluster has a
hidden best route and a linear quality response to the *adapted* embedding::

    quality(y, c, route) = clip(bias_c + gain * w_c . y + route_bonus * [route == best_c], 0, 1)

with ``w_c = U alpha_c``: every cluster's quality direction lies in a hidden rank-2
"quality subspace" ``U``, so a rank-2 adapter that maps each cluster's queries into the
right direction of ``U`` can raise quality on every cluster at once. ``bias_c`` is set
so the un-adapted centroid scores ``base_quality``.

:func:`run_episode` plays trajectories through an engine-like learner with Gaussian
exploration around its adapted output (the REINFORCE setting of the learning signal), and
:func:`evaluate` scores a learner without exploration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ruvector_edge.errors import InvalidInputError
from ruvector_edge.sona._util import F32

__all__ = [
    "ClusterTask",
    "Learner",
    "conflicting_task",
    "evaluate",
    "make_cluster_task",
    "run_episode",
]

I64 = NDArray[np.int64]


@dataclass(frozen=True)
class ClusterTask:
    """Ground truth of the synthetic task (see the module docstring)."""

    centroids: F32
    quality_dirs: F32
    bias: F32
    best_route: I64
    routes: tuple[str, ...]
    noise: float
    gain: float
    route_bonus: float
    subspace: F32

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.centroids.shape[1])

    @property
    def n_clusters(self) -> int:
        """Number of clusters."""
        return int(self.centroids.shape[0])

    def sample(
        self, n: int, rng: np.random.Generator, clusters: Sequence[int] | None = None
    ) -> tuple[F32, I64]:
        """``n`` queries from ``clusters`` (all by default) with their true labels."""
        pool = np.arange(self.n_clusters) if clusters is None else np.asarray(clusters)
        if pool.size == 0:
            raise InvalidInputError("clusters must not be empty")
        labels = pool[rng.integers(pool.size, size=n)].astype(np.int64)
        x = self.centroids[labels] + self.noise * rng.standard_normal((n, self.dim)).astype(
            np.float32
        )
        out: F32 = x.astype(np.float32)
        return out, labels

    def quality(self, y: Any, labels: I64, routes: Sequence[str | None] | None = None) -> F32:
        """Quality of adapted embeddings ``y`` (rows) for clusters ``labels``."""
        ys = np.asarray(y, dtype=np.float32).reshape(len(labels), self.dim)
        q = self.bias[labels] + self.gain * np.einsum("ij,ij->i", ys, self.quality_dirs[labels])
        if routes is not None:
            best = np.array([self.routes[b] for b in self.best_route[labels]])
            got = np.array([r if r is not None else "" for r in routes])
            q = q + self.route_bonus * (best == got)
        out: F32 = np.clip(q, 0.0, 1.0).astype(np.float32)
        return out


def make_cluster_task(
    *,
    dim: int = 64,
    clusters: int = 8,
    routes: Sequence[str] = ("small", "medium", "large"),
    noise: float = 0.05,
    gain: float = 1.0,
    base_quality: float = 0.4,
    route_bonus: float = 0.0,
    subspace: F32 | None = None,
    seed: int = 0,
) -> ClusterTask:
    """Build a task; pass ``subspace`` (``(dim, 2)`` orthonormal) to share it between tasks."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((clusters, dim)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    if subspace is None:
        u, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
        subspace = u.astype(np.float32)
    alpha = rng.standard_normal((clusters, 2))
    alpha /= np.linalg.norm(alpha, axis=1, keepdims=True)
    w = (alpha @ subspace.T).astype(np.float32)
    bias = (base_quality - gain * np.einsum("ij,ij->i", c, w)).astype(np.float32)
    best = rng.integers(len(routes), size=clusters).astype(np.int64)
    return ClusterTask(c, w, bias, best, tuple(routes), noise, gain, route_bonus, subspace)


def conflicting_task(task: ClusterTask, *, base_quality: float = 0.4) -> ClusterTask:
    """Same queries, opposite quality directions: what is good for ``task`` is bad here.

    Training on it after ``task`` overwrites ``task``'s solution (the classic forgetting
    set-up; the query distribution does not change, so mark the boundary explicitly).
    """
    w = (-task.quality_dirs).astype(np.float32)
    bias = (base_quality - task.gain * np.einsum("ij,ij->i", task.centroids, w)).astype(np.float32)
    return ClusterTask(
        task.centroids,
        w,
        bias,
        task.best_route,
        task.routes,
        task.noise,
        task.gain,
        task.route_bonus,
        task.subspace,
    )


class Learner(Protocol):
    """What :func:`run_episode` drives (``SonaEngine`` and ``EphemeralAgent`` fit)."""

    def apply_micro_lora(self, input: Any, out: F32 | None = None) -> F32: ...


def run_episode(
    learner: Any,
    task: ClusterTask,
    n: int,
    rng: np.random.Generator,
    *,
    clusters: Sequence[int] | None = None,
    explore: float = 0.05,
    route_for: Callable[[F32], str | None] | None = None,
) -> float:
    """Play ``n`` trajectories through ``learner``; return their mean quality.

    Each query ``x`` is adapted (``y = apply_micro_lora(x)``), perturbed
    (``a = y + explore * N(0, I)``), scored, and recorded as a single-step trajectory with
    activations ``a``. ``learner`` is a :class:`~ruvector_edge.sona.SonaEngine` (uses
    ``begin_trajectory``/``end_trajectory``) or an ``EphemeralAgent`` (``process_trajectory``).
    """
    xs, labels = task.sample(n, rng, clusters)
    noise = (explore * rng.standard_normal(xs.shape)).astype(np.float32)
    total = 0.0
    is_agent = hasattr(learner, "process_trajectory")
    for i in range(n):
        x = xs[i]
        y = learner.apply_micro_lora(x)
        a = y + noise[i]
        route = (
            route_for(x)
            if route_for is not None
            else task.routes[int(rng.integers(len(task.routes)))]
        )
        q = float(task.quality(a[None, :], labels[i : i + 1], [route])[0])
        total += q
        if is_agent:
            learner.process_trajectory(x, a, q, route, [])
        else:
            b = learner.begin_trajectory(x)
            b.add_step(a, None, q)
            if route is not None:
                b.set_model_route(route)
            learner.end_trajectory(b, q)
    return total / max(n, 1)


def evaluate(
    apply: Callable[[F32], F32],
    task: ClusterTask,
    n: int,
    rng: np.random.Generator,
    *,
    clusters: Sequence[int] | None = None,
) -> float:
    """Mean quality of ``apply`` (batched ``(n, d) -> (n, d)``), no exploration or route bonus."""
    xs, labels = task.sample(n, rng, clusters)
    return float(task.quality(apply(xs), labels).mean())
