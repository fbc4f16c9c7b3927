"""Codec benchmark: TensorCodec levels against raw lz4/zstd, and the vector-tier quantizers.

Run: ``python -m benchmarks.bench_codec`` (``BENCH_QUICK=1`` for a short run).
MB/s are megabytes (1e6 bytes) of float32 input per second; ``c+d MB/s`` divides the
input size by the sum of compress and decompress time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import lz4.block
import numpy as np
import zstandard
from numpy.typing import NDArray
from rich.console import Console

from benchmarks.harness import QUICK, Report, measure, median_time
from ruvector_edge.codec import (
    BinaryQuantizer,
    CompressionLevel,
    Float16Quantizer,
    Int8Quantizer,
    ProductQuantizer,
    TensorCodec,
)
from ruvector_edge.codec.tensor import ZSTD_LEVEL

COLUMNS = (
    "data",
    "method",
    "ratio",
    "compress MB/s",
    "decompress MB/s",
    "c+d MB/s",
    "max abs err",
    "rel mse",
    "baseline",
    "ratio vs base",
    "c+d vs base",
    "train s",
    "scan Mvec/s",
)
N_TENSOR = 1 << 20
DIM = 384
N_VECTORS = 20_000 if QUICK else 100_000
N_TRAIN = 10_000
PQ_M = 48
MIN_TIME = 0.05 if QUICK else 0.2


def _mb(nbytes: int, seconds: float) -> float:
    return nbytes / 1e6 / seconds


def _tensors() -> dict[str, NDArray[np.float32]]:
    rng = np.random.default_rng(0)
    t = np.arange(N_TENSOR, dtype=np.float64)
    smooth = np.sin(t * 1e-3) + 0.5 * np.sin(t * 3.7e-3) + 0.25 * np.sin(t * 1.3e-2)
    return {
        "random normal 1M": rng.standard_normal(N_TENSOR, dtype=np.float32),
        "sum of sines 1M": smooth.astype(np.float32),
    }


def _row(
    report: Report,
    *,
    data: str,
    method: str,
    nbytes: int,
    blob_len: int,
    t_c: float,
    t_d: float,
    err: float,
) -> dict[str, float]:
    row = {
        "ratio": nbytes / blob_len,
        "compress MB/s": _mb(nbytes, t_c),
        "decompress MB/s": _mb(nbytes, t_d),
        "c+d MB/s": _mb(nbytes, t_c + t_d),
        "max abs err": err,
    }
    report.add(data=data, method=method, **row)
    return row


def _baselines(report: Report, data: str, x: NDArray[np.float32]) -> dict[str, dict[str, float]]:
    """Raw-bytes lz4.block and zstd (same level as HIGH) on the same tensor."""
    raw = x.tobytes()
    n = x.nbytes
    zc = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    zd = zstandard.ZstdDecompressor()
    lz_blob = lz4.block.compress(raw, store_size=False)
    z_blob = zc.compress(raw)
    return {
        "lz4": _row(
            report,
            data=data,
            method="lz4.block (raw bytes)",
            nbytes=n,
            blob_len=len(lz_blob),
            t_c=measure(lambda: lz4.block.compress(raw, store_size=False), min_time=MIN_TIME),
            t_d=measure(
                lambda: lz4.block.decompress(lz_blob, uncompressed_size=n), min_time=MIN_TIME
            ),
            err=0.0,
        ),
        "zstd": _row(
            report,
            data=data,
            method=f"zstd-{ZSTD_LEVEL} (raw bytes)",
            nbytes=n,
            blob_len=len(z_blob),
            t_c=measure(lambda: zc.compress(raw), min_time=MIN_TIME),
            t_d=measure(lambda: zd.decompress(z_blob), min_time=MIN_TIME),
            err=0.0,
        ),
    }


def _level(
    report: Report,
    data: str,
    x: NDArray[np.float32],
    level: CompressionLevel,
    *,
    shuffle: bool = True,
) -> dict[str, float]:
    codec = TensorCodec(level, shuffle=shuffle)
    blob = codec.compress_tensor(x)
    err = float(np.max(np.abs(codec.decompress_tensor(blob) - x)))
    return _row(
        report,
        data=data,
        method=f"TensorCodec {level.name}" + ("" if shuffle else " (no shuffle)"),
        nbytes=x.nbytes,
        blob_len=len(blob),
        t_c=measure(lambda: codec.compress_tensor(x), min_time=MIN_TIME),
        t_d=measure(lambda: codec.decompress_tensor(blob), min_time=MIN_TIME),
        err=err,
    )


def bench_tensors(report: Report) -> None:
    """Every level and the raw lz4/zstd baselines on two 1M-element tensors."""
    for data, x in _tensors().items():
        base = _baselines(report, data, x)
        variants = [(level, True) for level in CompressionLevel]
        variants.insert(2, (CompressionLevel.FAST, False))
        for level, shuffle in variants:
            row = _level(report, data, x, level, shuffle=shuffle)
            if level is not CompressionLevel.NONE:
                ref_name = "zstd" if level is CompressionLevel.HIGH else "lz4"
                ref = base[ref_name]
                report.rows[-1].update(
                    {
                        "baseline": ref_name,
                        "ratio vs base": row["ratio"] / ref["ratio"],
                        "c+d vs base": row["c+d MB/s"] / ref["c+d MB/s"],
                    }
                )
            if data.startswith("random") and level is CompressionLevel.QUANTIZED8:
                report.target("Q8 ratio random >= 3.9", row["ratio"], 3.9)
                report.target("Q8 compress+decompress MB/s >= 500", row["c+d MB/s"], 500.0)
            if data.startswith("random") and level is CompressionLevel.QUANTIZED4:
                report.target("Q4 ratio random >= 7.5", row["ratio"], 7.5)


def _embeddings(n: int, seed: int) -> NDArray[np.float32]:
    """Unit-norm vectors around 1000 random centres (an embedding-like distribution)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((1000, DIM)).astype(np.float32)
    x = centers[rng.integers(1000, size=n)] + 0.5 * rng.standard_normal((n, DIM), np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _tier_row(
    report: Report,
    *,
    method: str,
    x: NDArray[np.float32],
    code_bytes: int,
    encode: Callable[[], object],
    decode: Callable[[], NDArray[np.float32]],
    **extra: float,
) -> None:
    y = decode()
    diff = (y - x).astype(np.float64)
    t_e = median_time(encode, repeat=3)
    t_d = median_time(decode, repeat=3)
    report.add(
        data=f"{x.shape[0] // 1000}k x {DIM}",
        method=method,
        ratio=x.nbytes / code_bytes,
        **{
            "compress MB/s": _mb(x.nbytes, t_e),
            "decompress MB/s": _mb(x.nbytes, t_d),
            "c+d MB/s": _mb(x.nbytes, t_e + t_d),
            "max abs err": float(np.max(np.abs(diff))),
            "rel mse": float(np.mean(diff**2) / np.var(x)),
        },
        **extra,
    )


def bench_tiers(report: Report) -> None:
    """Vector-memory quantizers on embedding-like batches."""
    x = _embeddings(N_VECTORS, seed=1)
    f16 = Float16Quantizer()
    h = f16.encode(x)
    _tier_row(
        report,
        method="Float16Quantizer",
        x=x,
        code_bytes=h.nbytes,
        encode=lambda: f16.encode(x),
        decode=lambda: f16.decode(h),
    )

    i8 = Int8Quantizer()
    codes, scales = i8.encode(x)
    _tier_row(
        report,
        method="Int8Quantizer",
        x=x,
        code_bytes=codes.nbytes + scales.nbytes,
        encode=lambda: i8.encode(x),
        decode=lambda: i8.decode(codes, scales),
    )

    binq = BinaryQuantizer()
    bits, bscales = binq.encode_with_scales(x)
    t_scan = median_time(lambda: binq.hamming_distances(bits[0], bits), repeat=5)
    _tier_row(
        report,
        method="BinaryQuantizer (+-mean|x|)",
        x=x,
        code_bytes=bits.nbytes + bscales.nbytes,
        encode=lambda: binq.encode_with_scales(x),
        decode=lambda: binq.decode(bits, DIM, bscales),
        **{"scan Mvec/s": N_VECTORS / t_scan / 1e6},
    )

    pq = ProductQuantizer(DIM, PQ_M, nbits=8, seed=0)
    sample = _embeddings(N_TRAIN, seed=2)
    start = time.perf_counter()
    pq.train(sample)
    train_s = time.perf_counter() - start
    pq_codes = pq.encode(x)
    t_adc = median_time(lambda: pq.adc_distances(x[0], pq_codes), repeat=5)
    _tier_row(
        report,
        method=f"ProductQuantizer m={PQ_M} (train {N_TRAIN // 1000}k)",
        x=x,
        code_bytes=pq_codes.nbytes,
        encode=lambda: pq.encode(x),
        decode=lambda: pq.decode(pq_codes),
        **{"train s": train_s, "scan Mvec/s": N_VECTORS / t_adc / 1e6},
    )


def main() -> None:
    """Run the codec benchmark, print the table and save ``benchmarks/results/codec.json``."""
    report = Report("codec", COLUMNS)
    bench_tensors(report)
    bench_tiers(report)
    report.notes.append(
        "MB = 1e6 bytes of float32 input; c+d MB/s = input / (compress + decompress time). "
        "ratio vs base / c+d vs base compare with raw-bytes lz4.block (FAST, Q8, Q4) or "
        f"zstd-{ZSTD_LEVEL} (HIGH). FAST/HIGH byte-shuffle float32 first unless marked "
        "'no shuffle'; every TensorCodec blob carries a CRC-32 of header and payload."
    )
    report.notes.append(
        "Tier rows: compress = encode, decompress = decode; ratio counts codes plus per-vector "
        "scales (int8, binary), not PQ codebooks; scan = hamming / ADC distances of one "
        "query to all codes."
    )
    report.print(Console(width=240))
    report.save()


if __name__ == "__main__":
    main()
