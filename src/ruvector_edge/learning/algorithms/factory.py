"""``create_learner``: every algorithm by its RuVector learning-engine name."""

from __future__ import annotations

from typing import Any, Final

from ruvector_edge.errors import ConfigError
from ruvector_edge.learning.algorithms.base import Learner
from ruvector_edge.learning.algorithms.decision_transformer import DecisionTransformer
from ruvector_edge.learning.algorithms.dqn import DQN
from ruvector_edge.learning.algorithms.policy_gradient import PPO, ActorCritic
from ruvector_edge.learning.algorithms.tabular import (
    DoubleQLearning,
    ExpectedSarsa,
    MonteCarlo,
    QLearning,
    Sarsa,
    TDLambda,
)

__all__ = ["LEARNERS", "LEARNER_NAMES", "create_learner"]

LEARNERS: Final[dict[str, type[Learner]]] = {
    "q-learning": QLearning,
    "sarsa": Sarsa,
    "expected-sarsa": ExpectedSarsa,
    "double-q": DoubleQLearning,
    "monte-carlo": MonteCarlo,
    "td-lambda": TDLambda,
    "actor-critic": ActorCritic,
    "ppo": PPO,
    "dqn": DQN,
    "decision-transformer": DecisionTransformer,
}
"""Algorithm name -> learner class."""

LEARNER_NAMES: Final = tuple(LEARNERS)
"""The accepted names, in the engine's order (plus ``expected-sarsa``)."""


def create_learner(name: str, **kwargs: Any) -> Learner:
    """A learner by name (``"q-learning"``, ``"sarsa"``, ``"expected-sarsa"``,
    ``"double-q"``, ``"monte-carlo"``, ``"td-lambda"``, ``"actor-critic"``, ``"ppo"``,
    ``"dqn"``, ``"decision-transformer"``; case and ``_``/``-`` are ignored), built with the
    class's keyword arguments. Unknown names and invalid hyperparameters raise
    :class:`~ruvector_edge.errors.ConfigError`.
    """
    if not isinstance(name, str):
        raise ConfigError(f"learner name must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    cls = LEARNERS.get(key)
    if cls is None:
        raise ConfigError(f"unknown learner {name!r}; valid names: {', '.join(LEARNER_NAMES)}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad arguments for learner {key!r}: {exc}") from None
