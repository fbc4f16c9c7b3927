"""Columnar pattern statistics: the learning-state CRDT (DESIGN.md §4).

A :class:`PatternStore` is one replica of the swarm's learning state. It holds two tables
of numpy columns, grown by amortized doubling, never one Python object per pattern:

* the **replica table**, one row per ``(origin, state, action)``: the origin agent's own
  value estimate (float64), visits (int64), origin version (int64) and last update (ms);
* the **merged view**, one row per ``(state, action)``: ``visits = sum(visits_o)`` and
  ``value = sum(visits_o * value_o) / visits`` over the origins ``o`` holding an entry.

State, action and origin names are interned to dense int ids (one dict and one list per
name table). ``(state, action)`` pairs and ``(key, origin)`` pairs are packed into int64
codes and mapped to rows by a sorted-array index (vectorized ``searchsorted`` lookups,
O(n) sorted merges for bulk inserts) with a small dict buffer for single inserts, so the
index costs 16 bytes per pattern and bulk merges never loop in Python.

CRDT rules
----------
* Each entry is ordered by ``(version, visits, value, updated_ms)`` lexicographically. The
  origin bumps its version on every local update, so honest origins never tie on version;
  the rest of the tuple is a deterministic tie-break that keeps merge a join (commutative,
  associative, idempotent) even against a buggy peer. ``-0.0`` is stored as ``0.0``.
* :meth:`PatternStore.merge` keeps, per ``(origin, key)``, the greater entry and recomputes
  the merged view of the touched keys from the replica rows. The sum runs in a canonical
  order (by entry value, then visits), so replicas holding the same entries hold
  bit-identical merged views whatever order they merged in.
* The version vector is ``{origin: highest version seen}``; :meth:`PatternStore.select`
  returns the entries newer than a peer's version vector (a delta).
* ``merge(..., owner=agent_id)`` protects the owner's own entries: see :meth:`merge`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Final, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ruvector_edge.errors import CapacityError, InvalidInputError, SyncError

__all__ = [
    "DEFAULT_CONFIDENCE_PRIOR",
    "MAX_ABS_VALUE",
    "MAX_NAME_LENGTH",
    "MAX_ORIGINS",
    "MAX_VERSION",
    "MAX_VISITS",
    "EntryBatch",
    "EntryRecord",
    "MergeStats",
    "PatternStats",
    "PatternStore",
    "PatternView",
    "pattern_confidence",
]

I32 = NDArray[np.int32]
I64 = NDArray[np.int64]
U32 = NDArray[np.uint32]
F64 = NDArray[np.float64]

#: Most distinct origin agents a replica tracks (ids fit in the low 20 bits of a row code).
MAX_ORIGINS: Final = 1 << 20
_ORIGIN_BITS: Final = 20
_MAX_KEYS: Final = 1 << 42
_MAX_NAMES: Final = (1 << 31) - 1
#: Longest state, action or origin name, in characters.
MAX_NAME_LENGTH: Final = 4096
#: Versions are counters in ``[1, MAX_VERSION]``.
MAX_VERSION: Final = 1 << 62
#: Visits of one origin entry are in ``[1, MAX_VISITS]`` (sums over origins stay < 2**63).
MAX_VISITS: Final = 1 << 40
#: Values (rewards, estimates) are finite with ``|value| <= MAX_ABS_VALUE``.
MAX_ABS_VALUE: Final = 1e15
_MAX_TIMESTAMP: Final = 1 << 62
#: Pseudo-count ``K`` in a pattern's confidence ``visits / (visits + K)``.
DEFAULT_CONFIDENCE_PRIOR: Final = 5.0
_PENDING_MIN: Final = 1024
_EMPTY_I64: Final[I64] = np.empty(0, np.int64)


def pattern_confidence(visits: ArrayLike, prior: float = DEFAULT_CONFIDENCE_PRIOR) -> F64:
    """Confidence of merged statistics from their visit count: ``visits / (visits + prior)``.

    0 for no data, 0.5 at ``visits == prior``, approaching 1 as evidence accumulates.
    """
    n = np.asarray(visits, dtype=np.float64)
    out: F64 = n / (n + prior)
    return out


class PatternStats(NamedTuple):
    """Merged statistics of one ``(state, action)`` over every origin."""

    value: float
    visits: int
    confidence: float
    origins: int
    updated_ms: int


class EntryRecord(NamedTuple):
    """One origin's entry for one ``(state, action)``, as plain Python values."""

    origin: str
    state: str
    action: str
    value: float
    visits: int
    version: int
    updated_ms: int


@dataclass(frozen=True, slots=True)
class MergeStats:
    """What a :meth:`PatternStore.merge` changed.

    ``applied``: incoming entries written to the replica table (new or newer);
    ``new_keys``: ``(state, action)`` pairs not known before; ``reissued``: own entries
    re-issued at a fresh version because a peer held a stale or forged copy of them.
    """

    applied: int
    new_keys: int
    reissued: int


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidInputError(
            f"{what} must be a non-empty str of at most {MAX_NAME_LENGTH} characters, "
            f"got {name!r:.80}"
        )
    return name


def _check_names(names: Sequence[str], what: str) -> None:
    if set(map(type, names)) - {str}:
        raise SyncError(f"{what} table holds a non-string name")
    if names and (min(map(len, names)) < 1 or max(map(len, names)) > MAX_NAME_LENGTH):
        raise SyncError(f"{what} names must be 1..{MAX_NAME_LENGTH} characters long")
    if len(set(names)) != len(names):
        raise SyncError(f"{what} table lists a name twice")


