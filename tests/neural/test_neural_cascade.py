"""Cascade-correlation: the topology really grows and the error really falls."""

from __future__ import annotations

import numpy as np
import pytest

from ruvector_edge.errors import InvalidInputError
from ruvector_edge.neural import ActivationFunc, Network, TrainingAlgorithm, TrainingData


def spirals(points: int = 97) -> TrainingData:
    i = np.arange(points)
    phi = i / 16 * np.pi
    r = 6.5 * (104 - i) / 104
    xy = np.c_[r * np.cos(phi), r * np.sin(phi)] / 6.5
    x = np.vstack([xy, -xy])
    y = np.r_[np.ones(points), -np.ones(points)].reshape(-1, 1)
    return TrainingData(x, y)


def _net(algo: TrainingAlgorithm) -> Network:
    net = Network.create_shortcut([2, 1], seed=0)
    net.set_activation_function_output(ActivationFunc.SIGMOID_SYMMETRIC)
    net.training_algorithm = algo
    return net


def test_cascade_grows_and_error_falls() -> None:
    data = spirals(40)
    net = _net(TrainingAlgorithm.RPROP)
    net.train_on_data(data, 50)  # what plain output training reaches
    baseline = net.test_data(data)
    net = _net(TrainingAlgorithm.RPROP)
    reports: list[tuple[int, int, float]] = []

    def cb(n: Network, epochs: int, mse: float, _bits: int) -> bool:
        reports.append((n.num_layers, epochs, mse))
        return True

    net.cascadetrain_on_data(data, 8, 1, 0.0, callback=cb)
    assert net.num_layers == 2 + 8
    assert net.total_neurons == 3 + 1 + 8
    assert net.total_connections == 3 + sum(3 + k for k in range(8)) + 8
    final = net.test_data(data)
    assert final < baseline * 0.5
    mses = [m for _, _, m in reports]
    assert mses[-1] < mses[0]
    assert [n for n, _, _ in reports] == list(range(2, 10))
    # every installed hidden neuron uses a function from the candidate pool
    for layer in range(1, net.num_layers - 1):
        assert net.get_activation_function(layer, 0) in net.cascade_activation_functions
        assert net.get_activation_steepness(layer, 0) in net.cascade_activation_steepnesses


@pytest.mark.parametrize("algo", [TrainingAlgorithm.QUICKPROP, TrainingAlgorithm.SARPROP])
def test_cascade_other_output_algorithms(algo: TrainingAlgorithm) -> None:
    data = spirals(30)
    net = _net(algo)
    net.cascade_max_out_epochs = 60
    net.cascade_max_cand_epochs = 60
    start = net.test_data(data)
    net.cascadetrain_on_data(data, 3, 0, 0.0)
    assert net.num_layers == 5
    assert net.test_data(data) < start


def test_cascade_stops_at_desired_error() -> None:
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    data = TrainingData(x, x[:, :1] * 0.8 - 0.4)  # linearly solvable
    net = _net(TrainingAlgorithm.RPROP)
    net.cascadetrain_on_data(data, 10, 0, 0.01)
    assert net.num_layers == 2  # no neuron needed
    assert net.test_data(data) < 0.01


def test_cascade_needs_shortcut_and_suitable_algorithm() -> None:
    data = spirals(10)
    with pytest.raises(InvalidInputError, match="shortcut"):
        Network.create_standard([2, 1]).cascadetrain_on_data(data, 2)
    net = _net(TrainingAlgorithm.RPROP)
    net.training_algorithm = TrainingAlgorithm.BATCH
    with pytest.raises(InvalidInputError, match="BATCH"):
        net.cascadetrain_on_data(data, 2)
