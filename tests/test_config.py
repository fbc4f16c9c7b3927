from __future__ import annotations

from pathlib import Path

import pytest

from ruvector_edge import AgentRole, ConfigError, SwarmConfig, Transport


def test_builders_return_modified_copies() -> None:
    base = SwarmConfig()
    config = (
        base.with_agent_id("my-agent")
        .with_role(AgentRole.SCOUT)
        .with_transport(Transport.SHARED_MEMORY)
        .with_coordinator("ws://127.0.0.1:8080")
    )
    assert config.agent_id == "my-agent"
    assert config.agent_role is AgentRole.SCOUT
    assert config.transport is Transport.SHARED_MEMORY
    assert config.coordinator_url == "ws://127.0.0.1:8080"
    assert base.coordinator_url is None  # the original is untouched
    assert base.agent_id != "my-agent"


def test_seed_defaults() -> None:
    config = SwarmConfig()
    assert config.agent_role is AgentRole.WORKER
    assert config.transport is Transport.WEBSOCKET
    assert config.sync_interval_ms == 1000
    assert config.enable_learning
    assert config.enable_memory_sync
    assert config.max_frame_size == 16 * 1024 * 1024


def test_from_env_reads_seed_variables() -> None:
    env = {
        "SWARM_COORDINATOR": "ws://127.0.0.1:9000",
        "SWARM_SYNC_INTERVAL": "250",
        "SWARM_LOG": "debug",
        "SWARM_ROLE": "specialist",
        "SWARM_JOIN_TOKEN": "secret",
    }
    config = SwarmConfig.from_env(env)
    assert config.coordinator_url == "ws://127.0.0.1:9000"
    assert config.sync_interval_ms == 250
    assert config.log_level == "debug"
    assert config.agent_role is AgentRole.SPECIALIST
    assert config.join_token == "secret"
    assert "secret" not in repr(config)


def test_rust_log_is_accepted_and_swarm_log_wins() -> None:
    assert SwarmConfig.from_env({"RUST_LOG": "ruvector=trace,warn"}).log_level == "warn"
    both = SwarmConfig.from_env({"RUST_LOG": "error", "SWARM_LOG": "info"})
    assert both.log_level == "info"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"SWARM_SYNC_INTERVAL": "fast"}, "SWARM_SYNC_INTERVAL must be an integer"),
        ({"SWARM_SYNC_INTERVAL": "0"}, "sync_interval_ms must be a positive integer"),
        ({"SWARM_ROLE": "king"}, "unknown agent role"),
        ({"SWARM_TRANSPORT": "carrier-pigeon"}, "unknown transport"),
        ({"SWARM_LOG": "loud"}, "log level"),
    ],
)
def test_bad_environment_values_raise_config_error(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        SwarmConfig.from_env(env)


def test_precedence_defaults_file_env_overrides(tmp_path: Path) -> None:
    path = tmp_path / "swarm.toml"
    path.write_text(
        '[swarm]\nsync_interval_ms = 500\nmax_agents = 7\ncoordinator_url = "ws://file:1"\n'
    )
    env = {"SWARM_COORDINATOR": "ws://env:2", "SWARM_MAX_AGENTS": "9"}
    config = SwarmConfig.load(path, env, max_agents=11, agent_id=None)
    assert config.sync_interval_ms == 500  # file beats default
    assert config.coordinator_url == "ws://env:2"  # env beats file
    assert config.max_agents == 11  # explicit override beats env
    assert config.agent_id.startswith("agent-")  # None override is ignored


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        SwarmConfig.from_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("sync_interval_ms = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        SwarmConfig.from_file(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match="unknown SwarmConfig field"):
        SwarmConfig.from_file(unknown)


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("ws", Transport.WEBSOCKET),
        ("SHM", Transport.SHARED_MEMORY),
        ("inproc", Transport.IN_PROCESS),
    ],
)
def test_transport_aliases(alias: str, expected: Transport) -> None:
    assert Transport.parse(alias) is expected


def test_invalid_fields_are_refused() -> None:
    with pytest.raises(ConfigError):
        SwarmConfig(agent_id="")
    with pytest.raises(ConfigError):
        SwarmConfig(max_frame_size=10)
    with pytest.raises(ConfigError):
        SwarmConfig(compression="gzip")
