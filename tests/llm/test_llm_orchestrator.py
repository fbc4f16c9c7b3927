"""RuvLLM end to end with MockBackend + HashEmbedder: queries, sessions, chat, streaming,
feedback, learning through the public API, SONA, thread safety, stats."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from ruvector_edge.errors import ConfigError, InvalidInputError, NotFoundError
from ruvector_edge.llm import (
    ChatMessage,
    Config,
    Feedback,
    Generation,
    MockBackend,
    Response,
    RuvLLM,
    SyntheticWorkload,
)
from ruvector_edge.llm.backends import approx_token_count


class RecordingBackend(MockBackend):
    """MockBackend that keeps the prompts it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts: list[str] = []

    def generate(
        self, prompt: str, *, model: str, max_tokens: int, temperature: float
    ) -> Generation:
        self.prompts.append(prompt)
        return super().generate(prompt, model=model, max_tokens=max_tokens, temperature=temperature)

    def stream(
        self, prompt: str, *, model: str, max_tokens: int, temperature: float
    ) -> Iterator[str]:
        self.prompts.append(prompt)
        return super().stream(prompt, model=model, max_tokens=max_tokens, temperature=temperature)


def _llm(**kw: object) -> tuple[RuvLLM, RecordingBackend]:
    backend = RecordingBackend()
    return RuvLLM(Config(), backend=backend, **kw), backend  # type: ignore[arg-type]


def test_query_response_fields_and_retrieval() -> None:
    llm, backend = _llm()
    llm.add_documents(
        [
            ("The connection pool size is set in settings.toml under [db].", {"topic": "db"}),
            ("Sourdough needs a starter and a long proof.", {"topic": "food"}),
        ]
    )
    r = llm.query("Where is the connection pool size set?")
    assert isinstance(r, Response)
    assert r.request_id.startswith("req-")
    assert r.text.startswith("[mock ")
    assert r.routing_info.model in llm.models()
    assert r.confidence == r.routing_info.confidence
    assert r.sources[0].metadata["topic"] == "db"
    assert set(r.latency_ms) == {"embed", "retrieve", "route", "generate", "total"}
    assert r.latency_ms["total"] >= r.latency_ms["generate"]
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.finish_reason == "stop"
    assert r.session_id is None
    assert "settings.toml" in backend.prompts[-1]  # retrieved context reaches the prompt


def test_session_history_reaches_prompt_and_expires() -> None:
    now = [1000.0]
    llm = RuvLLM(Config().with_sessions(ttl_s=60), backend=RecordingBackend(), clock=lambda: now[0])
    backend = llm.backend
    assert isinstance(backend, RecordingBackend)
    s = llm.new_session()
    llm.query_session(s, "My name is Ada.")
    r2 = llm.query_session(s, "What is my name?")
    assert r2.session_id == s.id
    assert "User: My name is Ada." in backend.prompts[-1]
    assert [m.role for m in llm.get_session(s.id).history] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    now[0] += 61
    with pytest.raises(NotFoundError, match="expired"):
        llm.query("still there?", session_id=s.id)
    with pytest.raises(NotFoundError):
        llm.get_session("sess-unknown")


def test_chat_history_system_forced_model_and_errors() -> None:
    llm, backend = _llm()
    msgs = [
        ChatMessage("system", "Answer like a pirate."),
        ChatMessage("user", "first question"),
        ChatMessage("assistant", "first answer"),
        ChatMessage("user", "second question"),
    ]
    r = llm.chat(msgs, model="tiny", max_tokens=4)
    assert r.routing_info.model == "tiny"
    assert r.routing_info.forced
    assert r.finish_reason == "length"
    assert r.usage.completion_tokens == 4
    prompt = backend.prompts[-1]
    assert "Answer like a pirate." in prompt
    assert prompt.index("User: first question") < prompt.index("Assistant: first answer")
    assert prompt.rstrip().endswith("User: second question\nAssistant:")
    assert llm.chat(msgs, model="auto").routing_info.forced is False
    with pytest.raises(InvalidInputError):
        llm.chat(msgs, model="gpt-17")
    with pytest.raises(InvalidInputError):
        llm.chat([])
    with pytest.raises(InvalidInputError):
        llm.chat([ChatMessage("assistant", "no user here")])
    with pytest.raises(InvalidInputError):
        llm.query("   ")
    with pytest.raises(InvalidInputError):
        llm.query("x", temperature=5.0)
    with pytest.raises(InvalidInputError):
        ChatMessage("robot", "hi")


def test_chat_stream_start_deltas_final() -> None:
    llm, _ = _llm()
    start, deltas, final = llm.chat_stream([ChatMessage("user", "stream this please")])
    assert start.request_id.startswith("req-")
    assert start.model in llm.models()
    with pytest.raises(InvalidInputError):
        final()  # not exhausted yet
    text = "".join(deltas)
    resp = final()
    assert resp.text == text
    assert resp.request_id == start.request_id
    assert resp.routing_info.model == start.model
    assert resp.usage.completion_tokens == approx_token_count(text)
    assert final() is resp
    llm.feedback(Feedback(start.request_id, rating=4))  # streamed requests take feedback


