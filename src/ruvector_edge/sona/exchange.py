"""AgentExport over the wire: codec-compressed, origin-signed ``AgentExportPayload``.

Layout of ``payload.data``: a :class:`~ruvector_edge.codec.TensorCodec` bytes blob (LZ4)
of a msgpack document ``_WireExport`` whose float arrays are themselves lossless tensor
blobs (embeddings and activations as one ``(n, d)`` tensor each). ``payload.signature`` is
the origin's Ed25519 signature over ``data`` (context ``"sona-export/1"``), and the origin
must be the export's ``agent_id``. :func:`decode_export` checks size, format and signature
*before* decompressing anything, then validates every field.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
import numpy as np

from ruvector_edge.codec import CompressionLevel, TensorCodec
from ruvector_edge.errors import AuthError, CodecError, EdgeError, InvalidInputError
from ruvector_edge.identity import Identity, KeyRegistry, verify_signature
from ruvector_edge.sona._util import F32
from ruvector_edge.sona.engine import LoraWeights
from ruvector_edge.sona.federated import AgentExport, AgentExportStats, TrajectoryExport
from ruvector_edge.wire import AgentExportPayload

__all__ = ["EXPORT_FORMAT", "MAX_EXPORT_BYTES", "decode_export", "encode_export"]

EXPORT_FORMAT = "sona-export/1"
MAX_EXPORT_BYTES = 16 * 1024 * 1024
MAX_TRAJECTORIES = 1_000_000


class _WireWeights(msgspec.Struct, frozen=True):
    micro_down: bytes
    micro_up: bytes
    base_down: bytes
    base_up: bytes


class _WireExport(msgspec.Struct, frozen=True):
    agent_id: str
    dim: int
    embeddings: bytes
    qualities: list[float]
    routes: list[str | None]
    contexts: list[list[str]]
    timestamps: list[int]
    has_activations: list[bool]
    activations: bytes
    total_trajectories: int
    avg_quality: float
    patterns_learned: int
    session_duration_ms: int
    timestamp: int
    weights: _WireWeights | None = None


_LOSSLESS = TensorCodec.with_level(CompressionLevel.FAST)


def encode_export(
    export: AgentExport, identity: Identity, *, codec: TensorCodec | None = None
) -> AgentExportPayload:
    """Serialise, compress and sign ``export`` as its agent (``identity.agent_id`` must match).

    ``codec`` compresses the float tensors (default lossless LZ4; a quantized level trades
    precision for size).
    """
    if identity.agent_id != export.agent_id:
        raise AuthError(
            f"export of {export.agent_id!r} cannot be signed by {identity.agent_id!r}; "
            "an export is signed by the agent that produced it"
        )
    tc = codec or _LOSSLESS
    trajs = export.trajectories
    if not trajs:
        dim = 0 if export.weights is None else int(export.weights.micro_up.shape[0])
    else:
        dim = int(np.asarray(trajs[0].embedding).shape[0])
    emb = np.zeros((len(trajs), dim), dtype=np.float32)
    acts = np.zeros((len(trajs), dim), dtype=np.float32)
    has = []
    for i, t in enumerate(trajs):
        emb[i] = np.asarray(t.embedding, dtype=np.float32)
        ok = t.activations is not None and len(t.activations) > 0
        has.append(bool(ok))
        if ok:
            acts[i] = np.asarray(t.activations, dtype=np.float32)
    w = export.weights
    doc = _WireExport(
        agent_id=export.agent_id,
        dim=dim,
        embeddings=tc.compress_tensor(emb),
        qualities=[float(t.quality) for t in trajs],
        routes=[t.route for t in trajs],
        contexts=[list(t.context) for t in trajs],
        timestamps=[int(t.timestamp) for t in trajs],
        has_activations=has,
        activations=tc.compress_tensor(acts if any(has) else acts[:0]),
        total_trajectories=int(export.stats.total_trajectories),
        avg_quality=float(export.stats.avg_quality),
        patterns_learned=int(export.stats.patterns_learned),
        session_duration_ms=int(export.session_duration_ms),
        timestamp=int(export.timestamp),
        weights=None
        if w is None
        else _WireWeights(
            _LOSSLESS.compress_tensor(w.micro_down),
            _LOSSLESS.compress_tensor(w.micro_up),
            _LOSSLESS.compress_tensor(w.base_down),
            _LOSSLESS.compress_tensor(w.base_up),
        ),
    )
    data = _LOSSLESS.compress(msgspec.msgpack.encode(doc))
    if len(data) > MAX_EXPORT_BYTES:
        raise InvalidInputError(
            f"encoded export is {len(data)} bytes, above {MAX_EXPORT_BYTES}; export more often"
        )
    return AgentExportPayload(
        data=data,
        format=EXPORT_FORMAT,
        origin=identity.agent_id,
        signature=identity.sign(data, context=EXPORT_FORMAT),
    )


def _key_for(keys: bytes | KeyRegistry | Mapping[str, bytes], origin: str) -> bytes:
    if isinstance(keys, bytes | bytearray):
        return bytes(keys)
    key = keys.key_for(origin) if isinstance(keys, KeyRegistry) else keys.get(origin)
    if key is None:
        raise AuthError(f"no public key known for export origin {origin!r}; admit it first")
    return key


def decode_export(
    payload: AgentExportPayload,
    keys: bytes | KeyRegistry | Mapping[str, bytes],
    *,
    max_bytes: int = MAX_EXPORT_BYTES,
    expected_dim: int | None = None,
) -> AgentExport:
    """Verify and decode an export.

    ``keys`` is the origin's raw public key, a :class:`KeyRegistry` or an id -> key map.
    Raises ``InvalidInputError`` (oversized, wrong format or dimension, NaN),
    ``AuthError`` (unsigned, unknown origin, bad signature, origin != agent id) or
    ``CodecError`` (undecodable bytes).
    """
    if not isinstance(payload, AgentExportPayload):
        raise InvalidInputError("decode_export expects an AgentExportPayload")
    if payload.format != EXPORT_FORMAT:
        raise InvalidInputError(
            f"unsupported export format {payload.format!r}; expected {EXPORT_FORMAT!r}"
        )
    if len(payload.data) > max_bytes:
        raise InvalidInputError(
            f"export of {len(payload.data)} bytes exceeds the {max_bytes}-byte limit"
        )
    if not payload.signature or not payload.origin:
        raise AuthError("export is unsigned (origin and signature are required)")
    verify_signature(
        _key_for(keys, payload.origin), payload.data, payload.signature, context=EXPORT_FORMAT
    )
    codec = TensorCodec(max_decompressed_size=max(4 * max_bytes, 1 << 20))
    try:
        raw = codec.decompress(payload.data)
        doc = msgspec.msgpack.decode(raw, type=_WireExport)
    except msgspec.DecodeError as exc:
        raise CodecError(f"export body is not a valid sona export: {exc}") from None
    if doc.agent_id != payload.origin:
        raise AuthError(f"export of {doc.agent_id!r} was signed by {payload.origin!r}")
    n = len(doc.qualities)
    if n > MAX_TRAJECTORIES or not (
        len(doc.routes) == len(doc.contexts) == len(doc.timestamps) == len(doc.has_activations) == n
    ):
        raise CodecError("export trajectory columns differ in length")
    if expected_dim is not None and (n or doc.weights is not None) and doc.dim != expected_dim:
        raise InvalidInputError(f"export dimension {doc.dim} != expected {expected_dim}")

    def tensor(blob: bytes, what: str) -> F32:
        try:
            arr = codec.decompress_tensor(blob)
        except EdgeError as exc:
            raise CodecError(f"export {what}: {exc}") from None
        if not np.isfinite(arr).all():
            raise InvalidInputError(f"export {what} contains NaN or infinity")
        return arr

    emb = tensor(doc.embeddings, "embeddings")
    if emb.shape != (n, doc.dim):
        raise CodecError(f"export embeddings have shape {emb.shape}, expected {(n, doc.dim)}")
    acts = tensor(doc.activations, "activations")
    if any(doc.has_activations) and acts.shape != (n, doc.dim):
        raise CodecError("export activations do not match the trajectories")
    if not all(np.isfinite(q) for q in doc.qualities):
        raise InvalidInputError("export qualities must be finite")
    trajs = [
        TrajectoryExport(
            embedding=emb[i],
            quality=float(doc.qualities[i]),
            route=doc.routes[i],
            context=list(doc.contexts[i]),
            timestamp=int(doc.timestamps[i]),
            activations=acts[i] if doc.has_activations[i] else None,
        )
        for i in range(n)
    ]
    weights = None
    if doc.weights is not None:
        ww = doc.weights
        weights = LoraWeights(
            tensor(ww.micro_down, "micro down"),
            tensor(ww.micro_up, "micro up"),
            tensor(ww.base_down, "base down"),
            tensor(ww.base_up, "base up"),
        )
        md, mu, bd, bu = weights.micro_down, weights.micro_up, weights.base_down, weights.base_up
        if not (
            md.ndim == 2
            and mu.shape == (md.shape[1], md.shape[0])
            and bd.ndim == 3
            and bu.shape == (bd.shape[0], bd.shape[2], bd.shape[1])
            and (doc.dim in (0, md.shape[1]))
            and bd.shape[2] == md.shape[1]
        ):
            raise CodecError("export LoRA weights have inconsistent shapes")
    return AgentExport(
        agent_id=doc.agent_id,
        trajectories=trajs,
        stats=AgentExportStats(doc.total_trajectories, doc.avg_quality, doc.patterns_learned),
        session_duration_ms=doc.session_duration_ms,
        timestamp=doc.timestamp,
        weights=weights,
    )
