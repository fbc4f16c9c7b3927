"""``edge-agent``: run a swarm agent (or, with ``--role coordinator``, a coordinator).

The agent joins the coordinator(s) given by ``--coordinator`` / ``SWARM_COORDINATOR``,
runs the tasks it is handed with the ``--handlers`` it loaded, shares what it learns, and
prints ``READY agent=<id> coordinator=<id>`` to stdout once joined. SIGINT/SIGTERM make
it leave the swarm cleanly (LEAVE, flush, persist). Settings come from code defaults <
``--config`` file < environment (``SWARM_*``) < flags.

Exit codes: 0 after a clean stop, 2 when it cannot start (bad flag, no coordinator, join
refused), 3 when the coordinator refuses to take it back after a lost link.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from ruvector_edge.cli._common import (
    EXIT_LINK_LOST,
    EXIT_OK,
    EXIT_STARTUP,
    CoordinatorFlags,
    build_config,
    configure_logging,
    load_handlers,
    normalize_urls,
    print_error,
    run_async,
    run_coordinator,
    split_csv,
    stop_signals,
    write_line,
)
from ruvector_edge.cli.coordinator import (
    CONFIG_HELP,
    DATA_DIR_HELP,
    INSECURE_HELP,
    LISTEN_HELP,
    MAX_AGENTS_HELP,
    VERBOSE_HELP,
)
from ruvector_edge.config import AgentRole, SwarmConfig, Transport
from ruvector_edge.errors import ConfigError, EdgeError
from ruvector_edge.swarm import SwarmAgent, TaskHandler

HELP = (
    "Run a swarm agent until SIGINT/SIGTERM: it joins the coordinator (--coordinator or "
    "SWARM_COORDINATOR), runs the tasks it is given with its --handlers and shares what it "
    "learns. With --role coordinator it runs a coordinator instead, like edge-coordinator."
    "\n\n"
    "Once joined it prints one line 'READY agent=<id> coordinator=<id>' to stdout; "
    "SIGINT/SIGTERM make it leave cleanly. Settings: code defaults < --config file < "
    "environment (SWARM_*) < flags.\n\n"
    "Exit codes: 0 after a clean stop; 2 when it cannot start (bad flag, no coordinator, "
    "join refused); 3 when the coordinator will not take it back after a lost link."
)

__all__ = ["AgentFlags", "app", "main", "prepare_agent", "run_agent", "serve_agent"]

app = typer.Typer(add_completion=False, help=HELP)
logger = logging.getLogger("ruvector_edge.cli")


async def serve_agent(
    config: SwarmConfig,
    *,
    capabilities: Sequence[str] = (),
    handlers: Mapping[str, TaskHandler] | None = None,
    seed: int | None = None,
    exploration: float | None = None,
) -> int:
    """Join the swarm, print ``READY agent=... coordinator=...``, serve until a signal
    (leave cleanly: 0) or until the link is lost for good (3). Start-up errors propagate."""
    agent = SwarmAgent(
        config, capabilities=capabilities, handlers=handlers, seed=seed, exploration=exploration
    )
    async with stop_signals() as stop:
        stopped = asyncio.ensure_future(stop.wait())
        try:
            joining = asyncio.ensure_future(agent.join_swarm())
            await asyncio.wait({joining, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not joining.done():  # interrupted while still dialling
                joining.cancel()
                with contextlib.suppress(asyncio.CancelledError, EdgeError):
                    await joining
                await agent.leave_swarm("interrupted")
                return EXIT_OK
            try:
                joining.result()
            except BaseException:
                await agent.leave_swarm("join failed")
                raise
            write_line(f"READY agent={agent.agent_id} coordinator={agent.coordinator_id}")
            supervisor = agent._supervisor
            waits: set[asyncio.Future[Any]] = {stopped}
            if supervisor is not None:
                waits.add(supervisor)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if stopped.done():
                await agent.leave_swarm("shutting down")
                return EXIT_OK
            # The supervisor only ends on its own when the link cannot be restored.
            reason: object = agent._fatal
            if reason is None and supervisor is not None and not supervisor.cancelled():
                reason = supervisor.exception()
            await agent.leave_swarm("link lost")
            print_error(f"lost the coordinator for good: {reason or 'unknown reason'}")
            return EXIT_LINK_LOST
        finally:
            stopped.cancel()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AgentFlags:
    """The command-line flags of ``edge-agent`` (``None``: flag not given)."""

    agent_id: str | None = None
    role: str | None = None
    coordinator: str | None = None
    transport: str | None = None
    sync_interval: int | None = None
    heartbeat_interval: int | None = None
    capabilities: str | None = None
    join_token: str | None = None
    data_dir: Path | None = None
    handlers: tuple[str, ...] = ()
    seed: int | None = None
    exploration: float | None = None
    listen: str | None = None
    max_agents: int | None = None
    insecure_open: bool = False
    config_file: Path | None = None
    verbose: int = 0

    def as_coordinator(self) -> CoordinatorFlags:
        """The flags ``--role coordinator`` hands to the coordinator."""
        return CoordinatorFlags(
            agent_id=self.agent_id,
            transport=self.transport,
            listen=self.listen,
            max_agents=self.max_agents,
            data_dir=self.data_dir,
            join_token=self.join_token,
            insecure_open=self.insecure_open,
            sync_interval=self.sync_interval,
            heartbeat_interval=self.heartbeat_interval,
            config_file=self.config_file,
            verbose=self.verbose,
        )


def _reject_flags(given: Mapping[str, bool], why: str) -> None:
    bad = [name for name, present in given.items() if present]
    if bad:
        raise ConfigError(f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} {why}")


def prepare_agent(flags: AgentFlags, environ: Mapping[str, str] | None = None) -> SwarmConfig:
    """Build and check the config from flags, ``--config`` file and environment.

    For an agent role, ``coordinator_url`` becomes the validated, comma-joined list of
    coordinator URLs (scheme-less ones get the transport's scheme). For the coordinator
    role the agent-only flags are refused (the coordinator builds its own config).
    Raises ``ConfigError`` saying what is wrong.
    """
    config = build_config(
        config_file=flags.config_file,
        environ=environ,
        verbose=flags.verbose,
        agent_id=flags.agent_id,
        agent_role=None if flags.role is None else AgentRole.parse(flags.role),
        transport=None if flags.transport is None else Transport.parse(flags.transport),
        coordinator_url=flags.coordinator,
        sync_interval_ms=flags.sync_interval,
        heartbeat_interval_ms=flags.heartbeat_interval,
        join_token=flags.join_token,
        data_dir=flags.data_dir,
    )
    if config.agent_role is AgentRole.COORDINATOR:
        _reject_flags(
            {
                "--coordinator": flags.coordinator is not None,
                "--capabilities": flags.capabilities is not None,
                "--handlers": bool(flags.handlers),
                "--seed": flags.seed is not None,
                "--exploration": flags.exploration is not None,
            },
            "for agents; a coordinator listens (--listen) instead",
        )
        return config
    _reject_flags(
        {
            "--listen": flags.listen is not None,
            "--max-agents": flags.max_agents is not None,
            "--insecure-open": flags.insecure_open,
        },
        "only used with --role coordinator",
    )
    if not config.coordinator_url:
        raise ConfigError(
            "no coordinator to join: pass --coordinator ws://HOST:PORT (or shm://NAME) "
            "or set SWARM_COORDINATOR"
        )
    urls = normalize_urls(split_csv(config.coordinator_url), config.transport, "--coordinator")
    if not urls:
        raise ConfigError("--coordinator is empty: give at least one URL")
    return config.with_coordinator(",".join(urls))


def run_agent(flags: AgentFlags) -> int:
    """Everything ``edge-agent`` does, from flags to exit code."""
    try:
        config = prepare_agent(flags)
        if config.agent_role is AgentRole.COORDINATOR:
            return run_coordinator(flags.as_coordinator())
        handlers = load_handlers(flags.handlers)
    except EdgeError as exc:
        print_error(exc.message)
        return EXIT_STARTUP
    configure_logging(config)
    logger.debug("configuration: %r", config)  # SwarmConfig's repr hides the join token
    if not handlers:
        logger.warning(
            "no --handlers given: %s will refuse every task (try --handlers builtin)",
            config.agent_id,
        )
    return run_async(
        lambda: serve_agent(
            config,
            capabilities=split_csv(flags.capabilities),
            handlers=handlers,
            seed=flags.seed,
            exploration=flags.exploration,
        )
    )


@app.command(help=HELP)
def agent(
    *,
    agent_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="Agent id (config/SWARM_AGENT_ID; default: generated, agent-XXXXXXXX).",
            show_default=False,
        ),
    ] = None,
    role: Annotated[
        str | None,
        typer.Option(
            help="worker (runs tasks), scout (explores more, files what it saw in memory), "
            "specialist (only tasks matching its capabilities) or coordinator (runs a "
            "coordinator, like edge-coordinator). Env: SWARM_ROLE. Default: worker.",
            show_default=False,
        ),
    ] = None,
    coordinator: Annotated[
        str | None,
        typer.Option(
            help="Coordinator URL(s) to join, comma-separated (first reachable wins; "
            "ws://HOST:PORT or shm://NAME). Env: SWARM_COORDINATOR.",
            show_default=False,
        ),
    ] = None,
    transport: Annotated[
        str | None,
        typer.Option(
            help="Transport for --coordinator addresses without a scheme: websocket|ws or "
            "shared-memory|shm (in-process|inproc cannot reach another process and is "
            "refused). Env: SWARM_TRANSPORT. Default: websocket.",
            show_default=False,
        ),
    ] = None,
    sync_interval: Annotated[
        int | None,
        typer.Option(
            help="How often (ms) to share learned patterns and memories. Env: "
            "SWARM_SYNC_INTERVAL. Default 1000.",
            show_default=False,
        ),
    ] = None,
    heartbeat_interval: Annotated[
        int | None,
        typer.Option(
            help="Send a PING when nothing else was sent for this many ms (default 1000; "
            "never longer than the interval the coordinator announces).",
            show_default=False,
        ),
    ] = None,
    capabilities: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated capabilities (tasks may require them; specialists take "
            "only matching tasks).",
            show_default=False,
        ),
    ] = None,
    join_token: Annotated[
        str | None,
        typer.Option(
            help="The swarm's join token. Env: SWARM_JOIN_TOKEN (prefer it: command lines "
            "are visible to other users). Never logged.",
            show_default=False,
        ),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help=DATA_DIR_HELP, show_default=False)] = None,
    handlers: Annotated[
        list[str] | None,
        typer.Option(
            "--handlers",
            help="Task handlers, repeatable: 'builtin' (echo, sleep) or MODULE:ATTR where "
            "ATTR is a dict {task_type: async handler} or a zero-argument callable "
            "returning one.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="RNG seed for exploration (reproducible runs).", show_default=False),
    ] = None,
    exploration: Annotated[
        float | None,
        typer.Option(
            help="Exploration rate in [0, 1] (default by role: worker 0.1, scout 0.3, "
            "specialist 0.05).",
            show_default=False,
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(help="With --role coordinator only. " + LISTEN_HELP, show_default=False),
    ] = None,
    max_agents: Annotated[
        int | None,
        typer.Option(help="With --role coordinator only. " + MAX_AGENTS_HELP, show_default=False),
    ] = None,
    insecure_open: Annotated[
        bool,
        typer.Option("--insecure-open", help="With --role coordinator only. " + INSECURE_HELP),
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", help=CONFIG_HELP, show_default=False)
    ] = None,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help=VERBOSE_HELP)] = 0,
) -> None:
    """Run a swarm agent until SIGINT/SIGTERM."""
    code = run_agent(
        AgentFlags(
            agent_id=agent_id,
            role=role,
            coordinator=coordinator,
            transport=transport,
            sync_interval=sync_interval,
            heartbeat_interval=heartbeat_interval,
            capabilities=capabilities,
            join_token=join_token,
            data_dir=data_dir,
            handlers=tuple(handlers or ()),
            seed=seed,
            exploration=exploration,
            listen=listen,
            max_agents=max_agents,
            insecure_open=insecure_open,
            config_file=config,
            verbose=verbose,
        )
    )
    if code:
        raise typer.Exit(code)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
