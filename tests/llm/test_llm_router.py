"""The learned router: gradients, learning curve, fallback, calibration, EWC, state."""

from __future__ import annotations

import numpy as np
import pytest

from ruvector_edge.errors import ConfigError, InvalidInputError
from ruvector_edge.llm import HashEmbedder, Router, SyntheticWorkload, route_features
from ruvector_edge.llm.router import N_STATS

MODELS = ["tiny", "small", "medium", "large"]
# Stated budget: >= 90% routing accuracy within this many feedback events (seeds 0..2).
EVENTS_TO_90 = 300


def _learn(
    router: Router, wl: SyntheticWorkload, seed: int, events: int, check_every: int = 25
) -> list[tuple[int, float]]:
    emb = HashEmbedder()
    ev = wl.queries(200, seed=1000 + seed)
    evf = [route_features(emb.embed(q.text)) for q in ev]

    def acc() -> float:
        hits = [
            router.route(f, explore=False).info.model == wl.best_model(q.topic)
            for f, q in zip(evf, ev, strict=True)
        ]
        return float(np.mean(hits))

    curve = []
    for i, q in enumerate(wl.queries(events, seed=2000 + seed)):
        if i % check_every == 0:
            curve.append((i, acc()))
        f = route_features(emb.embed(q.text))
        d = router.route(f)
        reward = (wl.rating(q.topic, d.info.model) - 1) / 4
        router.update(f, d.model_index, reward, context=d.context_index)
    curve.append((events, acc()))
    return curve


def test_fastgrnn_gradients_match_finite_differences() -> None:
    r = Router(["a", "b", "c"], 10, hidden=5, seed=1)
    rng = np.random.default_rng(0)
    for name in r.params:
        r.params[name] += rng.normal(0, 0.3, r.params[name].shape)
    r.theta[...] = rng.normal(0, 0.1, r.theta.shape)
    items = [
        (
            route_features(
                rng.normal(size=10).astype(np.float32),
                rng.normal(size=(3, 10)).astype(np.float32),
                [0.9, 0.5, 0.3],
                query_tokens=5,
            ),
            int(rng.integers(3)),
            int(rng.integers(4)),
            float(rng.choice([0.0, 0.25, 0.9, 1.0])),
        )
        for _ in range(4)
    ]
    grads, _ = r._grads(items)

    def loss() -> float:
        x1, x2, xs, mi, ci, rr = r._batch(items)
        f, lc, _ = r._forward(x1, x2, xs)
        rows = np.arange(len(items))
        resid = rr - 0.5 - np.einsum("bd,bd->b", xs, r.theta[mi])
        sq = 0.5 * (f[rows, mi] - resid) ** 2
        s = 1 / (1 + np.exp(-lc[rows, ci]))
        bce = -(rr * np.log(s) + (1 - rr) * np.log(1 - s))
        return float((sq + bce).sum() / len(items))

    for name, v in r.params.items():
        num = np.zeros_like(v)
        it = np.nditer(v, flags=["multi_index"])
        for _ in it:
            i = it.multi_index
            old = v[i]
            v[i] = old + 1e-5
            lp = loss()
            v[i] = old - 1e-5
            lm = loss()
            v[i] = old
            num[i] = (lp - lm) / 2e-5
        scale = np.max(np.abs(num)) + 1e-9
        assert np.max(np.abs(num - grads[name])) / scale < 1e-5, name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_router_learns_from_chance_to_90_percent(seed: int) -> None:
    wl = SyntheticWorkload(MODELS, seed=seed)
    r = Router(MODELS, 384, seed=seed)
    curve = _learn(r, wl, seed, EVENTS_TO_90)
    assert curve[0][1] < 0.45  # chance is 25% (plus the fallback's own topics)
    assert curve[-1][1] >= 0.90, curve
    assert r.stats()["tries"]["tiny"] > 0  # every model was explored


def test_router_handles_any_number_of_models() -> None:
    models = [f"m{i}" for i in range(6)]
    wl = SyntheticWorkload(models, n_topics=12, seed=3)
    r = Router(models, 384, seed=3)
    curve = _learn(r, wl, 3, 500, check_every=100)
    assert curve[0][1] < 0.35
    assert curve[-1][1] >= 0.85, curve


