"""Shared plumbing of ``edge-coordinator`` and ``edge-agent``.

Configuration building (defaults < config file < environment < flags), logging set-up,
clean SIGINT/SIGTERM handling, task-handler loading (``--handlers MODULE:ATTR`` or
``builtin``), and the coordinator run loop that both commands use.

Exit codes: 0 after a clean stop, 2 for an error at start-up (bad flags or config, port in
use, join refused...), 3 when an agent loses its coordinator for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
import math
import os
import signal
import sys
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from pathlib import Path
from typing import Any, Final, TypeVar

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table
from rich.text import Text

from ruvector_edge.config import AgentRole, SwarmConfig, Transport
from ruvector_edge.errors import ConfigError, EdgeError, InvalidInputError
from ruvector_edge.swarm import ALLOCATORS, Coordinator, TaskContext, TaskHandler
from ruvector_edge.transport import parse_url

__all__ = [
    "BUILTIN_HANDLERS",
    "EXIT_LINK_LOST",
    "EXIT_OK",
    "EXIT_STARTUP",
    "MAX_SLEEP_SECONDS",
    "CoordinatorFlags",
    "CoordinatorOptions",
    "build_config",
    "configure_logging",
    "echo_handler",
    "load_handlers",
    "normalize_urls",
    "prepare_coordinator",
    "print_error",
    "require_network_transport",
    "run_async",
    "run_coordinator",
    "run_loop",
    "serve_coordinator",
    "sleep_handler",
    "sleep_seconds",
    "split_csv",
    "status_tables",
    "stop_signals",
    "write_line",
]

logger = logging.getLogger("ruvector_edge.cli")

EXIT_OK: Final = 0
EXIT_STARTUP: Final = 2
EXIT_LINK_LOST: Final = 3
MAX_SLEEP_SECONDS: Final = 60.0

DEFAULT_LISTEN: Final[Mapping[Transport, str]] = {
    Transport.WEBSOCKET: "ws://127.0.0.1:8080",
    Transport.SHARED_MEMORY: "shm://ruvector-edge",
}
_OWN_HANDLER = "_ruvector_edge_cli"
_TOKEN_FILE = "join_token"  # where Coordinator stores a generated token under data_dir


# ==================================================================== output
def write_line(line: str) -> None:
    """Write one machine-readable line to stdout and flush it (no rich wrapping)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _stderr() -> Console:
    # Created per call so it follows sys.stderr (test runners swap it); soft_wrap keeps
    # one message on one line when stderr is not a terminal.
    return Console(stderr=True, soft_wrap=True, highlight=False)


def print_error(message: str) -> None:
    """Print ``error: <message>`` in red on one line to stderr."""
    one_line = " ".join(message.splitlines())
    _stderr().print(Text("error: ", style="bold red") + Text(one_line, style="red"))


def _warn(message: str) -> None:
    _stderr().print(Text("warning: ", style="bold yellow") + Text(message))


