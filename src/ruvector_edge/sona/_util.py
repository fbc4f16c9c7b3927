"""Small shared helpers: float32 coercion with typed errors, clocks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ruvector_edge.errors import DimensionError, InvalidInputError

F32 = NDArray[np.float32]
Clock = Callable[[], float]
"""A clock returning seconds (monotonic for intervals, wall time for pattern ages)."""


def wall_clock() -> float:
    """Seconds since the epoch (pattern timestamps)."""
    return time.time()


def monotonic_clock() -> float:
    """Monotonic seconds (background-loop intervals)."""
    return time.monotonic()


def as_vector(values: Any, dim: int | None, what: str = "vector") -> F32:
    """A C-contiguous float32 1-d array of length ``dim`` (any length if ``None``), finite."""
    try:
        arr = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} must be a sequence of numbers: {exc}") from None
    if arr.ndim != 1:
        raise DimensionError(f"{what} must be 1-d, got shape {arr.shape}")
    if dim is not None and arr.shape[0] != dim:
        raise DimensionError(f"{what} has dimension {arr.shape[0]}, expected {dim}")
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{what} contains NaN or infinity; pass finite values")
    return np.ascontiguousarray(arr)


def as_matrix(values: Any, dim: int, what: str = "batch") -> F32:
    """A C-contiguous float32 ``(n, dim)`` array, finite."""
    try:
        arr = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} must be numeric: {exc}") from None
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise DimensionError(f"{what} must have shape (n, {dim}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{what} contains NaN or infinity; pass finite values")
    return np.ascontiguousarray(arr)


def as_quality(value: Any, what: str = "quality") -> float:
    """A finite float (qualities are conventionally in [0, 1] but any finite value is taken)."""
    try:
        q = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(q):
        raise InvalidInputError(f"{what} must be finite, got {value!r}")
    return q
