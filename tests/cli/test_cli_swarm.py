"""``edge-coordinator`` and ``edge-agent``: flags, configuration precedence, handler
loading, and real processes talking over WebSocket (READY lines, clean SIGINT/SIGTERM,
wrong tokens, a generated token, a link lost for good)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest
import typer
from typer.testing import CliRunner

from ruvector_edge.cli._common import (
    BUILTIN_HANDLERS,
    MAX_SLEEP_SECONDS,
    CoordinatorFlags,
    build_config,
    load_handlers,
    prepare_coordinator,
    run_loop,
    sleep_handler,
    sleep_seconds,
)
from ruvector_edge.cli.agent import AgentFlags, prepare_agent
from ruvector_edge.cli.agent import app as agent_app
from ruvector_edge.cli.coordinator import app as coordinator_app
from ruvector_edge.config import AgentRole, SwarmConfig, Transport
from ruvector_edge.errors import ConfigError, InvalidInputError
from ruvector_edge.swarm import SwarmAgent, TaskContext
from ruvector_edge.wire import TaskPayload

COORDINATOR_FLAGS = (
    "--id",
    "--transport",
    "--listen",
    "--max-agents",
    "--data-dir",
    "--join-token",
    "--insecure-open",
    "--allocator",
    "--peers",
    "--sync-interval",
    "--heartbeat-interval",
    "--config",
    "--status-interval",
    "--verbose",
    "-v",
)
AGENT_FLAGS = (
    "--id",
    "--role",
    "--coordinator",
    "--transport",
    "--sync-interval",
    "--heartbeat-interval",
    "--capabilities",
    "--join-token",
    "--data-dir",
    "--handlers",
    "--seed",
    "--exploration",
    "--listen",
    "--max-agents",
    "--insecure-open",
    "--config",
    "--verbose",
    "-v",
)
_SWARM_ENV = ("RUST_LOG",)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """In-process runs configure the root logger; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    ws_level = logging.getLogger("websockets").level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("websockets").setLevel(ws_level)


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without SWARM_* / RUST_LOG, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    for name in _SWARM_ENV:
        env.pop(name, None)
    env.update(extra)
    return env


def unset_swarm_env() -> dict[str, str | None]:
    """CliRunner env that removes every SWARM_* variable during the invocation."""
    names = [k for k in os.environ if k.startswith("SWARM_")] + list(_SWARM_ENV)
    return dict.fromkeys(names)


