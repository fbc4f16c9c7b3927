"""``VectorMemory``: an agent's vector store with HNSW search, filters, tiers, sync and disk.

Design in one paragraph: every entry owns a *slot* (a small integer, reused after a
delete or eviction) that is also its usearch key. Each storage tier has its own usearch
index holding that tier's representation (see :mod:`._tiers`); a search queries the
non-empty tiers and merges by score. Numeric per-entry state (tier, access count,
decayed access frequency, change sequence) lives in numpy arrays indexed by slot so
rebalancing and deltas are vectorized. Eviction order is an ``OrderedDict`` (LRU moves
an id to the end on use; FIFO never moves), so picking a victim is O(1). A
writer-preferring readers-writer lock guards the structure; searches share it and bump
the access statistics of their hits only, under a separate small lock.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np
from numpy.typing import ArrayLike, NDArray

from ruvector_edge.codec import CompressionLevel
from ruvector_edge.errors import (
    AuthError,
    ConfigError,
    DimensionError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    SyncError,
)
from ruvector_edge.memory._filter import (
    MetadataIndex,
    compile_filter,
    decode_metadata,
    normalize_metadata,
)
from ruvector_edge.memory._rwlock import RWLock
from ruvector_edge.memory._store import DB_NAME, EntryRow, SqliteStore
from ruvector_edge.memory._sync import (
    MAX_ID_LEN,
    WireEntry,
    WireTombstone,
    decode_snapshot,
    encode_snapshot,
)
from ruvector_edge.memory._tiers import TierIndex
from ruvector_edge.memory.types import (
    EvictionPolicy,
    MemoryStats,
    MergeReport,
    Metric,
    RebalanceReport,
    SearchHit,
    SearchRecords,
    SyncDelta,
    Tier,
    TierPolicy,
    VectorEntry,
)

__all__ = ["VectorMemory"]

F32 = NDArray[np.float32]
Keys = NDArray[np.uint64]

DEFAULT_CONNECTIVITY: Final = 32
DEFAULT_EF_CONSTRUCTION: Final = 200
DEFAULT_EF_SEARCH: Final = 64
# Filtered search: at most this many matching entries are scored exactly (brute force over
# the matching subset); above it, HNSW results are oversampled and filtered.
DEFAULT_EXACT_FILTER_LIMIT: Final = 1024
_FILTER_OVERSAMPLE: Final = 1.5
_MAX_PENDING_USES: Final = 1 << 16
_new_hit: Final = tuple.__new__  # SearchHit without the NamedTuple __new__ wrapper
_SORTED_ENC: Final = msgspec.msgpack.Encoder(order="sorted")
_TIERS: Final = tuple(Tier)


@dataclass(slots=True)
class _Rec:
    """Per-entry fields that are not numbers in the slot arrays."""

    id: str
    content: str
    metadata: dict[str, Any]
    timestamp: int
    owner: str
    slot: int
    access: int = 0  # search hits on this replica


@dataclass(slots=True)
class _Item:
    """An entry version about to be written (local store or a merge winner)."""

    id: str
    content: str
    metadata: dict[str, Any]
    meta_blob: bytes
    timestamp: int
    owner: str
    row: int  # row in the accompanying vector matrix


def _check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_content(content: object) -> str:
    if not isinstance(content, str):
        raise InvalidInputError(f"content must be a str, got {type(content).__name__}")
    if not content.strip():
        raise InvalidInputError("content is empty; store some text with the embedding")
    return content


def _check_id(id: object) -> str:
    if not isinstance(id, str) or not id or len(id) > MAX_ID_LEN:
        raise InvalidInputError(f"id must be a non-empty str of at most {MAX_ID_LEN} characters")
    return id


def _digest(content: str, metadata: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(_SORTED_ENC.encode([content, metadata])).digest()


def _grow(arr: NDArray[Any], size: int, fill: float = 0) -> NDArray[Any]:
    if arr.shape[0] >= size:
        return arr
    out = np.full(max(size, 2 * arr.shape[0], 64), fill, dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


class VectorMemory:
    """A bounded vector memory for one agent.

    ``VectorMemory(agent_id, max_entries, dim=None, metric="cosine")`` keeps up to
    ``max_entries`` entries in RAM behind usearch HNSW indexes (``connectivity`` = M,
    ``ef_construction``, ``ef_search``; seed defaults 32/200/64). ``dim`` is fixed by the
    first stored vector when not given. Scores are "higher is better" (see
    :class:`Metric`). When full, storing evicts by ``eviction`` (``"lru"`` default, or
    ``"fifo"``). ``tiers`` (a :class:`TierPolicy`) turns on adaptive storage tiers;
    without it every vector stays float32.

    With ``data_dir`` the memory is persistent: every acknowledged ``store``/``delete``/
    ``merge`` is committed to SQLite before the call returns, so a kill -9 loses nothing
    acknowledged; reopening rebuilds the HNSW indexes from SQLite unless the index files
    written by :meth:`close`/:meth:`save` are current.

    Thread-safe: searches run concurrently; writes are exclusive.
    """

    def __init__(
        self,
        agent_id: str,
        max_entries: int = 100_000,
        dim: int | None = None,
        metric: str | Metric | None = None,
        *,
        eviction: str | EvictionPolicy = EvictionPolicy.LRU,
        connectivity: int = DEFAULT_CONNECTIVITY,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        ef_search: int = DEFAULT_EF_SEARCH,
        tiers: TierPolicy | None = None,
        exact_filter_limit: int = DEFAULT_EXACT_FILTER_LIMIT,
        data_dir: str | os.PathLike[str] | None = None,
        synchronous: str = "normal",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(agent_id, str) or not agent_id or len(agent_id) > MAX_ID_LEN:
            raise ConfigError(
                f"agent_id must be a non-empty str of at most {MAX_ID_LEN} characters"
            )
        self.agent_id = agent_id
        self.max_entries = _check_positive_int("max_entries", max_entries)
        if dim is not None:
            _check_positive_int("dim", dim)
        self._dim: int | None = dim
        self._metric_given = metric is not None
        self.metric = Metric.parse(metric if metric is not None else Metric.COSINE)
        self.eviction = EvictionPolicy.parse(eviction)
        self.connectivity = _check_positive_int("connectivity", connectivity, 2)
        self.ef_construction = _check_positive_int("ef_construction", ef_construction)
        self.ef_search = _check_positive_int("ef_search", ef_search)
        if tiers is not None and not isinstance(tiers, TierPolicy):
            raise ConfigError(f"tiers must be a TierPolicy or None, got {tiers!r}")
        self.tier_policy = tiers
        self.exact_filter_limit = _check_positive_int("exact_filter_limit", exact_filter_limit, 0)
        self._clock = clock

        self._rw = RWLock()
        self._touch_lock = threading.Lock()
        self._db_lock = threading.Lock()

        self._by_id: dict[str, _Rec] = {}
        self._slot_rec: list[_Rec | None] = []
        self._free: list[int] = []
        self._tier_of = np.zeros(0, dtype=np.int8)
        self._freq = np.zeros(0, dtype=np.float64)
        self._ftime = np.zeros(0, dtype=np.float64)
        self._seq_of = np.zeros(0, dtype=np.int64)
        self._order: OrderedDict[str, None] = OrderedDict()
        # LRU uses recorded by searches, applied to _order in bulk (see _sync_order).
        self._pending_uses: list[Keys] = []
        self._pending_count = 0
        self._meta = MetadataIndex()
        self._tiers: dict[Tier, TierIndex] = {}
        self._tombstones: dict[str, tuple[int, str, int]] = {}
        self._seq = 0
        self._last_ts = 0
        self._order_pos = 0
        self._evictions = 0
        self._searches = 0
        self._writes_since_rebalance = 0
        self._store: SqliteStore | None = None
        self._data_dir: Path | None = None
        self._closed = False

        if data_dir is not None:
            self._attach(Path(data_dir), synchronous)

    # ================================================================ construction
    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str],
        agent_id: str | None = None,
        max_entries: int | None = None,
        dim: int | None = None,
        metric: str | Metric | None = None,
        **kwargs: Any,
    ) -> VectorMemory:
        """Open (or create) a persistent memory in ``data_dir``.

        ``agent_id`` and ``max_entries`` default to what the directory records (a new
        directory needs an ``agent_id``; its capacity defaults to 100,000).
        """
        path = Path(data_dir)
        if agent_id is None:
            stored = _peek_meta(path, "agent_id")
            if not isinstance(stored, str):
                raise ConfigError(f"{path} holds no memory yet; pass agent_id to create one there")
            agent_id = stored
        if max_entries is None:
            stored_max = _peek_meta(path, "max_entries")
            max_entries = int(stored_max) if isinstance(stored_max, int) else 100_000
        return cls(agent_id, max_entries, dim, metric, data_dir=path, **kwargs)

    @classmethod
    def load(cls, directory: str | os.PathLike[str], **kwargs: Any) -> VectorMemory:
        """An in-RAM copy of the memory saved in ``directory`` (not attached to it)."""
        path = Path(directory)
        if not (path / DB_NAME).exists():
            raise StorageError(f"{path} contains no saved memory ({DB_NAME} is missing)")
        agent_id = kwargs.pop("agent_id", None) or _peek_meta(path, "agent_id")
        if not isinstance(agent_id, str):
            raise StorageError(f"{path / DB_NAME} records no agent_id; it is not a saved memory")
        max_entries = kwargs.pop("max_entries", None) or _peek_meta(path, "max_entries")
        mem = cls(agent_id, int(max_entries or 100_000), **kwargs)
        store = SqliteStore(path / DB_NAME)
        try:
            mem._load_from(store, path, attached=False)
        finally:
            store.close()
        return mem

    def _attach(self, path: Path, synchronous: str) -> None:
        store = SqliteStore(path / DB_NAME, synchronous=synchronous)
        try:
            self._load_from(store, path, attached=True)
            store.set_meta(
                {
                    "agent_id": self.agent_id,
                    "max_entries": self.max_entries,
                    "metric": self.metric.value,
                    "dim": self._dim,
                }
            )
        except BaseException:
            store.close()
            raise
        self._store = store
        self._data_dir = path

    def _load_from(self, store: SqliteStore, path: Path, *, attached: bool) -> None:
        stored_metric = store.get_meta("metric")
        if stored_metric is not None:
            m = Metric.parse(stored_metric)
            if self._metric_given and m is not self.metric:
                raise ConfigError(
                    f"{path} holds a {m.value} memory; open it with metric={m.value!r}"
                )
            self.metric = m
        stored_dim = store.get_meta("dim")
        if stored_dim is not None:
            if self._dim is not None and self._dim != stored_dim:
                raise DimensionError(
                    f"{path} holds {stored_dim}-dimensional vectors, not {self._dim}"
                )
            self._dim = int(stored_dim)
        self._evictions = int(store.get_meta("evictions") or 0)

        index_ok = self._dim is not None and self._index_files_current(store, path)
        recs_by_tier: dict[Tier, list[int]] = {t: [] for t in _TIERS}
        vecs_by_tier: dict[Tier, list[bytes]] = {t: [] for t in _TIERS}
        max_slot = -1
        for row in store.entries(with_vectors=not index_ok):
            (eid, content, mblob, ts, owner, acc, tier, seq, freq, ftime, pos, slot) = row[:12]
            try:
                meta = decode_metadata(mblob)
            except (msgspec.MsgspecError, InvalidInputError) as exc:
                raise StorageError(f"{path}: metadata of entry {eid!r} is corrupt: {exc}") from None
            rec = _Rec(eid, content, meta, int(ts), owner, int(slot))
            self._ensure_slot_capacity(rec.slot + 1)
            if self._slot_rec[rec.slot] is not None:
                raise StorageError(
                    f"{path}: two entries share slot {rec.slot}; the file is corrupt"
                )
            self._slot_rec[rec.slot] = rec
            self._by_id[eid] = rec
            self._order[eid] = None
            self._meta.add(rec.slot, meta)
            t = Tier(int(tier)) if self.tier_policy is not None else Tier.HOT
            self._tier_of[rec.slot] = t.value
            rec.access = int(acc)
            self._freq[rec.slot] = freq
            self._ftime[rec.slot] = ftime
            self._seq_of[rec.slot] = seq
            self._seq = max(self._seq, int(seq))
            self._last_ts = max(self._last_ts, rec.timestamp)
            self._order_pos = max(self._order_pos, int(pos))
            max_slot = max(max_slot, rec.slot)
            recs_by_tier[t].append(rec.slot)
            if not index_ok:
                vecs_by_tier[t].append(row[12])
        for eid, ts, owner, seq in store.tombstones():
            self._tombstones[eid] = (int(ts), owner, int(seq))
            self._seq = max(self._seq, int(seq))
            self._last_ts = max(self._last_ts, int(ts))
        self._free = [s for s in range(max_slot + 1) if self._slot_rec[s] is None][::-1]
        del self._slot_rec[max_slot + 1 :]
        if self._dim is None:
            return
        dim = self._dim
        if index_ok:
            for t in _TIERS:
                f = path / _index_name(t)
                if f.exists():
                    idx = self._tier(t)
                    idx.load(f)
                    if len(idx) != len(recs_by_tier[t]):
                        raise StorageError(f"index file {f} does not match the database")
        else:
            for t in _TIERS:
                if not recs_by_tier[t]:
                    continue
                blobs = vecs_by_tier[t]
                if any(len(b) != 4 * dim for b in blobs):
                    raise StorageError(f"{path}: a stored vector does not have {dim} float32s")
                mat = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(-1, dim)
                self._tier(t).add(np.asarray(recs_by_tier[t], dtype=np.uint64), mat)
        if len(self._by_id) > self.max_entries:
            with self._rw.write():
                self._evict_for_load(
                    len(self._by_id) - self.max_entries, store if attached else None
                )

    def _index_files_current(self, store: SqliteStore, path: Path) -> bool:
        gen = store.get_meta("generation")
        if gen is None or store.get_meta("index_generation") != gen:
            return False
        if store.get_meta("index_params") != self._index_params():
            return False
        for t in _TIERS:
            want = store.get_meta(f"index_sha_{t.name}")
            f = path / _index_name(t)
            if want is None:
                if f.exists():
                    return False
                continue
            if not f.exists() or _sha256_file(f) != want:
                return False
            aux = f.with_name(f.name + ".aux.npy")
            if not aux.exists() or _sha256_file(aux) != store.get_meta(f"index_aux_sha_{t.name}"):
                return False
        return True

    def _index_params(self) -> str:
        return (
            f"{self._dim}:{self.metric.value}:{self.connectivity}:{self.ef_construction}"
            f":{int(self.tier_policy is not None)}"
        )

    def _evict_for_load(self, count: int, store: SqliteStore | None) -> None:
        """Shrink to a smaller ``max_entries`` (only an attached directory is rewritten)."""
        self._sync_order()
        victims = [eid for eid, _ in zip(self._order, range(count), strict=False)]
        if store is not None:
            store.write(deletes=victims, meta={"evictions": self._evictions + len(victims)})
        self._remove_entries([self._by_id[v] for v in victims])
        self._evictions += len(victims)

    # ================================================================ basics
    @property
    def dim(self) -> int | None:
        """Vector dimension (None until the first vector is stored or merged)."""
        return self._dim

    @property
    def version(self) -> int:
        """Local change sequence: grows with every store, delete and merged change."""
        return self._seq

    @property
    def data_dir(self) -> Path | None:
        """The directory this memory persists to, if any."""
        return self._data_dir

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, id: object) -> bool:
        return id in self._by_id

    def ids(self) -> list[str]:
        """All entry ids, in eviction order (next victim first)."""
        with self._rw.read(), self._touch_lock:
            self._apply_uses()
            return list(self._order)

    def __repr__(self) -> str:
        return (
            f"VectorMemory(agent_id={self.agent_id!r}, entries={len(self)}, "
            f"max_entries={self.max_entries}, dim={self._dim}, metric={self.metric.value!r})"
        )

    def __enter__(self) -> VectorMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("this memory was closed; open it again to use it")

    # ================================================================ validation
    def _as_vectors(self, embeddings: ArrayLike, *, what: str = "embedding") -> F32:
        """A finite float32 ``(n, dim)`` batch; a 1-D input becomes one row."""
        try:
            arr = np.asarray(embeddings)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{what} is not a numeric vector: {exc}") from None
        if arr.dtype.kind not in "biuf":
            raise InvalidInputError(f"{what} must be real numbers, got dtype {arr.dtype}")
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            raise DimensionError(f"{what} must be a 1-D vector, got shape {np.shape(embeddings)}")
        if arr.shape[1] == 0:
            raise DimensionError(f"{what} has no dimensions")
        if self._dim is not None and arr.shape[1] != self._dim:
            raise DimensionError(
                f"{what} has dimension {arr.shape[1]}, but this memory holds "
                f"{self._dim}-dimensional vectors"
            )
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.ascontiguousarray(arr, dtype=np.float32)
        if not np.isfinite(out).all():
            raise InvalidInputError(
                f"{what} contains NaN or infinity (or values beyond float32 range)"
            )
        if self.metric is Metric.COSINE and out.size and not np.abs(out).max(axis=1).all():
            raise InvalidInputError(
                f"{what} is the zero vector, which has no direction under the cosine metric"
            )
        return out

    def _as_query(self, query: ArrayLike) -> F32:
        if isinstance(query, np.ndarray) and query.dtype == np.float32 and query.ndim == 1:
            q = query
            if self._dim is not None and q.shape[0] != self._dim:
                raise DimensionError(
                    f"query has dimension {q.shape[0]}, but this memory holds "
                    f"{self._dim}-dimensional vectors"
                )
            # max/min propagate NaN and expose +-inf, so two reductions check finiteness
            # (and non-zero-ness); anything odd takes the precise checks below.
            hi, lo = float(q.max()), float(q.min())
            if (
                -math.inf < lo
                and hi < math.inf
                and (hi != 0.0 or lo != 0.0 or self.metric is not Metric.COSINE)
            ):
                return q
        rows = self._as_vectors(query, what="query")
        if rows.shape[0] != 1 or np.ndim(query) != 1:
            raise DimensionError(f"query must be one 1-D vector, got shape {np.shape(query)}")
        out: F32 = rows[0]
        return out

    @staticmethod
    def _check_k(top_k: object) -> int:
        if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer):
            raise InvalidInputError(f"top_k must be an int, got {top_k!r}")
        if top_k < 0:
            raise InvalidInputError(f"top_k must be >= 0, got {top_k}")
        return int(top_k)

    # ================================================================ slots and tiers
    def _ensure_slot_capacity(self, size: int) -> None:
        if len(self._slot_rec) < size:
            self._slot_rec.extend([None] * (size - len(self._slot_rec)))
        if self._tier_of.shape[0] < size:
            self._tier_of = _grow(self._tier_of, size)
            self._freq = _grow(self._freq, size)
            self._ftime = _grow(self._ftime, size)
            self._seq_of = _grow(self._seq_of, size)

    def _tier(self, tier: Tier) -> TierIndex:
        idx = self._tiers.get(tier)
        if idx is None:
            assert self._dim is not None
            idx = TierIndex(
                tier,
                self._dim,
                self.metric,
                connectivity=self.connectivity,
                expansion_add=self.ef_construction,
                expansion_search=self.ef_search,
            )
            self._tiers[tier] = idx
        return idx

    def set_ef_search(self, ef: int) -> None:
        """Change the HNSW search beam width (``ef_search``) of every tier, live.

        Higher finds more true neighbours and costs more per search; a caller with a
        latency budget (the ruvLLM retriever) tunes it while serving.
        """
        self.ef_search = _check_positive_int("ef_search", ef)
        with self._rw.write():
            for idx in self._tiers.values():
                # usearch defines this setter, but interleaved with another property's,
                # which its type hints (as mypy reads them) lose.
                idx.index.expansion_search = self.ef_search  # type: ignore[misc]

    def _active_tiers(self) -> list[TierIndex]:
        return [t for t in self._tiers.values() if len(t)]

    def _ensure_dim(self, dim: int) -> None:
        if self._dim is None:
            self._dim = dim
            if self._store is not None:
                self._store.set_meta({"dim": dim})
        elif dim != self._dim:
            raise DimensionError(
                f"vectors have dimension {dim}, but this memory holds {self._dim}-dimensional "
                "vectors"
            )

    def _next_ts(self, after: int = -1) -> int:
        now = int(self._clock() * 1_000_000)
        ts = max(now, self._last_ts + 1, after + 1)
        self._last_ts = ts
        return ts

    def _initial_tier(self) -> tuple[Tier, float]:
        p = self.tier_policy
        if p is None:
            return Tier.HOT, 0.0
        return p.initial, p.initial_frequency()

    # ================================================================ writes
    def store(
        self,
        content: str,
        embedding: ArrayLike,
        metadata: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
    ) -> str:
        """Store one entry and return its id (a new random id unless ``id`` is given).

        Storing under an existing ``id`` replaces that entry (a newer version). When the
        memory is full, the eviction policy makes room first.
        """
        _check_content(content)
        vec = self._as_vectors(embedding)
        if np.ndim(embedding) != 1:
            raise DimensionError(
                f"embedding must be one 1-D vector, got shape {np.shape(embedding)}"
            )
        return self.store_many([content], vec, [metadata], ids=[id])[0]

    def store_many(
        self,
        contents: Sequence[str],
        embeddings: ArrayLike,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
    ) -> list[str]:
        """Store many entries in one batch (one HNSW insert, one transaction)."""
        self._check_open()
        n = len(contents)
        for c in contents:
            _check_content(c)
        if metadatas is not None and len(metadatas) != n:
            raise InvalidInputError(f"got {n} contents but {len(metadatas)} metadata mappings")
        if ids is not None and len(ids) != n:
            raise InvalidInputError(f"got {n} contents but {len(ids)} ids")
        metas = [normalize_metadata(m) for m in (metadatas or [None] * n)]
        vecs = self._as_vectors(embeddings, what="embeddings" if n != 1 else "embedding")
        if vecs.shape[0] != n:
            raise InvalidInputError(f"got {n} contents but {vecs.shape[0]} embeddings")
        chosen: list[str] = []
        seen: set[str] = set()
        for i in range(n):
            given = ids[i] if ids is not None else None
            eid = _check_id(given) if given is not None else os.urandom(16).hex()
            if eid in seen:
                raise InvalidInputError(f"id {eid!r} appears twice in one store_many call")
            seen.add(eid)
            chosen.append(eid)
        if not n:
            return []
        with self._rw.write():
            self._check_open()
            self._ensure_dim(vecs.shape[1])
            items: list[_Item] = []
            for i, eid in enumerate(chosen):
                prev = self._by_id.get(eid)
                tomb = self._tombstones.get(eid)
                after = max(prev.timestamp if prev else -1, tomb[0] if tomb else -1)
                items.append(
                    _Item(
                        eid,
                        contents[i],
                        metas[i][0],
                        metas[i][1],
                        self._next_ts(after),
                        self.agent_id,
                        i,
                    )
                )
            self._write_items(items, vecs)
        return chosen

    def delete(self, id: str) -> None:
        """Delete an entry, leaving a tombstone so the delete propagates through sync."""
        self._check_open()
        with self._rw.write():
            self._check_open()
            rec = self._by_id.get(id)
            if rec is None:
                raise NotFoundError(f"no memory entry with id {id!r}")
            ts = self._next_ts(rec.timestamp)
            self._write_tombstones([(id, ts, self.agent_id)])

    def tombstones(self) -> dict[str, tuple[int, str]]:
        """Deleted ids with the ``(timestamp, owner_agent)`` of their delete."""
        with self._rw.read():
            return {eid: (ts, owner) for eid, (ts, owner, _) in self._tombstones.items()}

    def purge_tombstones(self, older_than: int) -> int:
        """Forget tombstones with a timestamp (microseconds) below ``older_than``.

        Only safe once every peer has seen them; otherwise an old copy could come back.
        """
        with self._rw.write():
            old = [i for i, (ts, _, _) in self._tombstones.items() if ts < older_than]
            if self._store is not None:
                self._store.delete_tombstones(old)
            for i in old:
                del self._tombstones[i]
            return len(old)

    def _write_items(self, items: list[_Item], vecs: F32) -> int:
        """Insert or replace entries (under the write lock); returns how many were evicted.

        The result equals writing the items one by one with the eviction policy making
        room as needed; ids in ``items`` are distinct.
        """
        self._sync_order()
        forced: list[_Rec] = []
        early_count = 0
        if len(items) > self.max_entries:
            # Only the last max_entries items can survive the batch; the earlier ones are
            # written and then evicted (each counted once).
            early, items = items[: -self.max_entries], items[-self.max_entries :]
            early_count = len(early)
            forced = [self._by_id[it.id] for it in early if it.id in self._by_id]
        updates = [it for it in items if it.id in self._by_id]
        new = [it for it in items if it.id not in self._by_id]
        room = self.max_entries - (len(self._by_id) - len(forced))
        need = max(0, len(new) - room)
        victims = list(forced)
        if need:
            skip = {it.id for it in updates}
            skip.update(r.id for r in forced)
            for eid in self._order:
                if eid not in skip:
                    victims.append(self._by_id[eid])
                    need -= 1
                    if not need:
                        break
        # Slots for new entries: victims' first, then free ones (popped from the end), then
        # fresh ones past the end.
        slots_new = [v.slot for v in victims][: len(new)]
        n_free = min(len(self._free), len(new) - len(slots_new))
        if n_free:
            slots_new.extend(reversed(self._free[len(self._free) - n_free :]))
        top = len(self._slot_rec)
        n_fresh = len(new) - len(slots_new)
        slots_new.extend(range(top, top + n_fresh))
        evicted = len(victims) + early_count - len(forced)
        init_tier, init_freq = self._initial_tier()
        now = self._clock()
        first_seq = self._seq + 1
        written = [*updates, *new]
        seq_of = {it.id: first_seq + i for i, it in enumerate(written)}

        if self._store is not None:
            rows: list[EntryRow] = []
            pos = self._order_pos
            for it in updates:
                s = self._by_id[it.id].slot
                pos += 1
                rows.append(
                    (
                        it.id,
                        it.content,
                        it.meta_blob,
                        it.timestamp,
                        it.owner,
                        self._by_id[it.id].access,
                        int(self._tier_of[s]),
                        seq_of[it.id],
                        float(self._freq[s]),
                        float(self._ftime[s]),
                        pos,
                        s,
                        vecs[it.row].tobytes(),
                    )
                )
            for it, s in zip(new, slots_new, strict=True):
                pos += 1
                rows.append(
                    (
                        it.id,
                        it.content,
                        it.meta_blob,
                        it.timestamp,
                        it.owner,
                        0,
                        init_tier.value,
                        seq_of[it.id],
                        init_freq,
                        now,
                        pos,
                        s,
                        vecs[it.row].tobytes(),
                    )
                )
            self._store.write(
                upserts=rows,
                deletes=[v.id for v in victims],
                untombstone=[it.id for it in written if it.id in self._tombstones],
                meta={"evictions": self._evictions + evicted} if evicted else None,
            )
            self._order_pos = pos

        # ---- memory: nothing below can fail on bad input
        self._seq += len(written)
        self._remove_entries(victims, release=False)
        if len(victims) > len(new):  # victims' slots not reused go back to the free list
            self._free.extend(v.slot for v in victims[len(new) :])
        if n_free:
            del self._free[len(self._free) - n_free :]
        self._ensure_slot_capacity(top + n_fresh)
        self._evictions += evicted
        add_keys: dict[Tier, list[int]] = {}
        add_rows: dict[Tier, list[int]] = {}
        drop_keys: dict[Tier, list[int]] = {}
        lru = self.eviction is EvictionPolicy.LRU
        for it in updates:
            rec = self._by_id[it.id]
            s = rec.slot
            t = _TIERS[int(self._tier_of[s])]
            drop_keys.setdefault(t, []).append(s)
            self._meta.remove(s, rec.metadata)
            rec.content, rec.metadata = it.content, it.metadata
            rec.timestamp, rec.owner = it.timestamp, it.owner
            self._meta.add(s, rec.metadata)
            self._seq_of[s] = seq_of[it.id]
            if lru:
                self._order.move_to_end(it.id)
            add_keys.setdefault(t, []).append(s)
            add_rows.setdefault(t, []).append(it.row)
        for it, s in zip(new, slots_new, strict=True):
            rec = _Rec(it.id, it.content, it.metadata, it.timestamp, it.owner, s)
            self._slot_rec[s] = rec
            self._by_id[it.id] = rec
            self._order[it.id] = None
            self._meta.add(s, rec.metadata)
            self._tier_of[s] = init_tier.value
            self._freq[s] = init_freq
            self._ftime[s] = now
            self._seq_of[s] = seq_of[it.id]
            add_keys.setdefault(init_tier, []).append(s)
            add_rows.setdefault(init_tier, []).append(it.row)
        for it in written:
            self._tombstones.pop(it.id, None)
        for t, keys in drop_keys.items():
            self._tiers[t].remove(np.asarray(keys, dtype=np.uint64))
        for t, keys in add_keys.items():
            rows_idx = add_rows[t]
            sub = (
                vecs
                if len(rows_idx) == vecs.shape[0] and rows_idx == list(range(vecs.shape[0]))
                else vecs[rows_idx]
            )
            self._tier(t).add(
                np.asarray(keys, dtype=np.uint64), sub, threads=0 if len(keys) > 1 else 1
            )
        self._after_writes(len(written))
        return evicted

    def _remove_entries(self, recs: Iterable[_Rec], *, release: bool = True) -> None:
        """Drop entries from every in-memory structure (no tombstone, no persistence).

        ``release`` puts their slots on the free list (the caller reuses them otherwise).
        """
        by_tier: dict[Tier, list[int]] = {}
        for rec in recs:
            s = rec.slot
            by_tier.setdefault(_TIERS[int(self._tier_of[s])], []).append(s)
            self._meta.remove(s, rec.metadata)
            del self._by_id[rec.id]
            self._order.pop(rec.id, None)
            self._slot_rec[s] = None
            if release:
                self._free.append(s)
        for t, keys in by_tier.items():
            self._tiers[t].remove(np.asarray(keys, dtype=np.uint64))

    def _write_tombstones(self, stones: Sequence[tuple[str, int, str]]) -> None:
        """Apply deletes (under the write lock)."""
        if not stones:
            return
        self._sync_order()
        first = self._seq + 1
        rows = [(eid, ts, owner, first + i) for i, (eid, ts, owner) in enumerate(stones)]
        doomed = [self._by_id[eid] for eid, _, _ in stones if eid in self._by_id]
        if self._store is not None:
            self._store.write(deletes=[r.id for r in doomed], tombstones=rows)
        self._seq += len(stones)
        self._remove_entries(doomed)
        for eid, ts, owner, seq in rows:
            self._tombstones[eid] = (ts, owner, seq)

    def _after_writes(self, count: int) -> None:
        p = self.tier_policy
        if p is None or not p.rebalance_every:
            return
        self._writes_since_rebalance += count
        if self._writes_since_rebalance >= p.rebalance_every:
            self._rebalance_locked()

    # ================================================================ reads
    def get(self, id: str) -> VectorEntry:
        """The entry with ``id`` (NotFoundError if absent). Does not count as an access."""
        with self._rw.read():
            rec = self._by_id.get(id)
            if rec is None:
                raise NotFoundError(f"no memory entry with id {id!r}")
            t = Tier(int(self._tier_of[rec.slot]))
            vec = self._tiers[t].vectors(np.asarray([rec.slot], dtype=np.uint64))[0]
            return self._entry(rec, vec)

    def _entry(self, rec: _Rec, vec: F32) -> VectorEntry:
        s = rec.slot
        return VectorEntry(
            rec.id,
            rec.content,
            vec,
            dict(rec.metadata),
            rec.timestamp,
            rec.owner,
            rec.access,
            Tier(int(self._tier_of[s])),
        )

    def search(
        self,
        query: ArrayLike,
        top_k: int = 10,
        filter: Mapping[str, Any] | None = None,
    ) -> list[SearchHit]:
        """The ``top_k`` entries most similar to ``query``, best first.

        ``filter`` restricts results to entries whose metadata match (see
        :mod:`ruvector_edge.memory._filter`: equality, or membership for a list/set);
        the search still returns ``top_k`` hits whenever that many entries match.
        Returned entries count as accessed (access count, LRU position, tier frequency).
        """
        if self._closed:
            self._check_open()
        q = self._as_query(query)
        k = top_k if type(top_k) is int and top_k >= 0 else self._check_k(top_k)
        flt = compile_filter(filter) if filter else None
        rw = self._rw
        rw.acquire_read()
        try:
            if not k or not self._by_id:
                return []
            if flt is not None:
                keys, scores = self._filtered_search(q, k, self._meta.match(flt))
            else:
                active = self._active_tiers()
                if len(active) == 1:
                    keys, scores = active[0].search_one(q, k)
                else:
                    keys, scores = _merge_results([t.search_one(q, k) for t in active], k)
            return self._hits(keys, scores)
        finally:
            rw.release_read()

    def search_records(self, query: ArrayLike, top_k: int = 10) -> SearchRecords:
        """:meth:`search` (no filter) as columns: the same hits, scores and access
        accounting, without a :class:`VectorEntry` per hit.

        For hot paths that read a few fields of each hit (the ruvLLM retriever): ids,
        contents, metadata copies and scores as lists, the vectors as one ``(n, dim)``
        float32 matrix.
        """
        if self._closed:
            self._check_open()
        q = self._as_query(query)
        k = top_k if type(top_k) is int and top_k >= 0 else self._check_k(top_k)
        rw = self._rw
        rw.acquire_read()
        try:
            if not k or not self._by_id:
                dim = self._dim or 0
                return SearchRecords([], [], [], [], np.zeros((0, dim), dtype=np.float32))
            tiers = self._tiers
            if len(tiers) == 1:
                (only,) = tiers.values()
                keys, scores = only.search_one(q, k)
            else:
                active = self._active_tiers()
                keys, scores = _merge_results([t.search_one(q, k) for t in active], k)
            slot_rec = self._slot_rec
            recs = [slot_rec[s] for s in keys.tolist()]
            self._touch(keys, recs)
            ids: list[str] = []
            contents: list[str] = []
            metas: list[dict[str, Any]] = []
            for rec in recs:
                assert rec is not None
                ids.append(rec.id)
                contents.append(rec.content)
                metas.append(rec.metadata.copy())
            return SearchRecords(ids, contents, metas, scores.tolist(), self._vectors_of(keys))
        finally:
            rw.release_read()

    def _vectors_of(self, keys: Keys) -> F32:
        """The ``(n, dim)`` float32 vectors of live ``keys`` (caller holds the read lock)."""
        if len(self._tiers) == 1:
            (only,) = self._tiers.values()
            return only.vectors(keys)
        tiers = self._tier_of[keys]
        mat = np.empty((len(keys), self._dim or 0), dtype=np.float32)
        for t in np.unique(tiers).tolist():
            sel = tiers == t
            mat[sel] = self._tiers[_TIERS[t]].vectors(keys[sel])
        return mat

    def search_batch(
        self,
        queries: ArrayLike,
        top_k: int = 10,
        filter: Mapping[str, Any] | None = None,
    ) -> list[list[SearchHit]]:
        """:meth:`search` for each row of ``queries`` ``(n, dim)`` (multithreaded HNSW)."""
        self._check_open()
        qs = self._as_vectors(queries, what="queries")
        if np.ndim(queries) != 2:
            raise DimensionError("queries must be a 2-D array (n, dim)")
        k = self._check_k(top_k)
        flt = compile_filter(filter) if filter else None
        with self._rw.read():
            if not k or not self._by_id:
                return [[] for _ in range(len(qs))]
            if flt is not None:
                cand = self._meta.match(flt)
                per_query = [self._filtered_search(q, k, cand) for q in qs]
            else:
                per_tier = [t.search(qs, k) for t in self._active_tiers()]
                if len(per_tier) == 1:
                    per_query = per_tier[0]
                else:
                    per_query = [
                        _merge_results([res[i] for res in per_tier], k) for i in range(len(qs))
                    ]
            return [self._hits(keys, scores) for keys, scores in per_query]

    def _hits(self, keys: Keys, scores: F32) -> list[SearchHit]:
        """Entries for search results, counting the access (caller holds the read lock)."""
        n = len(keys)
        if not n:
            return []
        slot_rec = self._slot_rec
        recs = [slot_rec[s] for s in keys.tolist()]
        access = self._touch(keys, recs)
        vecs: Sequence[F32]
        if len(self._tiers) == 1:  # tiers off (or one tier in use): no per-hit lookup
            (tier_index,) = self._tiers.values()
            vecs = tier_index.vector_rows(keys)
            tiers_l = [tier_index.tier.value] * n
        else:
            tiers = self._tier_of[keys]
            tiers_l = tiers.tolist()
            mat = np.empty((n, self._dim or 0), dtype=np.float32)
            for t in set(tiers_l):
                sel = tiers == t
                mat[sel] = self._tiers[_TIERS[t]].vectors(keys[sel])
            vecs = list(mat)
        out = []
        for rec, vec, acc, t, score in zip(
            recs, vecs, access, tiers_l, scores.tolist(), strict=True
        ):
            assert rec is not None
            entry = VectorEntry(
                rec.id,
                rec.content,
                vec,
                rec.metadata.copy(),
                rec.timestamp,
                rec.owner,
                acc,
                _TIERS[t],
            )
            out.append(_new_hit(SearchHit, (entry, score)))
        return out

    def _touch(self, slots: Keys, recs: Sequence[_Rec | None]) -> list[int]:
        """Count an access for each returned hit; returns their new access counts.

        Readers share this small lock. LRU moves are only recorded here and applied in
        bulk by :meth:`_sync_order` before anything reads or changes the eviction order:
        moving ten entries of a big ordered dict right after a search costs several
        microseconds of cache misses.
        """
        with self._touch_lock:
            self._searches += 1
            counts = []
            p = self.tier_policy
            if p is None:
                for rec in recs:
                    assert rec is not None
                    rec.access += 1
                    counts.append(rec.access)
            else:
                # Decayed frequency per hit; a few hits per search, so a loop over Python
                # floats (no numpy call per step) is the cheap way.
                now = self._clock()
                half_life = p.half_life_s
                freq, ftime = self._freq, self._ftime
                for rec in recs:
                    assert rec is not None
                    rec.access += 1
                    counts.append(rec.access)
                    s = rec.slot
                    age = now - float(ftime[s])
                    decay = 2.0 ** (-age / half_life) if age > 0 else 1.0
                    freq[s] = float(freq[s]) * decay + 1.0
                    ftime[s] = now
            if self.eviction is EvictionPolicy.LRU:
                self._pending_uses.append(slots)
                self._pending_count += len(slots)
                if self._pending_count >= _MAX_PENDING_USES:
                    self._apply_uses()
            return counts

    def _sync_order(self) -> None:
        """Apply recorded LRU uses to the eviction order."""
        if self._pending_uses:
            with self._touch_lock:
                self._apply_uses()

    def _apply_uses(self) -> None:
        # Caller holds the touch lock (or the write lock with no reader running). Slots
        # recorded here are still live: every write that frees a slot syncs first.
        move = self._order.move_to_end
        slot_rec = self._slot_rec
        for slots in self._pending_uses:
            for s in slots.tolist():
                rec = slot_rec[s]
                if rec is not None:
                    move(rec.id)
        self._pending_uses.clear()
        self._pending_count = 0

    def _filtered_search(self, q: F32, k: int, cand: Collection[int]) -> tuple[Keys, F32]:
        """Top-k among the slots in ``cand``: exact when few match, else oversampled HNSW."""
        m = len(cand)
        if not m:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.float32)
        active = self._active_tiers()
        if m <= self.exact_filter_limit:
            return self._exact_subset(q, k, cand, active)
        if len(active) == 1:
            per_tier_m = {active[0].tier: m}
        else:
            arr = np.fromiter(cand, dtype=np.intp, count=m)
            counts = np.bincount(self._tier_of[arr], minlength=len(_TIERS))
            per_tier_m = {t.tier: int(counts[t.tier.value]) for t in active}
        results = []
        for t in active:
            m_t = per_tier_m[t.tier]
            if not m_t:
                continue
            n_t = len(t)
            want = min(k, m_t)
            kk = min(n_t, max(k, math.ceil(k * n_t / m_t * _FILTER_OVERSAMPLE)))
            while True:
                keys, scores = t.search_one(q, kk)
                mask = np.fromiter(
                    (key in cand for key in keys.tolist()), dtype=bool, count=len(keys)
                )
                if int(mask.sum()) >= want or kk >= n_t:
                    break
                kk = min(n_t, kk * 4)
            keys, scores = keys[mask][:k], scores[mask][:k]
            if len(keys) < want:  # the graph did not reach enough matches: score them all
                arr = np.fromiter(cand, dtype=np.intp, count=m)
                sub = arr[self._tier_of[arr] == t.tier.value].astype(np.uint64)
                keys, scores = _top_k(sub, t.scores(q, sub), k)
            results.append((keys, scores))
        return _merge_results(results, k)

    def _exact_subset(
        self, q: F32, k: int, cand: Collection[int], active: list[TierIndex]
    ) -> tuple[Keys, F32]:
        arr = np.fromiter(cand, dtype=np.intp, count=len(cand))
        results = []
        if len(active) == 1:
            keys = arr.astype(np.uint64)
            return _top_k(keys, active[0].scores(q, keys), k)
        tiers = self._tier_of[arr]
        for t in active:
            keys = arr[tiers == t.tier.value].astype(np.uint64)
            if len(keys):
                results.append(_top_k(keys, t.scores(q, keys), k))
        return _merge_results(results, k)

    # ================================================================ tiers
    def rebalance(self) -> RebalanceReport:
        """Move entries to the tier their decayed access frequency calls for."""
        self._check_open()
        if self.tier_policy is None:
            raise ConfigError("this memory has no TierPolicy; create it with tiers=TierPolicy()")
        with self._rw.write():
            return self._rebalance_locked()

    def _live_slots(self) -> NDArray[np.intp]:
        return np.fromiter(
            (r.slot for r in self._by_id.values()), dtype=np.intp, count=len(self._by_id)
        )

    def _rebalance_locked(self) -> RebalanceReport:
        p = self.tier_policy
        assert p is not None
        self._writes_since_rebalance = 0
        live = self._live_slots()
        if not len(live):
            return RebalanceReport({}, dict.fromkeys(_TIERS, 0))
        now = self._clock()
        with self._touch_lock:
            decay = np.minimum(np.exp2(-(now - self._ftime[live]) / p.half_life_s), 1.0)
            eff = self._freq[live] * decay
            self._freq[live] = eff
            self._ftime[live] = now
        target = p.tiers_for(eff)
        current = self._tier_of[live]
        changed = target != current
        moved: dict[Tier, int] = {}
        if changed.any():
            src_all, dst_all, slots_all = current[changed], target[changed], live[changed]
            if self._store is not None:
                rows = [
                    (int(d), rec.id)
                    for d, s in zip(dst_all.tolist(), slots_all.tolist(), strict=True)
                    if (rec := self._slot_rec[s]) is not None
                ]
                self._store.update_entries(
                    "UPDATE entries SET tier = ? WHERE id = ?", rows, bump=True
                )
            for src in np.unique(src_all).tolist():
                for dst in np.unique(dst_all[src_all == src]).tolist():
                    sel = (src_all == src) & (dst_all == dst)
                    keys = slots_all[sel].astype(np.uint64)
                    vecs = self._vectors_for_move(Tier(src), Tier(dst), keys)
                    self._tiers[Tier(src)].remove(keys)
                    self._tier(Tier(dst)).add(keys, vecs)
                    self._tier_of[keys.astype(np.intp)] = dst
                    moved[Tier(dst)] = moved.get(Tier(dst), 0) + len(keys)
        counts = np.bincount(self._tier_of[live], minlength=len(_TIERS))
        return RebalanceReport(moved, {t: int(counts[t.value]) for t in _TIERS})

    def _vectors_for_move(self, src: Tier, dst: Tier, keys: Keys) -> F32:
        """Best available float32 vectors: the on-disk originals for a promotion."""
        if dst < src and self._store is not None:
            return self._originals(keys)
        return self._tiers[src].vectors(keys)

    def _originals(self, keys: Keys) -> F32:
        assert self._store is not None
        assert self._dim is not None
        recs = [self._slot_rec[s] for s in keys.astype(np.intp).tolist()]
        ids = [r.id for r in recs if r is not None]
        with self._db_lock:
            blobs = self._store.vectors(ids)
        if len(blobs) != len(ids):
            raise StorageError("the database lost vectors of live entries")
        return (
            np.frombuffer(b"".join(blobs[i] for i in ids), dtype=np.float32)
            .reshape(-1, self._dim)
            .copy()
        )

    # ================================================================ sync
    def serialize(
        self,
        since: int = 0,
        *,
        level: CompressionLevel | str = CompressionLevel.FAST,
        limit: int | None = None,
    ) -> bytes:
        """Entries and tombstones changed after local version ``since``, as a sync blob."""
        return self.export_delta(since, level=level, limit=limit).data

    def export_delta(
        self,
        since: int = 0,
        *,
        level: CompressionLevel | str = CompressionLevel.FAST,
        limit: int | None = None,
        owner: str | None = None,
    ) -> SyncDelta:
        """Like :meth:`serialize`, plus the version reached (ask for ``since=version`` next).

        ``limit`` caps the number of items (oldest changes first) so a delta fits a frame;
        the returned version then marks where the next call continues. ``owner`` keeps
        only entries and deletes written by that agent (what an agent sends its
        coordinator, so merged-in entries are not echoed back). Vectors travel at
        ``level`` (lossless FAST by default); a persistent memory sends its float32
        originals, an in-RAM one what its tier holds.
        """
        self._check_open()
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidInputError(f"since must be a version >= 0, got {since!r}")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise InvalidInputError(f"limit must be a positive int or None, got {limit!r}")
        lvl = level if isinstance(level, CompressionLevel) else CompressionLevel.parse(level)
        with self._rw.read():
            live = self._live_slots()
            changed = live[self._seq_of[live] > since] if len(live) else live
            slot_rec = self._slot_rec
            items: list[tuple[int, int, object]] = [
                (int(self._seq_of[s]), 0, s)
                for s in changed.tolist()
                if owner is None or ((r := slot_rec[s]) is not None and r.owner == owner)
            ]
            items.extend(
                (seq, 1, eid)
                for eid, (_, who, seq) in self._tombstones.items()
                if seq > since and (owner is None or who == owner)
            )
            items.sort(key=lambda x: x[0])
            version = self._seq
            if limit is not None and len(items) > limit:
                items = items[:limit]
                version = items[-1][0]
            slots = np.asarray([x[2] for x in items if x[1] == 0], dtype=np.intp)
            recs = [self._slot_rec[s] for s in slots.tolist()]
            wire_entries = [
                WireEntry(r.id, r.content, r.metadata, r.timestamp, r.owner)
                for r in recs
                if r is not None
            ]
            stones = [
                WireTombstone(str(eid), *self._tombstones[str(eid)][:2])
                for _, kind, eid in items
                if kind == 1
            ]
            dim = self._dim or 0
            vecs = np.zeros((len(slots), dim), dtype=np.float32)
            if len(slots):
                keys = slots.astype(np.uint64)
                if self._store is not None:
                    vecs = self._originals(keys)
                else:
                    tiers = self._tier_of[slots]
                    for t in np.unique(tiers).tolist():
                        sel = tiers == t
                        vecs[sel] = self._tiers[Tier(t)].vectors(keys[sel])
            data = encode_snapshot(
                origin=self.agent_id,
                dim=dim,
                metric=self.metric.value,
                since=since,
                version=version,
                entries=wire_entries,
                tombstones=stones,
                vectors=vecs,
                level=lvl,
            )
        return SyncDelta(data, version, len(wire_entries), len(stones))

    def merge(self, data: bytes | bytearray | memoryview) -> int:
        """Merge a peer's sync blob; returns how many entries and tombstones were applied.

        Last writer wins per id on ``(timestamp, owner)``; deletes are tombstones. When
        the memory is full, incoming entries evict by the eviction policy (counted in
        :meth:`stats` and :meth:`merge_report`), never silently. A corrupt blob raises
        :class:`SyncError` and changes nothing.
        """
        return self.merge_report(data).applied

    def merge_report(
        self,
        data: bytes | bytearray | memoryview,
        *,
        allowed_owners: Collection[str] | None = None,
    ) -> MergeReport:
        """:meth:`merge` with the full accounting.

        With ``allowed_owners`` every entry and delete in the blob must be owned by one of
        them, else :class:`AuthError` and nothing is merged (a coordinator accepts from an
        agent only what that agent wrote).
        """
        self._check_open()
        dec = decode_snapshot(data)
        snap, vectors = dec.snapshot, dec.vectors
        if allowed_owners is not None:
            owners = {e.owner for e in snap.entries} | {t.owner for t in snap.tombstones}
            foreign = sorted(owners.difference(allowed_owners))
            if foreign:
                raise AuthError(
                    f"memory blob from {snap.origin!r} carries items owned by "
                    f"{', '.join(repr(o) for o in foreign[:3])}; only "
                    f"{sorted(allowed_owners)!r} may be sent on this link",
                    code="foreign_origin",
                )
        if snap.entries and self.metric is Metric.COSINE and not np.abs(vectors).max(axis=1).all():
            raise SyncError("memory sync data holds a zero vector, which cosine cannot store")
        # Best version per id inside the blob itself (a blob may repeat an id).
        best: dict[str, tuple[_Ver, int]] = {}
        for i, e in enumerate(snap.entries):
            v = _Ver(e.timestamp, e.owner, 0, e.content, e.metadata)
            prev = best.get(e.id)
            if prev is None or _newer(v, prev[0]):
                best[e.id] = (v, i)
        for j, t in enumerate(snap.tombstones):
            v = _Ver(t.timestamp, t.owner, 1, None, None)
            prev = best.get(t.id)
            if prev is None or _newer(v, prev[0]):
                best[t.id] = (v, -1 - j)
        with self._rw.write():
            self._check_open()
            if snap.entries and self._dim is not None and snap.dim != self._dim:
                raise SyncError(
                    f"peer {snap.origin!r} sent {snap.dim}-dimensional vectors; this memory "
                    f"holds {self._dim}-dimensional vectors"
                )
            stale = len(snap.entries) + len(snap.tombstones) - len(best)
            win_items: list[_Item] = []
            win_stones: list[tuple[str, int, str]] = []
            for eid, (v, idx) in best.items():
                local = self._local_version(eid)
                if local is not None and not _newer(v, local):
                    stale += 1
                    continue
                if idx >= 0:
                    e = snap.entries[idx]
                    blob = msgspec.msgpack.encode(e.metadata)
                    win_items.append(
                        _Item(e.id, e.content, e.metadata, blob, e.timestamp, e.owner, idx)
                    )
                else:
                    t = snap.tombstones[-1 - idx]
                    win_stones.append((t.id, t.timestamp, t.owner))
            evicted = 0
            if win_items:
                self._ensure_dim(snap.dim)
                evicted = self._write_items(win_items, vectors)
            self._write_tombstones(win_stones)
            return MergeReport(
                applied=len(win_items) + len(win_stones),
                entries_written=len(win_items),
                tombstones_applied=len(win_stones),
                stale=stale,
                evicted=evicted,
                origin=snap.origin,
                version=self._seq,
            )

    def _local_version(self, eid: str) -> _Ver | None:
        rec = self._by_id.get(eid)
        if rec is not None:
            return _Ver(rec.timestamp, rec.owner, 0, rec.content, rec.metadata)
        tomb = self._tombstones.get(eid)
        if tomb is not None:
            return _Ver(tomb[0], tomb[1], 1, None, None)
        return None

    # ================================================================ persistence
    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the memory to ``directory`` (SQLite + index files), replacing what is there.

        For a persistent memory and its own ``data_dir`` this is a checkpoint: statistics
        and index files are brought up to date so the next open skips the rebuild.
        """
        self._check_open()
        path = Path(directory)
        with self._rw.write():
            if (
                self._store is not None
                and self._data_dir is not None
                and _same_dir(path, self._data_dir)
            ):
                self._flush_locked(self._store)
                self._write_index_files(self._store, path)
                return
            path.mkdir(parents=True, exist_ok=True)
            tmp_db = path / (DB_NAME + ".tmp")
            for suffix in ("", "-wal", "-shm"):
                Path(str(tmp_db) + suffix).unlink(missing_ok=True)
            out = SqliteStore(tmp_db, synchronous="full")
            try:
                self._dump_into(out)
                self._write_index_files(out, path)
            finally:
                out.close()
            for suffix in ("-wal", "-shm"):
                Path(str(path / DB_NAME) + suffix).unlink(missing_ok=True)
            os.replace(tmp_db, path / DB_NAME)

    def _dump_into(self, out: SqliteStore) -> None:
        recs = list(self._by_id.values())
        slots = np.asarray([r.slot for r in recs], dtype=np.intp)
        dim = self._dim or 0
        vecs = np.zeros((len(recs), dim), dtype=np.float32)
        if recs:
            keys = slots.astype(np.uint64)
            if self._store is not None:
                vecs = self._originals(keys)
            else:
                tiers = self._tier_of[slots]
                for t in np.unique(tiers).tolist():
                    sel = tiers == t
                    vecs[sel] = self._tiers[Tier(t)].vectors(keys[sel])
        self._sync_order()
        order = {eid: i for i, eid in enumerate(self._order)}
        rows: list[EntryRow] = [
            (
                r.id,
                r.content,
                msgspec.msgpack.encode(r.metadata),
                r.timestamp,
                r.owner,
                r.access,
                int(self._tier_of[r.slot]),
                int(self._seq_of[r.slot]),
                float(self._freq[r.slot]),
                float(self._ftime[r.slot]),
                order[r.id],
                r.slot,
                vecs[i].tobytes(),
            )
            for i, r in enumerate(recs)
        ]
        out.write(
            upserts=rows,
            tombstones=[(eid, ts, o, seq) for eid, (ts, o, seq) in self._tombstones.items()],
            meta={
                "agent_id": self.agent_id,
                "max_entries": self.max_entries,
                "metric": self.metric.value,
                "dim": self._dim,
                "evictions": self._evictions,
            },
        )

    def _write_index_files(self, store: SqliteStore, path: Path) -> None:
        meta: dict[str, Any] = {"index_params": self._index_params()}
        for t in _TIERS:
            f = path / _index_name(t)
            idx = self._tiers.get(t)
            if idx is not None and len(idx):
                idx.save(f)
                meta[f"index_sha_{t.name}"] = _sha256_file(f)
                meta[f"index_aux_sha_{t.name}"] = _sha256_file(f.with_name(f.name + ".aux.npy"))
            else:
                f.unlink(missing_ok=True)
                f.with_name(f.name + ".aux.npy").unlink(missing_ok=True)
                meta[f"index_sha_{t.name}"] = None
                meta[f"index_aux_sha_{t.name}"] = None
        meta["index_generation"] = store.get_meta("generation")
        store.set_meta(meta)

    def flush(self) -> None:
        """Persist access statistics and LRU order (a persistent memory writes entries
        eagerly; these counters are written here, at :meth:`save` and at :meth:`close`)."""
        self._check_open()
        if self._store is None:
            return
        with self._rw.write():
            self._flush_locked(self._store)

    def _flush_locked(self, store: SqliteStore) -> None:
        self._sync_order()
        rows = []
        for pos, eid in enumerate(self._order):
            rec = self._by_id[eid]
            s = rec.slot
            rows.append((rec.access, float(self._freq[s]), float(self._ftime[s]), pos, eid))
        self._order_pos = len(rows)
        store.update_entries(
            "UPDATE entries SET access_count = ?, freq = ?, freq_time = ?, order_pos = ? "
            "WHERE id = ?",
            rows,
            bump=False,
        )
        store.set_meta({"evictions": self._evictions})

    def close(self) -> None:
        """Flush, write current index files (so the next open is fast) and close."""
        if self._closed:
            return
        with self._rw.write():
            if self._store is not None and self._data_dir is not None:
                try:
                    self._flush_locked(self._store)
                    self._write_index_files(self._store, self._data_dir)
                finally:
                    self._store.close()
                    self._store = None
            self._closed = True

    # ================================================================ stats
    def stats(self) -> MemoryStats:
        """Counts, sizes and settings."""
        with self._rw.read():
            counts = dict.fromkeys(_TIERS, 0)
            index_bytes = dict.fromkeys(_TIERS, 0)
            per_entry: dict[Tier, float] = {}
            for t, idx in self._tiers.items():
                n = len(idx)
                counts[t] = n
                index_bytes[t] = idx.memory_bytes()
                if n:
                    per_entry[t] = idx.stored_bytes() / n
            return MemoryStats(
                agent_id=self.agent_id,
                entries=len(self._by_id),
                max_entries=self.max_entries,
                dim=self._dim,
                metric=self.metric,
                eviction=self.eviction,
                tiers=counts,
                index_bytes=index_bytes,
                bytes_per_entry=per_entry,
                tombstones=len(self._tombstones),
                evictions=self._evictions,
                searches=self._searches,
                version=self._seq,
                connectivity=self.connectivity,
                ef_construction=self.ef_construction,
                ef_search=self.ef_search,
                data_dir=str(self._data_dir) if self._data_dir is not None else None,
            )


