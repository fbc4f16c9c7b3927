"""Deep Q-network (Mnih et al. 2015) in numpy: MLP, experience replay, target network.

* Q-network: an MLP with one or two ReLU hidden layers, trained with Adam on the Huber loss
  of the TD error, gradients clipped by global norm, all batched with numpy.
* Replay: :class:`ReplayBuffer`, a preallocated ring buffer; each draw is O(1)
  (uniform, with replacement).
* Target network: a copy of the Q-network, synced every ``target_sync`` steps; targets
  are ``r + gamma * max_a' Q_target(s', a')`` over the legal next actions
  (``double=True``: the online net picks ``a'``, the target net scores it).

States are feature vectors (``state_dim``, optionally through ``featurize``) or hashable
keys one-hot encoded (``n_states``). Actions are keys assigned to the ``n_actions`` output
units in order of first appearance (or fixed by ``actions``).

Contextual-bandit shortcut: ``update(state, action, reward)`` stores a terminal transition,
so the network regresses ``Q(state, action)`` toward ``reward``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import ClassVar, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ruvector_edge.errors import ConfigError, InvalidInputError
from ruvector_edge.learning.algorithms._nn import MLP, Adam, clip_global_norm, huber
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
from ruvector_edge.learning.algorithms.policies import (
    EpsilonGreedyPolicy,
    Policy,
    SeedLike,
    as_generator,
)
from ruvector_edge.learning.trajectory import Action, State

__all__ = ["DQN", "ReplayBatch", "ReplayBuffer"]


class ReplayBatch(NamedTuple):
    """A sampled minibatch of transitions (row ``i`` of every array is one transition)."""

    states: F64
    actions: NDArray[np.intp]
    rewards: F64
    next_states: F64
    dones: NDArray[np.bool_]
    next_masks: NDArray[np.bool_]
    indices: NDArray[np.intp]


class ReplayBuffer:
    """Fixed-capacity ring buffer of transitions with O(1) uniform sampling per draw.

    Storage is preallocated numpy arrays; when full, the oldest transition is overwritten.
    """

    def __init__(
        self, capacity: int, state_dim: int, n_actions: int, *, rng: SeedLike = None
    ) -> None:
        self.capacity = check_count("replay capacity", capacity)
        self.state_dim = check_count("state_dim", state_dim)
        self.n_actions = check_count("n_actions", n_actions)
        self.rng = as_generator(rng)
        self.states = np.zeros((self.capacity, self.state_dim), dtype=np.float64)
        self.next_states = np.zeros((self.capacity, self.state_dim), dtype=np.float64)
        self.actions = np.zeros(self.capacity, dtype=np.intp)
        self.rewards = np.zeros(self.capacity, dtype=np.float64)
        self.dones = np.zeros(self.capacity, dtype=np.bool_)
        self.next_masks = np.ones((self.capacity, self.n_actions), dtype=np.bool_)
        self._next = 0
        self._size = 0
        self.added = 0

    def __len__(self) -> int:
        return self._size

    def add(
        self,
        state: F64,
        action: int,
        reward: float,
        next_state: F64 | None,
        done: bool,
        *,
        next_mask: NDArray[np.bool_] | None = None,
    ) -> int:
        """Store one transition (overwriting the oldest when full); returns its slot."""
        if not 0 <= action < self.n_actions:
            raise InvalidInputError(f"action index {action} outside [0, {self.n_actions})")
        i = self._next
        self.states[i] = state
        self.actions[i] = action
        self.rewards[i] = reward
        if next_state is None:
            self.next_states[i] = 0.0
            self.dones[i] = True
        else:
            self.next_states[i] = next_state
            self.dones[i] = bool(done)
        self.next_masks[i] = True if next_mask is None else next_mask
        self._next = (i + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)
        self.added += 1
        return i

    def sample(self, batch_size: int) -> ReplayBatch:
        """``batch_size`` transitions drawn uniformly with replacement (O(1) per draw)."""
        if self._size == 0:
            raise InvalidInputError("cannot sample from an empty replay buffer")
        idx = self.rng.integers(0, self._size, size=batch_size)
        return ReplayBatch(
            self.states[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_states[idx],
            self.dones[idx],
            self.next_masks[idx],
            idx,
        )


class DQN(Learner):
    """Deep Q-learning with experience replay and a target network (see module docs)."""

    name: ClassVar[str] = "dqn"

    def __init__(
        self,
        *,
        n_actions: int | None = None,
        actions: Sequence[Action] | None = None,
        n_states: int | None = None,
        state_dim: int | None = None,
        featurize: Callable[[State], ArrayLike] | None = None,
        hidden: Sequence[int] = (64,),
        lr: float = 1e-3,
        gamma: float = 0.99,
        batch_size: int = 32,
        buffer_size: int = 10_000,
        learning_starts: int | None = None,
        train_every: int = 1,
        target_sync: int = 100,
        huber_delta: float = 1.0,
        max_grad_norm: float = 10.0,
        double: bool = False,
        policy: Policy | None = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(gamma=gamma, seed=seed)
        if actions is not None:
            check_actions(actions)
            if n_actions is None:
                n_actions = len(actions)
        if n_actions is None:
            raise ConfigError("DQN needs n_actions (its output size) or the list of actions")
        self.n_actions = check_count("n_actions", n_actions)
        self._actions = KeyIndex("action", self.n_actions)
        for a in actions or ():
            self._actions.add(hashable_key(a, "action"))
        self.encoder = StateEncoder(
            n_states=n_states, state_dim=state_dim, featurize=featurize, owner="DQN"
        )
        self.state_dim = self.encoder.dim
        hidden = tuple(hidden)
        if not 1 <= len(hidden) <= 2:
            raise ConfigError(f"hidden must list one or two layer sizes, got {hidden}")
        for h in hidden:
            check_count("hidden layer size", h)
        self.hidden = hidden
        self.lr = check_positive("lr", lr)
        self.batch_size = check_count("batch_size", batch_size)
        self.buffer_size = check_count("buffer_size", buffer_size)
        self.learning_starts = check_count(
            "learning_starts", batch_size if learning_starts is None else learning_starts
        )
        self.train_every = check_count("train_every", train_every)
        self.target_sync = check_count("target_sync", target_sync)
        self.huber_delta = check_positive("huber_delta", huber_delta)
        self.max_grad_norm = check_positive("max_grad_norm", max_grad_norm)
        self.double = bool(double)
        if policy is not None and not isinstance(policy, Policy):
            raise ConfigError(f"policy must be a Policy, got {type(policy).__name__}")
        if policy is not None and policy.needs_counts:
            raise ConfigError(
                f"{policy.name} needs visit counts, which DQN does not keep; "
                "use epsilon-greedy or softmax"
            )
        self._policy: Policy = (
            policy if policy is not None else EpsilonGreedyPolicy(0.1, rng=self.rng)
        )
        sizes = (self.state_dim, *self.hidden, self.n_actions)
        self.online = MLP(sizes, self.rng)
        self.target = MLP(sizes, self.rng)
        self.target.copy_from(self.online)
        self.optimizer = Adam(self.online.params, lr=self.lr)
        self.replay = ReplayBuffer(self.buffer_size, self.state_dim, self.n_actions, rng=self.rng)
        self._syncs = 0
        self._train_steps = 0
        self._last_loss = 0.0

    # -- encoding -------------------------------------------------------------------------
    def features(self, state: State) -> F64:
        """The network input for ``state``."""
        return self.encoder(state)

    def _action_index(self, action: Action) -> int:
        return self._actions.add(hashable_key(action, "action"))

    def _cols(self, actions: Sequence[Action]) -> NDArray[np.intp]:
        check_actions(actions)
        return np.fromiter(
            (self._action_index(a) for a in actions), dtype=np.intp, count=len(actions)
        )

    # -- Learner --------------------------------------------------------------------------
    @property
    def policy(self) -> Policy:
        """The exploration policy (ε-greedy by default)."""
        return self._policy

    def q_values(self, state: State) -> F64:
        """The online network's Q for every output unit."""
        return np.asarray(self.online.predict(self.features(state)[None, :])[0])

    def values(self, state: State, actions: Sequence[Action]) -> F64:
        """Online ``Q(state, a)`` for each candidate (actions get output units on first use)."""
        cols = self._cols(actions)
        return np.asarray(self.q_values(state)[cols], dtype=np.float64)

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
        """Store the transition, train on a replay minibatch every ``train_every`` steps
        (once ``learning_starts`` transitions are stored) and sync the target network every
        ``target_sync`` steps. Returns the minibatch Huber loss (0.0 if no training ran)."""
        r = check_reward(reward)
        x = self.features(state)
        a = self._action_index(action)
        terminal = next_state is None or bool(done)
        x2 = None if next_state is None else self.features(next_state)
        mask = None
        if next_actions is not None and not terminal:
            mask = np.zeros(self.n_actions, dtype=np.bool_)
            mask[self._cols(next_actions)] = True
        self.replay.add(x, a, r, x2, terminal, next_mask=mask)
        self._steps += 1
        loss = 0.0
        if len(self.replay) >= self.learning_starts and self._steps % self.train_every == 0:
            loss = self._train_step()
        if self._steps % self.target_sync == 0:
            self.target.copy_from(self.online)
            self._syncs += 1
        if terminal:
            self.end_episode()
        return loss

    def _train_step(self) -> float:
        b = self.replay.sample(self.batch_size)
        n = b.states.shape[0]
        rows = np.arange(n)
        q, acts = self.online.forward(b.states)
        q_next = self.target.predict(b.next_states)
        if self.double:
            pick = np.where(b.next_masks, self.online.predict(b.next_states), -np.inf)
            next_v = q_next[rows, pick.argmax(axis=1)]
        else:
            next_v = np.where(b.next_masks, q_next, -np.inf).max(axis=1)
        y = b.rewards + self.gamma * np.where(b.dones, 0.0, next_v)
        delta = q[rows, b.actions] - y
        loss, g = huber(delta, self.huber_delta)
        dq = np.zeros_like(q)
        dq[rows, b.actions] = g
        grads = self.online.backward(acts, dq)
        clip_global_norm(grads, self.max_grad_norm)
        self.optimizer.step(grads)
        self._train_steps += 1
        self._updates += 1
        self._last_loss = loss
        self._record_error(loss)
        return loss

    def sync_target(self) -> None:
        """Copy the online weights into the target network now."""
        self.target.copy_from(self.online)
        self._syncs += 1

    @property
    def action_keys(self) -> list[Hashable]:
        """Actions in output-unit order."""
        return self._actions.keys

    def _sizes(self) -> tuple[int, int]:
        return self.encoder.n_keys, len(self._actions)

    def _extra_stats(self) -> dict[str, float]:
        return {
            "replay_size": float(len(self.replay)),
            "target_syncs": float(self._syncs),
            "train_steps": float(self._train_steps),
            "last_loss": self._last_loss,
        }
