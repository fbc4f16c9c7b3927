"""Task allocation: who of the eligible agents gets a task (pure logic, no I/O).

``eligible`` applies the role rules; an :class:`AllocationStrategy` picks one of the
eligible :class:`Candidate` s. Strategies: ``round-robin``, ``least-loaded``,
``capability`` and ``learned`` (an epsilon-greedy bandit over agent profiles that keeps
its statistics in an :class:`~ruvector_edge.learning.IntelligenceSync`, so what the
coordinator learns about allocation merges and persists like any other learning state).

Strategies keep a little state (a round-robin cursor, an RNG) and are not thread-safe;
a coordinator calls them from one event loop.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ruvector_edge.config import AgentRole
from ruvector_edge.errors import ConfigError, InvalidInputError
from ruvector_edge.learning import IntelligenceSync
from ruvector_edge.swarm.protocol import alloc_state
from ruvector_edge.wire import TaskPayload

__all__ = [
    "ALLOCATORS",
    "AllocationStrategy",
    "Candidate",
    "CapabilityMatch",
    "Learned",
    "LeastLoaded",
    "RoundRobin",
    "alloc_state",
    "candidate_actions",
    "create_allocator",
    "eligible",
    "eligible_candidates",
]

# Predictions closer than this count as a tie (merged values are float means).
_TIE_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class Candidate:
    """An agent that could take a task: its id, role, capabilities and current load."""

    agent_id: str
    role: AgentRole
    capabilities: frozenset[str] = frozenset()
    load: float = 0.0  # tasks currently in flight on that agent

    def __post_init__(self) -> None:
        if not isinstance(self.agent_id, str) or not 1 <= len(self.agent_id) <= 128:
            raise InvalidInputError(f"agent_id must be 1-128 characters, got {self.agent_id!r}")
        object.__setattr__(self, "role", AgentRole.parse(self.role))
        caps: Any = self.capabilities
        if isinstance(caps, str) or not isinstance(caps, Iterable):
            raise InvalidInputError(f"capabilities must be a collection of names, got {caps!r:.80}")
        caps = frozenset(caps)
        if any(not isinstance(c, str) or not c for c in caps):
            raise InvalidInputError("every capability must be a non-empty str")
        object.__setattr__(self, "capabilities", caps)
        load: Any = self.load
        if isinstance(load, bool) or not isinstance(load, int | float) or not math.isfinite(load):
            raise InvalidInputError(f"load must be a finite number, got {load!r}")
        if load < 0:
            raise InvalidInputError(f"load must be >= 0 (tasks in flight), got {load!r}")
        object.__setattr__(self, "load", float(load))


def eligible(task: TaskPayload, cand: Candidate) -> bool:
    """Whether ``cand`` may run ``task`` under the role rules.

    COORDINATOR: never. WORKER, SCOUT: when the task's required capabilities are a subset
    of the candidate's. SPECIALIST: only tasks that match its specialty, i.e. required
    capabilities that are non-empty and all present, or (no required capabilities) a
    ``task_type`` listed among its capabilities.
    """
    required = frozenset(task.required_capabilities)
    if cand.role is AgentRole.COORDINATOR:
        return False
    if cand.role is AgentRole.SPECIALIST:
        if required:
            return required <= cand.capabilities
        return task.task_type in cand.capabilities
    return required <= cand.capabilities


def eligible_candidates(task: TaskPayload, candidates: Iterable[Candidate]) -> list[Candidate]:
    """The candidates that may run ``task``, in their given order."""
    return [c for c in candidates if eligible(task, c)]


class _Cursor:
    """Round-robin over agent ids in sorted order, stable when the candidate set changes.

    Remembers the last chosen id and next time picks the smallest id after it (wrapping),
    so a joining or leaving agent does not reset or skew the rotation.
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: str | None = None

    def pick(self, candidates: Sequence[Candidate]) -> Candidate:
        ordered = sorted(candidates, key=lambda c: c.agent_id)
        chosen = ordered[0]
        if self.last is not None:
            for cand in ordered:
                if cand.agent_id > self.last:
                    chosen = cand
                    break
        self.last = chosen.agent_id
        return chosen


