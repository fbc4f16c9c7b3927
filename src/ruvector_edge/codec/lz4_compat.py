"""Seed-compatible raw LZ4 helpers: 4-byte little-endian size, then one LZ4 block.

This is the framing of Rust ``lz4_flex::compress_prepend_size`` /
``decompress_size_prepended``, and of ``lz4.block.compress(data, store_size=True)``.
"""

from __future__ import annotations

from typing import Final

import lz4.block

from ruvector_edge.codec._format import (
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    LZ4_MAX_INPUT,
    BytesLike,
    as_buffer,
    lz4_can_expand,
)
from ruvector_edge.errors import CodecError

__all__ = ["lz4_compress_prepend_size", "lz4_decompress_size_prepended"]

_SIZE_PREFIX: Final = 4


def lz4_compress_prepend_size(data: BytesLike) -> bytes:
    """LZ4-compress ``data`` with its uncompressed length prepended (u32, little-endian)."""
    mv = as_buffer(data)
    if len(mv) > LZ4_MAX_INPUT:
        raise CodecError(f"LZ4 cannot compress {len(mv)} bytes in one block")
    try:
        out: bytes = lz4.block.compress(mv, store_size=True)
    except Exception as exc:  # lz4's own error types must not leak
        raise CodecError(f"LZ4 compression failed: {exc}") from None
    return out


def lz4_decompress_size_prepended(
    blob: BytesLike, *, max_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE
) -> bytes:
    """Inverse of :func:`lz4_compress_prepend_size`.

    The declared size is checked against ``max_size`` and against what the block could
    possibly expand to before anything is allocated; corrupt input raises CodecError.
    """
    mv = as_buffer(blob)
    if len(mv) < _SIZE_PREFIX:
        raise CodecError(f"truncated LZ4 blob: {len(mv)} bytes, need a 4-byte size prefix")
    size = int.from_bytes(mv[:_SIZE_PREFIX], "little")
    block = mv[_SIZE_PREFIX:]
    if size > max_size:
        raise CodecError(f"LZ4 blob declares {size} bytes, above the limit of {max_size}")
    if not lz4_can_expand(len(block), size):
        raise CodecError(f"corrupt LZ4 blob: {len(block)} bytes cannot expand to {size} bytes")
    if size == 0:
        # An empty LZ4 block is the single token byte 0x00 (both lz4_flex and python-lz4).
        if len(block) > 1 or (len(block) == 1 and block[0] != 0):
            raise CodecError("corrupt LZ4 blob: data after an empty block")
        return b""
    return lz4_block_decompress(block, size, what="LZ4 blob")


def lz4_block_decompress(block: BytesLike, size: int, *, what: str = "LZ4 payload") -> bytes:
    """Decode one raw LZ4 block of known decoded ``size``; any failure is a CodecError.

    The caller has already bounded ``size`` (limit and LZ4's maximum expansion).
    """
    try:
        out: bytes = lz4.block.decompress(block, uncompressed_size=size)
    except Exception as exc:  # lz4's own error types must not leak
        raise CodecError(f"corrupt {what}: {exc}") from None
    if len(out) != size:
        raise CodecError(f"corrupt {what}: decoded {len(out)} bytes, expected {size}")
    return out
