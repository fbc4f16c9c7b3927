"""SONA benchmark: MicroLoRA forward, trajectory recording, k-means++, pattern search and
federated aggregation, each against a baseline in the same run.

Run: ``python -m benchmarks.bench_sona`` (``BENCH_QUICK=1`` for a short run).

* MicroLoRA rank 2 at dim 256. Single vector: ``SonaEngine.apply_micro_lora`` and
  ``MicroLoRA.forward`` vs numpy with the adapter merged into a dense ``(256, 256)``
  matrix (``W @ x``), the natural alternative. Batched: 10,000 and 32 vectors per call.
  The seed claims 2,236 vectors/s (0.447 ms per vector at batch 32).
* Trajectory record: ``begin_trajectory`` + ``add_step`` + ``build`` (the seed claims
  112 ns), and the full ``end_trajectory`` including the instant MicroLoRA step.
* k-means: 10,000 x 256 float32 points around 100 Gaussian centres (seed 0), k = 100.
  Ours (k-means++ + Lloyd) vs scikit-learn ``KMeans(init="k-means++", n_init=1,
  algorithm="lloyd")`` and a plain numpy Lloyd (random init, per-cluster mean loop); all
  get ``max_iter=100`` and tol 1e-4; ARI against the generating labels.
* Pattern search over 100 patterns (seed claims 1.3 ms) vs a Python loop over
  ``LearnedPattern.similarity``.
* Aggregation: exports of 100 trajectories (dim 256, with LoRA weights) folded into a
  coordinator, and the signed wire encode/decode, vs the seed-style replay-only path.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.harness import QUICK, Report, measure, median_time
from ruvector_edge.identity import Identity
from ruvector_edge.sona import (
    AgentExport,
    AgentExportStats,
    FederatedCoordinator,
    SonaConfig,
    SonaEngine,
    TrajectoryExport,
    adjusted_rand_index,
    decode_export,
    encode_export,
    kmeans,
)

COLUMNS = ("case", "impl", "value", "unit", "vs baseline", "notes")
DIM = 256
F32 = np.float32


def _micro(report: Report) -> None:
    rng = np.random.default_rng(0)
    eng = SonaEngine(DIM)
    lora = eng.micro_lora
    lora.set_weights(rng.standard_normal((2, DIM)), rng.standard_normal((DIM, 2)))
    x = rng.standard_normal(DIM).astype(F32)
    down, up = lora.get_weights()
    dense = (np.eye(DIM, dtype=F32) + lora.scale * up @ down).astype(F32)
    t_dense = measure(lambda: dense @ x)
    t_eng = measure(lambda: eng.apply_micro_lora(x))
    t_lora = measure(lambda: lora.forward(x))
    buf = np.zeros(DIM, F32)
    t_out = measure(lambda: lora.forward(x, out=buf))
    for impl, t in (
        ("numpy dense merged W @ x (baseline)", t_dense),
        ("SonaEngine.apply_micro_lora", t_eng),
        ("MicroLoRA.forward", t_lora),
        ("MicroLoRA.forward(out=) seed style", t_out),
    ):
        report.add(
            case="micro-lora single vector",
            impl=impl,
            value=t * 1e6,
            unit="us",
            **{"vs baseline": t_dense / t},
        )
    report.target("MicroLoRA single vector (engine) us", t_eng * 1e6, 10.0, higher_is_better=False)
    for n in (32, 10_000):
        xs = rng.standard_normal((n, DIM)).astype(F32)

        def ours(xs: Any = xs) -> object:
            return eng.apply_micro_lora(xs)

        def base(xs: Any = xs) -> object:
            return xs @ dense.T

        t_b = measure(ours)
        t_d = measure(base)
        report.add(
            case=f"micro-lora batch {n}",
            impl="numpy dense merged X @ W.T (baseline)",
            value=n / t_d,
            unit="vectors/s",
            **{"vs baseline": 1.0},
        )
        report.add(
            case=f"micro-lora batch {n}",
            impl="SonaEngine.apply_micro_lora",
            value=n / t_b,
            unit="vectors/s",
            **{"vs baseline": t_d / t_b},
            notes=f"{n / t_b / 2236:.0f}x the seed's 2,236 vectors/s claim",
        )
        if n == 10_000:
            report.target("MicroLoRA batched vectors/s", n / t_b, 1_000_000)


def _record(report: Report) -> None:
    eng = SonaEngine(DIM)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(DIM).astype(F32)
    a = rng.standard_normal(DIM).astype(F32)

    def record() -> None:
        b = eng.begin_trajectory(x)
        b.add_step(a, None, 0.7)
        b.build(0.7)

    def baseline() -> None:  # the cheapest thing a recorder can do: keep a tuple
        (x.copy(), [(a, None, 0.7)], 0.7)

    t_rec = measure(record)
    t_base = measure(baseline)
    report.add(
        case="trajectory record",
        impl="tuple + copy (floor)",
        value=t_base * 1e9,
        unit="ns",
        **{"vs baseline": 1.0},
    )
    report.add(
        case="trajectory record",
        impl="begin + add_step + build",
        value=t_rec * 1e9,
        unit="ns",
        **{"vs baseline": t_base / t_rec},
        notes="seed claims 112 ns (Rust, no method given)",
    )
    eng2 = SonaEngine.with_config(
        SonaConfig(trajectory_capacity=10_000_000), auto_task_boundaries=True
    )

    def full() -> None:
        b = eng2.begin_trajectory(x)
        b.add_step(a, None, 0.7)
        eng2.end_trajectory(b, 0.7)

    t_full = measure(full)
    report.add(
        case="trajectory end (instant learning)",
        impl="end_trajectory incl. MicroLoRA + EWC step",
        value=t_full * 1e6,
        unit="us",
    )


def _lloyd_numpy(x: Any, k: int, seed: int, max_iter: int = 100, tol: float = 1e-4) -> Any:
    rng = np.random.default_rng(seed)
    c = x[rng.choice(x.shape[0], k, replace=False)].copy()
    tol_abs = tol * float(np.mean(np.var(x, axis=0)))
    labels = np.zeros(x.shape[0], dtype=np.int64)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        d = -2.0 * x @ c.T + (c * c).sum(1)[None, :]
        labels = d.argmin(1)
        new = np.stack([x[labels == j].mean(0) if (labels == j).any() else c[j] for j in range(k)])
        shift = float(((new - c) ** 2).sum())
        c = new
        if shift <= tol_abs:
            break
    return c, labels, it


def _inertia(x: Any, c: Any, labels: Any) -> float:
    return float(((x - c[labels]) ** 2).sum())


def _kmeans(report: Report) -> None:
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    n, k = 10_000, 100
    centres = rng.standard_normal((k, DIM)).astype(F32)
    truth = rng.integers(k, size=n)
    x = (centres[truth] + 0.3 * rng.standard_normal((n, DIM))).astype(F32)
    runs: dict[str, Any] = {}

    def ours() -> None:
        runs["ours"] = kmeans(x, k, seed=0, max_iterations=100, tol=1e-4)

    def sk() -> None:
        km = KMeans(
            n_clusters=k,
            init="k-means++",
            n_init=1,
            max_iter=100,
            tol=1e-4,
            algorithm="lloyd",
            random_state=0,
        ).fit(x)
        runs["sklearn"] = (km.cluster_centers_.astype(F32), km.labels_, km.n_iter_)

    def plain() -> None:
        runs["numpy"] = _lloyd_numpy(x, k, 0)

    repeat = 2 if QUICK else 3
    times = {
        "numpy": median_time(plain, repeat=repeat),
        "sklearn": median_time(sk, repeat=repeat),
        "ours": median_time(ours, repeat=repeat),
    }
    names = {
        "numpy": "plain numpy Lloyd, random init (baseline)",
        "sklearn": "scikit-learn KMeans lloyd, k-means++",
        "ours": "ruvector_edge kmeans (k-means++ + Lloyd)",
    }
    for key in ("numpy", "sklearn", "ours"):
        c, labels, iters = runs[key]
        report.add(
            case="k-means 100 clusters, 10k x 256",
            impl=names[key],
            value=times[key] * 1e3,
            unit="ms",
            **{"vs baseline": times["numpy"] / times[key]},
            notes=(
                f"iters={iters}, ARI={adjusted_rand_index(truth, labels):.3f}, "
                f"inertia={_inertia(x, c, labels):.4g}, "
                f"vs sklearn x{times['sklearn'] / times[key]:.2f}"
            ),
        )

    # Pattern search over 100 patterns.
    eng = SonaEngine.with_config(SonaConfig(pattern_clusters=100, quality_threshold=0.0))
    for i in range(n):
        eng.end_trajectory(eng.begin_trajectory(x[i]), 0.8)
    eng.force_learn()
    q = x[0]
    pats = eng.get_all_patterns()
    t_find = measure(lambda: eng.find_patterns(q, 5))
    t_loop = measure(lambda: sorted(pats, key=lambda p: -p.similarity(q))[:5])
    report.add(
        case=f"pattern search top-5 of {len(pats)}",
        impl="Python loop over similarity() (baseline)",
        value=t_loop * 1e6,
        unit="us",
        **{"vs baseline": 1.0},
    )
    report.add(
        case=f"pattern search top-5 of {len(pats)}",
        impl="SonaEngine.find_patterns",
        value=t_find * 1e6,
        unit="us",
        **{"vs baseline": t_loop / t_find},
        notes="seed claims 1.3 ms",
    )


def _export(agent: str, n: int, rng: np.random.Generator, weights: Any) -> AgentExport:
    emb = rng.standard_normal((n, DIM)).astype(F32)
    act = rng.standard_normal((n, DIM)).astype(F32)
    q = rng.uniform(0.2, 1.0, n)
    trajs = [TrajectoryExport(emb[i], float(q[i]), "small", [], i, act[i]) for i in range(n)]
    return AgentExport(agent, trajs, AgentExportStats(n, float(q.mean()), 0), 1000, 1, weights)


def _aggregate(report: Report) -> None:
    rng = np.random.default_rng(2)
    n_exports = 20 if QUICK else 60
    src = SonaEngine.with_config(SonaConfig(base_lora_rank=8))
    exports = [_export(f"agent-{i}", 100, rng, src.export_weights()) for i in range(n_exports)]
    bare = [
        AgentExport(
            e.agent_id,
            [
                TrajectoryExport(t.embedding, t.quality, t.route, [], t.timestamp)
                for t in e.trajectories
            ],
            e.stats,
            e.session_duration_ms,
            e.timestamp,
            None,
        )
        for e in exports
    ]

    consolidate: dict[str, float] = {}

    def run(items: list[AgentExport], replay: bool) -> float:
        coord = FederatedCoordinator.default_coordinator("c", DIM, replay_learning=replay)
        coord.set_consolidation_interval(10**9)  # consolidation is timed separately
        start = time.perf_counter()
        for e in items:
            coord.aggregate(e)
        elapsed = time.perf_counter() - start
        t0 = time.perf_counter()
        coord.force_consolidate()
        consolidate["s"] = time.perf_counter() - t0
        consolidate["patterns"] = coord.stats().patterns_learned
        return elapsed

    best = {"seed": float("inf"), "fedavg": float("inf"), "full": float("inf")}
    for _ in range(2 if QUICK else 3):  # interleaved rounds, best of each
        best["seed"] = min(best["seed"], run(bare, False))
        best["fedavg"] = min(best["fedavg"], run(exports, False))
        best["full"] = min(best["full"], run(exports, True))
    t_seed, t_fedavg, t_full = best["seed"], best["fedavg"], best["full"]
    report.add(
        case="aggregate export (100 traj, dim 256)",
        impl="replay only, no weights (seed behaviour, baseline)",
        value=n_exports / t_seed,
        unit="exports/s",
        **{"vs baseline": 1.0},
    )
    report.add(
        case="aggregate export (100 traj, dim 256)",
        impl="FedAvg + replay into bank",
        value=n_exports / t_fedavg,
        unit="exports/s",
        **{"vs baseline": t_seed / t_fedavg},
    )
    report.add(
        case="aggregate export (100 traj, dim 256)",
        impl="FedAvg + replay learning (default)",
        value=n_exports / t_full,
        unit="exports/s",
        **{"vs baseline": t_seed / t_full},
    )
    report.add(
        case="coordinator consolidation",
        impl=f"force_consolidate: {n_exports * 100:,} trajectories, k=200",
        value=consolidate["s"] * 1e3,
        unit="ms",
        notes=f"{consolidate['patterns']:.0f} patterns after quality filter and merging",
    )
    ident = Identity.from_seed(b"\x05" * 32, "agent-0")
    e0 = exports[0]
    payload = encode_export(e0, ident)
    t_enc = measure(lambda: encode_export(e0, ident))
    t_dec = measure(lambda: decode_export(payload, ident.public_key))
    report.add(
        case="signed export wire",
        impl="encode_export (LZ4 + Ed25519)",
        value=1 / t_enc,
        unit="exports/s",
        notes=f"{len(payload.data):,} bytes for 100 trajectories + weights",
    )
    report.add(
        case="signed export wire",
        impl="decode_export (verify + decode + validate)",
        value=1 / t_dec,
        unit="exports/s",
    )


def main() -> None:
    report = Report("sona", COLUMNS)
    _micro(report)
    _record(report)
    _kmeans(report)
    _aggregate(report)
    report.notes.append(
        "Single-vector and batched timings are best-of rounds (harness.measure); k-means and "
        "aggregation are medians/best of whole runs. OPENBLAS_NUM_THREADS as set by the caller."
    )
    report.print()
    report.save()


if __name__ == "__main__":
    main()
