"""Policy-gradient learners on a tabular softmax policy: actor-critic and PPO.

Both keep action preferences (logits) ``theta[state, action]`` and a state-value baseline
``V[state]``; the policy is ``pi(a|s) = softmax(theta[s])`` over the candidate actions, and
``act`` samples from it (``best_action`` takes its mode). ``values`` returns the logits.

The gradients run over every action the learner knows (the table's columns), so use them
where every state offers the same action set, or accept that actions never offered in a
state get their (irrelevant) preferences pushed down.

Contextual-bandit shortcut: ``update(state, action, reward)`` is a one-step episode, the
baseline is ``V[state]``, so a reward above the baseline raises the chosen action's
probability (the gradient bandit algorithm).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike

from ruvector_edge.errors import ConfigError, InvalidInputError
from ruvector_edge.learning.algorithms.base import (
    F64,
    IntArray,
    TabularLearner,
    check_count,
    check_positive,
    check_unit,
    check_unit_open,
    hashable_key,
)
from ruvector_edge.learning.algorithms.policies import SeedLike, SoftmaxPolicy
from ruvector_edge.learning.trajectory import Action, State, discounted_cumsum

__all__ = ["PPO", "ActorCritic", "ppo_clip_objective", "softmax_rows"]


def softmax_rows(logits: ArrayLike) -> F64:
    """Row-wise numerically stable softmax of a 1-D or 2-D array."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def ppo_clip_objective(
    ratio: ArrayLike, advantages: ArrayLike, clip_eps: float = 0.2
) -> tuple[F64, F64]:
    """PPO's clipped surrogate per sample and its derivative with respect to the ratio.

    ``L = min(r * A, clip(r, 1 - eps, 1 + eps) * A)`` (Schulman et al. 2017). The
    derivative is ``A`` where the unclipped term is the minimum and 0 where the clipped one
    is, so a sample gives no push beyond ``1 + eps`` (A > 0) or below ``1 - eps`` (A < 0).
    """
    r = np.asarray(ratio, dtype=np.float64)
    adv = np.asarray(advantages, dtype=np.float64)
    if r.shape != adv.shape:
        raise InvalidInputError(f"ratio {r.shape} and advantages {adv.shape} differ in shape")
    if not 0.0 < clip_eps < 1.0:
        raise InvalidInputError(f"clip_eps must lie in (0, 1), got {clip_eps}")
    unclipped = r * adv
    clipped = np.clip(r, 1.0 - clip_eps, 1.0 + clip_eps) * adv
    objective = np.minimum(unclipped, clipped)
    grad = np.where(unclipped <= clipped, adv, 0.0)
    return objective, grad


class _SoftmaxActor(TabularLearner):
    """Shared plumbing: logits table ``theta``, baseline vector ``V``, softmax acting."""

    def __init__(
        self,
        *,
        gamma: float,
        n_states: int | None,
        n_actions: int | None,
        seed: SeedLike,
    ) -> None:
        super().__init__(
            gamma=gamma,
            seed=seed,
            policy=None,
            n_states=n_states,
            n_actions=n_actions,
            initial_value=0.0,
            table_names=("theta",),
        )
        self._policy = SoftmaxPolicy(1.0, rng=self.rng)
        self._v = np.zeros(self._counts.shape[0], dtype=np.float64)

    def _on_grow(self, rows: int, cols: int) -> None:
        v = np.zeros(rows, dtype=np.float64)
        v[: self._v.shape[0]] = self._v
        self._v = v

    def values(self, state: State, actions: Sequence[Action]) -> F64:
        """The policy's logits ``theta[state, a]`` (higher = more likely)."""
        return self._read(self._tables["theta"], 0.0, state, actions)

    def probabilities(self, state: State, actions: Sequence[Action]) -> F64:
        """``pi(a | state)`` over the candidate actions."""
        return softmax_rows(self.values(state, actions))

    def state_value(self, state: State) -> float:
        """The baseline ``V[state]`` (0 for an unseen state)."""
        row = self._states.get(hashable_key(state, "state"))
        return 0.0 if row is None else float(self._v[row])

    def table(self, name: str = "theta") -> F64:
        """``"theta"`` (logits), ``"counts"``, or ``"v"`` (baseline, one column)."""
        if name == "v":
            return self._v[: len(self._states)].copy()[:, None]
        return super().table(name)


