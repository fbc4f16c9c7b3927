"""A fixed-seed synthetic workload where the best model depends on the query's topic.

Used by the router tests and ``benchmarks/bench_llm_router.py``. Each topic has its own
vocabulary of made-up words; queries mix topic words with words shared by every topic
(so the router must pick out the topical ones). Each topic has one best model; a
simulated user rates the best model 5, a model next to it in the list 2, others 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ruvector_edge.errors import ConfigError
from ruvector_edge.llm.types import Feedback

__all__ = ["SyntheticWorkload", "Topic", "WorkloadQuery"]

_SYLLABLES = [
    "ka",
    "ri",
    "to",
    "mo",
    "na",
    "ve",
    "lu",
    "si",
    "pa",
    "de",
    "fo",
    "gu",
    "hi",
    "ja",
    "ko",
    "le",
    "mi",
    "no",
    "pu",
    "ra",
    "se",
    "ti",
    "vo",
    "za",
    "be",
    "ce",
    "da",
    "fe",
    "ge",
    "ho",
    "ji",
    "ku",
    "la",
    "me",
    "ni",
    "po",
    "qu",
    "re",
    "su",
    "ta",
    "vi",
    "wo",
    "xe",
    "yu",
    "zo",
]
_SHARED = [
    "how",
    "do",
    "i",
    "fix",
    "the",
    "error",
    "in",
    "my",
    "setup",
    "please",
    "explain",
    "why",
    "this",
    "fails",
    "and",
    "what",
    "should",
    "change",
    "when",
    "running",
    "it",
    "again",
    "with",
    "more",
    "detail",
    "about",
    "results",
]


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic: its name, vocabulary and the model that serves it best."""

    name: str
    words: tuple[str, ...]
    best_model: str


@dataclass(frozen=True, slots=True)
class WorkloadQuery:
    """One generated query and its topic index."""

    text: str
    topic: int


class SyntheticWorkload:
    """Topics -> best model, with seeded query, document and rating generation."""

    def __init__(
        self,
        models: Sequence[str],
        *,
        n_topics: int = 8,
        words_per_topic: int = 24,
        seed: int = 0,
    ) -> None:
        models = list(models)
        if len(models) < 2:
            raise ConfigError("the workload needs at least two models")
        if n_topics < len(models):
            raise ConfigError("use at least as many topics as models, so every model is best once")
        self.models = models
        self.seed = seed
        rng = np.random.default_rng(seed)
        best = [models[i % len(models)] for i in range(n_topics)]
        order = rng.permutation(n_topics)
        used: set[str] = set(_SHARED)
        topics = []
        for t in range(n_topics):
            words: list[str] = []
            while len(words) < words_per_topic:
                n = int(rng.integers(2, 4))
                w = "".join(str(rng.choice(_SYLLABLES)) for _ in range(n))
                if w not in used:
                    used.add(w)
                    words.append(w)
            topics.append(Topic(f"topic-{t}", tuple(words), best[int(order[t])]))
        self.topics = topics

    def query(self, rng: np.random.Generator, topic: int | None = None) -> WorkloadQuery:
        """One query: 3-5 topic words and 2-4 shared words, shuffled."""
        t = int(rng.integers(len(self.topics))) if topic is None else topic
        words = list(rng.choice(self.topics[t].words, size=int(rng.integers(3, 6)), replace=False))
        words += list(rng.choice(_SHARED, size=int(rng.integers(2, 5)), replace=False))
        rng.shuffle(words)
        return WorkloadQuery(" ".join(str(w) for w in words), t)

    def queries(self, n: int, *, seed: int) -> list[WorkloadQuery]:
        """``n`` queries from their own seeded stream."""
        rng = np.random.default_rng(seed)
        return [self.query(rng) for _ in range(n)]

    def documents(self, per_topic: int, *, seed: int = 1) -> list[tuple[str, dict[str, Any]]]:
        """Documents about each topic, with ``{"topic": name}`` metadata."""
        rng = np.random.default_rng(seed)
        docs = []
        for t, topic in enumerate(self.topics):
            for i in range(per_topic):
                words = rng.choice(topic.words, size=8, replace=True)
                text = f"Note {i} on {topic.name}: " + " ".join(str(w) for w in words) + "."
                docs.append((text, {"topic": topic.name, "topic_index": t}))
        return docs

    def best_model(self, topic: int) -> str:
        """The model that serves ``topic`` best."""
        return self.topics[topic].best_model

    def rating(self, topic: int, model: str) -> int:
        """The simulated user's 1-5 rating of ``model`` answering a ``topic`` query."""
        best = self.models.index(self.topics[topic].best_model)
        got = self.models.index(model)
        if got == best:
            return 5
        return 2 if abs(got - best) == 1 else 1

    def feedback(self, request_id: str, topic: int, model: str) -> Feedback:
        """The simulated user's :class:`Feedback` for a response."""
        r = self.rating(topic, model)
        return Feedback(request_id, rating=r, task_success=r >= 4)
