"""Cross-checks against the C library (libdoublefann 2.x) when it is installed.

Files go both ways (byte-identical text, same outputs to 1e-6 and in fact ~1e-12), and
training epochs of every algorithm give the same weights as libfann from the same start.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ruvector_edge.neural import ActivationFunc, Network, TrainingAlgorithm, TrainingData, libfann

pytestmark = pytest.mark.skipif(
    not libfann.available(), reason=libfann.unavailable_reason() or "libfann unavailable"
)

# libfann 2.2.0 (Debian) predates the two ReLU functions, so they are checked elsewhere.
FUNCS_220 = [f for f in ActivationFunc if f < ActivationFunc.LINEAR_PIECE_RECT]


def _data(seed: int = 0, n: int = 24) -> TrainingData:
    rng = np.random.default_rng(seed)
    return TrainingData(rng.uniform(-1, 1, (n, 3)), rng.uniform(-0.9, 0.9, (n, 2)))


def test_libfann_trained_network_loads_here(tmp_path: Path) -> None:
    data = TrainingData(
        np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]]),
        np.array([[-1.0], [1.0], [1.0], [-1.0]]),
    )
    c = libfann.CFann.create_standard([2, 4, 1])
    c.set("activation_function_hidden", int(ActivationFunc.SIGMOID_SYMMETRIC))
    c.set("activation_function_output", int(ActivationFunc.SIGMOID_SYMMETRIC))
    c.train_on_data(libfann.CTrainData(data), 200, 0, 0.0001)
    path = tmp_path / "c.net"
    c.save(path)
    ours = Network.from_file(path)
    x = np.random.default_rng(1).uniform(-1, 1, (100, 2))
    np.testing.assert_allclose(ours.run_batch(x), c.run_batch(x), atol=1e-9)
    assert ours.to_text() == path.read_text()  # byte-identical re-save


@pytest.mark.parametrize("kind", ["standard", "sparse", "shortcut"])
def test_our_network_loads_in_libfann(tmp_path: Path, kind: str) -> None:
    if kind == "standard":
        net = Network.create_standard([3, 5, 4, 2], seed=2)
    elif kind == "sparse":
        net = Network.create_sparse(0.4, [3, 5, 4, 2], seed=2)
    else:
        net = Network.create_shortcut([3, 5, 2], seed=2)
    net.set_activation_function_hidden(ActivationFunc.ELLIOT_SYMMETRIC)
    net.set_activation_function(ActivationFunc.GAUSSIAN, 1, 1)
    net.set_activation_steepness_output(0.8)
    net.randomize_weights(-1.5, 1.5)
    data = _data(3)
    net.set_scaling_params(data, -1, 1, -1, 1)
    net.train_on_data(data, 20)
    path = tmp_path / "ours.net"
    net.save(path)
    c = libfann.CFann.from_file(path)
    assert (c.total_neurons, c.total_connections) == (net.total_neurons, net.total_connections)
    x = np.random.default_rng(4).uniform(-2, 2, (100, 3))
    np.testing.assert_allclose(c.run_batch(x), net.run_batch(x), atol=1e-9)
    c.save(tmp_path / "back.net")
    assert (tmp_path / "back.net").read_text() == path.read_text()


@pytest.mark.parametrize("kind", ["standard", "shortcut", "sparse"])
@pytest.mark.parametrize(
    "algo",
    [
        TrainingAlgorithm.INCREMENTAL,
        TrainingAlgorithm.BATCH,
        TrainingAlgorithm.RPROP,
        TrainingAlgorithm.QUICKPROP,
    ],
)
def test_training_epochs_match_libfann(tmp_path: Path, kind: str, algo: TrainingAlgorithm) -> None:
    if kind == "sparse" and algo == TrainingAlgorithm.INCREMENTAL:
        pytest.skip(
            "libfann's fann_update_weights reads neuron i of the whole net instead of the "
            "connected neuron for sparse nets (a C bug we do not reproduce)"
        )
    data = _data(5)
    cdata = libfann.CTrainData(data)
    rng = np.random.default_rng(int(algo))
    for func in rng.choice(FUNCS_220, size=4, replace=False):
        f = ActivationFunc(int(func))
        if f in (
            ActivationFunc.THRESHOLD,
            ActivationFunc.THRESHOLD_SYMMETRIC,
            ActivationFunc.GAUSSIAN_STEPWISE,
        ):
            continue
        if kind == "standard":
            net = Network.create_standard([3, 4, 5, 2], seed=1)
        elif kind == "shortcut":
            net = Network.create_shortcut([3, 4, 5, 2], seed=1)
        else:
            net = Network.create_sparse(0.6, [3, 4, 5, 2], seed=1)
        net.set_activation_function_hidden(f)
        net.set_activation_function_output(ActivationFunc.SIGMOID_SYMMETRIC)
        net.set_activation_steepness_hidden(0.7)
        net.training_algorithm = algo
        net.learning_rate = 0.3
        net.save(tmp_path / "start.net")
        c = libfann.CFann.from_file(tmp_path / "start.net")
        for _ in range(5):
            ours = net.train_epoch(data)
            theirs = c.train_epoch(cdata)
            assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-9), f.name
        np.testing.assert_allclose(net.get_weights(), c.get_weights(), atol=1e-6, err_msg=f.name)
        assert net.test_data(data) == pytest.approx(c.test_data(cdata), rel=1e-5)


def test_cascade_network_loads_in_libfann(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (60, 2))
    y = np.sign(x[:, :1] * x[:, 1:]) * 0.9
    data = TrainingData(x, y)
    net = Network.create_shortcut([2, 1], seed=0)
    net.set_activation_function_output(ActivationFunc.SIGMOID_SYMMETRIC)
    net.cascade_max_out_epochs = 40
    net.cascade_max_cand_epochs = 40
    net.cascadetrain_on_data(data, 3, 0, 0.0)
    assert net.num_layers == 5
    net.save(tmp_path / "casc.net")
    c = libfann.CFann.from_file(tmp_path / "casc.net")
    np.testing.assert_allclose(c.run_batch(x), net.run_batch(x), atol=1e-9)


def test_counts_match_libfann() -> None:
    for layers in ([2, 3, 4], [5, 1], [3, 7, 2, 4]):
        c = libfann.CFann.create_standard(layers)
        net = Network.create_standard(layers)
        assert (c.total_neurons, c.total_connections) == (net.total_neurons, net.total_connections)
        c = libfann.CFann.create_shortcut(layers)
        net = Network.create_shortcut(layers)
        assert (c.total_neurons, c.total_connections) == (net.total_neurons, net.total_connections)
        c = libfann.CFann.create_sparse(0.5, layers)
        net = Network.create_sparse(0.5, layers)
        assert c.total_connections == net.total_connections


def test_sarprop_first_epoch_matches_libfann(tmp_path: Path) -> None:
    # later SARPROP epochs draw libc rand() noise, so only the deterministic start is compared
    data = _data(7)
    net = Network.create_standard([3, 5, 2], seed=3)
    net.set_activation_function_hidden(ActivationFunc.SIGMOID_SYMMETRIC)
    net.training_algorithm = TrainingAlgorithm.SARPROP
    net.save(tmp_path / "s.net")
    c = libfann.CFann.from_file(tmp_path / "s.net")
    assert net.train_epoch(data) == pytest.approx(c.train_epoch(libfann.CTrainData(data)), rel=1e-6)
    np.testing.assert_allclose(net.get_weights(), c.get_weights(), atol=1e-9)
    assert not np.allclose(net.get_weights(), Network.from_file(tmp_path / "s.net").get_weights())
