"""``ruvllm``: serve, query and benchmark the ruvLLM orchestrator.

- ``ruvllm serve``: the OpenAI-compatible HTTP API (``ruvector_edge.llm.server``). Once
  listening it prints one line ``READY url=<url> backend=<name>`` to stdout; SIGINT/SIGTERM
  stop it cleanly (exit code 0).
- ``ruvllm query "..."``: one answer, then tables of routing, latency and sources.
- ``ruvllm bench``: a short in-process benchmark (latency percentiles, queries/s, the
  embed/retrieve/route/generate split) with a progress bar.

Exit codes: 0 on success, 2 for a bad flag or a start-up failure (port in use, backend
missing, ...), 1 when a query fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import json
import logging
import math
import os
import random
import signal
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Final

import typer
import uvicorn
from fastapi import FastAPI
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ruvector_edge.cli._common import (
    EXIT_OK,
    EXIT_STARTUP,
    build_config,
    configure_logging,
    print_error,
    run_loop,
    split_csv,
    write_line,
)
from ruvector_edge.errors import ConfigError, EdgeError, InvalidInputError
from ruvector_edge.llm import Config, RuvLLM, create_backend
from ruvector_edge.llm.server import DEFAULT_MAX_BODY_BYTES, create_app, jsonable

__all__ = [
    "BACKENDS",
    "BenchResult",
    "app",
    "build_llm",
    "load_documents",
    "main",
    "run_query_bench",
    "synthetic_corpus",
    "synthetic_queries",
]

logger = logging.getLogger("ruvector_edge.cli.ruvllm")

BACKENDS: Final = ("mock", "local", "external")
EXIT_QUERY_FAILED: Final = 1
DOC_SUFFIXES: Final = (".txt", ".md", ".rst")
_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)

HELP = (
    "ruvLLM: retrieval-augmented LLM orchestration that learns which model to use.\n\n"
    "serve: OpenAI-compatible HTTP API. query: ask one question. bench: measure the "
    "orchestration overhead in-process."
)

app = typer.Typer(add_completion=False, help=HELP, no_args_is_help=True)

BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        envvar="RUVLLM_BACKEND",
        help="Inference backend: mock (canned answers, for tests and benchmarks), local "
        "(SmolLM2-135M; needs the local-llm extra) or external (an OpenAI-compatible server at "
        "--external-url). Env: RUVLLM_BACKEND.",
    ),
]
ModelsOpt = Annotated[
    str | None,
    typer.Option(
        "--models",
        help="Comma-separated model names the router chooses from (default: the built-in "
        "tiny,small,medium,large set).",
        show_default=False,
    ),
]
ExternalUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--external-url",
        envvar="RUVLLM_EXTERNAL_URL",
        help="Base URL of the OpenAI-compatible server for --backend external, e.g. "
        "http://127.0.0.1:8080/v1. Env: RUVLLM_EXTERNAL_URL.",
        show_default=False,
    ),
]
ExternalKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--external-api-key",
        envvar="RUVLLM_EXTERNAL_API_KEY",
        help="API key for --backend external. Env: RUVLLM_EXTERNAL_API_KEY (prefer it: "
        "command lines are visible to other users).",
        show_default=False,
    ),
]
DocsOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--docs",
        help="A text file (one document) or a directory (every .txt/.md/.rst file in it, "
        "recursively) to load into memory before answering. Repeatable.",
        show_default=False,
    ),
]
VerboseOpt = Annotated[
    int,
    typer.Option(
        "-v",
        "--verbose",
        count=True,
        help="More logging to stderr: -v info, -vv debug (and HTTP access logs).",
    ),
]


# ==================================================================== building the orchestrator
def build_llm(
    backend: str = "mock",
    *,
    models: Sequence[str] = (),
    external_url: str | None = None,
    external_api_key: str | None = None,
) -> RuvLLM:
    """A :class:`RuvLLM` for the CLI flags; raises ``ConfigError`` for a bad combination."""
    name = backend.strip().lower()
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; expected one of: {', '.join(BACKENDS)}")
    config = Config().with_backend(name)
    if models:
        config = config.with_models(list(models))
    if name == "external":
        if not external_url:
            raise ConfigError(
                "--backend external needs --external-url URL (or RUVLLM_EXTERNAL_URL), the "
                "base URL of an OpenAI-compatible server"
            )
        instance = create_backend("external", base_url=external_url, api_key=external_api_key)
        return RuvLLM(config, backend=instance)
    if external_url:
        raise ConfigError("--external-url only applies to --backend external")
    return RuvLLM(config)


def _document_files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file() and child.suffix.lower() in DOC_SUFFIXES:
                yield child
    elif path.is_file():
        yield path
    else:
        raise ConfigError(f"--docs {str(path)!r}: no such file or directory")


def load_documents(llm: RuvLLM, paths: Sequence[Path]) -> int:
    """Add every document under ``paths`` to ``llm``'s memory; returns how many files."""
    count = 0
    for path in paths:
        for file in _document_files(path):
            try:
                text = file.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise ConfigError(f"--docs: cannot read {str(file)!r}: {exc}") from None
            if text.strip():
                llm.add_document(text, {"source": str(file)})
                count += 1
    return count


