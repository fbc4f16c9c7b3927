"""``IntelligenceSync``: an agent's learned patterns, shared as a CRDT over the swarm.

Semantics (see also :mod:`ruvector_edge.learning.patterns`):

* **Versions.** The agent's ``local_version`` is a counter bumped by every
  :meth:`IntelligenceSync.update_pattern`; the updated entry carries the new value. A
  replica's version vector maps every origin to the highest version seen from it.
* **Local updates** are a contextual-bandit step: the agent's own entry for
  ``(state, action)`` becomes the running mean of its rewards (``learning_rate=None``,
  the default) or moves by ``learning_rate * (reward - value)``; visits grow by one.
* **Merged view.** ``visits = sum of visits over origins``; ``value = visit-weighted mean``
  of the origins' values. With the default running means that is the mean of every
  reward any agent observed for the pattern.
* **Deltas.** ``get_delta(since)`` holds the entries with ``version > since[origin]``
  (origins missing from ``since`` count as 0). An int ``since`` is shorthand for
  ``{agent_id: since}``: this agent's own entries newer than ``since`` plus every entry
  of other origins. Applying ``get_delta(peer.version_vector())`` to the peer gives it
  exactly what merging the full state would.
* **Own entries.** Only this agent writes its own entries. A peer's copy of them is
  adopted for patterns this agent holds no entry for (warm start after a restart) and
  never overwrites one it holds. If the peer's copy would have won (a stale copy from an
  earlier run, or a forgery), this agent re-issues its entry at a fresh version so its
  copy wins everywhere on the next sync. If a blob reveals own versions above
  ``local_version`` (history this agent forgot), ``local_version`` jumps past them and
  every entry it holds is re-issued above them, so peers that saw the old history still
  receive the new entries in deltas. See :meth:`PatternStore.merge`.
* **Confidence** of ``get_best_action``: ``n / (n + K) * m`` where ``n`` is the best
  action's merged visits, ``K`` is ``confidence_prior`` (5) and ``m`` is
  ``0.5 + 0.5 * gap / (gap + margin_scale)`` with ``gap`` = best value minus the runner-up's
  (``m = 1`` when no other given action has data): a tie gives half the evidence term, a
  gap of ``margin_scale`` (0.1) three quarters, a large gap nearly all of it.

Blob format (``serialize_state`` / ``get_delta``): a :class:`~ruvector_edge.codec.TensorCodec`
bytes blob (magic, level, CRC) holding a msgpack array ``[tag, format_version, sender,
signature, body]`` with ``tag == "ruvector-edge/patterns"`` and ``format_version == 1``.
``body`` is a msgpack array ``[kind, sender, created_ms, local_version, version_vector,
since, count, origins, states, actions, origin_idx, state_idx, action_idx, value, visits,
version, updated_ms]``: name tables plus byte-shuffled little-endian columns (u32 indices,
f64 values, i64 visits/versions/ms). ``signature`` is empty or an Ed25519 signature of
``body`` by the sender's identity with context ``"patterns"``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import msgspec
import numpy as np
from numpy.typing import NDArray

from ruvector_edge.codec import DEFAULT_MAX_DECOMPRESSED_SIZE, CompressionLevel, TensorCodec
from ruvector_edge.errors import AuthError, CodecError, InvalidInputError, SyncError
from ruvector_edge.identity import Identity, now_ms, verify_signature
from ruvector_edge.learning.patterns import (
    DEFAULT_CONFIDENCE_PRIOR,
    MAX_NAME_LENGTH,
    MAX_VERSION,
    EntryBatch,
    EntryRecord,
    MergeStats,
    PatternStats,
    PatternStore,
)

__all__ = [
    "DEFAULT_MARGIN_SCALE",
    "PATTERN_BLOB_TAG",
    "PATTERN_BLOB_VERSION",
    "IntelligenceSync",
    "MergeResult",
    "PatternBlobInfo",
    "SwarmStats",
    "action_confidence",
    "inspect_pattern_blob",
]

PATTERN_BLOB_TAG: Final = "ruvector-edge/patterns"
PATTERN_BLOB_VERSION: Final = 1
#: Value gap at which the margin term of ``get_best_action``'s confidence is 0.75.
DEFAULT_MARGIN_SCALE: Final = 0.1
_SIGNATURE_CONTEXT: Final = "patterns"

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
Version = Annotated[int, msgspec.Meta(ge=0, le=MAX_VERSION)]


class _Head(msgspec.Struct, array_like=True):
    tag: str
    format_version: int


class _Envelope(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    tag: str
    format_version: int
    sender: Name
    signature: bytes
    body: bytes


class _Body(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    kind: Literal["state", "delta"]
    sender: Name
    created_ms: Annotated[int, msgspec.Meta(ge=0)]
    local_version: Version
    version_vector: dict[Name, Version]
    since: dict[Name, Version]
    count: Annotated[int, msgspec.Meta(ge=0)]
    origins: list[Name]
    states: list[Name]
    actions: list[Name]
    origin_idx: bytes
    state_idx: bytes
    action_idx: bytes
    value: bytes
    visits: bytes
    version: bytes
    updated_ms: bytes


_ENCODER: Final = msgspec.msgpack.Encoder()
_HEAD_DECODER: Final = msgspec.msgpack.Decoder(_Head)
_ENVELOPE_DECODER: Final = msgspec.msgpack.Decoder(_Envelope)
_BODY_DECODER: Final = msgspec.msgpack.Decoder(_Body)
_COLUMNS: Final = (
    ("origin_idx", "<u4"),
    ("state_idx", "<u4"),
    ("action_idx", "<u4"),
    ("value", "<f8"),
    ("visits", "<i8"),
    ("version", "<i8"),
    ("updated_ms", "<i8"),
)


@dataclass(frozen=True, slots=True)
class MergeResult:
    """Outcome of :meth:`IntelligenceSync.merge_peer_state`.

    ``merged_patterns``: entries of the peer's blob that changed this replica (new or
    newer ``(origin, state, action)`` entries); ``new_patterns``: ``(state, action)`` pairs
    this agent did not know before; ``local_version``: this agent's version afterwards.
    """

    peer_id: str
    merged_patterns: int
    new_patterns: int
    local_version: int


@dataclass(frozen=True, slots=True)
class SwarmStats:
    """What this replica knows about the swarm's learning.

    ``total_agents``: distinct origins with entries, plus this agent; ``total_patterns``:
    ``(state, action)`` pairs; ``total_visits``: merged visits summed over patterns;
    ``avg_confidence``: mean of ``visits / (visits + confidence_prior)`` over patterns.
    """

    total_agents: int
    total_patterns: int
    total_visits: int
    avg_confidence: float
    local_version: int


@dataclass(frozen=True, slots=True)
class PatternBlobInfo:
    """The header of a pattern blob, as read by :func:`inspect_pattern_blob`."""

    sender: str
    kind: str
    format_version: int
    entry_count: int
    signed: bool
    local_version: int
    version_vector: dict[str, int]
    since: dict[str, int]
    created_ms: int


def action_confidence(
    best_visits: int,
    best_value: float,
    runner_up_value: float | None,
    *,
    prior: float = DEFAULT_CONFIDENCE_PRIOR,
    margin_scale: float = DEFAULT_MARGIN_SCALE,
) -> float:
    """``get_best_action``'s confidence (module docstring): evidence times margin, in [0, 1]."""
    evidence = best_visits / (best_visits + prior)
    if runner_up_value is None:
        return evidence
    gap = max(best_value - runner_up_value, 0.0)
    return evidence * (0.5 + 0.5 * gap / (gap + margin_scale))


