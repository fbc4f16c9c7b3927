"""Product quantization: ``m`` sub-vector codebooks trained with k-means, ADC distances."""

from __future__ import annotations

import struct
import zlib
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ruvector_edge.codec._arrays import F32, as_vectors
from ruvector_edge.codec._format import BytesLike, as_buffer
from ruvector_edge.errors import CodecError

__all__ = ["ProductQuantizer"]

_PQ_MAGIC: Final = b"RVPQ"
_PQ_VERSION: Final = 1
_PQ_HEADER: Final = struct.Struct("<4sBBHII")  # magic, version, nbits, reserved, dim, m
_CRC_SIZE: Final = 4
_MAX_DIM: Final = 1 << 20
# Rows per encode step: keeps the (rows x 2**nbits) distance block around 8 MB.
_ENCODE_CHUNK_ELEMS: Final = 1 << 21


def _kmeans_pp(x: F32, k: int, rng: np.random.Generator) -> F32:
    """k-means++ (D^2) seeding; one vectorized pass over the points per chosen centre."""
    n = x.shape[0]
    x2 = np.einsum("ij,ij->i", x, x)
    centers = np.empty((k, x.shape[1]), dtype=np.float32)
    idx = int(rng.integers(n))
    centers[0] = x[idx]
    d2 = np.maximum(x2 - 2 * (x @ centers[0]) + x2[idx], 0)
    for i in range(1, k):  # one step per centre (k <= 256), each vectorized over points
        cum = np.cumsum(d2, dtype=np.float64)
        total = cum[-1]
        if total > 0:
            idx = min(int(np.searchsorted(cum, rng.random() * total, side="right")), n - 1)
        else:  # every point coincides with a centre already
            idx = int(rng.integers(n))
        centers[i] = x[idx]
        np.minimum(d2, np.maximum(x2 - 2 * (x @ centers[i]) + x2[idx], 0), out=d2)
    return centers


def _assign(x_aug: F32, centers: F32) -> tuple[NDArray[np.intp], F32]:
    """Nearest centre per row; returns labels and ``||c||^2 - 2 x.c`` at the winner."""
    # x_aug = [x, 1]; w = [-2 c^T ; ||c||^2] turns the distance (minus ||x||^2) into one matmul.
    w = np.empty((centers.shape[1] + 1, centers.shape[0]), dtype=np.float32)
    w[:-1] = -2 * centers.T
    w[-1] = np.einsum("ij,ij->i", centers, centers)
    dist = x_aug @ w
    labels = dist.argmin(axis=1)
    return labels, np.take_along_axis(dist, labels[:, None], axis=1)[:, 0]


