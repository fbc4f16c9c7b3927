"""Coordinator + SwarmAgent in one process: sync, warm start, tasks, roles, messages,
persistence and leader failover (real transports: inproc and WebSocket on loopback)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _waiting import eventually
from ruvector_edge import SwarmConfig
from ruvector_edge.config import AgentRole
from ruvector_edge.swarm import (
    Coordinator,
    SwarmAgent,
    TaskContext,
    TaskOutcome,
    TaskState,
    alloc_state,
    task_state,
)
from ruvector_edge.wire import SwarmMessage

FAST: dict[str, Any] = {"sync_interval_ms": 50, "heartbeat_interval_ms": 100}
_names = itertools.count()
AgentFactory = Callable[..., Awaitable[SwarmAgent]]


def _url(scheme: str) -> str:
    return "ws://127.0.0.1:0" if scheme == "ws" else f"inproc://rt-{next(_names)}"


@pytest.fixture(params=["inproc", "ws"])
async def coordinator(request: pytest.FixtureRequest) -> AsyncIterator[Coordinator]:
    cfg = SwarmConfig(agent_id="hub", join_token="secret", **FAST)
    async with Coordinator(cfg, listen=_url(request.param)) as hub:
        yield hub


@pytest.fixture
async def make_agent(coordinator: Coordinator) -> AsyncIterator[AgentFactory]:
    made: list[SwarmAgent] = []

    async def make(
        agent_id: str,
        role: AgentRole = AgentRole.WORKER,
        capabilities: tuple[str, ...] = (),
        handlers: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SwarmAgent:
        cfg = SwarmConfig(agent_id=agent_id, agent_role=role, join_token="secret", **FAST)
        agent = SwarmAgent(cfg, capabilities=capabilities, handlers=handlers, seed=1, **kwargs)
        await agent.join_swarm(coordinator.url, timeout=10)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        await agent.leave_swarm()


async def _solve(ctx: TaskContext) -> TaskOutcome:
    action = ctx.choose(["good", "bad"])
    return TaskOutcome(
        True, {"echo": ctx.task.parameters}, 1.0 if action == "good" else 0.0, action
    )


async def test_pattern_learned_on_one_agent_is_used_by_another(make_agent: AgentFactory) -> None:
    a, b = await make_agent("a"), await make_agent("b")
    assert b.get_best_action("edit_rs", ["rust-dev", "py-dev"]) is None
    a.learn("edit_rs", "rust-dev", 0.95)
    a.learn("edit_rs", "py-dev", 0.2)
    await a.sync_now()
    await b.sync_now()
    best = b.get_best_action("edit_rs", ["rust-dev", "py-dev"])
    assert best is not None
    assert best[0] == "rust-dev"
    # b holds a's entries, not copies under its own name: it never re-sends them.
    assert {e.origin for e in b.intelligence.entries()} == {"a"}


async def test_memories_sync_and_new_agents_warm_start(
    coordinator: Coordinator, make_agent: AgentFactory
) -> None:
    a = await make_agent("a")
    a.learn("review", "careful", 0.9)
    vec = np.array([0.1, 0.9, 0.2, 0.0], dtype=np.float32)
    a.store_memory("auth flow uses signed JWTs", vec, {"topic": "auth"})
    await a.sync_now()
    assert coordinator.memory.stats().entries == 1
    late = await make_agent("late")  # join_swarm waits for the warm start
    await late.sync_now()
    assert late.get_best_action("review", ["careful", "fast"]) is not None
    hits = late.search_memory(vec, 1)
    assert hits
    assert hits[0][0] == "auth flow uses signed JWTs"


async def test_tasks_run_learn_and_feed_the_allocator(
    coordinator: Coordinator, make_agent: AgentFactory
) -> None:
    workers = [await make_agent(f"w{i}", handlers={"fix": _solve}) for i in range(2)]
    ids = [coordinator.submit_task("fix", {"n": i}) for i in range(30)]
    results = [await coordinator.wait_task(t, timeout=10) for t in ids]
    assert all(r.success for r in results)
    assert results[0].result == {"echo": {"n": 0}}
    assert sum(w.get_stats().tasks_completed for w in workers) == 30
    for w in workers:
        await w.sync_now()
    # Agents learned which approach works; the coordinator learned who performs.
    merged = coordinator.intelligence.get_pattern(task_state("fix"), "good")
    assert merged is not None
    assert merged.value == 1.0
    assert coordinator.intelligence.get_pattern(alloc_state("fix"), "role:worker") is not None
    assert coordinator.tasks.counts()["done"] == 30


async def test_an_agent_can_submit_and_get_the_result(make_agent: AgentFactory) -> None:
    await make_agent("w", handlers={"*": _solve})
    client = await make_agent("client", role=AgentRole.COORDINATOR)
    task_id = await client.submit_task("anything", {"x": 1})
    result = await client.wait_task(task_id, timeout=10)
    assert result.success
    assert result.result == {"echo": {"x": 1}}


async def test_specialists_only_get_matching_tasks_and_scouts_file_context(
    coordinator: Coordinator, make_agent: AgentFactory
) -> None:
    spec = await make_agent(
        "spec", AgentRole.SPECIALIST, capabilities=("rust",), handlers={"*": _solve}
    )
    scout = await make_agent("scout", AgentRole.SCOUT, handlers={"*": _solve})
    general = [coordinator.submit_task("docs") for _ in range(8)]
    rusty = [coordinator.submit_task("port", required_capabilities=["rust"]) for _ in range(8)]
    for t in general + rusty:
        assert (await coordinator.wait_task(t, timeout=10)).success
    assert {coordinator.task(t).history[1].split("-> ")[1] for t in general} == {"scout"}
    assert "spec" in {coordinator.task(t).history[1].split("-> ")[1] for t in rusty}
    assert scout.exploration > spec.exploration
    notes = scout.memory.stats().entries
    assert notes >= 8  # one context memory per task the scout ran


async def test_direct_and_broadcast_messages(make_agent: AgentFactory) -> None:
    a, b, c = await make_agent("a"), await make_agent("b"), await make_agent("c")
    got: dict[str, list[Any]] = {"b": [], "c": []}
    done = asyncio.Event()

    def on_b(msg: SwarmMessage) -> None:
        got["b"].append((msg.sender, msg.payload))
        if len(got["b"]) == 2 and got["c"]:
            done.set()

    def on_c(msg: SwarmMessage) -> None:
        got["c"].append(msg.sender)
        if len(got["b"]) == 2:
            done.set()

    b.on_message("*", on_b)
    c.on_message("news", on_c)
    await a.send_message("b", "hello", {"x": 1})
    await a.broadcast("news", "all")
    await asyncio.wait_for(done.wait(), 5)
    assert [s for s, _ in got["b"]] == ["a", "a"]
    assert got["c"] == ["a"]
    peers = await a.refresh_peers()
    assert {p.agent_id for p in peers} == {"a", "b", "c"}
    assert a.get_peers() == peers


async def test_leave_requeues_running_tasks_to_another_agent(
    coordinator: Coordinator, make_agent: AgentFactory
) -> None:
    started = asyncio.Event()

    async def stuck(ctx: TaskContext) -> TaskOutcome:
        started.set()
        await asyncio.sleep(3600)
        return TaskOutcome()

    quitter = await make_agent("quitter", handlers={"job": stuck})
    tid = coordinator.submit_task("job")
    await asyncio.wait_for(started.wait(), 5)
    await make_agent("steady", handlers={"job": _solve})
    await quitter.leave_swarm()
    result = await coordinator.wait_task(tid, timeout=10)
    rec = coordinator.task(tid)
    assert result.success
    assert rec.attempts == 2
    assert rec.state is TaskState.DONE
    assert "quitter" not in {p.agent_id for p in coordinator.roster()}


async def test_restart_with_data_dir_keeps_patterns_memories_and_tasks(tmp_path: Path) -> None:
    cfg = SwarmConfig(agent_id="hub", join_token="t", data_dir=tmp_path, **FAST)
    url = f"inproc://persist-{next(_names)}"
    async with Coordinator(cfg, listen=url) as hub:
        agent = SwarmAgent(SwarmConfig(agent_id="a", join_token="t", **FAST))
        await agent.join_swarm(hub.url)
        agent.learn("s", "x", 0.7)
        agent.store_memory("kept", [1.0, 0.0, 0.0])
        await agent.sync_now()
        waiting = hub.submit_task("nobody-handles-this-yet")
        await agent.leave_swarm()
    async with Coordinator(cfg, listen=url) as again:
        assert again.intelligence.get_pattern("s", "x") is not None
        assert again.memory.stats().entries == 1
        assert again.task(waiting).state is TaskState.PENDING
        worker = SwarmAgent(
            SwarmConfig(agent_id="w", join_token="t", **FAST), handlers={"*": _solve}
        )
        await worker.join_swarm(again.url)
        assert (await again.wait_task(waiting, timeout=10)).success
        await worker.leave_swarm()


def _has_pattern(hub: Coordinator) -> Callable[[], bool]:
    return lambda: hub.intelligence.get_pattern("s", "x") is not None


async def test_coordinators_elect_a_leader_and_agents_fail_over() -> None:
    urls = [f"inproc://elect-{next(_names)}" for _ in range(3)]
    hubs = [
        await Coordinator(
            SwarmConfig(agent_id=f"c{i}", join_token="t", **FAST), listen=u, peers=urls
        ).start()
        for i, u in enumerate(urls)
    ]
    agent = SwarmAgent(SwarmConfig(agent_id="w", join_token="t", **FAST), handlers={"*": _solve})
    try:

        def leaders() -> list[Coordinator]:
            return [h for h in hubs if not h._stopping and h.is_leader]

        await hubs[0].wait_until(lambda: len(leaders()) == 1, timeout=10)
        leader = leaders()[0]
        follower = next(h for h in hubs if h is not leader)
        await agent.join_swarm(follower.url)
        await leader.wait_until(lambda: leader.connected_agents() == 1, timeout=10)
        agent.learn("s", "x", 1.0)
        await agent.sync_now()
        # State converges across coordinators through the CRDT merge.
        for hub in hubs:
            await hub.wait_until(_has_pattern(hub), 10)
        with pytest.raises(Exception, match="not the leader"):
            follower.submit_task("job")
        await leader.stop()
        survivors = [h for h in hubs if h is not leader]
        await survivors[0].wait_until(lambda: len(leaders()) == 1, timeout=15)
        new = leaders()[0]
        assert new.stats().term > 0
        assert new is not leader
        await new.wait_until(lambda: new.connected_agents() == 1, timeout=15)
        assert (await new.wait_task(new.submit_task("job"), timeout=10)).success
    finally:
        await agent.leave_swarm()
        for hub in hubs:
            await hub.stop()


async def test_finished_tasks_are_bounded_without_a_data_dir() -> None:
    cfg = SwarmConfig(agent_id="hub", join_token="t", **FAST)
    url = f"inproc://retain-{next(_names)}"
    async with Coordinator(cfg, listen=url, finished_task_retention=5) as hub:
        worker = SwarmAgent(
            SwarmConfig(agent_id="w", join_token="t", **FAST), handlers={"*": _solve}
        )
        await worker.join_swarm(hub.url)
        ids = [hub.submit_task("job") for _ in range(12)]
        for t in ids:
            assert (await hub.wait_task(t, timeout=10)).success
        await hub.wait_until(lambda: len(hub.tasks) <= 5, timeout=10)
        assert ids[-1] in hub.tasks
        await worker.leave_swarm()


async def test_task_queue_survives_the_leader_through_replication() -> None:
    """Queued and running tasks live on in the followers' replicas: after the leader
    stops, the new leader runs every pending task and accepts the running one's result,
    each task exactly once."""
    urls = [f"inproc://repl-{next(_names)}" for _ in range(3)]
    hubs = [
        await Coordinator(
            SwarmConfig(agent_id=f"r{i}", join_token="t", **FAST),
            listen=u,
            peers=urls,
            max_tasks_per_agent=1,
        ).start()
        for i, u in enumerate(urls)
    ]
    release = asyncio.Event()
    started = asyncio.Event()
    runs: dict[str, int] = {}

    async def slow(ctx: TaskContext) -> TaskOutcome:
        runs[ctx.task.task_id] = runs.get(ctx.task.task_id, 0) + 1
        started.set()
        if ctx.task.parameters.get("block"):
            await release.wait()
        return TaskOutcome(True, {"n": ctx.task.parameters["n"]}, 1.0, "a")

    agent = SwarmAgent(SwarmConfig(agent_id="w", join_token="t", **FAST), handlers={"*": slow})

    def leaders() -> list[Coordinator]:
        return [h for h in hubs if not h._stopping and h.is_leader]

    try:
        await hubs[0].wait_until(lambda: len(leaders()) == 1, timeout=10)
        leader = leaders()[0]
        await agent.join_swarm(leader.url)
        first = leader.submit_task("job", {"n": 0, "block": True})
        await asyncio.wait_for(started.wait(), 10)
        queued = [leader.submit_task("job", {"n": n}) for n in range(1, 6)]
        ids = [first, *queued]
        followers = [h for h in hubs if h is not leader]
        for hub in followers:

            def replicated(h: Coordinator = hub) -> bool:
                return all(t in h.tasks for t in ids)

            await hub.wait_until(replicated, timeout=10)
            assert hub.task(first).state is TaskState.ASSIGNED
            assert hub.task(first).assigned_to == "w"
            assert all(hub.task(t).state is TaskState.PENDING for t in queued)
        await leader.stop()
        await followers[0].wait_until(lambda: len(leaders()) == 1, timeout=15)
        new = leaders()[0]
        await new.wait_until(lambda: new.connected_agents() == 1, timeout=15)
        release.set()
        results = [await new.wait_task(t, timeout=15) for t in ids]
        assert [r.result["n"] for r in results] == list(range(6))
        assert all(r.success for r in results)
        assert runs == dict.fromkeys(ids, 1)
        assert new.stats().tasks_replicated_in >= len(ids)
    finally:
        release.set()
        await agent.leave_swarm()
        for hub in hubs:
            await hub.stop()


async def test_changes_are_pushed_to_subscribed_agents_without_pulls(
    coordinator: Coordinator, make_agent: AgentFactory
) -> None:
    a, b = await make_agent("a"), await make_agent("b")
    # Each agent pulls once on its link (warm start + subscription), then only gets pushes.
    await eventually(lambda: coordinator.stats().pulls >= 2)
    await eventually(lambda: coordinator.patterns_delivered(["a", "b"]))
    pulls = coordinator.stats().pulls
    a.learn("edit_rs", "rust-dev", 0.95)
    a.store_memory("auth flow", [0.1, 0.2, 0.3, 0.4])
    await eventually(lambda: b.get_best_action("edit_rs", ["rust-dev"]) is not None)
    await eventually(lambda: len(b.search_memory([0.1, 0.2, 0.3, 0.4], 1)) == 1)
    await eventually(lambda: coordinator.patterns_delivered(["a", "b"]))
    stats = coordinator.stats()
    assert stats.pulls == pulls  # nobody asked: the coordinator pushed
    assert stats.pushes >= 2  # one pattern delta, one memory delta
    # Delivered to both agents is not yet "pushed to every slot": the sample closes then.
    await eventually(lambda: coordinator.propagation_pending == 0)
    assert coordinator.latency_summary()["propagation_samples"]


async def test_an_agent_that_missed_pushes_gets_a_catch_up_delta(
    coordinator: Coordinator, make_agent: AgentFactory
) -> None:
    a, b = await make_agent("a"), await make_agent("b")
    await eventually(lambda: coordinator.patterns_delivered(["a", "b"]))
    a.learn("s1", "x", 1.0)
    await eventually(lambda: b.get_best_action("s1", ["x"]) is not None)
    # As if b's pushes since its first tick had been dropped on a full send queue.
    member = coordinator.members["b"]
    oldest = min(coordinator._push_history)
    member.patterns_tick = oldest
    b.intelligence = type(b.intelligence)("b")  # b forgets what it was pushed
    catch_ups = coordinator.stats().catch_ups
    a.learn("s2", "x", 1.0)
    await eventually(lambda: b.get_best_action("s2", ["x"]) is not None)
    # The catch-up covers everything since b's tick, including s1 pushed long ago.
    assert b.get_best_action("s1", ["x"]) is not None
    assert coordinator.stats().catch_ups > catch_ups


async def test_federated_exports_travel_signed_and_are_aggregated() -> None:
    from ruvector_edge.errors import EdgeError
    from ruvector_edge.sona import EphemeralAgent, FederatedCoordinator, encode_export

    dim = 16
    fed = FederatedCoordinator.default_coordinator("hub", dim)
    fed.set_quality_threshold(0.3)
    cfg = SwarmConfig(agent_id="hub", join_token="t", **FAST)
    url = f"inproc://fed-{next(_names)}"
    rng = np.random.default_rng(0)
    async with Coordinator(cfg, listen=url, federated=fed) as hub:
        a = SwarmAgent(SwarmConfig(agent_id="a", join_token="t", **FAST))
        b = SwarmAgent(SwarmConfig(agent_id="b", join_token="t", **FAST))
        await a.join_swarm(hub.url)
        await b.join_swarm(hub.url)
        try:
            learners = {n: EphemeralAgent.default_federated(n, dim) for n in ("a", "b")}
            for learner in learners.values():
                for q in (0.9, 0.8, 0.1):  # the 0.1 trajectory is below the threshold
                    learner.process_trajectory(rng.normal(size=dim), rng.normal(size=dim), q)
            detail = await a.send_export(learners["a"].export_state())
            assert "accepted=2 rejected=1" in detail
            await b.send_export(learners["b"].export_state())
            assert fed.stats().total_agents == 2
            assert set(fed.contributions()) == {"a", "b"}
            assert hub.stats().exports_aggregated == 2

            # b's export signed by b but handed in by a: refused, nothing aggregated.
            forged = encode_export(learners["b"].export_state(), b.identity)
            msg = SwarmMessage.directed("a", "hub", forged)
            with pytest.raises(EdgeError) as err:
                await a._acknowledged(a._require_conn(), msg, 10)
            assert err.value.code == "auth_error"
            assert hub.stats().exports_aggregated == 2
            # An agent cannot sign another agent's export at all.
            with pytest.raises(EdgeError):
                await a.send_export(learners["b"].export_state())
        finally:
            await a.leave_swarm()
            await b.leave_swarm()


async def test_exports_to_a_coordinator_without_federated_learning_are_refused(
    make_agent: AgentFactory,
) -> None:
    from ruvector_edge.errors import EdgeError
    from ruvector_edge.sona import EphemeralAgent

    a = await make_agent("a")
    learner = EphemeralAgent.default_federated("a", 8)
    learner.process_trajectory(np.ones(8), np.ones(8), 0.9)
    with pytest.raises(EdgeError) as err:
        await a.send_export(learner.export_state())
    assert err.value.code == "unsupported"
    # The link survives the refusal.
    a.learn("s", "x", 1.0)
    await a.sync_now()


async def test_acknowledged_exports_survive_a_coordinator_restart(tmp_path: Path) -> None:
    from ruvector_edge.sona import EphemeralAgent, FederatedCoordinator

    cfg = SwarmConfig(agent_id="hub", join_token="t", data_dir=tmp_path, **FAST)
    url = f"inproc://fedpersist-{next(_names)}"
    learner = EphemeralAgent.default_federated("a", 8)
    learner.process_trajectory(np.ones(8), np.ones(8), 0.9)
    async with Coordinator(
        cfg, listen=url, federated=FederatedCoordinator.default_coordinator("hub", 8)
    ) as hub:
        agent = SwarmAgent(SwarmConfig(agent_id="a", join_token="t", **FAST))
        await agent.join_swarm(hub.url)
        await agent.send_export(learner.export_state())
        await agent.leave_swarm()
    fresh = FederatedCoordinator.default_coordinator("hub", 8)
    async with Coordinator(cfg, listen=url, federated=fresh):
        assert fresh.stats().total_agents == 1
        assert set(fresh.contributions()) == {"a"}


async def test_a_stalled_coordinator_loop_does_not_declare_its_agents_failed() -> None:
    import time as _time

    cfg = SwarmConfig(agent_id="hub", join_token="t", **FAST)
    url = f"inproc://stall-{next(_names)}"
    async with Coordinator(cfg, listen=url) as hub:
        agent = SwarmAgent(SwarmConfig(agent_id="a", join_token="t", **FAST))
        await agent.join_swarm(hub.url)
        try:
            await eventually(lambda: hub.connected_agents() == 1)
            # Block the whole event loop for ten heartbeat intervals (a starved process).
            _time.sleep(10 * hub.heartbeat)
            for _ in range(5):  # let maintenance run a few rounds after the stall
                await asyncio.sleep(hub.heartbeat / 2)
            assert hub.stats().agents_lost == 0
            assert hub.connected_agents() == 1
            assert agent.get_stats().reconnects == 0
        finally:
            await agent.leave_swarm()


async def test_request_patterns_honours_max_entries_with_whole_origins() -> None:
    from ruvector_edge.identity import Identity
    from ruvector_edge.learning import IntelligenceSync, inspect_pattern_blob
    from ruvector_edge.transport import connect
    from ruvector_edge.wire import SyncPatternsPayload

    cfg = SwarmConfig(agent_id="hub", join_token="t", **FAST)
    async with Coordinator(cfg, listen=f"inproc://cap-{next(_names)}") as hub:
        for origin in ("o1", "o2", "o3"):  # three origins, three entries each
            peer = IntelligenceSync(origin)
            for action in ("x", "y", "z"):
                peer.update_pattern("s", action, 1.0)
            hub.intelligence.merge_peer_state(origin, peer.serialize_state())
        conn = await connect(hub.url, Identity.generate("probe"), join_token="t")
        try:
            mirror = IntelligenceSync("probe")
            carried = []
            for _ in range(3):
                await conn.send(
                    SwarmMessage.request_patterns(
                        "probe", "hub", max_entries=4, version_vector=mirror.version_vector()
                    )
                )
                reply = await conn.recv(timeout=5)
                assert isinstance(reply.payload, SyncPatternsPayload)
                info = inspect_pattern_blob(reply.payload.data)
                assert info.entry_count == 3  # one whole origin fits under 4, two do not
                carried.append(set(info.version_vector))
                mirror.merge_peer_state("hub", reply.payload.data)
            assert set().union(*carried) == {"o1", "o2", "o3"}
            assert mirror.entries() == hub.intelligence.entries()
        finally:
            await conn.close()
