"""ReasoningBank: k-means++ pattern extraction, consolidation and pattern search.

* :func:`kmeans_plus_plus` is real k-means++ (D² sampling with a seeded generator, greedy
  local trials as in Arthur & Vassilvitskii / scikit-learn), not farthest-first.
* :func:`kmeans` runs Lloyd iterations from it; an empty cluster is re-seeded with the point
  farthest from its centroid instead of collapsing to a zero vector.
* Each background cycle clusters only the trajectories added since the previous cycle and
  merges the new clusters into existing patterns whose centroid is within
  ``merge_similarity`` (cosine), so repeated cycles do not pile up near-duplicates.
* :func:`adjusted_rand_index` is the Hubert-Arabie ARI in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ruvector_edge.errors import ConfigError, DimensionError, InvalidInputError
from ruvector_edge.sona._util import F32, Clock, as_matrix, as_vector, wall_clock
from ruvector_edge.sona.types import LearnedPattern, PatternType, QueryTrajectory

__all__ = [
    "PatternConfig",
    "ReasoningBank",
    "adjusted_rand_index",
    "kmeans",
    "kmeans_plus_plus",
]

I64 = NDArray[np.int64]


def _sq_norms(x: F32) -> F32:
    return np.einsum("ij,ij->i", x, x)  # type: ignore[no-any-return]


def kmeans_plus_plus(
    x: F32, k: int, rng: np.random.Generator, *, local_trials: int | None = None
) -> F32:
    """Pick ``k`` initial centroids from the rows of ``x`` by D² sampling.

    Each new centre is sampled with probability proportional to the squared distance to
    the nearest centre chosen so far; of ``local_trials`` samples (default
    ``2 + int(log k)``) the one that lowers the total potential most is kept.
    """
    n = x.shape[0]
    if not 1 <= k <= n:
        raise InvalidInputError(f"k must be in [1, {n}] for {n} points, got {k}")
    trials = local_trials if local_trials is not None else 2 + int(np.log(k))
    xx = _sq_norms(x)
    centers = np.empty((k, x.shape[1]), dtype=np.float32)
    first = int(rng.integers(n))
    centers[0] = x[first]
    closest = np.maximum(xx - 2.0 * (x @ x[first]) + xx[first], 0.0)
    pot = float(closest.sum())
    for c in range(1, k):
        if pot <= 0.0:  # all points coincide with chosen centres: pick uniformly
            centers[c:] = x[rng.integers(n, size=k - c)]
            break
        cum = np.cumsum(closest, dtype=np.float64)
        r = rng.random(trials) * cum[-1]
        cand = np.minimum(np.searchsorted(cum, r), n - 1)
        xc = x[cand]  # (trials, d) contiguous: one streaming pass over x below
        d_cand = x @ xc.T  # (n, trials)
        d_cand *= -2.0
        d_cand += xx[:, None]
        d_cand += xx[cand][None, :]
        np.maximum(d_cand, 0.0, out=d_cand)
        np.minimum(d_cand, closest[:, None], out=d_cand)
        pots = d_cand.sum(axis=0)
        best = int(np.argmin(pots))
        centers[c] = xc[best]
        closest = np.ascontiguousarray(d_cand[:, best])
        pot = float(pots[best])
    return centers


def _assign(x: F32, xx: F32, centers: F32) -> tuple[I64, F32]:
    cc = _sq_norms(centers)
    d = x @ centers.T
    d *= -2.0
    d += cc[None, :]
    labels = np.argmin(d, axis=1).astype(np.int64)
    dist = np.maximum(d[np.arange(x.shape[0]), labels] + xx, 0.0)
    return labels, dist


def _update(x: F32, labels: I64, k: int) -> tuple[F32, I64]:
    counts = np.bincount(labels, minlength=k).astype(np.int64)
    order = np.argsort(labels, kind="stable")
    xs = x[order]
    nonempty = np.nonzero(counts)[0]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))[nonempty]
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    sums[nonempty] = np.add.reduceat(xs, starts, axis=0, dtype=np.float64)
    centers = np.zeros((k, x.shape[1]), dtype=np.float32)
    centers[nonempty] = (sums[nonempty] / counts[nonempty, None]).astype(np.float32)
    return centers, counts


def kmeans(
    x: Any,
    k: int,
    *,
    seed: int | np.random.Generator = 0,
    max_iterations: int = 100,
    tol: float = 1e-4,
    init: F32 | None = None,
) -> tuple[F32, I64, int]:
    """Lloyd's k-means from k-means++ seeding: ``(centroids, labels, iterations)``.

    Stops when no label changes or the total squared centre shift falls below ``tol``
    times the mean per-dimension variance (scikit-learn's relative tolerance).
    """
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise InvalidInputError(f"k-means needs a non-empty (n, d) array, got {arr.shape}")
    data = as_matrix(arr, arr.shape[1], "k-means input")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    centers = kmeans_plus_plus(data, k, rng) if init is None else np.array(init, dtype=np.float32)
    xx = _sq_norms(data)
    abs_tol = tol * float(np.mean(np.var(data, axis=0)))
    labels = np.full(data.shape[0], -1, dtype=np.int64)
    it = 0
    for it in range(1, max_iterations + 1):  # noqa: B007
        new_labels, dist = _assign(data, xx, centers)
        changed = not np.array_equal(new_labels, labels)
        labels = new_labels
        new_centers, counts = _update(data, labels, k)
        empty = np.nonzero(counts == 0)[0]
        if empty.size:
            far = np.argsort(-dist, kind="stable")[: empty.size]
            new_centers[empty] = data[far]
            labels[far] = empty
            changed = True
        shift = float(((new_centers - centers) ** 2).sum())
        centers = new_centers
        if not changed or shift <= abs_tol:
            break
    labels, _ = _assign(data, xx, centers)
    return centers, labels, it


def adjusted_rand_index(labels_true: Any, labels_pred: Any) -> float:
    """Adjusted Rand index of two labelings (1 = identical partitions, ~0 = chance)."""
    a = np.asarray(labels_true).ravel()
    b = np.asarray(labels_pred).ravel()
    if a.shape != b.shape:
        raise DimensionError(f"labelings differ in length: {a.shape} vs {b.shape}")
    n = a.shape[0]
    if n < 2:
        return 1.0
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    na, nb = int(ai.max()) + 1, int(bi.max()) + 1
    cont = np.bincount(ai * nb + bi, minlength=na * nb).reshape(na, nb).astype(np.float64)

    def comb2(v: NDArray[np.float64]) -> float:
        return float((v * (v - 1) / 2.0).sum())

    sum_ij = comb2(cont)
    sum_a = comb2(cont.sum(axis=1))
    sum_b = comb2(cont.sum(axis=0))
    total = n * (n - 1) / 2.0
    expected = sum_a * sum_b / total
    max_index = 0.5 * (sum_a + sum_b)
    if max_index == expected:  # both partitions trivial (all-in-one or all singletons)
        return 1.0
    return (sum_ij - expected) / (max_index - expected)


@dataclass
class PatternConfig:
    """ReasoningBank settings (seed names and defaults plus consolidation knobs)."""

    k_clusters: int = 100
    embedding_dim: int = 256
    max_iterations: int = 100
    convergence_threshold: float = 1e-4
    min_cluster_size: int = 5
    max_trajectories: int = 10000
    quality_threshold: float = 0.3
    merge_similarity: float = 0.95
    max_patterns: int = 10000
    prune_min_quality: float = 0.3
    prune_min_accesses: int = 1
    prune_max_age_secs: float = 7 * 24 * 3600.0

    def __post_init__(self) -> None:
        if self.k_clusters < 1 or self.embedding_dim < 1 or self.max_trajectories < 1:
            raise ConfigError("PatternConfig k_clusters, embedding_dim, max_trajectories >= 1")
        if self.min_cluster_size < 1 or self.max_patterns < 1 or self.max_iterations < 1:
            raise ConfigError("PatternConfig min_cluster_size, max_patterns, max_iterations >= 1")


class ReasoningBank:
    """Stores trajectories, extracts :class:`LearnedPattern` s and answers pattern queries.

    Trajectory embeddings are the L2-normalised query embeddings (patterns describe which
    queries succeed, and are searched with queries).
    """

    def __init__(self, config: PatternConfig, *, seed: int = 0, clock: Clock = wall_clock) -> None:
        self.config = config
        self._rng = np.random.default_rng(seed)
        self._clock = clock
        d = config.embedding_dim
        rows = min(config.max_trajectories, 1024)  # grows by doubling up to the capacity
        self._emb: F32 = np.zeros((rows, d), dtype=np.float32)
        self._quality = np.zeros(rows, dtype=np.float32)
        self._route = np.full(rows, -1, dtype=np.int64)
        self._n = 0
        self._route_names: list[str] = []
        self._route_codes: dict[str, int] = {}
        self._patterns: dict[int, LearnedPattern] = {}
        self._next_id = 0
        self._matrix: F32 | None = None
        self._ids: I64 = np.zeros(0, dtype=np.int64)
        self.dropped = 0

    # -- trajectories ------------------------------------------------------------------
    def trajectory_count(self) -> int:
        """Trajectories waiting for the next extraction."""
        return self._n

    def pattern_count(self) -> int:
        """Stored patterns."""
        return len(self._patterns)

    def add_trajectory(self, trajectory: QueryTrajectory) -> None:
        """Queue one trajectory for the next :meth:`extract_patterns`."""
        self.add_batch(
            trajectory.query_embedding[None, :],
            np.array([trajectory.final_quality], dtype=np.float32),
            [trajectory.model_route],
        )

    def add_trajectories(self, trajectories: list[QueryTrajectory]) -> None:
        """Queue many trajectories (vectorised)."""
        if not trajectories:
            return
        emb = np.stack([t.query_embedding for t in trajectories]).astype(np.float32)
        q = np.array([t.final_quality for t in trajectories], dtype=np.float32)
        self.add_batch(emb, q, [t.model_route for t in trajectories])

    def add_batch(self, embeddings: Any, qualities: Any, routes: list[str | None]) -> None:
        """Queue rows of ``embeddings`` with their qualities and routes.

        When the store is full the oldest queued rows are dropped (counted in ``dropped``).
        """
        emb = as_matrix(embeddings, self.config.embedding_dim, "trajectory embeddings")
        q = np.asarray(qualities, dtype=np.float32).reshape(-1)
        if q.shape[0] != emb.shape[0] or len(routes) != emb.shape[0]:
            raise InvalidInputError("embeddings, qualities and routes differ in length")
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = emb / np.maximum(norms, 1e-12)
        codes = np.array([self._code(r) for r in routes], dtype=np.int64)
        cap = self.config.max_trajectories
        m = emb.shape[0]
        if m >= cap:
            self.dropped += self._n + m - cap
            emb, q, codes, m = emb[-cap:], q[-cap:], codes[-cap:], cap
            self._n = 0
        elif self._n + m > cap:
            shift = self._n + m - cap
            self.dropped += shift
            keep = self._n - shift
            self._emb[:keep] = self._emb[shift : self._n]
            self._quality[:keep] = self._quality[shift : self._n]
            self._route[:keep] = self._route[shift : self._n]
            self._n = keep
        need = self._n + m
        if need > self._emb.shape[0]:
            rows = min(cap, max(need, 2 * self._emb.shape[0]))
            self._emb = np.concatenate(
                [self._emb[: self._n], np.zeros((rows - self._n, emb.shape[1]), np.float32)]
            )
            self._quality = np.concatenate(
                [self._quality[: self._n], np.zeros(rows - self._n, np.float32)]
            )
            self._route = np.concatenate(
                [self._route[: self._n], np.full(rows - self._n, -1, np.int64)]
            )
        self._emb[self._n : self._n + m] = emb
        self._quality[self._n : self._n + m] = q
        self._route[self._n : self._n + m] = codes
        self._n += m

    def _code(self, route: str | None) -> int:
        if route is None:
            return -1
        code = self._route_codes.get(route)
        if code is None:
            code = len(self._route_names)
            self._route_codes[route] = code
            self._route_names.append(route)
        return code

    def clear_trajectories(self) -> None:
        """Drop queued trajectories (patterns are kept)."""
        self._n = 0

    # -- extraction --------------------------------------------------------------------
    def extract_patterns(self) -> list[LearnedPattern]:
        """Cluster queued trajectories, keep good clusters, merge them into the bank.

        Returns the patterns created or updated in this cycle. Queued trajectories are
        consumed.
        """
        n = self._n
        cfg = self.config
        if n == 0:
            return []
        x = self._emb[:n].copy()
        q = self._quality[:n].copy()
        routes = self._route[:n].copy()
        self._n = 0
        k = max(1, min(cfg.k_clusters, n // cfg.min_cluster_size))
        centers, labels, _ = kmeans(
            x, k, seed=self._rng, max_iterations=cfg.max_iterations, tol=cfg.convergence_threshold
        )
        counts = np.bincount(labels, minlength=k)
        qsum = np.bincount(labels, weights=q, minlength=k)
        now = self._clock()
        touched: list[LearnedPattern] = []
        for c in np.nonzero(counts >= min(cfg.min_cluster_size, n))[0]:
            avg = float(qsum[c] / counts[c])
            if avg < cfg.quality_threshold:
                continue
            members = labels == c
            route = self._best_route(routes[members], q[members])
            cand = LearnedPattern(
                id=-1,
                centroid=centers[c].astype(np.float32),
                cluster_size=int(counts[c]),
                total_weight=float(qsum[c]),
                avg_quality=avg,
                created_at=now,
                last_accessed=now,
                access_count=0,
                pattern_type=PatternType.GENERAL,
                model_route=route,
            )
            touched.append(self._insert_or_merge(cand))
        self._enforce_cap()
        return touched

    def _best_route(self, codes: I64, q: F32) -> str | None:
        valid = codes >= 0
        if not valid.any():
            return None
        c, qq = codes[valid], q[valid]
        m = len(self._route_names)
        cnt = np.bincount(c, minlength=m)
        tot = np.bincount(c, weights=qq, minlength=m)
        mean = np.where(cnt > 0, tot / np.maximum(cnt, 1), -np.inf)
        return self._route_names[int(np.argmax(mean))]

    def _insert_or_merge(self, cand: LearnedPattern) -> LearnedPattern:
        mat = self._normalized_matrix()
        if mat.shape[0]:
            v = cand.centroid / max(float(np.linalg.norm(cand.centroid)), 1e-12)
            sims = mat @ v
            j = int(np.argmax(sims))
            if sims[j] >= self.config.merge_similarity:
                pid = int(self._ids[j])
                merged = self._patterns[pid].merge(cand)
                self._patterns[pid] = merged
                self._matrix = None
                return merged
        cand.id = self._next_id
        self._next_id += 1
        self._patterns[cand.id] = cand
        self._matrix = None
        return cand

    def add_pattern(self, pattern: LearnedPattern) -> LearnedPattern:
        """Insert a pattern from elsewhere (warm start); merges with a near-duplicate."""
        c = as_vector(pattern.centroid, self.config.embedding_dim, "pattern centroid")
        copy = LearnedPattern(**{**pattern.__dict__, "centroid": c.copy(), "id": -1})
        out = self._insert_or_merge(copy)
        self._enforce_cap()
        return out

    def _normalized_matrix(self) -> F32:
        if self._matrix is None:
            if self._patterns:
                self._ids = np.fromiter(self._patterns.keys(), dtype=np.int64)
                m = np.stack([self._patterns[int(i)].centroid for i in self._ids])
                norms = np.linalg.norm(m, axis=1, keepdims=True)
                self._matrix = (m / np.maximum(norms, 1e-12)).astype(np.float32)
            else:
                self._ids = np.zeros(0, dtype=np.int64)
                self._matrix = np.zeros((0, self.config.embedding_dim), dtype=np.float32)
        return self._matrix

    def _enforce_cap(self) -> None:
        extra = len(self._patterns) - self.config.max_patterns
        if extra <= 0:
            return
        ranked = sorted(self._patterns.values(), key=lambda p: (p.total_weight, p.id))
        for p in ranked[:extra]:
            del self._patterns[p.id]
        self._matrix = None

    # -- maintenance -------------------------------------------------------------------
    def consolidate(self, similarity_threshold: float | None = None) -> int:
        """Merge patterns whose centroids are within the cosine threshold; return merges."""
        thr = self.config.merge_similarity if similarity_threshold is None else similarity_threshold
        mat = self._normalized_matrix()
        ids = self._ids.copy()
        if mat.shape[0] < 2:
            return 0
        sims = mat @ mat.T
        np.fill_diagonal(sims, -np.inf)
        gone: set[int] = set()
        merges = 0
        # Heaviest first absorbs its near-duplicates.
        order = sorted(range(len(ids)), key=lambda i: -self._patterns[int(ids[i])].total_weight)
        for i in order:
            pid = int(ids[i])
            if pid in gone:
                continue
            for j in np.nonzero(sims[i] >= thr)[0]:
                oid = int(ids[j])
                if oid in gone or oid == pid:
                    continue
                self._patterns[pid] = self._patterns[pid].merge(self._patterns[oid])
                del self._patterns[oid]
                gone.add(oid)
                merges += 1
        if merges:
            self._matrix = None
        return merges

    def prune_patterns(
        self,
        min_quality: float | None = None,
        min_accesses: int | None = None,
        max_age_secs: float | None = None,
    ) -> int:
        """Remove stale patterns (seed rule, see ``LearnedPattern.should_prune``)."""
        c = self.config
        mq = c.prune_min_quality if min_quality is None else min_quality
        ma = c.prune_min_accesses if min_accesses is None else min_accesses
        age = c.prune_max_age_secs if max_age_secs is None else max_age_secs
        now = self._clock()
        doomed = [p.id for p in self._patterns.values() if p.should_prune(mq, ma, age, now)]
        for pid in doomed:
            del self._patterns[pid]
        if doomed:
            self._matrix = None
        return len(doomed)

    # -- queries -----------------------------------------------------------------------
    def find_similar(self, query: Any, k: int, *, touch: bool = True) -> list[LearnedPattern]:
        """The ``k`` (>= 1) patterns with the highest cosine similarity, best first."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise InvalidInputError(f"k must be an int >= 1, got {k!r}; use get_all_patterns()")
        v = as_vector(query, self.config.embedding_dim, "query")
        mat = self._normalized_matrix()
        if mat.shape[0] == 0:
            return []
        sims = mat @ v
        k = min(int(k), sims.shape[0])
        top = np.argpartition(-sims, k - 1)[:k] if k < sims.shape[0] else np.arange(k)
        top = top[np.argsort(-sims[top], kind="stable")]
        now = self._clock()
        out = []
        for i in top:
            p = self._patterns[int(self._ids[i])]
            if touch:
                p.touch(now)
            out.append(p)
        return out

    def assign(self, queries: Any) -> I64:
        """Id of the most similar pattern for each row of ``queries`` (-1 if none)."""
        m = as_matrix(queries, self.config.embedding_dim, "queries")
        mat = self._normalized_matrix()
        if mat.shape[0] == 0:
            return np.full(m.shape[0], -1, dtype=np.int64)
        out: I64 = self._ids[np.argmax(m @ mat.T, axis=1)]
        return out

    def get_pattern(self, pattern_id: int) -> LearnedPattern | None:
        """Pattern by id."""
        return self._patterns.get(pattern_id)

    def get_all_patterns(self) -> list[LearnedPattern]:
        """Every stored pattern, heaviest first."""
        return sorted(self._patterns.values(), key=lambda p: (-p.total_weight, p.id))

    def restore_patterns(self, patterns: list[LearnedPattern], next_id: int) -> None:
        """Replace the pattern store (state load)."""
        self._patterns = {p.id: p for p in patterns}
        self._next_id = max([next_id, *(p.id + 1 for p in patterns)])
        self._matrix = None

    @property
    def next_pattern_id(self) -> int:
        """Id the next new pattern will get."""
        return self._next_id
