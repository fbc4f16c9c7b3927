"""The chat fast path (msgspec, no FastAPI machinery) answers exactly what the FastAPI
route would, and hands every request it does not fully understand to that route."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ruvector_edge.llm import ChatMessage, RuvLLM
from ruvector_edge.llm.server import (
    AssistantMessage,
    ChatCompletion,
    Choice,
    _completion_json,
    _ruvllm_info,
    _usage,
    create_app,
)

KEY = "fast-key"
USER = [{"role": "user", "content": "How do B-tree indexes serve range queries?"}]


@pytest.fixture(scope="module")
def llm() -> RuvLLM:
    llm = RuvLLM()
    llm.add_documents(
        [
            ("Postgres B-tree indexes serve range queries.", {"source": "pg", "n": 3}),
            ("Redis persists with RDB snapshots or an AOF log.", None),
        ]
    )
    return llm


@pytest.fixture(scope="module")
def client(llm: RuvLLM) -> Iterator[TestClient]:
    with TestClient(create_app(llm)) as c:
        yield c


def _fast_count(client: TestClient, headers: dict[str, str] | None = None) -> int:
    server = client.get("/v1/stats", headers=headers or {}).json()["server"]
    return int(server.get("chat_fast_path", 0))


def test_completion_json_is_the_pydantic_body(llm: RuvLLM) -> None:
    resp = llm.chat([ChatMessage("user", USER[0]["content"])])
    model = ChatCompletion.model_construct(
        id=f"chatcmpl-{resp.request_id}",
        created=1234,
        model=str(resp.routing_info.model),
        choices=[
            Choice.model_construct(
                index=0,
                message=AssistantMessage.model_construct(content=str(resp.text)),
                finish_reason="length" if resp.finish_reason == "length" else "stop",
            )
        ],
        usage=_usage(resp),
        ruvllm=_ruvllm_info(resp),
    )
    fast = json.loads(_completion_json(resp, 1234))
    slow = json.loads(model.model_dump_json())
    assert json.dumps(fast) == json.dumps(slow)  # same keys, same order, same values
    assert fast["ruvllm"]["sources"][0]["metadata"]["source"] == "pg"
    ChatCompletion.model_validate(fast)


def test_plain_requests_take_the_fast_path(client: TestClient, llm: RuvLLM) -> None:
    before = _fast_count(client)
    bodies: list[dict[str, Any]] = [
        {"model": "auto", "messages": USER},
        {"messages": [{"role": "developer", "content": "Be brief."}, *USER], "temperature": 1},
        {"messages": USER, "max_tokens": 3, "top_p": 0.5, "n": 1, "stop": ["x"], "seed": 7},
        {"messages": USER, "model": llm.models()[0], "unknown_field": {"ignored": True}},
    ]
    for body in bodies:
        resp = client.post("/v1/chat/completions", json=body)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/json"
        ChatCompletion.model_validate(resp.json())
    assert _fast_count(client) == before + len(bodies)
    short = client.post("/v1/chat/completions", json=bodies[2]).json()
    assert short["choices"][0]["finish_reason"] == "length"
    assert short["usage"]["completion_tokens"] == 3
    forced = client.post("/v1/chat/completions", json=bodies[3]).json()
    assert forced["model"] == llm.models()[0]
    assert forced["ruvllm"]["routing"]["forced"] is True


def test_chunked_body_takes_the_fast_path(client: TestClient) -> None:
    before = _fast_count(client)
    payload = json.dumps({"messages": USER}).encode()
    resp = client.post(
        "/v1/chat/completions",
        content=iter([payload[:10], payload[10:]]),
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 200, resp.text
    assert _fast_count(client) == before + 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}, 200),
        ({"messages": USER, "top_p": False}, 400),  # false is not a number
        ({"messages": USER, "max_tokens": 5.0}, 400),  # nor 5.0 an integer (strict types)
        ({"messages": USER, "stream": True}, 200),
        ({"messages": USER, "n": 2}, 400),
        ({"messages": USER, "temperature": 3}, 400),
        ({"messages": [{"role": "user", "content": "  "}]}, 400),
        ({"messages": [{"role": "tool", "content": "x"}]}, 400),
        ({"messages": []}, 400),
        ({"messages": USER, "session_id": "no-such-session"}, 404),
    ],
)
def test_other_requests_go_through_fastapi(
    client: TestClient, body: dict[str, Any], status: int
) -> None:
    before = _fast_count(client)
    resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == status, resp.text
    if status != 200:
        assert set(resp.json()) == {"error"}
    assert _fast_count(client) == before


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b'{"messages": [{"role": "user", "content": "a\\ud800b"}]}', "application/json"),
        (json.dumps({"messages": USER}).encode(), "text/plain"),
        (b'{"messages": [', "application/json"),
    ],
)
def test_undecodable_or_non_json_bodies_get_the_route_400(
    client: TestClient, raw: bytes, content_type: str
) -> None:
    before = _fast_count(client)
    resp = client.post("/v1/chat/completions", content=raw, headers={"content-type": content_type})
    assert resp.status_code == 400, resp.text
    assert set(resp.json()) == {"error"}
    assert _fast_count(client) == before


def test_backend_errors_on_the_fast_path_are_openai_errors(client: TestClient) -> None:
    before = _fast_count(client)
    resp = client.post("/v1/chat/completions", json={"model": "gpt-17", "messages": USER})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert "gpt-17" in error["message"]
    assert error["type"] == "invalid_request_error"
    assert _fast_count(client) == before  # answered, but not counted as a completion


def test_api_key_on_the_fast_path(llm: RuvLLM) -> None:
    good = {"Authorization": f"Bearer {KEY}"}
    with TestClient(create_app(llm, api_key=KEY)) as c:
        before = _fast_count(c, good)
        assert c.post("/v1/chat/completions", json={"messages": USER}, headers=good).is_success
        assert _fast_count(c, good) == before + 1
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {KEY}"}):
            resp = c.post("/v1/chat/completions", json={"messages": USER}, headers=headers)
            assert resp.status_code == 401
            assert resp.headers["www-authenticate"] == "Bearer"
        # HTTPBearer strips the token; the fast path leaves such a header to it.
        spaced = {"Authorization": f"bearer  {KEY} "}
        assert c.post("/v1/chat/completions", json={"messages": USER}, headers=spaced).is_success
        assert _fast_count(c, good) == before + 1


class _ExplodingChat(RuvLLM):
    """Programming errors in chat (the fast path) and query (sessions: the FastAPI route)."""

    def chat(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret chat detail")

    def query(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret query detail")


def test_unexpected_errors_on_both_paths_are_json_500s() -> None:
    llm = _ExplodingChat()
    session = llm.new_session()
    with TestClient(create_app(llm), raise_server_exceptions=False) as c:
        fast = c.post("/v1/chat/completions", json={"messages": USER})
        routed = c.post("/v1/chat/completions", json={"messages": USER, "session_id": session.id})
        server = c.get("/v1/stats").json()["server"]
    for resp in (fast, routed):
        assert resp.status_code == 500
        assert resp.json()["error"]["type"] == "server_error"
        assert "secret" not in resp.text
    assert server["unhandled_errors"] == 2
    assert server["status_500"] == 2
    assert server["requests"] == 3  # each request counted once (the stats call included)