# ============================================================== help and flag errors
@pytest.mark.parametrize(
    ("app", "flags"), [(coordinator_app, COORDINATOR_FLAGS), (agent_app, AGENT_FLAGS)]
)
def test_help_shows_every_flag_with_help_text(
    runner: CliRunner, app: typer.Typer, flags: tuple[str, ...]
) -> None:
    result = runner.invoke(app, ["--help"], env={"TERMINAL_WIDTH": "200", "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for flag in flags:
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", result.output), flag
    command = typer.main.get_command(app)
    for param in command.params:
        opts = getattr(param, "opts", [])
        if "--help" not in opts:
            assert (getattr(param, "help", None) or "").strip(), f"{opts} has no help text"


@pytest.mark.parametrize(
    ("app", "args", "expected"),
    [
        (coordinator_app, ["--transport", "carrier-pigeon"], "unknown transport"),
        (coordinator_app, ["--transport", "inproc"], "in-process"),
        (coordinator_app, ["--listen", "inproc://x"], "in-process"),
        (coordinator_app, ["--transport", "ws", "--listen", "shm://x"], "agree"),
        (coordinator_app, ["--allocator", "coin-flip"], "unknown allocator"),
        (coordinator_app, ["--sync-interval", "0"], "sync_interval_ms"),
        (agent_app, ["--role", "boss", "--coordinator", "ws://127.0.0.1:1"], "unknown agent role"),
        (agent_app, ["--transport", "smoke-signals"], "unknown transport"),
        (agent_app, ["--coordinator", "inproc://swarm"], "in-process"),
        (agent_app, ["--coordinator", "ftp://host:1"], "unknown transport scheme"),
        (agent_app, [], "no coordinator to join"),
        (
            agent_app,
            ["--coordinator", "ws://127.0.0.1:1", "--handlers", "no_such_module_xyz:H"],
            "cannot import 'no_such_module_xyz'",
        ),
        (
            agent_app,
            ["--coordinator", "ws://127.0.0.1:1", "--handlers", "json"],
            "expected MODULE:ATTR",
        ),
        (
            agent_app,
            ["--coordinator", "ws://127.0.0.1:1", "--handlers", "json:no_such_attr"],
            "has no 'no_such_attr'",
        ),
        (
            agent_app,
            ["--coordinator", "ws://127.0.0.1:1", "--handlers", "json:dumps"],
            "must be a dict",
        ),
        (agent_app, ["--coordinator", "ws://127.0.0.1:1", "--listen", "ws://x:1"], "--listen"),
        (agent_app, ["--role", "coordinator", "--handlers", "builtin"], "--handlers"),
    ],
)
def test_bad_flags_exit_2_with_a_readable_error(
    runner: CliRunner, app: typer.Typer, args: list[str], expected: str
) -> None:
    result = runner.invoke(app, args, env=unset_swarm_env())
    assert result.exit_code == 2, result.output
    assert "error: " in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1  # one line, not a dump


def test_port_in_use_is_a_one_line_error_and_exit_2(runner: CliRunner) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(
            coordinator_app,
            ["--listen", f"ws://127.0.0.1:{port}", "--join-token", "t"],
            env=unset_swarm_env(),
        )
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ")
    assert str(port) in result.stderr
    assert "READY" not in result.stdout
    assert "Traceback" not in result.output


# ============================================================== configuration
def test_sync_interval_precedence_default_file_env_flag(tmp_path: Path) -> None:
    assert build_config(environ={}).sync_interval_ms == SwarmConfig().sync_interval_ms
    toml = tmp_path / "swarm.toml"
    toml.write_text("[swarm]\nsync_interval_ms = 100\nheartbeat_interval_ms = 300\n")
    assert build_config(config_file=toml, environ={}).sync_interval_ms == 100
    env = {"SWARM_SYNC_INTERVAL": "250"}
    from_env = build_config(config_file=toml, environ=env, sync_interval_ms=None)
    assert from_env.sync_interval_ms == 250  # environment beats the file
    assert from_env.heartbeat_interval_ms == 300  # the file still supplies the rest
    assert build_config(config_file=toml, environ=env, sync_interval_ms=500).sync_interval_ms == 500


def test_log_level_default_warning_env_then_verbosity() -> None:
    assert build_config(environ={}).log_level == "warning"
    assert build_config(environ={"SWARM_LOG": "debug"}).log_level == "debug"
    assert build_config(environ={"RUST_LOG": "ruvector=trace,error"}).log_level == "error"
    assert build_config(environ={"SWARM_LOG": "error"}, verbose=1).log_level == "info"
    assert build_config(environ={"SWARM_LOG": "error"}, verbose=2).log_level == "debug"


def test_coordinator_config_defaults_env_and_flags(tmp_path: Path) -> None:
    config, options = prepare_coordinator(CoordinatorFlags(), environ={})
    assert config.agent_id == "coordinator"
    assert config.agent_role is AgentRole.COORDINATOR
    assert options.listen == "ws://127.0.0.1:8080"
    assert options.allocator == "learned"
    assert not options.insecure_open

    config, options = prepare_coordinator(CoordinatorFlags(transport="shm"), environ={})
    assert (config.transport, options.listen) == (Transport.SHARED_MEMORY, "shm://ruvector-edge")

    env = {
        "SWARM_AGENT_ID": "hub-env",
        "SWARM_COORDINATOR": "ws://127.0.0.1:9100",
        "SWARM_JOIN_TOKEN": "env-token",
        "SWARM_DATA_DIR": str(tmp_path),
        "SWARM_MAX_AGENTS": "7",
        "SWARM_ROLE": "worker",  # a coordinator stays a coordinator
    }
    config, options = prepare_coordinator(CoordinatorFlags(), environ=env)
    assert config.agent_id == "hub-env"
    assert config.agent_role is AgentRole.COORDINATOR
    assert options.listen == "ws://127.0.0.1:9100"
    assert options.join_token == "env-token"
    assert config.data_dir == tmp_path
    assert config.max_agents == 7

    flags = CoordinatorFlags(
        agent_id="hub-flag",
        listen="shm://swarm-a",  # the scheme decides the transport
        join_token="flag-token",
        max_agents=3,
        allocator="Round_Robin",
        peers="ws://10.0.0.2:8080, 10.0.0.3:8080",
    )
    config, options = prepare_coordinator(flags, environ=env)
    assert config.agent_id == "hub-flag"
    assert config.transport is Transport.SHARED_MEMORY
    assert options.listen == "shm://swarm-a"
    assert options.join_token == "flag-token"
    assert config.max_agents == 3
    assert options.allocator == "round-robin"
    assert options.peers == ("ws://10.0.0.2:8080", "shm://10.0.0.3:8080")


def test_agent_config_coordinator_urls_and_env(tmp_path: Path) -> None:
    env = {"SWARM_COORDINATOR": "ws://127.0.0.1:9000", "SWARM_SYNC_INTERVAL": "250"}
    config = prepare_agent(AgentFlags(), environ=env)
    assert config.coordinator_url == "ws://127.0.0.1:9000"
    assert config.sync_interval_ms == 250
    assert config.agent_role is AgentRole.WORKER
    assert config.agent_id.startswith("agent-")

    flags = AgentFlags(
        agent_id="w7",
        role="Scout",
        coordinator="127.0.0.1:9001, ws://127.0.0.1:9002",
        sync_interval=40,
        data_dir=tmp_path,
    )
    config = prepare_agent(flags, environ=env)
    assert config.agent_id == "w7"
    assert config.agent_role is AgentRole.SCOUT
    assert config.coordinator_url == "ws://127.0.0.1:9001,ws://127.0.0.1:9002"
    assert config.sync_interval_ms == 40
    assert config.data_dir == tmp_path

    with pytest.raises(ConfigError, match="no coordinator"):
        prepare_agent(AgentFlags(), environ={})
    with pytest.raises(ConfigError, match="--max-agents is only used with --role coordinator"):
        prepare_agent(AgentFlags(max_agents=5), environ=env)
    coordinator = prepare_agent(AgentFlags(role="coordinator"), environ={})
    assert coordinator.agent_role is AgentRole.COORDINATOR


# ============================================================== handlers
def _ctx(task_type: str, parameters: Mapping[str, Any]) -> TaskContext:
    task = TaskPayload(task_id="t1", task_type=task_type, parameters=dict(parameters))
    return TaskContext(cast(SwarmAgent, None), task)


async def test_builtin_handlers_echo_and_sleep() -> None:
    handlers = load_handlers(["builtin"])
    assert set(handlers) == {"echo", "sleep"} == set(BUILTIN_HANDLERS)
    params = {"a": 1, "b": ["x", "y"]}
    assert await handlers["echo"](_ctx("echo", params)) == params
    assert await sleep_handler(_ctx("sleep", {"seconds": 0})) == {"slept": 0.0}


def test_sleep_seconds_is_bounded_and_checked() -> None:
    assert sleep_seconds({"seconds": 2.5}) == 2.5
    assert sleep_seconds({}) == 1.0
    assert sleep_seconds({"seconds": 10_000}) == MAX_SLEEP_SECONDS == 60.0
    assert sleep_seconds({"seconds": -3}) == 0.0
    for bad in ("soon", float("nan"), float("inf"), True, None):
        with pytest.raises(InvalidInputError, match="seconds"):
            sleep_seconds({"seconds": bad})


async def test_load_handlers_dict_factory_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cli_plugin_tasks.py").write_text(
        "async def build(ctx):\n"
        "    return 'built'\n"
        "async def echo(ctx):\n"
        "    return 'mine'\n"
        "HANDLERS = {'build': build}\n"
        "def make():\n"
        "    return {'echo': echo}\n"
        "BAD = {'x': 42}\n"
        "NOT_A_DICT = 3\n"
        "def broken():\n"
        "    raise RuntimeError('boom')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    handlers = load_handlers(["builtin", "cli_plugin_tasks:HANDLERS", "cli_plugin_tasks:make"])
    assert set(handlers) == {"echo", "sleep", "build"}
    assert handlers["echo"] is not BUILTIN_HANDLERS["echo"]  # later specs win
    assert await handlers["build"](_ctx("build", {})) == "built"
    with pytest.raises(ConfigError, match="handler for 'x' is not callable"):
        load_handlers(["cli_plugin_tasks:BAD"])
    with pytest.raises(ConfigError, match="must be a dict"):
        load_handlers(["cli_plugin_tasks:NOT_A_DICT"])
    with pytest.raises(ConfigError, match="RuntimeError: boom"):
        load_handlers(["cli_plugin_tasks:broken"])


# ============================================================== real processes
class Proc:
    """A CLI subprocess whose stdout/stderr lines are collected by reader threads, so a
    test can wait for a line with a deadline (no blind sleeping)."""

    def __init__(self, module: str, args: list[str], env: Mapping[str, str]) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env),
        )
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._eof: set[str] = set()
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._pump, args=(name,), daemon=True)
            for name in ("stdout", "stderr")
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, name: str) -> None:
        stream = self.popen.stdout if name == "stdout" else self.popen.stderr
        assert stream is not None
        for line in stream:
            with self._cond:
                self.lines[name].append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof.add(name)
            self._cond.notify_all()

    def wait_for(
        self, pattern: str, stream: str = "stdout", timeout: float = 20.0
    ) -> re.Match[str]:
        """The first line of ``stream`` matching ``pattern``; fails at EOF or the deadline."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[stream]:
                    if match := regex.search(line):
                        return match
                remaining = deadline - time.monotonic()
                if stream in self._eof or remaining <= 0:
                    why = "exited" if stream in self._eof else "timed out"
                    pytest.fail(f"{why} waiting for {pattern!r} on {stream}:\n{self.text()}")
                self._cond.wait(remaining)

    def send(self, sig: signal.Signals) -> None:
        self.popen.send_signal(sig)

    def wait_exit(self, timeout: float = 20.0) -> int:
        code = self.popen.wait(timeout)
        for thread in self._threads:
            thread.join(timeout)
        return code

    def text(self, stream: str | None = None) -> str:
        with self._cond:
            if stream is not None:
                return "\n".join(self.lines[stream])
            return "\n".join(
                f"--- {name}\n" + "\n".join(lines) for name, lines in self.lines.items()
            )

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.kill()


def _coordinator(procs: list[Proc], args: list[str], env: Mapping[str, str]) -> Proc:
    proc = Proc("ruvector_edge.cli.coordinator", args, env)
    procs.append(proc)
    return proc


def _agent(procs: list[Proc], args: list[str], env: Mapping[str, str]) -> Proc:
    proc = Proc("ruvector_edge.cli.agent", args, env)
    procs.append(proc)
    return proc


async def test_coordinator_and_agent_processes_end_to_end(procs: list[Proc]) -> None:
    token = "tok-e2e-9c41f7d2"
    coord = _coordinator(
        procs,
        ["--listen", "ws://127.0.0.1:0", "--join-token", token, "--id", "hub", "-v"],
        clean_env(),
    )
    ready = await asyncio.to_thread(coord.wait_for, r"^READY url=(ws://127\.0\.0\.1:\d+) id=hub$")
    url = ready.group(1)

    worker = _agent(
        procs,
        [
            *("--coordinator", url, "--handlers", "builtin", "--id", "cli-worker"),
            *("--capabilities", "echo-cap, sleep-cap"),
        ],
        clean_env(SWARM_JOIN_TOKEN=token),
    )
    await asyncio.to_thread(worker.wait_for, r"^READY agent=cli-worker coordinator=hub$")

    # A client in this process sees the worker and gets a task run by its builtin handler
    # (only the worker has the required capability).
    client = SwarmAgent(SwarmConfig(agent_id="cli-client", join_token=token))
    await client.join_swarm(url)
    try:
        peers = {p.agent_id: p for p in await client.refresh_peers()}
        assert peers["cli-worker"].connected
        assert peers["cli-worker"].capabilities == ["echo-cap", "sleep-cap"]
        params = {"msg": "hello", "n": 3}
        task_id = await client.submit_task("echo", params, required_capabilities=["echo-cap"])
        result = await client.wait_task(task_id, timeout=15)
        assert result.success, result.error
        assert result.result == params

        # A wrong token is refused at once, with an error that says so.
        intruder = _agent(
            procs, ["--coordinator", url, "--id", "intruder"], clean_env(SWARM_JOIN_TOKEN="nope")
        )
        assert await asyncio.to_thread(intruder.wait_exit) == 2
        assert "token" in intruder.text("stderr")
        assert "READY" not in intruder.text("stdout")

        # SIGINT: the worker sends LEAVE and exits 0; the coordinator drops it.
        worker.send(signal.SIGINT)
        assert await asyncio.to_thread(worker.wait_exit) == 0
        await asyncio.to_thread(coord.wait_for, r"agent cli-worker left", "stderr")
        assert "cli-worker" not in {p.agent_id for p in await client.refresh_peers()}
    finally:
        await client.leave_swarm()

    coord.send(signal.SIGINT)
    assert await asyncio.to_thread(coord.wait_exit) == 0
    await asyncio.to_thread(coord.wait_for, r"coordinator hub stopped", "stderr")
    for proc in (coord, worker, intruder):
        assert token not in proc.text(), "the join token leaked into the output"
        assert "Traceback" not in proc.text()
    assert coord.text("stdout").count("READY") == 1


async def test_agent_exits_3_when_the_coordinator_will_not_take_it_back(
    procs: list[Proc],
) -> None:
    with socket.socket() as probe:  # a free port the second coordinator can reuse
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"ws://127.0.0.1:{port}"
    first = _coordinator(procs, ["--listen", url, "--join-token", "token-a"], clean_env())
    await asyncio.to_thread(first.wait_for, r"^READY url=")
    worker = _agent(
        procs,
        ["--coordinator", url, "--handlers", "builtin", "--id", "orphan"],
        clean_env(SWARM_JOIN_TOKEN="token-a"),
    )
    await asyncio.to_thread(worker.wait_for, r"^READY agent=orphan")
    first.send(signal.SIGTERM)
    assert await asyncio.to_thread(first.wait_exit) == 0
    # Same address, another swarm secret: the agent's reconnect is refused for good.
    second = _coordinator(procs, ["--listen", url, "--join-token", "token-b"], clean_env())
    await asyncio.to_thread(second.wait_for, r"^READY url=")
    assert await asyncio.to_thread(worker.wait_exit, 30.0) == 3
    assert "error: lost the coordinator for good" in worker.text("stderr")
    assert "token" in worker.text("stderr")
    second.send(signal.SIGINT)
    assert await asyncio.to_thread(second.wait_exit) == 0


def test_generated_token_is_printed_once_and_stored_0600(procs: list[Proc], tmp_path: Path) -> None:
    data = tmp_path / "coord-data"
    args = ["--listen", "ws://127.0.0.1:0", "--data-dir", str(data), "-v"]
    coord = _coordinator(procs, args, clean_env())
    coord.wait_for(r"^READY url=")
    token = coord.wait_for(r"^join token: (\S+)$").group(1)
    stored = data / "join_token"
    assert stored.read_text().strip() == token
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert str(stored) in coord.text("stdout")
    coord.send(signal.SIGINT)
    assert coord.wait_exit() == 0
    assert coord.text("stdout").count(token) == 1
    assert token not in coord.text("stderr")

    # Restarted on the same data dir it reuses the stored token and prints nothing of it.
    again = _coordinator(procs, args, clean_env())
    again.wait_for(r"^READY url=")
    again.send(signal.SIGINT)
    assert again.wait_exit() == 0
    assert "join token" not in again.text("stdout")
    assert token not in again.text()
    assert stored.read_text().strip() == token


def test_agent_role_coordinator_runs_the_coordinator(runner: CliRunner) -> None:
    # Same start-up path as edge-coordinator: here it fails to bind, like the coordinator.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(
            agent_app,
            ["--role", "coordinator", "--listen", f"ws://127.0.0.1:{port}", "--join-token", "t"],
            env=unset_swarm_env(),
        )
    assert result.exit_code == 2, result.output
    assert f"cannot listen on ws://127.0.0.1:{port}" in result.stderr


def test_commands_run_on_uvloop_when_it_is_installed() -> None:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    expected = "uvloop" if sys.platform != "win32" else "asyncio"
    assert run_loop(loop_module()).startswith(expected)