# -- blob encoding ------------------------------------------------------------------------


def _shuffle(arr: NDArray[Any], dtype: str) -> bytes:
    a = np.ascontiguousarray(arr, dtype=dtype)
    return a.view(np.uint8).reshape(-1, a.dtype.itemsize).T.tobytes()


def _unshuffle(buf: bytes, dtype: str, n: int, name: str) -> NDArray[Any]:
    dt = np.dtype(dtype)
    if len(buf) != n * dt.itemsize:
        raise SyncError(f"column {name} holds {len(buf)} bytes, expected {n * dt.itemsize}")
    planes = np.frombuffer(buf, np.uint8).reshape(dt.itemsize, n)
    return np.ascontiguousarray(planes.T).view(dt).reshape(n).astype(dt.newbyteorder("="))


def _encode_blob(
    codec: TensorCodec,
    batch: EntryBatch,
    *,
    kind: Literal["state", "delta"],
    sender: str,
    local_version: int,
    version_vector: dict[str, int],
    since: dict[str, int],
    created_ms: int,
    identity: Identity | None,
) -> bytes:
    body = _Body(
        kind=kind,
        sender=sender,
        created_ms=created_ms,
        local_version=local_version,
        version_vector=version_vector,
        since=since,
        count=len(batch),
        origins=batch.origins,
        states=batch.states,
        actions=batch.actions,
        **{name: _shuffle(getattr(batch, name), dt) for name, dt in _COLUMNS},
    )
    body_bytes = _ENCODER.encode(body)
    signature = b""
    if identity is not None:
        if identity.agent_id != sender:
            raise InvalidInputError(
                f"identity belongs to {identity.agent_id!r}, but this replica is {sender!r}; "
                "sign with the agent's own identity"
            )
        signature = identity.sign(body_bytes, context=_SIGNATURE_CONTEXT)
    env = _Envelope(PATTERN_BLOB_TAG, PATTERN_BLOB_VERSION, sender, signature, body_bytes)
    return codec.compress(_ENCODER.encode(env))


