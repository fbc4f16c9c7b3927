"""The router's one-query inference path (stacked constants, cached between updates) is
the same function as the batch forward pass the learner differentiates."""

from __future__ import annotations

import numpy as np
import pytest

from ruvector_edge.llm.router import N_STATS, RouteFeatures, Router, route_features

DIM = 16


def _feats(rng: np.random.Generator) -> RouteFeatures:
    return route_features(
        rng.normal(size=DIM).astype(np.float32),
        rng.normal(size=(3, DIM)).astype(np.float32),
        [float(v) for v in rng.uniform(0, 1, 3)],
        query_tokens=int(rng.integers(1, 30)),
        history_turns=int(rng.integers(0, 4)),
    )


def _reference(r: Router, f: RouteFeatures) -> tuple[np.ndarray, np.ndarray]:
    out, lc, _ = r._forward(f.x1[None], f.x2[None], f.xs[None])
    return 0.5 + r.theta @ f.xs + out[0], lc[0]


def _assert_same(r: Router, feats: list[RouteFeatures]) -> None:
    for f in feats:
        score, lc = r._scores(f)
        ref_score, ref_lc = _reference(r, f)
        np.testing.assert_allclose(score, ref_score, rtol=0, atol=1e-12)
        np.testing.assert_allclose(lc, ref_lc, rtol=0, atol=1e-12)


def test_inference_matches_forward_before_and_after_learning() -> None:
    rng = np.random.default_rng(0)
    r = Router(["a", "b", "c"], DIM, hidden=6, seed=2)
    feats = [_feats(rng) for _ in range(8)]
    _assert_same(r, feats)
    for i in range(40):  # every update changes theta and the cell: the cache must follow
        f = feats[i % len(feats)]
        d = r.route(f)
        r.update(f, d.model_index, float(rng.uniform()), context=d.context_index)
        _assert_same(r, feats[:2])
    assert r.updates == 40
    _assert_same(r, feats)


def test_inference_follows_load_state_dict_and_refresh() -> None:
    rng = np.random.default_rng(1)
    trained = Router(["a", "b"], DIM, hidden=4, seed=3)
    fresh = Router(["a", "b"], DIM, hidden=4, seed=3)
    feats = [_feats(rng) for _ in range(5)]
    fresh._scores(feats[0])  # fills its cache with the untrained constants
    for f in feats * 4:
        trained.update(f, "a", 1.0, context=1)
    fresh.load_state_dict(trained.state_dict())
    for f in feats:
        np.testing.assert_allclose(fresh._scores(f)[0], trained._scores(f)[0], atol=1e-12)
    fresh.params["V"] += 0.5  # an in-place edit needs refresh()
    fresh.refresh()
    _assert_same(fresh, feats)


def test_route_features_rows_share_one_block() -> None:
    rng = np.random.default_rng(2)
    q = rng.normal(size=DIM).astype(np.float32)
    hits = rng.normal(size=(4, DIM)).astype(np.float32)
    f = route_features(q, hits, [0.9, 0.7, 0.5, 0.1], top_k=5, query_tokens=9, history_turns=3)
    block = f.stacked()
    assert block.shape == (3, DIM + N_STATS)
    assert np.shares_memory(block, f.x1)
    assert np.shares_memory(block, f.xs)
    np.testing.assert_array_equal(f.x1[:DIM], q)
    assert not f.x1[DIM:].any()
    ctx = hits.astype(np.float64).sum(axis=0)
    np.testing.assert_allclose(f.x2[:DIM], ctx / np.linalg.norm(ctx), atol=1e-12)
    stats = [0.9, 0.55, 0.8, np.log1p(9) / 5, 0.3, 1.0]
    np.testing.assert_allclose(f.x2[DIM:], stats, atol=1e-12)
    np.testing.assert_allclose(f.xs[DIM:], stats, atol=1e-12)
    np.testing.assert_array_equal(f.xs[:DIM], q)
    # Features built by hand still work (stacked copies them).
    loose = RouteFeatures(f.x1.copy(), f.x2.copy(), f.xs.copy())
    np.testing.assert_array_equal(loose.stacked(), block)
    r = Router(["a", "b"], DIM, hidden=4)
    np.testing.assert_array_equal(r._scores(loose)[0], r._scores(f)[0])


@pytest.mark.parametrize("explore", [True, False])
def test_route_probabilities_are_the_softmax_of_the_scores(explore: bool) -> None:
    rng = np.random.default_rng(3)
    r = Router(["a", "b", "c", "d"], DIM, hidden=6, seed=4)
    feats = [_feats(rng) for _ in range(6)]
    for f in feats * 5:
        r.update(f, int(rng.integers(4)), float(rng.uniform()), context=0)
    for f in feats:
        d = r.route(f, explore=explore)
        probs = r.probabilities(f)
        got = np.array([d.info.probabilities[m] for m in r.models])
        np.testing.assert_allclose(got, probs, rtol=1e-12, atol=1e-15)
        assert d.info.confidence == pytest.approx(float(probs[d.model_index]), rel=1e-12)
        if not explore:
            assert d.model_index == int(np.argmax(r.expected_rewards(f))) or d.info.fallback
