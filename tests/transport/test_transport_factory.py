"""URL parsing, backend selection, options and the reconnect backoff schedule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ruvector_edge.config import AgentRole, SwarmConfig, Transport
from ruvector_edge.errors import ConfigError
from ruvector_edge.identity import Admission, Identity
from ruvector_edge.transport import (
    InProcTransport,
    ReconnectPolicy,
    SharedMemoryTransport,
    TransportOptions,
    WebSocketTransport,
    WelcomeSettings,
    connect,
    listen,
    parse_url,
    transport_for,
)


@pytest.mark.parametrize(
    ("url", "kind", "name", "host", "port", "secure"),
    [
        ("inproc://swarm", Transport.IN_PROCESS, "swarm", "", 0, False),
        ("shm://edge-1", Transport.SHARED_MEMORY, "edge-1", "", 0, False),
        ("ws://127.0.0.1:8080", Transport.WEBSOCKET, "", "127.0.0.1", 8080, False),
        ("wss://coord.example:9443/swarm", Transport.WEBSOCKET, "", "coord.example", 9443, True),
        ("WS://[::1]:81", Transport.WEBSOCKET, "", "::1", 81, False),
        ("ws://host", Transport.WEBSOCKET, "", "host", 80, False),
    ],
)
def test_parse_url(
    *, url: str, kind: Transport, name: str, host: str, port: int, secure: bool
) -> None:
    endpoint = parse_url(url)
    assert endpoint.kind is kind
    assert (endpoint.name, endpoint.host, endpoint.port, endpoint.secure) == (
        name,
        host,
        port,
        secure,
    )
    assert parse_url(endpoint.url) == endpoint  # the canonical form parses back to itself


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("tcp://127.0.0.1:1", "unknown transport scheme"),
        ("ws://:8080", "needs a host"),
        ("ws://127.0.0.1:99999", "invalid port"),
        ("shm://", "needs a plain name"),
        ("inproc://a/b", "needs a plain name"),
        ("127.0.0.1:8080", "has no scheme"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_url(url)


def test_scheme_less_urls_take_the_configured_transport() -> None:
    assert parse_url("127.0.0.1:8080", Transport.WEBSOCKET).url == "ws://127.0.0.1:8080"
    assert parse_url("swarm", "shm").url == "shm://swarm"
    assert parse_url("swarm", Transport.IN_PROCESS).url == "inproc://swarm"


def test_transport_for_config_kind_and_scheme() -> None:
    assert isinstance(transport_for(SwarmConfig()), WebSocketTransport)
    config = SwarmConfig().with_transport(Transport.SHARED_MEMORY)
    assert isinstance(transport_for(config), SharedMemoryTransport)
    assert isinstance(transport_for(Transport.IN_PROCESS), InProcTransport)
    assert isinstance(transport_for("wss"), WebSocketTransport)
    assert isinstance(transport_for("inproc"), InProcTransport)
    with pytest.raises(ConfigError):
        transport_for("carrier-pigeon")


async def test_connect_and_listen_take_defaults_from_a_swarm_config() -> None:
    token = "config-token"
    coord_config = SwarmConfig(
        agent_id="coord",
        transport=Transport.IN_PROCESS,
        max_frame_size=4096,
        heartbeat_interval_ms=200,
    )
    agent_config = SwarmConfig(
        agent_id="s1", agent_role=AgentRole.SCOUT, transport=Transport.IN_PROCESS, join_token=token
    )
    listener = await listen(
        "cfg-swarm",
        Identity.generate("coord"),
        Admission(token),
        config=coord_config,
        welcome=WelcomeSettings.from_config(coord_config, swarm_id="cfg"),
    )
    assert listener.url == "inproc://cfg-swarm"
    assert listener.options.max_frame_size == 4096
    assert listener.options.idle_timeout == 5.0  # ten heartbeats, at least 5 s
    conn = await connect("cfg-swarm", Identity.generate("s1"), config=agent_config)
    server = await listener.accept(timeout=5)
    assert server.join is not None
    assert server.join.agent_role is AgentRole.SCOUT
    assert conn.welcome is not None
    assert conn.welcome.swarm_id == "cfg"
    assert conn.welcome.heartbeat_interval_ms == 200
    assert conn.welcome.max_frame_size == 4096
    await listener.close()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_frame_size": 10}, "max_frame_size"),
        ({"send_timeout": 0}, "send_timeout"),
        ({"idle_timeout": -1.0}, "idle_timeout"),
        ({"max_send_queue": 0}, "max_send_queue"),
        ({"shm_ring_size": 5000}, "power of two"),
        ({"shm_poll_us": -1}, "shm_poll_us"),
    ],
)
def test_options_are_validated(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TransportOptions().replace(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"initial_delay": 0}, "initial_delay"),
        ({"initial_delay": 5, "max_delay": 1}, "initial_delay"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": 1.5}, "jitter"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_reconnect_policy_is_validated(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ReconnectPolicy(**changes)  # type: ignore[arg-type]


@settings(max_examples=60)
@given(
    initial=st.floats(min_value=0.001, max_value=1.0),
    ratio=st.floats(min_value=1.0, max_value=100.0),
    multiplier=st.floats(min_value=1.0, max_value=4.0),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    attempts=st.integers(min_value=1, max_value=40),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_grows_exponentially_within_its_jitter_band(
    *, initial: float, ratio: float, multiplier: float, jitter: float, attempts: int, seed: int
) -> None:
    policy = ReconnectPolicy(
        initial_delay=initial,
        max_delay=initial * ratio,
        multiplier=multiplier,
        jitter=jitter,
        max_attempts=attempts,
        seed=seed,
    )
    delays = list(policy.delays())
    assert len(delays) == attempts
    nominal = initial
    for delay in delays:
        assert nominal * (1 - jitter) - 1e-12 <= delay <= nominal + 1e-12
        assert delay <= policy.max_delay + 1e-12
        nominal = min(policy.max_delay, nominal * multiplier)
    assert delays == list(policy.delays())  # a seed makes the schedule reproducible


def test_jitter_spreads_a_fleet_of_reconnecting_agents() -> None:
    firsts = {next(ReconnectPolicy(jitter=0.5, seed=s).delays()) for s in range(50)}
    assert len(firsts) == 50
    assert min(firsts) >= 0.05
    assert max(firsts) <= 0.1
