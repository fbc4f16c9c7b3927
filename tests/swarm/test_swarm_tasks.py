"""TaskBoard: each task finishes once, retries go elsewhere, persistence round-trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ruvector_edge.errors import InvalidInputError, NotFoundError
from ruvector_edge.swarm import TaskBoard, TaskRecord, TaskState
from ruvector_edge.wire import TaskPayload, TaskResultPayload


def _task(tid: str = "t1", priority: int = 0, timeout_ms: int = 1000) -> TaskPayload:
    return TaskPayload(task_id=tid, task_type="job", priority=priority, timeout_ms=timeout_ms)


def _ok(tid: str = "t1", success: bool = True) -> TaskResultPayload:
    return TaskResultPayload(task_id=tid, success=success, reward=1.0 if success else 0.0)


def test_submit_is_idempotent_and_pending_is_priority_ordered() -> None:
    board = TaskBoard()
    board.submit(_task("low", 0), "c")
    board.submit(_task("high", 5), "c")
    rec, new = board.submit(_task("low", 9), "c")
    assert not new
    assert rec.task.priority == 0
    assert [r.task_id for r in board.pending()] == ["high", "low"]


def test_result_accepted_only_from_assignee_and_only_once() -> None:
    board = TaskBoard()
    board.submit(_task(), "c")
    board.assign("t1", "a", now=0.0)
    assert board.in_flight("a") == 1
    rec, accepted = board.complete("b", _ok())
    assert not accepted
    assert rec.state is TaskState.ASSIGNED
    rec, accepted = board.complete("a", _ok())
    assert accepted
    assert rec.state is TaskState.DONE
    assert board.in_flight("a") == 0
    rec, accepted = board.complete("a", _ok())
    assert not accepted
    assert rec.state is TaskState.DONE


def test_failed_attempt_retries_excluding_the_agent_until_max_attempts() -> None:
    board = TaskBoard(max_attempts=2)
    board.submit(_task(), "c")
    board.assign("t1", "a", now=0.0)
    rec, accepted = board.complete("a", _ok(success=False))
    assert accepted
    assert rec.state is TaskState.PENDING
    assert rec.excluded == {"a"}
    board.assign("t1", "b", now=0.0)
    rec, _ = board.complete("b", _ok(success=False))
    assert rec.state is TaskState.FAILED
    assert rec.attempts == 2


def test_timeouts_and_lost_agents_requeue() -> None:
    board = TaskBoard(max_attempts=3)
    board.submit(_task("t1", timeout_ms=1000), "c")
    board.submit(_task("t2", timeout_ms=1000), "c")
    board.assign("t1", "a", now=10.0)
    board.assign("t2", "b", now=10.0)
    assert board.expired(10.5) == []
    assert {r.task_id for r in board.expired(11.5)} == {"t1", "t2"}
    board.fail_attempt("t1", "a", "timed out")
    assert board.get("t1").state is TaskState.PENDING
    lost = board.agent_lost("b")
    assert [r.task_id for r in lost] == ["t2"]
    assert board.get("t2").state is TaskState.PENDING
    assert board.get("t2").lost_assignee == "b"
    # The lost agent may still deliver while nobody else took the task ...
    rec, accepted = board.complete("b", _ok("t2"))
    assert accepted
    assert rec.state is TaskState.DONE
    # ... but not once another agent holds it.
    board.assign("t1", "c", now=20.0)
    _, accepted = board.complete("a", _ok("t1"))
    assert not accepted


def test_assign_requires_pending_and_unknown_ids_raise() -> None:
    board = TaskBoard()
    with pytest.raises(NotFoundError):
        board.get("nope")
    board.submit(_task(), "c")
    board.assign("t1", "a", now=0.0)
    with pytest.raises(InvalidInputError):
        board.assign("t1", "b", now=0.0)
    with pytest.raises(InvalidInputError):
        TaskBoard(max_attempts=0)


def test_record_round_trip_and_restore_keeps_assignment_for_grace() -> None:
    board = TaskBoard()
    board.submit(_task("t1"), "c")
    board.submit(_task("t2"), "c")
    board.assign("t1", "a", now=0.0)
    blobs = [r.to_bytes() for r in board.records()]
    fresh = TaskBoard()
    fresh.restore([TaskRecord.from_bytes(b) for b in blobs], now=100.0, grace=3.0)
    assert fresh.get("t1").state is TaskState.ASSIGNED
    assert fresh.in_flight("a") == 1
    assert [r.task_id for r in fresh.pending()] == ["t2"]
    assert fresh.expired(102.0) == []
    assert [r.task_id for r in fresh.expired(103.5)] == ["t1"]


def test_forget_finished_keeps_the_newest() -> None:
    board = TaskBoard()
    for i in range(5):
        board.submit(_task(f"t{i}"), "c")
        board.assign(f"t{i}", "a", now=0.0)
        board.complete("a", _ok(f"t{i}"))
    dropped = board.forget_finished(keep=2)
    assert len(dropped) == 3
    assert len(board) == 2


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["assign", "ok", "fail", "lost", "timeout"]),
            st.sampled_from(["a", "b", "c"]),
        ),
        max_size=40,
    )
)
def test_a_task_finishes_at_most_once_whatever_happens(ops: list[tuple[str, str]]) -> None:
    board = TaskBoard(max_attempts=3)
    board.submit(_task(), "client")
    finishes = 0
    now = 0.0
    for op, agent in ops:
        rec = board.get("t1")
        if op == "assign" and rec.state is TaskState.PENDING:
            board.assign("t1", agent, now)
        elif op in ("ok", "fail"):
            before = rec.state
            _, accepted = board.complete(agent, _ok(success=op == "ok"))
            if accepted and rec.state.finished and not before.finished:
                finishes += 1
        elif op == "lost":
            board.agent_lost(agent)
        elif op == "timeout" and rec.assigned_to is not None:
            board.fail_attempt("t1", rec.assigned_to, "timed out")
        now += 1.0
        assert rec.attempts <= 3
        assert (rec.state is TaskState.ASSIGNED) == (rec.assigned_to is not None)
        assert board.in_flight(agent) <= 1
    assert finishes <= 1


def test_restore_replaces_a_replica_and_moves_the_agent_index() -> None:
    leader, replica = TaskBoard(), TaskBoard()
    leader.submit(_task("t1", timeout_ms=60_000), "c")
    replica.restore([TaskRecord.from_bytes(leader.get("t1").to_bytes())], now=0.0, grace=1.0)
    assert [r.task_id for r in replica.pending()] == ["t1"]
    leader.assign("t1", "a", now=0.0)
    replica.restore([TaskRecord.from_bytes(leader.get("t1").to_bytes())], now=0.0, grace=1.0)
    assert list(replica.pending()) == []
    assert replica.in_flight("a") == 1
    # The replica keeps what is left of the task's own timeout, not just the grace.
    deadline = replica.get("t1").deadline
    assert deadline is not None
    assert deadline > 30.0
    leader.fail_attempt("t1", "a", "lost")
    leader.assign("t1", "b", now=1.0)
    replica.restore([TaskRecord.from_bytes(leader.get("t1").to_bytes())], now=1.0, grace=1.0)
    assert (replica.in_flight("a"), replica.in_flight("b")) == (0, 1)
    replica.extend_deadlines(now=100.0, grace=5.0)
    assert replica.get("t1").deadline == 105.0
    assert replica.expired(104.0) == []
