"""Bad input against a live coordinator: refused joins, forged senders, tampered and replayed
frames, malformed payloads, and a flood of junk from one client.

The coordinator listens on ``ws://127.0.0.1:0`` in this process; honest agents are real
``SwarmAgent`` clients, the attacker is either an admitted ``Connection`` (it can send any
well-formed message) or a bare WebSocket speaking the protocol by hand (it can send any
bytes). Every fault must be refused with an ERROR or a counted reject, and the coordinator
must keep serving honest agents throughout.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from _swarm_procs import (
    TOKEN,
    Child,
    Children,
    FlooderSpec,
    pong_nonces,
    raw_join,
    read_raw,
    tampered,
)

from ruvector_edge.config import AgentRole, SwarmConfig
from ruvector_edge.errors import AuthError
from ruvector_edge.identity import Identity
from ruvector_edge.learning import IntelligenceSync
from ruvector_edge.memory import VectorMemory
from ruvector_edge.swarm import Coordinator, ErrorCode, SwarmAgent, TaskContext, TaskOutcome
from ruvector_edge.transport import Connection, connect
from ruvector_edge.wire import (
    ErrorPayload,
    MessageType,
    PongPayload,
    SwarmMessage,
    SyncMemoriesPayload,
)

INTERVAL_MS = 200
EMB = [0.3, 0.1, 0.9, 0.0, 0.2, 0.0, 0.0, 0.4]
FLOOD = 10_000
_ids = itertools.count()


def coordinator_config(max_agents: int = 8) -> SwarmConfig:
    return SwarmConfig(
        agent_id="coord",
        agent_role=AgentRole.COORDINATOR,
        sync_interval_ms=INTERVAL_MS,
        heartbeat_interval_ms=INTERVAL_MS,
        join_token=TOKEN,
        max_agents=max_agents,
    )


class Agents:
    """Honest in-process agents made by a test; all leave at teardown."""

    def __init__(self) -> None:
        self.made: list[SwarmAgent] = []

    def make(
        self,
        agent_id: str,
        *,
        token: str | None = TOKEN,
        identity: Identity | None = None,
        capabilities: tuple[str, ...] = (),
    ) -> SwarmAgent:
        config = SwarmConfig(
            agent_id=agent_id,
            sync_interval_ms=INTERVAL_MS,
            heartbeat_interval_ms=INTERVAL_MS,
            join_token=token,
        )
        agent = SwarmAgent(
            config, identity=identity, capabilities=capabilities, handlers={"work": _work}
        )
        self.made.append(agent)
        return agent

    async def close(self) -> None:
        await asyncio.gather(*(a.leave_swarm() for a in self.made), return_exceptions=True)


async def _work(ctx: TaskContext) -> TaskOutcome:
    return TaskOutcome(result={"by": ctx.agent.agent_id, "n": ctx.task.parameters.get("n")})


@pytest.fixture
async def coord() -> AsyncIterator[Coordinator]:
    coordinator = await Coordinator(coordinator_config(), listen="ws://127.0.0.1:0").start()
    try:
        yield coordinator
    finally:
        await coordinator.stop()


@pytest.fixture
async def agents() -> AsyncIterator[Agents]:
    made = Agents()
    try:
        yield made
    finally:
        await made.close()


async def still_serves(coord: Coordinator, agents: Agents) -> None:
    """A fresh honest agent joins, learns, syncs (ACKed) and gets a task done."""
    name = f"honest-{next(_ids)}"
    agent = agents.make(name, capabilities=(name,))
    await agent.join_swarm(coord.url, timeout=10)
    agent.learn("health", name, 0.75)
    await agent.sync_now(timeout=10)
    best = coord.intelligence.get_best_action("health", [name])
    assert best is not None
    assert best[0] == name
    tid = await agent.submit_task("work", {"n": 1}, required_capabilities=[name])
    result = await coord.wait_task(tid, timeout=10)
    assert result.success
    assert result.result == {"by": name, "n": 1}


async def admitted(coord: Coordinator, agent_id: str) -> Connection:
    """An admitted client link under ``agent_id`` (it may send any well-formed message)."""
    conn = await connect(coord.url, Identity.generate(agent_id), join_token=TOKEN)
    await coord.wait_until(lambda: agent_id in coord.members, timeout=10)
    return conn


async def recv_error(conn: Connection) -> ErrorPayload:
    msg = await conn.recv(timeout=10)
    assert msg.type is MessageType.ERROR, msg
    assert isinstance(msg.payload, ErrorPayload)
    return msg.payload


async def ping_pong(conn: Connection, nonce: int) -> None:
    await conn.send(SwarmMessage.ping(conn.identity.agent_id, nonce=nonce))
    reply = await conn.recv(timeout=10)
    assert isinstance(reply.payload, PongPayload)
    assert reply.payload.nonce == nonce


# -- admission -------------------------------------------------------------------------------


async def test_wrong_or_missing_join_token_is_refused_and_counted(
    coord: Coordinator, agents: Agents
) -> None:
    intruder = agents.make("intruder", token="not-the-swarm-token")
    with pytest.raises(AuthError) as wrong:
        await intruder.join_swarm(coord.url, timeout=10)
    assert wrong.value.code == "bad_token"
    anonymous = agents.make("anonymous", token=None)
    with pytest.raises(AuthError) as missing:
        await anonymous.join_swarm(coord.url, timeout=10)
    assert missing.value.code == "no_token"

    assert not intruder.connected
    assert not anonymous.connected
    stats = coord.stats()
    assert stats.rejected_by_code == {"bad_token": 1, "no_token": 1}
    assert stats.agents_known == 0
    listener = coord.listener
    assert listener is not None
    # Each refusal is counted once the listener closed that link: a JOIN is not retried.
    await coord.wait_until(lambda: listener.stats.handshake_failures >= 2, timeout=10)
    assert listener.stats.handshake_failures == 2
    await still_serves(coord, agents)


async def test_an_id_owned_by_another_key_is_refused(coord: Coordinator, agents: Agents) -> None:
    owner = agents.make("twin")
    await owner.join_swarm(coord.url, timeout=10)
    impostor = agents.make("twin")  # same id, a key of its own
    with pytest.raises(AuthError) as taken:
        await impostor.join_swarm(coord.url, timeout=10)
    assert taken.value.code == "id_taken"
    assert coord.stats().rejected_by_code == {"id_taken": 1}
    # The owner was not disturbed.
    assert owner.connected
    owner.learn("twin-state", "mine", 0.9)
    await owner.sync_now(timeout=10)
    assert coord.intelligence.version_vector().get("twin") == 1
    # The binding outlives the owner's session: still refused after it left...
    await owner.leave_swarm()
    await coord.wait_until(lambda: coord.connected_agents() == 0, timeout=10)
    with pytest.raises(AuthError) as again:
        await impostor.join_swarm(coord.url, timeout=10)
    assert again.value.code == "id_taken"
    # ...while the owner's key is welcome back.
    back = agents.make("twin", identity=owner.identity)
    await back.join_swarm(coord.url, timeout=10)
    assert back.connected
    assert coord.stats().rejected_by_code == {"id_taken": 2}


async def test_joins_beyond_max_agents_are_refused_with_swarm_full(agents: Agents) -> None:
    coordinator = await Coordinator(
        coordinator_config(max_agents=2), listen="ws://127.0.0.1:0"
    ).start()
    try:
        first, second, third = (agents.make(n) for n in ("first", "second", "third"))
        await first.join_swarm(coordinator.url, timeout=10)
        await second.join_swarm(coordinator.url, timeout=10)
        with pytest.raises(AuthError) as full:
            await third.join_swarm(coordinator.url, timeout=10)
        assert full.value.code == ErrorCode.SWARM_FULL
        assert coordinator.stats().rejected_by_code == {ErrorCode.SWARM_FULL: 1}
        assert coordinator.connected_agents() == 2
        first.learn("capacity", "ok", 0.5)
        await first.sync_now(timeout=10)
        # A seat frees up when a member leaves.
        await second.leave_swarm()
        await coordinator.wait_until(lambda: coordinator.connected_agents() == 1, timeout=10)
        await third.join_swarm(coordinator.url, timeout=10)
        assert third.connected
        await third.sync_now(timeout=10)
        assert third.get_best_action("capacity", ["ok"]) is not None
    finally:
        await agents.close()
        await coordinator.stop()


# -- an admitted client misbehaving ----------------------------------------------------------


async def test_forged_sender_is_refused_and_nothing_is_merged(
    coord: Coordinator, agents: Agents
) -> None:
    victim = agents.make("victim")
    await victim.join_swarm(coord.url, timeout=10)
    mallory = await admitted(coord, "mallory")
    fake = IntelligenceSync("victim")
    fake.update_pattern("payments", "send-to-mallory", 1.0)
    forged = [
        SwarmMessage.sync_patterns("victim", fake.get_own_delta(0), version=1),
        SwarmMessage.new(
            "victim", SyncMemoriesPayload(data=b"\x00" * 64, version=1, origin="victim")
        ),
        SwarmMessage.broadcast_task("victim", "forged-task", "work"),
        SwarmMessage.task_result("victim", "coord", "forged-task", True),
        SwarmMessage.leave("victim", "forged goodbye"),
    ]
    for msg in forged:
        await mallory.send(msg)
    errors = [await recv_error(mallory) for _ in forged]

    assert [(e.code, e.ref_id) for e in errors] == [
        (ErrorCode.FORGED_SENDER, msg.id) for msg in forged
    ]
    stats = coord.stats()
    assert stats.rejected_by_code == {ErrorCode.FORGED_SENDER: len(forged)}
    assert coord.intelligence.get_best_action("payments", ["send-to-mallory"]) is None
    assert "forged-task" not in coord.tasks
    assert stats.memories == 0
    assert victim.connected  # the forged LEAVE did not evict it
    assert coord.members["victim"].connected
    victim.learn("payments", "send-to-vendor", 0.8)
    await victim.sync_now(timeout=10)
    best = coord.intelligence.get_best_action("payments", ["send-to-mallory", "send-to-vendor"])
    assert best is not None
    assert best[0] == "send-to-vendor"
    await ping_pong(mallory, 5)  # mallory's own, honest messages are still answered
    await mallory.close()


async def test_malformed_payloads_get_an_error_and_the_coordinator_keeps_serving(
    coord: Coordinator, agents: Agents
) -> None:
    mallory = await admitted(coord, "mallory")
    other = IntelligenceSync("other")
    other.update_pattern("route", "other-way", 1.0)
    mixed = IntelligenceSync("mallory")  # mallory's blob, carrying "other"'s entries too
    mixed.update_pattern("route", "mallory-way", 0.5)
    mixed.merge_peer_state("other", other.serialize_state())
    others_memory = VectorMemory("other", 16)
    others_memory.store("not mallory's to share", EMB)
    cases: list[tuple[SwarmMessage, str]] = [
        (SwarmMessage.sync_patterns("mallory", b"\x00garbage" * 8, version=1), "codec_error"),
        (SwarmMessage.sync_patterns("mallory", other.get_own_delta(0), version=1), "sync_error"),
        (
            SwarmMessage.sync_patterns("mallory", mixed.serialize_state(), version=2),
            "foreign_origin",
        ),
        (
            SwarmMessage.new("mallory", SyncMemoriesPayload(data=b"junk" * 16, version=1)),
            "sync_error",
        ),
        (
            SwarmMessage.new(
                "mallory",
                SyncMemoriesPayload(data=others_memory.export_delta(0).data, version=1),
            ),
            "foreign_origin",
        ),
        (SwarmMessage.election("mallory", term=7), ErrorCode.UNSUPPORTED),
    ]
    for msg, code in cases:
        await mallory.send(msg)
        error = await recv_error(mallory)
        assert (error.code, error.ref_id) == (code, msg.id), error.message
    others_memory.close()

    stats = coord.stats()
    assert stats.rejected_by_code == dict(Counter(code for _, code in cases))
    assert stats.patterns == 0  # nothing of any of it was merged
    assert stats.pattern_origins == 0
    assert stats.memories == 0
    assert mallory.is_open
    await ping_pong(mallory, 9)
    await still_serves(coord, agents)
    await mallory.close()


# -- raw frames ------------------------------------------------------------------------------


async def test_replayed_and_tampered_frames_are_counted_and_the_link_survives(
    coord: Coordinator, agents: Agents
) -> None:
    ws, codec = await raw_join(coord.url, "tamperer")
    await coord.wait_until(lambda: "tamperer" in coord.members, timeout=10)
    await ws.send(tampered(codec, SwarmMessage.ping("tamperer", nonce=1)))
    replayed = codec.encode(SwarmMessage.ping("tamperer", nonce=2))
    await ws.send(replayed)
    await ws.send(replayed)
    await ws.send(codec.encode(SwarmMessage.ping("tamperer", nonce=3)))
    got = await read_raw(ws, codec, lambda ms: 3 in pong_nonces(ms))

    assert pong_nonces(got) == [2, 3]  # the tampered one and the replay never got through
    assert coord.stats().rejected_by_code == {"auth_error": 1, "replay": 1}
    assert coord.members["tamperer"].connected  # rejected frames do not end the link
    await still_serves(coord, agents)
    await ws.close()


@pytest.mark.parametrize("junk", ["frames", "messages"])
async def test_a_flood_of_junk_from_one_client_process_does_not_stop_the_swarm(
    coord: Coordinator, agents: Agents, junk: str
) -> None:
    children = Children()
    try:
        flooder = children.flooder(FlooderSpec("flooder"))
        steady = agents.make("steady", capabilities=("steady",))
        await steady.join_swarm(coord.url, timeout=10)
        if junk == "frames":
            await flooder.call("join_raw", coord.url, timeout=60)
        else:
            await flooder.call("join_link", coord.url, timeout=60)
        await coord.wait_until(lambda: "flooder" in coord.members, timeout=10)
        flooding = asyncio.Event()
        flooding.set()
        rounds: list[str] = []

        async def keep_working() -> None:
            """Learn, sync (ACKed) and finish a task, over and over, while the flood runs."""
            for i in itertools.count():
                steady.learn("flood", f"action-{i % 3}", 0.5)
                await steady.sync_now(timeout=15)
                tid = await steady.submit_task("work", {"n": i}, required_capabilities=["steady"])
                result = await coord.wait_task(tid, timeout=15)
                assert result.success
                rounds.append(tid)
                if not flooding.is_set():
                    return

        worker = asyncio.ensure_future(keep_working())
        try:
            if junk == "frames":
                await _flood_frames(coord, flooder)
            else:
                await _flood_messages(coord, flooder)
        finally:
            flooding.clear()
            await asyncio.wait_for(worker, 30)
        assert len(rounds) >= 1
        assert coord.members["steady"].connected
        # After the flood: the honest agent still syncs and gets its task done.
        steady.learn("flood", "after", 0.9)
        await steady.sync_now(timeout=10)
        assert coord.intelligence.version_vector()["steady"] == steady.intelligence.local_version
        tid = await steady.submit_task("work", {"n": -1}, required_capabilities=["steady"])
        assert (await coord.wait_task(tid, timeout=10)).result == {"by": "steady", "n": -1}
        await still_serves(coord, agents)
    finally:
        await children.close()


async def _flood_frames(coord: Coordinator, flooder: Child) -> None:
    """10,000 invalid frames (bad tags and replays) on one raw link, then garbage bytes."""
    valid = await flooder.call("flood_frames", FLOOD, timeout=60)
    assert valid == 1 + FLOOD // 100

    def counted() -> bool:
        by_code = coord.stats().rejected_by_code
        return by_code.get("replay", 0) + by_code.get("auth_error", 0) >= FLOOD

    await coord.wait_until(counted, timeout=30)
    assert coord.stats().rejected_by_code == {"replay": FLOOD // 2, "auth_error": FLOOD // 2}
    # Rejected frames are dropped one by one; the valid PINGs between them got through.
    assert coord.members["flooder"].connected
    # Bytes that are not even a frame poison the stream: ERROR, then the link is closed.
    back = await flooder.call("garbage", timeout=30)
    assert back["errors"] == ["protocol_error"]
    assert back["pongs"] == [0, *range(FLOOD + 1, FLOOD + valid)]
    await coord.wait_until(lambda: not coord.members["flooder"].connected, timeout=10)
    assert coord.stats().rejected_by_code == {
        "replay": FLOOD // 2,
        "auth_error": FLOOD // 2,
        "protocol_error": 1,
    }


async def _flood_messages(coord: Coordinator, flooder: Child) -> None:
    """10,000 well-sealed messages that lie about their sender; the replies go unread."""
    assert await flooder.call("flood_forged", FLOOD, "steady", timeout=60) == FLOOD
    await coord.wait_until(
        lambda: coord.stats().rejected_by_code.get(ErrorCode.FORGED_SENDER, 0) >= FLOOD,
        timeout=30,
    )
    stats = coord.stats()
    assert stats.rejected_by_code == {ErrorCode.FORGED_SENDER: FLOOD}
    # Every junk message was answered with an ERROR or, with the flooder's queue full,
    # had its reply dropped and counted: nothing was buffered without bound.
    dropped = stats.replies_dropped
    assert await flooder.call("drain", FLOOD - dropped, timeout=60) == {
        ErrorCode.FORGED_SENDER: FLOOD - dropped
    }
    assert coord.stats().replies_dropped == dropped
