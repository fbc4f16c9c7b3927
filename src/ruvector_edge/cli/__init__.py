"""Command-line tools (typer + rich). Each module exposes a ``main()`` entry point."""

__all__: list[str] = []
