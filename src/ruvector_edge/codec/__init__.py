"""Bytes and tensor codecs plus vector-memory quantizers.

* :class:`TensorCodec` compresses bytes and float32 tensors into self-describing,
  checksummed blobs at one of five :class:`CompressionLevel` s (raw, LZ4, zstd, 8-bit and
  4-bit block quantization); :func:`inspect_blob` describes a blob.
* :func:`lz4_compress_prepend_size` / :func:`lz4_decompress_size_prepended` speak the seed's
  raw LZ4 framing (``lz4_flex::compress_prepend_size``).
* :class:`Float16Quantizer`, :class:`Int8Quantizer`, :class:`BinaryQuantizer` and
  :class:`ProductQuantizer` shrink vectors for tiered vector memory.

Every user-caused failure raises :class:`ruvector_edge.errors.CodecError`.
"""

from __future__ import annotations

from ruvector_edge.codec._format import DEFAULT_MAX_DECOMPRESSED_SIZE, BlobInfo, inspect_blob
from ruvector_edge.codec.levels import BlobKind, CompressionLevel
from ruvector_edge.codec.lz4_compat import (
    lz4_compress_prepend_size,
    lz4_decompress_size_prepended,
)
from ruvector_edge.codec.pq import ProductQuantizer
from ruvector_edge.codec.quantizers import BinaryQuantizer, Float16Quantizer, Int8Quantizer
from ruvector_edge.codec.tensor import DEFAULT_BLOCK_SIZE, TensorCodec

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_MAX_DECOMPRESSED_SIZE",
    "BinaryQuantizer",
    "BlobInfo",
    "BlobKind",
    "CompressionLevel",
    "Float16Quantizer",
    "Int8Quantizer",
    "ProductQuantizer",
    "TensorCodec",
    "inspect_blob",
    "lz4_compress_prepend_size",
    "lz4_decompress_size_prepended",
]
