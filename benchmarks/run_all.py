"""Run every ``benchmarks/bench_*.py`` script in turn; each writes its JSON result.

Usage: ``python -m benchmarks.run_all [area ...]`` (``BENCH_QUICK=1`` for a short run).
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

from rich.console import Console


def main(argv: list[str] | None = None) -> int:
    """Run the named areas (default: all) and return a process exit code."""
    wanted = set(argv if argv is not None else sys.argv[1:])
    here = Path(__file__).resolve().parent
    console = Console()
    failed: list[str] = []
    for script in sorted(here.glob("bench_*.py")):
        area = script.stem.removeprefix("bench_")
        if wanted and area not in wanted:
            continue
        console.rule(f"[bold]{area}")
        start = time.perf_counter()
        module = importlib.import_module(f"benchmarks.{script.stem}")
        try:
            module.main()
        except Exception as exc:  # report and keep running the other areas
            console.print(f"[red]{area} failed: {exc!r}")
            failed.append(area)
        console.print(f"[dim]{area}: {time.perf_counter() - start:.1f}s[/dim]")
    if failed:
        console.print(f"[red]failed areas: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
