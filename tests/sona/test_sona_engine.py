"""SonaEngine, adapters, trajectories, config and state files."""

from __future__ import annotations

import numpy as np
import pytest

from ruvector_edge.errors import (
    CodecError,
    ConfigError,
    DimensionError,
    InvalidInputError,
    StorageError,
)
from ruvector_edge.sona import (
    BaseLoRA,
    MicroLoRA,
    SonaConfig,
    SonaEngine,
    TrajectoryBuffer,
    learning_signal,
)


def _engine(dim: int = 64, **kw: object) -> SonaEngine:
    return SonaEngine.with_config(SonaConfig(hidden_dim=dim, embedding_dim=dim, **kw))  # type: ignore[arg-type]


def test_seed_trajectory_workflow_and_disabled_engine() -> None:
    eng = SonaEngine(64)
    assert eng.is_enabled()
    b = eng.begin_trajectory([0.1] * 64)
    b.add_step([0.5] * 64, [], 0.8)
    b.add_step([0.6] * 64, [], 0.9)
    eng.end_trajectory(b, 0.85)
    assert eng.stats().trajectories_buffered == 1
    eng.set_enabled(False)
    eng.end_trajectory(eng.begin_trajectory([0.1] * 64), 0.8)
    assert eng.stats().trajectories_buffered == 1


def test_force_learn_reports_and_extracts_patterns() -> None:
    eng = SonaEngine(256)
    for _ in range(150):
        b = eng.begin_trajectory([0.1] * 256)
        b.add_step([0.5] * 256, [], 0.8)
        eng.end_trajectory(b, 0.8)
    msg = eng.force_learn()
    assert "150 trajectories" in msg
    assert eng.stats().patterns_stored >= 1
    found = eng.find_patterns([0.1] * 256, 3)
    assert 1 <= len(found) <= 3
    assert found[0].avg_quality == pytest.approx(0.8)
    assert eng.get_all_patterns()


def test_single_step_trajectory_changes_micro_lora() -> None:
    eng = _engine(micro_lora_lr=0.05)
    x = np.ones(64, np.float32)
    before = eng.apply_micro_lora(x)
    np.testing.assert_allclose(before, x)  # fresh adapter is the identity
    b = eng.begin_trajectory(x)
    b.add_step(x + 0.3, None, 0.9)
    eng.end_trajectory(b, 0.9)  # quality 0.9 > baseline 0.5: pulled towards x + 0.3
    after = eng.apply_micro_lora(x)
    assert np.abs(after - x).sum() > 0
    assert float(np.dot(after - x, np.full(64, 0.3))) > 0
    assert eng.stats().micro_updates == 1


def test_learning_signal_rule() -> None:
    eng = _engine()
    b = eng.begin_trajectory(np.zeros(64))
    b.add_step(np.ones(64), None, 1.0)
    t = b.build(0.7)
    adv, g = learning_signal(t, np.zeros(64, np.float32), 0.5)
    assert adv == pytest.approx(0.2)
    assert g is not None
    np.testing.assert_allclose(g, 0.2 * np.ones(64), rtol=1e-6)
    b2 = eng.begin_trajectory(np.zeros(64))
    assert learning_signal(b2.build(0.9), np.zeros(64, np.float32), 0.5)[1] is None