def _open_envelope(data: bytes, max_size: int) -> _Envelope:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"pattern blob must be bytes, got {type(data).__name__}")
    raw = TensorCodec(max_decompressed_size=max_size).decompress(data)
    try:
        head = _HEAD_DECODER.decode(raw)
    except (msgspec.MsgspecError, ValueError):  # invalid UTF-8 raises UnicodeDecodeError
        raise SyncError("blob does not hold learning patterns (no pattern-blob header)") from None
    if head.tag != PATTERN_BLOB_TAG:
        raise SyncError(f"blob is a {head.tag[:64]!r} blob, not {PATTERN_BLOB_TAG!r}")
    if head.format_version != PATTERN_BLOB_VERSION:
        raise SyncError(
            f"pattern blob format version {head.format_version} is not supported "
            f"(this build reads version {PATTERN_BLOB_VERSION}); upgrade ruvector-edge"
        )
    try:
        return _ENVELOPE_DECODER.decode(raw)
    except (msgspec.MsgspecError, ValueError) as exc:
        raise SyncError(f"malformed pattern blob envelope: {exc}") from None


def _decode_body(env: _Envelope) -> _Body:
    try:
        body = _BODY_DECODER.decode(env.body)
    except (msgspec.MsgspecError, ValueError) as exc:
        raise SyncError(f"malformed pattern blob body: {exc}") from None
    if body.sender != env.sender:
        raise SyncError(f"blob envelope names {env.sender!r} but its body {body.sender!r}")
    return body


def _check_consistency(body: _Body, batch: EntryBatch) -> None:
    """Refuse a blob whose header and entries contradict each other."""
    vv = body.version_vector
    if body.local_version != vv.get(body.sender, 0):
        raise SyncError(
            f"blob says {body.sender!r} is at version {body.local_version} but its version "
            f"vector says {vv.get(body.sender, 0)}"
        )
    if body.kind == "state" and body.since:
        raise SyncError("a full-state blob must not carry a 'since' vector")
    if not len(batch):
        return
    since = body.since
    ceiling = np.array([vv.get(o, 0) for o in batch.origins], np.int64)
    if (batch.version > ceiling[batch.origin_idx]).any():
        raise SyncError("blob holds entries newer than its own version vector claims")
    floor = np.array([since.get(o, 0) for o in batch.origins] if since else [0], np.int64)
    if since and (batch.version <= floor[batch.origin_idx]).any():
        raise SyncError("delta holds entries its 'since' vector says the receiver has")


def _decode_batch(body: _Body) -> EntryBatch:
    n = body.count
    cols = {name: _unshuffle(getattr(body, name), dt, n, name) for name, dt in _COLUMNS}
    batch = EntryBatch(body.origins, body.states, body.actions, **cols)
    batch.validate()
    _check_consistency(body, batch)
    return batch


