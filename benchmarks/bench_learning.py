"""Learning benchmark: CRDT pattern merge, blob throughput and lookups vs a dict baseline.

Run: ``python -m benchmarks.bench_learning`` (``BENCH_QUICK=1`` for a short run).

Workload: two replicas (coordinators relaying 8 agents' statistics) of N patterns each,
keys ``[0, N)`` and ``[N/2, 3N/2)``: half of the incoming entries hit an existing
``(origin, state, action)`` entry (random versions, so about half of those win), half
are new patterns. States ``task-<k // 10>``, actions ``agent-type-<k % 10>``, origin
``agent-<k % 8>``. patterns/s = incoming entries / seconds.

Baseline: the same CRDT semantics written the straightforward way, a dict of
``(state, action) -> {origin: Entry}`` with one slotted Python object per entry, merged
in a Python loop, fed by msgpack-decoded row tuples (msgspec, the fastest decoder here).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import lz4.block
import msgspec
import numpy as np
from rich.console import Console

from benchmarks.harness import QUICK, Report, measure
from ruvector_edge.codec import CompressionLevel
from ruvector_edge.learning import EntryBatch, IntelligenceSync, inspect_pattern_blob

COLUMNS = (
    "case",
    "impl",
    "patterns",
    "seconds",
    "patterns/s",
    "vs baseline",
    "bytes/pattern",
    "us/call",
)
N = 100_000 if QUICK else 1_000_000
N_BASELINE = N if QUICK else 200_000
N_ORIGINS = 8
N_ACTIONS = 10
REPEAT = 2 if QUICK else 3
Row = tuple[str, str, str, float, int, int, int]


# -- workload ----------------------------------------------------------------------------


def make_batch(n: int, first_key: int, seed: int) -> EntryBatch:
    rng = np.random.default_rng(seed)
    keys = np.arange(first_key, first_key + n)
    n_states = (first_key + n) // N_ACTIONS + 1
    return EntryBatch.from_arrays(
        [f"agent-{i}" for i in range(N_ORIGINS)],
        [f"task-{i}" for i in range(n_states)],
        [f"agent-type-{j}" for j in range(N_ACTIONS)],
        origin_idx=keys % N_ORIGINS,
        state_idx=keys // N_ACTIONS,
        action_idx=keys % N_ACTIONS,
        value=rng.random(n),
        visits=rng.integers(1, 100, n),
        version=rng.integers(1, 1_000_000, n),
        updated_ms=rng.integers(1_700_000_000_000, 1_800_000_000_000, n),
    )


def to_rows(batch: EntryBatch) -> list[Row]:
    o, s, a = batch.origins, batch.states, batch.actions
    return [
        (o[oi], s[si], a[ai], v, n, ver, ts)
        for oi, si, ai, v, n, ver, ts in zip(
            batch.origin_idx.tolist(),
            batch.state_idx.tolist(),
            batch.action_idx.tolist(),
            batch.value.tolist(),
            batch.visits.tolist(),
            batch.version.tolist(),
            batch.updated_ms.tolist(),
            strict=True,
        )
    ]


# -- the dict-of-objects baseline (same semantics) ---------------------------------------


class Entry:
    __slots__ = ("updated", "value", "version", "visits")

    def __init__(self, value: float, visits: int, version: int, updated: int) -> None:
        self.value = value
        self.visits = visits
        self.version = version
        self.updated = updated


@dataclass
class DictReplica:
    """Per key a dict origin -> Entry; merged view recomputed for touched keys."""

    entries: dict[tuple[str, str], dict[str, Entry]]
    view: dict[tuple[str, str], tuple[float, int]]
    vv: dict[str, int]

    @classmethod
    def empty(cls) -> DictReplica:
        return cls({}, {}, {})

    def merge(self, rows: Iterable[Row]) -> tuple[int, int]:
        applied = new = 0
        touched: set[tuple[str, str]] = set()
        entries, vv = self.entries, self.vv
        for origin, state, action, value, visits, version, ts in rows:
            key = (state, action)
            per = entries.get(key)
            if per is None:
                per = entries[key] = {}
                new += 1
            cur = per.get(origin)
            if cur is None or (version, visits, value, ts) > (
                cur.version,
                cur.visits,
                cur.value,
                cur.updated,
            ):
                per[origin] = Entry(value, visits, version, ts)
                applied += 1
                touched.add(key)
                if version > vv.get(origin, 0):
                    vv[origin] = version
        for key in touched:
            per = entries[key]
            n = sum(e.visits for e in per.values())
            self.view[key] = (sum(e.visits * e.value for e in per.values()) / n, n)
        return applied, new

    def update(
        self, origin: str, state: str, action: str, reward: float, *, version: int, ts: int
    ) -> None:
        key = (state, action)
        per = self.entries.setdefault(key, {})
        cur = per.get(origin)
        if cur is None:
            per[origin] = Entry(reward, 1, version, ts)
        else:
            cur.visits += 1
            cur.value += (reward - cur.value) / cur.visits
            cur.version, cur.updated = version, ts
        self.vv[origin] = version
        n = sum(e.visits for e in per.values())
        self.view[key] = (sum(e.visits * e.value for e in per.values()) / n, n)

    def rows(self) -> list[Row]:
        return [
            (o, s, a, e.value, e.visits, e.version, e.updated)
            for (s, a), per in self.entries.items()
            for o, e in per.items()
        ]

    def best_action(self, state: str, actions: list[str]) -> tuple[str, float] | None:
        found = [(self.view[(state, a)], a) for a in actions if (state, a) in self.view]
        if not found:
            return None
        (_, visits), action = max(found, key=lambda f: f[0][0])
        return action, visits / (visits + 5.0)


# -- timing helpers ----------------------------------------------------------------------


def timed(setup: Callable[[], Any], op: Callable[[Any], object], repeat: int = REPEAT) -> float:
    """Median seconds of ``op(setup())`` over ``repeat`` runs (setup not timed)."""
    times = []
    for _ in range(repeat):
        state = setup()
        start = time.perf_counter()
        op(state)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    console = Console(width=120)
    report = Report("learning", COLUMNS)
    console.print(f"[bold]building replicas of {N:,} patterns ...[/bold]")
    batch_a, batch_b = make_batch(N, 0, 1), make_batch(N, N // 2, 2)
    a = IntelligenceSync("coordinator-a")
    b = IntelligenceSync("coordinator-b")
    a.merge_entries(batch_a)
    b.merge_entries(batch_b)

    # -- merge: ours, end to end (blob -> decode -> validate -> merge) --
    blob = b.serialize_state()
    result = a.copy().merge_peer_state("coordinator-b", blob)
    t_ours = timed(a.copy, lambda r: r.merge_peer_state("coordinator-b", blob))
    t_mem = timed(a.store.copy, lambda s: s.merge(batch_b))

    # -- merge: baseline, measured on N_BASELINE patterns per replica --
    base_a, base_b = make_batch(N_BASELINE, 0, 1), make_batch(N_BASELINE, N_BASELINE // 2, 2)
    rows_a, rows_b = to_rows(base_a), to_rows(base_b)
    packed_b = msgspec.msgpack.encode(rows_b)

    def fresh_dict() -> DictReplica:
        r = DictReplica.empty()
        r.merge(rows_a)
        return r

    def decode_and_merge(r: DictReplica) -> object:
        return r.merge(msgspec.msgpack.decode(packed_b, type=list[Row]))

    check = fresh_dict()
    base_stats = check.merge(rows_b)
    small = IntelligenceSync("coordinator-a")  # same-size check of the semantics
    small.merge_entries(base_a)
    ours_small = small.merge_peer_state("coordinator-b", _blob_of(base_b))
    assert (ours_small.merged_patterns, ours_small.new_patterns) == base_stats, "semantics differ"
    t_base = timed(fresh_dict, decode_and_merge, repeat=2 if QUICK else 3)
    t_base_mem = timed(fresh_dict, lambda r: r.merge(rows_b), repeat=2 if QUICK else 3)

    ours_rate = N / t_ours
    base_rate = N_BASELINE / t_base
    report.add(
        case="merge blob (decode+validate+merge)",
        impl="ours: merge_peer_state",
        patterns=N,
        seconds=t_ours,
        **{"patterns/s": ours_rate, "vs baseline": ours_rate / base_rate},
    )
    report.add(
        case="merge blob (decode+merge)",
        impl="dict baseline (msgpack rows)",
        patterns=N_BASELINE,
        seconds=t_base,
        **{"patterns/s": base_rate, "vs baseline": 1.0},
    )
    mem_rate = N / t_mem
    base_mem_rate = N_BASELINE / t_base_mem
    report.add(
        case="merge decoded batch",
        impl="ours: PatternStore.merge",
        patterns=N,
        seconds=t_mem,
        **{"patterns/s": mem_rate, "vs baseline": mem_rate / base_mem_rate},
    )
    report.add(
        case="merge decoded rows",
        impl="dict baseline",
        patterns=N_BASELINE,
        seconds=t_base_mem,
        **{"patterns/s": base_mem_rate, "vs baseline": 1.0},
    )
    report.notes.append(
        f"merge result at {N:,}: {result.merged_patterns:,} entries changed, "
        f"{result.new_patterns:,} new patterns; replica now {len(a.store) + result.new_patterns:,}"
        " patterns."
    )
    if N_BASELINE != N:
        report.notes.append(
            f"dict baseline measured on {N_BASELINE:,} + {N_BASELINE:,} patterns (same overlap) "
            f"to keep the run short; its per-pattern rate is what the ratio compares. A "
            f"same-size check confirmed both implementations change the same entries."
        )

    # -- serialize / deserialize --
    for level in (CompressionLevel.FAST, CompressionLevel.HIGH):
        src = IntelligenceSync.restore(blob, codec_level=level)
        data = src.serialize_state()
        t_ser = timed(_const(src), IntelligenceSync.serialize_state)
        t_de = timed(_const(data), IntelligenceSync.restore)
        report.add(
            case=f"serialize_state ({level.name})",
            impl="ours",
            patterns=N,
            seconds=t_ser,
            **{"patterns/s": N / t_ser, "bytes/pattern": len(data) / N},
        )
        report.add(
            case=f"restore = decode+merge into empty ({level.name})",
            impl="ours",
            patterns=N,
            seconds=t_de,
            **{"patterns/s": N / t_de},
        )
    rows_full = rows_b if N_BASELINE == N else to_rows(batch_b)

    def msgpack_lz4() -> bytes:
        out: bytes = lz4.block.compress(msgspec.msgpack.encode(rows_full))
        return out

    packed = msgpack_lz4()
    t_pack = timed(lambda: None, lambda _: msgpack_lz4())
    report.add(
        case="serialize rows: msgpack + LZ4",
        impl="baseline",
        patterns=N,
        seconds=t_pack,
        **{"patterns/s": N / t_pack, "bytes/pattern": len(packed) / N},
    )

    # -- lookups and local updates --
    merged = a.copy()
    merged.merge_peer_state("coordinator-b", blob)
    actions = [f"agent-type-{j}" for j in range(N_ACTIONS)]
    state = f"task-{(N // 2) // N_ACTIONS + 7}"
    assert merged.get_best_action(state, actions) is not None
    t_best = measure(lambda: merged.get_best_action(state, actions))
    dict_merged = fresh_dict()
    dict_merged.merge(rows_b)
    dstate = f"task-{(N_BASELINE // 2) // N_ACTIONS + 7}"
    t_best_base = measure(lambda: dict_merged.best_action(dstate, actions))
    report.add(
        case=f"get_best_action, 10 actions ({len(merged.store):,} patterns)",
        impl="ours",
        **{"us/call": t_best * 1e6, "vs baseline": t_best_base / t_best},
    )
    report.add(
        case=f"best action, 10 actions ({len(dict_merged.view):,} patterns)",
        impl="dict baseline",
        **{"us/call": t_best_base * 1e6, "vs baseline": 1.0},
    )
    counter = iter(range(10**9))

    def learn() -> None:
        i = next(counter)
        merged.update_pattern(f"task-{i % 5000}", actions[i % N_ACTIONS], 0.5)

    dict_counter = iter(range(1, 10**9))

    def dict_learn() -> None:
        i = next(dict_counter)
        dict_merged.update("me", f"task-{i % 5000}", actions[i % N_ACTIONS], 0.5, version=i, ts=0)

    t_update = measure(learn)
    t_update_base = measure(dict_learn)
    report.add(
        case=f"update_pattern ({len(merged.store):,} patterns)",
        impl="ours",
        **{"us/call": t_update * 1e6, "vs baseline": t_update_base / t_update},
    )
    report.add(
        case=f"update_pattern ({len(dict_merged.view):,} patterns)",
        impl="dict baseline",
        **{"us/call": t_update_base * 1e6, "vs baseline": 1.0},
    )
    # -- periodic sync: small deltas (100 new entries each) into the large replica --
    n_deltas = 50 if QUICK else 200
    writer = IntelligenceSync("agent-new")
    deltas = []
    for d in range(n_deltas):
        seen = writer.version_vector()
        for j in range(100):
            writer.update_pattern(f"fresh-task-{d}", f"agent-type-{j % N_ACTIONS}-{j}", 0.5)
        deltas.append(writer.get_delta(seen))
    target = merged.copy()
    start = time.perf_counter()
    for blob_d in deltas:
        target.merge_peer_state("agent-new", blob_d)
    t_delta = (time.perf_counter() - start) / n_deltas
    dict_target = dict_merged
    dict_deltas = [msgspec.msgpack.encode(to_rows(_batch_of(d))) for d in deltas]
    start = time.perf_counter()
    for packed_d in dict_deltas:
        dict_target.merge(msgspec.msgpack.decode(packed_d, type=list[Row]))
    t_delta_base = (time.perf_counter() - start) / n_deltas
    report.add(
        case=f"merge 100-entry delta blob ({len(merged.store):,} patterns)",
        impl="ours",
        **{"us/call": t_delta * 1e6, "vs baseline": t_delta_base / t_delta},
    )
    report.add(
        case=f"merge 100-entry delta rows ({len(dict_target.view):,} patterns)",
        impl="dict baseline",
        **{"us/call": t_delta_base * 1e6, "vs baseline": 1.0},
    )
    report.notes.append(
        "vs baseline: for merges, our patterns/s divided by the baseline's; for lookups, "
        "baseline time divided by ours (>1 = we are faster)."
    )

    report.target(">= 1,000,000 patterns/s (merge blob, end to end)", ours_rate, 1_000_000)
    report.print(console)
    path = report.save()
    console.print(f"saved {path}")


def _const(value: Any) -> Callable[[], Any]:
    return lambda: value


def _batch_of(blob: bytes) -> EntryBatch:
    """The entries of a blob (decoded by merging into an empty observer)."""
    observer = IntelligenceSync("observer")
    observer.merge_peer_state(inspect_pattern_blob(blob).sender, blob)
    return observer.store.select()


def _blob_of(batch: EntryBatch) -> bytes:
    src = IntelligenceSync("coordinator-b")
    src.merge_entries(batch)
    return src.serialize_state()


if __name__ == "__main__":
    main()
