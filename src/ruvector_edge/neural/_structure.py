"""The vectorized layout behind a :class:`~ruvector_edge.neural.Network`.

libfann keeps neurons in one array (layer by layer, bias neurons included) and connections
in one array ordered by destination neuron, each naming a source neuron by global index.
Here every non-input layer owns a dense matrix ``W`` of shape ``(computed neurons, sources)``
over the contiguous range of global neurons its connections come from (the previous layer
for layered networks, everything before it for shortcut ones); absent connections of sparse
networks are masked zeros. ``conn_index`` maps libfann's global connection order onto the
flattened matrices, so weights, files and ``get_connection_array`` keep libfann's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ruvector_edge.errors import InvalidInputError
from ruvector_edge.neural.activation import SYMMETRIC_FUNCTIONS, ActivationFunc

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BoolArr = npt.NDArray[np.bool_]

__all__ = ["Layer", "Structure"]


@dataclass
class Layer:
    """One non-input layer: neurons ``[start, end)``; the first ``computed`` have inputs."""

    start: int
    end: int
    computed: int
    src_lo: int
    src_hi: int
    weights: F64  # (computed, src_hi - src_lo)
    mask: BoolArr | None  # None: every (neuron, source) pair is connected
    conn_index: I64  # flat indices into weights, in libfann's connection order
    conn_start: int  # global index of this layer's first connection
    groups: list[tuple[ActivationFunc, slice | I64]]  # activation groups over computed rows
    # sources split for the batch path: runs of non-bias neurons taken from per-layer arrays
    # (array 0 = the inputs, array j = computed neurons of layers[j - 1]) and bias columns
    segments: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    nb_cols: slice | I64 = field(default_factory=lambda: slice(0, 0))
    b_cols: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def bias(self) -> slice:
        """Global neuron indices of this layer's bias (connection-less) neurons."""
        return slice(self.start + self.computed, self.end)