def inspect_pattern_blob(
    data: bytes, *, max_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE
) -> PatternBlobInfo:
    """Read a pattern blob's header (sender, kind, counts, versions) without merging it.

    Raises :class:`CodecError` for bytes the codec cannot decode and :class:`SyncError`
    for a decodable blob that is not a well-formed pattern blob.
    """
    env = _open_envelope(data, max_size)
    body = _decode_body(env)
    return PatternBlobInfo(
        sender=body.sender,
        kind=body.kind,
        format_version=env.format_version,
        entry_count=body.count,
        signed=bool(env.signature),
        local_version=body.local_version,
        version_vector=dict(body.version_vector),
        since=dict(body.since),
        created_ms=body.created_ms,
    )


def _since_vector(since: Mapping[str, int] | int, agent_id: str) -> dict[str, int]:
    if isinstance(since, bool):
        raise InvalidInputError("since must be an int version or a version vector, not a bool")
    if isinstance(since, int):
        if since < 0:
            raise InvalidInputError(f"since must be >= 0, got {since}")
        return {agent_id: min(since, MAX_VERSION)} if since else {}
    if not isinstance(since, Mapping):
        raise InvalidInputError(
            f"since must be an int or a dict of origin -> version, got {type(since).__name__}"
        )
    out: dict[str, int] = {}
    for origin, seen in since.items():
        if not isinstance(origin, str) or isinstance(seen, bool) or not isinstance(seen, int):
            raise InvalidInputError(f"version vector entries must be str -> int: {origin!r}")
        if seen < 0:
            raise InvalidInputError(f"version for {origin!r} must be >= 0, got {seen}")
        if seen:
            out[origin] = min(seen, MAX_VERSION)  # nothing is newer than MAX_VERSION
    return out


# -- the agent-facing API -----------------------------------------------------------------