class AllocationStrategy(ABC):
    """Picks which eligible agent runs a task; may learn from outcomes."""

    name: ClassVar[str]

    @abstractmethod
    def choose(self, task: TaskPayload, candidates: Sequence[Candidate]) -> Candidate | None:
        """Pick one of the (already eligible) candidates, or None when empty."""

    def observe(self, task: TaskPayload, chosen: Candidate, reward: float, success: bool) -> None:
        """Feed back a finished task's outcome (default: nothing)."""
        del task, chosen, reward, success

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RoundRobin(AllocationStrategy):
    """Cycles fairly over the candidates in ``agent_id`` order."""

    name: ClassVar[str] = "round-robin"

    def __init__(self) -> None:
        self._cursor = _Cursor()

    def choose(self, task: TaskPayload, candidates: Sequence[Candidate]) -> Candidate | None:
        """The next candidate after the last one chosen (sorted by id, wrapping)."""
        if not candidates:
            return None
        return self._cursor.pick(candidates)


class LeastLoaded(AllocationStrategy):
    """The candidate with the fewest tasks in flight; ties rotate round-robin."""

    name: ClassVar[str] = "least-loaded"

    def __init__(self) -> None:
        self._cursor = _Cursor()

    def choose(self, task: TaskPayload, candidates: Sequence[Candidate]) -> Candidate | None:
        """The least-loaded candidate (ties: round-robin)."""
        if not candidates:
            return None
        low = min(c.load for c in candidates)
        return self._cursor.pick([c for c in candidates if c.load == low])


def _capability_score(task: TaskPayload, cand: Candidate) -> int:
    caps = cand.capabilities
    score = len(frozenset(task.required_capabilities) & caps)
    return score + (1 if task.task_type in caps else 0)


class CapabilityMatch(AllocationStrategy):
    """Prefers the candidate whose capabilities cover the task best.

    Score: ``|required ∩ capabilities| + (1 if task_type in capabilities)``; ties go to
    the lower load, then round-robin.
    """

    name: ClassVar[str] = "capability"

    def __init__(self) -> None:
        self._cursor = _Cursor()

    def choose(self, task: TaskPayload, candidates: Sequence[Candidate]) -> Candidate | None:
        """The best-covering candidate (ties: lower load, then round-robin)."""
        if not candidates:
            return None
        scored = [(_capability_score(task, c), c) for c in candidates]
        best = max(s for s, _ in scored)
        top = [c for s, c in scored if s == best]
        low = min(c.load for c in top)
        return self._cursor.pick([c for c in top if c.load == low])


def candidate_actions(cand: Candidate) -> list[str]:
    """The learning actions describing a candidate's profile: its role and capabilities."""
    return [f"role:{cand.role.value}"] + [f"cap:{c}" for c in sorted(cand.capabilities)]


