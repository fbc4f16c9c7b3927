"""One usearch HNSW index per storage tier, each holding its own vector representation.

* HOT: ``f32`` index with the memory's metric; scores straight from usearch.
* WARM: ``f16`` index with the memory's metric (usearch casts queries to f16).
* COOL: ``i8`` index over :class:`Int8Quantizer` codes (per-vector scale kept here). For
  cosine the scale cancels, so usearch's cosine over codes *is* the cosine of the
  decoded vectors. For ``l2``/``ip`` the scale matters: the graph is searched by cosine
  over codes for candidates, which are re-scored exactly on the decoded vectors.
* COLD: ``b1`` Hamming index over :class:`BinaryQuantizer` sign bits, plus per-vector
  norm ``n`` and correction ``c = <x/n, sign(x)/sqrt(d)>``. Hamming search gives
  candidates; they are re-scored with the estimate ``<q, x> ~= n * <q, sign(x)/sqrt(d)> / c``
  (the RaBitQ-style estimator), which keeps scores comparable with the other tiers.

The index itself stores the vectors (usearch copies them), so a tier's RAM really is
its representation: about 4, 2, 1 and 1/8 bytes per dimension plus the HNSW links.
Keys are the memory's slot numbers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from usearch.index import Index

from ruvector_edge.codec import BinaryQuantizer, Float16Quantizer, Int8Quantizer
from ruvector_edge.errors import CodecError, InvalidInputError, StorageError
from ruvector_edge.memory.types import Metric, Tier

__all__ = ["TierIndex"]

F32 = NDArray[np.float32]
Keys = NDArray[np.uint64]

_USEARCH_METRIC: Final = {Metric.COSINE: "cos", Metric.L2: "l2sq", Metric.IP: "ip"}
_DTYPE: Final = {Tier.HOT: "f32", Tier.WARM: "f16", Tier.COOL: "i8", Tier.COLD: "b1"}
_NP_DTYPE: Final[dict[Tier, type[np.generic]]] = {
    Tier.HOT: np.float32,
    Tier.WARM: np.float16,
    Tier.COOL: np.int8,
    Tier.COLD: np.uint8,
}
# Candidates fetched per requested result when a tier re-scores (COOL for l2/ip, COLD).
_RERANK_FACTOR: Final = 4
_RERANK_MIN: Final = 40

_F16 = Float16Quantizer()
_I8 = Int8Quantizer()
_B1 = BinaryQuantizer()


def _grow(arr: NDArray[Any], size: int) -> NDArray[Any]:
    if arr.shape[0] >= size:
        return arr
    out = np.zeros(max(size, 2 * arr.shape[0], 64), dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


class TierIndex:
    """The HNSW index and side data of one tier."""

    __slots__ = (
        "_aux1",
        "_aux2",
        "_c",
        "_kind",
        "_metric",
        "_rerank",
        "_sqrt_dim",
        "dim",
        "index",
        "tier",
    )

    def __init__(
        self,
        tier: Tier,
        dim: int,
        metric: Metric,
        *,
        connectivity: int,
        expansion_add: int,
        expansion_search: int,
    ) -> None:
        self.tier = tier
        self.dim = dim
        self._metric = metric
        self._sqrt_dim = float(np.sqrt(dim))
        if tier is Tier.COLD:
            umetric = "hamming"
        elif tier is Tier.COOL:
            umetric = "cos"  # scale-free candidates; l2/ip re-scored below
        else:
            umetric = _USEARCH_METRIC[metric]
        self.index = Index(
            ndim=dim,
            metric=umetric,
            dtype=_DTYPE[tier],
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
        )
        # The compiled index's batch search skips ~25 us of Python per call; the public
        # API is the fallback if a future usearch hides it.
        self._c: Any = getattr(self.index, "_compiled", None)
        self._kind = self.index.dtype
        self._rerank = tier is Tier.COLD or (tier is Tier.COOL and metric is not Metric.COSINE)
        # COOL: aux1 = int8 scale. COLD: aux1 = norm, aux2 = correction.
        self._aux1 = np.zeros(0, dtype=np.float32)
        self._aux2 = np.zeros(0, dtype=np.float32)

    # ----------------------------------------------------------------------- writes
    def __len__(self) -> int:
        return int(self.index.size)

    def add(self, keys: Keys, vectors: F32, *, threads: int = 0) -> None:
        """Quantize ``vectors`` (float32 ``(n, dim)``) for this tier and insert them."""
        if not len(keys):
            return
        top = int(keys.max()) + 1
        try:
            if self.tier is Tier.HOT:
                data: NDArray[Any] = vectors
            elif self.tier is Tier.WARM:
                data = _F16.encode(vectors)
            elif self.tier is Tier.COOL:
                data, scales = _I8.encode(vectors)
                self._aux1 = _grow(self._aux1, top)
                self._aux1[keys] = scales
            else:
                data, scales = _B1.encode_with_scales(vectors)
                norms = np.linalg.norm(vectors, axis=1).astype(np.float32)
                corr = np.ones_like(norms)
                nz = norms > 0
                corr[nz] = scales[nz] * self._sqrt_dim / norms[nz]
                self._aux1 = _grow(self._aux1, top)
                self._aux2 = _grow(self._aux2, top)
                self._aux1[keys] = norms
                self._aux2[keys] = corr
        except CodecError as exc:
            raise InvalidInputError(
                f"cannot store vectors in the {self.tier.name} tier: {exc}"
            ) from None
        self.index.add(keys, np.ascontiguousarray(data), threads=threads)

    def remove(self, keys: Keys) -> None:
        """Remove ``keys`` (all must be present)."""
        if len(keys):
            self.index.remove(keys)

    # ----------------------------------------------------------------------- reads
    def _raw_search(self, queries: NDArray[Any], count: int) -> tuple[Keys, F32, NDArray[Any]]:
        if self._c is not None:
            # One query runs on one thread anyway; 0 ("all cores") only adds dispatch.
            res = self._c.search_many(queries, count, False, 1 if len(queries) == 1 else 0)
            return res[0], res[1], res[2]
        m: Any = self.index.search(queries, count)
        return (
            np.asarray(m.keys).reshape(len(queries), -1),
            np.asarray(m.distances).reshape(len(queries), -1),
            np.atleast_1d(np.asarray(m.counts)),
        )

    def _encode_queries(self, queries: F32) -> NDArray[Any]:
        if self.tier is Tier.COOL:
            codes, _ = _I8.encode(queries)
            return codes
        if self.tier is Tier.COLD:
            return np.packbits(queries > 0, axis=1)
        return queries

    def _to_scores(self, dist: F32) -> F32:
        if self._metric is Metric.L2:
            return -np.sqrt(np.maximum(dist, 0))
        return 1 - dist

    def search(self, queries: F32, k: int) -> list[tuple[Keys, F32]]:
        """Top ``k`` per query (``(nq, dim)`` float32): ``(keys, scores)`` best first."""
        size = len(self)
        if not size or k <= 0:
            empty = (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.float32))
            return [empty] * len(queries)
        count = min(k, size)
        if self._rerank:
            count = min(max(k * _RERANK_FACTOR, _RERANK_MIN), size)
        keys, dist, counts = self._raw_search(self._encode_queries(queries), count)
        out: list[tuple[Keys, F32]] = []
        for i in range(len(queries)):
            n = int(counts[i])
            ki = keys[i, :n]
            if self._rerank:
                scores = self.scores(queries[i], ki)
                order = np.argsort(-scores, kind="stable")[:k]
                out.append((ki[order], scores[order]))
            else:
                out.append((ki, self._to_scores(dist[i, :n])))
        return out

    def search_one(self, query: F32, k: int) -> tuple[Keys, F32]:
        """Top ``k`` for one ``(dim,)`` query."""
        if self._rerank or self._c is None or self.tier is Tier.COLD:
            return self.search(query.reshape(1, -1), k)[0]
        # Fast path for the float tiers and COOL under cosine: the same steps as search()
        # without the batch bookkeeping (this is the per-query cost the benchmarks hold
        # down: the ruvLLM retriever runs it once per request).
        size = self._c.size
        if not size or k <= 0:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.float32)
        q: NDArray[Any] = query.reshape(1, -1)
        if self.tier is Tier.COOL:
            q = _i8_query(q)
        res = self._c.search_many(q, min(k, size), False, 1)
        n = int(res[2][0])
        return res[0][0, :n], self._to_scores(res[1][0, :n])

    def _get_raw(self, keys: Keys) -> NDArray[Any]:
        """Stored codes of ``keys`` as ``(n, width)`` in the tier's numpy dtype."""
        got: Any = (
            self._c.get_many(keys, self._kind) if self._c is not None else self.index.get(keys)
        )
        raw = np.concatenate(got)  # one row per key; concatenate is 2x faster than stack
        want = _NP_DTYPE[self.tier]
        if raw.dtype != want:
            raw = raw.view(want)
        return raw.reshape(len(keys), -1)

    def vector_rows(self, keys: Keys) -> Sequence[F32]:
        """Decoded vectors of ``keys`` as one float32 array per key (HOT: no copy at all)."""
        if self.tier is Tier.HOT and self._c is not None:
            rows: tuple[F32, ...] = self._c.get_many(keys, self._kind)
            return rows
        return list(self.vectors(keys))

    def vectors(self, keys: Keys) -> F32:
        """The decoded float32 vectors of ``keys`` (all present), ``(n, dim)``."""
        if not len(keys):
            return np.zeros((0, self.dim), dtype=np.float32)
        raw = self._get_raw(keys)
        if self.tier is Tier.HOT:
            return raw
        if self.tier is Tier.WARM:
            return _F16.decode(raw)
        if self.tier is Tier.COOL:
            # Int8Quantizer.decode (codes * scale, float32) minus its input checks: the
            # codes and scales are this index's own.
            out: F32 = raw * self._aux1[keys][:, None]
            return out
        scale = self._aux1[keys] * self._aux2[keys] / self._sqrt_dim
        return _B1.decode(raw, self.dim, scale)

    def scores(self, query: F32, keys: Keys) -> F32:
        """This tier's score of ``query`` against each of ``keys`` (exact on its vectors)."""
        if not len(keys):
            return np.zeros(0, dtype=np.float32)
        q = query.astype(np.float32, copy=False)
        if self.tier is Tier.COLD:
            signs = _B1.decode(self._get_raw(keys), self.dim)
            proj = signs @ q / self._sqrt_dim  # <q, sign(x)/sqrt(d)>
            norms = self._aux1[keys]
            return self._from_dot(norms * proj / self._aux2[keys], q, norms)
        vecs = self.vectors(keys)
        return self._from_dot(vecs @ q, q, np.linalg.norm(vecs, axis=1))

    def _from_dot(self, dot: NDArray[Any], q: F32, norms: NDArray[Any]) -> F32:
        out: F32
        if self._metric is Metric.IP:
            out = dot.astype(np.float32)
            return out
        qn = float(np.linalg.norm(q))
        if self._metric is Metric.COSINE:
            denom = np.maximum(norms * qn, 1e-30)
            out = np.clip(dot / denom, -1.0, 1.0).astype(np.float32)
            return out
        d2 = np.maximum(qn * qn + norms * norms - 2 * dot, 0)
        out = (-np.sqrt(d2)).astype(np.float32)
        return out

    # ----------------------------------------------------------------------- sizes
    def memory_bytes(self) -> int:
        """RAM held by the index (usearch's own accounting) and the side arrays."""
        return int(self.index.memory_usage) + self._aux1.nbytes + self._aux2.nbytes

    def stored_bytes(self) -> int:
        """Bytes of vectors plus HNSW links as serialized (no allocator slack)."""
        return int(self.index.serialized_length) + 4 * len(self) * (
            0 if self.tier in (Tier.HOT, Tier.WARM) else (1 if self.tier is Tier.COOL else 2)
        )

    def payload_bytes_per_entry(self) -> float:
        """Bytes of the stored vector representation per entry (no graph)."""
        return {
            Tier.HOT: 4.0 * self.dim,
            Tier.WARM: 2.0 * self.dim,
            Tier.COOL: self.dim + 4.0,
            Tier.COLD: (self.dim + 7) // 8 + 8.0,
        }[self.tier]

    # ----------------------------------------------------------------------- files
    def save(self, path: Path) -> None:
        """Write the index (``path``) and its side arrays (``path`` + ``.aux.npy``)."""
        tmp = path.with_name(path.name + ".tmp")
        self.index.save(os.fspath(tmp))
        size = max(self._aux1.shape[0], self._aux2.shape[0], 1)
        aux = np.stack([_pad(self._aux1, size), _pad(self._aux2, size)])
        aux_tmp = path.with_name(path.name + ".aux.tmp.npy")
        np.save(aux_tmp, aux)
        for f in (tmp, aux_tmp):
            _fsync(f)
        os.replace(aux_tmp, path.with_name(path.name + ".aux.npy"))
        os.replace(tmp, path)

    def load(self, path: Path) -> None:
        """Replace this index's content with the files :meth:`save` wrote."""
        try:
            self.index.load(os.fspath(path))
            aux = np.load(path.with_name(path.name + ".aux.npy"), allow_pickle=False)
        except (OSError, RuntimeError, ValueError) as exc:
            raise StorageError(f"cannot load index file {path}: {exc}") from None
        if aux.ndim != 2 or aux.shape[0] != 2 or aux.dtype != np.float32:
            raise StorageError(f"index side file for {path} is malformed")
        if self.tier in (Tier.COOL, Tier.COLD):
            self._aux1 = aux[0].copy()
            self._aux2 = aux[1].copy()
        if self.index.ndim != self.dim:
            raise StorageError(f"index file {path} has dimension {self.index.ndim}, not {self.dim}")


def _i8_query(q: F32) -> NDArray[np.int8]:
    """Int8 codes of one finite ``(1, dim)`` query, as :class:`Int8Quantizer` makes them
    (``rint(x * 127 / max|x|)``) without its batch validation. Only for cosine, where
    the scale cancels; an all-zero query (no direction) gets all-zero codes."""
    amax = np.float32(np.abs(q).max())
    if not amax:
        return np.zeros(q.shape, dtype=np.int8)
    inv = np.float32(1.0) / (amax / np.float32(127))
    codes: NDArray[np.int8] = np.rint(q * inv).astype(np.int8)
    return codes


def _pad(arr: F32, size: int) -> F32:
    out = np.zeros(size, dtype=np.float32)
    out[: arr.shape[0]] = arr
    return out


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
