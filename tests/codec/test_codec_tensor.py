"""TensorCodec: round trips, quantization bounds, edge cases and documented errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from numpy.typing import NDArray

from ruvector_edge.codec import (
    DEFAULT_BLOCK_SIZE,
    BlobKind,
    CompressionLevel,
    TensorCodec,
    inspect_blob,
)
from ruvector_edge.errors import CodecError

ALL_LEVELS = list(CompressionLevel)
LOSSLESS = [CompressionLevel.NONE, CompressionLevel.FAST, CompressionLevel.HIGH]
QUANTIZED = [CompressionLevel.QUANTIZED8, CompressionLevel.QUANTIZED4]

finite_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
float_tensors = arrays(
    np.float32, array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6), elements=finite_f32
)
# Data with a realistic spread of magnitudes inside each block (not just extremes).
moderate_tensors = arrays(
    np.float32,
    array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=40),
    elements=st.floats(-1e6, 1e6, width=32),
)


def per_element_scale(blob: bytes) -> NDArray[np.float64]:
    """The recorded scale that applies to each element of a quantized tensor blob."""
    info = inspect_blob(blob)
    assert info.scales is not None
    return np.repeat(info.scales.astype(np.float64), info.block_size)[: info.numel]


def assert_within_half_scale(x: NDArray[Any], y: NDArray[np.float32], blob: bytes) -> None:
    scale = per_element_scale(blob)
    err = np.abs(x.astype(np.float64).reshape(-1) - y.astype(np.float64).reshape(-1))
    # scale/2 plus float32 rounding of x*inv and code*scale (well under 1e-4 * scale).
    assert np.all(err <= scale * (0.5 + 1e-4)), float(np.max(err / np.maximum(scale, 1e-300)))


# -- lossless laws ------------------------------------------------------------------------


@pytest.mark.parametrize("level", LOSSLESS)
@settings(max_examples=60, deadline=None)
@given(x=float_tensors)
def test_lossless_tensor_round_trip(level: CompressionLevel, x: NDArray[np.float32]) -> None:
    codec = TensorCodec(level)
    y = codec.decompress_tensor(codec.compress_tensor(x))
    assert y.dtype == np.float32
    assert y.shape == x.shape
    assert np.array_equal(y.view(np.uint32), x.view(np.uint32))  # bit-exact, -0.0 included


@pytest.mark.parametrize("level", ALL_LEVELS)
@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=2000))
def test_bytes_round_trip(level: CompressionLevel, data: bytes) -> None:
    codec = TensorCodec(level)
    assert codec.decompress(codec.compress(data)) == data


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_bytes_round_trip_compressible(level: CompressionLevel) -> None:
    data = b"swarm agents share patterns " * 500
    codec = TensorCodec(level)
    blob = codec.compress(data)
    assert codec.decompress(blob) == data
    if level is not CompressionLevel.NONE:
        assert len(blob) < len(data) / 10


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_bytes_like_inputs(level: CompressionLevel) -> None:
    codec = TensorCodec(level)
    data = bytes(range(256)) * 3
    for form in (data, bytearray(data), memoryview(data)):
        blob = codec.compress(form)
        assert codec.decompress(blob) == data
        assert codec.decompress(bytearray(blob)) == data
        assert codec.decompress(memoryview(blob)) == data


def test_compress_rejects_non_bytes() -> None:
    with pytest.raises(CodecError, match="bytes"):
        TensorCodec().compress("text")  # type: ignore[arg-type]


@pytest.mark.parametrize("level", QUANTIZED)
def test_quantized_level_compresses_bytes_losslessly_with_lz4(level: CompressionLevel) -> None:
    data = b"abc" * 100 + bytes(range(200))
    blob = TensorCodec(level).compress(data)
    info = inspect_blob(blob)
    assert info.kind is BlobKind.BYTES
    assert info.level is CompressionLevel.FAST
    assert TensorCodec(CompressionLevel.NONE).decompress(blob) == data


# -- quantization laws --------------------------------------------------------------------


@pytest.mark.parametrize("level", QUANTIZED)
@settings(max_examples=60, deadline=None)
@given(x=float_tensors, block_size=st.sampled_from([1, 3, 8, DEFAULT_BLOCK_SIZE]))
def test_quantized_error_within_half_scale(
    level: CompressionLevel, x: NDArray[np.float32], block_size: int
) -> None:
    codec = TensorCodec(level, block_size=block_size)
    blob = codec.compress_tensor(x)
    y = codec.decompress_tensor(blob)
    assert y.shape == x.shape
    assert y.dtype == np.float32
    assert np.isfinite(y).all()
    assert_within_half_scale(x, y, blob)


@pytest.mark.parametrize("level", QUANTIZED)
@settings(max_examples=40, deadline=None)
@given(x=moderate_tensors, block_size=st.sampled_from([4, 16, 64]))
def test_quantized_error_within_half_scale_moderate(
    level: CompressionLevel, x: NDArray[np.float32], block_size: int
) -> None:
    codec = TensorCodec(level, block_size=block_size)
    blob = codec.compress_tensor(x)
    assert_within_half_scale(x, codec.decompress_tensor(blob), blob)


@pytest.mark.parametrize(
    ("level", "qmax"), [(CompressionLevel.QUANTIZED8, 127), (CompressionLevel.QUANTIZED4, 7)]
)
def test_scale_is_block_maxabs_over_qmax(level: CompressionLevel, qmax: int) -> None:
    x = np.random.default_rng(3).standard_normal(1000).astype(np.float32)
    blob = TensorCodec(level, block_size=100).compress_tensor(x)
    info = inspect_blob(blob)
    assert info.scales is not None
    want = np.abs(x).reshape(10, 100).max(axis=1) / np.float32(qmax)
    np.testing.assert_allclose(info.scales, want, rtol=1e-6)


def test_rounding_is_to_nearest_not_truncation() -> None:
    # With scale 1/127 * 127 = 1, 0.6 must become code 1, not 0.
    x = np.array([127.0, 0.6, -0.6, 0.4, 1.5, -1.5, 2.5], dtype=np.float32)
    codec = TensorCodec(CompressionLevel.QUANTIZED8)
    y = codec.decompress_tensor(codec.compress_tensor(x))
    np.testing.assert_array_equal(y, np.rint(x))


def test_quantized_ratios_meet_targets() -> None:
    x = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
    q8 = TensorCodec(CompressionLevel.QUANTIZED8).compress_tensor(x)
    q4 = TensorCodec(CompressionLevel.QUANTIZED4).compress_tensor(x)
    assert x.nbytes / len(q8) >= 3.9
    assert x.nbytes / len(q4) >= 7.5


@pytest.mark.parametrize("n", [1, 2, 255, 256, 257, 511, 1001])
def test_q4_odd_and_partial_block_lengths(n: int) -> None:
    x = np.linspace(-3, 5, n, dtype=np.float32)
    codec = TensorCodec(CompressionLevel.QUANTIZED4)
    blob = codec.compress_tensor(x)
    assert inspect_blob(blob).payload_size == (n + 1) // 2
    assert_within_half_scale(x, codec.decompress_tensor(blob), blob)


# -- edge cases ---------------------------------------------------------------------------


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize("shape", [(0,), (3, 0, 2), (0, 0)])
def test_empty_tensor(level: CompressionLevel, shape: tuple[int, ...]) -> None:
    codec = TensorCodec(level)
    y = codec.decompress_tensor(codec.compress_tensor(np.zeros(shape, dtype=np.float32)))
    assert y.shape == shape
    assert y.dtype == np.float32


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize(
    "value", [0.0, -0.0, 1.0, -2.5, 3.0e38, -3.4028235e38, 1e-40, -7e-45, 123456.789]
)
@pytest.mark.parametrize("shape", [(), (5,), (300,), (4, 129)])
def test_constant_tensor_round_trips_exactly(
    level: CompressionLevel, value: float, shape: tuple[int, ...]
) -> None:
    x = np.full(shape, value, dtype=np.float32)
    codec = TensorCodec(level)
    y = codec.decompress_tensor(codec.compress_tensor(x))
    assert y.shape == shape
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("level", QUANTIZED)
def test_zero_blocks_have_zero_scale(level: CompressionLevel) -> None:
    x = np.zeros(1000, dtype=np.float32)
    x[600:700] = np.linspace(-1, 1, 100)
    blob = TensorCodec(level).compress_tensor(x)
    info = inspect_blob(blob)
    assert info.scales is not None
    assert info.scales[0] == 0.0
    assert info.scales[3] == 0.0
    y = TensorCodec().decompress_tensor(blob)
    assert not y[:512].any()


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_scalar_0d(level: CompressionLevel) -> None:
    codec = TensorCodec(level)
    for value in (np.float32(3.25), 2.0, np.array(-1.5)):
        y = codec.decompress_tensor(codec.compress_tensor(value))
        assert y.shape == ()
        assert y == np.float32(value)


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize("shape", [(7,), (2, 3), (2, 1, 3, 1, 2), (1,) * 12, (3, 2, 2, 2, 2, 2, 2)])
def test_any_ndim(level: CompressionLevel, shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    codec = TensorCodec(level)
    blob = codec.compress_tensor(x)
    assert inspect_blob(blob).shape == shape
    y = codec.decompress_tensor(blob)
    assert y.shape == shape
    if not level.is_quantized:
        np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize(
    "x",
    [
        np.arange(-50, 50, dtype=np.int64).reshape(10, 10),
        np.arange(20, dtype=np.uint8),
        np.array([True, False, True]),
        np.linspace(0, 1, 33, dtype=np.float64),
        np.linspace(-4, 4, 17, dtype=np.float16),
        [[1, 2], [3, 4]],
        [0.5, 1.5],
    ],
    ids=["int64", "uint8", "bool", "float64", "float16", "nested-list", "list"],
)
def test_non_float32_input_is_converted(level: CompressionLevel, x: Any) -> None:
    want = np.asarray(x).astype(np.float32)
    codec = TensorCodec(level)
    blob = codec.compress_tensor(x)
    y = codec.decompress_tensor(blob)
    assert y.dtype == np.float32
    assert y.shape == want.shape
    if level.is_quantized:
        assert_within_half_scale(want, y, blob)
    else:
        np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_non_contiguous_input(level: CompressionLevel) -> None:
    base = np.random.default_rng(2).standard_normal((40, 30)).astype(np.float32)
    codec = TensorCodec(level)
    for view in (base[:, ::3], base.T, base[::-2, 5:9], np.asfortranarray(base)):
        assert not view.flags.c_contiguous
        blob = codec.compress_tensor(view)
        y = codec.decompress_tensor(blob)
        assert y.shape == view.shape
        if level.is_quantized:
            assert_within_half_scale(np.ascontiguousarray(view), y, blob)
        else:
            np.testing.assert_array_equal(y, view)


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 1, 299, 777])
def test_non_finite_input_rejected_at_every_level(
    level: CompressionLevel, bad: float, where: int
) -> None:
    x = np.ones(778, dtype=np.float32)
    x[where] = bad
    with pytest.raises(CodecError, match="non-finite"):
        TensorCodec(level).compress_tensor(x)


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_float64_overflow_is_non_finite(level: CompressionLevel) -> None:
    with pytest.raises(CodecError, match="non-finite"):
        TensorCodec(level).compress_tensor(np.array([1.0, 1e300]))


@pytest.mark.parametrize(
    "bad",
    [np.array([1 + 2j]), np.array(["a", "b"]), np.array([object()]), [[1, 2], [3]], "text"],
    ids=["complex", "str", "object", "ragged", "string"],
)
def test_non_numeric_input_rejected(bad: Any) -> None:
    with pytest.raises(CodecError):
        TensorCodec().compress_tensor(bad)


def test_decoded_arrays_are_writable_and_independent() -> None:
    x = np.arange(10, dtype=np.float32)
    for level in ALL_LEVELS:
        codec = TensorCodec(level)
        blob = codec.compress_tensor(x)
        y = codec.decompress_tensor(blob)
        y[0] = 42.0
        assert codec.decompress_tensor(blob)[0] != 42.0


# -- cross-instance decoding and kind checks ------------------------------------------------


@pytest.mark.parametrize("writer", ALL_LEVELS)
@pytest.mark.parametrize("reader", ALL_LEVELS)
def test_any_codec_decodes_any_level(writer: CompressionLevel, reader: CompressionLevel) -> None:
    x = np.random.default_rng(4).standard_normal((17, 19)).astype(np.float32)
    data = b"payload bytes " * 20
    wcodec, rcodec = TensorCodec(writer, block_size=32), TensorCodec(reader)
    tensor_blob = wcodec.compress_tensor(x)
    y = rcodec.decompress_tensor(tensor_blob)
    np.testing.assert_array_equal(y, wcodec.decompress_tensor(tensor_blob))
    if not writer.is_quantized:
        np.testing.assert_array_equal(y, x)
    assert rcodec.decompress(wcodec.compress(data)) == data


def test_kind_mismatch_is_an_error() -> None:
    codec = TensorCodec()
    with pytest.raises(CodecError, match="decompress_tensor"):
        codec.decompress(codec.compress_tensor(np.ones(3)))
    with pytest.raises(CodecError, match=r"decompress\(\)"):
        codec.decompress_tensor(codec.compress(b"abc"))


# -- estimated_ratio ----------------------------------------------------------------------


def test_estimated_ratio_tracks_the_data_compressed() -> None:
    rng = np.random.default_rng(5)
    noisy = rng.standard_normal(50_000).astype(np.float32)
    smooth = np.sin(np.arange(50_000, dtype=np.float32) * 1e-3)
    a, b = TensorCodec(CompressionLevel.FAST), TensorCodec(CompressionLevel.FAST)
    prior = a.estimated_ratio()
    assert prior == b.estimated_ratio()
    a.compress_tensor(noisy)
    b.compress_tensor(smooth)
    assert a.estimated_ratio() != prior
    assert b.estimated_ratio() > a.estimated_ratio() * 1.2
    before = a.estimated_ratio()
    a.compress(bytes(100_000))  # highly compressible bytes pull the running ratio up
    assert a.estimated_ratio() > before * 1.4


def test_estimated_ratio_is_running_totals() -> None:
    codec = TensorCodec(CompressionLevel.HIGH)
    x = np.random.default_rng(6).standard_normal(10_000).astype(np.float32)
    data = b"xyz" * 5000
    b1 = codec.compress_tensor(x)
    b2 = codec.compress(data)
    assert codec.estimated_ratio() == pytest.approx((x.nbytes + len(data)) / (len(b1) + len(b2)))
    codec.decompress(b2)  # decoding does not count
    assert codec.estimated_ratio() == pytest.approx((x.nbytes + len(data)) / (len(b1) + len(b2)))


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_estimated_ratio_before_use_matches_reality_on_random_data(level: CompressionLevel) -> None:
    x = np.random.default_rng(9).standard_normal(1 << 20).astype(np.float32)
    fresh = TensorCodec(level)
    prior = fresh.estimated_ratio()
    actual = x.nbytes / len(TensorCodec(level).compress_tensor(x))
    # Exact for layout-determined levels; FAST/HIGH use a smaller random reference tensor.
    assert prior == pytest.approx(actual, rel=0.05)


def test_estimated_ratio_prior_depends_on_block_size() -> None:
    small = TensorCodec(CompressionLevel.QUANTIZED8, block_size=16).estimated_ratio()
    large = TensorCodec(CompressionLevel.QUANTIZED8, block_size=1024).estimated_ratio()
    assert small < large < 4.0
    assert small == pytest.approx(4 / (1 + 4 / 16), rel=1e-3)


def test_estimated_ratio_ignores_empty_input() -> None:
    codec = TensorCodec(CompressionLevel.QUANTIZED4)
    prior = codec.estimated_ratio()
    codec.compress_tensor(np.zeros(0, dtype=np.float32))
    assert codec.estimated_ratio() == prior


# -- limits and constructor validation ------------------------------------------------------


def test_max_decompressed_size_limits_decoding() -> None:
    x = np.ones(1000, dtype=np.float32)
    for level in ALL_LEVELS:
        blob = TensorCodec(level).compress_tensor(x)
        with pytest.raises(CodecError, match="exceeds the limit"):
            TensorCodec(max_decompressed_size=3999).decompress_tensor(blob)
        assert TensorCodec(max_decompressed_size=4000).decompress_tensor(blob).shape == (1000,)
    blob = TensorCodec().compress(bytes(5000))
    with pytest.raises(CodecError, match="exceeds the limit"):
        TensorCodec(max_decompressed_size=4999).decompress(blob)


def test_max_decompressed_size_limits_compression() -> None:
    codec = TensorCodec(max_decompressed_size=100)
    with pytest.raises(CodecError, match="max_decompressed_size"):
        codec.compress(bytes(101))
    with pytest.raises(CodecError, match="max_decompressed_size"):
        codec.compress_tensor(np.zeros(26, dtype=np.float32))
    assert codec.decompress(codec.compress(bytes(100))) == bytes(100)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"block_size": 0},
        {"block_size": -4},
        {"block_size": 1 << 25},
        {"block_size": 2.5},
        {"block_size": True},
        {"max_decompressed_size": -1},
        {"max_decompressed_size": "big"},
    ],
)
def test_constructor_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(CodecError):
        TensorCodec(**kwargs)


@pytest.mark.parametrize("level", [CompressionLevel.FAST, CompressionLevel.HIGH])
def test_shuffle_can_be_disabled(level: CompressionLevel) -> None:
    smooth = np.sin(np.arange(100_000, dtype=np.float32) * 1e-3)
    plain = TensorCodec(level, shuffle=False)
    blob = plain.compress_tensor(smooth)
    assert not inspect_blob(blob).shuffled
    np.testing.assert_array_equal(TensorCodec(level).decompress_tensor(blob), smooth)
    shuffled = TensorCodec(level).compress_tensor(smooth)
    assert inspect_blob(shuffled).shuffled
    assert len(shuffled) < 0.8 * len(blob)
    assert plain.estimated_ratio() < TensorCodec(level).estimated_ratio() * 1.01


def test_repr_and_properties() -> None:
    codec = TensorCodec("quantized8", block_size=64, max_decompressed_size=1 << 20)
    assert codec.shuffle
    assert codec.block_size == 64
    assert codec.max_decompressed_size == 1 << 20
    assert "QUANTIZED8" in repr(codec)
