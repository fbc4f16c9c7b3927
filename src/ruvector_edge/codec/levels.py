"""Compression levels and blob kinds (the enums recorded in every blob header)."""

from __future__ import annotations

from enum import IntEnum

from ruvector_edge.errors import CodecError

__all__ = ["BlobKind", "CompressionLevel"]


class CompressionLevel(IntEnum):
    """How a :class:`~ruvector_edge.codec.TensorCodec` encodes its input.

    ``NONE`` stores raw bytes, ``FAST`` uses an LZ4 block, ``HIGH`` a zstd frame (both
    lossless); ``QUANTIZED8`` / ``QUANTIZED4`` quantize float tensors to 8 / 4 bits with a
    per-block scale (lossy, bounded error).
    """

    NONE = 0
    FAST = 1
    HIGH = 2
    QUANTIZED8 = 3
    QUANTIZED4 = 4

    @property
    def is_quantized(self) -> bool:
        """Whether this level is lossy (quantizing)."""
        return self in (CompressionLevel.QUANTIZED8, CompressionLevel.QUANTIZED4)

    @classmethod
    def parse(cls, name: str) -> CompressionLevel:
        """Parse a level name case-insensitively (``"fast"``, ``"Quantized8"``, ...)."""
        if not isinstance(name, str):
            raise CodecError(f"compression level name must be a str, got {type(name).__name__}")
        key = name.strip().upper()
        try:
            return cls[key]
        except KeyError:
            choices = ", ".join(m.name.lower() for m in cls)
            raise CodecError(
                f"unknown compression level {name!r}; expected one of: {choices}"
            ) from None


class BlobKind(IntEnum):
    """What a blob holds: opaque bytes or a float32 tensor."""

    BYTES = 0
    TENSOR = 1