class ActorCritic(_SoftmaxActor):
    """One-step actor-critic: a TD(0) critic ``V`` and a softmax actor.

    ``delta = r + gamma * V[s'] - V[s]``; ``V[s] += alpha_critic * delta``;
    ``theta[s] += alpha_actor * delta * (onehot(a) - pi(.|s))`` (the policy gradient of
    ``log pi(a|s)``, vectorized over actions). The ``gamma**t`` factor of the textbook
    episodic version is dropped, as is usual in practice.
    """

    name: ClassVar[str] = "actor-critic"

    def __init__(
        self,
        *,
        alpha_actor: float = 0.1,
        alpha_critic: float = 0.1,
        gamma: float = 0.99,
        n_states: int | None = None,
        n_actions: int | None = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(gamma=gamma, n_states=n_states, n_actions=n_actions, seed=seed)
        self.alpha_actor = check_positive("alpha_actor", alpha_actor)
        self.alpha_critic = check_unit_open("alpha_critic", alpha_critic)

    def update(
        self,
        state: State,
        action: Action,
        reward: float,
        next_state: State | None = None,
        done: bool = False,
        *,
        next_action: Action | None = None,
        next_actions: Sequence[Action] | None = None,
    ) -> float:
        """One actor-critic step; returns the TD error. No ``next_state``: bandit step."""
        s, a, r, _ = self._begin_update(state, action, reward, next_actions)
        nr = self._next_row(next_state, done)
        v = self._v  # after any growth
        target = r if nr is None else r + self.gamma * float(v[nr])
        delta = target - float(v[s])
        v[s] += self.alpha_critic * delta
        theta = self._tables["theta"]
        n_a = len(self._actions)
        grad = -softmax_rows(theta[s, :n_a])
        grad[a] += 1.0
        theta[s, :n_a] += (self.alpha_actor * delta) * grad
        self._updates += 1
        self._record_error(delta)
        if nr is None:
            self.end_episode()
        return delta


class PPO(_SoftmaxActor):
    """Proximal policy optimization with the clipped surrogate, on a tabular softmax policy.

    Steps are buffered; once ``episodes_per_batch`` episodes (or ``max_batch_steps`` steps)
    are in, advantages come from GAE(λ) over the baseline ``V`` (computed per episode with
    :func:`~ruvector_edge.learning.trajectory.discounted_cumsum`), optionally normalized;
    then ``epochs`` passes of shuffled minibatches ascend
    ``mean(min(r A, clip(r, 1-eps, 1+eps) A)) + entropy_coef * H(pi)`` with
    ``r = pi(a|s) / pi_old(a|s)``, all vectorized over the minibatch. ``V`` then moves by
    ``vf_alpha`` toward each state's mean GAE return. Truncated episodes
    (``end_episode()`` without ``done``) bootstrap from ``V[next_state]``.
    """

    name: ClassVar[str] = "ppo"
    episodic: ClassVar[bool] = True

    def __init__(
        self,
        *,
        lr: float = 2.0,
        clip_eps: float = 0.2,
        epochs: int = 4,
        minibatch_size: int = 64,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        vf_alpha: float = 0.5,
        entropy_coef: float = 0.0,
        episodes_per_batch: int = 8,
        max_batch_steps: int = 2048,
        normalize_advantages: bool = True,
        n_states: int | None = None,
        n_actions: int | None = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(gamma=gamma, n_states=n_states, n_actions=n_actions, seed=seed)
        self.lr = check_positive("lr", lr)
        self.clip_eps = check_unit_open("clip_eps", clip_eps)
        if self.clip_eps >= 1.0:
            raise ConfigError(f"clip_eps must lie in (0, 1), got {clip_eps}")
        self.epochs = check_count("epochs", epochs)
        self.minibatch_size = check_count("minibatch_size", minibatch_size)
        self.gae_lambda = check_unit("gae_lambda", gae_lambda)
        self.vf_alpha = check_unit_open("vf_alpha", vf_alpha)
        self.entropy_coef = check_unit("entropy_coef", entropy_coef)
        self.episodes_per_batch = check_count("episodes_per_batch", episodes_per_batch)
        self.max_batch_steps = check_count("max_batch_steps", max_batch_steps)
        self.normalize_advantages = bool(normalize_advantages)
        self._buf_rows: list[int] = []
        self._buf_cols: list[int] = []
        self._buf_rewards: list[float] = []
        self._buf_next: list[int] = []  # -1: terminal (no bootstrap)
        self._buf_ends: list[bool] = []  # last step of an episode segment
        self._buf_episodes = 0
        self._last = {"clip_fraction": 0.0, "approx_kl": 0.0, "value_loss": 0.0, "batches": 0.0}
        self._last_loss = 0.0

    def update(
        self,
        state: State,
        action: Action,
        reward: float,
        next_state: State | None = None,
        done: bool = False,
        *,
        next_action: Action | None = None,
        next_actions: Sequence[Action] | None = None,
    ) -> float:
        """Buffer the step; when a batch is complete run PPO on it and return the surrogate
        loss (0.0 while only buffering)."""
        s, a, r, _ = self._begin_update(state, action, reward, None)
        nr = self._next_row(next_state, done)
        self._buf_rows.append(s)
        self._buf_cols.append(a)
        self._buf_rewards.append(r)
        self._buf_next.append(-1 if nr is None else nr)
        self._buf_ends.append(nr is None)
        learned = False
        if nr is None:
            learned = self._close_episode()
        elif len(self._buf_rows) >= self.max_batch_steps:
            learned = self._learn()
        return self._last_loss if learned else 0.0

    def end_episode(self) -> None:
        """Close the episode (a truncated one bootstraps from ``V``); learn if a batch is full."""
        if self._buf_rows and not self._buf_ends[-1]:
            self._buf_ends[-1] = True
            self._close_episode()
        else:
            super().end_episode()

    def _close_episode(self) -> bool:
        self._buf_episodes += 1
        super().end_episode()
        if (
            self._buf_episodes >= self.episodes_per_batch
            or len(self._buf_rows) >= self.max_batch_steps
        ):
            return self._learn()
        return False

    def flush(self) -> float:
        """Run PPO on whatever is buffered now (e.g. at the end of training)."""
        if self._buf_rows:
            self._buf_ends[-1] = True
            self._learn()
        return self._last_loss

    def _advantages(
        self, rows: IntArray, rewards: F64, nxt: IntArray, ends: np.ndarray
    ) -> tuple[F64, F64]:
        v_old = self._v[rows]
        v_next = np.where(nxt >= 0, self._v[np.maximum(nxt, 0)], 0.0)
        deltas = rewards + self.gamma * v_next - v_old
        cuts = np.flatnonzero(ends[:-1]) + 1
        factor = self.gamma * self.gae_lambda
        adv = np.concatenate([discounted_cumsum(seg, factor) for seg in np.split(deltas, cuts)])
        return adv, adv + v_old

    def _learn(self) -> bool:
        rows = np.asarray(self._buf_rows, dtype=np.intp)
        cols = np.asarray(self._buf_cols, dtype=np.intp)
        rewards = np.asarray(self._buf_rewards, dtype=np.float64)
        nxt = np.asarray(self._buf_next, dtype=np.intp)
        ends = np.asarray(self._buf_ends, dtype=np.bool_)
        ends[-1] = True
        self._buf_rows, self._buf_cols, self._buf_rewards = [], [], []
        self._buf_next, self._buf_ends = [], []
        self._buf_episodes = 0

        adv, returns = self._advantages(rows, rewards, nxt, ends)
        if self.normalize_advantages and adv.shape[0] > 1:
            std = float(adv.std())
            adv = (adv - adv.mean()) / (std + 1e-8) if std > 1e-12 else adv - adv.mean()
        n, n_a = rows.shape[0], len(self._actions)
        theta = self._tables["theta"]
        p_old = softmax_rows(theta[rows, :n_a])[np.arange(n), cols]
        action_grid = np.arange(n_a, dtype=np.intp)[None, :]
        loss_sum, clipped_sum, kl_sum, count = 0.0, 0.0, 0.0, 0
        for _ in range(self.epochs):
            order = self.rng.permutation(n)
            for start in range(0, n, self.minibatch_size):
                mb = order[start : start + self.minibatch_size]
                r_mb, c_mb, a_mb = rows[mb], cols[mb], adv[mb]
                p = softmax_rows(theta[r_mb, :n_a])
                p_a = p[np.arange(mb.shape[0]), c_mb]
                ratio = p_a / p_old[mb]
                obj, dobj = ppo_clip_objective(ratio, a_mb, self.clip_eps)
                # d ratio / d theta[s] = ratio * (onehot(a) - p)
                grad = -p * (dobj * ratio)[:, None]
                grad[np.arange(mb.shape[0]), c_mb] += dobj * ratio
                if self.entropy_coef > 0.0:
                    logp = np.log(np.maximum(p, 1e-300))
                    ent = -(p * logp).sum(axis=1, keepdims=True)
                    grad -= self.entropy_coef * p * (logp + ent)
                np.add.at(theta, (r_mb[:, None], action_grid), (self.lr / mb.shape[0]) * grad)
                loss_sum += float(-obj.sum())
                clipped_sum += float((dobj == 0.0).sum())
                kl_sum += float(np.log(p_old[mb] / p_a).sum())
                count += mb.shape[0]
        # Baseline: each visited state moves toward its mean return in this batch.
        visits = np.bincount(rows, minlength=self._v.shape[0]).astype(np.float64)
        sums = np.bincount(rows, weights=returns, minlength=self._v.shape[0])
        seen = visits > 0
        value_err = sums[seen] / visits[seen] - self._v[seen]
        self._v[seen] += self.vf_alpha * value_err
        self._last_loss = loss_sum / max(count, 1)
        self._last = {
            "clip_fraction": clipped_sum / max(count, 1),
            "approx_kl": kl_sum / max(count, 1),
            "value_loss": float(np.mean(value_err**2)) if value_err.size else 0.0,
            "batches": self._last["batches"] + 1.0,
        }
        self._updates += 1
        self._record_error(self._last_loss)
        return True

    def _extra_stats(self) -> dict[str, float]:
        return {**self._last, "buffered_steps": float(len(self._buf_rows))}
