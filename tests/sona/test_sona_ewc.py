"""EWC++ unit behaviour: Fisher, consolidation, penalty, lambda schedule, boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from ruvector_edge.errors import ConfigError, DimensionError
from ruvector_edge.sona import (
    EwcConfig,
    EwcPlusPlus,
    FederatedTopology,
    SonaConfig,
    SonaEngine,
    TaskBoundaryDetector,
)


def test_penalty_pulls_important_parameters_back() -> None:
    ewc = EwcPlusPlus(EwcConfig(param_count=2, initial_lambda=1000.0))
    theta = np.zeros(2, np.float32)
    assert ewc.penalty(theta) == 0.0
    assert ewc.current_lambda == 0.0
    for _ in range(20):  # parameter 0 matters for task A, parameter 1 does not
        ewc.update_fisher(np.array([1.0, 0.0], np.float32))
    ewc.consolidate(theta)
    assert ewc.task_count() == 1
    assert ewc.current_lambda == 1000.0
    new = ewc.step(theta, np.array([1.0, 1.0], np.float32), lr=0.1)
    assert abs(new[0]) < 0.01 * abs(new[1])  # the important one barely moves
    assert new[1] == pytest.approx(0.1)
    assert ewc.penalty(new) > 0
    with pytest.raises(DimensionError):
        ewc.step(np.zeros(3, np.float32), np.zeros(3, np.float32), 0.1)


def test_lambda_schedule_grows_and_is_clamped() -> None:
    ewc = EwcPlusPlus(
        EwcConfig(param_count=1, initial_lambda=1000.0, lambda_growth=1.0, max_lambda=3000.0)
    )
    lams = []
    for _ in range(3):
        ewc.update_fisher(np.ones(1, np.float32))
        ewc.consolidate(np.zeros(1, np.float32))
        lams.append(ewc.current_lambda)
    assert lams == [1000.0, 2000.0, 3000.0]
    with pytest.raises(ConfigError):
        EwcConfig(param_count=0)


def test_boundary_detector_fires_on_shift_only() -> None:
    rng = np.random.default_rng(0)
    det = TaskBoundaryDetector(16, window=50, threshold=4.0)
    centre = rng.standard_normal(16)
    fired = [
        det.observe((centre + 0.3 * rng.standard_normal(16)).astype(np.float32)) for _ in range(500)
    ]
    assert not any(fired)
    other = rng.standard_normal(16)
    fired = [
        det.observe((other + 0.3 * rng.standard_normal(16)).astype(np.float32)) for _ in range(100)
    ]
    assert sum(fired) == 1


def test_engine_penalty_dimensions_match_both_adapters() -> None:
    eng = SonaEngine.with_config(SonaConfig(hidden_dim=32, embedding_dim=32, base_lora_rank=4))
    assert eng.ewc_micro.param_count == eng.micro_lora.parameters().shape[0]
    assert eng.ewc_base.param_count == eng.base_lora.parameters().shape[0]
    eng.mark_task_boundary()
    assert eng.stats().ewc_tasks == 1
    assert eng.ewc_base.task_count() == 1
    with pytest.raises(ConfigError):
        FederatedTopology.HIERARCHICAL(0)


def test_boundary_detector_sees_new_topics_among_many_clusters() -> None:
    from ruvector_edge.sona.workload import make_cluster_task

    a = make_cluster_task(dim=256, clusters=20, seed=1)
    b = make_cluster_task(dim=256, clusters=20, seed=2)
    det = TaskBoundaryDetector(256)
    xa, _ = a.sample(1500, np.random.default_rng(0))
    xb, _ = b.sample(300, np.random.default_rng(1))
    assert not any(det.observe(x) for x in xa)
    hits = [i for i, x in enumerate(xb) if det.observe(x)]
    assert len(hits) == 1
    assert hits[0] < 150
