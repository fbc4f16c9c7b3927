"""Learning that shows, on the synthetic cluster task (fixed seeds, default learning rates).

Numbers measured when written (dim 64): quality 0.40 -> 0.998 with MicroLoRA; ARI 1.0;
forgetting of task A under a conflicting task B 0.198 without EWC, 0.005 with lambda=10,
0.000 with lambda=2000; after an auto-detected switch to new topics (lambda=10) A keeps
0.989 and B reaches 0.81; federated coordinator 0.696 vs single agents 0.595 / 0.559 /
0.553 over all clusters.
"""

from __future__ import annotations

import numpy as np

from ruvector_edge.sona import (
    EphemeralAgent,
    FederatedCoordinator,
    SonaConfig,
    SonaEngine,
    adjusted_rand_index,
)
from ruvector_edge.sona.workload import (
    ClusterTask,
    conflicting_task,
    evaluate,
    make_cluster_task,
    run_episode,
)

D = 64


def _cfg(**kw: object) -> SonaConfig:
    base: dict[str, object] = {
        "hidden_dim": D,
        "embedding_dim": D,
        "pattern_clusters": 8,
    }
    base.update(kw)
    return SonaConfig(**base)  # type: ignore[arg-type]


def test_micro_lora_raises_quality_and_patterns_recover_clusters() -> None:
    task = make_cluster_task(dim=D, clusters=8, seed=1, route_bonus=0.0)
    eng = SonaEngine.with_config(_cfg())
    ev_rng = np.random.default_rng(5)
    baseline = evaluate(lambda x: x, task, 2000, ev_rng)
    run_episode(eng, task, 1500, np.random.default_rng(0), explore=0.1)
    adapted = evaluate(eng.apply_micro_lora, task, 2000, np.random.default_rng(5))
    print(f"quality: un-adapted {baseline:.4f} -> MicroLoRA {adapted:.4f}")
    assert adapted > baseline + 0.3
    assert eng.stats().ewc_tasks == 0  # one stationary task: no spurious boundary
    down, _ = eng.micro_lora.get_weights()
    fresh_down, _ = SonaEngine.with_config(_cfg()).micro_lora.get_weights()
    assert np.abs(down - fresh_down).max() > 1e-3  # both projections were trained

    eng.force_learn()
    xs, labels = task.sample(2000, np.random.default_rng(9))
    ari = adjusted_rand_index(labels, eng.reasoning_bank.assign(xs))
    print(f"ARI of pattern assignment vs true clusters: {ari:.4f}")
    assert ari > 0.95


def test_patterns_learn_each_clusters_best_route() -> None:
    task = make_cluster_task(dim=D, clusters=6, seed=3, route_bonus=0.3)
    eng = SonaEngine.with_config(_cfg(micro_lora_lr=0.0, pattern_clusters=6))
    run_episode(eng, task, 1200, np.random.default_rng(1), explore=0.0)
    eng.force_learn()
    hits = 0
    for c in range(task.n_clusters):
        p = eng.find_patterns(task.centroids[c], 1)[0]
        hits += p.model_route == task.routes[int(task.best_route[c])]
    assert hits == task.n_clusters


def _two_tasks(a: ClusterTask, b: ClusterTask, lam: float, auto: bool) -> tuple[float, ...]:
    eng = SonaEngine.with_config(_cfg(ewc_lambda=lam), auto_task_boundaries=auto)
    run_episode(eng, a, 1500, np.random.default_rng(0), explore=0.1)
    qa = evaluate(eng.apply_micro_lora, a, 2000, np.random.default_rng(5))
    if not auto:
        eng.mark_task_boundary()
    run_episode(eng, b, 1500, np.random.default_rng(1), explore=0.1)
    assert eng.stats().ewc_tasks == 1  # exactly one boundary (detected or marked)
    qa_after = evaluate(eng.apply_micro_lora, a, 2000, np.random.default_rng(5))
    qb = evaluate(eng.apply_micro_lora, b, 2000, np.random.default_rng(6))
    return qa, qa_after, qb


def test_ewc_reduces_forgetting() -> None:
    a = make_cluster_task(dim=D, clusters=4, seed=1)
    b = conflicting_task(a)  # same queries, opposite quality: B's solution destroys A's
    forgetting = {}
    for lam in (0.0, 10.0, 2000.0):
        qa, qa_after, qb = _two_tasks(a, b, lam, auto=False)
        forgetting[lam] = qa - qa_after
        print(f"conflicting B, lambda={lam}: A {qa:.4f} -> {qa_after:.4f}, B {qb:.4f}")
    assert forgetting[0.0] > 0.1
    assert forgetting[10.0] < 0.1 * forgetting[0.0]
    assert forgetting[2000.0] < 0.1 * forgetting[0.0]


def test_ewc_still_learns_a_compatible_new_task() -> None:
    a = make_cluster_task(dim=D, clusters=4, seed=1)
    b = make_cluster_task(dim=D, clusters=4, seed=2)  # new topics: boundary auto-detected
    qa, qa_after, qb = _two_tasks(a, b, 10.0, auto=True)
    print(f"new topics, lambda=10: A {qa:.4f} -> {qa_after:.4f}, B {qb:.4f}")
    assert qa_after > qa - 0.02
    assert qb > 0.7


def test_federated_aggregate_beats_every_single_agent() -> None:
    task = make_cluster_task(dim=D, clusters=8, seed=1)
    parts = [[0, 1, 2], [3, 4, 5], [6, 7]]
    agents = []
    for i, p in enumerate(parts):
        agent = EphemeralAgent.default_federated(f"a{i}", D, pattern_clusters=8)
        run_episode(agent, task, 1500, np.random.default_rng(10 + i), clusters=p, explore=0.1)
        agents.append(agent)
    coord = FederatedCoordinator.default_coordinator("c", D, pattern_clusters=8)
    coord.set_quality_threshold(0.0)
    for agent in agents:
        coord.aggregate(agent.export_state())

    def ev(apply: object, clusters: list[int] | None = None) -> float:
        return evaluate(apply, task, 4000, np.random.default_rng(77), clusters=clusters)  # type: ignore[arg-type]

    singles = [ev(a.apply_micro_lora) for a in agents]
    fed = ev(coord.master_engine.apply_micro_lora)
    print(f"all clusters: federated {fed:.4f} vs single agents {[round(s, 4) for s in singles]}")
    assert all(fed > s + 0.05 for s in singles)
    for agent, p in zip(agents, parts, strict=True):
        unseen = [c for c in range(8) if c not in p]
        assert ev(coord.master_engine.apply_micro_lora, unseen) > ev(agent.apply_micro_lora, unseen)
    assert "4500 trajectories" in coord.force_consolidate()
    assert {p.model_route for p in coord.get_all_patterns()} <= set(task.routes)
    # A new agent warm-starts from the coordinator and is as good from its first query.
    fresh = EphemeralAgent.default_federated("new", D, warm_start=coord.warm_start())
    assert ev(fresh.apply_micro_lora) == ev(coord.master_engine.apply_micro_lora)
    assert fresh.engine.stats().patterns_stored == coord.stats().patterns_learned > 0
