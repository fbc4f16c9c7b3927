"""The ``edge-demo`` learning workload: real handlers, a synthetic hidden reward.

Six task types, each with four *approaches* (the actions agents learn to choose
between). Every handler really does the work: it builds the task's input from its
parameters (a seeded payload: JSON text, a numpy image, prose, table rows, log lines)
and runs the chosen approach on it (``json`` vs ``msgspec`` parsing, numpy resampling
kernels, extractive summarizers, SQL vs Python vs numpy aggregation, zlib/lz4/zstd
compression, tokenizers), returning a small digest of the output.

How *well* an approach fits a task is **not** measured from that work. It comes from a
synthetic hidden table that only :func:`reward` reads::

    _HIDDEN[task_type] = (best_capability, best_approach)
    reward  = 0.55 * (approach == best_approach)
            + 0.35 * (best_capability in the agent's capabilities)
            + noise,   noise ~ uniform(-0.04, 0.04), seeded by (task seed, type, approach)
    success = reward >= 0.6

So a task succeeds exactly when the agent picked the best approach *and* holds the best
capability: the agents must learn the approach (shared patterns, ``ctx.choose``) and the
coordinator's learned allocator must learn which capability to route each type to.
Neither the handlers' choice nor the allocator ever reads ``_HIDDEN``.

Run these handlers in an agent process with
``edge-agent --handlers ruvector_edge.cli.demo_workload:HANDLERS``.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import itertools
import json
import random
import re
import sqlite3
import zlib
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

import lz4.frame
import msgspec
import numpy as np
import zstandard
from numpy.typing import NDArray

from ruvector_edge.errors import InvalidInputError
from ruvector_edge.swarm import TaskContext, TaskHandler, TaskOutcome

__all__ = [
    "APPROACHES",
    "CAPABILITIES",
    "HANDLERS",
    "SUCCESS_THRESHOLD",
    "TASK_TYPES",
    "make_tasks",
    "reveal",
    "reward",
    "run_approach",
]

CAPABILITIES: Final[tuple[str, ...]] = ("python", "rust", "sql", "vision")
"""The capability pool the demo hands out to its agents."""

SUCCESS_THRESHOLD: Final = 0.6
"""A task succeeds when its reward reaches this."""

APPROACHES: Final[dict[str, tuple[str, ...]]] = {
    "parse-json": ("stdlib-json", "msgspec", "msgspec-struct", "raw-decode-scan"),
    "resize-image": ("nearest", "bilinear", "box-2x", "strided"),
    "summarize": ("lead", "frequency", "positional", "longest"),
    "sql-report": ("sql-group-by", "sql-window", "python-dict", "numpy-bincount"),
    "compress-logs": ("zlib-1", "zlib-9", "lz4", "zstd-3"),
    "tokenize": ("whitespace", "regex-words", "char-trigrams", "bpe-16"),
}
"""Per task type, the approaches an agent can choose from."""

TASK_TYPES: Final[tuple[str, ...]] = tuple(APPROACHES)

# The synthetic ground truth: only ``reward`` reads it. The best approach is never the
# first in its list (``get_best_action`` breaks ties by list order).
_HIDDEN: Final[dict[str, tuple[str, str]]] = {
    "parse-json": ("rust", "msgspec-struct"),
    "resize-image": ("vision", "box-2x"),
    "summarize": ("python", "positional"),
    "sql-report": ("sql", "sql-window"),
    "compress-logs": ("rust", "zstd-3"),
    "tokenize": ("sql", "bpe-16"),
}

_APPROACH_WEIGHT: Final = 0.55
_CAPABILITY_WEIGHT: Final = 0.35
_NOISE: Final = 0.04
_SIZES: Final[dict[str, tuple[int, int]]] = {
    "parse-json": (40, 120),  # records
    "resize-image": (48, 96),  # pixels per side
    "summarize": (12, 30),  # sentences
    "sql-report": (200, 600),  # rows
    "compress-logs": (100, 300),  # lines
    "tokenize": (30, 90),  # sentences
}
_MAX_SIZE: Final = 10_000


# ---------------------------------------------------------------------------- reward
def reward(task_type: str, approach: str, capabilities: Collection[str], seed: int) -> float:
    """The hidden-table reward of running ``approach`` on a ``task_type`` task (see the
    module docstring); deterministic in ``seed``."""
    try:
        best_capability, best_approach = _HIDDEN[task_type]
    except KeyError:
        raise InvalidInputError(
            f"unknown task type {task_type!r}; expected one of: {', '.join(TASK_TYPES)}"
        ) from None
    noise = random.Random(f"{seed}/{task_type}/{approach}").uniform(-_NOISE, _NOISE)
    value = (
        _APPROACH_WEIGHT * (approach == best_approach)
        + _CAPABILITY_WEIGHT * (best_capability in capabilities)
        + noise
    )
    return round(value, 6)


def reveal() -> dict[str, tuple[str, str]]:
    """The hidden table, ``{task_type: (best_capability, best_approach)}``: for showing
    after a run what the swarm should have found. Nothing that chooses may call it."""
    return dict(_HIDDEN)


# ---------------------------------------------------------------------------- inputs
_WORD_LIST: Final = (
    "agent swarm vector memory pattern sync latency shard replica leader vote task "
    "reward policy gradient cache index query token frame socket ring buffer codec "
    "tensor model edge node cluster route queue batch stream event signal metric "
    "trace span kernel thread lock atomic heap page block file disk network packet"
)
_WORDS: Final = tuple(_WORD_LIST.split())
_LEVELS: Final = ("DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR")
_COMPONENTS: Final = ("coordinator", "agent", "transport", "store", "allocator", "sync")
_REGIONS: Final = ("north", "south", "east", "west", "central")


def _sentences(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 18))]
        out.append(" ".join(words).capitalize() + rng.choice((".", ".", "!", "?")))
    return out


def _json_input(rng: random.Random, n: int) -> str:
    records = [
        {
            "id": i,
            "user": f"{rng.choice(_WORDS)}-{rng.randrange(1000)}",
            "score": round(rng.uniform(0, 100), 3),
            "tags": rng.sample(_WORDS, rng.randint(0, 4)),
            "active": rng.random() < 0.7,
        }
        for i in range(n)
    ]
    return json.dumps(records)


def _image_input(seed: int, side: int) -> NDArray[np.uint8]:
    gen = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side].astype(np.float64)
    base = np.stack(
        [128 + 100 * np.sin(x / 7.0), 128 + 100 * np.cos(y / 5.0), (x + y) * 255 / (2 * side)],
        axis=-1,
    )
    noisy = base + gen.normal(0, 12, base.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _sales_input(rng: random.Random, n: int) -> list[tuple[str, int, int]]:
    """Rows of (region, quantity, unit price in cents)."""
    return [(rng.choice(_REGIONS), rng.randint(1, 20), rng.randint(99, 9999)) for _ in range(n)]


def _log_input(rng: random.Random, n: int) -> bytes:
    lines = []
    ts = 1_700_000_000_000 + rng.randrange(10**6)
    for _ in range(n):
        ts += rng.randint(0, 250)
        lines.append(
            f"{ts} {rng.choice(_LEVELS):5} {rng.choice(_COMPONENTS)}: "
            f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} id={rng.randrange(10**6):06d} "
            f"took={rng.randint(0, 900)}ms"
        )
    return ("\n".join(lines) + "\n").encode()


# ---------------------------------------------------------------------------- approaches
class _Record(msgspec.Struct):
    id: int
    score: float
    tags: list[str]


def _json_summary(records: list[Any]) -> dict[str, Any]:
    def get(r: Any, key: str) -> Any:
        return r[key] if isinstance(r, dict) else getattr(r, key)

    tags: collections.Counter[str] = collections.Counter()
    for r in records:
        tags.update(get(r, "tags"))
    top = sorted(records, key=lambda r: (-get(r, "score"), get(r, "id")))[:5]
    return {
        "count": len(records),
        "total_score": round(sum(get(r, "score") for r in records), 3),
        "top_ids": [get(r, "id") for r in top],
        "top_tags": sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))[:5],
    }


def _parse_json(approach: str, text: str) -> bytes:
    if approach == "stdlib-json":
        return json.dumps(_json_summary(json.loads(text)), sort_keys=True).encode()
    if approach == "msgspec":
        return msgspec.json.encode(_json_summary(msgspec.json.decode(text)))
    if approach == "msgspec-struct":  # typed decode: unknown fields are skipped
        records = msgspec.json.decode(text, type=list[_Record])
        return msgspec.json.encode(_json_summary(records), order="sorted")
    # raw-decode-scan: stream the array one object at a time
    decoder = json.JSONDecoder()
    records, pos = [], text.index("[") + 1
    while True:
        while text[pos] in " ,\n\t":
            pos += 1
        if text[pos] == "]":
            break
        obj, pos = decoder.raw_decode(text, pos)
        records.append(obj)
    return json.dumps(_json_summary(records), indent=1).encode()


def _resize(approach: str, img: NDArray[np.uint8]) -> bytes:
    h, w = img.shape[:2]
    th, tw = max(1, h * 5 // 8), max(1, w * 5 // 8)
    if approach == "nearest":
        ys = np.minimum(((np.arange(th) + 0.5) * h / th).astype(np.int64), h - 1)
        xs = np.minimum(((np.arange(tw) + 0.5) * w / tw).astype(np.int64), w - 1)
        out = img[ys][:, xs]
    elif approach == "bilinear":
        fy = np.clip((np.arange(th) + 0.5) * h / th - 0.5, 0, h - 1)
        fx = np.clip((np.arange(tw) + 0.5) * w / tw - 0.5, 0, w - 1)
        y0, x0 = fy.astype(np.int64), fx.astype(np.int64)
        y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
        wy, wx = (fy - y0)[:, None, None], (fx - x0)[None, :, None]
        f = img.astype(np.float64)
        top = f[y0][:, x0] * (1 - wx) + f[y0][:, x1] * wx
        bottom = f[y1][:, x0] * (1 - wx) + f[y1][:, x1] * wx
        out = np.rint(top * (1 - wy) + bottom * wy).astype(np.uint8)
    elif approach == "box-2x":  # 2x2 area average, then nearest to the target size
        hh, ww = h // 2 * 2, w // 2 * 2
        half = img[:hh, :ww].astype(np.float64).reshape(hh // 2, 2, ww // 2, 2, -1).mean((1, 3))
        ys = np.minimum((np.arange(th) * (hh // 2) / th).astype(np.int64), hh // 2 - 1)
        xs = np.minimum((np.arange(tw) * (ww // 2) / tw).astype(np.int64), ww // 2 - 1)
        out = np.rint(half[ys][:, xs]).astype(np.uint8)
    else:  # strided: every k-th pixel, cropped
        step = max(1, h // th)
        out = img[::step, ::step][:th, :tw]
    return np.ascontiguousarray(out).tobytes() + f"{out.shape}".encode()


def _summarize(approach: str, sentences: list[str]) -> bytes:
    k = min(3, len(sentences))
    if approach == "lead":
        picked = list(range(k))
    elif approach == "longest":
        picked = sorted(sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))[:k])
    else:
        words = [re.findall(r"[a-z]+", s.lower()) for s in sentences]
        freq = collections.Counter(w for ws in words for w in ws)
        scores = [sum(freq[w] for w in ws) / max(1, len(ws)) for ws in words]
        if approach == "positional":
            scores = [s * (1.0 + 0.25 / (1 + i)) for i, s in enumerate(scores)]
        picked = sorted(sorted(range(len(sentences)), key=lambda i: (-scores[i], i))[:k])
    return " ".join(sentences[i] for i in picked).encode()


def _sql_report(approach: str, rows: list[tuple[str, int, int]]) -> bytes:
    if approach in ("sql-group-by", "sql-window"):
        db = sqlite3.connect(":memory:")
        try:
            db.execute("CREATE TABLE sales (region TEXT, qty INTEGER, cents INTEGER)")
            db.executemany("INSERT INTO sales VALUES (?, ?, ?)", rows)
            if approach == "sql-group-by":
                query = (
                    "SELECT region, SUM(qty), SUM(qty * cents), COUNT(*) FROM sales "
                    "GROUP BY region ORDER BY region"
                )
            else:
                query = (
                    "SELECT DISTINCT region, SUM(qty) OVER w, SUM(qty * cents) OVER w, "
                    "COUNT(*) OVER w FROM sales WINDOW w AS (PARTITION BY region) "
                    "ORDER BY region"
                )
            report = [tuple(r) for r in db.execute(query)]
        finally:
            db.close()
    elif approach == "python-dict":
        acc: dict[str, list[int]] = {}
        for region, qty, cents in rows:
            slot = acc.setdefault(region, [0, 0, 0])
            slot[0] += qty
            slot[1] += qty * cents
            slot[2] += 1
        report = [(r, *acc[r]) for r in sorted(acc)]
    else:  # numpy-bincount
        names = sorted({r for r, _, _ in rows})
        idx = np.array([names.index(r) for r, _, _ in rows], dtype=np.int64)
        qty_col = np.array([q for _, q, _ in rows], dtype=np.int64)
        cents_col = np.array([c for _, _, c in rows], dtype=np.int64)
        n = len(names)
        q_sum = np.bincount(idx, weights=qty_col, minlength=n).astype(np.int64)
        revenue = np.zeros(n, dtype=np.int64)
        np.add.at(revenue, idx, qty_col * cents_col)
        count = np.bincount(idx, minlength=n)
        report = [(names[i], int(q_sum[i]), int(revenue[i]), int(count[i])) for i in range(n)]
    out = io.StringIO()
    for region, qty_total, revenue_cents, count_rows in report:
        out.write(f"{region},{qty_total},{revenue_cents / 100:.2f},{count_rows}\n")
    return out.getvalue().encode()


def _compress(approach: str, data: bytes) -> bytes:
    if approach == "zlib-1":
        blob = zlib.compress(data, 1)
        restored = zlib.decompress(blob)
    elif approach == "zlib-9":
        blob = zlib.compress(data, 9)
        restored = zlib.decompress(blob)
    elif approach == "lz4":
        blob = lz4.frame.compress(data)
        restored = lz4.frame.decompress(blob)
    else:
        blob = zstandard.ZstdCompressor(level=3).compress(data)
        restored = zstandard.ZstdDecompressor().decompress(blob)
    if restored != data:  # pragma: no cover - a broken codec, not a workload outcome
        raise InvalidInputError(f"{approach} did not round-trip the log payload")
    return blob


def _bpe(text: str, merges: int) -> list[str]:
    """Byte-pair encoding learned on ``text`` itself (``merges`` merges), then applied."""
    words = collections.Counter(text.split())
    pieces = {w: list(w) for w in words}
    for _ in range(merges):
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for w, count in words.items():
            seq = pieces[w]
            for pair in itertools.pairwise(seq):
                pairs[pair] += count
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        for w, seq in pieces.items():
            if len(seq) < 2:
                continue
            merged, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and seq[i] == a and seq[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(seq[i])
                    i += 1
            pieces[w] = merged
    return [t for w in text.split() for t in pieces[w]]


def _tokenize(approach: str, text: str) -> bytes:
    if approach == "whitespace":
        tokens = text.split()
    elif approach == "regex-words":
        tokens = re.findall(r"\w+|[^\w\s]", text.lower())
    elif approach == "char-trigrams":
        flat = re.sub(r"\s+", " ", text.lower())
        tokens = [flat[i : i + 3] for i in range(0, max(0, len(flat) - 2), 3)]
    else:
        tokens = _bpe(text.lower(), 16)
    return "\x1f".join(tokens).encode()


def _make_input(task_type: str, seed: int, size: int) -> Any:
    rng = random.Random(seed)
    if task_type == "parse-json":
        return _json_input(rng, size)
    if task_type == "resize-image":
        return _image_input(seed, size)
    if task_type == "summarize":
        return _sentences(rng, size)
    if task_type == "sql-report":
        return _sales_input(rng, size)
    if task_type == "compress-logs":
        return _log_input(rng, size)
    return " ".join(_sentences(rng, size))


_RUNNERS: Final[dict[str, Callable[[str, Any], bytes]]] = {
    "parse-json": _parse_json,
    "resize-image": _resize,
    "summarize": _summarize,
    "sql-report": _sql_report,
    "compress-logs": _compress,
    "tokenize": _tokenize,
}


def _check(task_type: str, approach: str | None = None) -> tuple[str, ...]:
    approaches = APPROACHES.get(task_type)
    if approaches is None:
        raise InvalidInputError(
            f"unknown task type {task_type!r}; expected one of: {', '.join(TASK_TYPES)}"
        )
    if approach is not None and approach not in approaches:
        raise InvalidInputError(
            f"unknown approach {approach!r} for {task_type}; expected one of: "
            f"{', '.join(approaches)}"
        )
    return approaches


def _params(parameters: Mapping[str, Any]) -> tuple[int, int]:
    seed, size = parameters.get("seed"), parameters.get("size")
    for name, value in (("seed", seed), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInputError(f"task parameter {name!r} must be an int, got {value!r:.40}")
    assert isinstance(seed, int)
    assert isinstance(size, int)
    if not 1 <= size <= _MAX_SIZE:
        raise InvalidInputError(f"task parameter 'size' must be within 1..{_MAX_SIZE}, got {size}")
    return seed, size


def run_approach(task_type: str, approach: str, parameters: Mapping[str, Any]) -> bytes:
    """Build the task's input from ``parameters`` (``seed``, ``size``) and run
    ``approach`` on it; returns the output bytes."""
    _check(task_type, approach)
    seed, size = _params(parameters)
    return _RUNNERS[task_type](approach, _make_input(task_type, seed, size))


# ---------------------------------------------------------------------------- handlers
@dataclasses.dataclass(frozen=True, slots=True)
class _Handler:
    """Runs one task type: choose an approach, do the work, score it."""

    task_type: str

    async def __call__(self, ctx: TaskContext) -> TaskOutcome:
        approaches = _check(self.task_type)
        seed, _ = _params(ctx.task.parameters)
        approach = ctx.choose(approaches)
        output = run_approach(self.task_type, approach, ctx.task.parameters)
        value = reward(self.task_type, approach, ctx.agent.capabilities, seed)
        result = {
            "approach": approach,
            "digest": hashlib.sha256(output).hexdigest()[:16],
            "bytes": len(output),
            "agent": ctx.agent.agent_id,
        }
        ok = value >= SUCCESS_THRESHOLD
        return TaskOutcome(
            success=ok,
            result=result,
            reward=value,
            action=approach,
            error=None if ok else f"{approach} scored {value:.2f} (< {SUCCESS_THRESHOLD})",
        )


HANDLERS: Final[dict[str, TaskHandler]] = {t: _Handler(t) for t in TASK_TYPES}
"""``{task_type: handler}`` for ``edge-agent --handlers ...demo_workload:HANDLERS``."""


def make_tasks(n: int, seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """``n`` tasks as ``(task_type, parameters)``, deterministic in ``seed``.

    Types come in shuffled rounds of all six, so every stretch of the run (each tenth)
    holds a balanced mix.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InvalidInputError(f"the number of tasks must be an int >= 0, got {n!r}")
    rng = random.Random(seed)
    tasks: list[tuple[str, dict[str, Any]]] = []
    while len(tasks) < n:
        block = list(TASK_TYPES)
        rng.shuffle(block)
        for task_type in block[: n - len(tasks)]:
            lo, hi = _SIZES[task_type]
            tasks.append((task_type, {"seed": rng.getrandbits(32), "size": rng.randint(lo, hi)}))
    return tasks
