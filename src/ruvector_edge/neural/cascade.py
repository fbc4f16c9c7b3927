"""Cascade-correlation training (libfann's ``fann_cascade.c`` semantics, vectorized).

Starting from a shortcut network, it alternates:

1. output training: only the output neurons' weights, with RPROP / QUICKPROP / SARPROP,
   until the error stagnates (``cascade_output_change_fraction`` /
   ``cascade_output_stagnation_epochs``, within ``cascade_min/max_out_epochs``);
2. candidate training: a pool of ``functions x steepnesses x groups`` candidate neurons,
   each connected from every non-output neuron, learns to correlate with the residual
   error (libfann's score: ``SSE - sum((a*w_out - e)^2)``), until the best score stagnates,
   the pool hits ``cascade_max_cand_epochs`` or ``best/SSE > cascade_candidate_limit``;
3. the best candidate is installed in a new layer before the outputs; its output weights
   are scaled by ``cascade_weight_multiplier``.

All candidates train at once as matrix products over the whole data set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ruvector_edge.errors import InvalidInputError
from ruvector_edge.neural._structure import F64, Structure
from ruvector_edge.neural.activation import (
    SYMMETRIC_FUNCTIONS,
    ActivationFunc,
    NetType,
    TrainingAlgorithm,
    activate,
    derive,
)
from ruvector_edge.neural.data import TrainingData

if TYPE_CHECKING:
    from ruvector_edge.neural.network import Network, TrainCallback

__all__ = ["cascadetrain_on_data"]


class _CandState:
    def __init__(self, shape: tuple[int, int], step0: float) -> None:
        self.slopes = [np.zeros(shape)]
        self.prev_steps = [np.full(shape, step0)]
        self.prev_slopes = [np.zeros(shape)]


def cascadetrain_on_data(  # noqa: PLR0917 - mirrors libfann / typer options
    net: Network,
    data: TrainingData,
    max_neurons: int,
    neurons_between_reports: int,
    desired_error: float,
    callback: TrainCallback | None,
) -> int:
    """Grow and train ``net`` by cascade-correlation; returns the total epochs run."""
    net._check_data(data)
    if net.network_type != NetType.SHORTCUT:
        raise InvalidInputError(
            "cascade training needs a shortcut network; create it with "
            "Network.create_shortcut([num_input, num_output])"
        )
    if net.training_algorithm not in (
        TrainingAlgorithm.RPROP,
        TrainingAlgorithm.QUICKPROP,
        TrainingAlgorithm.SARPROP,
    ):
        raise InvalidInputError(
            f"cascade training cannot use {net.training_algorithm.name}; "
            "choose RPROP, QUICKPROP or SARPROP"
        )
    if max_neurons < 0 or neurons_between_reports < 0:
        raise InvalidInputError("max_neurons and neurons_between_reports must be >= 0")
    if net.cascade_num_candidates == 0:
        raise InvalidInputError("the candidate pool is empty (no functions or steepnesses)")
    cb = callback if callback is not None else net.callback
    total_epochs = 0
    for i in range(1, max_neurons + 1):
        total_epochs += _train_outputs(net, data, desired_error)
        reached = net._desired_error_reached(desired_error)
        if (
            cb is not None
            and neurons_between_reports
            and (i % neurons_between_reports == 0 or i in (1, max_neurons) or reached)
            and cb(net, total_epochs, net.get_MSE(), net.num_bit_fail) is False
        ):
            break
        if reached:
            break
        pool = _Pool(net, data)
        total_epochs += pool.train()
        pool.install()
    total_epochs += _train_outputs(net, data, 0.0)
    return total_epochs


def _train_outputs(net: Network, data: TrainingData, desired_error: float) -> int:
    max_epochs = net.cascade_max_out_epochs
    min_epochs = net.cascade_min_out_epochs
    frac = net.cascade_output_change_fraction
    target, backslide = 0.0, -1.0e20
    stagnation = max_epochs
    net._reset_train_state()  # fann_clear_train_arrays
    # only output weights change here, so the hidden layers' outputs are computed once
    arrays, _ = net._forward(data.input)
    src = net._gather(arrays, net._s.layers[-1])
    initial = _outputs_epoch(net, data, src)
    if net._desired_error_reached(desired_error):
        return 1
    for i in range(1, max_epochs):
        error = _outputs_epoch(net, data, src)
        if net._desired_error_reached(desired_error):
            return i + 1
        improvement = initial - error
        if (target >= 0 and (improvement > target or improvement < backslide)) or (
            target < 0 and (improvement < target or improvement > backslide)
        ):
            target = improvement * (1.0 + frac)
            backslide = improvement * (1.0 - frac)
            stagnation = i + net.cascade_output_stagnation_epochs
        if i >= stagnation and i >= min_epochs:
            return i + 1
    return max_epochs


def _outputs_epoch(net: Network, data: TrainingData, src: F64) -> float:
    """libfann's ``fann_train_outputs_epoch`` on cached output-layer inputs."""
    net.reset_MSE()
    layers = net._s.layers
    last = layers[-1]
    z, out = net._layer_forward(last, src)
    no = net.num_output
    delta = net._output_errors(out[:, :no], z[:, :no], data.output)
    slopes: list[F64] = [np.zeros(0)] * len(layers)
    slopes[-1] = net._layer_slopes(last, delta, src)
    net._apply_update(slopes, data.length, range(len(layers) - 1, len(layers)))
    return net.get_MSE()


