"""The memory sync format and the last-writer-wins order.

A sync blob is a :class:`TensorCodec` byte blob (LZ4, CRC-checked) around a msgpack
:class:`Snapshot`: format name and version, the sender, the change-sequence window it
covers, entries (without vectors), tombstones, and all entry vectors as one
self-describing tensor blob ``(n, dim)`` (lossless by default, quantized on request).

Versions are ordered by ``(timestamp, owner, kind, digest)``: later timestamp wins,
ties go to the greater agent id, then a tombstone beats an entry, then the greater
SHA-256 of the entry's content, metadata and vector bytes. The order is total, so
merging is commutative, associative and idempotent (a last-writer-wins register per id).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from ruvector_edge.codec import CompressionLevel, TensorCodec
from ruvector_edge.errors import CodecError, InvalidInputError, SyncError
from ruvector_edge.memory._filter import validate_metadata_value

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Snapshot",
    "Version",
    "WireEntry",
    "WireTombstone",
    "decode_snapshot",
    "encode_snapshot",
    "entry_digest",
]

FORMAT: Final = "ruvector-memory"
FORMAT_VERSION: Final = 1
MAX_ID_LEN: Final = 256
_I64_MAX: Final = (1 << 63) - 1

Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LEN)]
Stamp = Annotated[int, msgspec.Meta(ge=0, le=_I64_MAX)]
Count = Annotated[int, msgspec.Meta(ge=0, le=_I64_MAX)]


class WireEntry(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """One entry version without its vector."""

    id: Ident
    content: Annotated[str, msgspec.Meta(min_length=1)]
    metadata: dict[str, Any]
    timestamp: Stamp
    owner: Ident


class WireTombstone(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A delete: the id, and the version time and agent of the delete."""

    id: Ident
    timestamp: Stamp
    owner: Ident


class Snapshot(msgspec.Struct, kw_only=True):
    """The payload of a sync blob."""

    format: str
    format_version: int
    origin: Ident
    dim: Count
    metric: str
    since: Count
    version: Count
    entries: list[WireEntry]
    tombstones: list[WireTombstone]
    vectors: bytes


@dataclass(frozen=True, slots=True)
class Decoded:
    """A validated snapshot and its vectors (``(len(entries), dim)`` float32)."""

    snapshot: Snapshot
    vectors: NDArray[np.float32]


# (timestamp, owner, kind) with kind 0 = entry, 1 = tombstone; digest breaks exact ties.
Version = tuple[int, str, int]

_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(Snapshot)
_OUTER: Final = TensorCodec(CompressionLevel.FAST)


def entry_digest(content: str, metadata_blob: bytes, vector: NDArray[np.float32]) -> bytes:
    """SHA-256 over an entry version's payload (the last tie-breaker)."""
    h = hashlib.sha256()
    h.update(len(content).to_bytes(8, "little"))
    h.update(content.encode("utf-8", "surrogatepass"))
    h.update(len(metadata_blob).to_bytes(8, "little"))
    h.update(metadata_blob)
    h.update(np.ascontiguousarray(vector, dtype=np.float32).tobytes())
    return h.digest()


def encode_snapshot(
    *,
    origin: str,
    dim: int,
    metric: str,
    since: int,
    version: int,
    entries: list[WireEntry],
    tombstones: list[WireTombstone],
    vectors: NDArray[np.float32],
    level: CompressionLevel,
) -> bytes:
    """Build a sync blob."""
    codec = TensorCodec(level)
    vec_blob = codec.compress_tensor(vectors) if len(entries) else b""
    snap = Snapshot(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        origin=origin,
        dim=dim,
        metric=metric,
        since=since,
        version=version,
        entries=entries,
        tombstones=tombstones,
        vectors=vec_blob,
    )
    return _OUTER.compress(_ENCODER.encode(snap))


def decode_snapshot(data: bytes | bytearray | memoryview) -> Decoded:
    """Parse and fully validate a sync blob; any defect raises :class:`SyncError`."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SyncError(f"memory sync data must be bytes, got {type(data).__name__}")
    try:
        raw = _OUTER.decompress(data)
    except CodecError as exc:
        raise SyncError(f"memory sync data is corrupt or not a sync blob: {exc}") from None
    try:
        snap = _DECODER.decode(raw)
    except msgspec.MsgspecError as exc:
        raise SyncError(f"memory sync payload is malformed: {exc}") from None
    if snap.format != FORMAT:
        raise SyncError(f"not a memory sync blob (format {snap.format!r}, expected {FORMAT!r})")
    if snap.format_version != FORMAT_VERSION:
        raise SyncError(
            f"memory sync format version {snap.format_version} is not supported "
            f"(this build reads {FORMAT_VERSION}); upgrade the older peer"
        )
    n = len(snap.entries)
    if n:
        if snap.dim < 1:
            raise SyncError("memory sync blob has entries but no dimension")
        try:
            vectors = TensorCodec().decompress_tensor(snap.vectors)
        except CodecError as exc:
            raise SyncError(f"memory sync vectors are corrupt: {exc}") from None
        if vectors.shape != (n, snap.dim):
            raise SyncError(
                f"memory sync vectors have shape {vectors.shape}, expected {(n, snap.dim)}"
            )
        if not np.isfinite(vectors).all():
            raise SyncError("memory sync vectors contain NaN or infinity")
    else:
        if snap.vectors:
            raise SyncError("memory sync blob has vectors but no entries")
        vectors = np.zeros((0, max(snap.dim, 0)), dtype=np.float32)
    for e in snap.entries:
        if not e.content.strip():
            raise SyncError(f"memory sync entry {e.id!r} has empty content")
        try:
            validate_metadata_value(e.metadata)
        except InvalidInputError as exc:
            raise SyncError(f"memory sync entry {e.id!r} has bad metadata: {exc}") from None
    return Decoded(snap, vectors)