# ==================================================================== helpers
@dataclass(slots=True)
class _Ver:
    """An entry or tombstone version; ordered by (timestamp, owner, kind, digest)."""

    timestamp: int
    owner: str
    kind: int  # 0 entry, 1 tombstone
    content: str | None
    metadata: Any

    def digest(self) -> bytes:
        if self.kind or self.content is None:
            return b""
        return _digest(self.content, self.metadata)


def _newer(a: _Ver, b: _Ver) -> bool:
    """Is ``a`` strictly newer than ``b``? The digest is computed only on an exact tie."""
    ka, kb = (a.timestamp, a.owner, a.kind), (b.timestamp, b.owner, b.kind)
    if ka != kb:
        return ka > kb
    return a.digest() > b.digest()


def _top_k(keys: Keys, scores: F32, k: int) -> tuple[Keys, F32]:
    if len(keys) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        keys, scores = keys[part], scores[part]
    order = np.argsort(-scores, kind="stable")
    return keys[order], scores[order]


def _merge_results(results: list[tuple[Keys, F32]], k: int) -> tuple[Keys, F32]:
    results = [r for r in results if len(r[0])]
    if not results:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.float32)
    if len(results) == 1:
        return results[0][0][:k], results[0][1][:k]
    keys = np.concatenate([r[0] for r in results])
    scores = np.concatenate([r[1] for r in results])
    return _top_k(keys, scores, k)


def _index_name(tier: Tier) -> str:
    return f"index-{tier.name.lower()}.usearch"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _peek_meta(path: Path, key: str) -> Any:
    db = path / DB_NAME
    if not db.exists():
        return None
    store = SqliteStore(db)
    try:
        return store.get_meta(key)
    finally:
        store.close()