class _Pool:
    """The candidate neurons, trained together."""

    def __init__(self, net: Network, data: TrainingData) -> None:
        self.net = net
        self.data = data
        s = net._s
        self.n_in = int(s.bounds[-2])  # every non-output neuron feeds a candidate
        num_out = net.num_output
        num_hidden = s.total_neurons - net.num_input - num_out
        scale = 2.0 * (0.7 * num_hidden) ** (1.0 / net.num_input)
        scale = min(max(scale, 0.5), 8.0)
        funcs, steeps = [], []
        for f in net.cascade_activation_functions:
            for st in net.cascade_activation_steepnesses:
                for _ in range(net.cascade_num_candidate_groups):
                    funcs.append(ActivationFunc(f))
                    steeps.append(float(st))
        self.funcs = np.array([int(f) for f in funcs])
        self.steep = np.array(steeps)
        c = len(funcs)
        rng = net._rng
        w = rng.uniform(0.0, scale, (c, self.n_in + num_out))
        bias = s.layer_sizes[0] - 1
        w[:, bias] = rng.uniform(-scale, scale, c)
        self.weights = w
        step0 = net.rprop_delta_zero if net.training_algorithm == TrainingAlgorithm.RPROP else 0.0
        self.state = _CandState(w.shape, step0)
        self.scores = np.zeros(c)
        a = int(s.bounds[-2])
        acts = s.activation[a : a + num_out]
        self.out_half = np.array(
            [0.5 if ActivationFunc(int(f)) in SYMMETRIC_FUNCTIONS else 1.0 for f in acts]
        )

    def _prepare(self) -> None:
        # The network does not change while candidates train, so its forward pass (which
        # libfann repeats every epoch with identical results) is computed once.
        net = self.net
        arrays, _ = net._forward(self.data.input)
        self.src = net._full_values(arrays, self.n_in)
        out = arrays[-1][:, : net.num_output]
        self.errors = (self.data.output - out) * self.out_half  # (n, O)
        groups: list[tuple[ActivationFunc, slice]] = []
        start = 0
        for end in range(1, len(self.funcs) + 1):
            if end == len(self.funcs) or self.funcs[end] != self.funcs[start]:
                groups.append((ActivationFunc(int(self.funcs[start])), slice(start, end)))
                start = end
        self.groups = groups
        self.lim = 150.0 / np.abs(self.steep)

    def epoch(self) -> float:
        net = self.net
        src, errors = self.src, self.errors
        w_in = self.weights[:, : self.n_in]
        w_out = self.weights[:, self.n_in :]
        cand_sum = src @ w_in.T  # (n, C)
        np.clip(cand_sum, -self.lim, self.lim, out=cand_sum)
        act = np.empty_like(cand_sum)
        der = np.empty_like(cand_sum)
        for func, cols in self.groups:
            st = self.steep[cols]
            raw = cand_sum[:, cols]
            act[:, cols] = activate(func, raw * st)
            # libfann passes the unscaled candidate sum to the derivative here
            der[:, cols] = derive(func, st, act[:, cols], raw)
        # diff[n, c, o] = a[n, c] * w_out[c, o] - e[n, o]
        diff = act[:, :, None] * w_out[None, :, :] - errors[:, None, :]
        out_slopes = -2.0 * np.einsum("nco,nc->co", diff, act)
        err_val = np.einsum("nco,co->nc", diff, w_out) * der
        in_slopes = -(err_val.T @ src)
        self.scores = net.MSE_value - np.einsum("nco,nco->c", diff, diff)
        slopes = np.concatenate([in_slopes, out_slopes], axis=1)
        algo = net.training_algorithm
        st_obj = self.state
        if algo == TrainingAlgorithm.RPROP:
            new = net._irpropm(self.weights, slopes, st_obj, 0)
        elif algo == TrainingAlgorithm.QUICKPROP:
            new = net._quickprop(self.weights, slopes, st_obj, 0, len(self.data))
        else:
            new = net._sarprop(self.weights, slopes, st_obj, 0)
        self.weights = np.ascontiguousarray(new)
        return float(self.scores.max())

    def train(self) -> int:
        net = self.net
        max_epochs = net.cascade_max_cand_epochs
        min_epochs = net.cascade_min_cand_epochs
        frac = net.cascade_candidate_change_fraction
        target, backslide = 0.0, -1.0e20
        stagnation = max_epochs
        self._prepare()
        for i in range(max_epochs):
            best = self.epoch()
            if net.MSE_value > 0 and best / net.MSE_value > net.cascade_candidate_limit:
                return i + 1
            if best > target or best < backslide:
                target = best * (1.0 + frac)
                backslide = best * (1.0 - frac)
                stagnation = i + net.cascade_candidate_stagnation_epochs
            if i >= stagnation and i >= min_epochs:
                return i + 1
        return max_epochs

    def install(self) -> None:
        """Insert the best candidate in a new layer just before the output layer."""
        net = self.net
        s = net._s
        best = int(np.argmax(self.scores))
        n_in = self.n_in
        num_out = net.num_output
        old_w = s.get_weights()
        c_split = int(s.conn_bounds[n_in])
        out_counts = s.num_conns[n_in:]
        new_sizes = [*s.layer_sizes[:-1], 1, s.layer_sizes[-1]]
        num_conns = np.concatenate([s.num_conns[:n_in], [n_in], out_counts + 1])
        activation = np.concatenate([s.activation[:n_in], [self.funcs[best]], s.activation[n_in:]])
        steep = np.concatenate([s.steepness[:n_in], [self.steep[best]], s.steepness[n_in:]])
        srcs: list[np.ndarray] = [s.conn_src[:c_split], np.arange(n_in)]
        weights: list[F64] = [old_w[:c_split], self.weights[best, :n_in]]
        out_w = self.weights[best, n_in:] * net.cascade_weight_multiplier
        for j in range(num_out):
            c0, c1 = int(s.conn_bounds[n_in + j]), int(s.conn_bounds[n_in + j + 1])
            srcs.extend([s.conn_src[c0:c1], np.array([n_in])])
            weights.extend([old_w[c0:c1], out_w[j : j + 1]])
        conn_src = np.concatenate(srcs).astype(np.int64)
        net._s = Structure(
            new_sizes,
            num_conns.astype(np.int64),
            activation.astype(np.int64),
            steep,
            conn_src,
            np.concatenate(weights),
        )
        net._reset_train_state()
