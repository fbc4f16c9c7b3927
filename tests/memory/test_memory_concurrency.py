"""Thread safety: concurrent searches and writes, and the readers-writer lock itself."""

from __future__ import annotations

import threading

import numpy as np

from ruvector_edge.memory import Tier, TierPolicy, VectorMemory
from ruvector_edge.memory._rwlock import RWLock


def test_readers_share_and_writers_exclude() -> None:
    lock = RWLock()
    inside = threading.Barrier(2, timeout=10)
    done = []

    def reader() -> None:
        with lock.read():
            inside.wait()  # both readers must be inside at the same time
            done.append("r")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert done == ["r", "r"]

    reader_in = threading.Event()
    release_reader = threading.Event()
    writer_in = threading.Event()

    def long_reader() -> None:
        with lock.read():
            reader_in.set()
            release_reader.wait(10)

    def writer() -> None:
        with lock.write():
            writer_in.set()

    r = threading.Thread(target=long_reader)
    r.start()
    assert reader_in.wait(10)
    w = threading.Thread(target=writer)
    w.start()
    assert not writer_in.wait(0.05)  # blocked while the reader holds the lock
    # A waiting writer also blocks new readers (no writer starvation).
    late_reader_in = threading.Event()

    def late_reader() -> None:
        with lock.read():
            late_reader_in.set()

    lr = threading.Thread(target=late_reader)
    lr.start()
    assert not late_reader_in.wait(0.05)
    release_reader.set()
    assert writer_in.wait(10)
    assert late_reader_in.wait(10)
    for t in (r, w, lr):
        t.join(timeout=10)


def test_concurrent_searches_and_writes_stay_consistent() -> None:
    dim = 16
    rng = np.random.default_rng(0)
    base = rng.standard_normal((500, dim)).astype(np.float32)
    mem = VectorMemory("a", 600, tiers=TierPolicy(half_life_s=0.001, rebalance_every=50))
    mem.store_many([str(i) for i in range(500)], base, [{"g": i % 3} for i in range(500)])
    peer = VectorMemory("p", 200)
    peer.store_many([f"p{i}" for i in range(100)], rng.standard_normal((100, dim)))
    blob = peer.serialize()
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher(seed: int) -> None:
        r = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                q = r.standard_normal(dim).astype(np.float32)
                hits = mem.search(q, 5)
                assert len(hits) == 5
                assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
                fh = mem.search(q, 5, filter={"g": 1})
                assert all(h.entry.metadata.get("g") == 1 for h in fh)
        except BaseException as exc:
            errors.append(exc)

    def writer() -> None:
        r = np.random.default_rng(99)
        try:
            for i in range(300):
                eid = mem.store(f"w{i}", r.standard_normal(dim), {"g": i % 3})
                if i % 7 == 0:
                    mem.delete(eid)
                if i == 150:
                    mem.merge(blob)
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    threads = [threading.Thread(target=searcher, args=(s,)) for s in range(3)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    stats = mem.stats()
    assert stats.entries == len(mem) == sum(stats.tiers.values()) <= 600
    assert stats.tiers[Tier.COLD] > 0  # the automatic rebalances ran
    live = set(mem.ids())
    assert all(h.entry.id in live for h in mem.search(base[0], 50))