def test_feedback_validation_and_write_back() -> None:
    llm, _ = _llm()
    r = llm.query("How do I rotate the API keys?")
    with pytest.raises(NotFoundError):
        llm.feedback(Feedback("req-nope", rating=5))
    with pytest.raises(InvalidInputError):
        Feedback(r.request_id)
    with pytest.raises(InvalidInputError):
        Feedback(r.request_id, rating=6)
    before = len(llm.store)
    llm.feedback(Feedback(r.request_id, rating=5, task_success=True))
    assert len(llm.store) == before + 1  # the good Q/A pair was written back
    with pytest.raises(InvalidInputError, match="already"):
        llm.feedback(Feedback(r.request_id, rating=5))
    r2 = llm.query("What port does the admin UI use?")
    llm.feedback(Feedback(r2.request_id, correction="The admin UI listens on port 8443."))
    hit = llm.store.memory.search(llm.embedder.embed("admin UI port 8443"), 1)[0]
    assert "8443" in hit.entry.content
    assert hit.entry.metadata["kind"] == "qa"
    assert Feedback("r", rating=1).reward == 0.0
    assert Feedback("r", rating=5, task_success=False).reward == 0.5


def test_router_learns_through_the_public_api() -> None:
    """Routing accuracy rises from chance to >= 90% within 300 feedback events (seed 0)."""
    cfg = Config().with_seed(0)
    llm = RuvLLM(cfg, backend=MockBackend())
    wl = SyntheticWorkload(cfg.models, seed=0)
    llm.add_documents(wl.documents(3))
    held_out = wl.queries(120, seed=1000)

    def accuracy() -> float:
        return float(np.mean([llm.route(q.text).model == wl.best_model(q.topic) for q in held_out]))

    start = accuracy()
    for q in wl.queries(300, seed=2000):
        r = llm.query(q.text)
        llm.feedback(wl.feedback(r.request_id, q.topic, r.routing_info.model))
    end = accuracy()
    assert start < 0.45
    assert end >= 0.90
    stats = llm.stats()
    assert stats["feedback"] == 300
    assert stats["router"]["updates"] >= 300


def test_sona_receives_feedback_and_feeds_the_router() -> None:
    llm, _ = _llm()
    sink = llm.learning_sink
    assert sink is not None
    assert type(sink).__name__ == "SonaSink"
    wl = SyntheticWorkload(llm.models(), seed=4)
    for q in wl.queries(60, seed=4):
        r = llm.query(q.text, model=wl.best_model(q.topic))
        llm.feedback(Feedback(r.request_id, rating=5))
    assert sink.stats()["trajectories_seen"] == 60  # type: ignore[attr-defined]
    updates = llm.router.updates
    used = llm.learn_from_sona()
    patterns = llm.get_patterns(5)
    assert llm.router.updates == updates + used
    assert patterns
    assert patterns[0]["source"] == "sona"
    assert all(p["model"] in llm.models() for p in patterns)


def test_learning_disabled_leaves_router_untouched() -> None:
    llm = RuvLLM(Config().with_learning(False), backend=MockBackend())
    r = llm.query("anything")
    llm.feedback(Feedback(r.request_id, rating=1))
    assert llm.router.updates == 0
    assert llm.stats()["feedback"] == 1


def test_concurrent_queries_and_feedback() -> None:
    llm, _ = _llm()
    llm.add_documents([f"note {i} about service {i % 7}" for i in range(200)])
    errors: list[BaseException] = []
    ids: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            for i in range(25):
                r = llm.query(f"service {(n + i) % 7} status", model=None)
                llm.feedback(Feedback(r.request_id, rating=1 + (i % 5)))
                with lock:
                    ids.append(r.request_id)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len(set(ids)) == 100
    stats = llm.stats()
    assert stats["queries"] == 100
    assert stats["feedback"] == 100
    # 100 feedback events, plus the patterns SONA handed back every 50 events.
    assert stats["router"]["updates"] >= 100
    assert stats["learning_sink"]["trajectories_seen"] == 100


def test_stats_and_patterns_are_json_serialisable() -> None:
    llm, _ = _llm()
    r = llm.query("hello")
    llm.feedback(Feedback(r.request_id, rating=2))
    json.dumps(llm.stats())
    json.dumps(llm.get_patterns(10))
    with pytest.raises(InvalidInputError):
        llm.get_patterns(-1)


def test_config_builder_and_validation() -> None:
    cfg = Config.builder().with_models(["a", "b", "c"]).with_backend("mock").build()
    assert cfg.models == ["a", "b", "c"]
    assert cfg.fallback_model == "c"
    # M=16 instead of the seed's 32: more recall for less search time (see Config).
    assert (cfg.hnsw_m, cfg.hnsw_ef_construction, cfg.hnsw_ef_search) == (16, 200, 64)
    assert cfg.hnsw_ef_min == 24
    assert Config().with_hnsw(32, 200, 64, ef_min=16).hnsw_ef_min == 16
    with pytest.raises(ConfigError):
        Config().with_hnsw(16, 200, 64, ef_min=0)
    assert Config().with_fallback_model("tiny").fallback_model == "tiny"
    llm = RuvLLM(cfg)
    assert llm.models() == ["a", "b", "c"]
    with pytest.raises(ConfigError):
        Config().with_models([])
    with pytest.raises(ConfigError):
        Config().with_fallback_model("nope")
    with pytest.raises(ConfigError):
        Config().with_backend("quantum")
    with pytest.raises(ConfigError):
        Config().with_router(bogus=1)
    with pytest.raises(ConfigError):
        RuvLLM(Config().with_backend("external"))  # no base_url
