"""``.data`` and ``.net`` files, scaling, codec blobs: round-trip laws and malformed input."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ruvector_edge.codec import CompressionLevel
from ruvector_edge.errors import CodecError, DimensionError, InvalidInputError, StorageError
from ruvector_edge.neural import ActivationFunc, Network, TrainingData

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def datasets(draw: st.DrawFn) -> TrainingData:
    n = draw(st.integers(0, 12))
    n_in = draw(st.integers(1, 5))
    n_out = draw(st.integers(1, 4))
    x = draw(arrays(np.float64, (n, n_in), elements=finite))
    y = draw(arrays(np.float64, (n, n_out), elements=finite))
    return TrainingData(x, y)


@st.composite
def networks(draw: st.DrawFn) -> Network:
    kind = draw(st.sampled_from(["standard", "sparse", "shortcut"]))
    layers = draw(st.lists(st.integers(1, 5), min_size=2, max_size=4))
    seed = draw(st.integers(0, 2**16))
    if kind == "standard":
        net = Network.create_standard(layers, seed=seed)
    elif kind == "sparse":
        net = Network.create_sparse(draw(st.floats(0.1, 1.0)), layers, seed=seed)
    else:
        net = Network.create_shortcut(layers, seed=seed)
    net.randomize_weights(-3, 3)
    funcs = list(ActivationFunc)
    for layer in range(1, net.num_layers):
        net.set_activation_function_layer(draw(st.sampled_from(funcs)), layer)
        net.set_activation_steepness_layer(draw(st.floats(0.05, 2.0)), layer)
    return net


# ------------------------------------------------------------------ .data
@given(datasets())
def test_data_file_roundtrip(data: TrainingData) -> None:
    back = TrainingData.from_text(data.to_text())
    assert back == data


def test_data_file_io_and_errors(tmp_path: Path) -> None:
    data = TrainingData([[0.5, 1.0], [2.0, -3.25]], [[1.0], [0.0]])
    path = tmp_path / "x.data"
    data.save_train(path)
    assert path.read_text().splitlines()[0] == "2 2 1"
    assert TrainingData.read_train_from_file(path) == data
    (tmp_path / "bad.data").write_text("2 2 1\n1 2\n3\n4 5\n")
    with pytest.raises(InvalidInputError, match="holds 5 numbers"):
        TrainingData.read_train_from_file(tmp_path / "bad.data")
    (tmp_path / "bad2.data").write_text("1 1 1\nx 3\n")
    with pytest.raises(InvalidInputError, match="non-numeric"):
        TrainingData.read_train_from_file(tmp_path / "bad2.data")
    with pytest.raises(InvalidInputError, match="header"):
        TrainingData.from_text("1 a 1\n1 1\n")
    with pytest.raises(StorageError):
        TrainingData.read_train_from_file(tmp_path / "missing.data")
    with pytest.raises(DimensionError):
        TrainingData([[1.0], [2.0]], [[1.0]])
    with pytest.raises(InvalidInputError):
        TrainingData([[float("nan")]], [[1.0]])


def test_shuffle_merge_subset_minmax() -> None:
    x = np.arange(20, dtype=float).reshape(10, 2)
    y = x[:, :1] * 10
    data = TrainingData(x, y)
    data.shuffle(np.random.default_rng(0))
    assert not np.array_equal(data.input, x)
    np.testing.assert_array_equal(data.output, data.input[:, :1] * 10)  # pairs stay together
    merged = data.merge(data.subset(2, 3))
    assert merged.length == 13
    np.testing.assert_array_equal(merged.input[10:], data.input[2:5])
    assert (data.get_min_input(), data.get_max_input()) == (0.0, 19.0)
    assert (data.get_min_output(), data.get_max_output()) == (0.0, 180.0)
    with pytest.raises(InvalidInputError):
        data.subset(8, 5)
    with pytest.raises(DimensionError):
        data.merge(TrainingData([[1.0]], [[1.0]]))


def test_scale_train_data_global_range() -> None:
    data = TrainingData([[0.0, 10.0], [5.0, 20.0]], [[1.0], [3.0]])
    data.scale_input_train_data(-1, 1)
    np.testing.assert_allclose(data.input, [[-1.0, 0.0], [-0.5, 1.0]])
    data.scale_output_train_data(0, 1)
    np.testing.assert_allclose(data.output, [[0.0], [1.0]])


@given(datasets(), st.floats(-5, 0), st.floats(0.5, 5))
def test_scale_descale_roundtrip(data: TrainingData, lo: float, width: float) -> None:
    if data.length < 2:
        return
    net = Network.create_standard([data.num_input, 2, data.num_output])
    net.set_scaling_params(data, lo, lo + width, lo, lo + width)
    scaled = data.duplicate()
    net.scale_train(scaled)
    # constant columns (deviation 0) are left unscaled, as in libfann
    net.descale_train(scaled)
    np.testing.assert_allclose(scaled.input, data.input, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(scaled.output, data.output, rtol=1e-9, atol=1e-6)


def test_scaling_params_formula() -> None:
    data = TrainingData([[1.0], [3.0]], [[0.0], [4.0]])
    net = Network.create_standard([1, 1])
    net.set_scaling_params(data, -1, 1, 0, 1)
    # mean 2, deviation 1: x=3 -> ((3-2)/1 + 1) * (1-(-1))/2 + (-1) = 1
    assert net.scale_input([3.0])[0] == pytest.approx(1.0)
    assert net.descale_output(net.scale_output([4.0]))[0] == pytest.approx(4.0)
    fresh = Network.create_standard([1, 1])
    with pytest.raises(InvalidInputError, match="scaling"):
        fresh.scale_input([1.0])


# ------------------------------------------------------------------ .net
@given(networks())
def test_net_save_load_preserves_outputs(net: Network) -> None:
    back = Network.from_text(net.to_text())
    x = np.random.default_rng(0).uniform(-2, 2, (16, net.num_input))
    np.testing.assert_allclose(back.run_batch(x), net.run_batch(x), rtol=0, atol=1e-12)
    assert back.to_text() == net.to_text()
    assert back.get_connection_array() == net.get_connection_array()


def test_net_file_keeps_parameters(tmp_path: Path) -> None:
    net = Network.create_standard([2, 3, 1], seed=0)
    net.learning_rate = 0.25
    net.training_algorithm = "quickprop"
    net.bit_fail_limit = 0.125
    net.cascade_activation_steepnesses = [0.5, 1.0]
    net.set_scaling_params(TrainingData([[0.0, 1.0], [1.0, 3.0]], [[0.0], [1.0]]), -1, 1, -1, 1)
    net.save(tmp_path / "a.net")
    text = (tmp_path / "a.net").read_text()
    assert text.startswith("FANN_FLO_2.1\nnum_layers=3\nlearning_rate=0.250000\n")
    assert "scale_included=1" in text
    back = Network.from_file(tmp_path / "a.net")
    assert back.learning_rate == 0.25
    assert back.training_algorithm.name == "QUICKPROP"
    assert back.bit_fail_limit == 0.125
    assert back.cascade_activation_steepnesses == [0.5, 1.0]
    assert back.scale_in is not None
    np.testing.assert_allclose(back.scale_input([[1.0, 3.0]]), net.scale_input([[1.0, 3.0]]))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda t: "GARBAGE\n" + t, "not a FANN network"),
        (lambda t: t.replace("FANN_FLO_2.1", "FANN_FIX_2.1"), "fixed-point"),
        (lambda t: t.replace("num_layers=3", "num_layers=x"), "num_layers"),
        (lambda t: t.replace("layer_sizes=3 4 2", "layer_sizes=3 4"), "layer_sizes"),
        (lambda t: t.replace("(0, ", "(7, ", 1), "connections"),
        (lambda t: t.replace("(1, ", "(99, ", 1), "earlier layers"),
        (lambda t: t.rsplit("connections", 1)[0], "ends before"),
        (lambda t: t.replace("learning_rate=0.700000", "learning_rate=nan"), "finite"),
        (lambda t: "", "empty"),
    ],
)
def test_malformed_net_files(mutate: object, match: str) -> None:
    text = Network.create_standard([2, 3, 1], seed=0).to_text()
    with pytest.raises(InvalidInputError, match=match):
        Network.from_text(mutate(text))  # type: ignore[operator]


def test_missing_net_file(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        Network.from_file(tmp_path / "nope.net")


# ------------------------------------------------------------------ codec blobs
@given(networks(), st.sampled_from(list(CompressionLevel)))
def test_codec_roundtrip(net: Network, level: CompressionLevel) -> None:
    blob = net.to_bytes(level=level)
    back = Network.from_bytes(blob)
    assert back.get_connection_array()[:0] == []
    assert [s for s, _, _ in back.get_connection_array()] == [
        s for s, _, _ in net.get_connection_array()
    ]
    w0, w1 = net.get_weights(), back.get_weights()
    if level.is_quantized:
        bound = np.abs(w0).max() / (127 if level == CompressionLevel.QUANTIZED8 else 7)
        assert np.max(np.abs(w0 - w1)) <= bound * 0.5 + 1e-6
    else:
        np.testing.assert_array_equal(w0, w1)
    assert back.layer_sizes == net.layer_sizes


def test_codec_shrinks_and_rejects_garbage() -> None:
    net = Network.create_standard([64, 64, 10], seed=0)
    text_size = len(net.to_text())
    q8 = net.to_bytes(level="quantized8")
    assert len(q8) < text_size / 5
    assert len(net.to_bytes(level=CompressionLevel.HIGH)) < text_size
    with pytest.raises(CodecError):
        Network.from_bytes(b"xx")
    with pytest.raises(CodecError):
        Network.from_bytes(b"NOPE" + q8[4:])
    with pytest.raises(CodecError):
        Network.from_bytes(q8[:-10])
    with pytest.raises(CodecError):
        Network.from_bytes(q8[:12] + bytes(len(q8) - 12))
    with pytest.raises(CodecError):
        net.to_bytes(level="ultra")


@given(st.binary(max_size=300), st.integers(0, 400))
def test_mangled_blobs_raise_codec_error_only(noise: bytes, cut: int) -> None:
    blob = Network.create_standard([3, 2, 1], seed=0).to_bytes(level="fast")
    for candidate in (noise, blob[:cut] + noise, blob[: len(blob) // 2] + noise[:4]):
        with contextlib.suppress(CodecError):
            Network.from_bytes(candidate)


@given(st.text(alphabet="0123456789 .-e\n(),=abcdFANN_LOR", max_size=200))
def test_random_text_raises_invalid_input_only(text: str) -> None:
    for parse in (TrainingData.from_text, Network.from_text):
        with contextlib.suppress(InvalidInputError):
            parse(text)


@given(st.data())
def test_edited_net_files_parse_or_raise_invalid_input(data: st.DataObject) -> None:
    text = Network.create_sparse(0.6, [3, 4, 2], seed=1).to_text()
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text) - 1))
        ch = data.draw(st.sampled_from(list("0129-.e(), =\nx")))
        text = text[:pos] + ch + text[pos + 1 :]
    try:
        net = Network.from_text(text)
    except InvalidInputError:
        return
    net.run_batch(np.zeros((2, net.num_input)))  # whatever parsed must also run
