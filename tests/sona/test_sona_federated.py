"""Federated agents, coordinator (seed behaviour), topologies and signed exports."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from ruvector_edge.errors import AuthError, CodecError, ConfigError, InvalidInputError
from ruvector_edge.identity import Identity, KeyRegistry
from ruvector_edge.sona import (
    AgentExport,
    AgentExportStats,
    EphemeralAgent,
    FederatedCoordinator,
    FederatedNetwork,
    FederatedTopology,
    TopologyKind,
    TrajectoryExport,
    decode_export,
    encode_export,
)
from ruvector_edge.sona.workload import make_cluster_task, run_episode
from ruvector_edge.wire import AgentExportPayload


def test_seed_agent_behaviour() -> None:
    agent = EphemeralAgent.default_federated("agent-1", 256)
    assert agent.agent_id == "agent-1"
    assert agent.trajectory_count() == 0
    agent.process_trajectory([0.1] * 256, [0.5] * 256, 0.8, "code", ["file:main.rs"])
    assert agent.trajectory_count() == 1
    assert agent.avg_quality() == pytest.approx(0.8)
    for i in range(5):
        agent.process_trajectory([i * 0.1] * 256, [0.5] * 256, 0.7 + i * 0.05, None, [])
    export = agent.export_state()
    assert export.agent_id == "agent-1"
    assert len(export.trajectories) == 6
    assert export.stats.avg_quality > 0.7
    assert export.weights is not None
    assert export.weights.micro_up.any()
    out = agent.apply_micro_lora(np.ones(256, np.float32))
    assert out.shape == (256,)


def test_seed_coordinator_aggregation() -> None:
    coord = FederatedCoordinator.default_coordinator("coord-1", 256)
    assert coord.coordinator_id == "coord-1"
    assert coord.stats().total_agents == 0
    assert coord.stats().total_trajectories == 0
    coord.set_quality_threshold(0.5)
    export = AgentExport(
        agent_id="agent-1",
        trajectories=[
            TrajectoryExport(
                embedding=[0.1] * 256, quality=0.8, route="code", context=[], timestamp=0
            ),
            TrajectoryExport(
                embedding=[0.2] * 256, quality=0.3, route=None, context=[], timestamp=0
            ),
        ],
        stats=AgentExportStats(total_trajectories=2, avg_quality=0.55, patterns_learned=0),
        session_duration_ms=1000,
        timestamp=0,
    )
    r = coord.aggregate(export)
    assert (r.trajectories_accepted, r.trajectories_rejected, r.total_agents) == (1, 1, 1)


def test_seed_multi_agent_consolidation() -> None:
    coord = FederatedCoordinator.default_coordinator("coord-1", 256)
    coord.set_consolidation_interval(2)
    results = []
    for i in range(3):
        export = AgentExport(
            agent_id=f"agent-{i}",
            trajectories=[TrajectoryExport([i * 0.1 + 0.05] * 256, 0.8)],
            session_duration_ms=1000,
        )
        results.append(coord.aggregate(export))
    assert [r.consolidated for r in results] == [False, True, False]
    st = coord.stats()
    assert (st.total_agents, st.total_trajectories) == (3, 3)
    assert "agents=3" in str(st)
    assert set(coord.contributions()) == {"agent-0", "agent-1", "agent-2"}
    assert coord.get_all_patterns()  # consolidation produced patterns (never the empty list)
    assert len(coord.get_initial_patterns(1)) == 1
    with pytest.raises(ConfigError):
        coord.set_consolidation_interval(0)


def _fixed_clock(t: int) -> Callable[[], int]:
    return lambda: t


def _trained_agents(n: int, dim: int = 16) -> list[EphemeralAgent]:
    task = make_cluster_task(dim=dim, clusters=4, seed=0)
    agents = []
    for i in range(n):
        a = EphemeralAgent.default_federated(f"agent-{i}", dim, clock_ms=_fixed_clock(1000 + i))
        run_episode(a, task, 60, np.random.default_rng(i), explore=0.1)
        agents.append(a)
    return agents


@pytest.mark.parametrize(
    "topology",
    [FederatedTopology.STAR, FederatedTopology.HIERARCHICAL(3), FederatedTopology.PEER_TO_PEER],
)
def test_topologies_deliver_every_export(topology: FederatedTopology) -> None:
    agents = _trained_agents(6)
    net = FederatedNetwork(topology, 16, peers=4, quality_threshold=0.0)
    for a in agents:
        net.submit(a.export_state())
    rounds = net.sync()
    model = net.model()
    assert model.stats().total_trajectories == 6 * 60
    if topology.kind is TopologyKind.PEER_TO_PEER:
        assert 1 <= rounds < 64
        totals = {n.stats().total_trajectories for n in net.nodes}
        assert totals == {360}  # every peer saw every export exactly once
        w = [n.master_engine.export_weights().micro_up for n in net.nodes]
        assert all(np.abs(x).sum() > 0 for x in w)
    if topology.kind is TopologyKind.HIERARCHICAL:
        assert len(net.nodes) == 3
        assert net.sync() == 1
        assert model.stats().total_trajectories == 360


def test_duplicate_export_is_ignored() -> None:
    agent = _trained_agents(1)[0]
    export = agent.export_state()
    coord = FederatedCoordinator.default_coordinator("c", 16)
    coord.set_quality_threshold(0.0)
    first = coord.aggregate(export)
    again = coord.aggregate(export)
    assert not first.duplicate
    assert again.duplicate
    assert coord.stats().total_trajectories == 60


def test_export_encode_decode_and_rejections() -> None:
    agent = _trained_agents(1)[0]
    export = agent.export_state()
    ident = Identity.from_seed(b"\x01" * 32, "agent-0")
    payload = encode_export(export, ident)
    assert isinstance(payload, AgentExportPayload)
    assert payload.origin == "agent-0"
    back = decode_export(payload, ident.public_key)
    assert back.agent_id == export.agent_id
    assert len(back.trajectories) == 60
    np.testing.assert_array_equal(back.trajectories[3].embedding, export.trajectories[3].embedding)
    np.testing.assert_array_equal(
        back.trajectories[3].activations, export.trajectories[3].activations
    )
    assert back.weights is not None
    assert export.weights is not None
    np.testing.assert_array_equal(back.weights.base_down, export.weights.base_down)
    reg = KeyRegistry({"agent-0": ident.public_key})
    assert decode_export(payload, reg).timestamp == export.timestamp

    other = Identity.from_seed(b"\x02" * 32, "agent-0")
    with pytest.raises(AuthError):
        decode_export(payload, other.public_key)  # wrong key
    with pytest.raises(AuthError):
        decode_export(payload, {})  # unknown origin
    with pytest.raises(AuthError):
        decode_export(AgentExportPayload(data=payload.data, origin="agent-0"), ident.public_key)
    tampered = bytearray(payload.data)
    tampered[-1] ^= 1
    with pytest.raises(AuthError):
        decode_export(
            AgentExportPayload(data=bytes(tampered), origin="agent-0", signature=payload.signature),
            ident.public_key,
        )
    with pytest.raises(InvalidInputError):
        decode_export(payload, ident.public_key, max_bytes=10)
    with pytest.raises(InvalidInputError):
        decode_export(
            AgentExportPayload(
                data=payload.data, format="x/1", origin="agent-0", signature=payload.signature
            ),
            ident.public_key,
        )
    junk = b"not a codec blob"
    with pytest.raises(CodecError):
        decode_export(
            AgentExportPayload(
                data=junk, origin="agent-0", signature=ident.sign(junk, context="sona-export/1")
            ),
            ident.public_key,
        )
    with pytest.raises(AuthError):
        encode_export(export, Identity.from_seed(b"\x03" * 32, "someone-else"))


def test_bad_export_changes_nothing() -> None:
    from ruvector_edge.errors import DimensionError

    coord = FederatedCoordinator.default_coordinator("c", 16)
    coord.set_quality_threshold(0.0)
    good = TrajectoryExport(np.ones(16, np.float32), 0.9)
    bad = TrajectoryExport(np.ones(15, np.float32), 0.9)
    before = coord.master_engine.export_weights()
    with pytest.raises(DimensionError):
        coord.aggregate(
            AgentExport("x", [good, bad], weights=_trained_agents(1)[0].engine.export_weights())
        )
    with pytest.raises(InvalidInputError):
        coord.aggregate(AgentExport("x", [TrajectoryExport(np.ones(16), float("nan"))]))
    assert coord.stats().total_trajectories == 0
    assert coord.stats().total_agents == 0
    np.testing.assert_array_equal(coord.master_engine.export_weights().micro_up, before.micro_up)


def test_coordinator_state_round_trips_and_damaged_state_changes_nothing() -> None:
    rng = np.random.default_rng(3)
    hub = FederatedCoordinator.default_coordinator("hub", 16)
    hub.set_quality_threshold(0.3)
    for name in ("a", "b"):
        agent = EphemeralAgent.default_federated(name, 16)
        for q in (0.9, 0.7, 0.1):
            agent.process_trajectory(rng.normal(size=16), rng.normal(size=16), q, route="r")
        export = agent.export_state()
        hub.aggregate(export)
    probe = rng.normal(size=(4, 16)).astype(np.float32)
    saved = hub.save_state()

    twin = FederatedCoordinator.default_coordinator("hub", 16)
    twin.load_state(saved)
    assert twin.stats().total_agents == hub.stats().total_agents == 2
    assert twin.stats().total_trajectories == hub.stats().total_trajectories == 4
    assert twin.quality_threshold == 0.3
    assert twin.contributions() == hub.contributions()
    np.testing.assert_array_equal(
        twin.master_engine.apply_micro_lora(probe), hub.master_engine.apply_micro_lora(probe)
    )
    assert twin.aggregate(export).duplicate  # the duplicate guard survived too

    with pytest.raises(CodecError):
        twin.load_state(saved[: len(saved) // 2])
    assert twin.stats().total_agents == 2
    other = FederatedCoordinator.default_coordinator("hub", 8)
    with pytest.raises(Exception, match="hidden_dim"):
        other.load_state(saved)
