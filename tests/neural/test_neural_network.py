"""Network creation, counting, activations, weights, forward pass and XOR acceptance."""

from __future__ import annotations

import numpy as np
import pytest

from ruvector_edge.errors import DimensionError, EdgeError, InvalidInputError
from ruvector_edge.neural import (
    ActivationFunc,
    NetType,
    Network,
    StopFunc,
    TrainingAlgorithm,
    TrainingData,
)
from ruvector_edge.neural.activation import activate, derive

XOR_IN = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_OUT = np.array([[0.0], [1.0], [1.0], [0.0]])


def xor() -> TrainingData:
    return TrainingData(XOR_IN, XOR_OUT)


# ------------------------------------------------------------------ counting (libfann's)
def test_standard_counts_like_libfann() -> None:
    net = Network.create_standard([2, 3, 4])
    assert (net.total_neurons, net.total_connections) == (11, 25)
    assert (net.num_input, net.num_output, net.layers) == (2, 4, [2, 3, 4])
    assert net.bias == [1, 1, 0]
    assert net.layer_sizes == [3, 4, 5]
    assert net.network_type is NetType.LAYER


def test_sparse_counts_and_minimum_connectivity() -> None:
    net = Network.create_sparse(0.5, [2, 3, 4, 5], seed=7)
    assert net.total_connections == 31
    conns = net.get_connection_array()
    # every neuron of every layer feeds someone and every computed neuron has its bias
    for layer_idx in range(1, net.num_layers):
        start = sum(net.layer_sizes[:layer_idx])
        prev_start = start - net.layer_sizes[layer_idx - 1]
        prev_neurons = set(range(prev_start, start - 1))
        sources = {s for s, d, _ in conns if start <= d < start + net.layers[layer_idx]}
        assert prev_neurons <= sources
        assert start - 1 in sources  # previous layer's bias
    assert abs(net.connection_rate - 0.5) < 1e-12


def test_sparse_rate_one_is_standard() -> None:
    a = Network.create_sparse(1.0, [3, 4, 2], seed=1)
    b = Network.create_standard([3, 4, 2], seed=1)
    assert a.get_connection_array() == b.get_connection_array()


def test_shortcut_counts() -> None:
    net = Network.create_shortcut([2, 3, 4, 5])
    assert (net.total_neurons, net.total_connections) == (15, 83)
    assert net.bias == [1, 0, 0, 0]
    assert net.num_output == 5


@pytest.mark.parametrize(
    "layers",
    [[2], [], [2, 0, 1], [2, -1], ["a", 2]],
)
def test_bad_layer_specs_raise(layers: list[object]) -> None:
    with pytest.raises(InvalidInputError):
        Network.create_standard(layers)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [0.0, -0.5, float("nan")])
def test_bad_connection_rate(rate: float) -> None:
    with pytest.raises(InvalidInputError):
        Network.create_sparse(rate, [2, 2])


# ------------------------------------------------------------------ activations
def test_sigmoid_formula_and_steepness() -> None:
    net = Network.create_standard([1, 1])
    net.set_activation_function_output(ActivationFunc.SIGMOID)
    net.set_activation_steepness_output(0.3)
    net.set_weights([0.8, -0.2])  # input weight, bias weight
    x = 1.7
    expected = 1.0 / (1.0 + np.exp(-2.0 * 0.3 * (0.8 * x - 0.2)))
    assert net.run([x])[0] == pytest.approx(expected, abs=1e-12)