def _column(data: ArrayLike, dtype: type[np.generic], name: str) -> NDArray[Any]:
    arr = np.asarray(data)
    if arr.ndim != 1:
        raise SyncError(f"column {name} must be 1-D, got shape {arr.shape}")
    if not arr.size:
        return np.empty(0, dtype)
    target = np.dtype(dtype)
    if arr.dtype.kind not in "iuf" or (target.kind in "iu" and arr.dtype.kind == "f"):
        raise SyncError(f"column {name} cannot hold {arr.dtype} data as {target}")
    if target.kind in "iu" and arr.dtype != target:
        info = np.iinfo(target)
        if int(arr.min()) < info.min or int(arr.max()) > info.max:
            raise SyncError(f"column {name} holds a value outside the {target} range")
    return np.ascontiguousarray(arr, dtype=dtype)


_BATCH_DTYPES: Final[dict[str, type[np.generic]]] = {
    "origin_idx": np.uint32,
    "state_idx": np.uint32,
    "action_idx": np.uint32,
    "value": np.float64,
    "visits": np.int64,
    "version": np.int64,
    "updated_ms": np.int64,
}


@dataclass(frozen=True, slots=True, eq=False)
class EntryBatch:
    """A columnar batch of replica entries: what a delta or a full state carries.

    ``origins``, ``states`` and ``actions`` are name tables; ``*_idx`` index them per entry.
    Build one with :meth:`from_records` or from arrays; :meth:`validate` checks it.
    """

    origins: list[str]
    states: list[str]
    actions: list[str]
    origin_idx: U32
    state_idx: U32
    action_idx: U32
    value: F64
    visits: I64
    version: I64
    updated_ms: I64

    @classmethod
    def from_arrays(
        cls,
        origins: Sequence[str],
        states: Sequence[str],
        actions: Sequence[str],
        *,
        origin_idx: ArrayLike,
        state_idx: ArrayLike,
        action_idx: ArrayLike,
        value: ArrayLike,
        visits: ArrayLike,
        version: ArrayLike,
        updated_ms: ArrayLike,
    ) -> EntryBatch:
        """A batch from name tables and columns (converted to the canonical dtypes)."""
        return cls(
            list(origins),
            list(states),
            list(actions),
            _column(origin_idx, np.uint32, "origin_idx"),
            _column(state_idx, np.uint32, "state_idx"),
            _column(action_idx, np.uint32, "action_idx"),
            _column(value, np.float64, "value"),
            _column(visits, np.int64, "visits"),
            _column(version, np.int64, "version"),
            _column(updated_ms, np.int64, "updated_ms"),
        )

    @classmethod
    def from_records(cls, records: Iterable[EntryRecord | tuple[Any, ...]]) -> EntryBatch:
        """A batch from ``(origin, state, action, value, visits, version, updated_ms)`` rows."""
        rows = list(records)
        cols: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * 7
        tables: list[list[str]] = []
        indices: list[list[int]] = []
        for names in cols[:3]:
            table = list(dict.fromkeys(names))
            ids = {n: i for i, n in enumerate(table)}
            tables.append(table)
            indices.append([ids[n] for n in names])
        names = ("origin_idx", "state_idx", "action_idx", "value", "visits", "version")
        columns = dict(zip(names, [*indices, *cols[3:6]], strict=True))
        return cls.from_arrays(*tables, **columns, updated_ms=cols[6])

    def __len__(self) -> int:
        return int(self.value.shape[0])

    def validate(self) -> None:
        """Raise :class:`SyncError` unless every column is well-formed and in range."""
        n = len(self)
        for name, dtype in _BATCH_DTYPES.items():
            col = getattr(self, name)
            if not isinstance(col, np.ndarray) or col.dtype != dtype or col.shape != (n,):
                raise SyncError(f"column {name} must be a 1-D {np.dtype(dtype)} array of {n} rows")
        _check_names(self.origins, "origin")
        _check_names(self.states, "state")
        _check_names(self.actions, "action")
        if n == 0:
            return
        for name, table in (
            ("origin_idx", self.origins),
            ("state_idx", self.states),
            ("action_idx", self.actions),
        ):
            if int(getattr(self, name).max()) >= len(table):
                raise SyncError(f"column {name} points past its name table ({len(table)} names)")
        if not np.isfinite(self.value).all():
            raise SyncError("a pattern value is NaN or infinite")
        if float(np.abs(self.value).max()) > MAX_ABS_VALUE:
            raise SyncError(f"a pattern value exceeds {MAX_ABS_VALUE:g} in magnitude")
        if int(self.visits.min()) < 1 or int(self.visits.max()) > MAX_VISITS:
            raise SyncError(f"visits must be in [1, {MAX_VISITS}]")
        if int(self.version.min()) < 1 or int(self.version.max()) > MAX_VERSION:
            raise SyncError(f"versions must be in [1, {MAX_VERSION}]")
        if int(self.updated_ms.min()) < 0 or int(self.updated_ms.max()) > _MAX_TIMESTAMP:
            raise SyncError("updated_ms must be a non-negative millisecond timestamp")

    def records(self) -> list[EntryRecord]:
        """Every entry as an :class:`EntryRecord`, sorted by ``(origin, state, action)``."""
        o, s, a = self.origins, self.states, self.actions
        out = [
            EntryRecord(o[oi], s[si], a[ai], v, n, ver, ts)
            for oi, si, ai, v, n, ver, ts in zip(
                self.origin_idx.tolist(),
                self.state_idx.tolist(),
                self.action_idx.tolist(),
                self.value.tolist(),
                self.visits.tolist(),
                self.version.tolist(),
                self.updated_ms.tolist(),
                strict=True,
            )
        ]
        out.sort()
        return out


