"""MicroLoRA (rank 1-2, per request) and BaseLoRA (rank 4-16, per layer, background).

Both adapters compute ``y = x + scale * up @ (down @ x)``. ``down`` starts as a seeded
Gaussian (std ``1/sqrt(dim)``) and ``up`` at zero, the usual LoRA initialisation, so a
fresh adapter is the identity but *both* projections receive gradient from the first
update on (the seed zero-initialises BaseLoRA's down projection and never trains it, so
its output is always zero).

Learning uses a linear surrogate: given an output-space ascent direction ``g`` for input
``x`` (see :func:`ruvector_edge.sona.engine.learning_signal`), the gradient of ``g . y`` is
``dUp = scale * g (down x)^T`` and ``dDown = scale * (up^T g) x^T``; batched forms sum over
rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ruvector_edge.errors import ConfigError, DimensionError, InvalidInputError
from ruvector_edge.sona._util import F32, as_matrix, as_vector

__all__ = ["BaseLoRA", "MicroLoRA", "fit_base_rank"]

_F32 = np.float32
_CHUNK = 512  # rows per block in batched forward


def _check_weights(arr: Any, shape: tuple[int, ...], what: str) -> F32:
    out = np.array(arr, dtype=_F32, order="C", copy=True)
    if out.shape != shape:
        raise DimensionError(f"{what} must have shape {shape}, got {out.shape}")
    if not np.isfinite(out).all():
        raise InvalidInputError(f"{what} contains NaN or infinity")
    return out


class MicroLoRA:
    """Rank 1-2 adapter applied per request.

    ``forward(x)`` returns ``x + delta`` as a new array; ``forward(x, out=buf)`` adds only
    the delta into ``buf`` (the seed's ``output += lora(input)`` style) and returns it.
    2-d input is treated as a batch of row vectors.
    """

    __slots__ = ("_dim", "_down", "_rank", "_scale", "_shape1", "_up", "_up_s", "_w", "updates")

    def __init__(
        self,
        hidden_dim: int,
        rank: int = 2,
        *,
        scale: float | None = None,
        seed: int = 0,
    ) -> None:
        if isinstance(hidden_dim, bool) or not isinstance(hidden_dim, int) or hidden_dim < 1:
            raise ConfigError(f"hidden_dim must be a positive int, got {hidden_dim!r}")
        if rank not in (1, 2):
            raise ConfigError(f"MicroLoRA rank must be 1 or 2, got {rank!r}; use BaseLoRA")
        self._dim = hidden_dim
        self._rank = rank
        self._scale = float(scale) if scale is not None else 1.0 / float(np.sqrt(rank))
        rng = np.random.default_rng(seed)
        self._down: F32 = (rng.standard_normal((rank, hidden_dim)) / np.sqrt(hidden_dim)).astype(
            _F32
        )
        self._up: F32 = np.zeros((hidden_dim, rank), dtype=_F32)
        self._up_s: F32 = self._up * _F32(self._scale)
        self._w = (self._down, self._up_s)  # one attribute: readers see a consistent pair
        self._shape1 = (hidden_dim,)
        self.updates = 0

    # -- properties -------------------------------------------------------------------
    @property
    def rank(self) -> int:
        """Adapter rank (1 or 2)."""
        return self._rank

    @property
    def hidden_dim(self) -> int:
        """Input/output dimension."""
        return self._dim

    @property
    def scale(self) -> float:
        """Output scale (default ``1/sqrt(rank)``)."""
        return self._scale

    @property
    def param_count(self) -> int:
        """Number of trainable parameters (both projections)."""
        return 2 * self._dim * self._rank

    # -- forward ----------------------------------------------------------------------
    def forward(self, x: Any, out: F32 | None = None) -> F32:
        """``x + delta(x)`` as a new array, or ``out += delta(x)`` when ``out`` is given."""
        if type(x) is not np.ndarray or x.dtype != _F32 or x.shape != self._shape1:
            if isinstance(x, np.ndarray) and x.ndim == 2:
                return self.forward_batch(x, out=out)
            x = as_vector(x, self._dim, "input")
        down, up_s = self._w
        h = np.dot(down, x)
        if out is None:
            return np.dot(up_s, h) + x  # type: ignore[no-any-return]
        out += np.dot(up_s, h)
        return out

    def forward_batch(self, xs: Any, out: F32 | None = None) -> F32:
        """Batched forward for ``(n, hidden_dim)`` rows: ``xs + delta(xs)`` (or into ``out``)."""
        if type(xs) is not np.ndarray or xs.dtype != _F32 or xs.ndim != 2:
            xs = as_matrix(xs, self._dim, "input batch")
        elif xs.shape[1] != self._dim:
            raise DimensionError(f"input batch must have {self._dim} columns, got {xs.shape}")
        down, up_s = self._w
        n = xs.shape[0]
        if n <= _CHUNK:
            h = xs @ down.T
            if out is None:
                res: F32 = h @ up_s.T
                res += xs
                return res
            out += h @ up_s.T
            return out
        # Cache-sized row blocks: each block of x is read once while hot (about 20% faster
        # than whole-array passes, which are memory-bound).
        down_t, up_t = down.T, up_s.T
        if out is None:
            res = np.empty_like(xs)
            for s in range(0, n, _CHUNK):
                xc = xs[s : s + _CHUNK]
                np.matmul(xc @ down_t, up_t, out=res[s : s + _CHUNK])
                res[s : s + _CHUNK] += xc
            return res
        for s in range(0, n, _CHUNK):
            out[s : s + _CHUNK] += (xs[s : s + _CHUNK] @ down_t) @ up_t
        return out

    def delta(self, xs: Any) -> F32:
        """The adapter's contribution only (``forward(x) - x``), for 1-d or 2-d input."""
        arr = np.asarray(xs, dtype=_F32)
        if arr.ndim == 1:
            v = as_vector(arr, self._dim, "input")
            res: F32 = np.dot(self._up_s, np.dot(self._down, v)).astype(_F32)
            return res
        m = as_matrix(arr, self._dim, "input batch")
        out: F32 = ((m @ self._down.T) @ self._up_s.T).astype(_F32)
        return out

    # -- learning ---------------------------------------------------------------------
    def gradients(self, xs: F32, gs: F32) -> tuple[F32, F32]:
        """Gradients ``(d_down, d_up)`` of ``sum_i g_i . y_i`` (rows ``xs``, directions ``gs``)."""
        s = _F32(self._scale)
        if xs.ndim == 1:
            h1 = np.dot(self._down, xs)
            return np.outer(np.dot(self._up.T, gs) * s, xs), np.outer(gs * s, h1)
        xs2 = xs.reshape(-1, self._dim)
        gs2 = gs.reshape(-1, self._dim)
        h = xs2 @ self._down.T  # (n, r)
        d_up = (gs2.T @ h) * _F32(self._scale)  # (d, r)
        d_down = ((gs2 @ self._up).T @ xs2) * _F32(self._scale)  # (r, d)
        return d_down.astype(_F32), d_up.astype(_F32)

    def parameters(self) -> F32:
        """All parameters as one flat vector ``[down.ravel(), up.ravel()]`` (a copy)."""
        return np.concatenate([self._down.ravel(), self._up.ravel()])

    def set_parameters(self, flat: Any) -> None:
        """Set from a flat vector laid out like :meth:`parameters`."""
        vec = as_vector(flat, self.param_count, "MicroLoRA parameter vector")
        n = self._rank * self._dim
        self._set(vec[:n].reshape(self._rank, self._dim), vec[n:].reshape(self._dim, self._rank))

    def get_weights(self) -> tuple[F32, F32]:
        """Copies of ``(down (rank, dim), up (dim, rank))`` (the seed's lora_a, lora_b)."""
        return self._down.copy(), self._up.copy()

    def set_weights(self, down: Any, up: Any) -> None:
        """Replace both projections (shapes checked, ``DimensionError`` on mismatch)."""
        d = _check_weights(down, (self._rank, self._dim), "MicroLoRA down projection")
        u = _check_weights(up, (self._dim, self._rank), "MicroLoRA up projection")
        self._set(d, u)

    def _set(self, down: F32, up: F32) -> None:
        self._down = np.ascontiguousarray(down, dtype=_F32)
        self._up = np.ascontiguousarray(up, dtype=_F32)
        self._up_s = np.ascontiguousarray(self._up * _F32(self._scale))
        self._w = (self._down, self._up_s)

    def reset(self) -> None:
        """Back to the identity (``up = 0``); the down projection is kept."""
        self._set(self._down, np.zeros_like(self._up))
        self.updates = 0


class BaseLoRA:
    """Rank 4-16 adapters, one per layer, trained by the background loop."""

    __slots__ = ("_dim", "_down", "_layers", "_rank", "_scale", "_up", "alpha")

    def __init__(
        self, hidden_dim: int, rank: int = 8, num_layers: int = 12, *, seed: int = 0
    ) -> None:
        if isinstance(hidden_dim, bool) or not isinstance(hidden_dim, int) or hidden_dim < 1:
            raise ConfigError(f"hidden_dim must be a positive int, got {hidden_dim!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= 64:
            raise ConfigError(f"BaseLoRA rank must be in [1, 64] (4-16 typical), got {rank!r}")
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ConfigError(f"num_layers must be a positive int, got {num_layers!r}")
        self._dim = hidden_dim
        self._rank = rank
        self._layers = num_layers
        self.alpha = float(rank)
        self._scale = _F32(self.alpha / rank)
        rng = np.random.default_rng(seed + 1)
        self._down: F32 = (
            rng.standard_normal((num_layers, rank, hidden_dim)) / np.sqrt(hidden_dim)
        ).astype(_F32)
        self._up: F32 = np.zeros((num_layers, hidden_dim, rank), dtype=_F32)

    @property
    def rank(self) -> int:
        """Adapter rank."""
        return self._rank

    @property
    def hidden_dim(self) -> int:
        """Input/output dimension."""
        return self._dim

    def num_layers(self) -> int:
        """Number of layers (seed name)."""
        return self._layers

    @property
    def param_count(self) -> int:
        """Trainable parameters over all layers."""
        return 2 * self._layers * self._dim * self._rank

    def _layer(self, layer_idx: int) -> int:
        if isinstance(layer_idx, bool) or not isinstance(layer_idx, int | np.integer):
            raise InvalidInputError(f"layer index must be an int, got {layer_idx!r}")
        if not 0 <= layer_idx < self._layers:
            raise InvalidInputError(
                f"layer index {layer_idx} out of range; this BaseLoRA has {self._layers} layers"
            )
        return int(layer_idx)

    def forward_layer(self, layer_idx: int, x: Any, out: F32 | None = None) -> F32:
        """``x + delta_layer(x)`` (new array; rows if 2-d) or ``out += delta`` if given."""
        i = self._layer(layer_idx)
        arr = np.asarray(x, dtype=_F32)
        xs = as_vector(arr, self._dim, "input") if arr.ndim == 1 else as_matrix(arr, self._dim)
        h = xs @ self._down[i].T
        delta = (h @ self._up[i].T) * self._scale
        if out is None:
            res: F32 = (xs + delta).astype(_F32)
            return res
        out += delta
        return out

    def gradients(self, layer_idx: int, xs: F32, gs: F32) -> tuple[F32, F32]:
        """Gradients ``(d_down, d_up)`` of ``sum_i g_i . y_i`` for one layer."""
        i = self._layer(layer_idx)
        xs2 = xs.reshape(-1, self._dim)
        gs2 = gs.reshape(-1, self._dim)
        h = xs2 @ self._down[i].T
        d_up = (gs2.T @ h) * self._scale
        d_down = ((gs2 @ self._up[i]).T @ xs2) * self._scale
        return d_down.astype(_F32), d_up.astype(_F32)

    def parameters(self) -> F32:
        """Flat copy ``[down.ravel(), up.ravel()]`` over all layers."""
        return np.concatenate([self._down.ravel(), self._up.ravel()])

    def set_parameters(self, flat: Any) -> None:
        """Set from a flat vector laid out like :meth:`parameters`."""
        vec = as_vector(flat, self.param_count, "BaseLoRA parameter vector")
        n = self._layers * self._rank * self._dim
        self._down = vec[:n].reshape(self._layers, self._rank, self._dim).copy()
        self._up = vec[n:].reshape(self._layers, self._dim, self._rank).copy()

    def get_weights(self) -> tuple[F32, F32]:
        """Copies of ``(down (L, rank, dim), up (L, dim, rank))``."""
        return self._down.copy(), self._up.copy()

    def set_weights(self, down: Any, up: Any) -> None:
        """Replace every layer (shapes checked)."""
        shape_d = (self._layers, self._rank, self._dim)
        shape_u = (self._layers, self._dim, self._rank)
        self._down = _check_weights(down, shape_d, "BaseLoRA down projections")
        self._up = _check_weights(up, shape_u, "BaseLoRA up projections")

    def get_layer_weights(self, layer_idx: int) -> tuple[F32, F32]:
        """Copies of one layer's ``(down, up)``."""
        i = self._layer(layer_idx)
        return self._down[i].copy(), self._up[i].copy()

    def set_layer_weights(self, layer_idx: int, down: Any, up: Any) -> None:
        """Replace one layer's projections (shapes checked)."""
        i = self._layer(layer_idx)
        self._down[i] = _check_weights(down, (self._rank, self._dim), "down projection")
        self._up[i] = _check_weights(up, (self._dim, self._rank), "up projection")

    def merge_into(self, model_weights: Any, layer_idx: int) -> F32:
        """``W + scale * up @ down`` for a ``(dim, dim)`` weight acting as ``W @ x``."""
        i = self._layer(layer_idx)
        w = np.asarray(model_weights, dtype=_F32)
        if w.shape != (self._dim, self._dim):
            raise DimensionError(f"model weights must be ({self._dim}, {self._dim})")
        res: F32 = (w + self._scale * (self._up[i] @ self._down[i])).astype(_F32)
        return res


def fit_base_rank(down: Any, up: Any, rank: int) -> tuple[F32, F32]:
    """BaseLoRA factors ``(L, r, d)``/``(L, d, r)`` converted to rank ``rank``.

    Padding with zeros keeps ``up @ down`` exactly; truncation keeps its best rank-``rank``
    approximation (SVD per layer).
    """
    dn = np.asarray(down, dtype=_F32)
    upa = np.asarray(up, dtype=_F32)
    if dn.ndim != 3 or upa.ndim != 3 or dn.shape[0] != upa.shape[0] or dn.shape[1] != upa.shape[2]:
        raise DimensionError(f"BaseLoRA factors have incompatible shapes {dn.shape}, {upa.shape}")
    layers, r, d = dn.shape
    if r == rank:
        return dn.copy(), upa.copy()
    if r < rank:
        nd = np.zeros((layers, rank, d), dtype=_F32)
        nu = np.zeros((layers, d, rank), dtype=_F32)
        nd[:, :r] = dn
        nu[:, :, :r] = upa
        return nd, nu
    nd = np.zeros((layers, rank, d), dtype=_F32)
    nu = np.zeros((layers, d, rank), dtype=_F32)
    for i in range(layers):
        u, s, vt = np.linalg.svd(upa[i] @ dn[i], full_matrices=False)
        root = np.sqrt(s[:rank])
        nu[i] = (u[:, :rank] * root).astype(_F32)
        nd[i] = (root[:, None] * vt[:rank]).astype(_F32)
    return nd, nu
