"""Reinforcement-learning algorithms of the learning engine.

Ten learners behind one :class:`Learner` interface, built by name with
:func:`create_learner`: ``q-learning``, ``sarsa``, ``expected-sarsa``, ``double-q``,
``monte-carlo`` (first-visit by default), ``td-lambda`` (SARSA(λ), replacing traces by
default), ``actor-critic``, ``ppo`` (clipped surrogate, tabular softmax policy, GAE),
``dqn`` (numpy MLP, replay ring buffer, target network, Huber loss, Adam) and
``decision-transformer`` (tiny causal self-attention over return/state/action tokens).

Policies (:class:`GreedyPolicy`, :class:`EpsilonGreedyPolicy`, :class:`UCB1Policy`,
:class:`SoftmaxPolicy`) pick actions from value estimates with a seeded generator.
:mod:`~ruvector_edge.learning.algorithms.envs` holds small problems with known optima.

A learner updated without a next state (``update(state, action, reward)`` or
``update_pattern``) acts as a contextual bandit: the value moves toward the reward.
"""

from __future__ import annotations

from ruvector_edge.learning.algorithms.base import Learner, LearnerStats, TabularLearner
from ruvector_edge.learning.algorithms.decision_transformer import (
    DecisionTransformer,
    DecisionTransformerModel,
)
from ruvector_edge.learning.algorithms.dqn import DQN, ReplayBatch, ReplayBuffer
from ruvector_edge.learning.algorithms.envs import (
    ChainMDP,
    ContextualBandit,
    GridWorld,
    TabularMDP,
    greedy_policy,
    policy_mismatches,
    run_bandit,
    run_episode,
)
from ruvector_edge.learning.algorithms.factory import LEARNER_NAMES, LEARNERS, create_learner
from ruvector_edge.learning.algorithms.policies import (
    BoltzmannPolicy,
    EpsilonGreedyPolicy,
    GreedyPolicy,
    Policy,
    SoftmaxPolicy,
    UCB1Policy,
    create_policy,
)
from ruvector_edge.learning.algorithms.policy_gradient import PPO, ActorCritic, ppo_clip_objective
from ruvector_edge.learning.algorithms.tabular import (
    DoubleQLearning,
    ExpectedSarsa,
    MonteCarlo,
    QLearning,
    Sarsa,
    TDLambda,
)

__all__ = [
    "DQN",
    "LEARNERS",
    "LEARNER_NAMES",
    "PPO",
    "ActorCritic",
    "BoltzmannPolicy",
    "ChainMDP",
    "ContextualBandit",
    "DecisionTransformer",
    "DecisionTransformerModel",
    "DoubleQLearning",
    "EpsilonGreedyPolicy",
    "ExpectedSarsa",
    "GreedyPolicy",
    "GridWorld",
    "Learner",
    "LearnerStats",
    "MonteCarlo",
    "Policy",
    "QLearning",
    "ReplayBatch",
    "ReplayBuffer",
    "Sarsa",
    "SoftmaxPolicy",
    "TDLambda",
    "TabularLearner",
    "TabularMDP",
    "UCB1Policy",
    "create_learner",
    "create_policy",
    "greedy_policy",
    "policy_mismatches",
    "ppo_clip_objective",
    "run_bandit",
    "run_episode",
]
