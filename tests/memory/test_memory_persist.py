"""Persistence: save/load, data-dir mode, index-file cache validity, kill -9 durability."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ruvector_edge.errors import ConfigError, DimensionError, StorageError
from ruvector_edge.memory import Tier, TierPolicy, VectorMemory
from ruvector_edge.memory._tiers import TierIndex

DIM = 16


def _vecs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _snapshot(mem: VectorMemory) -> dict[str, Any]:
    out = {}
    for eid in mem.ids():
        e = mem.get(eid)
        out[eid] = (
            e.content,
            e.metadata,
            e.timestamp,
            e.owner_agent,
            e.access_count,
            e.tier,
            e.embedding.tobytes(),
        )
    return out


class Counter:
    """Counts TierIndex.add and TierIndex.load calls (rebuild vs cached index)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.adds = 0
        self.loads = 0
        real_add, real_load = TierIndex.add, TierIndex.load

        def add(idx: TierIndex, *a: Any, **kw: Any) -> None:
            self.adds += 1
            real_add(idx, *a, **kw)

        def load(idx: TierIndex, *a: Any, **kw: Any) -> None:
            self.loads += 1
            real_load(idx, *a, **kw)

        monkeypatch.setattr(TierIndex, "add", add)
        monkeypatch.setattr(TierIndex, "load", load)


def test_save_and_load_roundtrip(tmp_path: Path) -> None:
    x = _vecs(300)
    mem = VectorMemory("agent-7", 500, metric="l2", eviction="fifo")
    ids = mem.store_many(
        [f"doc {i}" for i in range(300)], x, [{"i": i, "even": i % 2 == 0} for i in range(300)]
    )
    mem.delete(ids[5])
    mem.search(x[10], 3)
    mem.save(tmp_path / "snap")
    loaded = VectorMemory.load(tmp_path / "snap")
    assert loaded.agent_id == "agent-7"
    assert loaded.metric.value == "l2"
    assert loaded.max_entries == 500
    assert loaded.data_dir is None
    assert loaded.version == mem.version
    assert _snapshot(loaded) == _snapshot(mem)
    assert loaded.ids() == mem.ids()  # eviction order survives
    assert loaded.tombstones() == mem.tombstones()
    q = x[42] + 0.01
    assert [h.entry.id for h in loaded.search(q, 10)] == [h.entry.id for h in mem.search(q, 10)]
    assert [h.entry.id for h in loaded.search(q, 5, filter={"even": True})] == [
        h.entry.id for h in mem.search(q, 5, filter={"even": True})
    ]
    # The loaded copy is independent of the directory.
    loaded.store("new", x[0])
    assert len(VectorMemory.load(tmp_path / "snap")) == 299


def test_load_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no saved memory"):
        VectorMemory.load(tmp_path / "nothing")


def test_data_dir_reopen_uses_index_files_when_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = _vecs(200)
    mem = VectorMemory.open(tmp_path, "a", max_entries=1000)
    mem.store_many([str(i) for i in range(200)], x)
    mem.close()
    counter = Counter(monkeypatch)
    again = VectorMemory.open(tmp_path)
    assert (counter.adds, counter.loads) == (0, 1)
    assert again.agent_id == "a"
    assert len(again) == 200
    assert again.search(x[3], 1)[0].entry.content == "3"
    again.store("more", x[4] + 1)  # the index files are now stale
    again._store._conn.close()  # type: ignore[union-attr]  # crash: no close()
    counter.adds = counter.loads = 0
    third = VectorMemory.open(tmp_path)
    assert counter.loads == 0
    assert counter.adds >= 1
    assert len(third) == 201
    assert third.search(x[4] + 1, 1)[0].entry.content == "more"


