"""Blob format: layout, inspect_blob, and robustness against damaged or hostile blobs."""

from __future__ import annotations

import contextlib
import struct
import zlib

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from ruvector_edge.codec import (
    BlobInfo,
    BlobKind,
    CompressionLevel,
    TensorCodec,
    inspect_blob,
)
from ruvector_edge.errors import CodecError

ALL_LEVELS = list(CompressionLevel)
HEADER = struct.Struct("<4sBBBBBBHIQQ")


def recrc(blob: bytes) -> bytes:
    """Re-seal a hand-edited blob with a valid CRC, so deeper checks are reached."""
    body = blob[:-4]
    return body + zlib.crc32(body).to_bytes(4, "little")


def patch(blob: bytes, offset: int, fmt: str, value: int) -> bytes:
    buf = bytearray(blob)
    struct.pack_into(fmt, buf, offset, value)
    return recrc(bytes(buf))


def sample_blobs() -> list[bytes]:
    x = np.random.default_rng(0).standard_normal((3, 11)).astype(np.float32)
    blobs = []
    for level in ALL_LEVELS:
        codec = TensorCodec(level, block_size=8)
        blobs.append(codec.compress_tensor(x))
        blobs.append(codec.compress(b"hello hello hello world" * 3))
    return blobs


SAMPLES = sample_blobs()


def decode_any(blob: bytes) -> object:
    codec = TensorCodec()
    try:
        kind = inspect_blob(blob).kind
    except CodecError:
        kind = BlobKind.TENSOR
    if kind is BlobKind.TENSOR:
        return codec.decompress_tensor(blob)
    return codec.decompress(blob)


# -- layout ---------------------------------------------------------------------------------


def test_header_layout_is_as_documented() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    blob = TensorCodec(CompressionLevel.QUANTIZED8, block_size=5).compress_tensor(x)
    fields = HEADER.unpack_from(blob, 0)
    magic, version, level, kind, dtype, ndim, filt, reserved, block, raw, payload = fields
    assert (magic, version, level, kind, dtype, ndim) == (b"RVTC", 1, 3, 1, 1, 2)
    assert (filt, reserved, block, raw, payload) == (0, 0, 5, 48, 12)
    assert struct.unpack_from("<2Q", blob, 32) == (3, 4)
    scales = np.frombuffer(blob, "<f4", count=3, offset=48)
    np.testing.assert_allclose(scales, [4 / 127, 9 / 127, 11 / 127], rtol=1e-6)
    assert len(blob) == 32 + 16 + 12 + 12 + 4
    assert int.from_bytes(blob[-4:], "little") == zlib.crc32(blob[:-4])


def test_none_level_payload_is_raw_little_endian_float32() -> None:
    x = np.array([1.5, -2.0, 3.25], dtype=np.float32)
    blob = TensorCodec(CompressionLevel.NONE).compress_tensor(x)
    assert blob[40:52] == x.astype("<f4").tobytes()


@pytest.mark.parametrize("level", [CompressionLevel.FAST, CompressionLevel.HIGH])
def test_lossless_tensor_blobs_are_byte_shuffled(level: CompressionLevel) -> None:
    blob = TensorCodec(level).compress_tensor(np.ones(100, dtype=np.float32))
    assert inspect_blob(blob).shuffled
    assert not inspect_blob(TensorCodec(level).compress(b"abc")).shuffled


def test_inspect_blob_describes_tensor() -> None:
    x = np.random.default_rng(1).standard_normal((5, 7)).astype(np.float32)
    blob = TensorCodec(CompressionLevel.QUANTIZED4, block_size=16).compress_tensor(x)
    info = inspect_blob(blob)
    assert isinstance(info, BlobInfo)
    assert info.version == 1
    assert info.level is CompressionLevel.QUANTIZED4
    assert info.kind is BlobKind.TENSOR
    assert info.dtype == np.float32
    assert info.shape == (5, 7)
    assert info.numel == 35
    assert info.block_size == 16
    assert info.scales is not None
    assert info.scales.shape == (3,)
    assert info.raw_size == 140
    assert info.payload_size == 18
    assert info.blob_size == len(blob)


def test_inspect_blob_describes_bytes() -> None:
    info = inspect_blob(TensorCodec(CompressionLevel.HIGH).compress(b"x" * 1000))
    assert info.kind is BlobKind.BYTES
    assert info.dtype == np.uint8
    assert info.shape == (1000,)
    assert info.block_size == 0
    assert info.scales is None
    assert info.level is CompressionLevel.HIGH


# -- damaged blobs ---------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(SAMPLES)))
def test_every_truncation_is_rejected(index: int) -> None:
    blob = SAMPLES[index]
    for cut in range(len(blob)):
        with pytest.raises(CodecError):
            decode_any(blob[:cut])


