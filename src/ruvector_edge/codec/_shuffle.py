"""Byte-shuffle filter for float32 payloads (the blosc "shuffle" idea).

Storing byte 0 of every float, then byte 1, ... groups the slowly varying sign/exponent bytes
together, which LZ4 and zstd then compress far better than interleaved float bytes.
Planes are by significance (plane 0 = least significant byte), so the layout is the same on
any host byte order.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["shuffle4", "unshuffle4"]


def shuffle4(values: NDArray[np.float32]) -> NDArray[np.uint8]:
    """``(4, n)`` byte planes of a contiguous float32 array."""
    words = values.reshape(-1).view(np.uint32)
    planes = np.empty((4, words.size), dtype=np.uint8)
    np.copyto(planes[0], words, casting="unsafe")  # keeps the low byte
    for k in range(1, 4):  # four byte planes, not a per-element loop
        np.right_shift(words, 8 * k, out=planes[k], casting="unsafe")
    return planes


def unshuffle4(planes: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Inverse of :func:`shuffle4`: ``(4, n)`` byte planes back to ``n`` float32 values."""
    n = planes.shape[1]
    words = planes[0].astype(np.uint32)
    tmp = np.empty(n, dtype=np.uint32)
    for k in range(1, 4):
        np.left_shift(planes[k], 8 * k, out=tmp, dtype=np.uint32)
        np.bitwise_or(words, tmp, out=words)
    values: NDArray[np.float32] = words.view(np.float32)
    return values
