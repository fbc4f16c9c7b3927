"""Vector-memory tier quantizers: float16, per-vector int8 and sign-bit binary codes.

All take one vector ``(dim,)`` or a batch ``(n, dim)`` and answer in the same form. Input
is converted to float32 and must be finite (CodecError otherwise).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ruvector_edge.codec import _quant
from ruvector_edge.codec._arrays import F32, as_vectors
from ruvector_edge.errors import CodecError

__all__ = ["BinaryQuantizer", "Float16Quantizer", "Int8Quantizer"]

# Values at or above this magnitude round to +-inf in float16 (65504 is the largest finite).
_FLOAT16_OVERFLOW: Final = 65520.0
_POPCOUNT8: Final = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(
    axis=1, dtype=np.uint8
)
# numpy >= 2.0 has a native popcount ufunc; older numpy uses the 256-entry table.
_BITWISE_COUNT: Any = getattr(np, "bitwise_count", None)
# Cap on the (queries x codes x bytes) XOR temporary in hamming_distances.
_HAMMING_CHUNK_BYTES: Final = 1 << 26


def _codes_array(codes: ArrayLike, dtype: type[np.generic], what: str) -> NDArray[Any]:
    arr = np.asarray(codes)
    if arr.dtype != np.dtype(dtype):
        raise CodecError(f"{what} must have dtype {np.dtype(dtype)}, got {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise CodecError(f"{what} must be 1-D or 2-D, got shape {arr.shape}")
    return arr


class Float16Quantizer:
    """Half-precision storage: 2x smaller, relative error <= 2**-11 in the normal range."""

    bits_per_value: Final = 16

    def encode(self, vectors: ArrayLike) -> NDArray[np.float16]:
        """Round to float16; magnitudes >= 65520 (which would become inf) raise CodecError."""
        batch, single = as_vectors(vectors)
        if batch.size and max(float(batch.max()), -float(batch.min())) >= _FLOAT16_OVERFLOW:
            raise CodecError("vectors exceed the float16 range (|x| must be below 65520)")
        out = batch.astype(np.float16)
        return out[0] if single else out

    def decode(self, codes: ArrayLike) -> F32:
        """Back to float32 (exact: every float16 is a float32)."""
        arr = _codes_array(codes, np.float16, "float16 codes")
        return arr.astype(np.float32)


class Int8Quantizer:
    """Symmetric per-vector int8: ``scale = max|x| / 127``, codes rounded to nearest.

    Every element satisfies ``|x - decoded| <= scale / 2`` (plus float32 rounding). Zero
    vectors get scale 0 and decode to exact zeros; constant vectors round-trip exactly.
    """

    bits_per_value: Final = 8

    def encode(self, vectors: ArrayLike) -> tuple[NDArray[np.int8], F32]:
        """``(codes, scales)``: int8 ``(n, dim)`` and float32 ``(n,)`` (``(dim,)``, ``()``
        for a single vector)."""
        batch, single = as_vectors(vectors)
        n, dim = batch.shape
        mx, mn = _quant.group_min_max(batch.reshape(-1), dim)
        scales, codes = _quant.q8_encode(batch.reshape(-1), dim, mx, mn)
        codes2 = codes.reshape(n, dim)
        if single:
            return codes2[0], scales.reshape(())
        return codes2, scales

    def decode(self, codes: ArrayLike, scales: ArrayLike) -> F32:
        """``codes * scale`` per vector, as float32."""
        arr = _codes_array(codes, np.int8, "int8 codes")
        sc = np.asarray(scales, dtype=np.float32)
        batch = arr.reshape(1, -1) if arr.ndim == 1 else arr
        if sc.size != batch.shape[0] or (arr.ndim == 2 and sc.shape != (batch.shape[0],)):
            raise CodecError(
                f"scales shape {sc.shape} does not match codes shape {arr.shape} "
                "(one scale per vector)"
            )
        if sc.size and not (np.isfinite(sc).all()):
            raise CodecError("scales must be finite")
        if batch.shape[1] == 0:
            raise CodecError("codes must have at least one dimension")
        n, dim = batch.shape
        flat = np.ascontiguousarray(batch).reshape(-1)
        out = _quant.q8_decode(flat, sc.reshape(-1), dim).reshape(n, dim)
        return out[0] if arr.ndim == 1 else out


class BinaryQuantizer:
    """One sign bit per dimension (bit 1 iff ``x > 0``), packed 8 per byte, MSB first.

    A ``dim``-vector takes ``ceil(dim / 8)`` bytes (padding bits are 0). Decoding gives
    ``+1``/``-1`` (times an optional per-vector scale).
    """

    bits_per_value: Final = 1

    def encode(self, vectors: ArrayLike) -> NDArray[np.uint8]:
        """Packed sign bits, ``(n, ceil(dim/8))`` uint8 (``(ceil(dim/8),)`` for one vector)."""
        batch, single = as_vectors(vectors)
        packed = np.packbits(batch > 0, axis=1)
        return packed[0] if single else packed

    def encode_with_scales(self, vectors: ArrayLike) -> tuple[NDArray[np.uint8], F32]:
        """Packed sign bits plus per-vector scales ``mean(|x|)`` (float32, ``(n,)`` or ``()``).

        ``mean(|x|)`` is the scale that minimizes the L2 error of ``scale * sign(x)``, so
        ``decode(codes, dim, scales)`` is the best reconstruction these codes allow.
        """
        batch, single = as_vectors(vectors)
        packed = np.packbits(batch > 0, axis=1)
        scales = np.abs(batch).mean(axis=1, dtype=np.float64).astype(np.float32)
        if single:
            return packed[0], scales.reshape(())
        return packed, scales

    def decode(self, codes: ArrayLike, dim: int, scales: ArrayLike | None = None) -> F32:
        """``+-1`` float32 vectors of length ``dim`` (``+-scale`` if ``scales`` given)."""
        arr = _codes_array(codes, np.uint8, "binary codes")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise CodecError(f"dim must be a positive int, got {dim!r}")
        if arr.shape[-1] != (dim + 7) // 8:
            raise CodecError(
                f"binary codes have {arr.shape[-1]} bytes per vector; dim {dim} needs "
                f"{(dim + 7) // 8}"
            )
        bits = np.unpackbits(arr, axis=-1, count=dim)
        out = bits.astype(np.float32)
        out *= 2
        out -= 1
        if scales is not None:
            sc = np.asarray(scales, dtype=np.float32)
            want = () if arr.ndim == 1 else (arr.shape[0],)
            if sc.shape != want and not (arr.ndim == 1 and sc.shape == (1,)):
                raise CodecError(f"scales shape {sc.shape} does not match codes {arr.shape}")
            out *= sc.reshape(-1, 1) if arr.ndim == 2 else sc.reshape(())
        return out

    @staticmethod
    def hamming_distances(query_codes: ArrayLike, codes: ArrayLike) -> NDArray[np.int64]:
        """Hamming distances between packed codes.

        ``query_codes`` ``(nbytes,)`` against ``codes`` ``(n, nbytes)`` gives ``(n,)``;
        a query batch ``(nq, nbytes)`` gives ``(nq, n)``. A single code ``(nbytes,)`` counts
        as ``n = 1``.
        """
        q = _codes_array(query_codes, np.uint8, "query codes")
        c = _codes_array(codes, np.uint8, "codes")
        c2 = c.reshape(1, -1) if c.ndim == 1 else c
        if q.shape[-1] != c2.shape[1]:
            raise CodecError(
                f"query codes have {q.shape[-1]} bytes per vector, codes have {c2.shape[1]}"
            )
        if q.ndim == 1:
            return _popcount_rows(np.bitwise_xor(c2, q))
        nq, n, nbytes = q.shape[0], c2.shape[0], c2.shape[1]
        result = np.empty((nq, n), dtype=np.int64)
        step = max(1, _HAMMING_CHUNK_BYTES // max(1, n * nbytes))
        for start in range(0, nq, step):  # chunks of queries bound the XOR temporary
            xor = np.bitwise_xor(q[start : start + step, None, :], c2[None, :, :])
            result[start : start + step] = _popcount_rows(xor)
        return result


def _popcount_rows(xor: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Bits set along the last axis."""
    nbytes = xor.shape[-1]
    counted: NDArray[Any]
    if _BITWISE_COUNT is None:
        counted = _POPCOUNT8[xor]
    if nbytes % 8 == 0 and xor.flags.c_contiguous:
        # Counting 64-bit words does 8x fewer element operations.
        words = xor.view(np.uint64)
        counted = _BITWISE_COUNT(words)
    else:
        counted = _BITWISE_COUNT(xor)
    total: NDArray[np.int64] = counted.sum(axis=-1, dtype=np.int64)
    return total