@pytest.mark.parametrize("index", range(len(SAMPLES)))
def test_every_single_byte_corruption_is_rejected(index: int) -> None:
    # CRC-32 detects every error burst up to 32 bits, so no single-byte change can pass.
    blob = SAMPLES[index]
    for pos in range(len(blob)):
        for mask in (0x01, 0x80, 0xFF):
            bad = bytearray(blob)
            bad[pos] ^= mask
            with pytest.raises(CodecError):
                decode_any(bytes(bad))


@pytest.mark.parametrize("index", range(len(SAMPLES)))
def test_trailing_garbage_is_rejected(index: int) -> None:
    with pytest.raises(CodecError, match="trailing garbage"):
        decode_any(SAMPLES[index] + b"\x00")
    with pytest.raises(CodecError, match="trailing garbage"):
        decode_any(SAMPLES[index] + SAMPLES[index])


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_are_rejected(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode_any(data)


@settings(max_examples=300, deadline=None)
@given(tail=st.binary(max_size=200), level=st.integers(0, 255), ndim=st.integers(0, 255))
def test_random_bytes_after_valid_magic_are_rejected(tail: bytes, level: int, ndim: int) -> None:
    with pytest.raises(CodecError):
        decode_any(b"RVTC\x01" + bytes([level, 1, 1, ndim]) + tail)


@settings(max_examples=200, deadline=None)
@given(
    index=st.integers(0, len(SAMPLES) - 1),
    pos=st.integers(0, 10_000),
    value=st.integers(0, 255),
    reseal=st.booleans(),
)
def test_byte_rewrites_fail_cleanly_or_decode(
    index: int, pos: int, value: int, reseal: bool
) -> None:
    """Even with a re-sealed CRC (a hostile writer), decoding fails with CodecError or works."""
    blob = bytearray(SAMPLES[index])
    blob[pos % len(blob)] = value
    candidate = recrc(bytes(blob)) if reseal else bytes(blob)
    with contextlib.suppress(CodecError):
        decode_any(candidate)


@pytest.mark.parametrize("blob", [b"", b"RVT", b"RVTC", bytes(35)])
def test_too_short(blob: bytes) -> None:
    with pytest.raises(CodecError, match=r"truncated|bad magic"):
        TensorCodec().decompress_tensor(blob)


def test_bad_magic() -> None:
    blob = b"XXXX" + SAMPLES[0][4:]
    with pytest.raises(CodecError, match="bad magic"):
        TensorCodec().decompress_tensor(blob)


def test_unknown_version() -> None:
    with pytest.raises(CodecError, match="version 2"):
        TensorCodec().decompress_tensor(patch(SAMPLES[0], 4, "<B", 2))


def test_unknown_level() -> None:
    with pytest.raises(CodecError, match="unknown compression level 9"):
        TensorCodec().decompress_tensor(patch(SAMPLES[0], 5, "<B", 9))


def test_unknown_kind() -> None:
    with pytest.raises(CodecError, match="unknown blob kind"):
        TensorCodec().decompress_tensor(patch(SAMPLES[0], 6, "<B", 7))


def test_bad_dtype_filter_reserved() -> None:
    codec = TensorCodec()
    with pytest.raises(CodecError, match="dtype"):
        codec.decompress_tensor(patch(SAMPLES[0], 7, "<B", 0))
    with pytest.raises(CodecError, match="filter"):
        codec.decompress_tensor(patch(SAMPLES[0], 9, "<B", 5))
    with pytest.raises(CodecError, match="filter"):
        codec.decompress_tensor(patch(SAMPLES[0], 9, "<B", 1))  # shuffle on a NONE blob
    with pytest.raises(CodecError, match="reserved"):
        codec.decompress_tensor(patch(SAMPLES[0], 10, "<H", 1))


def test_ndim_beyond_limit() -> None:
    with pytest.raises(CodecError, match="ndim"):
        TensorCodec().decompress_tensor(patch(SAMPLES[0], 8, "<B", 65))


def test_level_kind_consistency_checks() -> None:
    codec = TensorCodec()
    q8 = SAMPLES[2 * ALL_LEVELS.index(CompressionLevel.QUANTIZED8)]
    with pytest.raises(CodecError, match="block size"):
        codec.decompress_tensor(patch(q8, 5, "<B", 0))  # NONE with a block size
    with pytest.raises(CodecError, match="raw size"):
        codec.decompress_tensor(patch(q8, 16, "<Q", 12))
    with pytest.raises(CodecError, match="payload"):
        codec.decompress_tensor(patch(q8, 5, "<B", int(CompressionLevel.QUANTIZED4)))
    bytes_blob = SAMPLES[1]
    with pytest.raises(CodecError, match="bytes blob cannot use level"):
        codec.decompress(patch(bytes_blob, 5, "<B", int(CompressionLevel.QUANTIZED8)))


def test_non_finite_scales_rejected() -> None:
    q8 = SAMPLES[2 * ALL_LEVELS.index(CompressionLevel.QUANTIZED8)]
    bad = bytearray(q8)
    struct.pack_into("<f", bad, 32 + 16, float("nan"))
    with pytest.raises(CodecError, match="scales"):
        TensorCodec().decompress_tensor(recrc(bytes(bad)))
    struct.pack_into("<f", bad, 32 + 16, -1.0)
    with pytest.raises(CodecError, match="scales"):
        inspect_blob(recrc(bytes(bad)))


def _bytes_blob(level: CompressionLevel, raw_size: int, payload: bytes) -> bytes:
    header = HEADER.pack(b"RVTC", 1, int(level), 0, 0, 1, 0, 0, 0, raw_size, len(payload))
    body = header + struct.pack("<Q", raw_size) + payload
    return body + zlib.crc32(body).to_bytes(4, "little")


def test_lz4_bomb_is_rejected_before_allocating() -> None:
    blob = _bytes_blob(CompressionLevel.FAST, 900_000_000, b"\x00" * 8)
    with pytest.raises(CodecError, match="cannot expand"):
        TensorCodec().decompress(blob)


def test_declared_size_over_limit_is_rejected_before_allocating() -> None:
    blob = _bytes_blob(CompressionLevel.HIGH, (1 << 30) + 1, b"\x00" * 16)
    with pytest.raises(CodecError, match="exceeds the limit"):
        TensorCodec().decompress(blob)


def test_huge_declared_shape_is_truncation_not_allocation() -> None:
    header = HEADER.pack(b"RVTC", 1, 0, 1, 1, 2, 0, 0, 0, 1 << 60, 1 << 60)
    body = header + struct.pack("<2Q", 1 << 40, 1 << 40)
    with pytest.raises(CodecError, match="truncated"):
        TensorCodec().decompress_tensor(body + zlib.crc32(body).to_bytes(4, "little"))


def test_lz4_payload_that_decodes_short_is_rejected() -> None:
    import lz4.block

    payload = lz4.block.compress(b"abcdefgh" * 4, store_size=False)
    blob = _bytes_blob(CompressionLevel.FAST, 64, payload)
    with pytest.raises(CodecError, match="LZ4"):
        TensorCodec().decompress(blob)


def test_zstd_payload_mismatches_are_rejected() -> None:
    frame = zstandard.ZstdCompressor().compress(b"q" * 100)
    with pytest.raises(CodecError, match="zstd"):
        TensorCodec().decompress(_bytes_blob(CompressionLevel.HIGH, 101, frame))
    with pytest.raises(CodecError, match="zstd"):
        TensorCodec().decompress(_bytes_blob(CompressionLevel.HIGH, 100, frame + b"junk"))
    no_size = zstandard.ZstdCompressor(write_content_size=False).compress(b"q" * 100)
    with pytest.raises(CodecError, match="zstd"):
        TensorCodec().decompress(_bytes_blob(CompressionLevel.HIGH, 100, no_size))
    assert TensorCodec().decompress(_bytes_blob(CompressionLevel.HIGH, 100, frame)) == b"q" * 100


def test_blob_must_be_bytes_like() -> None:
    with pytest.raises(CodecError, match="bytes"):
        TensorCodec().decompress_tensor("RVTC")  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="bytes"):
        inspect_blob(12)  # type: ignore[arg-type]