# ==================================================================== config
def split_csv(value: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; None -> ``[]``."""
    if not value:
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


def _verbosity_level(verbose: int) -> str | None:
    if verbose <= 0:
        return None
    return "info" if verbose == 1 else "debug"


def build_config(
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    verbose: int = 0,
    base: SwarmConfig | None = None,
    **overrides: Any,
) -> SwarmConfig:
    """Defaults < ``config_file`` (TOML) < environment (``SWARM_*``) < ``overrides``.

    This is :meth:`SwarmConfig.load` with CLI defaults as the bottom layer: ``base``
    (e.g. ``agent_id="coordinator"``) and a log level of ``warning`` unless the file,
    ``SWARM_LOG``/``RUST_LOG`` or ``-v`` (info) / ``-vv`` (debug) say otherwise.
    ``None`` overrides mean "flag not given" and change nothing.
    """
    config = base if base is not None else SwarmConfig(log_level="warning")
    if config_file is not None:
        config = SwarmConfig.from_file(config_file, base=config)
    config = SwarmConfig.from_env(environ, base=config)
    level = _verbosity_level(verbose)
    if level is not None:
        overrides["log_level"] = level
    return config.replace(**{k: v for k, v in overrides.items() if v is not None})


def configure_logging(config: SwarmConfig) -> None:
    """Log to stderr at ``config.log_level`` (rich output on a terminal, plain otherwise)."""
    level = config.logging_level()
    handler: logging.Handler
    if sys.stderr.isatty():
        handler = RichHandler(console=_stderr(), show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _OWN_HANDLER, False):
            root.removeHandler(old)
    setattr(handler, _OWN_HANDLER, True)
    root.addHandler(handler)
    root.setLevel(level)
    # websockets logs every connection at INFO: show that only at debug level.
    logging.getLogger("websockets").setLevel(
        level if level <= logging.DEBUG else max(level, logging.WARNING)
    )


def require_network_transport(transport: Transport, what: str) -> None:
    """Refuse the in-process transport for a standalone process."""
    if transport is Transport.IN_PROCESS:
        raise ConfigError(
            f"the in-process transport only links agents inside one Python process, so {what} "
            "cannot use it; use --transport websocket (ws://HOST:PORT) or shared-memory "
            "(shm://NAME)"
        )


def normalize_urls(urls: Iterable[str], transport: Transport, what: str) -> list[str]:
    """Validate transport URLs; scheme-less ones get ``transport``'s scheme.

    Raises ``ConfigError`` for a malformed URL or one that needs the in-process transport.
    """
    out: list[str] = []
    for url in urls:
        try:
            endpoint = parse_url(url, transport)
        except ConfigError as exc:
            raise ConfigError(f"{what}: {exc.message}") from None
        require_network_transport(endpoint.kind, what)
        out.append(endpoint.url)
    return out


# ==================================================================== handlers
async def echo_handler(ctx: TaskContext) -> dict[str, Any]:
    """Built-in ``echo`` task: returns the task's parameters unchanged."""
    return dict(ctx.task.parameters)


def sleep_seconds(parameters: Mapping[str, Any]) -> float:
    """The duration a ``sleep`` task asks for (``seconds``, default 1), clamped to 0..60."""
    raw = parameters.get("seconds", 1.0)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise InvalidInputError(f"sleep: 'seconds' must be a finite number, got {raw!r}")
    return min(max(float(raw), 0.0), MAX_SLEEP_SECONDS)


async def sleep_handler(ctx: TaskContext) -> dict[str, Any]:
    """Built-in ``sleep`` task: sleeps ``parameters["seconds"]`` (at most 60 s)."""
    seconds = sleep_seconds(ctx.task.parameters)
    await asyncio.sleep(seconds)
    return {"slept": seconds}


BUILTIN_HANDLERS: Final[Mapping[str, TaskHandler]] = {
    "echo": echo_handler,
    "sleep": sleep_handler,
}
"""What ``--handlers builtin`` registers: ``echo`` and ``sleep``."""


def _load_one(spec: str) -> dict[str, TaskHandler]:
    if spec.strip().lower() == "builtin":
        return dict(BUILTIN_HANDLERS)
    module_name, sep, attr = spec.strip().partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            f"--handlers {spec!r}: expected MODULE:ATTR (e.g. mypkg.tasks:HANDLERS) or 'builtin'"
        )
    # Console scripts do not put the working directory on sys.path; plugins next to
    # where the user runs the command should still import.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the plugin raised while importing
        raise ConfigError(
            f"--handlers {spec!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    try:
        obj: Any = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"--handlers {spec!r}: module {module_name!r} has no {attr!r}") from None
    if not isinstance(obj, Mapping) and callable(obj):
        try:
            obj = obj()
        except Exception as exc:
            raise ConfigError(
                f"--handlers {spec!r}: {attr} must be a dict or a zero-argument callable "
                f"returning one; calling it failed: {type(exc).__name__}: {exc}"
            ) from None
    if not isinstance(obj, Mapping):
        raise ConfigError(
            f"--handlers {spec!r}: {attr} must be a dict {{task_type: async handler}} or a "
            f"zero-argument callable returning one, got {type(obj).__name__}"
        )
    handlers: dict[str, TaskHandler] = {}
    for task_type, handler in obj.items():
        if not isinstance(task_type, str) or not task_type:
            raise ConfigError(f"--handlers {spec!r}: task types must be non-empty strings")
        if not callable(handler):
            raise ConfigError(
                f"--handlers {spec!r}: the handler for {task_type!r} is not callable "
                f"({type(handler).__name__})"
            )
        handlers[task_type] = handler
    return handlers


def load_handlers(specs: Sequence[str]) -> dict[str, TaskHandler]:
    """Load ``--handlers`` specs in order (later ones override a task type).

    Each spec is ``builtin`` or ``MODULE:ATTR`` where ``ATTR`` is a dict
    ``{task_type: async handler}`` or a zero-argument callable returning one. Raises
    ``ConfigError`` saying which spec is wrong and why.
    """
    handlers: dict[str, TaskHandler] = {}
    for spec in specs:
        handlers.update(_load_one(spec))
    return handlers