def test_corrupt_index_file_triggers_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = _vecs(100)
    with VectorMemory("a", 1000, data_dir=tmp_path) as mem:
        mem.store_many([str(i) for i in range(100)], x)
    index_file = tmp_path / "index-hot.usearch"
    data = bytearray(index_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    index_file.write_bytes(bytes(data))
    counter = Counter(monkeypatch)
    mem = VectorMemory.open(tmp_path)
    assert counter.loads == 0
    assert counter.adds == 1
    assert [mem.search(x[i], 1)[0].entry.content for i in range(5)] == ["0", "1", "2", "3", "4"]


def test_corrupt_database_raises_storage_error(tmp_path: Path) -> None:
    (tmp_path / "memory.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError):
        VectorMemory.open(tmp_path, "a")


def test_reopen_checks_dim_and_metric(tmp_path: Path) -> None:
    with VectorMemory.open(tmp_path, "a", metric="ip") as mem:
        mem.store("x", np.ones(DIM, dtype=np.float32))
    with pytest.raises(DimensionError, match="16-dimensional"):
        VectorMemory.open(tmp_path, dim=8)
    with pytest.raises(ConfigError, match="ip memory"):
        VectorMemory.open(tmp_path, metric="cosine")
    mem = VectorMemory.open(tmp_path)
    assert mem.metric.value == "ip"
    assert mem.dim == DIM


def test_open_empty_dir_needs_agent_id(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="agent_id"):
        VectorMemory.open(tmp_path / "fresh")


def test_closed_memory_refuses_use(tmp_path: Path) -> None:
    mem = VectorMemory.open(tmp_path, "a")
    mem.store("x", np.ones(DIM, dtype=np.float32))
    mem.close()
    mem.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        mem.store("y", np.ones(DIM, dtype=np.float32))
    with pytest.raises(StorageError, match="closed"):
        mem.search(np.ones(DIM, dtype=np.float32), 1)


def test_smaller_capacity_on_reopen_evicts_by_policy(tmp_path: Path) -> None:
    x = _vecs(10)
    with VectorMemory.open(tmp_path, "a", max_entries=10, eviction="fifo") as mem:
        ids = mem.store_many([str(i) for i in range(10)], x)
    mem = VectorMemory.open(tmp_path, max_entries=4, eviction="fifo")
    assert mem.ids() == ids[6:]
    assert mem.stats().evictions == 6
    mem.close()
    assert len(VectorMemory.open(tmp_path, max_entries=10)) == 4


def test_save_to_own_data_dir_is_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = _vecs(50)
    mem = VectorMemory.open(tmp_path, "a")
    mem.store_many([str(i) for i in range(50)], x)
    mem.search(x[0], 2)
    mem.save(tmp_path)
    mem.store("after", x[1] + 2)
    mem.save(tmp_path)
    expected = _snapshot(mem)
    mem._store._conn.close()  # type: ignore[union-attr]  # crash right after the checkpoint
    counter = Counter(monkeypatch)
    again = VectorMemory.open(tmp_path)
    assert counter.adds == 0  # index files from the checkpoint were still current
    assert _snapshot(again) == expected


def test_attached_memory_saves_elsewhere(tmp_path: Path) -> None:
    x = _vecs(30)
    mem = VectorMemory.open(tmp_path / "live", "a")
    mem.store_many([str(i) for i in range(30)], x)
    mem.save(tmp_path / "copy")
    copy = VectorMemory.load(tmp_path / "copy")
    assert _snapshot(copy) == _snapshot(mem)
    mem.store("only in live", x[0] + 1)
    assert len(VectorMemory.load(tmp_path / "copy")) == 30


_CHILD = r"""
import sys
import numpy as np
from ruvector_edge.memory import VectorMemory
mem = VectorMemory.open(sys.argv[1], "crashy", max_entries=100000, synchronous=sys.argv[2])
rng = np.random.default_rng(0)
for i in range(100000):
    vec = np.random.default_rng(i).standard_normal(16).astype(np.float32)
    eid = mem.store(f"entry {i}", vec, {"i": i}, id=f"e{i}")
    if i % 50 == 0:
        mem.delete(eid)
        sys.stdout.write(f"D {eid}\n")
    else:
        sys.stdout.write(f"S {eid}\n")
    sys.stdout.flush()
"""


@pytest.mark.parametrize("synchronous", ["normal", "full"])
def test_kill_9_loses_no_acknowledged_write(tmp_path: Path, synchronous: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path), synchronous],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    acked_stores: list[str] = []
    acked_deletes: list[str] = []
    buf = b""
    deadline = time.monotonic() + 60
    try:
        while len(acked_stores) < 150:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "child did not acknowledge writes in time"
            ready, _, _ = select.select([proc.stdout], [], [], remaining)
            assert ready, "child did not acknowledge writes in time"
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"child exited early: {proc.stderr.read() if proc.stderr else ''!r}"
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                kind, eid = line.decode().split()
                (acked_stores if kind == "S" else acked_deletes).append(eid)
        proc.send_signal(signal.SIGKILL)  # mid-stream: the child is still writing
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    mem = VectorMemory.open(tmp_path)
    assert len(mem) >= len(acked_stores)
    for eid in acked_stores:
        i = int(eid[1:])
        vec = np.random.default_rng(i).standard_normal(16).astype(np.float32)
        entry = mem.get(eid)
        assert entry.content == f"entry {i}"
        assert entry.metadata == {"i": i}
        hit = mem.search(vec, 1)[0]
        assert hit.entry.id == eid
        assert hit.score == pytest.approx(1.0, abs=1e-5)
    for eid in acked_deletes:
        assert eid not in mem
        assert eid in mem.tombstones()
    # The reopened memory keeps working and its versions keep growing.
    v = mem.version
    mem.store("after the crash", np.ones(16, dtype=np.float32))
    assert mem.version == v + 1


def test_tiers_survive_reopen(tmp_path: Path) -> None:
    clock = [1000.0]
    policy = TierPolicy(half_life_s=10, rebalance_every=0)
    x = _vecs(40)
    mem = VectorMemory.open(tmp_path, "a", tiers=policy, clock=lambda: clock[0])
    ids = mem.store_many([str(i) for i in range(40)], x)
    clock[0] += 1000
    mem.rebalance()
    assert mem.stats().tiers[Tier.COLD] == 40
    mem._store._conn.close()  # type: ignore[union-attr]  # crash: tiers come from SQLite
    again = VectorMemory.open(tmp_path, tiers=policy, clock=lambda: clock[0])
    assert again.stats().tiers[Tier.COLD] == 40
    assert again.get(ids[0]).tier is Tier.COLD
    assert again.search(x[3], 1)[0].entry.id == ids[3]
