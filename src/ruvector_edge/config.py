"""Shared settings: ``SwarmConfig``, ``AgentRole`` and ``Transport``.

Precedence, lowest to highest: code defaults < config file (TOML) < environment < explicit
arguments (CLI flags). ``SwarmConfig.load`` applies all four in that order.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from ruvector_edge.errors import ConfigError

__all__ = ["DEFAULT_MAX_FRAME_SIZE", "AgentRole", "SwarmConfig", "Transport"]

DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
_LOG_LEVELS = ("trace", "debug", "info", "warning", "warn", "error", "critical", "off")


class AgentRole(StrEnum):
    """What an agent does in the swarm (the seed's four roles)."""

    COORDINATOR = "coordinator"
    WORKER = "worker"
    SCOUT = "scout"
    SPECIALIST = "specialist"

    @classmethod
    def parse(cls, value: str | AgentRole) -> AgentRole:
        """Parse a role name case-insensitively, with a clear error for unknown names."""
        if isinstance(value, AgentRole):
            return value
        try:
            return cls(value.strip().lower())
        except ValueError:
            names = ", ".join(r.value for r in cls)
            raise ConfigError(f"unknown agent role {value!r}; expected one of: {names}") from None


class Transport(StrEnum):
    """How frames move between agents."""

    WEBSOCKET = "websocket"
    SHARED_MEMORY = "shared-memory"
    IN_PROCESS = "in-process"

    @classmethod
    def parse(cls, value: str | Transport) -> Transport:
        """Parse a transport name; accepts aliases such as ``ws``, ``shm`` and ``inproc``."""
        if isinstance(value, Transport):
            return value
        key = value.strip().lower().replace("_", "-")
        aliases = {
            "ws": cls.WEBSOCKET,
            "wss": cls.WEBSOCKET,
            "websocket": cls.WEBSOCKET,
            "shm": cls.SHARED_MEMORY,
            "shared-memory": cls.SHARED_MEMORY,
            "sharedmemory": cls.SHARED_MEMORY,
            "inproc": cls.IN_PROCESS,
            "in-process": cls.IN_PROCESS,
            "inprocess": cls.IN_PROCESS,
        }
        if key not in aliases:
            names = ", ".join(t.value for t in cls)
            raise ConfigError(f"unknown transport {value!r}; expected one of: {names}")
        return aliases[key]


def _default_agent_id() -> str:
    return f"agent-{secrets.token_hex(4)}"


@dataclasses.dataclass(frozen=True, slots=True)
class SwarmConfig:
    """Settings shared by agents and coordinators.

    Immutable: the ``with_*`` builders return a modified copy, so a config can be shared
    between tasks safely. Field names follow the seed (``agent_id``, ``agent_role``,
    ``transport``, ``coordinator_url``, ``sync_interval_ms``, ``enable_learning``,
    ``enable_memory_sync``).
    """

    agent_id: str = dataclasses.field(default_factory=_default_agent_id)
    agent_role: AgentRole = AgentRole.WORKER
    transport: Transport = Transport.WEBSOCKET
    coordinator_url: str | None = None
    sync_interval_ms: int = 1000
    enable_learning: bool = True
    enable_memory_sync: bool = True
    heartbeat_interval_ms: int = 1000
    max_agents: int = 100
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    max_clock_skew_ms: int = 30_000
    compression: str = "fast"
    encrypt_payloads: bool = False
    join_token: str | None = None
    data_dir: Path | None = None
    log_level: str = "info"

    def __post_init__(self) -> None:
        if not self.agent_id or len(self.agent_id) > 128 or not self.agent_id.isprintable():
            raise ConfigError(f"agent_id must be 1-128 printable characters, got {self.agent_id!r}")
        object.__setattr__(self, "agent_role", AgentRole.parse(self.agent_role))
        object.__setattr__(self, "transport", Transport.parse(self.transport))
        for name in ("sync_interval_ms", "heartbeat_interval_ms", "max_agents"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not 64 <= self.max_frame_size <= 1 << 31:
            raise ConfigError(
                f"max_frame_size must be between 64 bytes and 2 GiB, got {self.max_frame_size}"
            )
        if self.max_clock_skew_ms <= 0:
            raise ConfigError(f"max_clock_skew_ms must be positive, got {self.max_clock_skew_ms}")
        if self.compression not in ("none", "fast", "high", "quantized8", "quantized4"):
            raise ConfigError(
                f"compression must be none, fast, high, quantized8 or quantized4, "
                f"got {self.compression!r}"
            )
        level = self.log_level.strip().lower()
        if level not in _LOG_LEVELS:
            raise ConfigError(
                f"log level must be one of {', '.join(_LOG_LEVELS)}, got {self.log_level!r}"
            )
        object.__setattr__(self, "log_level", level)
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", Path(self.data_dir))

    # -- seed builders -------------------------------------------------------------
    def with_agent_id(self, agent_id: str) -> SwarmConfig:
        """Return a copy with ``agent_id`` set."""
        return dataclasses.replace(self, agent_id=agent_id)

    def with_role(self, role: AgentRole | str) -> SwarmConfig:
        """Return a copy with ``agent_role`` set."""
        return dataclasses.replace(self, agent_role=AgentRole.parse(role))

    def with_transport(self, transport: Transport | str) -> SwarmConfig:
        """Return a copy with ``transport`` set."""
        return dataclasses.replace(self, transport=Transport.parse(transport))

    def with_coordinator(self, url: str) -> SwarmConfig:
        """Return a copy with ``coordinator_url`` set."""
        return dataclasses.replace(self, coordinator_url=url)

    def with_sync_interval(self, interval_ms: int) -> SwarmConfig:
        """Return a copy with ``sync_interval_ms`` set."""
        return dataclasses.replace(self, sync_interval_ms=interval_ms)

    def with_join_token(self, token: str) -> SwarmConfig:
        """Return a copy with the swarm join token set."""
        return dataclasses.replace(self, join_token=token)

    def with_data_dir(self, path: str | Path) -> SwarmConfig:
        """Return a copy that persists state under ``path``."""
        return dataclasses.replace(self, data_dir=Path(path))

    def replace(self, **changes: Any) -> SwarmConfig:
        """Return a copy with any fields changed (validated like the constructor)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown SwarmConfig field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    # -- sources ---------------------------------------------------------------------
    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, base: SwarmConfig | None = None
    ) -> SwarmConfig:
        """Build a config from ``SWARM_*`` environment variables on top of ``base``.

        Reads ``SWARM_COORDINATOR``, ``SWARM_SYNC_INTERVAL`` (ms), ``SWARM_LOG`` (or the
        seed's ``RUST_LOG``), and also ``SWARM_AGENT_ID``, ``SWARM_ROLE``,
        ``SWARM_TRANSPORT``, ``SWARM_JOIN_TOKEN``, ``SWARM_DATA_DIR``, ``SWARM_MAX_AGENTS``.
        """
        env = os.environ if environ is None else environ
        changes: dict[str, Any] = {}
        simple = {
            "SWARM_AGENT_ID": "agent_id",
            "SWARM_ROLE": "agent_role",
            "SWARM_TRANSPORT": "transport",
            "SWARM_COORDINATOR": "coordinator_url",
            "SWARM_JOIN_TOKEN": "join_token",
            "SWARM_DATA_DIR": "data_dir",
        }
        for var, field in simple.items():
            if env.get(var):
                changes[field] = env[var]
        for var, field in (
            ("SWARM_SYNC_INTERVAL", "sync_interval_ms"),
            ("SWARM_MAX_AGENTS", "max_agents"),
        ):
            if env.get(var):
                changes[field] = _parse_int(var, env[var])
        log = env.get("SWARM_LOG") or _rust_log_level(env.get("RUST_LOG"))
        if log:
            changes["log_level"] = log
        return (base or cls()).replace(**changes)

    @classmethod
    def from_file(cls, path: str | Path, base: SwarmConfig | None = None) -> SwarmConfig:
        """Read a TOML file (keys are field names, optionally under a ``[swarm]`` table)."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
        table = data.get("swarm", data)
        if not isinstance(table, dict):
            raise ConfigError(f"config file {p}: [swarm] must be a table")
        return (base or cls()).replace(**table)

    @classmethod
    def load(
        cls,
        file: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> SwarmConfig:
        """Defaults < ``file`` < environment < ``overrides`` (``None`` overrides are ignored)."""
        config = cls()
        if file is not None:
            config = cls.from_file(file, base=config)
        config = cls.from_env(environ, base=config)
        return config.replace(**{k: v for k, v in overrides.items() if v is not None})

    @property
    def sync_interval_s(self) -> float:
        """The sync interval in seconds."""
        return self.sync_interval_ms / 1000.0

    def logging_level(self) -> int:
        """The ``logging`` module level for ``log_level``."""
        return {
            "trace": logging.DEBUG,
            "debug": logging.DEBUG,
            "info": logging.INFO,
            "warning": logging.WARNING,
            "warn": logging.WARNING,
            "error": logging.ERROR,
            "critical": logging.CRITICAL,
            "off": logging.CRITICAL + 10,
        }[self.log_level]

    def to_dict(self) -> dict[str, Any]:
        """Plain-data view (enums as strings, paths as strings)."""
        out = dataclasses.asdict(self)
        out["agent_role"] = self.agent_role.value
        out["transport"] = self.transport.value
        out["data_dir"] = str(self.data_dir) if self.data_dir else None
        return out

    def __repr__(self) -> str:  # hide the join token
        shown = {k: v for k, v in self.to_dict().items() if k != "join_token"}
        token = "<set>" if self.join_token else None
        return f"SwarmConfig({shown}, join_token={token})"


def _parse_int(var: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ConfigError(f"{var} must be an integer, got {raw!r}") from None


def _rust_log_level(value: str | None) -> str | None:
    """Take the global level from a RUST_LOG directive like ``info`` or ``crate=debug,warn``."""
    if not value:
        return None
    for raw in value.split(","):
        part = raw.strip().lower()
        if part and "=" not in part and part in _LOG_LEVELS:
            return part
    return None