def test_memoryview_of_other_formats_is_accepted() -> None:
    blob = TensorCodec(CompressionLevel.NONE).compress_tensor(np.arange(6, dtype=np.float32))
    assert len(blob) % 4 == 0  # 32 header + 8 shape + 24 payload + 4 CRC
    view = np.frombuffer(blob, dtype=np.uint32).data
    assert view.format != "B"
    np.testing.assert_array_equal(TensorCodec().decompress_tensor(view), np.arange(6))
    with pytest.raises(CodecError, match="contiguous"):
        TensorCodec().decompress_tensor(memoryview(blob)[::2])


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    level=st.sampled_from(ALL_LEVELS),
    n=st.integers(0, 300),
    ndim=st.integers(1, 3),
)
def test_truncated_or_flipped_random_blobs_are_rejected(
    data: st.DataObject, level: CompressionLevel, n: int, ndim: int
) -> None:
    shape = (n,) + (1,) * (ndim - 1)
    x = np.random.default_rng(n).standard_normal(shape).astype(np.float32)
    blob = TensorCodec(level, block_size=16).compress_tensor(x)
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(CodecError):
        TensorCodec().decompress_tensor(blob[:cut])
    pos = data.draw(st.integers(0, len(blob) - 1))
    flipped = bytearray(blob)
    flipped[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CodecError):
        TensorCodec().decompress_tensor(bytes(flipped))
