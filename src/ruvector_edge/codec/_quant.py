"""Vectorized symmetric quantization kernels shared by the tensor codec and Int8Quantizer.

Scheme: per group (a block of a flat tensor, or a row of a batch), ``scale = max|x| / qmax``
and ``code = rint(x / scale)``, so ``|x - code * scale| <= scale / 2`` up to float32
rounding (about ``1e-4 * scale``). Two details keep every case well defined:

* a constant group (``min == max``) stores ``scale = |c|`` and code ``sign(c)``, so constant
  tensors, including all-zero ones (scale 0, code 0), round-trip exactly;
* other scales are clamped to ``[smallest normal float32, largest s with qmax * s finite]``,
  so ``1 / scale`` never overflows for subnormal inputs and ``code * scale`` stays a finite,
  normal number even next to ``float32.max``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Q4_OFFSET",
    "Q4_QMAX",
    "Q8_QMAX",
    "group_min_max",
    "q4_decode",
    "q4_encode",
    "q8_decode",
    "q8_encode",
    "symmetric_params",
]

Q8_QMAX: Final = 127
Q4_QMAX: Final = 7
Q4_OFFSET: Final = 8
_TINY: Final = np.float32(np.finfo(np.float32).tiny)

F32 = NDArray[np.float32]


def _max_scale(qmax: int) -> np.float32:
    """Largest float32 scale whose ``qmax * scale`` is still finite in float32."""
    s = np.float32(float(np.finfo(np.float32).max) / qmax)
    with np.errstate(over="ignore"):
        while not np.isfinite(np.float32(qmax) * s):
            s = np.nextafter(s, np.float32(0))
    return s


_MAX_SCALE: Final = {Q8_QMAX: _max_scale(Q8_QMAX), Q4_QMAX: _max_scale(Q4_QMAX)}


def _q4_lut() -> F32:
    # Byte b holds element 2i in its low nibble and element 2i+1 in its high nibble.
    b = np.arange(256, dtype=np.int16)
    lut = np.empty((256, 2), dtype=np.float32)
    lut[:, 0] = (b & 15) - Q4_OFFSET
    lut[:, 1] = (b >> 4) - Q4_OFFSET
    return lut


_Q4_LUT: Final = _q4_lut()


def group_min_max(flat: F32, block_size: int) -> tuple[F32, F32]:
    """Per-block max and min of a flat float32 array (last block may be short)."""
    n = flat.size
    nfull = n // block_size
    rem = n - nfull * block_size
    nb = nfull + (1 if rem else 0)
    mx = np.empty(nb, dtype=np.float32)
    mn = np.empty(nb, dtype=np.float32)
    if nfull:
        body = flat[: nfull * block_size].reshape(nfull, block_size)
        np.max(body, axis=1, out=mx[:nfull])
        np.min(body, axis=1, out=mn[:nfull])
    if rem:
        tail = flat[nfull * block_size :]
        mx[nfull] = tail.max()
        mn[nfull] = tail.min()
    return mx, mn


def symmetric_params(mx: F32, mn: F32, qmax: int) -> tuple[F32, F32, NDArray[np.bool_]]:
    """Scales, inverse scales and the mask of non-zero constant groups.

    ``mx``/``mn`` must be finite. Constant groups get ``inv = 0`` (their codes are then
    overwritten with ``sign(c)``).
    """
    amax: F32 = np.maximum(np.abs(mx), np.abs(mn))  # abs, not -mn: keeps zero scales +0.0
    const = mx == mn
    # Clamped at both ends: code * scale must neither overflow nor go subnormal.
    with np.errstate(under="ignore"):
        scale: F32 = np.clip(amax / np.float32(qmax), _TINY, _MAX_SCALE[qmax])
    scale[const] = amax[const]
    inv = np.zeros_like(scale)
    np.divide(np.float32(1.0), scale, out=inv, where=~const)
    const_nz: NDArray[np.bool_] = const & (amax > 0)
    return scale, inv, const_nz


def _encode_groups(
    flat: F32,
    *,
    block_size: int,
    inv: F32,
    out: NDArray[np.int8] | NDArray[np.uint8],
    offset: int,
) -> None:
    """``out[i] = rint(flat[i] * inv[block(i)]) + offset`` without a full-size int temp."""
    n = flat.size
    nfull = n // block_size
    cut = nfull * block_size
    with np.errstate(under="ignore"):  # subnormal inputs legitimately round to code 0
        _encode_body(
            flat, block_size=block_size, inv=inv, out=out, offset=offset, nfull=nfull, cut=cut
        )


def _encode_body(
    flat: F32,
    *,
    block_size: int,
    inv: F32,
    out: NDArray[np.int8] | NDArray[np.uint8],
    offset: int,
    nfull: int,
    cut: int,
) -> None:
    n = flat.size
    if nfull:
        tmp = np.multiply(flat[:cut].reshape(nfull, block_size), inv[:nfull, None])
        np.rint(tmp, out=tmp)
        if offset:
            tmp += np.float32(offset)
        np.copyto(out[:cut].reshape(nfull, block_size), tmp, casting="unsafe")
    if cut < n:
        tail = np.rint(flat[cut:] * inv[nfull])
        if offset:
            tail += np.float32(offset)
        np.copyto(out[cut:n], tail, casting="unsafe")


def _fix_constant_groups(
    out: NDArray[np.int8] | NDArray[np.uint8],
    *,
    n: int,
    block_size: int,
    mx: F32,
    const_nz: NDArray[np.bool_],
    offset: int,
) -> None:
    rows = np.flatnonzero(const_nz)
    if rows.size == 0:
        return
    signs = np.where(mx[rows] > 0, 1, -1) + offset
    nfull = n // block_size
    body_rows = rows[rows < nfull]
    if body_rows.size:
        body = out[: nfull * block_size].reshape(nfull, block_size)
        body[body_rows] = signs[: body_rows.size, None]
    if rows[-1] >= nfull:
        out[nfull * block_size : n] = signs[-1]


def q8_encode(flat: F32, block_size: int, mx: F32, mn: F32) -> tuple[F32, NDArray[np.int8]]:
    """Quantize a finite flat float32 array to int8 codes with per-block scales."""
    scale, inv, const_nz = symmetric_params(mx, mn, Q8_QMAX)
    codes = np.empty(flat.size, dtype=np.int8)
    _encode_groups(flat, block_size=block_size, inv=inv, out=codes, offset=0)
    _fix_constant_groups(
        codes, n=flat.size, block_size=block_size, mx=mx, const_nz=const_nz, offset=0
    )
    return scale, codes


def q8_decode(codes: NDArray[np.int8], scales: F32, block_size: int) -> F32:
    """Inverse of :func:`q8_encode`: ``codes * scale`` per block, as float32."""
    n = codes.size
    out = np.empty(n, dtype=np.float32)
    nfull = n // block_size
    cut = nfull * block_size
    if nfull:
        np.multiply(
            codes[:cut].reshape(nfull, block_size),
            scales[:nfull, None],
            out=out[:cut].reshape(nfull, block_size),
        )
    if cut < n:
        np.multiply(codes[cut:], scales[nfull], out=out[cut:])
    return out


def q4_encode(flat: F32, block_size: int, mx: F32, mn: F32) -> tuple[F32, NDArray[np.uint8]]:
    """Quantize to 4-bit codes (stored ``code + 8``), two per byte, low nibble first."""
    n = flat.size
    scale, inv, const_nz = symmetric_params(mx, mn, Q4_QMAX)
    nibbles = np.empty(n + (n & 1), dtype=np.uint8)
    if n & 1:
        nibbles[-1] = 0
    _encode_groups(flat, block_size=block_size, inv=inv, out=nibbles, offset=Q4_OFFSET)
    _fix_constant_groups(
        nibbles, n=n, block_size=block_size, mx=mx, const_nz=const_nz, offset=Q4_OFFSET
    )
    packed = np.left_shift(nibbles[1::2], 4)
    np.bitwise_or(packed, nibbles[0::2], out=packed)
    return scale, packed


def q4_decode(packed: NDArray[np.uint8], n: int, scales: F32, block_size: int) -> F32:
    """Inverse of :func:`q4_encode` for ``n`` elements."""
    pairs = np.take(_Q4_LUT, packed, axis=0)
    out = pairs.reshape(-1)[:n]
    nfull = n // block_size
    cut = nfull * block_size
    if nfull:
        body = out[:cut].reshape(nfull, block_size)
        np.multiply(body, scales[:nfull, None], out=body)
    if cut < n:
        np.multiply(out[cut:], scales[nfull], out=out[cut:])
    return out