def test_untrained_router_uses_fallback_and_forced_routes() -> None:
    r = Router(MODELS, 384, fallback_model="medium", confidence_threshold=0.5)
    f = route_features(HashEmbedder().embed("anything at all"))
    d = r.route(f, explore=False)
    assert d.info.model == "medium"
    assert d.info.fallback
    assert d.info.confidence == pytest.approx(0.25)
    assert sum(d.info.probabilities.values()) == pytest.approx(1.0)
    live = r.route(f)  # optimistic routing also starts with the fallback
    assert live.info.model == "medium"
    forced = r.route(f, model="tiny")
    assert forced.info.model == "tiny"
    assert forced.info.forced
    assert not forced.info.fallback
    assert d.info.context_size == 512  # the configured default context
    with pytest.raises(InvalidInputError):
        r.route(f, model="nope")


def test_confidence_is_calibrated_after_learning() -> None:
    wl = SyntheticWorkload(MODELS, seed=0)
    r = Router(MODELS, 384, seed=0)
    _learn(r, wl, 0, 300, check_every=300)
    emb = HashEmbedder()
    conf, correct = [], []
    for q in wl.queries(300, seed=77):
        info = r.route(route_features(emb.embed(q.text)), explore=False).info
        conf.append(info.confidence)
        correct.append(info.model == wl.best_model(q.topic))
    conf_a, correct_a = np.array(conf), np.array(correct, dtype=float)
    assert 0 < r.temperature < 5
    assert np.all((conf_a >= 0) & (conf_a <= 1))
    # Mean confidence tracks accuracy (expected calibration gap under 0.15).
    assert abs(conf_a.mean() - correct_a.mean()) < 0.15
    # More confident routes are right more often.
    hi = conf_a >= np.median(conf_a)
    assert correct_a[hi].mean() >= correct_a[~hi].mean()


def test_ewc_limits_drift_of_consolidated_weights() -> None:
    emb = HashEmbedder()
    wl_a = SyntheticWorkload(MODELS, seed=10)
    wl_b = SyntheticWorkload(MODELS, seed=11)

    def drift(ewc_lambda: float) -> float:
        r = Router(MODELS, 384, seed=5, ewc_lambda=ewc_lambda, consolidate_every=0)
        _learn(r, wl_a, 10, 150, check_every=150)
        r.consolidate()
        before = {n: v.copy() for n, v in r.params.items()}
        fisher = r._fisher
        for q in wl_b.queries(150, seed=5):
            f = route_features(emb.embed(q.text))
            d = r.route(f)
            r.update(f, d.model_index, (wl_b.rating(q.topic, d.info.model) - 1) / 4)
        # Importance-weighted squared drift of the consolidated parameters.
        return float(sum(np.sum(fisher[n] * (r.params[n] - before[n]) ** 2) for n in before))

    assert drift(2000.0) < 0.5 * drift(0.0)


def test_state_dict_roundtrip_and_validation() -> None:
    wl = SyntheticWorkload(MODELS, seed=0)
    r = Router(MODELS, 384, seed=0)
    _learn(r, wl, 0, 60, check_every=60)
    r2 = Router(MODELS, 384, seed=99)
    r2.load_state_dict(r.state_dict())
    f = route_features(HashEmbedder().embed("roundtrip query"))
    np.testing.assert_allclose(r.probabilities(f), r2.probabilities(f))
    with pytest.raises(InvalidInputError):
        r.update(f, "tiny", 1.5)
    with pytest.raises(InvalidInputError):
        r.route(route_features(np.ones(10, dtype=np.float32)))
    with pytest.raises(ConfigError):
        Router([], 384)
    with pytest.raises(ConfigError):
        Router(["a", "a"], 384)
    with pytest.raises(ConfigError):
        Router(["a"], 384, fallback_model="b")
    assert route_features(np.ones(4, dtype=np.float32)).xs.shape == (4 + N_STATS,)
