"""``Network``: libfann's ``struct fann`` in numpy — creation, run, training, files.

Semantics follow libfann (the C library is the reference): neuron and connection counting,
bias neurons, the order of connections, activation formulas, the error and stop functions,
and the update rules of INCREMENTAL, BATCH, iRPROP-, QUICKPROP and SARPROP. Batch
algorithms process the whole data set as a few matrix products per layer.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ruvector_edge.codec import CompressionLevel
from ruvector_edge.errors import DimensionError, InvalidInputError, StorageError
from ruvector_edge.neural import _io
from ruvector_edge.neural import codec as _codec
from ruvector_edge.neural._structure import F64, I64, Layer, Structure
from ruvector_edge.neural.activation import (
    ActivationFunc,
    ErrorFunc,
    NetType,
    StopFunc,
    TrainingAlgorithm,
    activate,
    derive,
)
from ruvector_edge.neural.cascade import cascadetrain_on_data as _cascadetrain
from ruvector_edge.neural.data import TrainingData

__all__ = ["MAX_LAYER_SIZE", "Network", "TrainCallback"]

A = ActivationFunc
# functions whose value is constant beyond libfann's +-150 clip, so clipping is a no-op
_CLIP_FREE = frozenset(
    {
        A.SIGMOID,
        A.SIGMOID_SYMMETRIC,
        A.SIGMOID_STEPWISE,
        A.SIGMOID_SYMMETRIC_STEPWISE,
        A.THRESHOLD,
        A.THRESHOLD_SYMMETRIC,
        A.LINEAR_PIECE,
        A.LINEAR_PIECE_SYMMETRIC,
    }
)


def _activate_into(func: ActivationFunc, z: F64, out: F64) -> None:
    """``out[...] = activate(func, z)`` without a temporary for the common functions."""
    if func == A.SIGMOID_SYMMETRIC:
        np.tanh(z, out=out)
    elif func == A.SIGMOID:
        np.tanh(z, out=out)
        out += 1.0
        out *= 0.5
    else:
        out[...] = activate(func, z)


MAX_LAYER_SIZE = 1_000_000
RUN_CHUNK = 16384  # rows per forward pass in run_batch (bounds memory)
WEIGHT_LIMIT = 1500.0  # libfann clamps RPROP/Quickprop weights to +-1500

#: ``callback(net, epoch, mse, bit_fail)``; return ``False`` to stop training.
TrainCallback = Callable[["Network", int, float, int], "bool | None"]


def _check_layers(layers: Sequence[int]) -> list[int]:
    try:
        sizes = [int(s) for s in layers]
    except (TypeError, ValueError):
        raise InvalidInputError(f"layers must be integers, got {layers!r}") from None
    if len(sizes) < 2:
        raise InvalidInputError(
            f"a network needs at least an input and an output layer, got {sizes}"
        )
    if any(isinstance(s, bool) for s in layers) or any(s < 1 or s > MAX_LAYER_SIZE for s in sizes):
        raise InvalidInputError(f"every layer size must be in 1..{MAX_LAYER_SIZE}, got {sizes}")
    return sizes


def _as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


class _StepState(Protocol):
    prev_steps: list[F64]
    prev_slopes: list[F64]


class _State:
    """Per-layer training arrays (libfann's train_slopes / prev_steps / ...)."""

    def __init__(self, layers: list[Layer], step0: float) -> None:
        self.slopes = [np.zeros_like(ly.weights) for ly in layers]
        self.prev_steps = [np.full_like(ly.weights, step0) for ly in layers]
        self.prev_slopes = [np.zeros_like(ly.weights) for ly in layers]


class Network:
    """A fully-connected, sparse or shortcut feed-forward network (libfann-compatible).

    Create with :meth:`create_standard`, :meth:`create_sparse`, :meth:`create_shortcut`
    or :meth:`from_file`. Counting follows libfann: every layer of a layered network has a
    bias neuron (the output layer's is unused and not counted by :attr:`total_neurons`);
    shortcut networks have one bias neuron, in the input layer.
    """

    def __init__(
        self,
        structure: Structure,
        *,
        network_type: NetType = NetType.LAYER,
        connection_rate: float = 1.0,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        self._s = structure
        self.network_type = NetType(network_type)
        self.connection_rate = float(connection_rate)
        self._rng = _as_rng(seed)
        # training parameters (libfann defaults)
        self.learning_rate = 0.7
        self.learning_momentum = 0.0
        self._training_algorithm = TrainingAlgorithm.RPROP
        self.train_error_function = ErrorFunc.TANH
        self.train_stop_function = StopFunc.MSE
        self.bit_fail_limit = 0.35
        self.quickprop_decay = -0.0001
        self.quickprop_mu = 1.75
        self.rprop_increase_factor = 1.2
        self.rprop_decrease_factor = 0.5
        self.rprop_delta_min = 0.0
        self.rprop_delta_max = 50.0
        self.rprop_delta_zero = 0.1
        self.sarprop_weight_decay_shift = -6.644
        self.sarprop_step_error_threshold_factor = 0.1
        self.sarprop_step_error_shift = 1.385
        self.sarprop_temperature = 0.015
        self.sarprop_epoch = 0
        # cascade parameters (libfann defaults)
        self.cascade_output_change_fraction = 0.01
        self.cascade_candidate_change_fraction = 0.01
        self.cascade_output_stagnation_epochs = 12
        self.cascade_candidate_stagnation_epochs = 12
        self.cascade_num_candidate_groups = 2
        self.cascade_weight_multiplier = 0.4
        self.cascade_candidate_limit = 1000.0
        self.cascade_max_out_epochs = 150
        self.cascade_max_cand_epochs = 150
        self.cascade_min_out_epochs = 50
        self.cascade_min_cand_epochs = 50
        self.cascade_activation_functions: list[ActivationFunc] = [
            ActivationFunc.SIGMOID,
            ActivationFunc.SIGMOID_SYMMETRIC,
            ActivationFunc.GAUSSIAN,
            ActivationFunc.GAUSSIAN_SYMMETRIC,
            ActivationFunc.ELLIOT,
            ActivationFunc.ELLIOT_SYMMETRIC,
            ActivationFunc.SIN_SYMMETRIC,
            ActivationFunc.COS_SYMMETRIC,
            ActivationFunc.SIN,
            ActivationFunc.COS,
        ]
        self.cascade_activation_steepnesses: list[float] = [0.25, 0.5, 0.75, 1.0]
        # scaling parameters (None until set)
        self.scale_in: tuple[F64, F64, F64, F64] | None = None  # mean, deviation, new_min, factor
        self.scale_out: tuple[F64, F64, F64, F64] | None = None
        # error accumulators
        self.MSE_value = 0.0
        self.num_MSE = 0
        self.num_bit_fail = 0
        self.callback: TrainCallback | None = None
        self._state: _State | None = None
        self._prev_deltas: list[F64] | None = None

    # ================================================================ creation
    @classmethod
    def create_standard(
        cls, layers: Sequence[int], *, seed: int | np.random.Generator | None = None
    ) -> Network:
        """A fully connected layered network (``fann_create_standard``)."""
        return cls.create_sparse(1.0, layers, seed=seed)

    @classmethod
    def create_sparse(
        cls,
        connection_rate: float,
        layers: Sequence[int],
        *,
        seed: int | np.random.Generator | None = None,
    ) -> Network:
        """A layered network with about ``connection_rate`` of the possible connections.

        Like libfann, every neuron keeps at least one input and one output and every
        neuron is connected to its layer's predecessor bias (``fann_create_sparse``).
        """
        sizes = _check_layers(layers)
        rate = float(connection_rate)
        if not math.isfinite(rate) or rate <= 0:
            raise InvalidInputError(f"connection_rate must be in (0, 1], got {connection_rate}")
        rate = min(rate, 1.0)
        rng = _as_rng(seed)
        layer_sizes = [s + 1 for s in sizes]
        bounds = np.concatenate([[0], np.cumsum(layer_sizes)])
        total = int(bounds[-1])
        num_conns = np.zeros(total, dtype=np.int64)
        act = np.zeros(total, dtype=np.int64)
        steep = np.zeros(total)
        srcs: list[I64] = []
        for li in range(1, len(sizes)):
            n_in, n_out = sizes[li - 1], sizes[li]
            prev0, first = int(bounds[li - 1]), int(bounds[li])
            act[first : first + n_out] = ActivationFunc.SIGMOID_STEPWISE
            steep[first : first + n_out] = 0.5
            if rate >= 1:
                num_conns[first : first + n_out] = n_in + 1
                row = np.arange(prev0, prev0 + n_in + 1, dtype=np.int64)
                srcs.append(np.tile(row, n_out))
                continue
            min_c = max(n_in, n_out)
            max_c = n_in * n_out
            n_conn = max(min_c, int(0.5 + rate * max_c)) + n_out
            per = n_conn // n_out
            counts = np.empty(n_out, dtype=np.int64)
            allocated = 0
            for i in range(n_out):
                c = per
                allocated += per
                if allocated < (n_conn * (i + 1)) // n_out:
                    c += 1
                    allocated += 1
                counts[i] = c
            num_conns[first : first + n_out] = counts
            conns = [[prev0 + n_in] for _ in range(n_out)]  # bias first, as libfann
            for src in range(prev0, prev0 + n_in):  # every input feeds some neuron
                open_ = [j for j in range(n_out) if len(conns[j]) < counts[j]]
                conns[int(rng.choice(open_))].append(src)
            for j in range(n_out):  # fill the rest with distinct random inputs
                free = [s for s in range(prev0, prev0 + n_in) if s not in conns[j]]
                need = int(counts[j]) - len(conns[j])
                conns[j].extend(int(x) for x in rng.choice(free, size=need, replace=False))
            srcs.extend(np.array(c, dtype=np.int64) for c in conns)
        conn_src = np.concatenate(srcs) if srcs else np.zeros(0, dtype=np.int64)
        weights = np.asarray(rng.uniform(-0.1, 0.1, size=conn_src.shape[0]), dtype=np.float64)
        s = Structure(layer_sizes, num_conns, act, steep, conn_src, weights)
        return cls(s, network_type=NetType.LAYER, connection_rate=rate, seed=rng)

    @classmethod
    def create_shortcut(
        cls, layers: Sequence[int], *, seed: int | np.random.Generator | None = None
    ) -> Network:
        """Each neuron connects to all neurons of all earlier layers (``fann_create_shortcut``)."""
        sizes = _check_layers(layers)
        rng = _as_rng(seed)
        layer_sizes = [sizes[0] + 1, *sizes[1:]]
        bounds = np.concatenate([[0], np.cumsum(layer_sizes)])
        total = int(bounds[-1])
        num_conns = np.zeros(total, dtype=np.int64)
        act = np.zeros(total, dtype=np.int64)
        steep = np.zeros(total)
        srcs: list[I64] = []
        for li in range(1, len(layer_sizes)):
            first, end = int(bounds[li]), int(bounds[li + 1])
            num_conns[first:end] = first
            act[first:end] = ActivationFunc.SIGMOID_STEPWISE
            steep[first:end] = 0.5
            srcs.append(np.tile(np.arange(first, dtype=np.int64), end - first))
        conn_src = np.concatenate(srcs)
        weights = np.asarray(rng.uniform(-0.1, 0.1, size=conn_src.shape[0]), dtype=np.float64)
        s = Structure(layer_sizes, num_conns, act, steep, conn_src, weights)
        return cls(s, network_type=NetType.SHORTCUT, connection_rate=1.0, seed=rng)

    def copy(self) -> Network:
        """A deep copy (``fann_copy``): structure, weights, parameters, scaling, RNG state."""
        callback, self.callback = self.callback, None
        try:
            twin = copy.deepcopy(self)
        finally:
            self.callback = callback
        twin.callback = callback
        return twin

    # ================================================================ shape
    @property
    def num_input(self) -> int:
        """Number of inputs."""
        return self._s.num_input

    @property
    def num_output(self) -> int:
        """Number of outputs."""
        last = self._s.layer_sizes[-1]
        return last - 1 if self.network_type == NetType.LAYER else last

    @property
    def total_neurons(self) -> int:
        """Neurons as libfann counts them (output-layer bias excluded for layered nets)."""
        t = self._s.total_neurons
        return t - 1 if self.network_type == NetType.LAYER else t

    @property
    def total_connections(self) -> int:
        """Connections, bias connections included."""
        return self._s.total_connections

    @property
    def num_layers(self) -> int:
        """Number of layers, input and output included."""
        return len(self._s.layer_sizes)

    @property
    def layers(self) -> list[int]:
        """Neurons per layer without bias neurons (``fann_get_layer_array``)."""
        sizes = self._s.layer_sizes
        if self.network_type == NetType.SHORTCUT:
            return [sizes[0] - 1, *sizes[1:]]
        return [s - 1 for s in sizes]

    @property
    def bias(self) -> list[int]:
        """Bias neurons per layer (``fann_get_bias_array``)."""
        if self.network_type == NetType.SHORTCUT:
            return [1] + [0] * (self.num_layers - 1)
        return [1] * (self.num_layers - 1) + [0]

    @property
    def layer_sizes(self) -> list[int]:
        """Neurons per layer including bias neurons, as in the ``.net`` file."""
        return list(self._s.layer_sizes)

    def __repr__(self) -> str:
        return (
            f"Network({self.network_type.name.lower()}, layers={self.layers}, "
            f"connections={self.total_connections})"
        )

    # ================================================================ weights
    def get_weights(self) -> F64:
        """All weights in libfann's connection order (``fann_get_weights``)."""
        return self._s.get_weights()

    def set_weights(self, weights: npt.ArrayLike) -> None:
        """Set all weights (``fann_set_weights``)."""
        w = np.asarray(weights, dtype=np.float64).ravel()
        if w.shape[0] != self.total_connections:
            raise DimensionError(f"expected {self.total_connections} weights, got {w.shape[0]}")
        if not np.all(np.isfinite(w)):
            raise InvalidInputError("weights must be finite")
        self._s.set_weights(w)
        self._reset_train_state()

    def get_connection_array(self) -> list[tuple[int, int, float]]:
        """``(from_neuron, to_neuron, weight)`` for every connection, in libfann's order."""
        dest = np.repeat(np.arange(self._s.total_neurons), self._s.num_conns)
        w = self.get_weights()
        return [
            (int(s), int(d), float(x)) for s, d, x in zip(self._s.conn_src, dest, w, strict=True)
        ]

    def set_weight_array(self, connections: Sequence[tuple[int, int, float]]) -> None:
        """Set the weights of the given ``(from, to, weight)`` connections."""
        for src, dst, weight in connections:
            self.set_weight(src, dst, weight)

    def set_weight(self, from_neuron: int, to_neuron: int, weight: float) -> None:
        """Set the weight of one existing connection (``fann_set_weight``)."""
        s = self._s
        if not 0 <= to_neuron < s.total_neurons:
            raise InvalidInputError(f"neuron {to_neuron} does not exist")
        c0, c1 = int(s.conn_bounds[to_neuron]), int(s.conn_bounds[to_neuron + 1])
        hits = np.flatnonzero(s.conn_src[c0:c1] == from_neuron)
        if hits.shape[0] == 0:
            raise InvalidInputError(f"there is no connection from {from_neuron} to {to_neuron}")
        layer, flat = s.locate(c0 + int(hits[0]))
        layer.weights.ravel()[flat] = float(weight)

    def randomize_weights(self, min_weight: float, max_weight: float) -> None:
        """Uniform random weights in ``[min_weight, max_weight)`` (``fann_randomize_weights``)."""
        if not (math.isfinite(min_weight) and math.isfinite(max_weight)):
            raise InvalidInputError("weight bounds must be finite")
        if max_weight < min_weight:
            raise InvalidInputError(f"max_weight {max_weight} is below min_weight {min_weight}")
        self._s.set_weights(self._rng.uniform(min_weight, max_weight, self.total_connections))
        self._reset_train_state()

    def init_weights(self, data: TrainingData) -> None:
        """Widrow–Nguyen initialisation from the data's input range (``fann_init_weights``)."""
        self._check_data(data)
        lo, hi = data.get_min_input(), data.get_max_input()
        if hi == lo:
            raise InvalidInputError("init_weights needs inputs with a non-zero range")
        s = self._s
        hidden = s.total_neurons - (self.num_input + self.num_output + self.num_layers)
        scale = (0.7 * hidden) ** (1.0 / self.num_input) / (hi - lo)
        n = self.total_connections
        w = self._rng.uniform(0.0, scale, n)
        bias_w = self._rng.uniform(-scale, scale, n)
        dest = np.repeat(np.arange(s.total_neurons), s.num_conns)
        layer_of = np.searchsorted(s.bounds, dest, side="right") - 1
        if self.network_type == NetType.LAYER:
            bias_neuron = s.bounds[layer_of] - 1  # last neuron of the previous layer
        else:
            bias_neuron = np.full(n, s.layer_sizes[0] - 1)
        is_bias = s.conn_src == bias_neuron
        self._s.set_weights(np.where(is_bias, bias_w, w))
        self._reset_train_state()

    # ================================================================ activations
    def _layer_range(self, layer: int) -> tuple[int, int]:
        if not 1 <= layer < self.num_layers:
            raise InvalidInputError(
                f"layer must be in 1..{self.num_layers - 1} (0 is the input layer), got {layer}"
            )
        return int(self._s.bounds[layer]), int(self._s.bounds[layer + 1])

    def _neuron_index(self, layer: int, neuron: int) -> int:
        a, b = self._layer_range(layer)
        if not 0 <= neuron < b - a:
            raise InvalidInputError(f"layer {layer} has no neuron {neuron} (size {b - a})")
        return a + neuron

    def set_activation_function(
        self, func: ActivationFunc | int | str, layer: int, neuron: int
    ) -> None:
        """Set one neuron's activation function."""
        self._s.activation[self._neuron_index(layer, neuron)] = ActivationFunc.parse(func)
        self._s.refresh_groups()

    def get_activation_function(self, layer: int, neuron: int) -> ActivationFunc:
        """One neuron's activation function."""
        return ActivationFunc(int(self._s.activation[self._neuron_index(layer, neuron)]))

    def set_activation_function_layer(self, func: ActivationFunc | int | str, layer: int) -> None:
        """Set the activation function of every neuron in ``layer`` (bias included, as C)."""
        a, b = self._layer_range(layer)
        self._s.activation[a:b] = ActivationFunc.parse(func)
        self._s.refresh_groups()

    def set_activation_function_hidden(self, func: ActivationFunc | int | str) -> None:
        """Set the activation function of all hidden layers."""
        f = ActivationFunc.parse(func)
        for li in range(1, self.num_layers - 1):
            a, b = self._layer_range(li)
            self._s.activation[a:b] = f
        self._s.refresh_groups()

    def set_activation_function_output(self, func: ActivationFunc | int | str) -> None:
        """Set the activation function of the output layer."""
        self.set_activation_function_layer(func, self.num_layers - 1)

    def set_activation_steepness(self, steepness: float, layer: int, neuron: int) -> None:
        """Set one neuron's steepness."""
        self._s.steepness[self._neuron_index(layer, neuron)] = self._check_steep(steepness)

    def get_activation_steepness(self, layer: int, neuron: int) -> float:
        """One neuron's steepness."""
        return float(self._s.steepness[self._neuron_index(layer, neuron)])

    def set_activation_steepness_layer(self, steepness: float, layer: int) -> None:
        """Set the steepness of every neuron in ``layer``."""
        a, b = self._layer_range(layer)
        self._s.steepness[a:b] = self._check_steep(steepness)

    def set_activation_steepness_hidden(self, steepness: float) -> None:
        """Set the steepness of all hidden layers."""
        v = self._check_steep(steepness)
        for li in range(1, self.num_layers - 1):
            a, b = self._layer_range(li)
            self._s.steepness[a:b] = v

    def set_activation_steepness_output(self, steepness: float) -> None:
        """Set the steepness of the output layer."""
        self.set_activation_steepness_layer(steepness, self.num_layers - 1)

    @staticmethod
    def _check_steep(steepness: float) -> float:
        v = float(steepness)
        if not math.isfinite(v):
            raise InvalidInputError(f"steepness must be finite, got {steepness}")
        return v

    # ================================================================ training params
    @property
    def training_algorithm(self) -> TrainingAlgorithm:
        """The algorithm :meth:`train_epoch` uses (default RPROP)."""
        return self._training_algorithm

    @training_algorithm.setter
    def training_algorithm(self, value: TrainingAlgorithm | int | str) -> None:
        self._training_algorithm = TrainingAlgorithm.parse(value)
        self._reset_train_state()

    def set_training_algorithm(self, value: TrainingAlgorithm | int | str) -> None:
        """Select INCREMENTAL, BATCH, RPROP, QUICKPROP or SARPROP."""
        self.training_algorithm = value

    @property
    def cascade_num_candidates(self) -> int:
        """Candidate pool size: functions x steepnesses x groups."""
        return (
            len(self.cascade_activation_functions)
            * len(self.cascade_activation_steepnesses)
            * self.cascade_num_candidate_groups
        )

    # ================================================================ forward
    def _check_input(self, x: npt.ArrayLike, two_d: bool) -> F64:
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidInputError("input must be numeric") from None
        if two_d:
            if arr.ndim != 2 or arr.shape[1] != self.num_input:
                raise DimensionError(
                    f"expected inputs of shape (n, {self.num_input}), got {arr.shape}"
                )
        elif arr.shape != (self.num_input,):
            raise DimensionError(f"expected {self.num_input} inputs, got shape {arr.shape}")
        return arr

    @staticmethod
    def _gather(arrays: list[F64], layer: Layer) -> F64:
        """The non-bias source values of ``layer`` as one (n, sources) matrix."""
        segs = layer.segments
        if len(segs) == 1:
            j, c0, c1, _, _ = segs[0]
            arr = arrays[j]
            return arr if c0 == 0 and c1 == arr.shape[1] else arr[:, c0:c1]
        if not segs:
            return np.zeros((arrays[0].shape[0], 0))
        return np.concatenate([arrays[j][:, c0:c1] for j, c0, c1, _, _ in segs], axis=1)

    def _forward(self, x: F64) -> tuple[list[F64], list[F64]]:
        """Per-layer outputs (inputs first) and (scaled, clipped) sums for a batch.

        Each layer's computed neurons live in their own contiguous (n, k) array; bias
        neurons (value 1) become a bias vector. Steepness is folded into the (small) weight
        matrix instead of scaling the (large) sums; libfann's ``±150/steepness`` clip is
        skipped for functions already saturated there (same values and derivatives).
        """
        s = self._s
        arrays: list[F64] = [np.ascontiguousarray(x, dtype=np.float64)]
        sums: list[F64] = []
        for layer in s.layers:
            z, out = self._layer_forward(layer, self._gather(arrays, layer))
            sums.append(z)
            arrays.append(out)
        return arrays, sums

    def _layer_forward(self, layer: Layer, src: F64) -> tuple[F64, F64]:
        """Sums and outputs of one layer's computed neurons from its non-bias sources."""
        a, k = layer.start, layer.computed
        st = self._s.steepness[a : a + k]
        w = layer.weights
        z = src @ (w[:, layer.nb_cols] * st[:, None]).T
        if layer.b_cols.shape[0]:
            z += w[:, layer.b_cols].sum(axis=1) * st
        if not all(func in _CLIP_FREE for func, _ in layer.groups):
            with np.errstate(divide="ignore"):
                lim = 150.0 / np.abs(st)
            np.clip(z, -lim, lim, out=z)
        out = np.empty_like(z)
        for func, rows in layer.groups:
            if isinstance(rows, slice):
                _activate_into(func, z, out)
            else:
                out[:, rows] = activate(func, z[:, rows])
        return z, out

    @staticmethod
    def _layer_slopes(layer: Layer, delta: F64, src: F64) -> F64:
        """Batch slopes of one layer's weights (libfann's ``train_slopes``)."""
        g = np.empty_like(layer.weights)
        g[:, layer.nb_cols] = delta.T @ src
        if layer.b_cols.shape[0]:
            g[:, layer.b_cols] = delta.sum(axis=0)[:, None]
        if layer.mask is not None:
            g *= layer.mask
        return g

    def _full_values(self, arrays: list[F64], upto: int) -> F64:
        """Values of global neurons ``[0, upto)`` (bias neurons as 1), shape (n, upto)."""
        s = self._s
        n = arrays[0].shape[0]
        parts = [arrays[0], np.ones((n, s.layer_sizes[0] - s.num_input))]
        for j, layer in enumerate(s.layers, start=1):
            parts.append(arrays[j])
            if layer.end - layer.start > layer.computed:
                parts.append(np.ones((n, layer.end - layer.start - layer.computed)))
        return np.concatenate(parts, axis=1)[:, :upto]

    def run(self, input: npt.ArrayLike) -> F64:
        """Outputs for one input vector (``fann_run``; no automatic scaling)."""
        x = self._check_input(input, two_d=False)
        s = self._s
        v = np.empty(s.total_neurons)
        v[: s.num_input] = x
        v[s.num_input : s.layer_sizes[0]] = 1.0
        for layer in s.layers:
            a, k = layer.start, layer.computed
            z = layer.weights @ v[layer.src_lo : layer.src_hi]
            st = s.steepness[a : a + k]
            z *= st
            groups = layer.groups
            if not all(func in _CLIP_FREE for func, _ in groups):
                with np.errstate(divide="ignore"):
                    lim = 150.0 / np.abs(st)
                np.clip(z, -lim, lim, out=z)
            if len(groups) == 1:
                _activate_into(groups[0][0], z, v[a : a + k])
            else:
                for func, rows in groups:
                    sel = np.arange(k)[rows] if isinstance(rows, slice) else rows
                    v[a + sel] = activate(func, z[sel])
            v[a + k : layer.end] = 1.0
        return v[self._out_slice()].copy()

    def run_batch(self, inputs: npt.ArrayLike) -> F64:
        """Outputs for many inputs at once, shape ``(n, num_output)``."""
        x = self._check_input(inputs, two_d=True)
        out = np.empty((x.shape[0], self.num_output))
        for i in range(0, x.shape[0], RUN_CHUNK):
            arrays, _ = self._forward(x[i : i + RUN_CHUNK])
            out[i : i + RUN_CHUNK] = arrays[-1][:, : self.num_output]
        return out

    def _out_slice(self) -> slice:
        a = int(self._s.bounds[-2])
        return slice(a, a + self.num_output)

    # ================================================================ errors
    def reset_MSE(self) -> None:  # noqa: N802 - libfann's name
        """Reset the accumulated MSE and bit-fail counters."""
        self.MSE_value = 0.0
        self.num_MSE = 0
        self.num_bit_fail = 0

    def get_MSE(self) -> float:  # noqa: N802 - libfann's name
        """Mean squared error accumulated since the last reset (symmetric outputs halved)."""
        return self.MSE_value / self.num_MSE if self.num_MSE else 0.0

    def get_bit_fail(self) -> int:
        """Outputs whose error was ``>= bit_fail_limit`` since the last reset."""
        return self.num_bit_fail

    @property
    def MSE(self) -> float:  # noqa: N802 - libfann's name
        """Same as :meth:`get_MSE`."""
        return self.get_MSE()

    @property
    def bit_fail(self) -> int:
        """Same as :meth:`get_bit_fail`."""
        return self.num_bit_fail

    def _output_diff(self, out: F64, desired: F64) -> F64:
        """``desired - out`` halved for symmetric outputs; accumulates MSE and bit fails."""
        diff = desired - out
        if self._s.out_has_sym:
            diff = diff * self._s.out_half
        self.MSE_value += float(np.einsum("ij,ij->", diff, diff))
        self.num_bit_fail += int(np.count_nonzero(np.abs(diff) >= self.bit_fail_limit))
        self.num_MSE += diff.size
        return diff

    def _output_errors(self, out: F64, out_sums: F64, desired: F64) -> F64:
        """libfann's ``fann_compute_MSE``: error terms of the output neurons."""
        diff = self._output_diff(out, desired)
        if self.train_error_function == ErrorFunc.TANH:
            clipped = np.clip(diff, -0.9999999, 0.9999999)
            diff = np.where(
                diff < -0.9999999,
                -17.0,
                np.where(diff > 0.9999999, 17.0, np.log((1.0 + clipped) / (1.0 - clipped))),
            )
        a = self._out_slice().start
        return self._derive_cols(a, self.num_output, out, out_sums) * diff

    def _derive_cols(self, a: int, k: int, value: F64, total: F64) -> F64:
        layer = self._s.by_start[a]
        st = self._s.steepness[a : a + k]
        groups = layer.groups
        if len(groups) == 1:
            return derive(groups[0][0], st, value, total)
        out = np.empty_like(value)
        for func, rows in groups:
            out[:, rows] = derive(func, st[rows], value[:, rows], total[:, rows])
        return out

    def _gradients(
        self, x: F64, y: F64, *, only_output: bool = False
    ) -> tuple[list[F64], list[F64]]:
        """Forward + backward pass: per-layer slopes (sums over the batch) and the outputs."""
        s = self._s
        arrays, sums = self._forward(x)
        layers = s.layers
        n = arrays[0].shape[0]
        no = self.num_output
        errors: list[F64 | None] = [None] * (len(layers) + 1)
        errors[-1] = self._output_errors(arrays[-1][:, :no], sums[-1][:, :no], y)
        slopes: list[F64] = [np.zeros(0)] * len(layers)
        for idx in range(len(layers) - 1, -1, -1):
            layer = layers[idx]
            delta = errors[idx + 1]
            if delta is None:
                delta = np.zeros((n, layer.computed))
            w = layer.weights
            slopes[idx] = self._layer_slopes(layer, delta, self._gather(arrays, layer))
            if only_output or idx == 0:
                break
            contrib = delta @ w[:, layer.nb_cols]
            for j, c0, c1, w0, w1 in layer.segments:
                if j == 0:
                    continue  # libfann computes no errors for the input layer
                err = errors[j]
                if err is None:
                    err = np.zeros((n, layers[j - 1].computed))
                    errors[j] = err
                err[:, c0:c1] += contrib[:, w0:w1]
            prev = layers[idx - 1]
            err_prev = errors[idx]
            if err_prev is not None:
                err_prev *= self._derive_cols(prev.start, prev.computed, arrays[idx], sums[idx - 1])
        return slopes, arrays

    # ================================================================ training
    def _check_data(self, data: TrainingData) -> None:
        if not isinstance(data, TrainingData):
            raise InvalidInputError(f"expected TrainingData, got {type(data).__name__}")
        if data.num_input != self.num_input or data.num_output != self.num_output:
            raise DimensionError(
                f"data has {data.num_input} inputs/{data.num_output} outputs but the network "
                f"has {self.num_input}/{self.num_output}"
            )

    def _reset_train_state(self) -> None:
        self._state = None
        self._prev_deltas = None

    def _train_state(self) -> _State:
        if self._state is None:
            step0 = (
                self.rprop_delta_zero
                if self._training_algorithm == TrainingAlgorithm.RPROP
                else 0.0
            )
            self._state = _State(self._s.layers, step0)
        return self._state

    def train(self, input: npt.ArrayLike, desired_output: npt.ArrayLike) -> None:
        """One incremental backpropagation step on one pair (``fann_train``)."""
        x = self._check_input(input, two_d=False).reshape(1, -1)
        y = np.asarray(desired_output, dtype=np.float64).reshape(1, -1)
        if y.shape[1] != self.num_output:
            raise DimensionError(f"expected {self.num_output} outputs, got {y.shape[1]}")
        self._incremental_step(x, y)

    def _incremental_step(self, x: F64, y: F64) -> None:
        slopes, _ = self._gradients(x, y)
        if self._prev_deltas is None:
            self._prev_deltas = [np.zeros_like(ly.weights) for ly in self._s.layers]
        lr, mom = self.learning_rate, self.learning_momentum
        for layer, g, prev in zip(self._s.layers, slopes, self._prev_deltas, strict=True):
            dw = g * lr
            if mom:
                dw += mom * prev
            layer.weights += dw
            prev[...] = dw

    def test(self, input: npt.ArrayLike, desired_output: npt.ArrayLike) -> F64:
        """Run one pair and accumulate its error into MSE/bit fail (``fann_test``)."""
        out = self.run(input)
        y = np.asarray(desired_output, dtype=np.float64).reshape(1, -1)
        if y.shape[1] != self.num_output:
            raise DimensionError(f"expected {self.num_output} outputs, got {y.shape[1]}")
        self._output_diff(out.reshape(1, -1), y)
        return out

    def test_data(self, data: TrainingData) -> float:
        """MSE of the network on ``data`` (resets the counters first; ``fann_test_data``)."""
        self._check_data(data)
        self.reset_MSE()
        out = self.run_batch(data.input)
        self._output_diff(out, data.output)
        return self.get_MSE()

    def train_epoch(self, data: TrainingData) -> float:
        """One epoch of the selected algorithm; returns the MSE measured during it."""
        self._check_data(data)
        self.reset_MSE()
        algo = self._training_algorithm
        if algo == TrainingAlgorithm.INCREMENTAL:
            for i in range(data.length):
                self._incremental_step(data.input[i : i + 1], data.output[i : i + 1])
            return self.get_MSE()
        slopes, _ = self._gradients(data.input, data.output)
        self._apply_update(slopes, data.length, range(len(self._s.layers)))
        return self.get_MSE()

    def _apply_update(self, slopes: list[F64], num_data: int, layer_ids: range) -> None:
        algo = self._training_algorithm
        state = self._train_state() if algo != TrainingAlgorithm.BATCH else None
        for i in layer_ids:
            layer = self._s.layers[i]
            g = slopes[i]
            if algo == TrainingAlgorithm.BATCH:
                layer.weights += g * (self.learning_rate / num_data)
            else:
                assert state is not None
                if algo == TrainingAlgorithm.RPROP:
                    new = self._irpropm(layer.weights, g, state, i)
                elif algo == TrainingAlgorithm.QUICKPROP:
                    new = self._quickprop(layer.weights, g, state, i, num_data)
                else:
                    new = self._sarprop(layer.weights, g, state, i)
                layer.weights[...] = new
            if layer.mask is not None:
                layer.weights *= layer.mask
        if algo == TrainingAlgorithm.SARPROP:
            self.sarprop_epoch += 1

    def _irpropm(self, w: F64, slope: F64, st: _StepState, i: int) -> F64:
        prev_step = np.maximum(st.prev_steps[i], 0.0001)
        same = st.prev_slopes[i] * slope
        grow = same >= 0.0
        next_step = np.where(
            grow,
            np.minimum(prev_step * self.rprop_increase_factor, self.rprop_delta_max),
            np.maximum(prev_step * self.rprop_decrease_factor, self.rprop_delta_min),
        )
        slope = np.where(grow, slope, 0.0)
        new = np.where(
            slope < 0,
            np.maximum(w - next_step, -WEIGHT_LIMIT),
            np.minimum(w + next_step, WEIGHT_LIMIT),
        )
        st.prev_steps[i] = next_step
        st.prev_slopes[i] = slope
        return new

    def _quickprop(self, w: F64, slope_in: F64, st: _StepState, i: int, num_data: int) -> F64:
        eps = self.learning_rate / num_data
        mu = self.quickprop_mu
        shrink = mu / (1.0 + mu)
        prev_step = st.prev_steps[i]
        prev_slope = st.prev_slopes[i]
        slope = slope_in + self.quickprop_decay * w
        with np.errstate(divide="ignore", invalid="ignore"):
            quad = prev_step * slope / (prev_slope - slope)
        pos = prev_step > 0.001
        neg = prev_step < -0.001
        step = np.where(pos & (slope > 0.0), eps * slope, 0.0)
        step += np.where(neg & (slope < 0.0), eps * slope, 0.0)
        step += np.where(pos, np.where(slope > shrink * prev_slope, mu * prev_step, quad), 0.0)
        step += np.where(neg, np.where(slope < shrink * prev_slope, mu * prev_step, quad), 0.0)
        step += np.where(~(pos | neg), eps * slope, 0.0)
        st.prev_steps[i] = step
        st.prev_slopes[i] = slope
        return np.clip(w + step, -WEIGHT_LIMIT, WEIGHT_LIMIT)

    def _sarprop(self, w: F64, slope_in: F64, st: _StepState, i: int) -> F64:
        epoch = self.sarprop_epoch
        mse = self.get_MSE()
        rmse = math.sqrt(mse)
        t = self.sarprop_temperature
        prev_step = np.maximum(st.prev_steps[i], 0.000001)
        slope = -slope_in - w * 2.0 ** (-t * epoch + self.sarprop_weight_decay_shift)
        same = st.prev_slopes[i] * slope
        inc = np.minimum(prev_step * self.rprop_increase_factor, self.rprop_delta_max)
        noise = (
            self._rng.random(w.shape) * rmse * 2.0 ** (-t * epoch + self.sarprop_step_error_shift)
        )
        dec = np.where(
            prev_step < self.sarprop_step_error_threshold_factor * mse,
            prev_step * self.rprop_decrease_factor + noise,
            np.maximum(prev_step * self.rprop_decrease_factor, 0.000001),
        )
        pos, neg = same > 0.0, same < 0.0
        direction = np.where(slope < 0.0, 1.0, -1.0)
        new = np.where(pos, w + direction * inc, np.where(neg, w, w + direction * prev_step))
        st.prev_steps[i] = np.where(pos, inc, np.where(neg, dec, 0.0))
        st.prev_slopes[i] = np.where(neg, 0.0, slope)
        return new

    def _desired_error_reached(self, desired_error: float) -> bool:
        if self.train_stop_function == StopFunc.MSE:
            return self.get_MSE() <= desired_error
        return self.num_bit_fail <= int(desired_error)

    def train_on_data(
        self,
        data: TrainingData,
        max_epochs: int,
        epochs_between_reports: int = 0,
        desired_error: float = 0.0,
        callback: TrainCallback | None = None,
    ) -> int:
        """Train until ``desired_error`` or ``max_epochs`` (``fann_train_on_data``).

        Reports go to ``callback`` (or :attr:`callback`) every ``epochs_between_reports``
        epochs, on the first and last epoch and when the goal is reached; a callback
        returning ``False`` stops training. Returns the number of epochs run.
        """
        self._check_data(data)
        if max_epochs < 0 or epochs_between_reports < 0:
            raise InvalidInputError("max_epochs and epochs_between_reports must be >= 0")
        cb = callback if callback is not None else self.callback
        epoch = 0
        for epoch in range(1, max_epochs + 1):
            mse = self.train_epoch(data)
            reached = self._desired_error_reached(desired_error)
            if (
                cb is not None
                and epochs_between_reports
                and (epoch % epochs_between_reports == 0 or epoch in (1, max_epochs) or reached)
                and cb(self, epoch, mse, self.num_bit_fail) is False
            ):
                break
            if reached:
                break
        return epoch

    def train_on_file(
        self,
        path: str | os.PathLike[str],
        max_epochs: int,
        epochs_between_reports: int = 0,
        desired_error: float = 0.0,
    ) -> int:
        """:meth:`train_on_data` on a ``.data`` file."""
        data = TrainingData.read_train_from_file(path)
        return self.train_on_data(data, max_epochs, epochs_between_reports, desired_error)

    def cascadetrain_on_data(
        self,
        data: TrainingData,
        max_neurons: int,
        neurons_between_reports: int = 0,
        desired_error: float = 0.0,
        callback: TrainCallback | None = None,
    ) -> int:
        """Cascade-correlation training (``fann_cascadetrain_on_data``); see ``cascade``.

        Returns the total number of epochs (output + candidate) run.
        """
        return _cascadetrain(
            self, data, max_neurons, neurons_between_reports, desired_error, callback
        )

    def cascadetrain_on_file(
        self,
        path: str | os.PathLike[str],
        max_neurons: int,
        neurons_between_reports: int = 0,
        desired_error: float = 0.0,
    ) -> int:
        """:meth:`cascadetrain_on_data` on a ``.data`` file."""
        data = TrainingData.read_train_from_file(path)
        return self.cascadetrain_on_data(data, max_neurons, neurons_between_reports, desired_error)

    # ================================================================ scaling
    def set_input_scaling_params(
        self, data: TrainingData, new_input_min: float, new_input_max: float
    ) -> None:
        """Learn input scaling (mean/deviation) from ``data`` to ``[min, max]``."""
        self._check_data(data)
        self._ensure_scale()
        self.scale_in = self._scaling_params(data.input, new_input_min, new_input_max)

    def set_output_scaling_params(
        self, data: TrainingData, new_output_min: float, new_output_max: float
    ) -> None:
        """Learn output scaling from ``data``."""
        self._check_data(data)
        self._ensure_scale()
        self.scale_out = self._scaling_params(data.output, new_output_min, new_output_max)

    def _ensure_scale(self) -> None:
        # libfann allocates input and output parameters together, with neutral defaults
        if self.scale_in is None or self.scale_out is None:
            self.clear_scaling_params()

    def set_scaling_params(
        self,
        data: TrainingData,
        new_input_min: float,
        new_input_max: float,
        new_output_min: float,
        new_output_max: float,
    ) -> None:
        """Learn both input and output scaling (``fann_set_scaling_params``)."""
        self.set_input_scaling_params(data, new_input_min, new_input_max)
        self.set_output_scaling_params(data, new_output_min, new_output_max)

    def clear_scaling_params(self) -> None:
        """Reset scaling to the identity-like defaults (mean 0, deviation 1, min -1, factor 1)."""
        empty = TrainingData(np.zeros((0, self.num_input)), np.zeros((0, self.num_output)))
        self.scale_in = self._scaling_params(empty.input, -1.0, 1.0)
        self.scale_out = self._scaling_params(empty.output, -1.0, 1.0)

    @staticmethod
    def _scaling_params(arr: F64, new_min: float, new_max: float) -> tuple[F64, F64, F64, F64]:
        n = arr.shape[1]
        if arr.shape[0] == 0:
            return np.zeros(n), np.ones(n), np.full(n, -1.0), np.ones(n)
        if not (math.isfinite(new_min) and math.isfinite(new_max)) or new_max <= new_min:
            raise InvalidInputError(f"scaling range [{new_min}, {new_max}] is empty or invalid")
        mean = arr.mean(axis=0)
        dev = np.sqrt(((arr - mean) ** 2).mean(axis=0))
        factor = np.full(n, (new_max - new_min) / 2.0)
        return mean, dev, np.full(n, float(new_min)), factor

    def _need(self, which: str) -> tuple[F64, F64, F64, F64]:
        params = self.scale_in if which == "in" else self.scale_out
        if params is None:
            raise InvalidInputError(
                "no scaling parameters: call set_scaling_params (or load a net that has them)"
            )
        return params

    @staticmethod
    def _scale(v: F64, p: tuple[F64, F64, F64, F64]) -> F64:
        mean, dev, new_min, factor = p
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = ((v - mean) / dev + 1.0) * factor + new_min
        return np.where(dev != 0.0, scaled, v)

    @staticmethod
    def _descale(v: F64, p: tuple[F64, F64, F64, F64]) -> F64:
        mean, dev, new_min, factor = p
        with np.errstate(divide="ignore", invalid="ignore"):
            orig = ((v - new_min) / factor - 1.0) * dev + mean
        return np.where(dev != 0.0, orig, v)

    def scale_input(self, inputs: npt.ArrayLike) -> F64:
        """Scaled copy of an input vector or batch (``fann_scale_input``)."""
        return self._scale(np.asarray(inputs, dtype=np.float64), self._need("in"))

    def descale_input(self, inputs: npt.ArrayLike) -> F64:
        """Inverse of :meth:`scale_input`."""
        return self._descale(np.asarray(inputs, dtype=np.float64), self._need("in"))

    def scale_output(self, outputs: npt.ArrayLike) -> F64:
        """Scaled copy of an output vector or batch (``fann_scale_output``)."""
        return self._scale(np.asarray(outputs, dtype=np.float64), self._need("out"))

    def descale_output(self, outputs: npt.ArrayLike) -> F64:
        """Inverse of :meth:`scale_output` (turn network outputs back into data units)."""
        return self._descale(np.asarray(outputs, dtype=np.float64), self._need("out"))

    def scale_train(self, data: TrainingData) -> None:
        """Scale ``data`` in place with this network's parameters (``fann_scale_train``)."""
        self._check_data(data)
        data.input = self.scale_input(data.input)
        data.output = self.scale_output(data.output)

    def descale_train(self, data: TrainingData) -> None:
        """Undo :meth:`scale_train` in place."""
        self._check_data(data)
        data.input = self.descale_input(data.input)
        data.output = self.descale_output(data.output)

    # ================================================================ files / codec
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the network in libfann's ``FANN_FLO_2.1`` text format (``fann_save``)."""
        try:
            Path(path).write_text(_io.format_net(self), encoding="ascii")
        except OSError as exc:
            raise StorageError(f"cannot write network {os.fspath(path)!r}: {exc}") from None

    def to_text(self) -> str:
        """The ``.net`` file content."""
        return _io.format_net(self)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, seed: int | np.random.Generator | None = None
    ) -> Network:
        """Load a ``FANN_FLO_2.0/2.1`` network file (``fann_create_from_file``)."""
        try:
            text = Path(path).read_text(encoding="ascii")
        except FileNotFoundError:
            raise StorageError(f"network file {os.fspath(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise StorageError(f"cannot read network {os.fspath(path)!r}: {exc}") from None
        return _io.parse_net(text, cls, source=os.fspath(path), seed=seed)

    @classmethod
    def from_text(cls, text: str, *, seed: int | np.random.Generator | None = None) -> Network:
        """Parse ``.net`` content from a string."""
        return _io.parse_net(text, cls, seed=seed)

    def to_bytes(self, level: CompressionLevel | str | None = None) -> bytes:
        """A compact blob for shipping to other agents (see ``ruvector_edge.neural.codec``).

        ``level`` is a :class:`~ruvector_edge.codec.CompressionLevel` (or its name):
        lossless levels keep weights exactly; QUANTIZED8/4 quantize them.
        """
        return _codec.network_to_bytes(self, level)

    @classmethod
    def from_bytes(cls, blob: bytes | bytearray | memoryview) -> Network:
        """Rebuild a network from :meth:`to_bytes`; bad blobs raise ``CodecError``."""
        return _codec.network_from_bytes(blob, cls)