def _kmeans(
    x: F32, k: int, rng: np.random.Generator, max_iter: int, tol: float
) -> tuple[F32, float]:
    """Lloyd's k-means with k-means++ seeding; empty clusters take the farthest points."""
    n, d = x.shape
    centers = _kmeans_pp(x, k, rng)
    x2 = np.einsum("ij,ij->i", x, x)
    x_aug = np.empty((n, d + 1), dtype=np.float32)
    x_aug[:, :d] = x
    x_aug[:, d] = 1
    prev = np.inf
    inertia = np.inf
    for _ in range(max_iter):
        labels, partial = _assign(x_aug, centers)
        mind = np.maximum(partial + x2, 0)
        inertia = float(mind.sum(dtype=np.float64))
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros((k, d), dtype=np.float64)
        np.add.at(sums, labels, x)
        filled = counts > 0
        centers[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
        empty = np.flatnonzero(~filled)
        if empty.size:
            far = np.argpartition(mind, n - empty.size)[n - empty.size :]
            centers[empty] = x[far]
        elif prev - inertia <= tol * prev:
            break
        prev = inertia
    return centers, inertia


class ProductQuantizer:
    """Splits ``dim`` into ``m`` sub-vectors and codes each with a ``2**nbits`` codebook.

    A vector becomes ``m`` bytes (uint8 codes); ``adc_distances`` gives asymmetric squared
    L2 distances from a float query to coded vectors via per-query lookup tables.
    Training runs k-means per sub-space: k-means++ seeding from a ``np.random.Generator``
    seeded with ``seed``, then at most ``max_iter`` Lloyd iterations, stopping once the
    relative inertia improvement falls to ``tol``.
    """

    __slots__ = ("_codebooks", "_dim", "_m", "_max_iter", "_nbits", "_seed", "_tol")

    def __init__(
        self,
        dim: int,
        m: int,
        nbits: int = 8,
        seed: int = 0,
        *,
        max_iter: int = 25,
        tol: float = 1e-4,
    ) -> None:
        for name, value in (("dim", dim), ("m", m), ("nbits", nbits), ("max_iter", max_iter)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise CodecError(f"{name} must be an int, got {value!r}")
        if not 1 <= dim <= _MAX_DIM:
            raise CodecError(f"dim must be in [1, {_MAX_DIM}], got {dim}")
        if m < 1 or dim % m:
            raise CodecError(f"dim {dim} is not divisible by m={m} (m must divide dim)")
        if not 1 <= nbits <= 8:
            raise CodecError(f"nbits must be in [1, 8] (codes are uint8), got {nbits}")
        if max_iter < 1:
            raise CodecError(f"max_iter must be >= 1, got {max_iter}")
        if not tol >= 0:
            raise CodecError(f"tol must be >= 0, got {tol}")
        self._dim = dim
        self._m = m
        self._nbits = nbits
        self._seed = seed
        self._max_iter = max_iter
        self._tol = float(tol)
        self._codebooks: F32 | None = None

    def __repr__(self) -> str:
        return (
            f"ProductQuantizer(dim={self._dim}, m={self._m}, nbits={self._nbits}, "
            f"trained={self.is_trained})"
        )

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    @property
    def m(self) -> int:
        """Number of sub-vectors (bytes per code)."""
        return self._m

    @property
    def nbits(self) -> int:
        """Bits per sub-vector code."""
        return self._nbits

    @property
    def ksub(self) -> int:
        """Centroids per sub-space (``2**nbits``)."""
        return 1 << self._nbits

    @property
    def dsub(self) -> int:
        """Dimension of each sub-vector."""
        return self._dim // self._m

    @property
    def is_trained(self) -> bool:
        """Whether codebooks exist (after :meth:`train` or :meth:`from_bytes`)."""
        return self._codebooks is not None

    @property
    def codebooks(self) -> F32:
        """Read-only ``(m, ksub, dsub)`` float32 centroids."""
        books = self._require_trained()
        view = books.view()
        view.flags.writeable = False
        return view

    def _require_trained(self) -> F32:
        if self._codebooks is None:
            raise CodecError("ProductQuantizer is not trained; call train() or from_bytes()")
        return self._codebooks

    def train(self, sample: ArrayLike) -> None:
        """Learn the codebooks from a ``(n, dim)`` sample with ``n >= 2**nbits``."""
        batch, _ = as_vectors(sample, dim=self._dim, what="training sample")
        n = batch.shape[0]
        if n < self.ksub:
            raise CodecError(
                f"too few training samples: {n} < 2**nbits = {self.ksub} (one per centroid)"
            )
        rng = np.random.default_rng(self._seed)
        ds = self.dsub
        books = np.empty((self._m, self.ksub, ds), dtype=np.float32)
        for j in range(self._m):  # one k-means per sub-space
            sub = np.ascontiguousarray(batch[:, j * ds : (j + 1) * ds])
            books[j], _ = _kmeans(sub, self.ksub, rng, self._max_iter, self._tol)
        self._codebooks = books

    def encode(self, vectors: ArrayLike) -> NDArray[np.uint8]:
        """Nearest-centroid codes: ``(n, m)`` uint8 (``(m,)`` for one vector)."""
        books = self._require_trained()
        batch, single = as_vectors(vectors, dim=self._dim)
        n = batch.shape[0]
        m, ds, k = self._m, self.dsub, self.ksub
        weights = np.empty((m, ds + 1, k), dtype=np.float32)
        weights[:, :ds, :] = -2 * books.transpose(0, 2, 1)
        weights[:, ds, :] = np.einsum("mkd,mkd->mk", books, books)
        codes = np.empty((n, m), dtype=np.uint8)
        chunk = max(1, _ENCODE_CHUNK_ELEMS // k)
        aug = np.empty((min(chunk, n), m, ds + 1), dtype=np.float32)
        for start in range(0, n, chunk):  # row chunks bound the distance temporary
            rows = batch[start : start + chunk]
            c = rows.shape[0]
            aug[:c, :, :ds] = rows.reshape(c, m, ds)
            aug[:c, :, ds] = 1
            for j in range(m):
                dist = aug[:c, j, :] @ weights[j]
                codes[start : start + c, j] = dist.argmin(axis=1)
        return codes[0] if single else codes

    def decode(self, codes: ArrayLike) -> F32:
        """Reconstruct ``(n, dim)`` float32 vectors from ``(n, m)`` codes."""
        books = self._require_trained()
        arr, single = self._check_codes(codes)
        out = books[np.arange(self._m), arr.astype(np.intp)]
        out2 = out.reshape(arr.shape[0], self._dim)
        return out2[0] if single else out2

    def distance_table(self, query: ArrayLike) -> F32:
        """Squared L2 distance from each query sub-vector to each centroid.

        ``(m, ksub)`` for one query ``(dim,)``, ``(nq, m, ksub)`` for ``(nq, dim)``.
        """
        books = self._require_trained()
        batch, single = as_vectors(query, dim=self._dim, what="query")
        q = batch.reshape(batch.shape[0], self._m, 1, self.dsub)
        diff = q - books[None, :, :, :]
        table: F32 = np.einsum("qmkd,qmkd->qmk", diff, diff)
        return table[0] if single else table

    def adc_distances(self, query: ArrayLike, codes: ArrayLike) -> F32:
        """Asymmetric squared L2 distances from one query ``(dim,)`` to ``(n, m)`` codes."""
        table = self.distance_table(query)
        if table.ndim != 2:
            raise CodecError("adc_distances takes a single query vector of shape (dim,)")
        arr, _ = self._check_codes(codes)
        out = np.zeros(arr.shape[0], dtype=np.float32)
        for j in range(self._m):  # one gather per sub-space, vectorized over codes
            out += table[j][arr[:, j]]
        return out

    def _check_codes(self, codes: ArrayLike) -> tuple[NDArray[Any], bool]:
        arr = np.asarray(codes)
        if arr.dtype.kind not in "iu":
            raise CodecError(f"PQ codes must be integers (uint8), got dtype {arr.dtype}")
        single = arr.ndim == 1
        arr2 = arr.reshape(1, -1) if single else arr
        if arr2.ndim != 2 or arr2.shape[1] != self._m:
            raise CodecError(f"PQ codes must have shape (n, {self._m}), got {arr.shape}")
        if arr2.size and (int(arr2.min()) < 0 or int(arr2.max()) >= self.ksub):
            raise CodecError(f"PQ codes must lie in [0, {self.ksub})")
        return arr2, single

    def to_bytes(self) -> bytes:
        """Serialize the codebooks: header, float32 centroids, CRC-32."""
        books = self._require_trained()
        head = _PQ_HEADER.pack(_PQ_MAGIC, _PQ_VERSION, self._nbits, 0, self._dim, self._m)
        body = head + books.astype("<f4", copy=False).tobytes()
        return body + zlib.crc32(body).to_bytes(_CRC_SIZE, "little")

    @classmethod
    def from_bytes(cls, blob: BytesLike) -> ProductQuantizer:
        """A trained quantizer from :meth:`to_bytes` output; CodecError if invalid."""
        mv = as_buffer(blob)
        minimum = _PQ_HEADER.size + _CRC_SIZE
        if len(mv) < minimum:
            raise CodecError(f"truncated PQ blob: {len(mv)} bytes, need at least {minimum}")
        magic, version, nbits, reserved, dim, m = _PQ_HEADER.unpack_from(mv, 0)
        if magic != _PQ_MAGIC:
            raise CodecError(f"not a PQ blob: bad magic {bytes(magic)!r}")
        if version != _PQ_VERSION:
            raise CodecError(f"unsupported PQ blob version {version}")
        if reserved != 0 or not 1 <= nbits <= 8 or not 1 <= dim <= _MAX_DIM:
            raise CodecError("corrupt PQ blob: invalid nbits, dim or reserved field")
        if m < 1 or dim % m:
            raise CodecError(f"corrupt PQ blob: dim {dim} not divisible by m={m}")
        n_floats = (1 << nbits) * dim
        expected = minimum + 4 * n_floats
        if len(mv) != expected:
            raise CodecError(f"PQ blob is {len(mv)} bytes, its header implies {expected}")
        stored = int.from_bytes(mv[expected - _CRC_SIZE :], "little")
        if zlib.crc32(mv[: expected - _CRC_SIZE]) != stored:
            raise CodecError("checksum mismatch: PQ blob is corrupt")
        books = np.frombuffer(mv, dtype="<f4", count=n_floats, offset=_PQ_HEADER.size)
        if not np.isfinite(books).all():
            raise CodecError("corrupt PQ blob: codebooks contain non-finite values")
        pq = cls(dim, m, nbits)
        pq._codebooks = books.astype(np.float32).reshape(m, 1 << nbits, dim // m)
        return pq
