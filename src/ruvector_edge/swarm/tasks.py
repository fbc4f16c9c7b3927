"""The coordinator's task board: submit, assign, complete, retry — each task finishes once.

A task moves ``pending → assigned → done``; a failed attempt (the agent reported failure,
timed out, or was lost) sends it back to ``pending`` with that agent excluded from the
next choice, until ``max_attempts`` assignments have failed and it ends ``failed``. A
result is accepted only from the agent the task is assigned to (or, after that agent was
declared lost, from it while the task waits for a new agent), and only once: a duplicate
or late result changes nothing. Every change is returned as the record to persist.

Pure logic: no I/O, no clock of its own (``now`` is passed in, monotonic seconds).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import Any

import msgspec

from ruvector_edge.errors import InvalidInputError, NotFoundError
from ruvector_edge.identity import now_ms
from ruvector_edge.wire import TaskPayload, TaskResultPayload

__all__ = ["TaskBoard", "TaskRecord", "TaskState"]


class TaskState(StrEnum):
    """Where a task is in its life."""

    PENDING = "pending"
    ASSIGNED = "assigned"
    DONE = "done"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """Done or failed for good."""
        return self in (TaskState.DONE, TaskState.FAILED)


class _Stored(msgspec.Struct, array_like=True):
    task: TaskPayload
    submitter: str
    state: str
    assigned_to: str | None
    attempts: int
    excluded: list[str]
    created_ms: int
    updated_ms: int
    result: TaskResultPayload | None
    history: list[str]


_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder(_Stored)


@dataclasses.dataclass(slots=True)
class TaskRecord:
    """One task and its progress. ``deadline`` (monotonic) is set while assigned."""

    task: TaskPayload
    submitter: str
    state: TaskState = TaskState.PENDING
    assigned_to: str | None = None
    attempts: int = 0
    excluded: set[str] = dataclasses.field(default_factory=set)
    created_ms: int = 0
    updated_ms: int = 0
    result: TaskResultPayload | None = None
    history: list[str] = dataclasses.field(default_factory=list)
    deadline: float | None = None
    lost_assignee: str | None = None

    @property
    def task_id(self) -> str:
        """The task's id."""
        return self.task.task_id

    def to_bytes(self) -> bytes:
        """Serialized for the store."""
        return _ENC.encode(
            _Stored(
                self.task,
                self.submitter,
                self.state.value,
                self.assigned_to,
                self.attempts,
                sorted(self.excluded),
                self.created_ms,
                self.updated_ms,
                self.result,
                self.history[-32:],
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> TaskRecord:
        """Rebuild from :meth:`to_bytes` output."""
        s = _DEC.decode(data)
        return cls(
            s.task,
            s.submitter,
            TaskState(s.state),
            s.assigned_to,
            s.attempts,
            set(s.excluded),
            s.created_ms,
            s.updated_ms,
            s.result,
            list(s.history),
        )

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly view (CLI tables, logs)."""
        return {
            "task_id": self.task_id,
            "type": self.task.task_type,
            "state": self.state.value,
            "assigned_to": self.assigned_to,
            "attempts": self.attempts,
            "success": None if self.result is None else self.result.success,
            "reward": None if self.result is None else self.result.reward,
        }


class TaskBoard:
    """Every task the coordinator knows, with the pending ones in priority order."""

    def __init__(self, *, max_attempts: int = 3) -> None:
        if max_attempts < 1:
            raise InvalidInputError(f"max_attempts must be >= 1, got {max_attempts}")
        self.max_attempts = max_attempts
        self._tasks: dict[str, TaskRecord] = {}
        self._pending: list[tuple[int, int, str]] = []  # sorted (-priority, order, id)
        self._order = itertools.count()
        self._by_agent: dict[str, set[str]] = {}

    # -- reads -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def get(self, task_id: str) -> TaskRecord:
        """The record of ``task_id`` (``NotFoundError`` if unknown)."""
        try:
            return self._tasks[task_id]
        except KeyError:
            raise NotFoundError(f"no task {task_id!r}") from None

    def records(self) -> Iterator[TaskRecord]:
        """Every record."""
        return iter(self._tasks.values())

    def assigned_to(self, agent_id: str) -> list[TaskRecord]:
        """Tasks currently assigned to ``agent_id``."""
        return [self._tasks[t] for t in self._by_agent.get(agent_id, ())]

    def in_flight(self, agent_id: str) -> int:
        """How many tasks ``agent_id`` is running."""
        return len(self._by_agent.get(agent_id, ()))

    def counts(self) -> dict[str, int]:
        """``{state: count}``."""
        out = {s.value: 0 for s in TaskState}
        for rec in self._tasks.values():
            out[rec.state.value] += 1
        return out

    def pending(self) -> Iterator[TaskRecord]:
        """Pending tasks, highest priority first, then oldest (lazy; skips stale entries)."""
        seen: set[str] = set()
        for _, _, tid in list(self._pending):  # kept sorted by bisect.insort
            rec = self._tasks.get(tid)
            if rec is not None and rec.state is TaskState.PENDING and tid not in seen:
                seen.add(tid)
                yield rec

    # -- changes -----------------------------------------------------------------------
    def submit(self, task: TaskPayload, submitter: str) -> tuple[TaskRecord, bool]:
        """Add a task; resubmitting a known id returns the existing record and False."""
        known = self._tasks.get(task.task_id)
        if known is not None:
            return known, False
        ms = now_ms()
        rec = TaskRecord(task, submitter, created_ms=ms, updated_ms=ms)
        rec.history.append(f"submitted by {submitter}")
        self._tasks[task.task_id] = rec
        self._push_pending(rec)
        return rec, True

    def restore(self, records: Iterable[TaskRecord], now: float, grace: float) -> None:
        """Take records from the store after a restart, or replicated from the leader,
        replacing any known record of the same id. Assigned tasks keep their agent for the
        rest of their timeout and at least ``grace`` seconds (it may reconnect and deliver
        the result); then they retry."""
        for rec in records:
            known = self._tasks.get(rec.task_id)
            if known is not None:
                self._unassign(known)
            self._tasks[rec.task_id] = rec
            if rec.state is TaskState.PENDING:
                self._push_pending(rec)
            elif rec.state is TaskState.ASSIGNED and rec.assigned_to is not None:
                # The task keeps what is left of its own timeout, and at least ``grace``.
                left = rec.task.timeout_ms / 1000.0 - max(0, now_ms() - rec.updated_ms) / 1000.0
                rec.deadline = now + max(grace, left)
                self._by_agent.setdefault(rec.assigned_to, set()).add(rec.task_id)

    def extend_deadlines(self, now: float, grace: float) -> None:
        """Give every assigned task at least ``grace`` more seconds (a new leader takes
        over tasks whose agents are still on their way to it)."""
        for ids in self._by_agent.values():
            for tid in ids:
                rec = self._tasks[tid]
                rec.deadline = max(rec.deadline or now, now + grace)

    def assign(self, task_id: str, agent_id: str, now: float) -> TaskRecord:
        """Give a pending task to ``agent_id`` until ``now + timeout``."""
        rec = self.get(task_id)
        if rec.state is not TaskState.PENDING:
            raise InvalidInputError(f"task {task_id!r} is {rec.state.value}, not pending")
        rec.state = TaskState.ASSIGNED
        rec.assigned_to = agent_id
        rec.lost_assignee = None
        rec.attempts += 1
        rec.deadline = now + max(0.001, rec.task.timeout_ms / 1000.0)
        rec.updated_ms = now_ms()
        rec.history.append(f"attempt {rec.attempts} -> {agent_id}")
        self._by_agent.setdefault(agent_id, set()).add(task_id)
        return rec

    def complete(self, agent_id: str, result: TaskResultPayload) -> tuple[TaskRecord, bool]:
        """Record ``agent_id``'s result. Returns ``(record, accepted)``; a duplicate, late
        or foreign result is not accepted and changes nothing."""
        rec = self.get(result.task_id)
        if rec.state.finished:
            return rec, False
        if rec.state is TaskState.ASSIGNED:
            if rec.assigned_to != agent_id:
                return rec, False
        elif rec.lost_assignee != agent_id:
            return rec, False  # pending: only the agent that was lost on it may still finish
        if not result.success and rec.attempts < self.max_attempts:
            # A failed attempt: try another agent.
            self._retry(rec, agent_id, f"failed on {agent_id}: {result.error or 'no reason'}")
            return rec, True
        self._unassign(rec)
        rec.state = TaskState.DONE if result.success else TaskState.FAILED
        rec.result = result
        rec.updated_ms = now_ms()
        rec.history.append(f"{rec.state.value} by {agent_id}")
        return rec, True

    def fail_attempt(self, task_id: str, agent_id: str, reason: str) -> TaskRecord:
        """The attempt on ``agent_id`` failed without a result (timeout, lost, refused)."""
        rec = self.get(task_id)
        if rec.state is not TaskState.ASSIGNED or rec.assigned_to != agent_id:
            return rec
        if rec.attempts >= self.max_attempts:
            self._unassign(rec)
            rec.state = TaskState.FAILED
            rec.result = TaskResultPayload(
                task_id=task_id,
                success=False,
                error=f"gave up after {rec.attempts} attempts; last: {reason}",
            )
            rec.updated_ms = now_ms()
            rec.history.append(f"failed: {reason}")
            return rec
        self._retry(rec, agent_id, reason)
        return rec

    def agent_lost(self, agent_id: str) -> list[TaskRecord]:
        """``agent_id`` is gone: every task it held goes back to pending (or fails)."""
        changed = []
        for rec in self.assigned_to(agent_id):
            self.fail_attempt(rec.task_id, agent_id, f"agent {agent_id} lost")
            if rec.state is TaskState.PENDING:
                rec.lost_assignee = agent_id
            changed.append(rec)
        return changed

    def expired(self, now: float) -> list[TaskRecord]:
        """Assigned tasks past their deadline (the caller fails or extends them)."""
        return [
            rec
            for ids in self._by_agent.values()
            for tid in ids
            if (rec := self._tasks[tid]).deadline is not None and rec.deadline <= now
        ]

    def forget_finished(self, keep: int) -> list[str]:
        """Drop the oldest finished tasks beyond ``keep``; returns their ids."""
        done = [r for r in self._tasks.values() if r.state.finished]
        if len(done) <= keep:
            return []
        done.sort(key=lambda r: r.updated_ms)
        drop = [r.task_id for r in done[: len(done) - keep]]
        for tid in drop:
            del self._tasks[tid]
        return drop

    # -- internals ---------------------------------------------------------------------
    def _retry(self, rec: TaskRecord, agent_id: str, reason: str) -> None:
        self._unassign(rec)
        rec.excluded.add(agent_id)
        rec.state = TaskState.PENDING
        rec.updated_ms = now_ms()
        rec.history.append(f"retry: {reason}")
        self._push_pending(rec)

    def _unassign(self, rec: TaskRecord) -> None:
        if rec.assigned_to is not None:
            ids = self._by_agent.get(rec.assigned_to)
            if ids is not None:
                ids.discard(rec.task_id)
                if not ids:
                    del self._by_agent[rec.assigned_to]
        rec.assigned_to = None
        rec.deadline = None

    def _push_pending(self, rec: TaskRecord) -> None:
        bisect.insort(self._pending, (-rec.task.priority, next(self._order), rec.task_id))
        if len(self._pending) > 4 * len(self._tasks) + 64:
            self._pending = [
                item
                for item in self._pending
                if (r := self._tasks.get(item[2])) is not None and r.state is TaskState.PENDING
            ]
