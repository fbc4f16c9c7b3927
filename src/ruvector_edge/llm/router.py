"""The learned router: which configured model, and how many context tokens, for a query.

Routing is a contextual bandit: after each answer we only learn how good the model we
chose was. The router estimates, for every configured model ``m`` (any number), the
expected reward of answering query features ``x`` with ``m``::

    score_m(x) = 0.5 + theta_m . x + f_m(x)

* ``theta_m`` is a closed-form ridge regression per model (disjoint LinUCB, Li et al.
  2010) on the query embedding plus retrieval statistics, updated exactly with
  Sherman-Morrison in O(d^2) per event. It learns from a handful of events. Its
  uncertainty ``sqrt(z' B_m^-1 z)`` drives exploration (``z``: a fixed random projection
  of the embedding to ``bonus_dim`` plus the stats, so the bonus costs O(bonus_dim^2) per
  query): live routing adds ``ucb * uncertainty``, so models never tried on queries like
  this one get tried before the router settles, instead of one model winning by default.
* ``f_m`` is a FastGRNN cell (Kusupati et al., 2018) done right, learning what the
  linear model cannot. It reads the query embedding, then the mean retrieved embedding
  with the retrieval statistics; gate and candidate share ``W``/``U``
  (``a = W x + U h``, ``z = sigmoid(a + b_z)``, ``c = tanh(a + b_h)``,
  ``h' = (zeta (1 - z) + nu) c + z h``, ``zeta, nu = sigmoid(.)`` trainable) with an exact
  logistic sigmoid. Its output head is trained by SGD (plus a replay batch) on the
  residual ``reward - 0.5 - theta_m . x``, and online EWC (EWC++) anchors the weights
  that mattered for earlier feedback.
* A second head on the same state picks the context size (binary cross-entropy on the
  reward of the size used; initialised to the configured default).

``probabilities`` are ``softmax(score / T)`` with the temperature ``T`` refitted on the
positively rated routes (minimum negative log-likelihood): calibrated confidence. Below
``confidence_threshold`` the fallback model answers, unless the router has learned that
the fallback is worse than average for this query (``p_fallback < 1/K``).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from ruvector_edge.errors import ConfigError, InvalidInputError
from ruvector_edge.llm.types import RoutingInfo

__all__ = ["N_STATS", "RouteFeatures", "Router", "RouterDecision", "route_features"]

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
N_STATS: Final = 6
_TEMPS: Final = np.geomspace(0.002, 5.0, 61)
_PARAMS: Final = ("W", "U", "bz", "bh", "zeta", "nu", "V", "Vc", "Sc", "cc")
_Item = tuple["RouteFeatures", int, int, float]


@dataclass(frozen=True, slots=True)
class RouteFeatures:
    """The router's inputs for one query: the two cell inputs and the linear input."""

    x1: F64  # [query embedding, 0...]
    x2: F64  # [mean retrieved embedding, stats]
    xs: F64  # [query embedding, stats]

    def stacked(self) -> F64:
        """``[x1; x2; xs]`` as one ``(3, dim)`` array (no copy when they are its rows, as
        :func:`route_features` makes them)."""
        base = self.x1.base
        if (
            isinstance(base, np.ndarray)
            and base.shape == (3, self.x1.shape[0])
            and self.x2.base is base
            and self.xs.base is base
        ):
            return base
        return np.array((self.x1, self.x2, self.xs))