def test_all_twenty_functions_match_formulas() -> None:
    x = np.linspace(-3, 3, 61)
    formulas = {
        ActivationFunc.LINEAR: x,
        ActivationFunc.THRESHOLD: np.where(x < 0, 0.0, 1.0),
        ActivationFunc.THRESHOLD_SYMMETRIC: np.where(x < 0, -1.0, 1.0),
        ActivationFunc.SIGMOID: 1 / (1 + np.exp(-2 * x)),
        ActivationFunc.SIGMOID_SYMMETRIC: 2 / (1 + np.exp(-2 * x)) - 1,
        ActivationFunc.GAUSSIAN: np.exp(-x * x),
        ActivationFunc.GAUSSIAN_SYMMETRIC: 2 * np.exp(-x * x) - 1,
        ActivationFunc.GAUSSIAN_STEPWISE: np.zeros_like(x),
        ActivationFunc.ELLIOT: (x / 2) / (1 + abs(x)) + 0.5,
        ActivationFunc.ELLIOT_SYMMETRIC: x / (1 + abs(x)),
        ActivationFunc.LINEAR_PIECE: np.clip(x, 0, 1),
        ActivationFunc.LINEAR_PIECE_SYMMETRIC: np.clip(x, -1, 1),
        ActivationFunc.SIN_SYMMETRIC: np.sin(x),
        ActivationFunc.COS_SYMMETRIC: np.cos(x),
        ActivationFunc.SIN: np.sin(x) / 2 + 0.5,
        ActivationFunc.COS: np.cos(x) / 2 + 0.5,
        ActivationFunc.LINEAR_PIECE_RECT: np.maximum(x, 0),
        ActivationFunc.LINEAR_PIECE_RECT_LEAKY: np.where(x < 0, 0.01 * x, x),
    }
    for func, want in formulas.items():
        np.testing.assert_allclose(activate(func, x), want, atol=1e-12, err_msg=func.name)
    # stepwise approximations stay within a few percent of the real thing, and saturate
    sig = activate(ActivationFunc.SIGMOID_STEPWISE, x)
    assert np.max(np.abs(sig - formulas[ActivationFunc.SIGMOID])) < 0.04
    assert activate(ActivationFunc.SIGMOID_STEPWISE, np.array([-10.0, 10.0])).tolist() == [0, 1]
    sym = activate(ActivationFunc.SIGMOID_SYMMETRIC_STEPWISE, x)
    assert np.max(np.abs(sym - np.tanh(x))) < 0.08
    assert len(ActivationFunc) == 20


def test_derivatives_follow_libfann() -> None:
    v = np.array([0.0, 0.005, 0.5, 0.999])
    s = 0.5
    # sigmoid derivative clips the value to [0.01, 0.99]
    np.testing.assert_allclose(
        derive(ActivationFunc.SIGMOID, s, v, v),
        2 * s * np.clip(v, 0.01, 0.99) * (1 - np.clip(v, 0.01, 0.99)),
    )
    sv = np.array([-1.0, 0.0, 0.99])
    np.testing.assert_allclose(
        derive(ActivationFunc.SIGMOID_SYMMETRIC, s, sv, sv),
        s * (1 - np.clip(sv, -0.98, 0.98) ** 2),
    )
    # ReLU: libfann checks value < 0, so the derivative is the steepness everywhere
    assert derive(ActivationFunc.LINEAR_PIECE_RECT, 1.0, sv, sv).tolist() == [0.0, 1.0, 1.0]
    assert derive(ActivationFunc.LINEAR_PIECE_RECT_LEAKY, 2.0, sv, sv).tolist() == [0.02, 2, 2]


def test_derivative_matches_finite_difference_for_smooth_functions() -> None:
    x = np.linspace(-1.5, 1.5, 31)
    h = 1e-6
    for func in (ActivationFunc.SIGMOID_SYMMETRIC, ActivationFunc.ELLIOT_SYMMETRIC):
        num = (activate(func, x + h) - activate(func, x - h)) / (2 * h)
        got = derive(func, 1.0, activate(func, x), x)
        inner = np.abs(activate(func, x)) < 0.9
        np.testing.assert_allclose(got[inner], num[inner], rtol=1e-5)


def test_per_neuron_activation_and_steepness() -> None:
    net = Network.create_standard([2, 3, 2], seed=0)
    net.set_activation_function(ActivationFunc.LINEAR, 2, 1)
    net.set_activation_steepness(2.0, 2, 1)
    assert net.get_activation_function(2, 0) is ActivationFunc.SIGMOID_STEPWISE
    assert net.get_activation_function(2, 1) is ActivationFunc.LINEAR
    assert net.get_activation_steepness(2, 1) == 2.0
    w = net.get_weights()
    x = np.array([0.3, -0.4])
    out = net.run(x)
    hidden = activate(ActivationFunc.SIGMOID_STEPWISE, 0.5 * (w[:9].reshape(3, 3) @ [*x, 1.0]))
    second = w[9:].reshape(2, 4)[1] @ [*hidden, 1.0]
    assert out[1] == pytest.approx(2.0 * second, abs=1e-12)
    with pytest.raises(InvalidInputError):
        net.set_activation_function("nope", 1, 0)
    with pytest.raises(InvalidInputError):
        net.set_activation_function(ActivationFunc.LINEAR, 0, 0)  # input layer
    with pytest.raises(InvalidInputError):
        net.set_activation_steepness(1.0, 1, 9)


