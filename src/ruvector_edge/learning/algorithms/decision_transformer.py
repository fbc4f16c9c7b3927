"""Decision transformer (Chen et al. 2021), tiny and in numpy.

Offline RL as sequence modelling: a trajectory becomes tokens
``(R_1, s_1, a_1, R_2, s_2, a_2, ...)`` where ``R_t`` is the return-to-go. A causal
transformer block reads them and predicts ``a_t`` from the output at the ``s_t`` token, so
the action depends on the state, the recent history and the return still wanted. Trained
with cross-entropy on logged trajectories; at run time it is conditioned on a *target*
return, which drops by each reward received.

:class:`DecisionTransformerModel` is the network: return/state/action embeddings plus a
learned position embedding, one single-head causal self-attention layer and one ReLU MLP,
both residual, and a linear action head. Forward and backward passes are hand-written and
batched with numpy (float64); a finite-difference test checks the gradients.
:class:`DecisionTransformer` wraps it as a :class:`~ruvector_edge.learning.algorithms.Learner`
with a trajectory dataset, Adam, and the acting context.

Contextual-bandit shortcut: ``update(state, action, reward)`` stores a one-step episode, and
acting conditioned on a high target return picks the actions that earned high rewards.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import ClassVar, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ruvector_edge.errors import ConfigError, InvalidInputError
from ruvector_edge.learning.algorithms._nn import Adam, clip_global_norm
from ruvector_edge.learning.algorithms.base import (
    F64,
    KeyIndex,
    Learner,
    StateEncoder,
    check_actions,
    check_count,
    check_positive,
    check_reward,
    hashable_key,
)
from ruvector_edge.learning.algorithms.policies import GreedyPolicy, Policy, SeedLike
from ruvector_edge.learning.trajectory import Action, State, Trajectory, discounted_cumsum

__all__ = ["DecisionTransformer", "DecisionTransformerModel"]

IntArray: TypeAlias = NDArray[np.intp]
Cache: TypeAlias = dict[str, F64]


class DecisionTransformerModel:
    """Causal single-head transformer block over ``(return, state, action)`` tokens.

    Shapes: ``rtg (B, L)``, ``states (B, L, state_dim)``, ``actions (B, L)`` (ints) for
    ``L <= context`` steps, i.e. ``3L`` tokens. ``forward`` returns action logits
    ``(B, L, n_actions)`` read at the state tokens; a state token never sees its own or
    any later action token, so the action of the last step may be a dummy at run time.
    """

    def __init__(
        self,
        *,
        state_dim: int,
        n_actions: int,
        context: int,
        d_model: int = 32,
        d_hidden: int = 64,
        return_scale: float = 1.0,
        rng: np.random.Generator,
    ) -> None:
        self.state_dim, self.n_actions, self.context = state_dim, n_actions, context
        self.d_model, self.d_hidden = d_model, d_hidden
        self.return_scale = return_scale
        d, h = d_model, d_hidden

        def mat(rows: int, cols: int, scale: float) -> F64:
            return rng.standard_normal((rows, cols)) * scale

        self.params: dict[str, F64] = {
            "w_r": rng.standard_normal(d) * 0.5,
            "b_r": np.zeros(d),
            "W_s": mat(state_dim, d, 0.5),
            "b_s": np.zeros(d),
            "E_a": mat(n_actions, d, 0.5),
            "P": mat(3 * context, d, 0.1),
            "Wq": mat(d, d, 1.0 / math.sqrt(d)),
            "Wk": mat(d, d, 1.0 / math.sqrt(d)),
            "Wv": mat(d, d, 1.0 / math.sqrt(d)),
            "Wo": mat(d, d, 1.0 / math.sqrt(d)),
            "W1": mat(d, h, math.sqrt(2.0 / d)),
            "b1": np.zeros(h),
            "W2": mat(h, d, 1.0 / math.sqrt(h)),
            "b2": np.zeros(d),
            "Wout": mat(d, n_actions, 0.1 / math.sqrt(d)),
            "bout": np.zeros(n_actions),
        }

    def _check(self, rtg: F64, states: F64, actions: IntArray) -> tuple[int, int]:
        if rtg.ndim != 2:
            raise InvalidInputError(f"rtg must be (batch, steps), got shape {rtg.shape}")
        b, steps = rtg.shape
        if not 1 <= steps <= self.context:
            raise InvalidInputError(f"sequence length {steps} outside [1, {self.context}]")
        if states.shape != (b, steps, self.state_dim) or actions.shape != (b, steps):
            raise InvalidInputError(
                f"states {states.shape} / actions {actions.shape} do not match rtg {rtg.shape}"
            )
        return b, steps

    def forward(self, rtg: F64, states: F64, actions: IntArray) -> tuple[F64, Cache]:
        """Action logits at every state token, plus the cache ``backward`` needs."""
        b, steps = self._check(rtg, states, actions)
        p = self.params
        d, t = self.d_model, 3 * steps
        r_in = rtg * (1.0 / self.return_scale)
        x = np.empty((b, t, d))
        x[:, 0::3] = r_in[..., None] * p["w_r"] + p["b_r"]
        x[:, 1::3] = states @ p["W_s"] + p["b_s"]
        x[:, 2::3] = p["E_a"][actions]
        x += p["P"][:t]
        q, k, v = x @ p["Wq"], x @ p["Wk"], x @ p["Wv"]
        scale = 1.0 / math.sqrt(d)
        causal = np.tril(np.ones((t, t), dtype=np.bool_))
        s = np.where(causal, (q @ k.transpose(0, 2, 1)) * scale, -np.inf)
        s -= s.max(axis=-1, keepdims=True)
        att = np.exp(s)
        att /= att.sum(axis=-1, keepdims=True)
        c = att @ v
        h1 = x + c @ p["Wo"]
        z = h1 @ p["W1"] + p["b1"]
        relu = np.maximum(z, 0.0)
        h2 = h1 + relu @ p["W2"] + p["b2"]
        hs = h2[:, 1::3]
        logits = hs @ p["Wout"] + p["bout"]
        cache: Cache = {
            "r_in": r_in,
            "states": states,
            "actions": actions.astype(np.float64),
            "x": x,
            "q": q,
            "k": k,
            "v": v,
            "att": att,
            "c": c,
            "h1": h1,
            "z": z,
            "relu": relu,
            "hs": hs,
        }
        return logits, cache

    def backward(self, cache: Cache, dlogits: F64) -> dict[str, F64]:
        """Gradients of every parameter given ``dLoss/dlogits`` (shape of the logits)."""
        p = self.params
        d, h = self.d_model, self.d_hidden
        x = cache["x"]
        b, t, _ = x.shape
        grads: dict[str, F64] = {}
        hs = cache["hs"]
        grads["Wout"] = hs.reshape(-1, d).T @ dlogits.reshape(-1, self.n_actions)
        grads["bout"] = dlogits.sum(axis=(0, 1))
        dh2 = np.zeros((b, t, d))
        dh2[:, 1::3] = dlogits @ p["Wout"].T
        # MLP (residual): h2 = h1 + relu(h1 W1 + b1) W2 + b2
        relu, z, h1 = cache["relu"], cache["z"], cache["h1"]
        grads["W2"] = relu.reshape(-1, h).T @ dh2.reshape(-1, d)
        grads["b2"] = dh2.sum(axis=(0, 1))
        dz = (dh2 @ p["W2"].T) * (z > 0.0)
        grads["W1"] = h1.reshape(-1, d).T @ dz.reshape(-1, h)
        grads["b1"] = dz.sum(axis=(0, 1))
        dh1 = dh2 + dz @ p["W1"].T
        # Attention (residual): h1 = x + (softmax(q k^T / sqrt d) v) Wo
        att, c, q, k, v = cache["att"], cache["c"], cache["q"], cache["k"], cache["v"]
        grads["Wo"] = c.reshape(-1, d).T @ dh1.reshape(-1, d)
        dc = dh1 @ p["Wo"].T
        datt = dc @ v.transpose(0, 2, 1)
        dv = att.transpose(0, 2, 1) @ dc
        ds = att * (datt - (datt * att).sum(axis=-1, keepdims=True)) * (1.0 / math.sqrt(d))
        dq = ds @ k
        dk = ds.transpose(0, 2, 1) @ q
        x2 = x.reshape(-1, d)
        grads["Wq"] = x2.T @ dq.reshape(-1, d)
        grads["Wk"] = x2.T @ dk.reshape(-1, d)
        grads["Wv"] = x2.T @ dv.reshape(-1, d)
        dx = dh1 + dq @ p["Wq"].T + dk @ p["Wk"].T + dv @ p["Wv"].T
        # Embeddings
        dp = np.zeros_like(p["P"])
        dp[:t] = dx.sum(axis=0)
        grads["P"] = dp
        dxr = dx[:, 0::3]
        grads["w_r"] = np.einsum("bl,bld->d", cache["r_in"], dxr)
        grads["b_r"] = dxr.sum(axis=(0, 1))
        dxs = dx[:, 1::3]
        grads["W_s"] = cache["states"].reshape(-1, self.state_dim).T @ dxs.reshape(-1, d)
        grads["b_s"] = dxs.sum(axis=(0, 1))
        de = np.zeros_like(p["E_a"])
        np.add.at(de, cache["actions"].astype(np.intp).reshape(-1), dx[:, 2::3].reshape(-1, d))
        grads["E_a"] = de
        return grads

    def loss_and_grads(
        self, rtg: F64, states: F64, actions: IntArray, mask: NDArray[np.bool_]
    ) -> tuple[float, dict[str, F64]]:
        """Mean cross-entropy of predicting ``actions`` where ``mask`` is set, and gradients."""
        logits, cache = self.forward(rtg, states, actions)
        n = max(int(mask.sum()), 1)
        z = logits - logits.max(axis=-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(logp, actions[..., None], axis=-1)[..., 0]
        loss = float(-(picked * mask).sum() / n)
        dlogits = np.exp(logp)
        np.put_along_axis(
            dlogits,
            actions[..., None],
            np.take_along_axis(dlogits, actions[..., None], axis=-1) - 1.0,
            axis=-1,
        )
        dlogits *= mask[..., None] / n
        return loss, self.backward(cache, dlogits)

    def loss(self, rtg: F64, states: F64, actions: IntArray, mask: NDArray[np.bool_]) -> float:
        """The masked mean cross-entropy only (used by gradient checks)."""
        logits, _ = self.forward(rtg, states, actions)
        z = logits - logits.max(axis=-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(logp, actions[..., None], axis=-1)[..., 0]
        return float(-(picked * mask).sum() / max(int(mask.sum()), 1))


class _Dataset:
    """Logged steps of many episodes in flat, capacity-doubling arrays."""

    def __init__(self, state_dim: int, max_steps: int) -> None:
        self.state_dim, self.max_steps = state_dim, max_steps
        cap = 256
        self.x = np.zeros((cap, state_dim))
        self.a = np.zeros(cap, dtype=np.intp)
        self.rtg = np.zeros(cap)
        self.end = np.zeros(cap, dtype=np.intp)  # one past the last step of the episode
        self.size = 0
        self.episodes = 0
        self.episode_returns: list[float] = []
        self._starts: list[int] = []

    def add(self, x: F64, a: IntArray, rtg: F64) -> None:
        n = x.shape[0]
        if n > self.max_steps:  # keep the episode's tail
            x, a, rtg = x[-self.max_steps :], a[-self.max_steps :], rtg[-self.max_steps :]
            n = self.max_steps
        if self.size + n > self.max_steps:
            self._drop(self.size + n - self.max_steps)
        need = self.size + n
        if need > self.x.shape[0]:
            cap = max(need, 2 * self.x.shape[0])
            for name in ("x", "a", "rtg", "end"):
                old = getattr(self, name)
                grown = np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
                grown[: self.size] = old[: self.size]
                setattr(self, name, grown)
        s = self.size
        self.x[s:need], self.a[s:need], self.rtg[s:need] = x, a, rtg
        self.end[s:need] = need
        self._starts.append(s)
        self.size = need
        self.episodes += 1
        self.episode_returns.append(float(rtg[0]))

    def _drop(self, at_least: int) -> None:
        """Forget the oldest whole episodes (down to 3/4 of capacity, so this is rare)."""
        target = max(at_least, self.size - (3 * self.max_steps) // 4)
        k = int(np.searchsorted(np.asarray(self._starts), target, side="left"))
        cut = self._starts[k] if k < len(self._starts) else self.size
        keep = self.size - cut
        for name in ("x", "a", "rtg", "end"):
            arr = getattr(self, name)
            arr[:keep] = arr[cut : self.size].copy()
        self.end[:keep] -= cut
        self._starts = [s - cut for s in self._starts[k:]]
        self.episode_returns = self.episode_returns[k:]
        self.size = keep

    def sample(
        self, batch: int, context: int, rng: np.random.Generator
    ) -> tuple[F64, F64, IntArray, NDArray[np.bool_]]:
        """Windows of up to ``context`` steps starting at uniformly drawn steps."""
        start = rng.integers(0, self.size, size=batch)
        idx = start[:, None] + np.arange(context)[None, :]
        mask = idx < self.end[start][:, None]
        idx = np.where(mask, idx, start[:, None])
        return self.rtg[idx], self.x[idx], self.a[idx], mask


class DecisionTransformer(Learner):
    """Return-conditioned behaviour cloning with a tiny causal transformer (see module).

    * ``update_trajectory(traj)`` / ``add_trajectory(traj)`` log an episode (the former also
      trains ``train_steps_per_episode`` minibatch steps); ``fit(steps)`` trains offline.
    * ``update(...)`` per step extends the current episode (and the acting context);
      the episode is logged and trained on when it ends.
    * Acting: :meth:`begin_episode` with a ``target_return`` (default: the constructor's,
      else the best return in the data); each observed reward lowers the return-to-go
      (``(R - r) / gamma``). ``values`` are the action logits given that context.
    """

    name: ClassVar[str] = "decision-transformer"
    episodic: ClassVar[bool] = True
    conditions_on_history: ClassVar[bool] = True

    def __init__(
        self,
        *,
        n_actions: int | None = None,
        actions: Sequence[Action] | None = None,
        n_states: int | None = None,
        state_dim: int | None = None,
        featurize: Callable[[State], ArrayLike] | None = None,
        context: int = 8,
        d_model: int = 32,
        d_hidden: int = 64,
        lr: float = 3e-3,
        batch_size: int = 32,
        train_steps_per_episode: int = 10,
        gamma: float = 1.0,
        return_scale: float = 1.0,
        target_return: float | None = None,
        max_grad_norm: float = 1.0,
        max_dataset_steps: int = 100_000,
        policy: Policy | None = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(gamma=gamma, seed=seed)
        if self.gamma == 0.0:
            raise ConfigError("decision-transformer needs gamma > 0 (returns-to-go divide by it)")
        if actions is not None:
            check_actions(actions)
            if n_actions is None:
                n_actions = len(actions)
        if n_actions is None:
            raise ConfigError(
                "decision-transformer needs n_actions (its output size) or the list of actions"
            )
        self.n_actions = check_count("n_actions", n_actions)
        self._actions = KeyIndex("action", self.n_actions)
        for a in actions or ():
            self._actions.add(hashable_key(a, "action"))
        self.encoder = StateEncoder(
            n_states=n_states, state_dim=state_dim, featurize=featurize, owner="DecisionTransformer"
        )
        self.context = check_count("context", context)
        self.batch_size = check_count("batch_size", batch_size)
        self.train_steps_per_episode = check_count(
            "train_steps_per_episode", train_steps_per_episode, minimum=0
        )
        self.max_grad_norm = check_positive("max_grad_norm", max_grad_norm)
        self.lr = check_positive("lr", lr)
        self.target_return = None if target_return is None else check_reward(target_return)
        if policy is not None and not isinstance(policy, Policy):
            raise ConfigError(f"policy must be a Policy, got {type(policy).__name__}")
        if policy is not None and policy.needs_counts:
            raise ConfigError(f"{policy.name} needs visit counts; use greedy or softmax")
        self._policy: Policy = policy if policy is not None else GreedyPolicy(rng=self.rng)
        self.model = DecisionTransformerModel(
            state_dim=self.encoder.dim,
            n_actions=self.n_actions,
            context=self.context,
            d_model=check_count("d_model", d_model),
            d_hidden=check_count("d_hidden", d_hidden),
            return_scale=check_positive("return_scale", return_scale),
            rng=self.rng,
        )
        self._names = tuple(self.model.params)
        self.optimizer = Adam([self.model.params[k] for k in self._names], lr=self.lr)
        self.data = _Dataset(self.encoder.dim, check_count("max_dataset_steps", max_dataset_steps))
        self._ctx_rtg: list[float] = []
        self._ctx_x: list[F64] = []
        self._ctx_a: list[int] = []
        self._rtg_now: float | None = None
        self._ep_x: list[F64] = []
        self._ep_a: list[int] = []
        self._ep_r: list[float] = []
        self._last_loss = 0.0

    # -- data and training ----------------------------------------------------------------
    def _action_index(self, action: Action) -> int:
        return self._actions.add(hashable_key(action, "action"))

    def add_trajectory(self, trajectory: Trajectory) -> None:
        """Log an episode in the training set (no training)."""
        if not isinstance(trajectory, Trajectory):
            raise InvalidInputError(f"expected a Trajectory, got {type(trajectory).__name__}")
        if len(trajectory) == 0:
            return
        x = np.stack([self.encoder(s) for s in trajectory.states])
        a = np.fromiter(
            (self._action_index(act) for act in trajectory.actions),
            dtype=np.intp,
            count=len(trajectory),
        )
        self.data.add(x, a, trajectory.returns(self.gamma))

    def train_step(self) -> float:
        """One Adam step on a minibatch of dataset windows; returns its loss."""
        if self.data.size == 0:
            raise InvalidInputError("the decision transformer has no trajectories to train on")
        rtg, x, a, mask = self.data.sample(self.batch_size, self.context, self.rng)
        loss, grads = self.model.loss_and_grads(rtg, x, a, mask)
        glist = [grads[k] for k in self._names]
        clip_global_norm(glist, self.max_grad_norm)
        self.optimizer.step(glist)
        self._updates += 1
        self._last_loss = loss
        self._record_error(loss)
        return loss

    def fit(self, steps: int, trajectories: Sequence[Trajectory] = ()) -> float:
        """Log ``trajectories`` then train ``steps`` minibatch steps; returns the mean loss of
        the last 10% of steps."""
        for traj in trajectories:
            self.add_trajectory(traj)
        steps = check_count("steps", steps, minimum=0)
        losses = np.array([self.train_step() for _ in range(steps)])
        if losses.size == 0:
            return self._last_loss
        return float(losses[-max(1, steps // 10) :].mean())

    def update_trajectory(self, trajectory: Trajectory) -> float:
        """Log an episode and train ``train_steps_per_episode`` steps; returns the loss."""
        self.add_trajectory(trajectory)
        self._episodes += 1
        self._steps += len(trajectory)
        if self.train_steps_per_episode and self.data.size:
            return self.fit(self.train_steps_per_episode)
        return self._last_loss

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
        """Extend the current episode; when it ends, log and train on it (returns the loss;
        0.0 while the episode runs)."""
        r = check_reward(reward)
        x = self.encoder(state)
        a = self._action_index(action)
        self._observe_encoded(x, a, r)
        self._ep_x.append(x)
        self._ep_a.append(a)
        self._ep_r.append(r)
        self._steps += 1
        if next_state is None or done:
            self.end_episode()
            return self._last_loss
        return 0.0

    def end_episode(self) -> None:
        """Log the running episode, train on the data, reset the acting context."""
        if self._ep_x:
            x = np.stack(self._ep_x)
            a = np.asarray(self._ep_a, dtype=np.intp)
            rtg = discounted_cumsum(np.asarray(self._ep_r), self.gamma)
            self._ep_x, self._ep_a, self._ep_r = [], [], []
            self.data.add(x, a, rtg)
            if self.train_steps_per_episode:
                self.fit(self.train_steps_per_episode)
        super().end_episode()
        self._reset_context(None)

    # -- acting ---------------------------------------------------------------------------
    def _default_target(self) -> float:
        if self.target_return is not None:
            return self.target_return
        returns = self.data.episode_returns
        return max(returns) if returns else 0.0

    def _reset_context(self, target_return: float | None) -> None:
        self._ctx_rtg, self._ctx_x, self._ctx_a = [], [], []
        self._rtg_now = None if target_return is None else check_reward(target_return)

    def begin_episode(self, target_return: float | None = None) -> None:
        """Start acting in a new episode, conditioned on ``target_return``."""
        self._reset_context(target_return)

    @property
    def return_to_go(self) -> float:
        """The return the model is currently asked to achieve."""
        if self._rtg_now is None:
            self._rtg_now = self._default_target()
        return self._rtg_now

    def _observe_encoded(self, x: F64, a: int, reward: float) -> None:
        rtg = self.return_to_go
        self._ctx_rtg.append(rtg)
        self._ctx_x.append(x)
        self._ctx_a.append(a)
        keep = self.context - 1
        if len(self._ctx_x) > keep:
            del self._ctx_rtg[: len(self._ctx_rtg) - keep]
            del self._ctx_x[: len(self._ctx_x) - keep]
            del self._ctx_a[: len(self._ctx_a) - keep]
        self._rtg_now = (rtg - reward) / self.gamma

    def observe(self, state: State, action: Action, reward: float) -> None:
        """Append a step to the acting context without logging it for training."""
        self._observe_encoded(self.encoder(state), self._action_index(action), check_reward(reward))

    def action_logits(self, state: State) -> F64:
        """Logits over all output units for ``state`` given the current context."""
        rtg = np.asarray([*self._ctx_rtg, self.return_to_go])[None, :]
        x = np.stack([*self._ctx_x, self.encoder(state)])[None, :, :]
        a = np.asarray([*self._ctx_a, 0], dtype=np.intp)[None, :]
        logits, _ = self.model.forward(rtg, x, a)
        return np.asarray(logits[0, -1])

    def values(self, state: State, actions: Sequence[Action]) -> F64:
        """Action logits for the candidates, conditioned on the current return-to-go."""
        check_actions(actions)
        cols = np.fromiter(
            (self._action_index(a) for a in actions), dtype=np.intp, count=len(actions)
        )
        return np.asarray(self.action_logits(state)[cols], dtype=np.float64)

    @property
    def policy(self) -> Policy:
        """How ``act`` picks from the logits (greedy by default)."""
        return self._policy

    @property
    def action_keys(self) -> list[Hashable]:
        """Actions in output-unit order."""
        return self._actions.keys

    def _sizes(self) -> tuple[int, int]:
        return self.encoder.n_keys, len(self._actions)

    def _extra_stats(self) -> dict[str, float]:
        return {
            "dataset_steps": float(self.data.size),
            "dataset_episodes": float(len(self.data.episode_returns)),
            "last_loss": self._last_loss,
            "return_to_go": float(self._rtg_now) if self._rtg_now is not None else math.nan,
        }
