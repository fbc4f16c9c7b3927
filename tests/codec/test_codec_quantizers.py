"""Float16, Int8 and Binary vector quantizers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray

from ruvector_edge.codec import BinaryQuantizer, Float16Quantizer, Int8Quantizer
from ruvector_edge.errors import CodecError

finite_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
batches = st.tuples(st.integers(0, 6), st.integers(1, 40)).flatmap(
    lambda s: arrays(np.float32, s, elements=finite_f32)
)
small_batches = st.tuples(st.integers(1, 6), st.integers(1, 40)).flatmap(
    lambda s: arrays(np.float32, s, elements=st.floats(-100, 100, width=32))
)


# -- Float16 --------------------------------------------------------------------------------


def test_float16_round_trip_error() -> None:
    x = np.random.default_rng(0).standard_normal((100, 64)).astype(np.float32) * 10
    q = Float16Quantizer()
    codes = q.encode(x)
    assert codes.dtype == np.float16
    assert codes.shape == x.shape
    y = q.decode(codes)
    assert y.dtype == np.float32
    assert np.all(np.abs(x - y) <= np.abs(x) * 2.0**-11 + 2.0**-25)


def test_float16_single_vector_and_limits() -> None:
    q = Float16Quantizer()
    assert q.encode([1.0, 2.0, 65504.0]).shape == (3,)
    assert q.encode([65519.0])[0] == np.float16(65504)
    with pytest.raises(CodecError, match="float16 range"):
        q.encode([65520.0])
    with pytest.raises(CodecError, match="float16 range"):
        q.encode([[0.0, -1e6]])
    with pytest.raises(CodecError, match="non-finite"):
        q.encode([np.nan, 1.0])
    with pytest.raises(CodecError, match="dtype"):
        q.decode(np.zeros(3, dtype=np.float32))


# -- Int8 -----------------------------------------------------------------------------------


def check_int8_bound(x: NDArray[np.float32]) -> None:
    q = Int8Quantizer()
    codes, scales = q.encode(x)
    assert codes.dtype == np.int8
    assert codes.shape == x.shape
    assert scales.dtype == np.float32
    assert scales.shape == x.shape[:-1]
    y = q.decode(codes, scales)
    assert y.shape == x.shape
    err = np.abs(x.astype(np.float64) - y)
    assert np.all(err <= scales.astype(np.float64)[..., None] * (0.5 + 1e-4))
    assert np.all(np.abs(codes.astype(np.int16)) <= 127)


@settings(max_examples=100, deadline=None)
@given(x=batches)
def test_int8_error_at_most_half_scale(x: NDArray[np.float32]) -> None:
    check_int8_bound(x)


@settings(max_examples=50, deadline=None)
@given(x=small_batches)
def test_int8_error_at_most_half_scale_moderate(x: NDArray[np.float32]) -> None:
    check_int8_bound(x)
    check_int8_bound(x[0])


def test_int8_scale_is_maxabs_over_127() -> None:
    x = np.random.default_rng(1).standard_normal((50, 16)).astype(np.float32)
    _, scales = Int8Quantizer().encode(x)
    np.testing.assert_allclose(scales, np.abs(x).max(axis=1) / 127, rtol=1e-6)


def test_int8_zero_and_constant_vectors_are_exact() -> None:
    x = np.zeros((3, 8), dtype=np.float32)
    x[1] = 2.5
    x[2] = -1e-3
    q = Int8Quantizer()
    codes, scales = q.encode(x)
    assert scales[0] == 0.0
    np.testing.assert_array_equal(q.decode(codes, scales), x)


def test_int8_single_vector() -> None:
    q = Int8Quantizer()
    codes, scale = q.encode([0.5, -1.0, 0.25])
    assert codes.shape == (3,)
    assert scale.shape == ()
    np.testing.assert_allclose(q.decode(codes, scale), [0.5, -1.0, 0.25], atol=1 / 254 + 1e-7)


def test_int8_errors() -> None:
    q = Int8Quantizer()
    codes, scales = q.encode(np.ones((4, 5), dtype=np.float32))
    with pytest.raises(CodecError, match="scales"):
        q.decode(codes, scales[:3])
    with pytest.raises(CodecError, match="dtype"):
        q.decode(codes.astype(np.int16), scales)
    with pytest.raises(CodecError, match="finite"):
        q.decode(codes, np.full(4, np.inf, dtype=np.float32))
    with pytest.raises(CodecError, match="non-finite"):
        q.encode([[1.0, np.inf]])
    with pytest.raises(CodecError, match="1-D"):
        q.encode(np.zeros((2, 2, 2)))
    with pytest.raises(CodecError, match="at least one dimension"):
        q.encode(np.zeros((2, 0)))


# -- Binary ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 7, 8, 9, 64, 384, 100])
def test_binary_encode_decode_signs(dim: int) -> None:
    x = np.random.default_rng(dim).standard_normal((10, dim)).astype(np.float32)
    q = BinaryQuantizer()
    codes = q.encode(x)
    assert codes.dtype == np.uint8
    assert codes.shape == (10, (dim + 7) // 8)
    y = q.decode(codes, dim)
    np.testing.assert_array_equal(y, np.where(x > 0, 1.0, -1.0))
    scales = np.abs(x).mean(axis=1)
    np.testing.assert_allclose(q.decode(codes, dim, scales), y * scales[:, None])
    one = q.encode(x[0])
    assert one.shape == ((dim + 7) // 8,)
    np.testing.assert_array_equal(q.decode(one, dim), y[0])


def test_binary_scales_minimize_reconstruction_error() -> None:
    x = np.random.default_rng(3).standard_normal((20, 50)).astype(np.float32)
    q = BinaryQuantizer()
    codes, scales = q.encode_with_scales(x)
    np.testing.assert_array_equal(codes, q.encode(x))
    np.testing.assert_allclose(scales, np.abs(x).mean(axis=1), rtol=1e-6)
    best = ((q.decode(codes, 50, scales) - x) ** 2).sum()
    for factor in (0.9, 1.1):
        assert best < ((q.decode(codes, 50, scales * factor) - x) ** 2).sum()
    one_codes, one_scale = q.encode_with_scales(x[0])
    assert one_scale.shape == ()
    np.testing.assert_allclose(q.decode(one_codes, 50, one_scale), q.decode(codes, 50, scales)[0])


def naive_hamming(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> int:
    return sum(bin(int(u) ^ int(v)).count("1") for u, v in zip(a, b, strict=True))


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 8),
    nq=st.integers(1, 4),
    dim=st.integers(1, 130),
)
def test_hamming_matches_naive_count(data: st.DataObject, n: int, nq: int, dim: int) -> None:
    q = BinaryQuantizer()
    elements = st.floats(-1, 1, width=32)
    x = data.draw(arrays(np.float32, (n, dim), elements=elements))
    queries = data.draw(arrays(np.float32, (nq, dim), elements=elements))
    codes, qcodes = q.encode(x), q.encode(queries)
    batch = q.hamming_distances(qcodes, codes)
    assert batch.shape == (nq, n)
    for i in range(nq):
        single = q.hamming_distances(qcodes[i], codes)
        assert single.shape == (n,)
        want = [naive_hamming(qcodes[i], codes[j]) for j in range(n)]
        assert single.tolist() == want
        assert batch[i].tolist() == want
        # Hamming distance between sign codes counts coordinates whose signs differ.
        assert want == [int(np.sum((x[j] > 0) != (queries[i] > 0))) for j in range(n)]


def test_hamming_uses_int64_and_handles_large_batches() -> None:
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 256, size=(3000, 48), dtype=np.uint8)
    d = BinaryQuantizer.hamming_distances(codes[:700], codes)
    assert d.dtype == np.int64
    assert d.shape == (700, 3000)
    assert np.all(np.diag(d[:, :700]) == 0)
    assert d[5, 9] == naive_hamming(codes[5], codes[9])


def test_binary_errors() -> None:
    q = BinaryQuantizer()
    codes = q.encode(np.ones((2, 10)))
    with pytest.raises(CodecError, match="needs"):
        q.decode(codes, 17)
    with pytest.raises(CodecError, match="dim"):
        q.decode(codes, 0)
    with pytest.raises(CodecError, match="dtype"):
        q.decode(codes.astype(np.int8), 10)
    with pytest.raises(CodecError, match="bytes per vector"):
        q.hamming_distances(codes[0, :1], codes)
    with pytest.raises(CodecError, match="scales"):
        q.decode(codes, 10, np.ones(3))
    with pytest.raises(CodecError, match="non-finite"):
        q.encode([np.nan])