def _real(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    return float(value)


class Learned(AllocationStrategy):
    """Epsilon-greedy allocation learned from task outcomes.

    The statistics live in ``sync`` (the coordinator's learning state) under state
    ``alloc:<task_type>`` with one action per profile feature of a candidate
    (``role:<role>``, ``cap:<capability>``). A candidate's predicted reward is the best
    merged value among its features; a feature without data counts as ``optimism``, so
    untried profiles are tried (optimistic initialisation). With probability ``epsilon``
    a uniformly random candidate is chosen; otherwise the best prediction, ties going to
    the lower load and then round-robin.
    """

    name: ClassVar[str] = "learned"

    def __init__(
        self,
        sync: IntelligenceSync,
        *,
        epsilon: float = 0.1,
        seed: int | None = None,
        optimism: float = 1.0,
    ) -> None:
        if not isinstance(sync, IntelligenceSync):
            raise ConfigError(
                f"the learned allocator needs an IntelligenceSync, got {type(sync).__name__}"
            )
        eps = _real(epsilon, "epsilon")
        if not 0.0 <= eps <= 1.0:
            raise ConfigError(f"epsilon must be between 0 and 1, got {epsilon!r}")
        self._sync = sync
        self._epsilon = eps
        self._optimism = _real(optimism, "optimism")
        self._rng = random.Random(seed)
        self._cursor = _Cursor()

    @property
    def sync(self) -> IntelligenceSync:
        """The learning state the statistics are kept in."""
        return self._sync

    @property
    def epsilon(self) -> float:
        """Probability of exploring (a uniformly random candidate)."""
        return self._epsilon

    def __repr__(self) -> str:
        return f"Learned(epsilon={self._epsilon}, optimism={self._optimism})"

    def _predict(self, state: str, cand: Candidate) -> float:
        best = -math.inf
        for action in candidate_actions(cand):
            stats = self._sync.get_pattern(state, action)
            value = self._optimism if stats is None else stats.value
            best = max(best, value)
        return best

    def predictions(self, task: TaskPayload, candidates: Sequence[Candidate]) -> dict[str, float]:
        """``{agent_id: predicted reward}`` for ``task`` (for display and tests)."""
        state = alloc_state(task.task_type)
        return {c.agent_id: self._predict(state, c) for c in candidates}

    def choose(self, task: TaskPayload, candidates: Sequence[Candidate]) -> Candidate | None:
        """Explore with probability epsilon, else the best predicted candidate."""
        if not candidates:
            return None
        # Draw once per call even when epsilon is 0 or 1 so the RNG stream, and hence a
        # seeded run, does not depend on epsilon.
        explore = self._rng.random() < self._epsilon
        if explore:
            return candidates[self._rng.randrange(len(candidates))]
        state = alloc_state(task.task_type)
        scored = [(self._predict(state, c), c) for c in candidates]
        best = max(p for p, _ in scored)
        top = [c for p, c in scored if p >= best - _TIE_EPS]
        low = min(c.load for c in top)
        return self._cursor.pick([c for c in top if c.load == low])

    def observe(self, task: TaskPayload, chosen: Candidate, reward: float, success: bool) -> None:
        """Fold ``reward`` into every profile feature of ``chosen`` for the task's type."""
        del success  # the reward already encodes it
        state = alloc_state(task.task_type)
        for action in candidate_actions(chosen):
            self._sync.update_pattern(state, action, reward)


_SIMPLE: dict[str, type[AllocationStrategy]] = {
    RoundRobin.name: RoundRobin,
    LeastLoaded.name: LeastLoaded,
    CapabilityMatch.name: CapabilityMatch,
}

ALLOCATORS: tuple[str, ...] = (*_SIMPLE, Learned.name)
"""Names accepted by :func:`create_allocator`."""


def create_allocator(
    name: str, *, sync: IntelligenceSync | None = None, **kwargs: Any
) -> AllocationStrategy:
    """The strategy called ``name`` (see ``ALLOCATORS``; ``_`` and case are ignored).

    ``learned`` needs ``sync`` and accepts ``epsilon``, ``seed`` and ``optimism``; the
    other strategies take no options (``sync`` is ignored for them).
    """
    key = name.strip().lower().replace("_", "-") if isinstance(name, str) else ""
    valid = ", ".join(ALLOCATORS)
    if key == Learned.name:
        if sync is None:
            raise ConfigError(
                "the 'learned' allocator needs the coordinator's IntelligenceSync: pass sync=..."
            )
        unknown = set(kwargs) - {"epsilon", "seed", "optimism"}
        if unknown:
            raise ConfigError(
                f"unknown option(s) for the 'learned' allocator: {', '.join(sorted(unknown))}; "
                "expected epsilon, seed, optimism"
            )
        return Learned(sync, **kwargs)
    if key in _SIMPLE:
        if kwargs:
            raise ConfigError(
                f"the {key!r} allocator takes no options, got: {', '.join(sorted(kwargs))}"
            )
        return _SIMPLE[key]()
    raise ConfigError(f"unknown allocator {name!r}; expected one of: {valid}")