class Structure:
    """Immutable topology plus mutable weights/activations of a network."""

    def __init__(  # noqa: PLR0917 - mirrors libfann / typer options
        self,
        layer_sizes: list[int],
        num_conns: I64,
        activation: I64,
        steepness: F64,
        conn_src: I64,
        weights: F64,
    ) -> None:
        total = int(sum(layer_sizes))
        if len(layer_sizes) < 2:
            raise InvalidInputError(f"a network needs at least 2 layers, got {len(layer_sizes)}")
        if any(s <= 0 for s in layer_sizes):
            raise InvalidInputError(f"every layer needs at least one neuron, got {layer_sizes}")
        if num_conns.shape != (total,) or activation.shape != (total,):
            raise InvalidInputError(
                f"layer sizes {layer_sizes} describe {total} neurons but "
                f"{num_conns.shape[0]} neuron entries were given"
            )
        if int(num_conns.sum()) != conn_src.shape[0] or conn_src.shape != weights.shape:
            raise InvalidInputError(
                f"neurons announce {int(num_conns.sum())} connections but "
                f"{conn_src.shape[0]} were given"
            )
        if np.any(activation < 0) or np.any(activation > max(ActivationFunc)):
            raise InvalidInputError("activation function numbers must be in 0..19")
        self.layer_sizes = list(layer_sizes)
        self.total_neurons = total
        self.num_conns = num_conns.astype(np.int64)
        self.activation = activation.astype(np.int64)
        self.steepness = steepness.astype(np.float64)
        self.conn_src = conn_src.astype(np.int64)
        bounds = np.concatenate([[0], np.cumsum(layer_sizes)]).astype(np.int64)
        self.bounds = bounds
        if np.any(self.num_conns[: layer_sizes[0]] != 0):
            raise InvalidInputError("input-layer neurons cannot have incoming connections")
        conn_bounds = np.concatenate([[0], np.cumsum(self.num_conns)]).astype(np.int64)
        self.conn_bounds = conn_bounds
        self.layers: list[Layer] = []
        for li in range(1, len(layer_sizes)):
            a, b = int(bounds[li]), int(bounds[li + 1])
            counts = self.num_conns[a:b]
            computed = int(np.count_nonzero(counts))
            if np.any(counts[:computed] == 0) or np.any(counts[computed:] != 0):
                raise InvalidInputError(
                    f"layer {li}: neurons with inputs must come before bias neurons"
                )
            c0, c1 = int(conn_bounds[a]), int(conn_bounds[b])
            srcs = self.conn_src[c0:c1]
            if computed == 0:
                raise InvalidInputError(f"layer {li} has no neuron with inputs")
            if srcs.min() < 0 or srcs.max() >= a:
                raise InvalidInputError(
                    f"layer {li}: connections must come from neurons of earlier layers "
                    f"(indices 0..{a - 1}), found {int(srcs.min())}..{int(srcs.max())}"
                )
            lo, hi = int(srcs.min()), int(srcs.max()) + 1
            width = hi - lo
            rows = np.repeat(np.arange(computed, dtype=np.int64), counts[:computed])
            flat = rows * width + (srcs - lo)
            if np.unique(flat).shape[0] != flat.shape[0]:
                raise InvalidInputError(f"layer {li}: a neuron is connected twice to one source")
            w = np.zeros((computed, width))
            w.flat[flat] = weights[c0:c1]
            mask: BoolArr | None = None
            if flat.shape[0] != computed * width:
                mask = np.zeros((computed, width), dtype=bool)
                mask.flat[flat] = True
            layer = Layer(a, b, computed, lo, hi, w, mask, flat, c0, [])
            self.layers.append(layer)
        self.num_input = layer_sizes[0] - 1
        self._split_sources()
        self.refresh_groups()

    def _split_sources(self) -> None:
        # where each global neuron lives in the per-layer arrays (None: a bias neuron)
        place: list[tuple[int, int] | None] = [(0, i) for i in range(self.num_input)]
        place += [None] * (self.layer_sizes[0] - self.num_input)
        for j, layer in enumerate(self.layers, start=1):
            place += [(j, c) for c in range(layer.computed)]
            place += [None] * (layer.end - layer.start - layer.computed)
        for layer in self.layers:
            segs: list[tuple[int, int, int, int, int]] = []
            bias: list[int] = []
            nb: list[int] = []
            for w_col, g in enumerate(range(layer.src_lo, layer.src_hi)):
                pl = place[g]
                if pl is None:
                    bias.append(w_col)
                    continue
                nb.append(w_col)
                j, c = pl
                if segs and segs[-1][0] == j and segs[-1][2] == c and segs[-1][4] == len(nb) - 1:
                    sj, c0, _, w0, _ = segs[-1]
                    segs[-1] = (sj, c0, c + 1, w0, len(nb))
                else:
                    segs.append((j, c, c + 1, len(nb) - 1, len(nb)))
            layer.segments = segs
            nb_arr = np.array(nb, dtype=np.int64)
            if nb and nb == list(range(nb[0], nb[0] + len(nb))):
                layer.nb_cols = slice(nb[0], nb[0] + len(nb))
            else:
                layer.nb_cols = nb_arr
            layer.b_cols = np.array(bias, dtype=np.int64)

    @property
    def total_connections(self) -> int:
        """Number of connections (libfann's count, bias connections included)."""
        return int(self.conn_src.shape[0])

    def refresh_groups(self) -> None:
        """Recompute activation groups after activation functions changed."""
        for layer in self.layers:
            acts = self.activation[layer.start : layer.start + layer.computed]
            groups: list[tuple[ActivationFunc, slice | I64]] = []
            uniq = np.unique(acts)
            if uniq.shape[0] == 1:
                groups.append((ActivationFunc(int(uniq[0])), slice(0, layer.computed)))
            else:
                for u in uniq:
                    groups.append((ActivationFunc(int(u)), np.flatnonzero(acts == u)))
            layer.groups = groups
        last = self.layers[-1]
        acts = self.activation[last.start : last.start + last.computed]
        sym = np.array([ActivationFunc(int(f)) in SYMMETRIC_FUNCTIONS for f in acts])
        self.out_half: F64 = np.where(sym, 0.5, 1.0)
        self.out_has_sym = bool(sym.any())
        self.by_start = {layer.start: layer for layer in self.layers}

    def get_weights(self) -> F64:
        """All weights in libfann's global connection order."""
        if not self.layers:
            return np.zeros(0)
        return np.concatenate([layer.weights.ravel()[layer.conn_index] for layer in self.layers])

    def set_weights(self, flat: F64) -> None:
        """Set all weights from libfann's global order."""
        for layer in self.layers:
            n = layer.conn_index.shape[0]
            layer.weights.ravel()[layer.conn_index] = flat[layer.conn_start : layer.conn_start + n]

    def locate(self, conn: int) -> tuple[Layer, int]:
        """The layer holding global connection ``conn`` and its flat index in ``weights``."""
        for layer in self.layers:
            n = layer.conn_index.shape[0]
            if layer.conn_start <= conn < layer.conn_start + n:
                return layer, int(layer.conn_index[conn - layer.conn_start])
        raise InvalidInputError(f"connection {conn} does not exist")