# ------------------------------------------------------------------ weights & forward
def test_weights_roundtrip_and_set_weight() -> None:
    net = Network.create_shortcut([2, 2, 1], seed=3)
    w = np.arange(net.total_connections, dtype=float) / 10
    net.set_weights(w)
    np.testing.assert_array_equal(net.get_weights(), w)
    src, dst, _ = net.get_connection_array()[4]
    net.set_weight(src, dst, 9.5)
    assert net.get_weights()[4] == 9.5
    with pytest.raises(DimensionError):
        net.set_weights(w[:-1])
    with pytest.raises(InvalidInputError):
        net.set_weight(dst, src, 1.0)  # no backward connection


def test_randomize_weights_range() -> None:
    net = Network.create_standard([4, 8, 2], seed=1)
    net.randomize_weights(-0.3, 0.2)
    w = net.get_weights()
    assert w.min() >= -0.3
    assert w.max() < 0.2
    assert np.unique(w).shape[0] == w.shape[0]


def test_init_weights_widrow_nguyen_scale() -> None:
    net = Network.create_standard([2, 10, 1], seed=2)
    data = TrainingData(np.array([[-2.0, 0.0], [2.0, 1.0]]), np.array([[0.0], [1.0]]))
    net.init_weights(data)
    hidden = 10 + 1  # libfann counts the hidden bias here
    scale = (0.7 * hidden) ** (1 / 2) / 4.0
    conns = net.get_connection_array()
    w = net.get_weights()
    bias_mask = np.array([s in (2, 13) for s, _, _ in conns])
    assert w[~bias_mask].min() >= 0.0
    assert w[~bias_mask].max() <= scale
    assert np.abs(w[bias_mask]).max() <= scale
    assert w[bias_mask].min() < 0  # bias weights are symmetric


def test_run_batch_equals_run_and_checks_shapes() -> None:
    net = Network.create_sparse(0.7, [3, 5, 4, 2], seed=4)
    net.randomize_weights(-1, 1)
    x = np.random.default_rng(0).normal(size=(50, 3))
    batch = net.run_batch(x)
    assert batch.shape == (50, 2)
    np.testing.assert_allclose(batch, np.array([net.run(r) for r in x]), atol=1e-14)
    with pytest.raises(DimensionError):
        net.run([1.0, 2.0])
    with pytest.raises(DimensionError):
        net.run_batch(np.zeros((3, 4)))
    with pytest.raises(EdgeError):
        net.run(["x", 1, 2])  # type: ignore[arg-type]


def test_training_parameters_defaults() -> None:
    net = Network.create_standard([2, 2, 1])
    assert net.training_algorithm is TrainingAlgorithm.RPROP
    assert (net.learning_rate, net.bit_fail_limit) == (0.7, 0.35)
    assert (net.rprop_increase_factor, net.rprop_decrease_factor) == (1.2, 0.5)
    assert (net.rprop_delta_min, net.rprop_delta_max, net.rprop_delta_zero) == (0.0, 50.0, 0.1)
    assert (net.quickprop_decay, net.quickprop_mu) == (-0.0001, 1.75)
    assert net.cascade_num_candidates == 80
    net.set_training_algorithm("quickprop")
    assert net.training_algorithm.name == "QUICKPROP"
    with pytest.raises(InvalidInputError):
        net.training_algorithm = "adam"


def test_train_rejects_mismatched_data() -> None:
    net = Network.create_standard([3, 2, 1])
    with pytest.raises(DimensionError):
        net.train_on_data(xor(), 10)


# ------------------------------------------------------------------ XOR acceptance
def test_xor_rprop_reaches_mse_below_0_001_in_100_epochs() -> None:
    net = Network.create_standard([2, 3, 1], seed=0)
    epochs = net.train_on_data(xor(), 100, 0, 0.001)
    assert epochs <= 100
    assert net.get_MSE() < 0.001
    assert net.test_data(xor()) < 0.001


