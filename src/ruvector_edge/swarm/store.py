"""``SwarmStore``: the coordinator's durable state in one SQLite file (WAL).

What lives here: the roster (id ↔ public key bindings, role, capabilities), the task
table, an append-only log of pattern deltas with a periodic snapshot, the election's
durable ``(term, voted_for)``, and small settings such as the join token. Vector
memories persist in their own :class:`~ruvector_edge.memory.VectorMemory` data directory.

Durability: WAL with ``synchronous=NORMAL``. A committed transaction has reached the OS
before ``commit`` returns, so a kill -9 of the process loses nothing committed (only an
OS crash or power loss can lose the last commits; pass ``synchronous="full"`` for those).
The coordinator acknowledges a write only after its transaction committed.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ruvector_edge.errors import ConfigError, StorageError

__all__ = ["DB_FILE", "MemberRecord", "StoredTask", "SwarmStore"]

DB_FILE: Final = "swarm.sqlite"
_SCHEMA_VERSION: Final = 1
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS members (
    agent_id TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    role TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    record BLOB NOT NULL,
    updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pattern_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    blob BLOB NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """A roster row: who joined, with which key, role and capabilities."""

    agent_id: str
    public_key: bytes
    role: str
    capabilities: tuple[str, ...]
    first_seen_ms: int
    last_seen_ms: int


@dataclass(frozen=True, slots=True)
class StoredTask:
    """A task row: its id, state, and the serialized record (owned by the task board)."""

    task_id: str
    state: str
    record: bytes
    updated_ms: int


class SwarmStore:
    """SQLite persistence for a coordinator (not thread-safe: one event loop owns it)."""

    def __init__(self, data_dir: str | Path, *, synchronous: str = "normal") -> None:
        sync = synchronous.strip().upper()
        if sync not in ("NORMAL", "FULL"):
            raise ConfigError(f"synchronous must be 'normal' or 'full', got {synchronous!r}")
        self.data_dir = Path(data_dir)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create data dir {self.data_dir}: {exc}") from exc
        self.path = self.data_dir / DB_FILE
        self._closed = False
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={sync}")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open swarm database {self.path}: {exc}") from exc
        self._log_rows = int(self._query("SELECT COUNT(*) FROM pattern_log")[0][0])
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta("schema_version", str(_SCHEMA_VERSION).encode())
        elif int(version) != _SCHEMA_VERSION:
            self.close()
            raise StorageError(
                f"{self.path} has schema version {int(version)}, this build reads "
                f"{_SCHEMA_VERSION}; use a fresh --data-dir or a matching release"
            )

    # -- plumbing ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise StorageError(f"swarm store {self.path} is closed")
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"swarm database {self.path}: {exc}") from exc

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[Any]:
        if self._closed:
            raise StorageError(f"swarm store {self.path} is closed")
        try:
            return list(self._db.execute(sql, args))
        except sqlite3.Error as exc:
            raise StorageError(f"swarm database {self.path}: {exc}") from exc

    def close(self) -> None:
        """Checkpoint the WAL and close (idempotent)."""
        if self._closed:
            return
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
        self._closed = True

    # -- meta --------------------------------------------------------------------------
    def get_meta(self, key: str) -> bytes | None:
        """A small stored setting, or None."""
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return bytes(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: bytes) -> None:
        """Store a small setting (committed on return)."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- members -----------------------------------------------------------------------
    def upsert_member(self, rec: MemberRecord) -> None:
        """Insert or update a roster row (the first key binding is kept by the caller)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO members VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(agent_id) DO UPDATE "
                "SET public_key = excluded.public_key, role = excluded.role, "
                "capabilities = excluded.capabilities, last_seen_ms = excluded.last_seen_ms",
                (
                    rec.agent_id,
                    rec.public_key,
                    rec.role,
                    json.dumps(list(rec.capabilities)),
                    rec.first_seen_ms,
                    rec.last_seen_ms,
                ),
            )

    def touch_members(self, seen: Iterable[tuple[str, int]]) -> None:
        """Update ``last_seen_ms`` for many members in one transaction."""
        rows = [(ms, agent_id) for agent_id, ms in seen]
        if not rows:
            return
        with self._tx() as db:
            db.executemany("UPDATE members SET last_seen_ms = ? WHERE agent_id = ?", rows)

    def members(self) -> list[MemberRecord]:
        """Every roster row ever admitted (bindings are permanent)."""
        return [
            MemberRecord(
                str(r[0]),
                bytes(r[1]),
                str(r[2]),
                tuple(json.loads(str(r[3]))),
                int(r[4]),
                int(r[5]),
            )
            for r in self._query("SELECT * FROM members ORDER BY agent_id")
        ]

    # -- tasks -------------------------------------------------------------------------
    def put_tasks(self, tasks: Iterable[StoredTask]) -> None:
        """Insert or replace task rows in one transaction."""
        rows = [(t.task_id, t.state, t.record, t.updated_ms) for t in tasks]
        if not rows:
            return
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?)", rows)

    def tasks(self, states: Iterable[str] | None = None) -> list[StoredTask]:
        """Task rows, optionally only those in ``states``."""
        if states is None:
            rows = self._query("SELECT * FROM tasks")
        else:
            wanted = list(states)
            marks = ", ".join("?" * len(wanted))
            rows = self._query(f"SELECT * FROM tasks WHERE state IN ({marks})", tuple(wanted))
        return [StoredTask(str(r[0]), str(r[1]), bytes(r[2]), int(r[3])) for r in rows]

    def task_counts(self) -> dict[str, int]:
        """``{state: count}`` over the task table."""
        rows = self._query("SELECT state, COUNT(*) FROM tasks GROUP BY state")
        return {str(r[0]): int(r[1]) for r in rows}

    def delete_tasks(self, task_ids: Iterable[str]) -> None:
        """Remove finished task rows (retention)."""
        rows = [(t,) for t in task_ids]
        if rows:
            with self._tx() as db:
                db.executemany("DELETE FROM tasks WHERE task_id = ?", rows)

    # -- patterns ----------------------------------------------------------------------
    def append_patterns(self, origin: str, blob: bytes) -> int:
        """Append one merged pattern delta to the log; returns the log length."""
        with self._tx() as db:
            db.execute("INSERT INTO pattern_log (origin, blob) VALUES (?, ?)", (origin, blob))
        self._log_rows += 1
        return self._log_rows

    @property
    def pattern_log_length(self) -> int:
        """Rows in the pattern log (deltas since the last compaction)."""
        return self._log_rows

    def pattern_log(self) -> list[tuple[str, bytes]]:
        """The deltas appended since the last snapshot, oldest first."""
        rows = self._query("SELECT origin, blob FROM pattern_log ORDER BY id")
        return [(str(r[0]), bytes(r[1])) for r in rows]

    def pattern_snapshot(self) -> bytes | None:
        """The last compacted pattern state, or None."""
        return self.get_meta("patterns_snapshot")

    def compact_patterns(self, snapshot: bytes) -> None:
        """Replace snapshot + log by ``snapshot`` (which must include every logged delta)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('patterns_snapshot', ?)",
                (snapshot,),
            )
            db.execute("DELETE FROM pattern_log")
        self._log_rows = 0