@dataclass(frozen=True, slots=True, eq=False)
class PatternView:
    """A columnar snapshot of the merged view: one row per known ``(state, action)``."""

    states: list[str]
    actions: list[str]
    state_idx: I32
    action_idx: I32
    value: F64
    visits: I64
    confidence: F64
    origins: I32
    updated_ms: I64

    def __len__(self) -> int:
        return int(self.value.shape[0])

    def to_dict(self) -> dict[tuple[str, str], PatternStats]:
        """``{(state, action): PatternStats}`` for every pattern (one object each)."""
        s, a = self.states, self.actions
        return {
            (s[si], a[ai]): PatternStats(v, n, c, k, ts)
            for si, ai, v, n, c, k, ts in zip(
                self.state_idx.tolist(),
                self.action_idx.tolist(),
                self.value.tolist(),
                self.visits.tolist(),
                self.confidence.tolist(),
                self.origins.tolist(),
                self.updated_ms.tolist(),
                strict=True,
            )
        }


class _Interner:
    """Names <-> dense int ids (one dict and one list per table)."""

    __slots__ = ("_ids", "strings")

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self.strings: list[str] = []

    def __len__(self) -> int:
        return len(self.strings)

    def get(self, name: str) -> int:
        return self._ids.get(name, -1)

    def add(self, name: str) -> int:
        i = len(self.strings)
        self._ids[name] = i
        self.strings.append(name)
        return i

    def resolve(self, names: list[str]) -> tuple[I64, list[str]]:
        """Ids of distinct ``names``; unknown ones get provisional ids ``len(self) + i``."""
        ids = np.fromiter(map(self._ids.get, names, repeat(-1)), np.int64, len(names))
        missing = np.flatnonzero(ids < 0)
        if not missing.size:
            return ids, []
        new = list(map(names.__getitem__, missing.tolist()))
        ids[missing] = np.arange(len(self.strings), len(self.strings) + missing.size)
        return ids, new

    def commit(self, new: list[str]) -> None:
        start = len(self.strings)
        self.strings.extend(new)
        self._ids.update(zip(new, range(start, start + len(new)), strict=True))

    def copy(self) -> _Interner:
        out = _Interner()
        out._ids = self._ids.copy()
        out.strings = self.strings.copy()
        return out


class _CodeIndex:
    """int64 code -> row: a sorted array pair plus a small dict buffer for single inserts.

    Bulk lookups are ``searchsorted``; bulk inserts merge sorted arrays in O(n + m); single
    inserts go to the buffer, folded in once it exceeds ``max(1024, n / 16)`` (amortized
    O(log n) per insert).
    """

    __slots__ = ("_codes", "_pending", "_rows")

    def __init__(self) -> None:
        self._codes: I64 = _EMPTY_I64
        self._rows: I64 = _EMPTY_I64
        self._pending: dict[int, int] = {}

    def __len__(self) -> int:
        return int(self._codes.size) + len(self._pending)

    def get(self, code: int) -> int:
        row = self._pending.get(code)
        if row is not None:
            return row
        codes = self._codes
        i = codes.searchsorted(code)
        if i < codes.size and codes[i] == code:
            return int(self._rows[i])
        return -1

    def get_few(self, codes: list[int]) -> list[int]:
        """Rows of a handful of codes (-1 where absent), with one ``searchsorted`` call."""
        base = self._codes
        if base.size:
            arr = np.array(codes, np.int64)
            pos = base.searchsorted(arr)
            np.minimum(pos, base.size - 1, out=pos)
            out: list[int] = np.where(base[pos] == arr, self._rows[pos], -1).tolist()
        else:
            out = [-1] * len(codes)
        if self._pending:
            pend = self._pending
            out = [pend.get(c, row) for c, row in zip(codes, out, strict=True)]
        return out

    def _buffer_limit(self) -> int:
        return max(_PENDING_MIN, self._codes.size >> 4)

    def add(self, code: int, row: int) -> None:
        self._pending[code] = row
        if len(self._pending) > self._buffer_limit():
            self._fold()

    def lookup(self, codes: I64) -> I64:
        """Rows of ``codes`` (-1 where absent); fastest when ``codes`` is sorted."""
        out = np.full(codes.size, -1, np.int64)
        base = self._codes
        if base.size and codes.size:
            pos = np.searchsorted(base, codes)
            np.minimum(pos, base.size - 1, out=pos)
            hit = base[pos] == codes
            out[hit] = self._rows[pos[hit]]
        if self._pending and codes.size:
            miss = np.flatnonzero(out < 0)
            if miss.size:
                pend = self._pending
                out[miss] = np.fromiter(
                    map(pend.get, codes[miss].tolist(), repeat(-1)), np.int64, miss.size
                )
        return out

    def add_many(self, codes: I64, rows: I64, *, presorted: bool = False) -> None:
        """Insert distinct ``codes`` that are not in the index yet."""
        if len(self._pending) + codes.size <= self._buffer_limit():
            # small batches (typical deltas) go to the buffer: O(m), not O(n)
            self._pending.update(zip(codes.tolist(), rows.tolist(), strict=True))
            return
        if self._pending:
            codes = np.concatenate((codes, np.fromiter(self._pending, np.int64)))
            rows = np.concatenate((rows, np.fromiter(self._pending.values(), np.int64)))
            self._pending = {}
            presorted = False
        if not codes.size:
            return
        if not presorted:
            order = np.argsort(codes)
            codes, rows = codes[order], rows[order]
        if not self._codes.size:
            self._codes, self._rows = codes.copy(), rows.copy()
            return
        pos = np.searchsorted(self._codes, codes)
        self._codes = np.insert(self._codes, pos, codes)
        self._rows = np.insert(self._rows, pos, rows)

    def _fold(self) -> None:
        codes = np.fromiter(self._pending, np.int64, len(self._pending))
        rows = np.fromiter(self._pending.values(), np.int64, len(self._pending))
        self._pending = {}
        self.add_many(codes, rows)

    def copy(self) -> _CodeIndex:
        out = _CodeIndex()
        out._codes, out._rows = self._codes.copy(), self._rows.copy()
        out._pending = self._pending.copy()
        return out