@pytest.mark.parametrize(
    ("func", "seed", "low"),
    [
        (ActivationFunc.LINEAR_PIECE_RECT, 31, -1.0),
        (ActivationFunc.LINEAR_PIECE_RECT_LEAKY, 0, -1.0),
    ],
)
def test_xor_relu_hidden(func: ActivationFunc, seed: int, low: float) -> None:
    net = Network.create_standard([2, 3, 1], seed=seed)
    net.set_activation_function_hidden(func)
    net.set_activation_steepness_hidden(1.0)
    net.randomize_weights(low, -low)
    net.train_on_data(xor(), 100, 0, 0.001)
    assert net.test_data(xor()) < 0.001


def test_xor_symmetric_bit_stop() -> None:
    data = TrainingData(XOR_IN * 2 - 1, XOR_OUT * 2 - 1)
    net = Network.create_standard([2, 3, 1], seed=1)
    net.set_activation_steepness_hidden(1.0)
    net.set_activation_steepness_output(1.0)
    net.set_activation_function_hidden(ActivationFunc.SIGMOID_SYMMETRIC)
    net.set_activation_function_output(ActivationFunc.SIGMOID_SYMMETRIC)
    net.train_stop_function = StopFunc.BIT
    net.bit_fail_limit = 0.01
    net.init_weights(data)
    reports: list[tuple[int, int]] = []

    def cb(_n: Network, epoch: int, _mse: float, bits: int) -> bool:
        reports.append((epoch, bits))
        return True

    epochs = net.train_on_data(data, 1000, 10, 0.0, callback=cb)
    assert epochs < 1000
    assert net.get_bit_fail() == 0
    assert reports[0][0] == 1
    assert reports[-1] == (epochs, 0)  # the goal epoch is always reported
    assert all(e % 10 == 0 for e, _ in reports[1:-1])
    out = net.run_batch(data.input)
    assert np.all(np.abs(out - data.output) < 0.02)


def test_xor_incremental_reaches_mse_below_0_01() -> None:
    net = Network.create_standard([2, 3, 1], seed=0)
    net.training_algorithm = TrainingAlgorithm.INCREMENTAL
    epochs = net.train_on_data(xor(), 5000, 0, 0.01)
    assert epochs < 5000
    assert net.get_MSE() < 0.01
    assert net.test_data(xor()) < 0.011


def test_callback_can_stop_training() -> None:
    net = Network.create_standard([2, 3, 1], seed=0)
    seen: list[int] = []

    def cb(_net: Network, epoch: int, _mse: float, _bits: int) -> bool:
        seen.append(epoch)
        return epoch < 3

    assert net.train_on_data(xor(), 100, 1, 0.0, callback=cb) == 3
    assert seen == [1, 2, 3]


def test_single_step_train_moves_toward_target() -> None:
    net = Network.create_standard([2, 3, 1], seed=5)
    before = abs(net.run([1.0, 0.0])[0] - 1.0)
    for _ in range(20):
        net.train([1.0, 0.0], [1.0])
    assert abs(net.run([1.0, 0.0])[0] - 1.0) < before


@pytest.mark.parametrize(
    "algo",
    [TrainingAlgorithm.BATCH, TrainingAlgorithm.QUICKPROP, TrainingAlgorithm.SARPROP],
)
def test_batch_algorithms_reduce_error(algo: TrainingAlgorithm) -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (200, 4))
    y = (np.sin(x.sum(axis=1, keepdims=True)) * 0.8 + 1) / 2
    data = TrainingData(x, y)
    net = Network.create_standard([4, 6, 1], seed=1)
    net.training_algorithm = algo
    start = net.test_data(data)
    net.train_on_data(data, 1000)
    assert net.test_data(data) < start * 0.5


def test_copy_is_independent() -> None:
    net = Network.create_standard([2, 3, 1], seed=0)
    net.set_scaling_params(xor(), -1, 1, -1, 1)
    twin = net.copy()
    np.testing.assert_array_equal(twin.get_weights(), net.get_weights())
    assert twin.scale_in is not None
    twin.train_on_data(xor(), 5)
    assert not np.array_equal(twin.get_weights(), net.get_weights())
    assert twin.to_text() != net.to_text()