# ==================================================================== signals and running
@contextlib.asynccontextmanager
async def stop_signals() -> AsyncIterator[asyncio.Event]:
    """Yield an event set by SIGINT or SIGTERM (a second signal exits at once, code 130)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            print_error(f"{sig.name} again: exiting without a clean shutdown")
            os._exit(130)
        logger.info("%s received; shutting down", sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            continue
        installed.append(sig)
    try:
        yield stop
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


_T = TypeVar("_T")


def run_loop(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion on uvloop when it is installed, else on asyncio's loop.

    uvloop's C event loop roughly halves the per-message cost of our transports and the
    HTTP server (see the benchmark tables), so every command runs on it.
    """
    factory = _uvloop_factory()
    if factory is None:  # Windows, or a trimmed install
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        module = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = module.new_event_loop
    return factory


def run_async(main: Callable[[], Awaitable[int]]) -> int:
    """Run ``main()`` in a fresh event loop; an ``EdgeError`` or ``OSError`` that escapes
    (i.e. at start-up) is printed as ``error: ...`` and becomes exit code 2."""

    async def runner() -> int:
        return await main()

    try:
        return run_loop(runner())
    except EdgeError as exc:
        print_error(exc.message)
    except OSError as exc:
        print_error(str(exc))
    return EXIT_STARTUP


# ==================================================================== coordinator
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CoordinatorFlags:
    """The command-line flags of a coordinator (``None``: flag not given)."""

    agent_id: str | None = None
    transport: str | None = None
    listen: str | None = None
    max_agents: int | None = None
    data_dir: Path | None = None
    join_token: str | None = None
    insecure_open: bool = False
    allocator: str = "learned"
    peers: str | None = None
    sync_interval: int | None = None
    heartbeat_interval: int | None = None
    config_file: Path | None = None
    status_interval: float = 0.0
    verbose: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class CoordinatorOptions:
    """What ``Coordinator(...)`` gets besides the config."""

    listen: str
    join_token: str | None = None
    insecure_open: bool = False
    allocator: str = "learned"
    peers: tuple[str, ...] = ()
    status_interval: float = 0.0


def prepare_coordinator(
    flags: CoordinatorFlags, environ: Mapping[str, str] | None = None
) -> tuple[SwarmConfig, CoordinatorOptions]:
    """Build and check a coordinator's config and options from flags, file and environment.

    The id defaults to ``coordinator``. The listen address is ``--listen``, else
    ``coordinator_url`` (file or ``SWARM_COORDINATOR``), else the transport's default. A
    listen URL with a scheme decides the transport unless ``--transport`` was given, in
    which case they must agree. Raises ``ConfigError`` saying what is wrong.
    """
    config = build_config(
        config_file=flags.config_file,
        environ=environ,
        verbose=flags.verbose,
        base=SwarmConfig(agent_id="coordinator", log_level="warning"),
        agent_id=flags.agent_id,
        transport=None if flags.transport is None else Transport.parse(flags.transport),
        max_agents=flags.max_agents,
        data_dir=flags.data_dir,
        join_token=flags.join_token,
        sync_interval_ms=flags.sync_interval,
        heartbeat_interval_ms=flags.heartbeat_interval,
    ).with_role(AgentRole.COORDINATOR)
    address = flags.listen
    if address is None and config.coordinator_url and "," not in config.coordinator_url:
        address = config.coordinator_url
    if address is None:
        require_network_transport(config.transport, "edge-coordinator")
        address = DEFAULT_LISTEN[config.transport]
    try:
        endpoint = parse_url(address, config.transport)
    except ConfigError as exc:
        raise ConfigError(f"--listen: {exc.message}") from None
    require_network_transport(endpoint.kind, "edge-coordinator")
    if endpoint.kind is not config.transport:
        if flags.transport is not None and "://" in address:
            raise ConfigError(
                f"--listen {address!r} is a {endpoint.kind.value} address but --transport is "
                f"{config.transport.value}; drop one or make them agree"
            )
        config = config.with_transport(endpoint.kind)
    allocator = flags.allocator.strip().lower().replace("_", "-")
    if allocator not in ALLOCATORS:
        raise ConfigError(
            f"unknown allocator {flags.allocator!r}; expected one of: {', '.join(ALLOCATORS)}"
        )
    interval = flags.status_interval
    if not math.isfinite(interval) or interval < 0:
        raise ConfigError(f"--status-interval must be >= 0 seconds, got {interval}")
    options = CoordinatorOptions(
        listen=endpoint.url,
        join_token=config.join_token,
        insecure_open=flags.insecure_open,
        allocator=allocator,
        peers=tuple(normalize_urls(split_csv(flags.peers), config.transport, "--peers")),
        status_interval=interval,
    )
    return config, options


