"""ruvLLM router learning curve: routing accuracy against the number of feedback events.

Run: ``python -m benchmarks.bench_llm_router`` (``BENCH_QUICK=1``: 2 seeds, 300 events).

Workload: :class:`ruvector_edge.llm.SyntheticWorkload` - 8 topics with their own made-up
vocabularies, 4 models (tiny, small, medium, large), each the best model for 2 topics.
Queries mix 3-5 topic words with 2-4 words shared by all topics. The full pipeline runs
(``RuvLLM`` with MockBackend + HashEmbedder, 3 documents per topic in memory): each
event is ``query`` then ``feedback`` from a simulated user who rates the best model 5,
a neighbouring model 2, the others 1. Accuracy is measured on 200 held-out queries with
greedy routing (``RuvLLM.route``) every 25 events, for seeds 0..4.

Baselines in the same run: uniform random routing (chance) and the seed's behaviour
(its router is never trained and its confidence rarely passes the threshold, so every
query goes to the one fallback model).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import QUICK, RESULTS_DIR, Report
from ruvector_edge.llm import Config, MockBackend, RuvLLM, SyntheticWorkload

SEEDS = (0, 1) if QUICK else (0, 1, 2, 3, 4)
EVENTS = 300 if QUICK else 400
EVERY = 25
HELD_OUT = 200
COLUMNS = (
    "feedback events",
    "accuracy (mean)",
    "min",
    "max",
    "random",
    "seed: fallback only",
    "ratio vs fallback",
)


def _curve(seed: int) -> tuple[list[float], float, float, dict[str, Any]]:
    cfg = Config().with_seed(seed)
    llm = RuvLLM(cfg, backend=MockBackend())
    wl = SyntheticWorkload(cfg.models, seed=seed)
    llm.add_documents(wl.documents(3))
    held = wl.queries(HELD_OUT, seed=1000 + seed)
    best = [wl.best_model(q.topic) for q in held]

    def accuracy() -> float:
        return float(
            np.mean([llm.route(q.text).model == b for q, b in zip(held, best, strict=True)])
        )

    rng = np.random.default_rng(seed)
    random_acc = float(np.mean([cfg.models[int(rng.integers(len(cfg.models)))] == b for b in best]))
    fallback_acc = float(np.mean([b == cfg.fallback_model for b in best]))
    curve: list[float] = []
    for i, q in enumerate(wl.queries(EVENTS, seed=2000 + seed)):
        if i % EVERY == 0:
            curve.append(accuracy())
        r = llm.query(q.text)
        llm.feedback(wl.feedback(r.request_id, q.topic, r.routing_info.model))
    curve.append(accuracy())
    return curve, random_acc, fallback_acc, llm.stats()


def _plot(xs: list[int], curves: np.ndarray, random_acc: float, fallback_acc: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for c in curves:
        ax.plot(xs, c, color="tab:blue", alpha=0.25, linewidth=1)
    ax.plot(xs, curves.mean(axis=0), color="tab:blue", linewidth=2.5, label="ruvLLM router (mean)")
    ax.axhline(random_acc, color="gray", linestyle=":", label="random routing")
    ax.axhline(fallback_acc, color="tab:red", linestyle="--", label="seed: always fallback")
    ax.axhline(0.9, color="tab:green", linestyle="-.", linewidth=1, label="90% target")
    ax.set_xlabel("feedback events")
    ax.set_ylabel("routing accuracy (held-out queries)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Router learning curve ({len(curves)} seeds, 4 models, 8 topics)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "llm_router.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bench(report: Report) -> None:
    """Fill ``report`` with the learning curve and the events-to-90% target."""
    start = time.perf_counter()
    results = [_curve(s) for s in SEEDS]
    curves = np.array([r[0] for r in results])
    random_acc = float(np.mean([r[1] for r in results]))
    fallback_acc = float(np.mean([r[2] for r in results]))
    xs = [*range(0, EVENTS, EVERY), EVENTS]
    mean = curves.mean(axis=0)
    for j, x in enumerate(xs):
        report.add(
            **{
                "feedback events": x,
                "accuracy (mean)": float(mean[j]),
                "min": float(curves[:, j].min()),
                "max": float(curves[:, j].max()),
                "random": random_acc,
                "seed: fallback only": fallback_acc,
                "ratio vs fallback": float(mean[j] / fallback_acc) if fallback_acc else 0.0,
            }
        )
    reached = [x for x, a in zip(xs, mean, strict=True) if a >= 0.9]
    per_seed = []
    for c in curves:
        hit = [x for x, a in zip(xs, c, strict=True) if a >= 0.9]
        per_seed.append(hit[0] if hit else None)
    first = float(reached[0]) if reached else float("inf")
    report.target("feedback events until mean accuracy >= 90%", first, 300, higher_is_better=False)
    report.target("final mean accuracy", float(mean[-1]), 0.9)
    report.target("final accuracy / seed fallback-only", float(mean[-1] / fallback_acc), 2.0)
    png = _plot(xs, curves, random_acc, fallback_acc)
    router = results[0][3]["router"]
    report.notes.append(
        f"seeds {list(SEEDS)}; events to >=90% per seed: {per_seed}; accuracy measured every "
        f"{EVERY} events on {HELD_OUT} held-out queries with greedy routing"
    )
    report.notes.append(
        f"router: {router['kind']}, temperature {router['temperature']:.3g}, "
        f"tries (seed 0) {router['tries']}; plot: {png.relative_to(RESULTS_DIR.parent.parent)}"
    )
    report.notes.append(f"wall time {time.perf_counter() - start:.1f}s")


def main() -> None:
    """Run the benchmark, print the table, write results/llm_router.json and the PNG."""
    report = Report("llm_router", COLUMNS)
    bench(report)
    report.print()
    report.save()


if __name__ == "__main__":
    main()
