"""Shared benchmark plumbing: timing, a printed table, and JSON results.

Every benchmark measures our code and a peer/baseline in the same run, so ratios are
meaningful on whatever machine runs them. Results go to ``benchmarks/results/<area>.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS_DIR = Path(__file__).resolve().parent / "results"
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")

try:
    import uvloop
except ImportError:  # Windows
    uvloop = None  # type: ignore[assignment]

LOOP = "asyncio" if os.environ.get("BENCH_LOOP") == "asyncio" or uvloop is None else "uvloop"
"""The event loop benchmarks run on: uvloop, as the ruvector-edge commands do, unless it is
missing or ``BENCH_LOOP=asyncio`` asks for the standard library's."""


def run_loop(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on :data:`LOOP` (child processes inherit ``BENCH_LOOP``)."""
    if LOOP == "uvloop":
        return uvloop.run(coro)
    return asyncio.run(coro)


def measure(fn: Callable[[], object], *, repeat: int = 5, min_time: float = 0.2) -> float:
    """Seconds per call of ``fn``: the best of ``repeat`` rounds, each at least ``min_time``.

    Best-of is the usual choice for micro benchmarks: noise only ever adds time.
    """
    fn()  # warm up caches, lazy imports, allocator
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time / 4 or number >= 1 << 20:
            break
        number *= 4
    number = max(1, int(number * (min_time / max(elapsed, 1e-9)) / 4) or 1)
    rounds = []
    for _ in range(repeat if not QUICK else 2):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - start) / number)
    return min(rounds)


def median_time(fn: Callable[[], object], *, repeat: int = 5) -> float:
    """Median seconds of ``repeat`` single calls (for long-running operations)."""
    fn()
    return statistics.median(_once(fn) for _ in range(repeat if not QUICK else 2))


def _once(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class Report:
    """Rows of one benchmark area, printed as a table and saved as JSON."""

    area: str
    columns: Sequence[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        """Append one row (keys should be among ``columns``)."""
        self.rows.append(row)

    def target(
        self, name: str, value: float, goal: float, *, higher_is_better: bool = True
    ) -> bool:
        """Record a target check; returns whether it was met."""
        met = value >= goal if higher_is_better else value <= goal
        self.targets.append(
            {
                "name": name,
                "value": value,
                "goal": goal,
                "higher_is_better": higher_is_better,
                "met": met,
            }
        )
        return met

    def print(self, console: Console | None = None) -> None:
        """Print the rows and target checks as rich tables."""
        console = console or Console()
        table = Table(title=f"benchmark: {self.area}", show_lines=False)
        for col in self.columns:
            table.add_column(col, justify="left" if col == self.columns[0] else "right")
        for row in self.rows:
            table.add_row(*(_fmt(row.get(col, "")) for col in self.columns))
        console.print(table)
        if self.targets:
            t = Table(title=f"targets: {self.area}")
            for col in ("target", "measured", "goal", "met"):
                t.add_column(col)
            for tg in self.targets:
                op = ">=" if tg["higher_is_better"] else "<="
                t.add_row(
                    tg["name"],
                    _fmt(tg["value"]),
                    f"{op} {_fmt(tg['goal'])}",
                    "yes" if tg["met"] else "NO",
                )
            console.print(t)
        for note in self.notes:
            console.print(f"[dim]{note}[/dim]")

    def save(self) -> Path:
        """Write ``benchmarks/results/<area>.json`` and return its path."""
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.area}.json"
        payload = {
            "area": self.area,
            "machine": machine_info(),
            "quick": QUICK,
            "columns": list(self.columns),
            "rows": self.rows,
            "targets": self.targets,
            "notes": self.notes,
        }
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
        return path


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.01:
            return f"{value:.3f}"
        return f"{value:.2e}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