def _announce_token(coordinator: Coordinator) -> None:
    token = coordinator.join_token
    if not coordinator.generated_token or token is None:
        return
    write_line(f"join token: {token}")
    if coordinator.data_dir is not None:
        where = coordinator.data_dir / _TOKEN_FILE
        write_line(f"  stored in {where} (mode 0600); it is reused on every restart")
    else:
        write_line("  ephemeral: not stored (no --data-dir); a restart generates a new one")
    write_line("  agents join with SWARM_JOIN_TOKEN=<token> (or --join-token)")


def _warn_open(coordinator: Coordinator) -> None:
    console = _stderr()
    console.print(
        Text(
            "!!! WARNING: --insecure-open: this coordinator admits ANY agent that can reach "
            f"{coordinator.url} without a join token. Such agents can read everything the "
            "swarm learned and run or submit tasks. Use it only on a trusted, isolated "
            "network. !!!",
            style="bold red",
        )
    )


def status_tables(coordinator: Coordinator) -> list[Table]:
    """The roster, task counts and counters of ``coordinator`` as rich tables."""
    now_ms = int(time.time() * 1000)
    roster = Table(
        "agent", "role", "capabilities", "load", "connected", "last seen", title="roster"
    )
    for peer in sorted(coordinator.roster(), key=lambda p: p.agent_id):
        roster.add_row(
            peer.agent_id,
            peer.role,
            ", ".join(peer.capabilities) or "-",
            f"{peer.load:g}",
            "yes" if peer.connected else "[red]no[/]",
            f"{max(0, now_ms - peer.last_seen_ms) / 1000:.1f}s ago",
        )
    stats = coordinator.stats()
    tasks = Table("state", "tasks", title="tasks")
    for state, count in sorted(stats.tasks.items()):
        tasks.add_row(state, str(count))
    counters = Table("counter", "value", title=f"coordinator {stats.coordinator_id}")
    leader = "yes" if stats.is_leader else f"no (leader: {stats.leader_id})"
    for name, value in (
        ("url", stats.url),
        ("leader", leader),
        ("term", str(stats.term)),
        ("agents connected / known", f"{stats.agents_connected} / {stats.agents_known}"),
        ("patterns (origins)", f"{stats.patterns} ({stats.pattern_origins})"),
        ("memories", str(stats.memories)),
        ("messages in", str(stats.messages_in)),
        ("pattern / memory syncs", f"{stats.pattern_syncs} / {stats.memory_syncs}"),
        ("tasks dispatched / retried", f"{stats.tasks_dispatched} / {stats.tasks_retried}"),
        ("agents lost", str(stats.agents_lost)),
        ("replies dropped", str(stats.replies_dropped)),
        ("rejected", str(stats.rejected)),
    ):
        counters.add_row(name, value)
    return [roster, tasks, counters]


async def _status_loop(coordinator: Coordinator, interval: float) -> None:
    console = Console(highlight=False)
    while True:
        await asyncio.sleep(interval)
        for table in status_tables(coordinator):
            console.print(table)


async def serve_coordinator(config: SwarmConfig, options: CoordinatorOptions) -> int:
    """Start a coordinator, print its token (if generated) and ``READY url=... id=...``,
    serve until SIGINT/SIGTERM, then stop it cleanly. Start-up errors propagate."""
    coordinator = Coordinator(
        config,
        listen=options.listen,
        join_token=options.join_token,
        insecure_open=options.insecure_open,
        allocator=options.allocator,
        peers=list(options.peers),
    )
    async with stop_signals() as stop:
        await coordinator.start()
        status: asyncio.Task[None] | None = None
        try:
            if options.insecure_open:
                _warn_open(coordinator)
            _announce_token(coordinator)
            write_line(f"READY url={coordinator.url} id={coordinator.agent_id}")
            if options.status_interval > 0:
                status = asyncio.ensure_future(_status_loop(coordinator, options.status_interval))
            await stop.wait()
        finally:
            if status is not None:
                status.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await status
            await coordinator.stop()
    return EXIT_OK


def run_coordinator(flags: CoordinatorFlags) -> int:
    """Everything ``edge-coordinator`` does, from flags to exit code (also used by
    ``edge-agent --role coordinator``)."""
    try:
        config, options = prepare_coordinator(flags)
    except EdgeError as exc:
        print_error(exc.message)
        return EXIT_STARTUP
    configure_logging(config)
    logger.debug("configuration: %r", config)  # SwarmConfig's repr hides the join token
    if options.insecure_open and config.join_token:
        _warn(
            "--insecure-open admits agents without a token; the join token only refuses "
            "agents that present a wrong one"
        )
    return run_async(lambda: serve_coordinator(config, options))