class IntelligenceSync:
    """An agent's learned ``(state, action)`` statistics, mergeable with any peer's.

    Thread-safe: mutations hold a lock; reads take a consistent snapshot under it. Blob
    encoding and decoding run outside the lock.
    """

    def __init__(
        self,
        agent_id: str,
        *,
        learning_rate: float | None = None,
        confidence_prior: float = DEFAULT_CONFIDENCE_PRIOR,
        margin_scale: float = DEFAULT_MARGIN_SCALE,
        codec_level: CompressionLevel | str = CompressionLevel.FAST,
        max_blob_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if not isinstance(agent_id, str) or not 1 <= len(agent_id) <= 128:
            raise InvalidInputError(f"agent_id must be 1-128 characters, got {agent_id!r}")
        if learning_rate is not None and not (
            isinstance(learning_rate, int | float) and 0.0 < learning_rate <= 1.0
        ):
            raise InvalidInputError(f"learning_rate must be in (0, 1] or None: {learning_rate!r}")
        if not (isinstance(margin_scale, int | float) and margin_scale > 0):
            raise InvalidInputError(f"margin_scale must be > 0, got {margin_scale!r}")
        self._agent_id = agent_id
        self._learning_rate = None if learning_rate is None else float(learning_rate)
        self._margin_scale = float(margin_scale)
        self._codec = TensorCodec(codec_level, max_decompressed_size=max_blob_size)
        self._max_blob_size = max_blob_size
        self._clock = clock
        self._store = PatternStore(confidence_prior=confidence_prior)
        self._lock = threading.RLock()

    @classmethod
    def restore(
        cls, data: bytes, *, agent_id: str | None = None, **kwargs: Any
    ) -> IntelligenceSync:
        """A replica rebuilt from a blob this agent wrote (e.g. persisted ``serialize_state``).

        ``agent_id`` defaults to the blob's sender and must match it; ``kwargs`` go to the
        constructor. The agent's counter resumes after the restored entries.
        """
        env = _open_envelope(data, kwargs.get("max_blob_size", DEFAULT_MAX_DECOMPRESSED_SIZE))
        owner = agent_id if agent_id is not None else env.sender
        sync = cls(owner, **kwargs)
        sync.merge_peer_state(owner, data)
        return sync

    def copy(self) -> IntelligenceSync:
        """An independent deep copy (same agent id and settings)."""
        out = IntelligenceSync.__new__(IntelligenceSync)
        with self._lock:
            out.__dict__.update(self.__dict__)
            out._store = self._store.copy()
        out._lock = threading.RLock()
        return out

    # -- properties -----------------------------------------------------------------

    @property
    def agent_id(self) -> str:
        """This agent's id (the origin of its own entries)."""
        return self._agent_id

    @property
    def local_version(self) -> int:
        """This agent's counter: bumped by every local update."""
        with self._lock:
            return self._store.max_version(self._agent_id)

    @property
    def store(self) -> PatternStore:
        """The underlying replica (not thread-safe; hold no reference across threads)."""
        return self._store

    def __repr__(self) -> str:
        return f"IntelligenceSync({self._agent_id!r}, patterns={len(self._store)})"

    # -- learning -------------------------------------------------------------------

    def update_pattern(self, state: str, action: str, reward: float) -> None:
        """Fold ``reward`` for taking ``action`` in ``state`` into this agent's own entry."""
        with self._lock:
            version = self._store.max_version(self._agent_id) + 1
            self._store.record(
                self._agent_id,
                state,
                action,
                reward,
                version=version,
                updated_ms=max(0, int(self._clock())),
                learning_rate=self._learning_rate,
            )

    def get_best_action(self, state: str, actions: Sequence[str]) -> tuple[str, float] | None:
        """The given action with the best merged value in ``state`` and its confidence.

        Only actions with data count; ties go to the earliest in ``actions``. Returns None
        if none of them has data. Confidence: see the module docstring.
        """
        if isinstance(actions, str) or not isinstance(actions, Sequence):
            raise InvalidInputError("actions must be a sequence of action names")
        if not isinstance(state, str):
            raise InvalidInputError(f"state must be a str, got {state!r:.80}")
        names = list(dict.fromkeys(actions))
        if any(not isinstance(a, str) for a in names):
            raise InvalidInputError("every action must be a str")
        with self._lock:
            found = self._store.candidates(state, names)
        if not found:
            return None
        best = found[0]
        for cand in found[1:]:
            if cand[1] > best[1]:
                best = cand
        runner_up = max((c[1] for c in found if c is not best), default=None)
        confidence = action_confidence(
            best[2],
            best[1],
            runner_up,
            prior=self._store.confidence_prior,
            margin_scale=self._margin_scale,
        )
        return names[best[0]], confidence

    def get_pattern(self, state: str, action: str) -> PatternStats | None:
        """Merged statistics of one ``(state, action)``, or None."""
        with self._lock:
            return self._store.get(state, action)

    # -- sync -----------------------------------------------------------------------

    def version_vector(self) -> dict[str, int]:
        """``{origin: highest version seen}`` (what to send in REQUEST_PATTERNS)."""
        with self._lock:
            return self._store.version_vector()

    def serialize_state(self, *, identity: Identity | None = None) -> bytes:
        """Every entry this replica holds, as a compressed, self-describing blob.

        With ``identity`` (this agent's) the blob is signed, so a relay cannot alter it.
        """
        return self._export(None, identity)

    def get_delta(
        self,
        since: Mapping[str, int] | int = 0,
        *,
        identity: Identity | None = None,
        max_entries: int = 0,
    ) -> bytes:
        """Entries with ``version > since[origin]``, as a blob for :meth:`merge_peer_state`.

        ``since`` is a peer's version vector; an int means ``{agent_id: since}`` (see the
        module docstring). ``max_entries`` > 0 sends whole origins up to about that many
        entries (at least one origin); the blob's version vector names only those, so the
        peer asks again for the rest.
        """
        return self._export(_since_vector(since, self._agent_id), identity, max_entries)

    def _export(
        self, since: dict[str, int] | None, identity: Identity | None, max_entries: int = 0
    ) -> bytes:
        with self._lock:
            batch = self._store.select(since, max_entries=max_entries)
            vv = self._store.version_vector()
        if since is not None:
            # A delta's header speaks only of the origins it carries, so its size and the
            # receiver's checks grow with the change, not with the swarm.
            vv = {o: vv[o] for o in batch.origins}
            since = {o: since[o] for o in batch.origins if o in since}
        return _encode_blob(
            self._codec,
            batch,
            kind="state" if since is None else "delta",
            sender=self._agent_id,
            local_version=vv.get(self._agent_id, 0),
            version_vector=vv,
            since=since or {},
            created_ms=max(0, int(self._clock())),
            identity=identity,
        )

    def get_own_delta(self, since: int = 0, *, identity: Identity | None = None) -> bytes:
        """Only this agent's own entries with ``version > since``, as a delta blob.

        What an agent sends its coordinator: entries it learned from others are not echoed
        back (the coordinator, merging with ``only_origins``, would refuse them anyway).
        """
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidInputError(f"since must be an int version >= 0, got {since!r}")
        me = self._agent_id
        since = min(since, MAX_VERSION)
        with self._lock:
            batch = self._store.select_origin(me, since)
            version = self._store.max_version(me)
        # The header speaks only of this origin: O(own entries), whatever the swarm's size.
        return _encode_blob(
            self._codec,
            batch,
            kind="delta",
            sender=me,
            local_version=version,
            version_vector={me: version} if version else {},
            since={me: since} if since else {},
            created_ms=max(0, int(self._clock())),
            identity=identity,
        )

    def merge_peer_state(
        self,
        peer_id: str,
        data: bytes,
        *,
        public_key: bytes | None = None,
        only_origins: Collection[str] | None = None,
    ) -> MergeResult:
        """Merge a blob written by ``peer_id`` (its full state or a delta).

        With ``public_key`` (the peer's Ed25519 key) the blob must carry a valid signature
        by it, else :class:`AuthError`. With ``only_origins`` every entry must belong to one
        of those origins, else :class:`AuthError` (a coordinator accepts from an agent only
        what that agent learned itself, so no member can forge another's statistics).
        Undecodable bytes raise :class:`CodecError`; a foreign, inconsistent or out-of-range
        blob raises :class:`SyncError`. On any error this replica is left untouched.
        Merging the same blob again changes nothing.
        """
        env = _open_envelope(data, self._max_blob_size)
        if env.sender != peer_id:
            raise SyncError(
                f"blob was written by {env.sender!r}, not {peer_id!r}; pass the author's id "
                "(inspect_pattern_blob() reads it)"
            )
        if public_key is not None:
            if not env.signature:
                raise AuthError(f"blob from {peer_id!r} is unsigned but a public key was given")
            verify_signature(public_key, env.body, env.signature, context=_SIGNATURE_CONTEXT)
        batch = _decode_batch(_decode_body(env))
        if only_origins is not None and batch.origin_idx.size:
            used = {batch.origins[i] for i in np.unique(batch.origin_idx).tolist()}
            foreign = sorted(used.difference(only_origins))
            if foreign:
                raise AuthError(
                    f"blob from {peer_id!r} carries entries of other origins "
                    f"({', '.join(repr(o) for o in foreign[:3])}); only "
                    f"{sorted(only_origins)!r} may be sent on this link",
                    code="foreign_origin",
                )
        with self._lock:
            stats = self._store.merge(batch, owner=self._agent_id, validated=True)
            return MergeResult(
                peer_id, stats.applied, stats.new_keys, self._store.max_version(self._agent_id)
            )

    def merge_entries(self, batch: EntryBatch) -> MergeStats:
        """Merge an in-process :class:`EntryBatch` (bulk load, consolidation) under the lock,
        with the same own-entry protection as :meth:`merge_peer_state`."""
        with self._lock:
            return self._store.merge(batch, owner=self._agent_id)

    # -- reads ----------------------------------------------------------------------

    def get_swarm_stats(self) -> SwarmStats:
        """Totals of the merged view (see :class:`SwarmStats`)."""
        with self._lock:
            vv = self._store.version_vector()
            patterns, visits, confidence = self._store.totals()
        agents = len(vv) + (self._agent_id not in vv)
        return SwarmStats(agents, patterns, visits, confidence, vv.get(self._agent_id, 0))

    def get_state(self) -> dict[tuple[str, str], PatternStats]:
        """Snapshot of the merged view: ``{(state, action): PatternStats(value, visits,
        confidence, origins, updated_ms)}``; ``confidence = visits / (visits + K)``."""
        with self._lock:
            view = self._store.view()
        return view.to_dict()

    def entries(self) -> list[EntryRecord]:
        """Snapshot of the replica table, one record per ``(origin, state, action)``."""
        with self._lock:
            batch = self._store.select(None)
        return batch.records()
