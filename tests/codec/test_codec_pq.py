"""ProductQuantizer: training, coding, ADC distances, serialization and errors."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from ruvector_edge.codec import ProductQuantizer
from ruvector_edge.errors import CodecError


def clustered(
    n: int, dim: int = 32, clusters: int = 200, noise: float = 0.2, seed: int = 1
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32) * 3
    x = centers[rng.integers(clusters, size=n)] + noise * rng.standard_normal((n, dim))
    queries = centers[rng.integers(clusters, size=40)] + noise * rng.standard_normal((40, dim))
    return x.astype(np.float32), queries.astype(np.float32)


@pytest.fixture(scope="module")
def trained() -> tuple[ProductQuantizer, NDArray[np.float32], NDArray[np.float32]]:
    x, queries = clustered(4000)
    pq = ProductQuantizer(32, 8, nbits=8, seed=0)
    pq.train(x)
    return pq, x, queries


def test_reconstruction_error_far_below_variance(
    trained: tuple[ProductQuantizer, NDArray[np.float32], NDArray[np.float32]],
) -> None:
    pq, x, _ = trained
    codes = pq.encode(x)
    assert codes.dtype == np.uint8
    assert codes.shape == (4000, 8)
    y = pq.decode(codes)
    assert y.dtype == np.float32
    assert y.shape == x.shape
    rel_mse = float(((x - y) ** 2).mean() / x.var())
    assert rel_mse < 0.1


def test_adc_is_exact_distance_to_reconstruction(
    trained: tuple[ProductQuantizer, NDArray[np.float32], NDArray[np.float32]],
) -> None:
    pq, x, queries = trained
    codes = pq.encode(x[:500])
    recon = pq.decode(codes)
    for q in queries[:5]:
        adc = pq.adc_distances(q, codes)
        exact = ((recon.astype(np.float64) - q) ** 2).sum(axis=1)
        np.testing.assert_allclose(adc, exact, rtol=1e-4, atol=1e-3)


def test_adc_ranking_recalls_exact_neighbours(
    trained: tuple[ProductQuantizer, NDArray[np.float32], NDArray[np.float32]],
) -> None:
    pq, x, queries = trained
    codes = pq.encode(x)
    at10, at100 = [], []
    for q in queries:
        exact = np.argsort(((x - q) ** 2).sum(axis=1))[:10]
        approx = np.argsort(pq.adc_distances(q, codes))
        at10.append(len(set(exact) & set(approx[:10])) / 10)
        at100.append(len(set(exact) & set(approx[:100])) / 10)
    assert np.mean(at10) > 0.5
    assert np.mean(at100) > 0.9


def test_distance_table_shapes(
    trained: tuple[ProductQuantizer, NDArray[np.float32], NDArray[np.float32]],
) -> None:
    pq, _, queries = trained
    assert pq.distance_table(queries[0]).shape == (8, 256)
    batch = pq.distance_table(queries[:3])
    assert batch.shape == (3, 8, 256)
    np.testing.assert_allclose(batch[1], pq.distance_table(queries[1]), rtol=1e-6)
    with pytest.raises(CodecError, match="single query"):
        pq.adc_distances(queries[:2], pq.encode(queries))


def test_single_vector_encode_decode(
    trained: tuple[ProductQuantizer, NDArray[np.float32], NDArray[np.float32]],
) -> None:
    pq, x, _ = trained
    code = pq.encode(x[0])
    assert code.shape == (8,)
    np.testing.assert_array_equal(code, pq.encode(x[:1])[0])
    assert pq.decode(code).shape == (32,)


def test_training_is_deterministic_per_seed() -> None:
    x, _ = clustered(600, dim=16, clusters=20)
    a, b, c = (ProductQuantizer(16, 4, nbits=4, seed=s) for s in (7, 7, 8))
    for pq in (a, b, c):
        pq.train(x)
    np.testing.assert_array_equal(a.codebooks, b.codebooks)
    assert not np.array_equal(a.codebooks, c.codebooks)
    assert int(a.encode(x).max()) < 16


def test_degenerate_training_data_does_not_break() -> None:
    x = np.zeros((300, 8), dtype=np.float32)
    x[:3] = 1.0  # only two distinct points for 256 centroids: empty clusters everywhere
    pq = ProductQuantizer(8, 2, seed=0)
    pq.train(x)
    assert np.isfinite(pq.codebooks).all()
    np.testing.assert_array_equal(pq.decode(pq.encode(x)), x)


def test_serialization_round_trip(
    trained: tuple[ProductQuantizer, NDArray[np.float32], NDArray[np.float32]],
) -> None:
    pq, x, _ = trained
    blob = pq.to_bytes()
    clone = ProductQuantizer.from_bytes(blob)
    assert (clone.dim, clone.m, clone.nbits, clone.is_trained) == (32, 8, 8, True)
    np.testing.assert_array_equal(clone.codebooks, pq.codebooks)
    np.testing.assert_array_equal(clone.encode(x[:100]), pq.encode(x[:100]))
    assert ProductQuantizer.from_bytes(bytearray(blob)).dim == 32


def test_from_bytes_rejects_damage() -> None:
    pq = ProductQuantizer(4, 2, nbits=2)
    pq.train(np.random.default_rng(0).standard_normal((20, 4)))
    blob = pq.to_bytes()
    for cut in range(len(blob)):
        with pytest.raises(CodecError):
            ProductQuantizer.from_bytes(blob[:cut])
    for pos in range(len(blob)):
        bad = bytearray(blob)
        bad[pos] ^= 0x5A
        with pytest.raises(CodecError):
            ProductQuantizer.from_bytes(bytes(bad))
    with pytest.raises(CodecError):
        ProductQuantizer.from_bytes(blob + b"\x00")
    with pytest.raises(CodecError, match="bad magic"):
        ProductQuantizer.from_bytes(b"XXXX" + blob[4:])


def test_codebooks_are_read_only(
    trained: tuple[ProductQuantizer, NDArray[np.float32], NDArray[np.float32]],
) -> None:
    pq, _, _ = trained
    assert pq.codebooks.shape == (8, 256, 4)
    with pytest.raises(ValueError, match="read-only"):
        pq.codebooks[0, 0, 0] = 1.0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((30, 8), "divisible"),
        ((32, 0), "divisible"),
        ((0, 1), "dim"),
        ((32, 8, 9), "nbits"),
        ((32, 8, 0), "nbits"),
        ((32.0, 8), "int"),
    ],
)
def test_constructor_errors(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(CodecError, match=match):
        ProductQuantizer(*args)  # type: ignore[arg-type]


def test_usage_errors() -> None:
    pq = ProductQuantizer(8, 2, nbits=4)
    assert not pq.is_trained
    x = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    for call in (
        lambda: pq.encode(x),
        lambda: pq.decode(np.zeros((1, 2), np.uint8)),
        lambda: pq.adc_distances(x[0], np.zeros((1, 2), np.uint8)),
        lambda: pq.distance_table(x[0]),
        pq.to_bytes,
        lambda: pq.codebooks,
    ):
        with pytest.raises(CodecError, match="not trained"):
            call()
    with pytest.raises(CodecError, match="too few training samples"):
        pq.train(x[:15])
    with pytest.raises(CodecError, match="dimension"):
        pq.train(x[:, :6])
    bad = x.copy()
    bad[3, 3] = np.nan
    with pytest.raises(CodecError, match="non-finite"):
        pq.train(bad)
    pq.train(x)
    with pytest.raises(CodecError, match="dimension"):
        pq.encode(x[:, :4])
    with pytest.raises(CodecError, match="non-finite"):
        pq.encode(bad)
    with pytest.raises(CodecError, match="shape"):
        pq.decode(np.zeros((3, 3), np.uint8))
    with pytest.raises(CodecError, match=r"\[0, 16\)"):
        pq.decode(np.full((1, 2), 16, np.uint8))
    with pytest.raises(CodecError, match="integers"):
        pq.decode(np.zeros((1, 2), np.float32))
    with pytest.raises(CodecError, match="dimension"):
        pq.adc_distances(x[0, :4], pq.encode(x))