def _prepare(
    *,
    backend: str,
    models: str | None,
    external_url: str | None,
    external_api_key: str | None,
    docs: Sequence[Path] | None,
    verbose: int,
) -> RuvLLM:
    configure_logging(build_config(verbose=verbose))
    llm = build_llm(
        backend,
        models=split_csv(models),
        external_url=external_url,
        external_api_key=external_api_key,
    )
    if docs:
        loaded = load_documents(llm, docs)
        logger.info("loaded %d documents", loaded)
    return llm


# ==================================================================== serve
class _ReadyServer(uvicorn.Server):
    """uvicorn that prints the READY line once listening and whose SIGINT/SIGTERM
    handling ends in a clean return (uvicorn re-raises the signal after shutting down,
    which would turn a clean stop into exit code 130 or a kill)."""

    def __init__(self, config: uvicorn.Config, ready_line: str) -> None:
        super().__init__(config)
        self.ready_line = ready_line

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            write_line(self.ready_line)


def _run_server(web: FastAPI, sock: socket.socket, *, verbose: int, ready_line: str) -> None:
    config = uvicorn.Config(
        web,
        log_level="info" if verbose >= 2 else "warning",
        access_log=verbose >= 2,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = _ReadyServer(config, ready_line)
    run_loop(server.serve(sockets=[sock]))


def _bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r}: cannot resolve it: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@app.command(
    help="Serve the OpenAI-compatible HTTP API until SIGINT/SIGTERM. Once listening it "
    "prints one line 'READY url=<url> backend=<name>' to stdout. Routes: /v1/chat/"
    "completions (stream too), /v1/embeddings, /v1/models, /v1/sessions, /v1/feedback, "
    "/v1/patterns, /v1/stats, /v1/health; the OpenAPI spec is at /openapi.json."
)
def serve(
    *,
    host: Annotated[
        str, typer.Option(help="Interface to listen on (0.0.0.0 for every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one (READY shows it).")] = (
        8000
    ),
    backend: BackendOpt = "mock",
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="RUVLLM_API_KEY",
            help="Require 'Authorization: Bearer KEY' on every route but /v1/health. Env: "
            "RUVLLM_API_KEY (prefer it: command lines are visible to other users). Default: "
            "no key (bind to 127.0.0.1 then).",
            show_default=False,
        ),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option(help="Largest request body accepted; larger ones get 413.")
    ] = DEFAULT_MAX_BODY_BYTES,
    models: ModelsOpt = None,
    external_url: ExternalUrlOpt = None,
    external_api_key: ExternalKeyOpt = None,
    docs: DocsOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Serve the OpenAI-compatible HTTP API."""
    try:
        if max_body_bytes < 1:
            raise ConfigError(f"--max-body-bytes must be >= 1, got {max_body_bytes}")
        if api_key is not None and not api_key.strip():
            raise ConfigError("--api-key / RUVLLM_API_KEY is empty; set a key or unset it")
        llm = _prepare(
            backend=backend,
            models=models,
            external_url=external_url,
            external_api_key=external_api_key,
            docs=docs,
            verbose=verbose,
        )
        sock = _bind(host, port)
    except EdgeError as exc:
        print_error(exc.message)
        raise typer.Exit(EXIT_STARTUP) from None
    if api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("serving on %s without an API key: anyone who can reach it can use it", host)
    web = create_app(llm, api_key=api_key, max_body_bytes=max_body_bytes)
    # Loaded documents live as long as the server: keep them out of the cyclic GC, whose
    # full collections otherwise take ~50 ms per 20k documents and stall every request.
    gc.collect()
    gc.freeze()
    ready = f"READY url={_url(sock)} backend={llm.backend.name}"
    try:
        _run_server(web, sock, verbose=verbose, ready_line=ready)
    finally:
        sock.close()
    raise typer.Exit(EXIT_OK)


# ==================================================================== query
def _console() -> Console:
    # Piped output (and test runners) get wide tables instead of 80-column truncation.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _routing_table(resp: Any) -> Table:
    routing = resp.routing_info
    table = Table("field", "value", title="routing")
    table.add_row("model", str(routing.model))
    table.add_row("confidence", f"{routing.confidence:.3f}")
    table.add_row("fallback", "yes" if routing.fallback else "no")
    table.add_row("context tokens", str(routing.context_size))
    for model, p in sorted(routing.probabilities.items(), key=lambda kv: -kv[1]):
        table.add_row(f"p({model})", f"{p:.3f}")
    table.add_row("finish reason", str(resp.finish_reason))
    usage = resp.usage
    table.add_row(
        "tokens (prompt + completion)", f"{usage.prompt_tokens} + {usage.completion_tokens}"
    )
    return table


def _latency_table(resp: Any) -> Table:
    table = Table("stage", "ms", title="latency")
    for stage in ("embed", "retrieve", "route", "generate", "total"):
        if stage in resp.latency_ms:
            table.add_row(stage, f"{resp.latency_ms[stage]:.3f}")
    return table


def _sources_table(resp: Any) -> Table:
    table = Table("id", "score", "text", title=f"sources ({len(resp.sources)})")
    for source in resp.sources:
        snippet = " ".join(str(source.text).split())
        table.add_row(str(source.id), f"{source.score:.3f}", snippet[:80])
    return table


@app.command(help="Ask one question; prints the answer, then routing, latency and sources.")
def query(
    text: Annotated[str, typer.Argument(help="The question.", show_default=False)],
    *,
    model: Annotated[
        str, typer.Option(help="'auto' lets the router choose; or a configured model name.")
    ] = "auto",
    max_tokens: Annotated[
        int | None, typer.Option(help="Most tokens to generate.", show_default=False)
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature (0..2).", show_default=False)
    ] = None,
    backend: BackendOpt = "mock",
    models: ModelsOpt = None,
    external_url: ExternalUrlOpt = None,
    external_api_key: ExternalKeyOpt = None,
    docs: DocsOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole response as one JSON object.")
    ] = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Ask one question."""
    try:
        llm = _prepare(
            backend=backend,
            models=models,
            external_url=external_url,
            external_api_key=external_api_key,
            docs=docs,
            verbose=verbose,
        )
    except EdgeError as exc:
        print_error(exc.message)
        raise typer.Exit(EXIT_STARTUP) from None
    try:
        resp = llm.query(
            text,
            model=None if model == "auto" else model,
            max_tokens=max_tokens,
            temperature=temperature,
        )
    except EdgeError as exc:
        print_error(exc.message)
        raise typer.Exit(EXIT_QUERY_FAILED) from None
    if as_json:
        write_line(json.dumps(jsonable(dataclasses.asdict(resp))))
        return
    console = _console()
    console.print(str(resp.text), markup=False)
    console.print()
    console.print(f"[dim]request id {resp.request_id} (for feedback)[/dim]")
    for table in (_routing_table(resp), _latency_table(resp), _sources_table(resp)):
        console.print(table)


