"""Network blobs for agents to ship networks to each other, built on ``ruvector_edge.codec``.

Layout: ``b"RVNN" | version (1) | weight kind (1) | meta length (u32, big endian) | meta |
weights``. ``meta`` is the ``.net`` text without weights, compressed losslessly by
:class:`~ruvector_edge.codec.TensorCodec`; ``weights`` is either the float64 weights
compressed losslessly (levels NONE/FAST/HIGH: exact round trip) or a quantized tensor
blob (QUANTIZED8/QUANTIZED4: each weight within half a quantization step).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import numpy as np

from ruvector_edge.codec import CompressionLevel, TensorCodec
from ruvector_edge.errors import CodecError, EdgeError
from ruvector_edge.neural._io import format_net, parse_net

if TYPE_CHECKING:
    from ruvector_edge.neural.network import Network

__all__ = ["MAGIC", "network_from_bytes", "network_to_bytes"]

MAGIC = b"RVNN"
VERSION = 1
_HEADER = struct.Struct(">4sBBI")
_EXACT, _QUANTIZED = 0, 1


def network_to_bytes(net: Network, level: CompressionLevel | str | int | None = None) -> bytes:
    """Encode ``net`` (structure, parameters, activations, scaling, weights) as a blob."""
    lvl = CompressionLevel.HIGH if level is None else level
    if isinstance(lvl, str):
        lvl = CompressionLevel.parse(lvl)
    if not isinstance(lvl, CompressionLevel):
        try:
            lvl = CompressionLevel(int(lvl))
        except (TypeError, ValueError):
            raise CodecError(f"unknown compression level {level!r}") from None
    codec = TensorCodec.with_level(lvl)
    meta = codec.compress(format_net(net, with_weights=False).encode("ascii"))
    weights = net.get_weights()
    if lvl.is_quantized:
        kind, body = _QUANTIZED, codec.compress_tensor(weights)
    else:
        kind, body = _EXACT, codec.compress(weights.astype("<f8").tobytes())
    return _HEADER.pack(MAGIC, VERSION, kind, len(meta)) + meta + body


def network_from_bytes(blob: bytes | bytearray | memoryview, cls: type[Network]) -> Network:
    """Decode a blob from :func:`network_to_bytes`; anything malformed raises CodecError."""
    data = bytes(blob)
    if len(data) < _HEADER.size:
        raise CodecError(f"network blob too short ({len(data)} bytes)")
    magic, version, kind, meta_len = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CodecError("not a network blob (bad magic); expected output of Network.to_bytes")
    if version != VERSION:
        raise CodecError(f"unsupported network blob version {version} (this build reads 1)")
    if kind not in (_EXACT, _QUANTIZED):
        raise CodecError(f"unknown weight encoding {kind} in network blob")
    end = _HEADER.size + meta_len
    if end > len(data):
        raise CodecError("network blob truncated inside its metadata")
    codec = TensorCodec()
    try:
        text = codec.decompress(data[_HEADER.size : end]).decode("ascii")
        net = parse_net(text, cls, source="<network blob>")
        if kind == _QUANTIZED:
            weights = codec.decompress_tensor(data[end:]).astype(np.float64).ravel()
        else:
            raw = codec.decompress(data[end:])
            if len(raw) % 8:
                raise CodecError("network blob weights are not whole float64 values")
            weights = np.frombuffer(raw, dtype="<f8").astype(np.float64)
        net.set_weights(weights)
    except CodecError:
        raise
    except (EdgeError, UnicodeDecodeError, ValueError) as exc:
        raise CodecError(f"corrupt network blob: {exc}") from None
    return net
