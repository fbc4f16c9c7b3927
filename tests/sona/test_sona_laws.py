"""Property laws: state and export round trips, FedAvg identities, k-means permutation."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ruvector_edge.identity import Identity
from ruvector_edge.sona import (
    AgentExport,
    AgentExportStats,
    FederatedCoordinator,
    LoraWeights,
    SonaConfig,
    SonaEngine,
    TrajectoryExport,
    adjusted_rand_index,
    decode_export,
    encode_export,
    federated_average,
    kmeans,
    kmeans_plus_plus,
)

IDENT = Identity.from_seed(b"\x07" * 32, "law-agent")


def _weights(seed: int, dim: int = 8, base_rank: int = 4) -> LoraWeights:
    rng = np.random.default_rng(seed)
    return LoraWeights(
        rng.standard_normal((2, dim)).astype(np.float32),
        rng.standard_normal((dim, 2)).astype(np.float32),
        rng.standard_normal((3, base_rank, dim)).astype(np.float32),
        rng.standard_normal((3, dim, base_rank)).astype(np.float32),
    )


@settings(max_examples=25)
@given(st.integers(0, 1000), st.integers(1, 5), st.floats(0.01, 100))
def test_fedavg_of_identical_weights_is_identity(seed: int, n: int, c: float) -> None:
    w = _weights(seed)
    avg = federated_average([w] * n, [c] * n)
    for a, b in zip(
        (avg.micro_down, avg.micro_up, avg.base_down, avg.base_up),
        (w.micro_down, w.micro_up, w.base_down, w.base_up),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@settings(max_examples=25)
@given(
    st.lists(st.floats(0.01, 10), min_size=2, max_size=4),
    st.floats(0.001, 1000),
    st.integers(0, 100),
)
def test_fedavg_is_invariant_to_scaling_weights(
    coefs: list[float], scale: float, seed: int
) -> None:
    ws = [_weights(seed + i) for i in range(len(coefs))]
    a = federated_average(ws, coefs)
    b = federated_average(ws, [c * scale for c in coefs])
    np.testing.assert_allclose(a.micro_up, b.micro_up, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.base_down, b.base_down, rtol=1e-4, atol=1e-5)


@settings(max_examples=10)
@given(st.integers(1, 4), st.integers(0, 100))
def test_coordinator_fedavg_of_identical_exports_is_identity(n: int, seed: int) -> None:
    w = _weights(seed, dim=8, base_rank=4)
    coord = FederatedCoordinator.default_coordinator(
        "c", 8, base_lora_rank=4, base_lora_layers=3, replay_learning=False
    )
    coord.set_quality_threshold(0.0)
    for i in range(n):
        trajs = [TrajectoryExport(np.ones(8, np.float32), 0.7)]
        coord.aggregate(AgentExport(f"a{i}", trajs, weights=w))
    got = coord.master_engine.export_weights()
    np.testing.assert_allclose(got.micro_up, w.micro_up, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.base_down, w.base_down, rtol=1e-5, atol=1e-6)


def test_fedavg_pads_lower_base_rank_exactly() -> None:
    low, high = _weights(1, base_rank=2), _weights(2, base_rank=4)
    avg = federated_average([high, low], [0.0, 1.0])
    np.testing.assert_allclose(avg.base_up @ avg.base_down, low.base_up @ low.base_down, atol=1e-5)


@settings(max_examples=20)
@given(st.integers(0, 10_000))
def test_lloyd_is_permutation_equivariant(seed: int) -> None:
    """From the same initial centres, shuffling the input shuffles the labels and nothing
    else (k-means++ itself is random, so the seeding is shared)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((4, 6)) * 10
    labels = rng.integers(4, size=80)
    x = (centers[labels] + rng.standard_normal((80, 6))).astype(np.float32)
    perm = rng.permutation(80)
    init = kmeans_plus_plus(x, 4, np.random.default_rng(seed))
    ca, a, _ = kmeans(x, 4, init=init)
    cb, b, _ = kmeans(x[perm], 4, init=init)
    np.testing.assert_array_equal(a[perm], b)
    np.testing.assert_allclose(ca, cb, rtol=1e-4, atol=1e-4)
    assert adjusted_rand_index(labels, a) == adjusted_rand_index(labels[perm], b)


@settings(max_examples=15)
@given(
    st.lists(
        st.tuples(st.floats(0, 1), st.sampled_from([None, "small", "large"]), st.booleans()),
        max_size=12,
    ),
    st.integers(0, 2**31),
)
def test_export_encode_decode_round_trip(
    rows: list[tuple[float, str | None, bool]], ts: int
) -> None:
    rng = np.random.default_rng(len(rows))
    trajs = [
        TrajectoryExport(
            rng.standard_normal(8).astype(np.float32),
            q,
            route,
            [f"ctx-{i}"],
            i,
            rng.standard_normal(8).astype(np.float32) if act else None,
        )
        for i, (q, route, act) in enumerate(rows)
    ]
    export = AgentExport(
        "law-agent", trajs, AgentExportStats(len(rows), 0.5, 2), 10, ts, _weights(3)
    )
    back = decode_export(encode_export(export, IDENT), IDENT.public_key)
    assert back.timestamp == ts
    assert back.stats == export.stats
    assert len(back.trajectories) == len(trajs)
    for t, u in zip(trajs, back.trajectories, strict=True):
        np.testing.assert_array_equal(t.embedding, u.embedding)
        assert (t.quality, t.route, t.context, t.timestamp) == (
            u.quality,
            u.route,
            u.context,
            u.timestamp,
        )
        assert (t.activations is None) == (u.activations is None)


@settings(max_examples=10)
@given(st.integers(0, 1000), st.integers(1, 30))
def test_engine_state_round_trip(seed: int, n: int) -> None:
    eng = SonaEngine.with_config(
        SonaConfig(hidden_dim=8, embedding_dim=8, micro_lora_lr=0.05, pattern_clusters=2, seed=seed)
    )
    rng = np.random.default_rng(seed)
    for _ in range(n):
        x = rng.standard_normal(8).astype(np.float32)
        b = eng.begin_trajectory(x)
        b.add_step(x + rng.standard_normal(8), None, 0.5)
        eng.end_trajectory(b, float(rng.uniform()))
    eng.force_learn()
    back = SonaEngine.load_state(eng.save_state())
    assert back.save_state() == eng.save_state()
    x = rng.standard_normal(8).astype(np.float32)
    np.testing.assert_array_equal(back.apply_micro_lora(x), eng.apply_micro_lora(x))
