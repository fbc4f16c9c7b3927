"""The OpenAI-compatible server: routes, OpenAI shapes and error objects, auth, body limits,
streaming, and the official ``openai`` client against a live server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ruvector_edge.errors import EdgeError
from ruvector_edge.llm import RuvLLM
from ruvector_edge.llm.server import create_app

KEY = "s3cret-key"
USER = [{"role": "user", "content": "How do I tune a postgres index for range queries?"}]


class BrokenBackendError(EdgeError):
    """What a failing backend raises."""

    code = "backend_error"


class BrokenBackend:
    """Generation fails; streaming fails after one delta."""

    name = "broken"

    def generate(self, prompt: str, *, model: str, max_tokens: int, temperature: float) -> Any:
        raise BrokenBackendError("upstream model server refused the connection")

    def stream(
        self, prompt: str, *, model: str, max_tokens: int, temperature: float
    ) -> Iterator[str]:
        yield "partial "
        raise BrokenBackendError("upstream model server hung up mid-stream")

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class ExplodingLLM(RuvLLM):
    """An orchestrator with a programming error in ``stats``."""

    def stats(self) -> dict[str, Any]:
        raise RuntimeError("secret internal detail")


@pytest.fixture(scope="module")
def llm() -> RuvLLM:
    llm = RuvLLM()
    llm.add_documents(
        [
            "Postgres B-tree indexes serve range queries; BRIN suits huge append-only tables.",
            "Redis keeps data in memory and persists with RDB snapshots or an AOF log.",
            "Kubernetes schedules pods onto nodes according to resource requests.",
        ]
    )
    return llm


@pytest.fixture(scope="module")
def client(llm: RuvLLM) -> Iterator[TestClient]:
    with TestClient(create_app(llm)) as c:
        yield c


@pytest.fixture(scope="module")
def auth_client(llm: RuvLLM) -> Iterator[TestClient]:
    with TestClient(create_app(llm, api_key=KEY)) as c:
        yield c


def assert_openai_error(resp: Any, status: int, *, param: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["type"], str)
    if param is not None:
        assert error["param"] == param
    assert "Traceback" not in resp.text
    return dict(error)


# ============================================================================ chat
def test_chat_completion_has_openai_shape_and_ruvllm_extension(
    client: TestClient, llm: RuvLLM
) -> None:
    resp = client.post("/v1/chat/completions", json={"model": "auto", "messages": USER})
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert body["id"] == f"chatcmpl-{body['ruvllm']['request_id']}"
    (choice,) = body["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] > 0
    ext = body["ruvllm"]
    assert body["model"] == ext["routing"]["model"]
    assert body["model"] in llm.models()
    assert ext["routing"]["forced"] is False
    assert set(ext["routing"]["probabilities"]) == set(llm.models())
    assert {"embed", "retrieve", "route", "generate", "total"} <= set(ext["latency_ms"])
    assert any("B-tree" in s["text"] for s in ext["sources"])


def test_forced_model_and_unknown_model(client: TestClient, llm: RuvLLM) -> None:
    for name in llm.models():
        resp = client.post("/v1/chat/completions", json={"model": name, "messages": USER})
        assert resp.status_code == 200
        assert resp.json()["model"] == name
        assert resp.json()["ruvllm"]["routing"]["forced"] is True
    resp = client.post("/v1/chat/completions", json={"model": "gpt-17", "messages": USER})
    assert_openai_error(resp, 400)


def test_content_parts_and_developer_role_are_accepted(client: TestClient) -> None:
    messages = [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "text", "text": "What does Redis persist with?"}]},
    ]
    resp = client.post("/v1/chat/completions", json={"model": "auto", "messages": messages})
    assert resp.status_code == 200
    assert resp.json()["usage"]["prompt_tokens"] > 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "auto", "messages": []}, "messages"),
        ({"model": "auto"}, "messages"),
        ({"model": "auto", "messages": [{"role": "wizard", "content": "hi"}]}, None),
        ({"model": "auto", "messages": USER, "temperature": 3.5}, "temperature"),
        ({"model": "auto", "messages": USER, "max_tokens": 0}, "max_tokens"),
        ({"model": "auto", "messages": USER, "n": 2}, "n"),
        ({"model": "auto", "messages": [{"role": "user", "content": "   "}]}, "messages.0.content"),
        ({"model": "auto", "messages": [{"role": "user"}]}, "messages.0.content"),
        ({"model": "", "messages": USER}, "model"),
    ],
)
def test_bad_chat_requests_get_400_openai_errors(
    client: TestClient, body: dict[str, Any], param: str | None
) -> None:
    resp = client.post("/v1/chat/completions", json=body)
    error = assert_openai_error(resp, 400, param=param)
    assert error["type"] == "invalid_request_error"


def test_malformed_json_and_wrong_body_type_get_400(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    resp = client.post("/v1/chat/completions", content=b"{not json", headers=headers)
    assert_openai_error(resp, 400)
    resp = client.post("/v1/chat/completions", content=b"[1, 2]", headers=headers)
    assert_openai_error(resp, 400)


def test_sessions_keep_the_conversation(client: TestClient, llm: RuvLLM) -> None:
    resp = client.post("/v1/sessions")
    assert resp.status_code == 200
    session_id = resp.json()["id"]
    for question in ("What is BRIN good for?", "And B-tree indexes?"):
        body = {"model": "auto", "messages": [{"role": "user", "content": question}]}
        resp = client.post("/v1/chat/completions", json={**body, "session_id": session_id})
        assert resp.status_code == 200
        assert resp.json()["ruvllm"]["session_id"] == session_id
    history = llm.get_session(session_id).history
    assert [m.content for m in history if m.role == "user"] == [
        "What is BRIN good for?",
        "And B-tree indexes?",
    ]
    resp = client.post(
        "/v1/chat/completions", json={"model": "auto", "messages": USER, "session_id": "nope"}
    )
    assert_openai_error(resp, 404)


# ============================================================================ streaming
def _sse_payloads(text: str) -> list[str]:
    events = [block for block in text.split("\n\n") if block.strip()]
    assert all(block.startswith("data: ") for block in events)
    return [block.removeprefix("data: ") for block in events]


def test_stream_sends_openai_chunks_then_done(client: TestClient) -> None:
    body = {
        "model": "auto",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    payloads = _sse_payloads(resp.text)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.strip()
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1
    assert finals[0]["ruvllm"]["request_id"] in chunks[0]["id"]
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_stream_with_bad_model_fails_before_streaming(client: TestClient) -> None:
    body = {"model": "nope", "messages": USER, "stream": True}
    assert_openai_error(client.post("/v1/chat/completions", json=body), 400)


# ============================================================================ backend failures
def test_backend_failure_is_502_and_a_stream_error_event() -> None:
    llm = RuvLLM(backend=BrokenBackend())
    with TestClient(create_app(llm)) as c:
        resp = c.post("/v1/chat/completions", json={"model": "auto", "messages": USER})
        error = assert_openai_error(resp, 502)
        assert "refused" in error["message"]
        resp = c.post(
            "/v1/chat/completions", json={"model": "auto", "messages": USER, "stream": True}
        )
        assert resp.status_code == 200  # the error arrives after the headers
        payloads = _sse_payloads(resp.text)
        assert "[DONE]" not in payloads
        assert "hung up" in json.loads(payloads[-1])["error"]["message"]


def test_unexpected_exception_is_a_500_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="ruvector_edge.llm.server"),
        TestClient(create_app(ExplodingLLM()), raise_server_exceptions=False) as c,
    ):
        resp = c.get("/v1/stats")
    error = assert_openai_error(resp, 500)
    assert "secret internal detail" not in resp.text
    assert error["type"] == "server_error"
    assert any("secret internal detail" in (r.exc_text or "") for r in caplog.records)


# ============================================================================ embeddings
def test_embeddings_float_and_base64_match_the_embedder(client: TestClient, llm: RuvLLM) -> None:
    texts = ["vector search", "the quick brown fox"]
    expected = np.asarray(llm.embedder.embed_batch(texts), dtype=np.float32)
    for model in ("default", llm.embedder.name):
        resp = client.post("/v1/embeddings", json={"model": model, "input": texts})
        assert resp.status_code == 200
        body = resp.json()
        assert body["object"] == "list"
        assert body["model"] == llm.embedder.name
        assert [d["index"] for d in body["data"]] == [0, 1]
        got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    resp = client.post(
        "/v1/embeddings",
        json={"model": "default", "input": "vector search", "encoding_format": "base64"},
    )
    raw = base64.b64decode(resp.json()["data"][0]["embedding"])
    np.testing.assert_array_equal(np.frombuffer(raw, dtype="<f4"), expected[0])
    assert resp.json()["usage"]["prompt_tokens"] > 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "text-embedding-3-small", "input": "x"}, "model"),
        ({"model": "default", "input": [1, 2, 3]}, "input"),
        ({"model": "default", "input": ""}, "input"),
        ({"model": "default", "input": ["ok", " "]}, "input"),
        ({"model": "default", "input": []}, "input"),
        ({"model": "default", "input": "x", "dimensions": 7}, "dimensions"),
        ({"model": "default", "input": "x", "encoding_format": "int8"}, "encoding_format"),
    ],
)
def test_bad_embedding_requests_get_400(
    client: TestClient, body: dict[str, Any], param: str
) -> None:
    assert_openai_error(client.post("/v1/embeddings", json=body), 400, param=param)


# ============================================================ models, feedback, patterns
def test_models_list_and_lookup(client: TestClient, llm: RuvLLM) -> None:
    body = client.get("/v1/models").json()
    ids = [m["id"] for m in body["data"]]
    assert ids[0] == "auto"
    assert set(llm.models()) | {llm.embedder.name} <= set(ids)
    assert all(m["object"] == "model" for m in body["data"])
    assert client.get(f"/v1/models/{llm.models()[0]}").json()["id"] == llm.models()[0]
    assert_openai_error(client.get("/v1/models/gpt-17"), 404)


def test_feedback_reaches_the_orchestrator(client: TestClient, llm: RuvLLM) -> None:
    before = client.get("/v1/stats").json()
    chat = client.post("/v1/chat/completions", json={"model": "auto", "messages": USER}).json()
    request_id = chat["ruvllm"]["request_id"]
    resp = client.post("/v1/feedback", json={"request_id": request_id, "rating": 5})
    assert resp.status_code == 200
    assert resp.json() == {"object": "feedback", "request_id": request_id, "accepted": True}
    after = client.get("/v1/stats").json()
    assert after["llm"] != before["llm"]
    assert after["server"]["requests"] > before["server"]["requests"]
    assert after["server"]["status_200"] > before["server"]["status_200"]
    assert_openai_error(client.post("/v1/feedback", json={"request_id": "nope", "rating": 4}), 404)
    assert_openai_error(
        client.post("/v1/feedback", json={"request_id": request_id, "rating": 9}),
        400,
        param="rating",
    )
    assert_openai_error(client.post("/v1/feedback", json={"request_id": request_id}), 400)


def test_patterns_and_health(client: TestClient, llm: RuvLLM) -> None:
    resp = client.get("/v1/patterns", params={"limit": 3})
    assert resp.status_code == 200
    assert resp.json()["object"] == "list"
    assert len(resp.json()["data"]) <= 3
    assert_openai_error(client.get("/v1/patterns", params={"limit": 0}), 400, param="limit")
    health = client.get("/v1/health").json()
    assert health["status"] == "ok"
    assert health["models"] == llm.models()
    assert health["embedder"] == llm.embedder.name


def test_unknown_route_and_wrong_method_are_openai_errors(client: TestClient) -> None:
    assert assert_openai_error(client.get("/v2/nothing"), 404)["code"] == "not_found"
    assert_openai_error(client.get("/v1/chat/completions"), 405)


def test_openapi_spec_documents_400_not_422(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operations = [op for item in spec["paths"].values() for op in item.values()]
    assert all("422" not in op["responses"] for op in operations)
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    assert "400" in chat["responses"]
    assert "ChatCompletionRequest" in spec["components"]["schemas"]


# ============================================================================ auth and limits
def test_api_key_is_required_except_for_health(auth_client: TestClient) -> None:
    resp = auth_client.get("/v1/models")
    error = assert_openai_error(resp, 401)
    assert resp.headers["www-authenticate"] == "Bearer"
    assert error["code"] == "invalid_api_key"
    resp = auth_client.get("/v1/models", headers={"Authorization": "Bearer wrong"})
    assert_openai_error(resp, 401)
    resp = auth_client.get("/v1/models", headers={"Authorization": f"Basic {KEY}"})
    assert_openai_error(resp, 401)
    resp = auth_client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status_code == 200
    assert auth_client.get("/v1/health").status_code == 200


def test_bodies_over_the_limit_get_413(llm: RuvLLM) -> None:
    with TestClient(create_app(llm, max_body_bytes=2000)) as c:
        big = {"model": "auto", "messages": [{"role": "user", "content": "x" * 3000}]}
        assert_openai_error(c.post("/v1/chat/completions", json=big), 413)

        def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
            yield json.dumps(big).encode()

        assert_openai_error(c.post("/v1/chat/completions", content=chunks()), 413)
        small = {"model": "auto", "messages": USER}

        def small_chunks() -> Iterator[bytes]:
            data = json.dumps(small).encode()
            yield data[:10]
            yield data[10:]

        resp = c.post(
            "/v1/chat/completions",
            content=small_chunks(),
            headers={"content-type": "application/json"},
        )
        assert resp.status_code == 200


def test_create_app_rejects_bad_settings(llm: RuvLLM) -> None:
    from ruvector_edge.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        create_app(llm, max_body_bytes=0)
    with pytest.raises(InvalidInputError):
        create_app(llm, api_key="")


# ============================================================================ live server + openai
class LiveServer:
    """uvicorn in a thread on 127.0.0.1, port chosen by the OS."""

    def __init__(self, app: FastAPI) -> None:
        self.ready = threading.Event()
        ready = self.ready

        class Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)
                ready.set()

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        assert self.ready.wait(timeout=15), "server did not start"
        assert self.server.started
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()
        assert not self.thread.is_alive()


@pytest.fixture(scope="module")
def live(llm: RuvLLM) -> Iterator[LiveServer]:
    with LiveServer(create_app(llm, api_key=KEY)) as server:
        yield server


def test_openai_client_chat_stream_embeddings(live: LiveServer, llm: RuvLLM) -> None:
    import openai
    from openai.types.chat import ChatCompletionUserMessageParam

    messages: list[ChatCompletionUserMessageParam] = [
        {"role": "user", "content": USER[0]["content"]}
    ]

    client = openai.OpenAI(base_url=live.base_url, api_key=KEY, max_retries=0, timeout=30)
    completion = client.chat.completions.create(model="auto", messages=messages)
    assert completion.choices[0].message.content
    assert completion.model in llm.models()
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0

    stream = client.chat.completions.create(
        model=llm.models()[0],
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    finish: list[str | None] = []
    usage = None
    for chunk in stream:
        assert chunk.model == llm.models()[0]
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish.append(chunk.choices[0].finish_reason)
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(pieces).strip()
    assert finish[-1] in ("stop", "length")
    assert usage is not None
    assert usage.completion_tokens > 0

    texts = ["vector search", "kubernetes pods"]
    emb = client.embeddings.create(model="default", input=texts)  # base64 on the wire
    got = np.array([d.embedding for d in emb.data], dtype=np.float32)
    np.testing.assert_array_equal(got, np.asarray(llm.embedder.embed_batch(texts), np.float32))
    emb_float = client.embeddings.create(model="default", input=texts, encoding_format="float")
    np.testing.assert_allclose(
        np.array([d.embedding for d in emb_float.data], dtype=np.float32), got, rtol=1e-6
    )
    assert {m.id for m in client.models.list()} >= set(llm.models())


def test_openai_client_sees_typed_errors(live: LiveServer) -> None:
    import openai
    from openai.types.chat import ChatCompletionUserMessageParam

    messages: list[ChatCompletionUserMessageParam] = [{"role": "user", "content": "hello"}]

    bad_key = openai.OpenAI(base_url=live.base_url, api_key="wrong", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError):
        bad_key.models.list()
    client = openai.OpenAI(base_url=live.base_url, api_key=KEY, max_retries=0, timeout=30)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-17", messages=messages)
    assert info.value.status_code == 400
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="text-embedding-3-large", input="x")
