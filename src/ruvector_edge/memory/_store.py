"""SQLite persistence for a vector memory: the source of truth; index files are a cache.

One file ``memory.sqlite`` (WAL mode) holds every live entry with its full-precision
float32 vector, the tombstones, and a small ``meta`` table. Every acknowledged write is
one committed transaction, which also bumps ``meta.generation``; index files written by
:meth:`VectorMemory.save`/``close`` record the generation (and a SHA-256 per file) they
match, so a reopen uses them only when nothing changed since, and rebuilds from SQLite
otherwise (for example after a kill -9).

``synchronous``: in WAL mode, ``NORMAL`` makes a commit durable against a process crash
(kill -9 included: the WAL pages were written to the OS before ``commit`` returned) and
never corrupts the database; only an OS crash or power loss can lose the last commits.
``FULL`` also fsyncs the WAL on every commit, which survives power loss at the cost of
one fsync per write. NORMAL is the default; pass ``synchronous="full"`` for the latter.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from ruvector_edge.errors import ConfigError, StorageError

__all__ = ["DB_NAME", "EntryRow", "SqliteStore", "TombstoneRow"]

DB_NAME: Final = "memory.sqlite"
SCHEMA_VERSION: Final = 1
# id, content, metadata, timestamp, owner, access_count, tier, seq, freq, freq_time,
# order_pos, slot, vector
EntryRow = tuple[str, str, bytes, int, str, int, int, int, float, float, int, int, bytes]
# id, timestamp, owner, seq
TombstoneRow = tuple[str, int, str, int]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY,
    content TEXT NOT NULL,
    metadata BLOB NOT NULL,
    timestamp INTEGER NOT NULL,
    owner TEXT NOT NULL,
    access_count INTEGER NOT NULL,
    tier INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    freq REAL NOT NULL,
    freq_time REAL NOT NULL,
    order_pos INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tombstones (
    id TEXT PRIMARY KEY,
    timestamp INTEGER NOT NULL,
    owner TEXT NOT NULL,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
"""
_ENTRY_COLS: Final = (
    "id, content, metadata, timestamp, owner, access_count, tier, seq, freq, freq_time, "
    "order_pos, slot"
)
_UPSERT: Final = (
    f"INSERT OR REPLACE INTO entries ({_ENTRY_COLS}, vector) VALUES ({', '.join('?' * 13)})"
)
_CHUNK: Final = 500  # ids per IN (...) query, below SQLite's variable limit


class SqliteStore:
    """The SQLite side of a persistent memory. All calls come under the memory's lock."""

    __slots__ = ("_conn", "path")

    def __init__(self, path: Path, *, synchronous: str = "normal") -> None:
        sync = synchronous.strip().upper()
        if sync not in ("NORMAL", "FULL"):
            raise ConfigError(f"synchronous must be 'normal' or 'full', got {synchronous!r}")
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={sync}")
            self._conn.executescript(_SCHEMA)
            if self.get_meta("schema") is None:
                self.set_meta({"schema": SCHEMA_VERSION, "generation": 0})
            elif self.get_meta("schema") != SCHEMA_VERSION:
                raise StorageError(
                    f"{path} has schema {self.get_meta('schema')}, this build reads "
                    f"{SCHEMA_VERSION}; open it with a matching ruvector-edge version"
                )
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot open memory database {path}: {exc}") from None

    # ----------------------------------------------------------------------- meta
    def get_meta(self, key: str) -> Any:
        """A meta value, or None."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, values: dict[str, Any]) -> None:
        """Write meta values in one transaction."""
        self._tx(
            lambda c: c.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(values.items())
            ),
            bump=False,
        )

    # ----------------------------------------------------------------------- writes
    def _tx(self, fn: Any, *, bump: bool = True) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                fn(conn)
                if bump:
                    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StorageError(f"writing {self.path} failed: {exc}") from None

    def write(
        self,
        *,
        upserts: Sequence[EntryRow] = (),
        deletes: Iterable[str] = (),
        tombstones: Sequence[TombstoneRow] = (),
        untombstone: Iterable[str] = (),
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Apply one logical change atomically (and bump the generation)."""
        dels = [(i,) for i in deletes]
        undels = [(i,) for i in untombstone]

        def run(c: sqlite3.Connection) -> None:
            if dels:
                c.executemany("DELETE FROM entries WHERE id = ?", dels)
            if undels:
                c.executemany("DELETE FROM tombstones WHERE id = ?", undels)
            if upserts:
                c.executemany(_UPSERT, upserts)
            if tombstones:
                c.executemany(
                    "INSERT OR REPLACE INTO tombstones (id, timestamp, owner, seq) "
                    "VALUES (?, ?, ?, ?)",
                    tombstones,
                )
            if meta:
                c.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(meta.items())
                )

        self._tx(run)

    def update_entries(self, sql: str, rows: Sequence[tuple[Any, ...]], *, bump: bool) -> None:
        """Run one UPDATE statement for many rows in a transaction."""
        if rows:
            self._tx(lambda c: c.executemany(sql, rows), bump=bump)

    def delete_tombstones(self, ids: Sequence[str]) -> None:
        """Forget tombstones."""
        if ids:
            self._tx(
                lambda c: c.executemany("DELETE FROM tombstones WHERE id = ?", [(i,) for i in ids])
            )

    # ----------------------------------------------------------------------- reads
    def entries(self, *, with_vectors: bool) -> Iterator[tuple[Any, ...]]:
        """All entry rows in eviction order (vector column last when requested)."""
        cols = _ENTRY_COLS + (", vector" if with_vectors else "")
        try:
            yield from self._conn.execute(f"SELECT {cols} FROM entries ORDER BY order_pos")
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"reading {self.path} failed: {exc}") from None

    def tombstones(self) -> list[TombstoneRow]:
        """All tombstones."""
        try:
            return list(self._conn.execute("SELECT id, timestamp, owner, seq FROM tombstones"))
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"reading {self.path} failed: {exc}") from None

    def vectors(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The stored float32 vector bytes of ``ids`` (missing ids are left out)."""
        out: dict[str, bytes] = {}
        try:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                q = f"SELECT id, vector FROM entries WHERE id IN ({', '.join('?' * len(chunk))})"
                out.update(self._conn.execute(q, chunk))
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"reading {self.path} failed: {exc}") from None
        return out

    def count(self) -> int:
        """Number of entry rows."""
        return int(self._conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def backup_to(self, path: Path) -> None:
        """Copy the whole database to ``path`` (online backup API)."""
        try:
            dst = sqlite3.connect(path)
            try:
                self._conn.backup(dst)
            finally:
                dst.close()
        except sqlite3.Error as exc:
            raise StorageError(f"copying {self.path} to {path} failed: {exc}") from None

    def close(self) -> None:
        """Checkpoint the WAL and close."""
        with contextlib.suppress(sqlite3.Error):  # a busy checkpoint leaves a valid WAL
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()