def _resized(arr: NDArray[Any], capacity: int) -> NDArray[Any]:
    out = np.empty(capacity, arr.dtype)
    out[: arr.size] = arr
    return out


class _Columns:
    """Named numpy columns sharing one length and a doubling capacity."""

    __slots__ = ("_cols", "n")

    def __init__(self, spec: Mapping[str, type[np.generic]], capacity: int) -> None:
        self._cols: dict[str, NDArray[Any]] = {
            name: np.empty(capacity, dtype) for name, dtype in spec.items()
        }
        self.n = 0

    def __getitem__(self, name: str) -> NDArray[Any]:
        return self._cols[name]

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        cap = next(iter(self._cols.values())).size
        if need > cap:
            new_cap = max(need, 2 * cap, 16)
            for name, col in self._cols.items():
                self._cols[name] = _resized(col, new_cap)

    def copy(self) -> _Columns:
        out = _Columns.__new__(_Columns)
        out._cols = {}
        for name, col in self._cols.items():  # keep the capacity: no re-growth after a copy
            out._cols[name] = np.empty_like(col)
            out._cols[name][: self.n] = col[: self.n]
        out.n = self.n
        return out


_ROW_SPEC: Final[dict[str, type[np.generic]]] = {
    "origin": np.int32,
    "key": np.int64,
    "value": np.float64,
    "visits": np.int64,
    "version": np.int64,
    "updated": np.int64,
    "next": np.int64,  # next row of the same key (-1 ends the chain)
}
_KEY_SPEC: Final[dict[str, type[np.generic]]] = {
    "state": np.int32,
    "action": np.int32,
    "value": np.float64,
    "visits": np.int64,
    "origins": np.int32,
    "updated": np.int64,
    "head": np.int64,  # first replica row of this key
}


_Entries = tuple[I64, I64, F64, I64]


def _newer(new: _Entries, old: _Entries) -> NDArray[np.bool_]:
    """Whether ``(version, visits, value, updated)`` of ``new`` > ``old``, lexicographically."""
    ver, vis, val, ts = new
    ver0, vis0, val0, ts0 = old
    eq_ver = ver == ver0
    eq_vis = vis == vis0
    out: NDArray[np.bool_] = (ver > ver0) | (
        eq_ver & ((vis > vis0) | (eq_vis & ((val > val0) | ((val == val0) & (ts > ts0)))))
    )
    return out


_CHAIN_WALK = 8  # chain levels walked before _gather scans the table


def _present(idx: U32, size: int) -> tuple[I64, I64]:
    """Distinct values of ``idx`` (sorted) and each element's position among them."""
    mask = np.zeros(size, np.bool_)
    mask[idx] = True
    used = np.flatnonzero(mask)
    remap = np.cumsum(mask, dtype=np.int64) - 1
    return used, remap[idx]


