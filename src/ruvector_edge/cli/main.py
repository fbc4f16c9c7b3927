"""``ruvector-edge``: the umbrella command; sub-commands are mounted as typer groups.

Currently: ``ruvector-edge nn ...`` (neural networks, see ``ruvector_edge.cli.nn``).
"""

from __future__ import annotations

import typer

from ruvector_edge.cli.nn import app as nn_app

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="ruvector-edge tools for self-learning agent swarms.",
)
app.add_typer(nn_app, name="nn", help="Train and run FANN-compatible neural networks.")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
