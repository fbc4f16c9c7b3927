"""End to end, with real processes: agents learn and share, a coordinator survives kill -9,
a task survives the death of the agent running it. Over WebSocket and shared memory.

Agents (and, for the crash test, the coordinator) run in ``spawn``-ed children driven
through a command pipe (see ``_swarm_procs``); every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from _swarm_procs import (
    TOKEN,
    AgentSpec,
    Child,
    ChildError,
    Children,
    CoordinatorSpec,
    cleanup_shm,
    free_port,
    shm_name,
)

from ruvector_edge.config import AgentRole, SwarmConfig
from ruvector_edge.swarm import Coordinator, TaskState

INTERVAL_MS = 200  # sync and heartbeat: a dead agent is declared lost after 3 intervals
TRANSPORTS = ["ws", "shm"]
EMB_ROUTE = [1.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2]
EMB_CACHE = [0.0, 0.0, 1.0, 0.2, 0.0, 0.1, 0.0, 0.0]


def listen_url(kind: str, *, fixed: bool = False) -> str:
    """A listen address; ``fixed`` picks the WebSocket port now (for a restart on it)."""
    if kind == "shm":
        return f"shm://{shm_name()}"
    return f"ws://127.0.0.1:{free_port() if fixed else 0}"


def coordinator_config() -> SwarmConfig:
    return SwarmConfig(
        agent_id="coord",
        agent_role=AgentRole.COORDINATOR,
        sync_interval_ms=INTERVAL_MS,
        heartbeat_interval_ms=INTERVAL_MS,
        join_token=TOKEN,
    )


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll an (async) condition until it holds, failing after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what}")
        await asyncio.sleep(0.05)


async def agent_stats(child: Child) -> dict[str, Any]:
    stats: dict[str, Any] = await child.call("stats")
    return stats


def ran_counts(*children: Child) -> Counter[str]:
    """How many times each task id was executed, over all ``children``."""
    return Counter(tid for child in children for tid, _ in child.events_named("ran"))


@pytest.fixture
async def children() -> AsyncIterator[Children]:
    group = Children()
    try:
        yield group
    finally:
        await group.close()


@pytest.fixture(params=TRANSPORTS)
async def hub(request: pytest.FixtureRequest) -> AsyncIterator[Coordinator]:
    """A coordinator in this process, listening for the children."""
    url = listen_url(request.param)
    coordinator = await Coordinator(coordinator_config(), listen=url).start()
    try:
        yield coordinator
    finally:
        await coordinator.stop()
        if url.startswith("shm://"):
            assert cleanup_shm(url.removeprefix("shm://")) == []


# -- 1. join, learn, sync ---------------------------------------------------------------------


async def test_what_one_agent_process_learns_another_uses(
    hub: Coordinator, children: Children
) -> None:
    a = children.agent(AgentSpec("agent-a", seed=1))
    b = children.agent(AgentSpec("agent-b", seed=2))
    await asyncio.gather(a.call("join", hub.url, timeout=60), b.call("join", hub.url, timeout=60))
    await hub.wait_for_agents(2, timeout=10)

    # B has its own (weak) opinion first.
    await b.call("learn", "deploy", "rolling", 0.2, 3)
    assert (await b.call("best", "deploy", ["rolling", "blue-green"]))[0] == "rolling"
    # A learns a better action and pushes it: sync_now returns once the coordinator ACKed.
    await a.call("learn", "deploy", "blue-green", 0.95, 20)
    await a.call("store", "route via the eastern gateway", EMB_ROUTE)
    await a.call("sync")
    at_hub = hub.intelligence.get_best_action("deploy", ["rolling", "blue-green"])
    assert at_hub is not None
    assert at_hub[0] == "blue-green"
    # B pulls: the swarm's best is now A's action, which B never tried.
    await b.call("sync")
    best = await b.call("best", "deploy", ["rolling", "blue-green"])
    assert best is not None
    assert best[0] == "blue-green"
    hits = await b.call("search", EMB_ROUTE, 1)
    assert [content for content, _ in hits] == ["route via the eastern gateway"]

    # Without any explicit sync, B's background loop picks up what A learns next.
    await a.call("learn", "cache", "lru", 0.9, 5)

    async def b_knows_cache() -> bool:
        got = await b.call("best", "cache", ["lru", "fifo"])
        return got is not None and got[0] == "lru"

    await eventually(b_knows_cache, 15, "B learns A's cache pattern from its sync loop")
    sa, sb = await agent_stats(a), await agent_stats(b)
    assert sa["connected"]
    assert sb["connected"]
    assert sa["pattern_syncs_sent"] >= 2
    assert sb["pattern_syncs_received"] >= 1
    assert sb["memories"] == 1
    stats = hub.stats()
    assert stats.pattern_origins == 2  # agent-a and agent-b
    assert stats.rejected == 0


# -- 2. coordinator killed and restarted -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_coordinator_killed_and_restarted_loses_nothing_acknowledged(
    kind: str, tmp_path: Path, children: Children
) -> None:
    url = listen_url(kind, fixed=True)
    spec = CoordinatorSpec(url, str(tmp_path / "coord"), interval_ms=INTERVAL_MS)
    name = url.removeprefix("shm://") if kind == "shm" else None
    try:
        await _crash_and_restart(url, spec, children)
        await children.close()  # the restarted coordinator stops cleanly...
        if name is not None:
            assert cleanup_shm(name) == []  # ...and leaves no segment or socket behind
    finally:
        await children.close()
        if name is not None:
            cleanup_shm(name)


async def _crash_and_restart(url: str, spec: CoordinatorSpec, children: Children) -> None:
    first = children.coordinator(spec, "coordinator-1")
    second = children.coordinator(spec, "coordinator-2")  # booted now, listens after the kill
    a = children.agent(AgentSpec("agent-a", seed=1))
    b = children.agent(AgentSpec("agent-b", capabilities=("holder",), seed=2))
    late = children.agent(AgentSpec("agent-late", capabilities=("late",), seed=3))
    assert await first.call("start", timeout=60) == url
    await asyncio.gather(a.call("join", url, timeout=60), b.call("join", url, timeout=60))

    # Learned patterns and memories, acknowledged by the coordinator.
    await a.call("learn", "route", "fast", 0.9, 5)
    await a.call("learn", "route", "slow", 0.1, 5)
    await b.call("learn", "cache", "lru", 0.8, 5)
    await a.call("store", "alpha: route through the eastern gateway", EMB_ROUTE)
    await b.call("store", "beta: evict least recently used first", EMB_CACHE)
    await asyncio.gather(a.call("sync"), b.call("sync"))

    # Tasks: three done, two pending (nobody has "late"), one running on B ("holder").
    done = [await a.call("submit", "work") for _ in range(3)]

    async def first_done() -> bool:
        recs = await first.call("tasks")
        return all(recs[t]["state"] == "done" for t in done)

    # (Polled at the coordinator: SwarmAgent.wait_task misses results that arrived before
    # it was called, see test_a_submitter_can_wait_for_a_task_that_already_finished.)
    await eventually(first_done, 20, "the first three tasks are done")
    pending = [await a.call("submit", "work", ["late"]) for _ in range(2)]
    held = await a.call("submit", "hold", ["holder"])
    await b.wait_event("started", (held, "agent-b"))

    before = await first.call("stats")
    assert before["tasks"] == {"pending": 2, "assigned": 1, "done": 3, "failed": 0}
    assert before["memories"] == 2
    assert before["patterns"] >= 3

    await first.kill()

    async def both_noticed() -> bool:
        return not any([(await agent_stats(c))["connected"] for c in (a, b)])

    await eventually(both_noticed, 15, "agents notice the coordinator is gone")
    assert await second.call("start", timeout=60) == url

    # Restored from disk: every acknowledged pattern, memory and task.
    after = await second.call("stats")
    assert after["patterns"] == before["patterns"]
    assert after["pattern_origins"] == before["pattern_origins"]
    assert after["memories"] == 2
    assert after["tasks"]["done"] == 3
    assert after["tasks"]["pending"] == 2
    assert (await second.call("best", "route", ["fast", "slow"]))[0] == "fast"
    assert (await second.call("best", "cache", ["lru", "fifo"]))[0] == "lru"
    assert await second.call("search", EMB_CACHE, 1) == ["beta: evict least recently used first"]
    records = await second.call("tasks")
    assert {records[t]["state"] for t in done} == {"done"}

    # The agents reconnect on their own and keep working.
    async def reconnected() -> bool:
        got = [await agent_stats(c) for c in (a, b)]
        return all(s["connected"] and s["reconnects"] >= 1 for s in got)

    await eventually(reconnected, 20, "agents reconnect to the restarted coordinator")
    await a.call("learn", "route", "scenic", 0.5, 2)
    await a.call("sync")

    # The held task finishes on B; the pending ones run once a "late" agent joins.
    await b.call("release", held)
    await late.call("join", url, timeout=60)
    await late.call("sync")
    assert (await late.call("best", "route", ["fast", "slow", "scenic"]))[0] == "fast"
    assert (await late.call("best", "cache", ["lru", "fifo"]))[0] == "lru"
    hits = await late.call("search", EMB_ROUTE, 2)
    assert hits[0][0] == "alpha: route through the eastern gateway"
    assert {content for content, _ in hits} == {
        "alpha: route through the eastern gateway",
        "beta: evict least recently used first",
    }

    async def all_done() -> bool:
        recs = await second.call("tasks")
        return all(r["state"] == "done" for r in recs.values()) and len(recs) == 6

    await eventually(all_done, 20, "every task done after the restart")
    records = await second.call("tasks")
    assert {t: records[t]["assigned_to"] for t in pending} == dict.fromkeys(pending)
    assert all("done by agent-late" in records[t]["history"] for t in pending)
    # B kept the held task (or, had it been slow to reconnect, got it again and recognised
    # it as already running): it finished there, once.
    assert records[held]["history"][-1] == "done by agent-b"
    # Each task ran exactly once, on the agent expected.
    assert ran_counts(a, b, late) == Counter(dict.fromkeys([*done, *pending, held], 1))
    assert {t for t, _ in late.events_named("ran")} == set(pending)
    assert (held, "agent-b") in b.events_named("ran")
    assert b.events_named("started") == [(held, "agent-b")]


# -- 3. agent killed mid-task --------------------------------------------------------------------


async def test_agent_killed_mid_task_its_task_completes_once_elsewhere(
    hub: Coordinator, children: Children
) -> None:
    a = children.agent(AgentSpec("agent-a", hold_blocks=True, seed=1))
    b = children.agent(AgentSpec("agent-b", hold_blocks=False, seed=2))
    await a.call("join", hub.url, timeout=60)
    await hub.wait_for_agents(1, timeout=10)
    tid = hub.submit_task("hold", {"n": 1}, timeout_ms=60_000)
    await a.wait_event("started", (tid, "agent-a"))
    assert hub.task(tid).assigned_to == "agent-a"
    await b.call("join", hub.url, timeout=60)  # B: booted already, eligible only now
    await hub.wait_for_agents(2, timeout=10)

    await a.kill()
    result = await hub.wait_task(tid, timeout=20)

    assert result.success
    assert result.result == {"by": "agent-b"}
    rec = hub.task(tid)
    assert rec.state is TaskState.DONE
    assert rec.attempts == 2
    assert rec.history[0] == "submitted by coord"
    assert "attempt 1 -> agent-a" in rec.history
    assert any("agent-a" in h and "lost" in h for h in rec.history)
    assert rec.history[-2:] == ["attempt 2 -> agent-b", "done by agent-b"]
    # Started on both, finished on B only, once.
    assert a.events_named("started") == [(tid, "agent-a")]
    assert a.events_named("ran") == []
    assert b.events_named("ran") == [(tid, "agent-b")]
    stats = hub.stats()
    assert stats.agents_lost == 1
    assert stats.tasks_retried == 1
    assert stats.tasks_dispatched == 2
    assert stats.tasks == {"pending": 0, "assigned": 0, "done": 1, "failed": 0}
    assert (await agent_stats(b))["tasks_completed"] == 1


@pytest.mark.slow
async def test_an_agent_restarted_with_its_key_before_it_was_declared_lost_gets_its_task(
    hub: Coordinator, children: Children
) -> None:
    key = b"k" * 32
    first = children.agent(AgentSpec("agent-a", hold_blocks=True, seed=1, key_seed=key))
    again = children.agent(AgentSpec("agent-a", hold_blocks=False, seed=2, key_seed=key))
    await first.call("join", hub.url, timeout=60)
    await hub.wait_for_agents(1, timeout=10)
    tid = hub.submit_task("hold", {"n": 1}, timeout_ms=60_000)
    await first.wait_event("started", (tid, "agent-a"))

    await first.kill()  # the task dies with the process...
    await again.call("join", hub.url, timeout=60)  # ...which comes back at once, same key

    # Whether the coordinator saw a resumed member or a lost one, the task must run again
    # long before its 60 s timeout: the restarted process knows nothing of it.
    with contextlib.suppress(TimeoutError):
        await hub.wait_task(tid, timeout=5)
    rec = hub.task(tid)
    assert rec.state is TaskState.DONE, (
        f"task still {rec.state.value} on {rec.assigned_to} after the agent came back "
        f"(history {rec.history}; agents lost: {hub.stats().agents_lost})"
    )
    assert rec.result is not None
    result = rec.result
    assert result.success
    assert again.events_named("ran") == [(tid, "agent-a")]


# -- submitter's view of a finished task -----------------------------------------------------


async def test_a_submitter_can_wait_for_a_task_that_already_finished(
    hub: Coordinator, children: Children
) -> None:
    a = children.agent(AgentSpec("agent-a", seed=1))
    await a.call("join", hub.url, timeout=60)
    tid = await a.call("submit", "work")
    assert (await hub.wait_task(tid, timeout=20)).success
    # The coordinator queued the TASK_RESULT for A before this sync's answer, on one ordered
    # link: once sync_now returns, A holds the result before anyone waits for it.
    await a.call("sync")
    try:
        got = await a.call("wait_task", tid, 3.0)
    except ChildError as exc:
        pytest.fail(f"wait_task({tid}) after the result arrived: {exc}")
    assert got == {"success": True, "result": {"by": "agent-a"}, "error": None}
