"""The self-describing blob format shared by every codec level.

Layout (all integers little-endian)::

    offset size  field
    0      4     magic  b"RVTC"
    4      1     format version (1)
    5      1     level   (CompressionLevel value)
    6      1     kind    (BlobKind: 0 bytes, 1 tensor)
    7      1     dtype   (0 uint8 for bytes, 1 float32 for tensors)
    8      1     ndim    (0..64; bytes blobs use 1)
    9      1     filter  (0 none, 1 byte-shuffle of float32 before LZ4/zstd)
    10     2     reserved, must be 0
    12     4     block size (quantized levels; 0 otherwise)
    16     8     raw size: decoded payload bytes (numel * itemsize)
    24     8     payload size: stored payload bytes
    32     8*nd  shape, one u64 per dimension
    ..     4*nb  per-block scales, float32 (quantized only; nb = ceil(numel / block))
    ..     ps    payload
    end-4  4     CRC-32 (zlib.crc32) of every preceding byte
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from ruvector_edge.codec.levels import BlobKind, CompressionLevel
from ruvector_edge.errors import CodecError

__all__ = [
    "CRC_SIZE",
    "DEFAULT_MAX_DECOMPRESSED_SIZE",
    "FILTER_NONE",
    "FILTER_SHUFFLE",
    "FORMAT_VERSION",
    "HEADER",
    "LZ4_MAX_INPUT",
    "MAGIC",
    "MAX_BLOCK_SIZE",
    "MAX_NDIM",
    "BlobInfo",
    "BytesLike",
    "Header",
    "as_buffer",
    "blob_size",
    "inspect_blob",
    "lz4_can_expand",
    "pack_header",
    "parse_blob",
    "read_scales",
]

BytesLike = bytes | bytearray | memoryview

MAGIC: Final = b"RVTC"
FORMAT_VERSION: Final = 1
HEADER: Final = struct.Struct("<4sBBBBBBHIQQ")
CRC_SIZE: Final = 4
MAX_NDIM: Final = 64
MAX_BLOCK_SIZE: Final = 1 << 24
DEFAULT_MAX_DECOMPRESSED_SIZE: Final = 1 << 30
FILTER_NONE: Final = 0
FILTER_SHUFFLE: Final = 1

DTYPE_UINT8: Final = 0
DTYPE_FLOAT32: Final = 1
_DTYPES: Final[dict[int, np.dtype[Any]]] = {
    DTYPE_UINT8: np.dtype(np.uint8),
    DTYPE_FLOAT32: np.dtype(np.float32),
}
# LZ4's own limit on one block's input (LZ4_MAX_INPUT_SIZE).
LZ4_MAX_INPUT: Final = 0x7E000000
# An LZ4 block expands at most ~255x (one extra length byte per 255 repeated bytes).
_LZ4_MAX_EXPANSION: Final = 256
_LZ4_SLACK: Final = 64
# No dimension may exceed what a numpy index can address.
_MAX_DIM: Final = (1 << 62) - 1


@dataclass(frozen=True, slots=True)
class Header:
    """A parsed and validated blob header (internal)."""

    level: CompressionLevel
    kind: BlobKind
    dtype_code: int
    filter: int
    block_size: int
    raw_size: int
    payload_size: int
    shape: tuple[int, ...]
    numel: int
    n_blocks: int
    scales_offset: int
    payload_offset: int
    blob_size: int


@dataclass(frozen=True, slots=True, eq=False)
class BlobInfo:
    """What a blob declares about itself, as returned by :func:`inspect_blob`."""

    version: int
    level: CompressionLevel
    kind: BlobKind
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    block_size: int
    scales: NDArray[np.float32] | None
    raw_size: int
    payload_size: int
    blob_size: int
    shuffled: bool

    @property
    def numel(self) -> int:
        """Number of elements (bytes for a bytes blob)."""
        return math.prod(self.shape)


def lz4_can_expand(compressed_size: int, raw_size: int) -> bool:
    """Whether an LZ4 block of ``compressed_size`` bytes could decode to ``raw_size`` bytes."""
    return raw_size <= _LZ4_MAX_EXPANSION * compressed_size + _LZ4_SLACK


def n_blocks(numel: int, block_size: int) -> int:
    """Number of quantization blocks (0 when the level does not quantize)."""
    return -(-numel // block_size) if block_size else 0


def blob_size(ndim: int, numel: int, block_size: int, payload_size: int) -> int:
    """Total blob length for the given header fields."""
    return HEADER.size + 8 * ndim + 4 * n_blocks(numel, block_size) + payload_size + CRC_SIZE


def pack_header(
    *,
    level: CompressionLevel,
    kind: BlobKind,
    filter_code: int,
    block_size: int,
    raw_size: int,
    payload_size: int,
    shape: tuple[int, ...],
) -> bytes:
    """Fixed header plus shape, ready to be followed by scales, payload and CRC."""
    dtype_code = DTYPE_FLOAT32 if kind is BlobKind.TENSOR else DTYPE_UINT8
    fixed = HEADER.pack(
        MAGIC,
        FORMAT_VERSION,
        int(level),
        int(kind),
        dtype_code,
        len(shape),
        filter_code,
        0,
        block_size,
        raw_size,
        payload_size,
    )
    return fixed + struct.pack(f"<{len(shape)}Q", *shape)


def as_buffer(blob: object) -> memoryview:
    """A flat byte view of a bytes-like blob, or CodecError."""
    if isinstance(blob, bytes | bytearray):
        return memoryview(blob)
    if isinstance(blob, memoryview):
        if not blob.c_contiguous:
            raise CodecError("blob memoryview must be C-contiguous")
        return blob.cast("B") if blob.format != "B" or blob.ndim != 1 else blob
    raise CodecError(f"blob must be bytes, bytearray or memoryview, got {type(blob).__name__}")


def parse_blob(blob: object, max_decompressed_size: int | None) -> tuple[Header, memoryview]:
    """Validate a blob's framing, size limits and checksum; return its header and view.

    Checks run cheapest first and never allocate from untrusted sizes: length, magic,
    version, declared lengths against the real length, the size limit, the CRC, then the
    consistency of every header field with the level.
    """
    mv = as_buffer(blob)
    total = len(mv)
    minimum = HEADER.size + CRC_SIZE
    if total < minimum:
        raise CodecError(f"truncated blob: {total} bytes, shorter than the {minimum}-byte minimum")
    (magic, version, level_code, kind_code, dtype_code, ndim, filter_code, reserved, block_size,
     raw_size, payload_size) = HEADER.unpack_from(mv, 0)  # fmt: skip
    if magic != MAGIC:
        raise CodecError(f"not a codec blob: bad magic {bytes(magic)!r} (expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise CodecError(
            f"unsupported blob format version {version} (this build reads {FORMAT_VERSION})"
        )
    if ndim > MAX_NDIM:
        raise CodecError(f"corrupt blob: ndim {ndim} exceeds the maximum of {MAX_NDIM}")
    shape_end = HEADER.size + 8 * ndim
    if total < shape_end + CRC_SIZE:
        raise CodecError(f"truncated blob: {total} bytes cannot hold a {ndim}-d shape")
    shape = struct.unpack_from(f"<{ndim}Q", mv, HEADER.size)
    numel = math.prod(shape)
    if block_size > MAX_BLOCK_SIZE:
        raise CodecError(f"corrupt blob: block size {block_size} exceeds {MAX_BLOCK_SIZE}")
    expected = blob_size(ndim, numel, block_size, payload_size)
    if total < expected:
        raise CodecError(f"truncated blob: header declares {expected} bytes but only {total} given")
    if total > expected:
        raise CodecError(
            f"trailing garbage: {total - expected} unexpected bytes after the {expected}-byte blob"
        )
    if max_decompressed_size is not None and raw_size > max_decompressed_size:
        raise CodecError(
            f"declared decompressed size {raw_size} exceeds the limit of "
            f"{max_decompressed_size} bytes (raise max_decompressed_size to accept it)"
        )
    stored_crc = int.from_bytes(mv[total - CRC_SIZE :], "little")
    actual_crc = zlib.crc32(mv[: total - CRC_SIZE])
    if stored_crc != actual_crc:
        raise CodecError(
            f"checksum mismatch (stored {stored_crc:#010x}, computed {actual_crc:#010x}): "
            "blob is corrupt"
        )
    try:
        level = CompressionLevel(level_code)
    except ValueError:
        raise CodecError(f"unknown compression level {level_code} in blob") from None
    try:
        kind = BlobKind(kind_code)
    except ValueError:
        raise CodecError(f"unknown blob kind {kind_code}") from None
    header = Header(
        level=level,
        kind=kind,
        dtype_code=dtype_code,
        filter=filter_code,
        block_size=block_size,
        raw_size=raw_size,
        payload_size=payload_size,
        shape=tuple(shape),
        numel=numel,
        n_blocks=n_blocks(numel, block_size),
        scales_offset=shape_end,
        payload_offset=shape_end + 4 * n_blocks(numel, block_size),
        blob_size=total,
    )
    _check_consistency(header, reserved)
    return header, mv


def _check_consistency(h: Header, reserved: int) -> None:
    if reserved != 0:
        raise CodecError(f"corrupt blob: reserved header field is {reserved}, expected 0")
    want_dtype = DTYPE_FLOAT32 if h.kind is BlobKind.TENSOR else DTYPE_UINT8
    if h.dtype_code != want_dtype:
        raise CodecError(
            f"corrupt blob: dtype code {h.dtype_code} invalid for a {h.kind.name} blob"
        )
    if h.kind is BlobKind.BYTES:
        if len(h.shape) != 1:
            raise CodecError(f"corrupt blob: a bytes blob must be 1-d, got ndim {len(h.shape)}")
        if h.level.is_quantized:
            raise CodecError(f"corrupt blob: a bytes blob cannot use level {h.level.name}")
    if any(d > _MAX_DIM for d in h.shape):
        raise CodecError(f"corrupt blob: shape {h.shape} has a dimension beyond 2**62")
    itemsize = _DTYPES[h.dtype_code].itemsize
    if h.raw_size != h.numel * itemsize:
        raise CodecError(
            f"corrupt blob: raw size {h.raw_size} does not match shape {h.shape} "
            f"({h.numel} x {itemsize} bytes)"
        )
    if h.level.is_quantized:
        if h.block_size < 1:
            raise CodecError(f"corrupt blob: quantized level {h.level.name} with block size 0")
    elif h.block_size != 0:
        raise CodecError(f"corrupt blob: block size {h.block_size} given for level {h.level.name}")
    if h.filter not in (FILTER_NONE, FILTER_SHUFFLE):
        raise CodecError(f"corrupt blob: unknown filter code {h.filter}")
    if h.filter == FILTER_SHUFFLE and (
        h.kind is not BlobKind.TENSOR
        or h.level not in (CompressionLevel.FAST, CompressionLevel.HIGH)
    ):
        raise CodecError("corrupt blob: byte-shuffle filter is only valid for FAST/HIGH tensors")
    want_payload: int | None = None
    if h.raw_size == 0:
        want_payload = 0
    elif h.level is CompressionLevel.NONE:
        want_payload = h.raw_size
    elif h.level is CompressionLevel.QUANTIZED8:
        want_payload = h.numel
    elif h.level is CompressionLevel.QUANTIZED4:
        want_payload = (h.numel + 1) // 2
    if want_payload is not None and h.payload_size != want_payload:
        raise CodecError(
            f"corrupt blob: payload is {h.payload_size} bytes, {h.level.name} needs {want_payload}"
        )
    if h.level is CompressionLevel.FAST and not lz4_can_expand(h.payload_size, h.raw_size):
        raise CodecError(
            f"corrupt blob: {h.payload_size} LZ4 bytes cannot expand to {h.raw_size} bytes"
        )


def read_scales(h: Header, mv: memoryview) -> NDArray[np.float32]:
    """The per-block scales of a quantized blob, validated finite and non-negative."""
    scales = np.frombuffer(mv, dtype="<f4", count=h.n_blocks, offset=h.scales_offset).astype(
        np.float32
    )
    if scales.size and not (np.isfinite(scales).all() and (scales >= 0).all()):
        raise CodecError("corrupt blob: quantization scales must be finite and non-negative")
    return scales


def inspect_blob(blob: BytesLike) -> BlobInfo:
    """Validate a blob's header and checksum and describe it (without decoding the payload)."""
    h, mv = parse_blob(blob, None)
    scales = read_scales(h, mv) if h.level.is_quantized else None
    return BlobInfo(
        version=FORMAT_VERSION,
        level=h.level,
        kind=h.kind,
        dtype=_DTYPES[h.dtype_code],
        shape=h.shape,
        block_size=h.block_size,
        scales=scales,
        raw_size=h.raw_size,
        payload_size=h.payload_size,
        blob_size=h.blob_size,
        shuffled=h.filter == FILTER_SHUFFLE,
    )