def route_features(
    query: F32,
    hit_vectors: F32 | None = None,
    hit_scores: Sequence[float] = (),
    *,
    top_k: int = 5,
    query_tokens: int = 0,
    history_turns: int = 0,
) -> RouteFeatures:
    """Router features from the query embedding and retrieval statistics.

    Statistics: top score, mean score, hit fraction of ``top_k``, log query length,
    history turns, and a constant 1 (the linear model's intercept).
    """
    q = np.asarray(query).ravel()
    d = q.shape[0]
    x = np.zeros((3, d + N_STATS))  # rows x1, x2, xs
    x[0, :d] = q
    x[2, :d] = q
    stats = [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    n_hits = len(hit_scores)
    if n_hits:
        scores = [float(v) for v in hit_scores]
        stats[0] = scores[0]
        stats[1] = sum(scores) / n_hits
        stats[2] = min(1.0, n_hits / max(1, top_k))
        if hit_vectors is not None and len(hit_vectors):
            ctx = np.add.reduce(np.asarray(hit_vectors), axis=0, dtype=np.float64)
            n = math.sqrt(float(ctx @ ctx))
            if n > 0:
                np.divide(ctx, n, out=x[1, :d])
    stats[3] = math.log1p(max(0, query_tokens)) / 5.0
    stats[4] = min(max(0, history_turns), 10) / 10.0
    x[1:, d:] = stats
    return RouteFeatures(x[0], x[1], x[2])


@dataclass(frozen=True, slots=True)
class RouterDecision:
    """A routing decision with the indices the learner needs later."""

    info: RoutingInfo
    model_index: int
    context_index: int


def _sigmoid(x: F64) -> F64:
    out: F64 = 0.5 * (1.0 + np.tanh(0.5 * x))  # exact logistic, overflow-free
    return out


def _softmax(logits: F64) -> F64:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: F64 = e / e.sum(axis=-1, keepdims=True)
    return out


class Router:
    """Ridge/LinUCB + FastGRNN router over ``models`` and ``context_sizes`` (thread-safe)."""

    def __init__(
        self,
        models: Sequence[str],
        input_dim: int,
        *,
        context_sizes: Sequence[int] = (256, 512, 1024, 2048),
        default_context: int | None = None,
        hidden: int = 32,
        lr: float = 0.1,
        replay: int = 16,
        buffer_size: int = 1024,
        ridge: float = 1.0,
        ucb: float = 1.0,
        ewc_lambda: float = 2000.0,
        ewc_decay: float = 0.9,
        consolidate_every: int = 200,
        calibrate_every: int = 25,
        confidence_threshold: float = 0.5,
        fallback_model: str | None = None,
        fallback_bonus: float = 0.01,
        exploration: float = 0.0,
        bonus_dim: int | None = 128,
        seed: int = 0,
    ) -> None:
        models = list(models)
        if (
            not models
            or len(set(models)) != len(models)
            or not all(isinstance(m, str) and m for m in models)
        ):
            raise ConfigError(f"router models must be distinct non-empty names, got {models!r}")
        sizes = [int(s) for s in context_sizes]
        if not sizes or any(s <= 0 for s in sizes):
            raise ConfigError(f"context_sizes must be positive ints, got {context_sizes!r}")
        if isinstance(input_dim, bool) or not isinstance(input_dim, int) or input_dim < 1:
            raise ConfigError(f"input_dim must be a positive int, got {input_dim!r}")
        if not 0.0 <= confidence_threshold <= 1.0:
            raise ConfigError(f"confidence_threshold must be in 0..1, got {confidence_threshold}")
        if not 0.0 <= exploration < 1.0:
            raise ConfigError(f"exploration must be in [0, 1), got {exploration}")
        if ridge <= 0 or ucb < 0 or lr <= 0:
            raise ConfigError("ridge and lr must be > 0 and ucb >= 0")
        if fallback_model is not None and fallback_model not in models:
            raise ConfigError(f"fallback model {fallback_model!r} is not one of {models}")
        self.models = models
        self.context_sizes = sizes
        self.embed_dim = input_dim
        self.dim = input_dim + N_STATS
        self.hidden = hidden
        self.lr = float(lr)
        self.replay = int(replay)
        self.ridge = float(ridge)
        self.ucb = float(ucb)
        self.ewc_lambda = float(ewc_lambda)
        self.ewc_decay = float(ewc_decay)
        self.consolidate_every = int(consolidate_every)
        self.calibrate_every = int(calibrate_every)
        self.confidence_threshold = float(confidence_threshold)
        self.fallback_model = fallback_model if fallback_model is not None else models[-1]
        self.fallback_bonus = float(fallback_bonus)
        self.exploration = float(exploration)
        self.temperature = 1.0
        self.updates = 0
        self.positive_updates = 0
        self.negative_updates = 0
        self.consolidations = 0
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()
        self._buffer: deque[_Item] = deque(maxlen=buffer_size)

        k, c, h, d = len(models), len(sizes), hidden, self.dim
        # Ridge regression per model: A^-1 (Sherman-Morrison), b = sum x (r - 0.5), theta.
        self._ainv = np.repeat((np.eye(d) / self.ridge)[None], k, axis=0)
        # The exploration bonus uses its own ridge statistics on a fixed random projection
        # of the embedding (Johnson-Lindenstrauss) plus the stats: O(bonus_dim^2) per query
        # instead of O(d^2), while the reward estimate keeps the full features.
        if bonus_dim is not None and bonus_dim < input_dim:
            pr = np.random.default_rng(seed + 7919)
            proj = pr.normal(0.0, 1.0 / math.sqrt(bonus_dim), (bonus_dim, input_dim))
            self._bproj: NDArray[np.float32] | None = proj.astype(np.float32)
            bd = bonus_dim + N_STATS
        else:
            self._bproj = None
            bd = d
        self._binv = np.repeat((np.eye(bd, dtype=np.float32) / self.ridge)[None], k, axis=0)
        self._b = np.zeros((k, d))
        self.theta = np.zeros((k, d))
        self._tries = np.zeros(k, dtype=np.int64)

        rng = np.random.default_rng(seed)
        p: dict[str, F64] = {
            "W": rng.normal(0.0, 1.0 / math.sqrt(d), (h, d)),
            "U": rng.normal(0.0, 0.3 / math.sqrt(h), (h, h)),
            "bz": np.ones(h),  # gates start leaning towards keeping the state
            "bh": np.zeros(h),
            "zeta": np.array([1.0]),
            "nu": np.array([-4.0]),
            "V": np.zeros((k, h)),  # residual reward head: starts at 0 (pure ridge)
            "Vc": np.zeros((c, h)),
            "Sc": np.zeros((c, d)),
            "cc": np.zeros(c),
        }
        default = default_context if default_context is not None else sizes[min(1, c - 1)]
        if default not in sizes:
            raise ConfigError(f"default context {default} is not one of {sizes}")
        p["cc"][sizes.index(default)] = 2.0  # untrained: the configured default context
        self.params = p
        # Inference constants derived from params and theta (see _infer_consts); None
        # marks them stale. Everything that changes params or theta resets it.
        self._infer: tuple[F64, F64, F64, F64, F64, float, float] | None = None
        self._anchor: dict[str, F64] = {n: v.copy() for n, v in p.items()}
        self._fisher: dict[str, F64] = {n: np.zeros_like(v) for n, v in p.items()}

    # ================================================================= forward
    def _forward(self, x1: F64, x2: F64, xs: F64) -> tuple[F64, F64, dict[str, F64]]:
        """Residual reward ``f`` (B, K), context logits (B, C) and the cell's cache."""
        p = self.params
        zeta = float(_sigmoid(p["zeta"])[0])
        nu = float(_sigmoid(p["nu"])[0])
        b = x1.shape[0]
        a12 = np.concatenate([x1, x2]) @ p["W"].T  # one matmul for both steps
        a1 = a12[:b]
        z1 = _sigmoid(a1 + p["bz"])
        c1 = np.tanh(a1 + p["bh"])
        g1 = zeta * (1.0 - z1) + nu
        h1 = g1 * c1
        a2 = a12[b:] + h1 @ p["U"].T
        z2 = _sigmoid(a2 + p["bz"])
        c2 = np.tanh(a2 + p["bh"])
        g2 = zeta * (1.0 - z2) + nu
        h2 = g2 * c2 + z2 * h1
        f = h2 @ p["V"].T
        lc = h2 @ p["Vc"].T + xs @ p["Sc"].T + p["cc"]
        cache = {"z1": z1, "c1": c1, "g1": g1, "h1": h1, "z2": z2, "c2": c2, "g2": g2, "h2": h2}
        cache["zeta"] = np.array([zeta])
        cache["nu"] = np.array([nu])
        return f, lc, cache

    def _backward(
        self, x: tuple[F64, F64, F64], gf: F64, glc: F64, cache: dict[str, F64]
    ) -> dict[str, F64]:
        """Parameter gradients given output gradients ``gf`` (B, K) and ``glc`` (B, C)."""
        x1, x2, xs = x
        p = self.params
        z1, c1, g1, h1 = cache["z1"], cache["c1"], cache["g1"], cache["h1"]
        z2, c2, g2, h2 = cache["z2"], cache["c2"], cache["g2"], cache["h2"]
        zeta, nu = float(cache["zeta"][0]), float(cache["nu"][0])
        gr: dict[str, F64] = {
            "V": gf.T @ h2,
            "Vc": glc.T @ h2,
            "Sc": glc.T @ xs,
            "cc": glc.sum(axis=0),
        }
        dh2 = gf @ p["V"] + glc @ p["Vc"]
        # step 2: h2 = (zeta (1 - z2) + nu) c2 + z2 h1
        dc2 = dh2 * g2
        dz2 = dh2 * (h1 - zeta * c2)
        dzeta = float(np.sum(dh2 * (1.0 - z2) * c2))
        dnu = float(np.sum(dh2 * c2))
        dh1 = dh2 * z2
        da2_z = dz2 * z2 * (1.0 - z2)
        da2_c = dc2 * (1.0 - c2 * c2)
        da2 = da2_z + da2_c  # gate and candidate share a = W x + U h
        dh1 = dh1 + da2 @ p["U"]
        # step 1: h1 = (zeta (1 - z1) + nu) c1  (h0 = 0)
        dc1 = dh1 * g1
        dz1 = dh1 * (-zeta * c1)
        dzeta += float(np.sum(dh1 * (1.0 - z1) * c1))
        dnu += float(np.sum(dh1 * c1))
        da1_z = dz1 * z1 * (1.0 - z1)
        da1_c = dc1 * (1.0 - c1 * c1)
        da1 = da1_z + da1_c
        gr["W"] = da2.T @ x2 + da1.T @ x1
        gr["U"] = da2.T @ h1
        gr["bz"] = (da2_z + da1_z).sum(axis=0)
        gr["bh"] = (da2_c + da1_c).sum(axis=0)
        gr["zeta"] = np.array([dzeta * zeta * (1.0 - zeta)])
        gr["nu"] = np.array([dnu * nu * (1.0 - nu)])
        return gr

    def refresh(self) -> None:
        """Drop the cached inference constants; call after changing :attr:`params` or
        :attr:`theta` in place (``update`` and ``load_state_dict`` do it themselves)."""
        self._infer = None

    def _infer_consts(self) -> tuple[F64, F64, F64, F64, F64, float, float]:
        """What one query's forward pass needs, stacked so that it is a few numpy calls.

        ``A = [W/2; W; theta; Sc]`` (stored transposed) maps the three inputs at once
        (``W/2``: the gate's ``sigmoid(a) = (1 + tanh(a/2)) / 2`` shares one ``tanh`` with
        the candidate),
        ``U2 = [U/2; U]``, ``bb = [bz/2; bh]``, ``VV = [V; Vc]``, and the gate mix
        ``zeta (1 - z) + nu = ga - gb tanh(.)``.
        """
        c = self._infer
        if c is None:
            p = self.params
            zeta = float(_sigmoid(p["zeta"])[0])
            nu = float(_sigmoid(p["nu"])[0])
            w, u = p["W"], p["U"]
            c = (
                np.concatenate([0.5 * w, w, self.theta, p["Sc"]]).T,
                np.concatenate([0.5 * u, u]),
                np.concatenate([0.5 * p["bz"], p["bh"]]),
                np.concatenate([p["V"], p["Vc"]]),
                p["cc"].copy(),
                0.5 * zeta + nu,
                0.5 * zeta,
            )
            self._infer = c
        return c

    def _scores(self, feats: RouteFeatures) -> tuple[F64, F64]:
        """Expected reward per model and context logits (caller holds the lock).

        The same function as ``0.5 + theta . xs + _forward(...)`` for one query, in about
        fifteen numpy calls on the stacked constants of :meth:`_infer_consts`.
        """
        a, u2, bb, vv, cc, ga, gb = self._infer_consts()
        h = self.hidden
        k = len(self.models)
        r = feats.stacked() @ a  # (3, 2h + K + C)
        t1 = np.tanh(r[0, : 2 * h] + bb)  # [tanh((a1 + bz) / 2), tanh(a1 + bh)]
        h1 = (ga - gb * t1[:h]) * t1[h:]
        t2 = np.tanh(r[1, : 2 * h] + u2 @ h1 + bb)
        tz = t2[:h]
        h2 = (ga - gb * tz) * t2[h:] + (0.5 + 0.5 * tz) * h1
        out = vv @ h2
        lin = r[2, 2 * h :]
        score: F64 = 0.5 + lin[:k] + out[:k]
        lc: F64 = out[k:] + lin[k:] + cc
        return score, lc

    # ================================================================= routing
    def probabilities(self, feats: RouteFeatures) -> F64:
        """Calibrated probability of each model being the best for these features."""
        self._check(feats)
        with self._lock:
            score, _ = self._scores(feats)
            return _softmax(score / self.temperature)

    def expected_rewards(self, feats: RouteFeatures) -> F64:
        """The router's estimate of each model's reward (0..1 scale) for these features."""
        self._check(feats)
        with self._lock:
            return self._scores(feats)[0]

    def _check(self, feats: RouteFeatures) -> None:
        if feats.xs.shape[0] != self.dim:
            raise InvalidInputError(
                f"router features have dimension {feats.xs.shape[0]}, expected {self.dim}"
            )

    def route(
        self, feats: RouteFeatures, *, model: str | None = None, explore: bool = True
    ) -> RouterDecision:
        """Choose a model and context size. ``model`` forces the model (context still learned).

        ``explore=False`` routes greedily (highest expected reward, fallback below the
        confidence threshold) with no optimism bonus: what the router believes now.
        """
        self._check(feats)
        with self._lock:
            score_a, lc = self._scores(feats)
            temperature = self.temperature
            optimistic = explore and model is None
            rand = optimistic and self.exploration > 0
            rand = rand and float(self._rng.random()) < self.exploration
            pick = int(self._rng.integers(len(self.models))) if rand else -1
            bonus = self._uncertainty(feats.xs).tolist() if optimistic and self.ucb > 0 else None
        # A handful of models: plain Python on floats beats numpy's per-call overhead.
        score: list[float] = score_a.tolist()
        k = len(score)
        top = max(score)
        expd = [math.exp((v - top) / temperature) for v in score]
        total = math.fsum(expd)
        probs = [v / total for v in expd]
        best = max(range(k), key=score.__getitem__)
        fb = self.models.index(self.fallback_model)
        fallback = forced = explored = False
        if model is not None:
            if model not in self.models:
                raise InvalidInputError(
                    f"unknown model {model!r}; configured models: {', '.join(self.models)}"
                )
            idx, forced = self.models.index(model), True
        elif rand:
            idx, explored = pick, True
        elif not optimistic:
            idx = best
            if probs[best] < self.confidence_threshold and probs[fb] >= 1.0 / k:
                idx, fallback = fb, True
        else:
            # Optimism under uncertainty; where nothing is known yet the fallback goes first.
            c = self.ucb
            ucb = (
                score.copy()
                if bonus is None
                else [v + c * b for v, b in zip(score, bonus, strict=True)]
            )
            ucb[fb] += self.fallback_bonus
            idx = max(range(k), key=ucb.__getitem__)
            explored = idx != best
            fallback = bool(idx == fb and probs[best] < self.confidence_threshold)
        ctx = int(lc.argmax())
        info = RoutingInfo(
            model=self.models[idx],
            context_size=self.context_sizes[ctx],
            confidence=probs[idx],
            fallback=fallback,
            probabilities=dict(zip(self.models, probs, strict=True)),
            forced=forced,
            explored=explored,
        )
        return RouterDecision(info, idx, ctx)

    def _bonus_input(self, xs: F64) -> NDArray[np.float32]:
        x32 = xs.astype(np.float32)
        if self._bproj is None:
            return x32
        e = self.embed_dim
        return np.concatenate([self._bproj @ x32[:e], x32[e:]])

    def _uncertainty(self, xs: F64) -> F64:
        z = self._bonus_input(xs)
        v = self._binv @ z  # (k, bd)
        out: F64 = np.sqrt(np.maximum(v @ z, 0.0)).astype(np.float64)
        return out

    # ================================================================ learning
    def update(
        self, feats: RouteFeatures, model: str | int, reward: float, *, context: int | None = None
    ) -> float:
        """Learn from the reward (0..1) of routing ``feats`` to ``model``; returns the
        squared error of the reward estimate before the update.

        ``context`` is the index of the context size used (None: no context signal).
        """
        m = self.models.index(model) if isinstance(model, str) else int(model)
        if not 0 <= m < len(self.models):
            raise InvalidInputError(f"model index {m} out of range")
        if not (isinstance(reward, int | float) and math.isfinite(reward) and 0 <= reward <= 1):
            raise InvalidInputError(f"reward must be a number in 0..1, got {reward!r}")
        self._check(feats)
        ci = -1 if context is None else int(context)
        if ci >= len(self.context_sizes):
            raise InvalidInputError(f"context index {ci} out of range")
        r = float(reward)
        with self._lock:
            before = float(self._scores(feats)[0][m])
            self._observe(feats.xs, m, r)
            self._buffer.append((feats, m, ci, r))
            self._step([(feats, m, ci, r)])
            if self.replay and len(self._buffer) > 1:
                n = min(self.replay, len(self._buffer) - 1)
                picks = self._rng.choice(len(self._buffer) - 1, size=n, replace=False)
                self._step([self._buffer[int(i)] for i in picks])
            self.updates += 1
            if r > 0.5:
                self.positive_updates += 1
            elif r < 0.5:
                self.negative_updates += 1
            if self.calibrate_every and self.updates % self.calibrate_every == 0:
                self._calibrate()
            if self.consolidate_every and self.updates % self.consolidate_every == 0:
                self._consolidate()
            return (before - r) ** 2

    def _observe(self, xs: F64, m: int, reward: float) -> None:
        """Exact ridge update for model ``m`` (Sherman-Morrison)."""
        a = self._ainv[m]
        v = a @ xs
        a -= np.outer(v, v) / (1.0 + float(xs @ v))
        z = self._bonus_input(xs)
        bi = self._binv[m]
        w = bi @ z
        bi -= np.outer(w, w) / (1.0 + float(z @ w))
        self._b[m] += xs * (reward - 0.5)
        self.theta[m] = a @ self._b[m]
        self._tries[m] += 1
        self._infer = None

    def _batch(
        self, items: Sequence[_Item]
    ) -> tuple[F64, F64, F64, NDArray[np.intp], NDArray[np.intp], F64]:
        x1 = np.stack([it[0].x1 for it in items])
        x2 = np.stack([it[0].x2 for it in items])
        xs = np.stack([it[0].xs for it in items])
        mi = np.array([it[1] for it in items], dtype=np.intp)
        ci = np.array([it[2] for it in items], dtype=np.intp)
        r = np.array([it[3] for it in items], dtype=np.float64)
        return x1, x2, xs, mi, ci, r

    def _grads(self, items: Sequence[_Item]) -> tuple[dict[str, F64], float]:
        """Gradients of: 0.5 (f_m - residual)^2 for the chosen model + BCE of the context."""
        x1, x2, xs, mi, ci, r = self._batch(items)
        f, lc, cache = self._forward(x1, x2, xs)
        rows = np.arange(len(items))
        residual = r - 0.5 - np.einsum("bd,bd->b", xs, self.theta[mi])
        err = f[rows, mi] - residual
        gf = np.zeros_like(f)
        gf[rows, mi] = err
        loss = 0.5 * err * err
        glc = np.zeros_like(lc)
        has = ci >= 0
        if has.any():
            rh = rows[has]
            s = _sigmoid(lc[rh, ci[has]])
            glc[rh, ci[has]] = s - r[has]
        b = float(len(items))
        return self._backward((x1, x2, xs), gf / b, glc / b, cache), float(loss.mean())

    def _step(self, items: Sequence[_Item]) -> float:
        grads, loss = self._grads(items)
        lr = self.lr
        cap = 0.5 / lr  # keeps the EWC pull stable under SGD
        for name in _PARAMS:
            g = grads[name]
            if self.consolidations:
                imp = np.minimum(self.ewc_lambda * self._fisher[name], cap)
                g = g + imp * (self.params[name] - self._anchor[name])
            self.params[name] -= lr * g
        self._infer = None
        return loss

    def _calibrate(self) -> None:
        """Refit the temperature on positively rated routes in the buffer (min NLL)."""
        pos = [it for it in self._buffer if it[3] > 0.5]
        if len(pos) < 10:
            return
        x1, x2, xs, mi, _, _ = self._batch(pos)
        f, _, _ = self._forward(x1, x2, xs)
        score = 0.5 + xs @ self.theta.T + f
        rows = np.arange(len(pos))
        best_t, best_nll = self.temperature, math.inf
        for t in _TEMPS:
            z = score / t
            z = z - z.max(axis=1, keepdims=True)
            logp = z[rows, mi] - np.log(np.exp(z).sum(axis=1))
            nll = float(-logp.mean())
            if nll < best_nll:
                best_t, best_nll = float(t), nll
        self.temperature = best_t

    def _consolidate(self) -> None:
        """EWC++: fold the replay buffer's diagonal Fisher into the importance; re-anchor."""
        items = list(self._buffer)
        if not items:
            return
        fisher = {n: np.zeros_like(v) for n, v in self.params.items()}
        for it in items:
            g, _ = self._grads([it])
            for n in fisher:
                fisher[n] += g[n] * g[n]
        for n, f in fisher.items():
            self._fisher[n] = self.ewc_decay * self._fisher[n] + f / len(items)
            self._anchor[n] = self.params[n].copy()
        self.consolidations += 1

    def consolidate(self) -> None:
        """Consolidate now (EWC anchor + importance from the current replay buffer)."""
        with self._lock:
            self._consolidate()

    def calibrate(self) -> float:
        """Refit the confidence temperature now; returns it."""
        with self._lock:
            self._calibrate()
            return self.temperature

    # ================================================================== status
    def stats(self) -> dict[str, Any]:
        """JSON-serialisable counters and settings."""
        with self._lock:
            return {
                "kind": "ridge-linucb+fastgrnn",
                "models": list(self.models),
                "context_sizes": list(self.context_sizes),
                "hidden": self.hidden,
                "input_dim": self.dim,
                "updates": self.updates,
                "positive_updates": self.positive_updates,
                "negative_updates": self.negative_updates,
                "consolidations": self.consolidations,
                "temperature": self.temperature,
                "confidence_threshold": self.confidence_threshold,
                "fallback_model": self.fallback_model,
                "ucb": self.ucb,
                "zeta": float(_sigmoid(self.params["zeta"])[0]),
                "nu": float(_sigmoid(self.params["nu"])[0]),
                "buffer": len(self._buffer),
                "tries": {m: int(t) for m, t in zip(self.models, self._tries, strict=True)},
            }

    def state_dict(self) -> dict[str, Any]:
        """Parameters, ridge statistics, EWC state and temperature (numpy arrays)."""
        with self._lock:
            return {
                "params": {n: v.copy() for n, v in self.params.items()},
                "anchor": {n: v.copy() for n, v in self._anchor.items()},
                "fisher": {n: v.copy() for n, v in self._fisher.items()},
                "ainv": self._ainv.copy(),
                "binv": self._binv.copy(),
                "b": self._b.copy(),
                "tries": self._tries.copy(),
                "temperature": self.temperature,
                "updates": self.updates,
                "consolidations": self.consolidations,
            }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (shapes must match)."""
        with self._lock:
            targets = {"params": self.params, "anchor": self._anchor, "fisher": self._fisher}
            for key, dst in targets.items():
                for n, v in dst.items():
                    arr = np.asarray(state[key][n], dtype=np.float64)
                    if arr.shape != v.shape:
                        raise InvalidInputError(f"router state {key}.{n} has the wrong shape")
                    v[...] = arr
            ainv = np.asarray(state["ainv"], dtype=np.float64)
            b = np.asarray(state["b"], dtype=np.float64)
            if ainv.shape != self._ainv.shape or b.shape != self._b.shape:
                raise InvalidInputError("router state has the wrong ridge shapes")
            self._ainv[...] = ainv
            self._binv[...] = np.asarray(state["binv"], dtype=np.float32)
            self._b[...] = b
            self.theta = np.einsum("kij,kj->ki", self._ainv, self._b)
            self._infer = None
            self._tries[...] = np.asarray(state["tries"], dtype=np.int64)
            self.temperature = float(state["temperature"])
            self.updates = int(state["updates"])
            self.consolidations = int(state["consolidations"])
