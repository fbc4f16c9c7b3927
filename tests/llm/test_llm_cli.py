"""``ruvllm`` CLI: query, bench, and serve (a real process: READY line, auth from the
environment, clean exit on SIGTERM/SIGINT, exit code 2 when the port is taken)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ruvector_edge.cli.ruvllm import (
    app,
    build_llm,
    run_query_bench,
    synthetic_corpus,
    synthetic_queries,
)
from ruvector_edge.errors import ConfigError, InvalidInputError

runner = CliRunner()


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "postgres.md").write_text(
        "Postgres B-tree indexes serve range queries; BRIN suits append-only tables.\n"
    )
    (folder / "redis.txt").write_text("Redis persists data with RDB snapshots or an AOF log.\n")
    (folder / "image.png").write_bytes(b"\x89PNG not a document")
    return folder


# ============================================================================ query
def test_query_prints_answer_and_tables(docs: Path) -> None:
    result = runner.invoke(
        app, ["query", "How do postgres B-tree indexes help range queries?", "--docs", str(docs)]
    )
    assert result.exit_code == 0, result.output
    for title in ("routing", "latency", "sources"):
        assert title in result.output
    assert "postgres.md" in result.output or "B-tree" in result.output
    assert "request id" in result.output


def test_query_json_is_the_whole_response(docs: Path) -> None:
    result = runner.invoke(
        app, ["query", "What does Redis persist with?", "--docs", str(docs), "--json"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["text"]
    assert body["routing_info"]["model"] in build_llm().models()
    assert {"embed", "retrieve", "route", "generate", "total"} <= set(body["latency_ms"])
    assert any("Redis" in s["text"] for s in body["sources"])


def test_query_with_a_forced_model(docs: Path) -> None:
    model = build_llm().models()[-1]
    result = runner.invoke(app, ["query", "Redis?", "--model", model, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["routing_info"]["model"] == model


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["query", "hi", "--backend", "quantum"], 2, "unknown backend"),
        (["query", "hi", "--backend", "external"], 2, "--external-url"),
        (["query", "hi", "--external-url", "http://127.0.0.1:9/v1"], 2, "--backend external"),
        (["query", "hi", "--docs", "/nonexistent/place"], 2, "no such file"),
        (["query", "hi", "--model", "gpt-17"], 1, "gpt-17"),
        (["bench", "--queries", "0"], 2, "--queries"),
    ],
)
def test_bad_flags_exit_with_a_message(args: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split())


def test_build_llm_applies_models() -> None:
    llm = build_llm("mock", models=["alpha", "beta"])
    assert llm.models() == ["alpha", "beta"]
    with pytest.raises(ConfigError):
        build_llm("nope")


# ============================================================================ bench
def test_bench_prints_a_table() -> None:
    result = runner.invoke(
        app, ["bench", "--documents", "300", "--queries", "30", "--concurrency", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "ruvllm bench" in result.output
    assert "sequential" in result.output
    assert "2 threads" in result.output
    assert "300 documents" in result.output


def test_run_query_bench_measures_every_query() -> None:
    llm = build_llm()
    llm.add_documents(synthetic_corpus(100))
    done: list[int] = []
    lock = threading.Lock()

    def on_done() -> None:
        with lock:
            done.append(1)

    result = run_query_bench(llm, synthetic_queries(24), concurrency=3, on_done=on_done)
    assert result.queries == 24
    assert len(result.latencies_ms) == 24
    assert len(done) == 24
    assert result.percentile(50) <= result.percentile(99) <= max(result.latencies_ms)
    assert {"embed", "retrieve", "route", "generate"} <= set(result.split_ms)
    assert result.qps > 0
    with pytest.raises(InvalidInputError):
        run_query_bench(llm, ["x"], concurrency=0)


def test_synthetic_data_is_deterministic() -> None:
    assert synthetic_corpus(50) == synthetic_corpus(50)
    assert synthetic_queries(20) == synthetic_queries(20)
    assert len(set(synthetic_corpus(200))) == 200


# ============================================================================ serve (real process)
class ServeProcess:
    """``ruvllm serve --port 0`` in a subprocess; ``url`` comes from its READY line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        cmd = [sys.executable, "-m", "ruvector_edge.cli.ruvllm", "serve", "--port", "0", *args]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.url = self._wait_ready(timeout=30)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def _wait_ready(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError("no READY line from ruvllm serve") from None
        assert line.startswith("READY url=http://127.0.0.1:"), line
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        assert fields["backend"] == "mock"
        return fields["url"]

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def serve_proc() -> Iterator[ServeProcess]:
    proc = ServeProcess(env={"RUVLLM_API_KEY": "from-env"})
    try:
        yield proc
    finally:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(timeout=10)


def test_serve_answers_with_the_key_from_the_environment(serve_proc: ServeProcess) -> None:
    with httpx.Client(base_url=serve_proc.url, timeout=10) as client:
        assert client.get("/v1/health").json()["status"] == "ok"
        assert client.get("/v1/models").status_code == 401
        headers = {"Authorization": "Bearer from-env"}
        resp = client.post(
            "/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": "hello"}]},
            headers=headers,
        )
        assert resp.status_code == 200
        assert resp.json()["choices"][0]["message"]["content"]
    assert serve_proc.stop(signal.SIGTERM) == 0


def test_serve_stops_cleanly_on_sigint(serve_proc: ServeProcess) -> None:
    assert serve_proc.stop(signal.SIGINT) == 0
    assert serve_proc.proc.stderr is not None
    assert "Traceback" not in serve_proc.proc.stderr.read()


def test_serve_on_a_taken_port_exits_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 2
    assert "cannot listen" in result.output


def test_serve_rejects_an_empty_key() -> None:
    result = runner.invoke(app, ["serve", "--port", "0"], env={"RUVLLM_API_KEY": " "})
    assert result.exit_code == 2
    assert "RUVLLM_API_KEY" in result.output
