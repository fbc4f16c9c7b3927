"""ruvLLM orchestration overhead: in-process and through the HTTP server.

Run: ``python -m benchmarks.bench_llm`` (``BENCH_QUICK=1``: 20k documents, shorter runs).

Set-up: ``RuvLLM`` with ``MockBackend`` and the default ``HashEmbedder``; documents are
synthetic technical notes (``ruvector_edge.cli.ruvllm.synthetic_corpus``).

1. In-process, side by side: the seed's configuration (empty memory, mock model; the
   seed claims 0.09 ms) and 100,000 documents in memory. Latency p50/p99 from sequential
   queries; queries/s from 8 threads; the median embed/retrieve/route/generate split that
   the orchestrator reports. Target: p50 <= 1 ms with 100k documents.
2. HTTP: the server (``create_app`` + uvicorn, one worker; h11 + asyncio unless
   httptools/uvloop are importable, which roughly doubles requests/s) runs in a thread
   of this process, so the orchestrator with its documents is built once. The load
   generator is a separate process: an asyncio client writing raw HTTP/1.1 keep-alive
   requests on 16 connections (200 distinct questions) and reading each response fully,
   about 30-50 us of client CPU per request. Rows: ``GET /v1/health`` (framework floor,
   the baseline) and ``POST /v1/chat/completions`` with empty memory and with the
   documents, the orchestrator called inline on the event loop and in the threadpool.
   These plain chat requests take the server's fast path (msgspec decoding and
   encoding, no FastAPI dependency/validation machinery); the answer is the same.
   Target: >= 1,000 requests/s.
3. Retrieval quality, after the timings: recall@8 of the knowledge store's search (at
   the ``ef_search`` its latency tuner settled on) against exact cosine over the float32
   embeddings, 500 questions. Goal: >= 0.95 (about 0.96 before the latency work).
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import QUICK, Report
from ruvector_edge.cli.ruvllm import (
    BenchResult,
    run_query_bench,
    synthetic_corpus,
    synthetic_queries,
)
from ruvector_edge.llm import RuvLLM

N_DOCS = 20_000 if QUICK else 100_000
N_QUERIES = 500 if QUICK else 3_000
CONCURRENCY = 8
HTTP_CONNECTIONS = 16
HTTP_SECONDS = 2.0 if QUICK else 5.0
HTTP_WARMUP_SECONDS = 0.5
COLUMNS = (
    "case",
    "documents",
    "p50 ms",
    "p99 ms",
    "req/s",
    "embed ms",
    "retrieve ms",
    "route ms",
    "generate ms",
    "vs baseline",
)


def _build(documents: int) -> RuvLLM:
    llm = RuvLLM()
    corpus = synthetic_corpus(documents)
    for start in range(0, documents, 5_000):
        llm.add_documents(corpus[start : start + 5_000])
    return llm


# ==================================================================== in-process
def _inprocess(llm: RuvLLM) -> tuple[BenchResult, BenchResult]:
    for text in synthetic_queries(50, seed=9):  # warm-up
        llm.query(text)
    # Distinct query sets, so the second run gets no help from the embedding cache.
    sequential = run_query_bench(llm, synthetic_queries(N_QUERIES, seed=1), concurrency=1)
    threaded = run_query_bench(llm, synthetic_queries(N_QUERIES, seed=2), concurrency=CONCURRENCY)
    return sequential, threaded


# ==================================================================== recall
RECALL_K = 8
RECALL_QUERIES = 200 if QUICK else 500


def _recall(llm: RuvLLM, corpus: list[str]) -> tuple[float, int]:
    """recall@8 of the knowledge store's search, at the ``ef_search`` its latency tuner
    has settled on, against exact cosine over the float32 embeddings of ``corpus``;
    returns (recall, ef)."""
    import numpy as np

    vecs = llm.embedder.embed_batch(corpus)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    queries = synthetic_queries(RECALL_QUERIES, seed=7)
    found = 0
    for text in queries:
        q = llm.embedder.embed(text)
        exact = np.argpartition(-(vecs @ (q / np.linalg.norm(q))), RECALL_K)[:RECALL_K]
        truth = {corpus[i] for i in exact.tolist()}
        got = llm.store.memory.search_records(q, RECALL_K).contents
        found += len(truth.intersection(got))
    return found / (RECALL_K * len(queries)), llm.store.memory.ef_search


# ==================================================================== HTTP
class _ThreadServer:
    """uvicorn serving ``app`` from a thread of this process (the orchestrator with its
    documents is built once); the load comes from a separate process."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so; without
        # it every response waits ~40 ms for a delayed ACK (Nagle).
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> _ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("bench server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@dataclass
class HttpResult:
    """What the load generator measured."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else 0.0


def _request_bytes(method: str, path: str, body: dict[str, Any] | None) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    return (head + "\r\n").encode() + payload


async def _load(port: int, requests: list[bytes], seconds: float) -> HttpResult:
    latencies: list[float] = []
    errors = 0
    count = 0
    stop_at = 0.0
    measuring = False

    async def worker(offset: int) -> None:
        nonlocal errors, count
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = offset
        try:
            while time.perf_counter() < stop_at:
                data = requests[i % len(requests)]
                i += 1
                start = time.perf_counter()
                writer.write(data)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                if measuring:
                    latencies.append((time.perf_counter() - start) * 1000)
                    count += 1
                    if status != 200:
                        errors += 1
        finally:
            writer.close()

    stop_at = time.perf_counter() + HTTP_WARMUP_SECONDS
    await asyncio.gather(*(worker(k) for k in range(HTTP_CONNECTIONS)))
    measuring = True
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(*(worker(k) for k in range(HTTP_CONNECTIONS)))
    return HttpResult(count, errors, time.perf_counter() - start, latencies)


def _load_main(port: int, kind: str, seconds: float) -> None:
    """Load-generator subprocess: print one JSON line with the result."""
    if kind == "health":
        requests = [_request_bytes("GET", "/v1/health", None)]
    else:
        requests = [
            _request_bytes(
                "POST",
                "/v1/chat/completions",
                {"model": "auto", "messages": [{"role": "user", "content": q}]},
            )
            for q in synthetic_queries(200, seed=3)
        ]
    res = asyncio.run(_load(port, requests, seconds))
    print(json.dumps(res.__dict__), flush=True)


def _http(llm: RuvLLM, *, inline: bool, kind: str) -> HttpResult:
    from ruvector_edge.llm.server import create_app

    with _ThreadServer(create_app(llm, run_in_thread=not inline)) as server:
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.bench_llm",
            "--load",
            str(server.port),
            kind,
            str(HTTP_SECONDS),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    return HttpResult(**json.loads(out.stdout.strip().splitlines()[-1]))


def _http_stack() -> str:
    """What uvicorn's ``auto`` settings pick here: httptools/uvloop when importable."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{http} + {loop}"


# ==================================================================== main
def main() -> None:
    """Run every measurement, print the table, write ``results/llm.json``."""
    report = Report("llm", COLUMNS)
    stages = ("embed", "retrieve", "route", "generate")

    def add_inproc(case: str, docs: int, res: BenchResult, base: float | None) -> None:
        ratio = "baseline" if base is None else f"{res.percentile(50) / base:.2f}x p50"
        report.add(
            case=case,
            documents=docs,
            **{"p50 ms": res.percentile(50), "p99 ms": res.percentile(99), "req/s": res.qps},
            **{f"{s} ms": res.split_ms.get(s, float("nan")) for s in stages},
            **{"vs baseline": ratio},
        )

    def add_http(case: str, docs: int, res: HttpResult, floor: HttpResult | None) -> None:
        ratio = "baseline" if floor is None else f"{res.rps / floor.rps:.2f}x req/s"
        report.add(
            case=case,
            documents=docs,
            **{"p50 ms": res.percentile(50), "p99 ms": res.percentile(99), "req/s": res.rps},
            **{"vs baseline": ratio},
        )
        if res.errors:
            report.notes.append(f"{case} ({docs} docs): {res.errors} non-200 responses")

    empty = _build(0)
    t0 = time.perf_counter()
    full = _build(N_DOCS)
    ingest_s = time.perf_counter() - t0
    seq0, thr0 = _inprocess(empty)
    seq1, thr1 = _inprocess(full)
    add_inproc("seed config (empty memory), 1 thread", 0, seq0, None)
    add_inproc(f"empty memory, {CONCURRENCY} threads", 0, thr0, seq0.percentile(50))
    add_inproc("1 thread", N_DOCS, seq1, seq0.percentile(50))
    add_inproc(f"{CONCURRENCY} threads", N_DOCS, thr1, seq0.percentile(50))

    # What `ruvllm serve` does once its documents are loaded: move them out of the cyclic
    # GC's reach, so full collections (~50 ms per 20k documents) stop stalling requests.
    gc.collect()
    gc.freeze()
    frozen = run_query_bench(full, synthetic_queries(N_QUERIES, seed=5), concurrency=1)
    add_inproc("1 thread, gc.freeze() after loading", N_DOCS, frozen, seq0.percentile(50))
    floor = _http(empty, inline=True, kind="health")
    add_http("HTTP GET /v1/health (floor)", 0, floor, None)
    http_chat: dict[tuple[int, bool], HttpResult] = {}
    for docs, llm in ((0, empty), (N_DOCS, full)):
        for inline in (True, False):
            res = _http(llm, inline=inline, kind="chat")
            http_chat[docs, inline] = res
            mode = "inline" if inline else "threadpool"
            add_http(f"HTTP chat, {mode}", docs, res, floor)

    # Last, so that embedding the corpus again cannot disturb the timings above.
    recall, recall_ef = _recall(full, synthetic_corpus(N_DOCS))
    report.target(
        f"in-process p50 ms, {N_DOCS:,} docs", seq1.percentile(50), 1.0, higher_is_better=False
    )
    report.target(
        f"in-process p50 ms, {N_DOCS:,} docs, gc.freeze() as ruvllm serve",
        frozen.percentile(50),
        1.0,
        higher_is_better=False,
    )
    report.target(
        f"HTTP chat req/s, {N_DOCS:,} docs",
        max(http_chat[N_DOCS, True].rps, http_chat[N_DOCS, False].rps),
        1000.0,
    )
    report.target(f"retrieval recall@{RECALL_K}, {N_DOCS:,} docs", recall, 0.95)
    report.target(
        "HTTP chat req/s, empty memory",
        max(http_chat[0, True].rps, http_chat[0, False].rps),
        1000.0,
    )
    report.notes += [
        f"ingesting {N_DOCS:,} documents took {ingest_s:.1f}s ({N_DOCS / ingest_s:,.0f} docs/s)",
        "seed claim: 0.09 ms/query and 38,000 q/s (8 concurrent) with empty memory and a mock "
        "model: compare the first row",
        f"in-process: {N_QUERIES} distinct queries per run (p50/p99 from the 1-thread run); "
        "stage columns are medians of Response.latency_ms",
        f"HTTP: one uvicorn worker ({_http_stack()}) in a thread of this process; load from a "
        f"separate process: {HTTP_CONNECTIONS} keep-alive connections, raw HTTP/1.1, "
        f"{HTTP_SECONDS:.0f}s after {HTTP_WARMUP_SECONDS}s warm-up, 200 distinct questions; "
        "inline = orchestrator called on the event loop, threadpool = via anyio threads; "
        "the requests are plain chats (one string message, no stream), which the server "
        "answers through its msgspec fast path (any other request takes the FastAPI "
        "route); gc.freeze() after loading the documents, as `ruvllm serve` does",
        f"retrieval quality: recall@{RECALL_K} {recall:.3f} over {RECALL_QUERIES} queries at "
        f"{N_DOCS:,} documents (HNSW M={full.config.hnsw_m}, {full.config.index_precision} "
        f"vectors, ef_search={recall_ef} as the latency tuner left it; truth: exact cosine "
        "over the float32 embeddings)",
        f"machine load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs",
    ]
    report.print()
    path = report.save()
    print(f"results: {path}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--load":
        _load_main(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
    else:
        main()