def test_micro_lora_forward_forms_agree() -> None:
    lora = MicroLoRA(32, 2, seed=3)
    rng = np.random.default_rng(0)
    lora.set_weights(rng.standard_normal((2, 32)), rng.standard_normal((32, 2)))
    xs = rng.standard_normal((10, 32)).astype(np.float32)
    batch = lora.forward_batch(xs)
    single = np.stack([lora.forward(x) for x in xs])
    np.testing.assert_allclose(batch, single, rtol=1e-5, atol=1e-5)
    down, up = lora.get_weights()
    np.testing.assert_allclose(batch, xs + lora.scale * (xs @ down.T) @ up.T, rtol=1e-5, atol=1e-5)
    buf = np.zeros(32, np.float32)
    lora.forward(xs[0], out=buf)  # seed style: out += delta
    np.testing.assert_allclose(buf, batch[0] - xs[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(DimensionError):
        lora.forward(np.zeros(31, np.float32))
    with pytest.raises(DimensionError):
        lora.set_weights(np.zeros((2, 31)), np.zeros((32, 2)))
    with pytest.raises(ConfigError):
        MicroLoRA(32, 3)


def test_base_lora_is_trained_by_background_loop() -> None:
    eng = _engine(base_lora_lr=0.01, base_lora_layers=3)
    rng = np.random.default_rng(1)
    for _ in range(50):
        x = rng.standard_normal(64).astype(np.float32)
        b = eng.begin_trajectory(x)
        b.add_step(x + 0.5, None, 0.9)
        b.add_step(x - 0.5, None, 0.9)
        eng.end_trajectory(b, float(rng.uniform(0.2, 1.0)))
    _, before_up = eng.base_lora.get_weights()
    assert not before_up.any()
    eng.force_learn()
    _, up = eng.base_lora.get_weights()
    assert np.abs(up[0]).sum() > 0
    assert np.abs(up[1]).sum() > 0
    assert not up[2].any()  # no third step, layer 2 untouched
    x = rng.standard_normal(64).astype(np.float32)
    assert np.abs(eng.apply_base_lora(0, x) - x).sum() > 0
    with pytest.raises(InvalidInputError):
        eng.apply_base_lora(3, x)
    bl = BaseLoRA(16, 4, 2)
    with pytest.raises(DimensionError):
        bl.set_layer_weights(0, np.zeros((4, 15)), np.zeros((16, 4)))


def test_tick_uses_injected_clock() -> None:
    now = [0.0]
    eng = SonaEngine.with_config(
        SonaConfig(hidden_dim=8, embedding_dim=8, background_interval_ms=1000),
        clock=lambda: now[0],
    )
    for _ in range(10):
        eng.end_trajectory(eng.begin_trajectory(np.ones(8)), 0.9)
    assert eng.tick() is None
    now[0] = 1.5
    msg = eng.tick()
    assert msg is not None
    assert "10 trajectories" in msg
    assert eng.stats().trajectories_buffered == 0


def test_buffer_counts_drops() -> None:
    buf = TrajectoryBuffer(2)
    eng = _engine(8)
    trajs = [eng.begin_trajectory(np.ones(8)).build(0.5) for _ in range(3)]
    assert [buf.push(t) for t in trajs] == [True, True, False]
    assert buf.dropped == 1
    assert buf.success_rate == pytest.approx(2 / 3)
    eng2 = _engine(8, trajectory_capacity=3)
    for _ in range(5):
        eng2.end_trajectory(eng2.begin_trajectory(np.ones(8)), 0.5)
    st = eng2.stats()
    assert (st.trajectories_buffered, st.trajectories_dropped) == (3, 2)


def test_invalid_inputs_raise_typed_errors() -> None:
    eng = _engine(8)
    with pytest.raises(DimensionError):
        eng.begin_trajectory(np.ones(7))
    with pytest.raises(InvalidInputError):
        eng.begin_trajectory([float("nan")] * 8)
    b = eng.begin_trajectory(np.ones(8))
    with pytest.raises(DimensionError):
        b.add_step(np.ones(5), None, 0.5)
    with pytest.raises(InvalidInputError):
        b.add_step(np.ones(8), None, float("inf"))
    with pytest.raises(InvalidInputError):
        eng.end_trajectory(b, float("nan"))
    with pytest.raises(InvalidInputError):
        eng.find_patterns(np.ones(8), 0)


def test_config_presets_and_validation() -> None:
    assert SonaConfig().micro_lora_rank == 2
    assert SonaConfig().ewc_lambda == 2000.0
    assert SonaConfig.max_throughput().base_lora_rank == 4
    assert SonaConfig.max_quality().base_lora_rank == 16
    assert SonaConfig.edge_deployment().micro_lora_rank == 1
    assert SonaConfig.batch_processing().micro_lora_lr == 0.001
    assert SonaConfig.for_ephemeral().trajectory_capacity == 500
    assert SonaConfig.for_coordinator().pattern_clusters == 200
    with pytest.raises(ConfigError):
        SonaConfig(micro_lora_rank=3)
    with pytest.raises(ConfigError):
        SonaConfig(hidden_dim=64, embedding_dim=32)
    with pytest.raises(ConfigError):
        SonaConfig().replace(nope=1)


def test_state_round_trip_and_malformed_state(tmp_path: object) -> None:
    from pathlib import Path

    eng = _engine(16, micro_lora_lr=0.05, pattern_clusters=2)
    rng = np.random.default_rng(0)
    for _ in range(40):
        x = rng.standard_normal(16).astype(np.float32)
        b = eng.begin_trajectory(x)
        b.add_step(x + 0.1, None, 0.8)
        b.set_model_route("small")
        eng.end_trajectory(b, float(rng.uniform(0.4, 1)))
    eng.force_learn()
    eng.mark_task_boundary()
    path = eng.save(Path(str(tmp_path)) / "sona.state")
    back = SonaEngine.load(path)
    x = rng.standard_normal(16).astype(np.float32)
    np.testing.assert_array_equal(back.apply_micro_lora(x), eng.apply_micro_lora(x))
    assert back.stats().ewc_tasks == 1
    assert back.quality_baseline == eng.quality_baseline
    assert [p.id for p in back.get_all_patterns()] == [p.id for p in eng.get_all_patterns()]
    data = eng.save_state()
    with pytest.raises(CodecError):
        SonaEngine.load_state(data[:-5])
    with pytest.raises(CodecError):
        SonaEngine.load_state(b"garbage")
    with pytest.raises(StorageError):
        SonaEngine.load(Path(str(tmp_path)) / "missing")


def test_large_batches_match_row_by_row() -> None:
    lora = MicroLoRA(16, 2, seed=1)
    rng = np.random.default_rng(2)
    lora.set_weights(rng.standard_normal((2, 16)), rng.standard_normal((16, 2)))
    xs = rng.standard_normal((1300, 16)).astype(np.float32)  # several internal row blocks
    want = xs + lora.scale * (xs @ lora.get_weights()[0].T) @ lora.get_weights()[1].T
    np.testing.assert_allclose(lora.forward_batch(xs), want, rtol=1e-4, atol=1e-4)
    acc = np.zeros_like(xs)
    lora.forward_batch(xs, out=acc)
    np.testing.assert_allclose(acc, want - xs, rtol=1e-4, atol=1e-4)
