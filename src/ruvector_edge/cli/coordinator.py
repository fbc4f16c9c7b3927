"""``edge-coordinator``: run a swarm coordinator until SIGINT/SIGTERM.

It admits agents (join token, or ``--insecure-open``), hands out tasks, merges what the
agents learn and, with ``--data-dir``, persists everything. Once listening it prints one
line ``READY url=<url> id=<id>`` to stdout (scripts wait for it). Settings come from code
defaults < ``--config`` file < environment (``SWARM_*``) < flags.

Exit codes: 0 after a clean stop, 2 when it cannot start (bad flag or config, port in use).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ruvector_edge.cli._common import CoordinatorFlags, run_coordinator

HELP = (
    "Run a swarm coordinator until SIGINT/SIGTERM: it admits agents (join token, or "
    "--insecure-open), hands out tasks, merges what agents learn and, with --data-dir, "
    "persists it all.\n\n"
    "Once listening it prints one line 'READY url=<url> id=<id>' to stdout. Settings: code "
    "defaults < --config file < environment (SWARM_*) < flags.\n\n"
    "Exit codes: 0 after a clean stop; 2 when it cannot start (bad flag or config, port "
    "in use)."
)

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, help=HELP)

TRANSPORT_HELP = (
    "Transport: websocket|ws or shared-memory|shm (in-process|inproc cannot serve other "
    "processes and is refused). Env: SWARM_TRANSPORT. Default: websocket, or the scheme "
    "of --listen."
)
LISTEN_HELP = (
    "Address to listen on: ws://HOST:PORT (port 0 picks a free one; READY shows it) or "
    "shm://NAME. Default: coordinator_url from --config/SWARM_COORDINATOR, else "
    "ws://127.0.0.1:8080 (websocket) or shm://ruvector-edge (shared-memory)."
)
MAX_AGENTS_HELP = "Most agents connected at once; more are refused (config/SWARM_MAX_AGENTS; 100)."
DATA_DIR_HELP = (
    "Directory for persisted state (patterns, memories, tasks, key, join token); a restart "
    "loses nothing acknowledged. Env: SWARM_DATA_DIR. Default: in memory only."
)
JOIN_TOKEN_HELP = (
    "Swarm secret agents must present to join. Env: SWARM_JOIN_TOKEN (prefer it: command "
    "lines are visible to other users). Default: the token stored in --data-dir, else a "
    "generated one printed once. Never logged."
)
INSECURE_HELP = "Admit any agent without a token. Only for trusted, isolated networks."
SYNC_HELP = (
    "Sync interval in ms: paces state exchange with --peers and is announced to agents. "
    "Env: SWARM_SYNC_INTERVAL. Default 1000."
)
HEARTBEAT_HELP = (
    "Heartbeat interval in ms (default 1000), announced to agents on join; an agent silent "
    "for 3 intervals is declared failed and its tasks go to others."
)
CONFIG_HELP = "TOML config file: SwarmConfig field names, at top level or in a 'swarm' table."
VERBOSE_HELP = (
    "More logging to stderr: -v info, -vv debug. Default: SWARM_LOG / RUST_LOG, else warning."
)


@app.command(help=HELP)
def coordinator(
    *,
    agent_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="Coordinator id (config/SWARM_AGENT_ID; default 'coordinator').",
            show_default=False,
        ),
    ] = None,
    transport: Annotated[str | None, typer.Option(help=TRANSPORT_HELP, show_default=False)] = None,
    listen: Annotated[str | None, typer.Option(help=LISTEN_HELP, show_default=False)] = None,
    max_agents: Annotated[
        int | None, typer.Option(help=MAX_AGENTS_HELP, show_default=False)
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help=DATA_DIR_HELP, show_default=False)] = None,
    join_token: Annotated[
        str | None, typer.Option(help=JOIN_TOKEN_HELP, show_default=False)
    ] = None,
    insecure_open: Annotated[bool, typer.Option("--insecure-open", help=INSECURE_HELP)] = False,
    allocator: Annotated[
        str,
        typer.Option(
            help="Who gets a task: learned (learns which agents succeed), round-robin, "
            "least-loaded or capability."
        ),
    ] = "learned",
    peers: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated URLs of the other coordinators of this swarm; they elect "
            "one leader that hands out tasks and share learned state.",
            show_default=False,
        ),
    ] = None,
    sync_interval: Annotated[int | None, typer.Option(help=SYNC_HELP, show_default=False)] = None,
    heartbeat_interval: Annotated[
        int | None, typer.Option(help=HEARTBEAT_HELP, show_default=False)
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help=CONFIG_HELP, show_default=False)
    ] = None,
    status_interval: Annotated[
        float,
        typer.Option(
            help="Seconds between status tables (roster, tasks, counters) on stdout; 0 = off."
        ),
    ] = 0.0,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help=VERBOSE_HELP)] = 0,
) -> None:
    """Run a swarm coordinator until SIGINT/SIGTERM ."""
    code = run_coordinator(
        CoordinatorFlags(
            agent_id=agent_id,
            transport=transport,
            listen=listen,
            max_agents=max_agents,
            data_dir=data_dir,
            join_token=join_token,
            insecure_open=insecure_open,
            allocator=allocator,
            peers=peers,
            sync_interval=sync_interval,
            heartbeat_interval=heartbeat_interval,
            config_file=config,
            status_interval=status_interval,
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