# ==================================================================== bench
_TOPICS: Final = (
    "rust", "python", "typescript", "kubernetes", "postgres", "redis", "kafka", "react",
    "linux", "networking", "security", "testing", "compilers", "databases", "caching",
    "authentication", "logging", "monitoring", "gpu", "embeddings",
)  # fmt: skip
_WORDS: Final = (
    "memory", "thread", "async", "latency", "index", "query", "schema", "deploy", "error",
    "config", "token", "vector", "cluster", "replica", "buffer", "socket", "parser", "cache",
    "retry", "timeout", "batch", "stream", "lock", "queue", "model", "router", "graph",
    "shard", "snapshot", "migration", "benchmark", "profile", "allocator", "pipeline",
)  # fmt: skip


def synthetic_corpus(n: int, *, seed: int = 0) -> list[str]:
    """``n`` deterministic short technical documents (topic + word salad) for benchmarks."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        topic = _TOPICS[i % len(_TOPICS)]
        words = " ".join(rng.choice(_WORDS) for _ in range(12))
        docs.append(f"{topic} note {i}: how {topic} handles {words}.")
    return docs


def synthetic_queries(n: int, *, seed: int = 1) -> list[str]:
    """``n`` deterministic questions over the topics of :func:`synthetic_corpus`."""
    rng = random.Random(seed)
    return [
        f"How does {rng.choice(_TOPICS)} deal with {rng.choice(_WORDS)} and {rng.choice(_WORDS)}?"
        for _ in range(n)
    ]


@dataclasses.dataclass(frozen=True, slots=True)
class BenchResult:
    """Latencies of one in-process query benchmark."""

    queries: int
    concurrency: int
    seconds: float
    latencies_ms: list[float]
    split_ms: dict[str, float]  # median of each stage of Response.latency_ms

    @property
    def qps(self) -> float:
        """Queries per second over the whole run."""
        return self.queries / self.seconds if self.seconds > 0 else math.inf

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100) of the per-query latency in ms."""
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
        return ordered[index]