class PatternStore:
    """One replica of the learning state: per-origin entries plus their merged view.

    Not thread-safe by itself; :class:`~ruvector_edge.learning.IntelligenceSync` wraps it in
    a lock. See the module docstring for the CRDT rules.
    """

    __slots__ = (
        "_actions",
        "_key_index",
        "_keys",
        "_origin_version",
        "_origins",
        "_row_index",
        "_rows",
        "_states",
        "confidence_prior",
    )

    def __init__(
        self, capacity: int = 1024, *, confidence_prior: float = DEFAULT_CONFIDENCE_PRIOR
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise InvalidInputError(f"capacity must be a non-negative int, got {capacity!r}")
        if not (isinstance(confidence_prior, int | float) and confidence_prior > 0):
            raise InvalidInputError(f"confidence_prior must be > 0, got {confidence_prior!r}")
        self.confidence_prior = float(confidence_prior)
        self._origins = _Interner()
        self._states = _Interner()
        self._actions = _Interner()
        self._key_index = _CodeIndex()
        self._row_index = _CodeIndex()
        self._keys = _Columns(_KEY_SPEC, max(capacity, 16))
        self._rows = _Columns(_ROW_SPEC, max(capacity, 16))
        self._origin_version: I64 = np.zeros(16, np.int64)

    # -- size and copies --------------------------------------------------------------

    def __len__(self) -> int:
        """Number of ``(state, action)`` patterns in the merged view."""
        return self._keys.n

    @property
    def entry_count(self) -> int:
        """Number of ``(origin, state, action)`` entries in the replica table."""
        return self._rows.n

    def copy(self) -> PatternStore:
        """An independent deep copy."""
        out = PatternStore.__new__(PatternStore)
        out.confidence_prior = self.confidence_prior
        out._origins = self._origins.copy()
        out._states = self._states.copy()
        out._actions = self._actions.copy()
        out._key_index = self._key_index.copy()
        out._row_index = self._row_index.copy()
        out._keys = self._keys.copy()
        out._rows = self._rows.copy()
        out._origin_version = self._origin_version.copy()
        return out

    # -- versions ---------------------------------------------------------------------

    def max_version(self, origin: str) -> int:
        """Highest version seen from ``origin`` (0 if none)."""
        oid = self._origins.get(origin)
        return int(self._origin_version[oid]) if oid >= 0 else 0

    def version_vector(self) -> dict[str, int]:
        """``{origin: highest version seen}`` for every origin with entries."""
        n = len(self._origins)
        vv = self._origin_version[:n]
        live = np.flatnonzero(vv > 0)
        names = self._origins.strings
        return dict(zip(map(names.__getitem__, live.tolist()), vv[live].tolist(), strict=True))

    def origins(self) -> list[str]:
        """Names of every origin with entries."""
        return list(self.version_vector())

    # -- local learning ---------------------------------------------------------------

    def record(
        self,
        origin: str,
        state: str,
        action: str,
        reward: float,
        *,
        version: int,
        updated_ms: int,
        learning_rate: float | None = None,
    ) -> None:
        """Fold one observed ``reward`` into ``origin``'s entry for ``(state, action)``.

        The entry's value becomes the running mean of its rewards (``learning_rate=None``)
        or moves by ``learning_rate * (reward - value)``; visits grow by one; ``version``
        must exceed the entry's current version (the origin's counter after its bump).
        """
        _check_name(origin, "origin")
        _check_name(state, "state")
        _check_name(action, "action")
        value_in: object = reward  # callers may pass numpy scalars, or anything at all
        if isinstance(value_in, bool) or not isinstance(value_in, numbers.Real):
            raise InvalidInputError(f"reward must be a real number, got {reward!r}")
        r = float(value_in)
        if not math.isfinite(r) or abs(r) > MAX_ABS_VALUE:
            raise InvalidInputError(
                f"reward must be finite with |reward| <= {MAX_ABS_VALUE:g}, got {reward!r}"
            )
        if not 1 <= version <= MAX_VERSION:
            raise InvalidInputError(f"version must be in [1, {MAX_VERSION}], got {version}")
        if not 0 <= updated_ms <= _MAX_TIMESTAMP:
            raise InvalidInputError(f"updated_ms must be >= 0, got {updated_ms}")
        if learning_rate is not None and not 0.0 < learning_rate <= 1.0:
            raise InvalidInputError(f"learning_rate must be in (0, 1], got {learning_rate!r}")
        oid = self._origins.get(origin)
        sid = self._states.get(state)
        aid = self._actions.get(action)
        if oid < 0 and len(self._origins) >= MAX_ORIGINS:
            raise CapacityError(f"a replica tracks at most {MAX_ORIGINS} origins")
        if (sid < 0 and len(self._states) >= _MAX_NAMES) or (
            aid < 0 and len(self._actions) >= _MAX_NAMES
        ):
            raise CapacityError("too many distinct state or action names")
        key = -1
        row = -1
        if sid >= 0 and aid >= 0:
            key = self._key_index.get((sid << 32) | aid)
            if key >= 0 and oid >= 0:
                row = self._row_index.get((key << _ORIGIN_BITS) | oid)
        rows = self._rows
        if row >= 0:
            old_version = int(rows["version"][row])
            if version <= old_version:
                raise InvalidInputError(
                    f"version {version} does not exceed the entry's version {old_version}"
                )
            visits = int(rows["visits"][row]) + 1
            if visits > MAX_VISITS:
                raise CapacityError(f"an entry counts at most {MAX_VISITS} visits")
            value = float(rows["value"][row])
            step = learning_rate if learning_rate is not None else 1.0 / visits
            rows["value"][row] = value + step * (r - value) + 0.0
            rows["visits"][row] = visits
            rows["version"][row] = version
            rows["updated"][row] = updated_ms
        else:
            if oid < 0:
                oid = self._origins.add(origin)
                self._grow_origins()
            if sid < 0:
                sid = self._states.add(state)
            if aid < 0:
                aid = self._actions.add(action)
            if key < 0:
                code = (sid << 32) | aid
                key = self._append_keys(np.array([code], np.int64))
                self._key_index.add(code, key)
            rows.reserve(1)
            row = rows.n
            rows["origin"][row] = oid
            rows["key"][row] = key
            rows["value"][row] = r + 0.0
            rows["visits"][row] = 1
            rows["version"][row] = version
            rows["updated"][row] = updated_ms
            rows["next"][row] = self._keys["head"][key]
            self._keys["head"][key] = row
            rows.n += 1
            self._row_index.add((key << _ORIGIN_BITS) | oid, row)
        self._origin_version[oid] = max(int(self._origin_version[oid]), version)
        self._recompute_one(key)

    # -- merge ------------------------------------------------------------------------

    def merge(
        self, batch: EntryBatch, *, owner: str | None = None, validated: bool = False
    ) -> MergeStats:
        """Merge a batch of entries (a peer's full state or delta) into this replica.

        Per ``(origin, state, action)`` the greater entry (see module docstring) wins; the
        merged view of every touched pattern is recomputed. A batch that is malformed,
        out of range or lists one ``(origin, state, action)`` twice raises
        :class:`SyncError` and leaves the replica untouched.

        ``owner`` (this replica's agent id) protects its own entries, which only the owner
        may write: an incoming owner entry is adopted only for a pattern the owner holds
        no entry for (warm start: a restarted agent gets its history back from a peer);
        it never overwrites an entry the owner holds. If it would have won (a stale copy
        from an earlier run, or a forgery), the owner re-issues its own entry at a fresh
        version so that its copy wins everywhere on the next sync. If the batch reveals
        owner versions above the owner's counter (history the owner forgot), the counter
        jumps past them and every entry the owner holds is re-issued above it, so peers
        that already saw the old history still receive the new entries in deltas.

        ``validated`` skips :meth:`EntryBatch.validate` for a batch the caller has just
        validated itself (a decoded blob); the duplicate-entry check still runs.
        """
        if not validated:
            batch.validate()
        n = len(batch)
        if n == 0:
            return MergeStats(0, 0, 0)
        ro, o_new = self._resolve(self._origins, batch.origins, batch.origin_idx)
        rs, s_new = self._resolve(self._states, batch.states, batch.state_idx)
        ra, a_new = self._resolve(self._actions, batch.actions, batch.action_idx)
        if len(self._origins) + len(o_new) > MAX_ORIGINS:
            raise CapacityError(f"a replica tracks at most {MAX_ORIGINS} origins")
        if max(len(self._states) + len(s_new), len(self._actions) + len(a_new)) > _MAX_NAMES:
            raise CapacityError("too many distinct state or action names")

        codes = (rs << 32) | ra
        kid = self._key_index.lookup(codes)
        new_codes = _EMPTY_I64
        miss = kid < 0
        if miss.any():
            new_codes, inv = np.unique(codes[miss], return_inverse=True)
            if self._keys.n + new_codes.size > _MAX_KEYS:
                raise CapacityError(f"a replica holds at most {_MAX_KEYS} patterns")
            kid[miss] = self._keys.n + inv
        rid = (kid << _ORIGIN_BITS) | ro
        order = np.argsort(rid)
        srid = rid[order]
        if (srid[1:] == srid[:-1]).any():
            raise SyncError("the batch lists one (origin, state, action) entry twice")
        row = np.empty(n, np.int64)
        row[order] = self._row_index.lookup(srid)
        exists = row >= 0

        value = batch.value + 0.0  # -0.0 -> 0.0, so equal entries are bitwise equal
        rows = self._rows
        apply = np.ones(n, np.bool_)
        ex = np.flatnonzero(exists)
        er = row[ex]
        apply[ex] = _newer(
            (batch.version[ex], batch.visits[ex], value[ex], batch.updated_ms[ex]),
            (rows["version"][er], rows["visits"][er], rows["value"][er], rows["updated"][er]),
        )

        reissue = _EMPTY_I64
        owner_floor = 0
        owner_id = -1
        if owner is not None:
            owner_id = self._origins.get(owner)
            if owner_id < 0 and owner in o_new:
                owner_id = len(self._origins) + o_new.index(owner)
            own = ro == owner_id if owner_id >= 0 else None
            if own is not None and own.any():
                counter = (
                    int(self._origin_version[owner_id]) if owner_id < len(self._origins) else 0
                )
                top = int(batch.version[own].max())
                held = own & exists
                beaten = held & apply
                apply &= ~held
                if top > counter:
                    reissue = np.flatnonzero(rows["origin"][: rows.n] == owner_id)
                else:
                    reissue = row[beaten]
                owner_floor = max(counter, top)
                if reissue.size:
                    owner_floor += 1
                    if owner_floor > MAX_VERSION:
                        raise SyncError(f"owner version would exceed {MAX_VERSION}")

        # -- commit (nothing below raises on valid input) --
        self._origins.commit(o_new)
        self._states.commit(s_new)
        self._actions.commit(a_new)
        self._grow_origins()
        if new_codes.size:
            first = self._append_keys(new_codes)
            self._key_index.add_many(
                new_codes, np.arange(first, first + new_codes.size), presorted=True
            )
        upd = np.flatnonzero(apply & exists)
        if upd.size:
            ur = row[upd]
            rows["value"][ur] = value[upd]
            rows["visits"][ur] = batch.visits[upd]
            rows["version"][ur] = batch.version[upd]
            rows["updated"][ur] = batch.updated_ms[upd]
        ins = order[(apply & ~exists)[order]]  # new entries in (key, origin) order
        if ins.size:
            self._append_rows(
                ro[ins],
                kid[ins],
                value=value[ins],
                visits=batch.visits[ins],
                version=batch.version[ins],
                updated=batch.updated_ms[ins],
            )
            self._row_index.add_many(rid[ins], np.arange(rows.n - ins.size, rows.n), presorted=True)
        if reissue.size:
            rows["version"][reissue] = owner_floor
        applied = np.flatnonzero(apply)
        np.maximum.at(self._origin_version, ro[applied], batch.version[applied])
        if owner_id >= 0 and owner_floor > self._origin_version[owner_id]:
            self._origin_version[owner_id] = owner_floor
        if applied.size:
            touched = kid[order[apply[order]]]  # sorted by key
            keep = np.ones(touched.size, np.bool_)
            keep[1:] = touched[1:] != touched[:-1]
            self._recompute(touched[keep])
        return MergeStats(int(applied.size), int(new_codes.size), int(reissue.size))

    def select(self, since: Mapping[str, int] | None = None, *, max_entries: int = 0) -> EntryBatch:
        """Entries with ``version > since.get(origin, 0)`` (all entries if ``since`` is None).

        ``max_entries`` > 0 caps the batch by whole origins, first origins first, and always
        keeps at least one: a delta that is partial by origin is still exact for the
        origins it carries, so the receiver simply asks again for the rest.
        """
        rows = self._rows
        n = rows.n
        if since:
            threshold = np.zeros(len(self._origins), np.int64)
            for name, seen in since.items():
                oid = self._origins.get(name)
                if oid >= 0:
                    threshold[oid] = min(max(int(seen), 0), MAX_VERSION)
            idx = np.flatnonzero(rows["version"][:n] > threshold[rows["origin"][:n]])
        else:
            idx = np.arange(n)
        if 0 < max_entries < len(idx):
            origin_of = rows["origin"][:n][idx]
            ids, counts = np.unique(origin_of, return_counts=True)
            keep = max(1, int(np.searchsorted(np.cumsum(counts), max_entries, side="right")))
            idx = idx[np.isin(origin_of, ids[:keep])]
        return self._batch(idx)

    def select_origin(self, origin: str, since: int = 0) -> EntryBatch:
        """Entries of ``origin`` alone with ``version > since`` (one vectorized scan; no
        per-origin work, so an agent's own delta costs the same with 10 or 10,000 peers)."""
        oid = self._origins.get(origin)
        rows = self._rows
        n = rows.n if oid >= 0 else 0
        idx = np.flatnonzero((rows["origin"][:n] == oid) & (rows["version"][:n] > since))
        return self._batch(idx)

    # -- reads ------------------------------------------------------------------------

    def get(self, state: str, action: str) -> PatternStats | None:
        """Merged statistics of ``(state, action)``, or None if nobody reported it."""
        sid = self._states.get(state)
        aid = self._actions.get(action)
        if sid < 0 or aid < 0:
            return None
        key = self._key_index.get((sid << 32) | aid)
        if key < 0:
            return None
        k = self._keys
        visits = int(k["visits"][key])
        return PatternStats(
            float(k["value"][key]),
            visits,
            visits / (visits + self.confidence_prior),
            int(k["origins"][key]),
            int(k["updated"][key]),
        )

    def candidates(self, state: str, actions: Sequence[str]) -> list[tuple[int, float, int]]:
        """``(position in actions, merged value, visits)`` for each given action with data.

        The scalar path for a handful of actions (``get_best_action``); :meth:`lookup` is
        the vectorized one.
        """
        sid = self._states.get(state)
        if sid < 0:
            return []
        base = sid << 32
        aids = list(map(self._actions.get, actions))
        pos = [i for i, aid in enumerate(aids) if aid >= 0]
        keys = self._key_index.get_few([base | aids[i] for i in pos]) if pos else []
        hits = [(i, key) for i, key in zip(pos, keys, strict=True) if key >= 0]
        if not hits:
            return []
        rows = np.array([key for _, key in hits], np.int64)
        values = self._keys["value"][rows].tolist()
        visits = self._keys["visits"][rows].tolist()
        return [(i, v, n) for (i, _), v, n in zip(hits, values, visits, strict=True)]

    def lookup(self, state: str, actions: Sequence[str]) -> tuple[F64, I64]:
        """Merged ``(values, visits)`` of ``state`` x ``actions``; visits 0 where unknown."""
        values = np.zeros(len(actions), np.float64)
        visits = np.zeros(len(actions), np.int64)
        sid = self._states.get(state)
        if sid < 0 or not actions:
            return values, visits
        aid = np.fromiter(map(self._actions.get, actions), np.int64, len(actions))
        known = np.flatnonzero(aid >= 0)
        keys = self._key_index.lookup((sid << 32) | aid[known])
        found = keys >= 0
        pos, keys = known[found], keys[found]
        values[pos] = self._keys["value"][keys]
        visits[pos] = self._keys["visits"][keys]
        return values, visits

    def view(self) -> PatternView:
        """A columnar copy of the merged view."""
        k = self._keys
        n = k.n
        visits = k["visits"][:n].copy()
        return PatternView(
            self._states.strings.copy(),
            self._actions.strings.copy(),
            k["state"][:n].copy(),
            k["action"][:n].copy(),
            k["value"][:n].copy(),
            visits,
            pattern_confidence(visits, self.confidence_prior),
            k["origins"][:n].copy(),
            k["updated"][:n].copy(),
        )

    def totals(self) -> tuple[int, int, float]:
        """``(patterns, total visits, mean pattern confidence)`` of the merged view."""
        n = self._keys.n
        if not n:
            return 0, 0, 0.0
        visits = self._keys["visits"][:n]
        conf = float(pattern_confidence(visits, self.confidence_prior).mean())
        return n, int(visits.sum()), conf

    # -- internals --------------------------------------------------------------------

    @staticmethod
    def _resolve(interner: _Interner, table: list[str], idx: U32) -> tuple[I64, list[str]]:
        """Local ids per row for the names ``idx`` references (provisional for new names)."""
        used, pos = _present(idx, len(table))
        ids, new = interner.resolve(list(map(table.__getitem__, used.tolist())))
        return ids[pos], new

    def _grow_origins(self) -> None:
        need = len(self._origins)
        if need > self._origin_version.size:
            grown = np.zeros(max(need, 2 * self._origin_version.size), np.int64)
            grown[: self._origin_version.size] = self._origin_version
            self._origin_version = grown

    def _append_keys(self, codes: I64) -> int:
        k = self._keys
        k.reserve(codes.size)
        first = k.n
        end = first + codes.size
        k["state"][first:end] = codes >> 32
        k["action"][first:end] = codes & 0xFFFFFFFF
        k["head"][first:end] = -1
        k["value"][first:end] = 0.0
        k["visits"][first:end] = 0
        k["origins"][first:end] = 0
        k["updated"][first:end] = 0
        k.n = end
        return first

    def _append_rows(
        self, origin: I64, key: I64, *, value: F64, visits: I64, version: I64, updated: I64
    ) -> None:
        """Append rows whose ``key`` column is sorted, and chain them into their keys."""
        rows = self._rows
        m = key.size
        rows.reserve(m)
        first = rows.n
        new = np.arange(first, first + m)
        sl = slice(first, first + m)
        rows["origin"][sl] = origin
        rows["key"][sl] = key
        rows["value"][sl] = value
        rows["visits"][sl] = visits
        rows["version"][sl] = version
        rows["updated"][sl] = updated
        # Chain: within a run of equal keys each row points at the next; the run's last row
        # points at the key's old head, and the run's first row becomes the new head.
        head = self._keys["head"]
        same = key[1:] == key[:-1]
        nxt = np.empty(m, np.int64)
        nxt[:-1] = np.where(same, new[1:], -1)
        last = np.ones(m, np.bool_)
        last[:-1] = ~same
        nxt[last] = head[key[last]]
        first_of_run = np.ones(m, np.bool_)
        first_of_run[1:] = ~same
        head[key[first_of_run]] = new[first_of_run]
        rows["next"][sl] = nxt
        rows.n = first + m

    def _gather(self, keys: I64) -> tuple[I64, I64]:
        """Replica rows of ``keys`` and the position in ``keys`` each row belongs to."""
        nxt = self._rows["next"]
        cur = self._keys["head"][keys]
        seg = np.arange(keys.size)
        rows_parts: list[I64] = []
        seg_parts: list[I64] = []
        # One pass per chain level: as many passes as the most origins any key has. Keys
        # that many origins share (a swarm of agents learning the same pattern) would cost
        # one numpy round per origin, so past _CHAIN_WALK levels one vectorized scan of
        # the whole table collects the remaining rows instead.
        while cur.size:
            rows_parts.append(cur)
            seg_parts.append(seg)
            if len(rows_parts) == _CHAIN_WALK:
                rest, rest_seg = self._scan_rows(keys, np.concatenate(rows_parts))
                rows_parts.append(rest)
                seg_parts.append(rest_seg)
                break
            cur = nxt[cur]
            live = cur >= 0
            if not live.all():
                cur, seg = cur[live], seg[live]
        if len(rows_parts) == 1:
            return rows_parts[0], seg_parts[0]
        return np.concatenate(rows_parts), np.concatenate(seg_parts)

    def _scan_rows(self, keys: I64, gathered: I64) -> tuple[I64, I64]:
        """Rows of ``keys`` not in ``gathered``, found by one scan of the key column."""
        column = self._rows["key"][: self._rows.n]
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        pos = np.minimum(np.searchsorted(sorted_keys, column), sorted_keys.size - 1)
        hit = sorted_keys[pos] == column
        hit[gathered] = False
        found = np.flatnonzero(hit)
        return found, order[pos[found]]

    def _recompute(self, keys: I64) -> None:
        """Recompute the merged view of distinct ``keys`` from their replica rows."""
        rows, seg = self._gather(keys)
        r = self._rows
        m = keys.size
        val = r["value"][rows]
        vis = r["visits"][rows]
        counts = np.bincount(seg, minlength=m)
        # Float sums depend on order. Groups of <= 2 terms are order-free (a+b == b+a);
        # bigger groups are summed sorted by (value, visits), the same order on every replica.
        big = counts[seg] > 2
        if big.any():
            small = ~big
            b_seg, b_val, b_vis = seg[big], val[big], vis[big]
            o = np.lexsort((b_vis, b_val, b_seg))
            num = np.bincount(
                seg[small], weights=vis[small] * val[small], minlength=m
            ) + np.bincount(b_seg[o], weights=b_vis[o] * b_val[o], minlength=m)
        else:
            num = np.bincount(seg, weights=vis * val, minlength=m)
        den = np.zeros(m, np.int64)
        np.add.at(den, seg, vis)
        upd = np.zeros(m, np.int64)
        np.maximum.at(upd, seg, r["updated"][rows])
        value = num / den
        single = counts == 1  # one origin: its value exactly, without the (n*v)/n round trip
        value[single] = val[:m][single]
        k = self._keys
        k["value"][keys] = value
        k["visits"][keys] = den
        k["origins"][keys] = counts
        k["updated"][keys] = upd

    def _recompute_one(self, key: int) -> None:
        """Scalar :meth:`_recompute` of one key: same canonical order, bit-identical result."""
        r = self._rows
        nxt, val_col, vis_col, upd_col = r["next"], r["value"], r["visits"], r["updated"]
        terms: list[tuple[float, int]] = []
        updated = 0
        row = self._keys["head"][key].item()
        while row >= 0:  # one step per origin holding this key
            terms.append((val_col[row].item(), vis_col[row].item()))
            updated = max(updated, upd_col[row].item())
            row = nxt[row].item()
        if len(terms) > 2:
            terms.sort()
        num = 0.0
        visits = 0
        for v, n in terms:
            num += n * v
            visits += n
        k = self._keys
        k["value"][key] = terms[0][0] if len(terms) == 1 else num / visits
        k["visits"][key] = visits
        k["origins"][key] = len(terms)
        k["updated"][key] = updated

    def _batch(self, idx: I64) -> EntryBatch:
        r = self._rows
        k = self._keys
        key = r["key"][idx]
        o_used, o_idx = _present(r["origin"][idx], len(self._origins))
        s_used, s_idx = _present(k["state"][key], len(self._states))
        a_used, a_idx = _present(k["action"][key], len(self._actions))
        return EntryBatch(
            list(map(self._origins.strings.__getitem__, o_used.tolist())),
            list(map(self._states.strings.__getitem__, s_used.tolist())),
            list(map(self._actions.strings.__getitem__, a_used.tolist())),
            o_idx.astype(np.uint32),
            s_idx.astype(np.uint32),
            a_idx.astype(np.uint32),
            r["value"][idx],
            r["visits"][idx],
            r["version"][idx],
            r["updated"][idx],
        )
