"""Input conversion and validation helpers shared by the codec modules."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ruvector_edge.errors import CodecError

__all__ = ["F32", "as_float32", "as_vectors", "require_finite"]

F32 = NDArray[np.float32]


def as_float32(values: ArrayLike, what: str = "tensor") -> F32:
    """Convert to a C-contiguous float32 array (any shape, 0-d included).

    Accepts bool, int, uint and float input; float64 and large ints are rounded to float32.
    """
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise CodecError(f"cannot convert input to a {what}: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise CodecError(
            f"{what} dtype {arr.dtype} is not real numeric (bool, int, uint or float expected)"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(arr, dtype=np.float32, order="C")


def require_finite(mx: F32 | np.float32, mn: F32 | np.float32, what: str = "tensor") -> None:
    """Raise CodecError unless the given maxima and minima are all finite.

    ``max``/``min`` reductions propagate NaN and surface +-inf, so checking them covers
    every element of the array they came from.
    """
    if not (np.isfinite(mx).all() and np.isfinite(mn).all()):
        raise CodecError(
            f"{what} contains non-finite values (NaN or +-inf, possibly from float32 overflow "
            "when converting); only finite values can be encoded"
        )


def as_vectors(
    values: ArrayLike, *, dim: int | None = None, what: str = "vectors"
) -> tuple[F32, bool]:
    """A finite ``(n, dim)`` float32 batch from one vector or a batch; and whether it was 1-D."""
    arr = as_float32(values, what)
    if arr.ndim == 1:
        batch, single = arr.reshape(1, -1), True
    elif arr.ndim == 2:
        batch, single = arr, False
    else:
        raise CodecError(f"{what} must be 1-D (one vector) or 2-D (n, dim), got shape {arr.shape}")
    if batch.shape[1] == 0:
        raise CodecError(f"{what} must have at least one dimension, got shape {arr.shape}")
    if dim is not None and batch.shape[1] != dim:
        raise CodecError(f"{what} have dimension {batch.shape[1]}, expected {dim}")
    if batch.size:
        require_finite(batch.max(), batch.min(), what)
    return batch, single