def run_query_bench(
    llm: RuvLLM,
    queries: Sequence[str],
    *,
    concurrency: int = 1,
    on_done: Callable[[], None] | None = None,
) -> BenchResult:
    """Run ``llm.query`` over ``queries`` with ``concurrency`` threads; per-query wall
    latency and the median of each stage the orchestrator reports."""
    if concurrency < 1:
        raise InvalidInputError(f"concurrency must be >= 1, got {concurrency}")
    latencies: list[float] = []
    stages: dict[str, list[float]] = {}
    lock = threading.Lock()

    def one(text: str) -> None:
        start = time.perf_counter()
        resp = llm.query(text)
        elapsed = (time.perf_counter() - start) * 1000
        with lock:
            latencies.append(elapsed)
            for stage, ms in resp.latency_ms.items():
                stages.setdefault(stage, []).append(float(ms))
        if on_done is not None:
            on_done()

    start = time.perf_counter()
    if concurrency == 1:
        for text in queries:
            one(text)
    else:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for future in [pool.submit(one, text) for text in queries]:
                future.result()
    seconds = time.perf_counter() - start
    split = {stage: statistics.median(values) for stage, values in stages.items()}
    return BenchResult(len(queries), concurrency, seconds, latencies, split)


def _bench_table(rows: Sequence[tuple[str, BenchResult]]) -> Table:
    stages = ("embed", "retrieve", "route", "generate")
    table = Table(
        "run", "queries", "p50 ms", "p99 ms", "queries/s", *(f"{s} ms" for s in stages),
        title="ruvllm bench (in-process)",
    )  # fmt: skip
    for name, res in rows:
        table.add_row(
            name,
            str(res.queries),
            f"{res.percentile(50):.3f}",
            f"{res.percentile(99):.3f}",
            f"{res.qps:,.0f}",
            *(f"{res.split_ms.get(s, math.nan):.3f}" for s in stages),
        )
    return table


@app.command(
    help="Measure the orchestration overhead in-process: load --documents synthetic "
    "documents, run --queries queries one at a time (latency p50/p99) and with "
    "--concurrency threads (queries/s), and print the embed/retrieve/route/generate split."
)
def bench(
    *,
    documents: Annotated[int, typer.Option(help="Synthetic documents to load first.")] = 10_000,
    queries: Annotated[int, typer.Option(help="Queries per run.")] = 1_000,
    concurrency: Annotated[int, typer.Option(help="Threads for the throughput run.")] = 8,
    backend: BackendOpt = "mock",
    models: ModelsOpt = None,
    external_url: ExternalUrlOpt = None,
    external_api_key: ExternalKeyOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Benchmark the orchestrator in-process."""
    try:
        if documents < 0 or queries < 1 or concurrency < 1:
            raise ConfigError("--documents must be >= 0, --queries and --concurrency >= 1")
        llm = _prepare(
            backend=backend,
            models=models,
            external_url=external_url,
            external_api_key=external_api_key,
            docs=None,
            verbose=verbose,
        )
    except EdgeError as exc:
        print_error(exc.message)
        raise typer.Exit(EXIT_STARTUP) from None
    console = _console()
    warmup = synthetic_queries(20, seed=9)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            if documents:
                corpus = synthetic_corpus(documents)
                task = progress.add_task("loading documents", total=documents)
                for start in range(0, documents, 1000):
                    batch = corpus[start : start + 1000]
                    llm.add_documents(batch)
                    progress.advance(task, len(batch))
            for text in warmup:  # lazy imports, first index searches
                llm.query(text)
            rows: list[tuple[str, BenchResult]] = []
            runs = (("sequential", 1, 1), (f"{concurrency} threads", concurrency, 2))
            # A fresh query set per run: the embedding cache must not flatter the second.
            for name, threads, seed in runs:
                task = progress.add_task(name, total=queries)
                result = run_query_bench(
                    llm,
                    synthetic_queries(queries, seed=seed),
                    concurrency=threads,
                    on_done=functools.partial(progress.advance, task),
                )
                rows.append((name, result))
    except EdgeError as exc:
        print_error(exc.message)
        raise typer.Exit(EXIT_QUERY_FAILED) from None
    console.print(_bench_table(rows))
    console.print(
        f"[dim]{documents:,} documents, backend {llm.backend.name}, embedder "
        f"{llm.embedder.name}, {os.cpu_count()} CPUs[/dim]"
    )


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
