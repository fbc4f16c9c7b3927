"""SwarmStore: committed rows survive reopening; compaction keeps the pattern state."""

from __future__ import annotations

from pathlib import Path

import pytest

from ruvector_edge.errors import StorageError
from ruvector_edge.learning import IntelligenceSync
from ruvector_edge.swarm import SwarmStore
from ruvector_edge.swarm.store import MemberRecord, StoredTask


def test_rows_survive_reopen(tmp_path: Path) -> None:
    store = SwarmStore(tmp_path)
    store.set_meta("k", b"v")
    store.upsert_member(MemberRecord("a", b"k" * 32, "worker", ("rust",), 1, 2))
    store.upsert_member(MemberRecord("a", b"k" * 32, "scout", ("rust", "sql"), 5, 9))
    store.put_tasks([StoredTask("t1", "pending", b"rec", 3), StoredTask("t2", "done", b"r2", 4)])
    store.delete_tasks(["t2"])
    # No close(): what a kill -9 leaves behind must be readable.
    again = SwarmStore(tmp_path)
    assert again.get_meta("k") == b"v"
    (m,) = again.members()
    assert (m.role, m.capabilities, m.first_seen_ms, m.last_seen_ms) == (
        "scout",
        ("rust", "sql"),
        1,
        9,
    )
    assert [t.task_id for t in again.tasks()] == ["t1"]
    assert again.tasks(["done"]) == []
    assert again.task_counts() == {"pending": 1}
    store.close()
    again.close()
    with pytest.raises(StorageError):
        again.get_meta("k")


def test_pattern_log_and_compaction_rebuild_the_same_state(tmp_path: Path) -> None:
    store = SwarmStore(tmp_path)
    hub = IntelligenceSync("hub")
    agents = [IntelligenceSync(f"a{i}") for i in range(3)]
    for step in range(4):
        for i, agent in enumerate(agents):
            agent.update_pattern(f"s{step}", f"x{i}", 0.1 * (i + step))
            blob = agent.get_own_delta(agent.local_version - 1)
            hub.merge_peer_state(agent.agent_id, blob)
            store.append_patterns(agent.agent_id, blob)
        if step == 1:
            store.compact_patterns(hub.serialize_state())
            assert store.pattern_log() == []

    rebuilt = IntelligenceSync("hub")
    snapshot = store.pattern_snapshot()
    assert snapshot is not None
    rebuilt.merge_peer_state("hub", snapshot)
    for origin, blob in store.pattern_log():
        rebuilt.merge_peer_state(origin, blob)
    assert rebuilt.get_state() == hub.get_state()


def test_schema_version_mismatch_is_refused(tmp_path: Path) -> None:
    store = SwarmStore(tmp_path)
    store.set_meta("schema_version", b"99")
    store.close()
    with pytest.raises(StorageError, match="schema version"):
        SwarmStore(tmp_path)
