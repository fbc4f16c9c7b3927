"""``RuvLLM``: embed -> retrieve -> route -> generate -> learn from feedback.

One request: the query is embedded (LRU-cached), the top passages are retrieved from
vector memory (ef tuned to a latency budget, optional graph-neighbour expansion), the
learned router picks a model and a context budget from the query embedding and the
retrieval statistics, the prompt is assembled (context passages within the budget,
session history, the question), and the backend generates. ``feedback`` turns a rating,
task success or correction into a reward that trains the router, feeds the learning
sink (SONA when available) and writes good Q/A pairs back to memory.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from ruvector_edge.errors import ConfigError, InvalidInputError, NotFoundError
from ruvector_edge.llm.backends import InferenceBackend, create_backend
from ruvector_edge.llm.context import KnowledgeStore, Retrieval, assemble_context
from ruvector_edge.llm.embeddings import CachedEmbedder, Embedder, create_embedder
from ruvector_edge.llm.router import RouteFeatures, Router, route_features
from ruvector_edge.llm.types import (
    ChatMessage,
    Feedback,
    Generation,
    Response,
    RoutingInfo,
    Source,
    StreamStart,
    TokenUsage,
)

__all__ = ["Config", "LearningSink", "RuvLLM", "Session"]

F32 = NDArray[np.float32]
_STAGES = ("embed", "retrieve", "route", "generate", "total")


@dataclass(frozen=True)
class Config:
    """ruvLLM settings with the seed's defaults; ``with_*`` methods return changed copies."""

    models: list[str] = field(default_factory=lambda: ["tiny", "small", "medium", "large"])
    fallback_model: str = "large"
    backend: str = "mock"
    backend_options: dict[str, Any] = field(default_factory=dict)
    embedder: str = "hash"
    embedding_dim: int = 384
    embedding_cache: int = 4096
    # HNSW M=16 (the seed: 32). On bench_llm's 100k documents (int8 vectors), M=16 at ef
    # 24 found more of the true top 8 (recall@8 0.965) than M=32 at ef 16 (0.959, where
    # the latency tuner had settled), with ~28% less HNSW search time and a ~40% faster
    # build.
    hnsw_m: int = 16
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 64
    # The lowest ef_search the latency tuner may choose: a recall floor (M=16 at ef 16
    # drops to recall@8 0.938).
    hnsw_ef_min: int = 24
    # Vectors in the HNSW index: "int8" searched 1.5x faster and built 2.2x faster than
    # "float32" on 100k documents, for about one point of recall@8 (bench_llm, README).
    index_precision: str = "int8"
    max_entries: int = 1_000_000
    retrieval_k: int = 5
    # ef_search shrinks while retrieval takes longer than this and grows while it takes
    # under a third of it (EfTuner).
    retrieval_budget_ms: float | None = 0.3
    graph_expansion: int = 2
    chunk_words: int = 200
    chunk_overlap: int = 40
    router_hidden_dim: int = 32
    context_sizes: list[int] = field(default_factory=lambda: [256, 512, 1024, 2048])
    default_context: int = 512
    confidence_threshold: float = 0.5
    router_lr: float = 0.1
    router_ucb: float = 1.0
    router_exploration: float = 0.0
    ewc_lambda: float = 2000.0
    learning_enabled: bool = True
    quality_threshold: float = 0.4
    writeback_min_reward: float = 0.75
    sona_sync_every: int = 50
    max_tokens: int = 256
    temperature: float = 0.7
    session_ttl_s: float = 3600.0
    max_sessions: int = 10_000
    history_messages: int = 8
    max_pending_requests: int = 10_000
    system_prompt: str = "You are a helpful assistant. Use the context passages when relevant."
    seed: int = 0

    @classmethod
    def builder(cls) -> Config:
        """The seed's ``Config::builder()``: defaults, refined with ``with_*`` calls."""
        return cls()

    def build(self) -> Config:
        """Validate and return this config (raises ConfigError)."""
        self.validate()
        return self

    def _with(self, **changes: Any) -> Config:
        out = dataclasses.replace(self, **changes)
        out.validate()
        return out

    def with_models(self, models: Sequence[str]) -> Config:
        """Configured model names (any number); the fallback becomes the last one if it is
        not among them."""
        ms = list(models)
        fb = self.fallback_model if self.fallback_model in ms else (ms[-1] if ms else "")
        return self._with(models=ms, fallback_model=fb)

    def with_fallback_model(self, model: str) -> Config:
        """Model used when the router's confidence is below the threshold."""
        return self._with(fallback_model=model)

    def with_backend(self, name: str, **options: Any) -> Config:
        """``"mock"`` | ``"local"`` | ``"external"`` (options such as ``base_url``)."""
        if name not in ("mock", "local", "external", "fallback"):
            raise ConfigError(f"unknown backend {name!r}; expected mock, local or external")
        return self._with(backend=name, backend_options=dict(options))

    def with_embedder(self, name: str) -> Config:
        """``"hash"`` (default) or ``"minilm"`` (the [embeddings] extra)."""
        return self._with(embedder=name)

    def with_retrieval(
        self,
        k: int | None = None,
        *,
        budget_ms: float | None = None,
        graph_expansion: int | None = None,
    ) -> Config:
        """Passages per query, retrieval latency budget (ef tuning) and graph expansion."""
        return self._with(
            retrieval_k=self.retrieval_k if k is None else k,
            retrieval_budget_ms=self.retrieval_budget_ms if budget_ms is None else budget_ms,
            graph_expansion=self.graph_expansion if graph_expansion is None else graph_expansion,
        )

    def with_hnsw(
        self,
        m: int,
        ef_construction: int,
        ef_search: int,
        *,
        precision: str | None = None,
        ef_min: int | None = None,
    ) -> Config:
        """HNSW parameters (seed: 32, 200, 64; default here: 16, 200, 64), the index's
        vector precision (``"float32"``, ``"float16"`` or ``"int8"``, the default) and the
        lowest ``ef_search`` the latency tuner may choose (default 24)."""
        return self._with(
            hnsw_m=m,
            hnsw_ef_construction=ef_construction,
            hnsw_ef_search=ef_search,
            index_precision=self.index_precision if precision is None else precision,
            hnsw_ef_min=self.hnsw_ef_min if ef_min is None else ef_min,
        )

    def with_router(self, **options: Any) -> Config:
        """Router settings: any of ``router_hidden_dim``, ``context_sizes``,
        ``default_context``, ``confidence_threshold``, ``router_lr``, ``router_ucb``,
        ``router_exploration``, ``ewc_lambda``."""
        allowed = {
            "router_hidden_dim",
            "context_sizes",
            "default_context",
            "confidence_threshold",
            "router_lr",
            "router_ucb",
            "router_exploration",
            "ewc_lambda",
        }
        bad = set(options) - allowed
        if bad:
            raise ConfigError(f"unknown router options: {sorted(bad)}")
        return self._with(**options)

    def with_learning(self, enabled: bool) -> Config:
        """Turn learning from feedback on or off."""
        return self._with(learning_enabled=bool(enabled))

    def with_generation(
        self, *, max_tokens: int | None = None, temperature: float | None = None
    ) -> Config:
        """Default generation limits."""
        return self._with(
            max_tokens=self.max_tokens if max_tokens is None else max_tokens,
            temperature=self.temperature if temperature is None else temperature,
        )

    def with_sessions(
        self, *, ttl_s: float | None = None, max_sessions: int | None = None
    ) -> Config:
        """Session expiry and capacity."""
        return self._with(
            session_ttl_s=self.session_ttl_s if ttl_s is None else ttl_s,
            max_sessions=self.max_sessions if max_sessions is None else max_sessions,
        )

    def with_seed(self, seed: int) -> Config:
        """Seed of the router's initialisation and exploration."""
        return self._with(seed=seed)

    def validate(self) -> None:
        """Raise ConfigError when a setting is out of range."""
        if not self.models or len(set(self.models)) != len(self.models):
            raise ConfigError(f"models must be distinct names, at least one: {self.models!r}")
        if not all(isinstance(m, str) and m and m != "auto" for m in self.models):
            raise ConfigError("model names must be non-empty strings other than 'auto'")
        if self.fallback_model not in self.models:
            raise ConfigError(
                f"fallback_model {self.fallback_model!r} is not one of the models {self.models}"
            )
        if self.default_context not in self.context_sizes:
            raise ConfigError(
                f"default_context {self.default_context} is not one of {self.context_sizes}"
            )
        for name in (
            "retrieval_k",
            "max_tokens",
            "max_sessions",
            "max_pending_requests",
            "hnsw_ef_min",
        ):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, int)
                or v < (0 if name == "retrieval_k" else 1)
            ):
                raise ConfigError(f"{name} must be a positive int, got {v!r}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"temperature must be in 0..2, got {self.temperature}")
        if not 0.0 <= self.confidence_threshold <= 1.0:
            raise ConfigError(
                f"confidence_threshold must be in 0..1, got {self.confidence_threshold}"
            )
        if self.session_ttl_s <= 0:
            raise ConfigError(f"session_ttl_s must be > 0, got {self.session_ttl_s}")


@dataclass
class Session:
    """A conversation: its history reaches the prompt of every later query."""

    id: str
    history: list[ChatMessage] = field(default_factory=list)
    created_at: float = 0.0
    last_accessed: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class LearningSink(Protocol):
    """Receives every feedback event as a trajectory (SONA implements this via an adapter)."""

    def record(self, embedding: F32, model: str, quality: float, context: str) -> None:
        """One (query embedding, route, quality) event."""
        ...


@dataclass
class _Record:
    query: str
    embedding: F32
    features: RouteFeatures
    model_index: int
    context_index: int
    model: str
    text: str
    source_ids: list[str]
    session_id: str | None
    feedback: bool = False


@dataclass
class _Prepared:
    request_id: str
    query: str
    embedding: F32
    features: RouteFeatures
    decision_info: RoutingInfo
    model_index: int
    context_index: int
    prompt: str
    sources: list[Source]
    max_tokens: int
    temperature: float
    session_id: str | None
    latency: dict[str, float]
    start: float


def _new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


class RuvLLM:
    """The ruvLLM orchestrator (thread-safe: query/chat/feedback may run concurrently)."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        backend: InferenceBackend | None = None,
        embedder: Embedder | None = None,
        learning_sink: LearningSink | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = (config or Config()).build()
        cfg = self.config
        inner = (
            embedder
            if embedder is not None
            else create_embedder(
                cfg.embedder, **({"dim": cfg.embedding_dim} if cfg.embedder == "hash" else {})
            )
        )
        self.embedder: Embedder = (
            inner
            if isinstance(inner, CachedEmbedder)
            else CachedEmbedder(inner, cfg.embedding_cache)
        )
        self.backend: InferenceBackend = (
            backend if backend is not None else create_backend(cfg.backend, **cfg.backend_options)
        )
        self.store = KnowledgeStore(
            self.embedder,
            max_entries=cfg.max_entries,
            ef_search=cfg.hnsw_ef_search,
            ef_min=cfg.hnsw_ef_min,
            connectivity=cfg.hnsw_m,
            ef_construction=cfg.hnsw_ef_construction,
            precision=cfg.index_precision,
            latency_budget_ms=cfg.retrieval_budget_ms,
            chunk_words=cfg.chunk_words,
            chunk_overlap=cfg.chunk_overlap,
        )
        self.router = Router(
            cfg.models,
            self.embedder.dim,
            context_sizes=cfg.context_sizes,
            default_context=cfg.default_context,
            hidden=cfg.router_hidden_dim,
            lr=cfg.router_lr,
            ewc_lambda=cfg.ewc_lambda,
            confidence_threshold=cfg.confidence_threshold,
            fallback_model=cfg.fallback_model,
            exploration=cfg.router_exploration,
            ucb=cfg.router_ucb,
            seed=cfg.seed,
        )
        self.learning_sink = (
            learning_sink if learning_sink is not None else _default_sink(self.embedder.dim)
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._latency: dict[str, deque[float]] = {s: deque(maxlen=2048) for s in _STAGES}
        self._counts = {"queries": 0, "feedback": 0, "streams": 0, "fallbacks": 0, "forced": 0}
        self._per_model: dict[str, dict[str, float]] = {
            m: {"routed": 0, "feedback": 0, "reward_sum": 0.0} for m in cfg.models
        }
        self._reward_sum = 0.0

    # ================================================================ metadata
    def models(self) -> list[str]:
        """The configured model names."""
        return list(self.config.models)

    # ================================================================ sessions
    def new_session(self) -> Session:
        """Start a conversation (the oldest session is dropped beyond ``max_sessions``)."""
        now = self._clock()
        s = Session(_new_id("sess-"), [], now, now)
        with self._lock:
            self._sessions[s.id] = s
            while len(self._sessions) > self.config.max_sessions:
                self._sessions.popitem(last=False)
        return s

    def get_session(self, session_id: str) -> Session:
        """The live session with this id (NotFoundError when unknown or expired)."""
        with self._lock:
            return self._session_locked(session_id)

    def _session_locked(self, session_id: str) -> Session:
        s = self._sessions.get(session_id)
        if s is None:
            raise NotFoundError(f"no session {session_id!r}; create one with new_session()")
        if self._clock() - s.last_accessed > self.config.session_ttl_s:
            del self._sessions[session_id]
            raise NotFoundError(f"session {session_id!r} expired; start a new one")
        return s

    def end_session(self, session_id: str) -> None:
        """Forget a session."""
        with self._lock:
            if self._sessions.pop(session_id, None) is None:
                raise NotFoundError(f"no session {session_id!r}")

    # =============================================================== documents
    def add_document(self, text: str, metadata: dict[str, Any] | None = None) -> list[str]:
        """Ingest one document (chunked when long); returns the ids of its chunks."""
        return self.store.add_documents([(text, metadata)])

    def add_documents(
        self, docs: Iterable[tuple[str, dict[str, Any] | None]] | Iterable[str]
    ) -> list[str]:
        """Ingest many documents: batched embedding and one bulk memory insert."""
        items: list[tuple[str, Mapping[str, Any] | None]] = []
        for d in docs:
            if isinstance(d, str):
                items.append((d, None))
            elif isinstance(d, tuple) and len(d) == 2:
                items.append((d[0], d[1]))
            else:
                raise InvalidInputError("documents must be str or (text, metadata) pairs")
        return self.store.add_documents(items)

    def link(self, a: str, b: str, kind: str = "SameTopic") -> None:
        """Add a graph edge between two memory entries (``SameTopic`` or ``Follows``)."""
        self.store.link(a, b, kind)

    # ================================================================== routing
    def _features(
        self, query: str, vec: F32, retrieval: Retrieval, history_turns: int
    ) -> RouteFeatures:
        return route_features(
            vec,
            retrieval.vectors,
            retrieval.scores,
            top_k=self.config.retrieval_k,
            query_tokens=len(query.split()),
            history_turns=history_turns,
        )

    def route(self, text: str, *, explore: bool = False) -> RoutingInfo:
        """What the router would choose for ``text`` now (no generation, no learning)."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("query text must be a non-empty str")
        vec = self.embedder.embed(text)
        retr = self.store.retrieve(vec, self.config.retrieval_k)
        return self.router.route(self._features(text, vec, retr, 0), explore=explore).info

    # ================================================================== queries
    def _prepare(
        self,
        messages: Sequence[ChatMessage],
        model: str | None,
        max_tokens: int | None,
        temperature: float | None,
        session_id: str | None,
    ) -> _Prepared:
        start = time.perf_counter()
        if not messages:
            raise InvalidInputError("messages is empty; send at least one user message")
        for m in messages:
            if not isinstance(m, ChatMessage):
                raise InvalidInputError("messages must be ChatMessage objects")
        last = len(messages) - 1
        while last >= 0 and messages[last].role != "user":
            last -= 1
        if last < 0 or not messages[last].content.strip():
            raise InvalidInputError("the last user message is missing or empty")
        query = messages[last].content
        history = [m for m in messages[:last] if m.role != "system"]
        system = [m.content for m in messages[:last] if m.role == "system"]
        forced = None if model in (None, "auto") else model
        if forced is not None and forced not in self.config.models:
            raise InvalidInputError(
                f"unknown model {model!r}; use 'auto' or one of: {', '.join(self.config.models)}"
            )
        mt = self.config.max_tokens if max_tokens is None else max_tokens
        if isinstance(mt, bool) or not isinstance(mt, int) or mt < 1:
            raise InvalidInputError(f"max_tokens must be a positive int, got {max_tokens!r}")
        temp = self.config.temperature if temperature is None else temperature
        if not isinstance(temp, int | float) or not 0.0 <= float(temp) <= 2.0:
            raise InvalidInputError(f"temperature must be in 0..2, got {temperature!r}")

        t0 = time.perf_counter()
        vec = self.embedder.embed(query)
        t1 = time.perf_counter()
        retr = self.store.retrieve(vec, self.config.retrieval_k, expand=self.config.graph_expansion)
        t2 = time.perf_counter()
        feats = self._features(query, vec, retr, len(history))
        decision = self.router.route(feats, model=forced)
        t3 = time.perf_counter()
        info = decision.info
        context, used = assemble_context(retr.sources, info.context_size, self.backend.count_tokens)
        prompt = self._prompt(query, context, history, system)
        return _Prepared(
            _new_id("req-"),
            query,
            vec,
            feats,
            info,
            decision.model_index,
            decision.context_index,
            prompt,
            used,
            mt,
            float(temp),
            session_id,
            {"embed": (t1 - t0) * 1e3, "retrieve": (t2 - t1) * 1e3, "route": (t3 - t2) * 1e3},
            start,
        )

    def _prompt(
        self, query: str, context: str, history: Sequence[ChatMessage], system: Sequence[str]
    ) -> str:
        parts = ["System: " + " ".join([self.config.system_prompt, *system]).strip()]
        if context:
            parts.append("Context:\n" + context)
        for m in history[-self.config.history_messages :]:
            parts.append(("User: " if m.role == "user" else "Assistant: ") + m.content)
        parts.append("User: " + query)
        parts.append("Assistant:")
        return "\n".join(parts)

    def _finish(self, prep: _Prepared, gen: Generation, generate_ms: float) -> Response:
        lat = dict(prep.latency)
        lat["generate"] = generate_ms
        lat["total"] = (time.perf_counter() - prep.start) * 1e3
        info = prep.decision_info
        rec = _Record(
            prep.query,
            prep.embedding,
            prep.features,
            prep.model_index,
            prep.context_index,
            info.model,
            gen.text,
            [s.id for s in prep.sources],
            prep.session_id,
        )
        with self._lock:
            self._records[prep.request_id] = rec
            while len(self._records) > self.config.max_pending_requests:
                self._records.popitem(last=False)
            self._counts["queries"] += 1
            self._counts["fallbacks"] += int(info.fallback)
            self._counts["forced"] += int(info.forced)
            self._per_model[info.model]["routed"] += 1
            for k, v in lat.items():
                self._latency[k].append(v)
            if prep.session_id is not None:
                s = self._sessions.get(prep.session_id)
                if s is not None:
                    s.history.append(ChatMessage("user", prep.query))
                    s.history.append(ChatMessage("assistant", gen.text))
                    s.last_accessed = self._clock()
        return Response(
            request_id=prep.request_id,
            text=gen.text,
            routing_info=info,
            confidence=info.confidence,
            sources=prep.sources,
            latency_ms=lat,
            usage=TokenUsage(gen.prompt_tokens, gen.completion_tokens),
            session_id=prep.session_id,
            finish_reason=gen.finish_reason,
            backend=self.backend.name,
            created=self._clock(),
        )

    def query(
        self,
        text: str,
        *,
        session_id: str | None = None,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Response:
        """Answer one query (within a session when ``session_id`` is given)."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("query text must be a non-empty str")
        history: list[ChatMessage] = []
        if session_id is not None:
            with self._lock:
                history = list(self._session_locked(session_id).history)
        messages = [*history, ChatMessage("user", text)]
        prep = self._prepare(messages, model, max_tokens, temperature, session_id)
        return self._generate(prep)

    def query_session(self, session: Session, text: str, **kw: Any) -> Response:
        """The seed's ``query_session``: :meth:`query` inside ``session``."""
        return self.query(text, session_id=session.id, **kw)

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Response:
        """OpenAI-style chat: the last user message is the query, earlier ones the history."""
        prep = self._prepare(list(messages), model, max_tokens, temperature, None)
        return self._generate(prep)

    def _generate(self, prep: _Prepared) -> Response:
        t = time.perf_counter()
        gen = self.backend.generate(
            prep.prompt,
            model=prep.decision_info.model,
            max_tokens=prep.max_tokens,
            temperature=prep.temperature,
        )
        return self._finish(prep, gen, (time.perf_counter() - t) * 1e3)

    def chat_stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> tuple[StreamStart, Iterator[str], Callable[[], Response]]:
        """Streamed :meth:`chat`: ``(start, deltas, final)``; call ``final()`` after the
        iterator is exhausted to get the :class:`Response`."""
        prep = self._prepare(list(messages), model, max_tokens, temperature, None)
        pieces: list[str] = []
        state: dict[str, Any] = {"done": False, "t": 0.0}
        done: list[Response] = []

        def deltas() -> Iterator[str]:
            t = time.perf_counter()
            for piece in self.backend.stream(
                prep.prompt,
                model=prep.decision_info.model,
                max_tokens=prep.max_tokens,
                temperature=prep.temperature,
            ):
                pieces.append(piece)
                yield piece
            state["t"] = (time.perf_counter() - t) * 1e3
            state["done"] = True

        def final() -> Response:
            if done:
                return done[0]
            if not state["done"]:
                raise InvalidInputError("the stream is not finished; exhaust the iterator first")
            text = "".join(pieces)
            n = self.backend.count_tokens(text)
            gen = Generation(
                text,
                self.backend.count_tokens(prep.prompt),
                n,
                "length" if n >= prep.max_tokens else "stop",
                prep.decision_info.model,
            )
            with self._lock:
                self._counts["streams"] += 1
            done.append(self._finish(prep, gen, float(state["t"])))
            return done[0]

        return StreamStart(prep.request_id, prep.decision_info.model), deltas(), final

    # ================================================================ learning
    def feedback(self, feedback: Feedback) -> None:
        """Learn from a user's verdict on a response (NotFoundError for unknown ids)."""
        if not isinstance(feedback, Feedback):
            raise InvalidInputError("feedback must be a Feedback")
        with self._lock:
            rec = self._records.get(feedback.request_id)
            if rec is None:
                raise NotFoundError(
                    f"no response with request_id {feedback.request_id!r} (unknown or too old)"
                )
            if rec.feedback:
                raise InvalidInputError(
                    f"feedback for {feedback.request_id!r} was already recorded"
                )
            rec.feedback = True
            reward = feedback.reward
            self._counts["feedback"] += 1
            n_feedback = self._counts["feedback"]
            self._reward_sum += reward
            pm = self._per_model[rec.model]
            pm["feedback"] += 1
            pm["reward_sum"] += reward
        if not self.config.learning_enabled:
            return
        self.router.update(rec.features, rec.model_index, reward, context=rec.context_index)
        if self.learning_sink is not None:
            self.learning_sink.record(rec.embedding, rec.model, reward, feedback.request_id)
            every = self.config.sona_sync_every
            if every and n_feedback % every == 0:
                self.learn_from_sona()
        if feedback.correction is not None:
            self.store.write_back(rec.query, feedback.correction, sources=rec.source_ids)
        elif reward >= self.config.writeback_min_reward:
            self.store.write_back(rec.query, rec.text, sources=rec.source_ids, quality=reward)

    def learn_from_trajectories(self, trajectories: Iterable[Any]) -> int:
        """Train the router from trajectories carrying ``embedding``, ``model_route`` and
        ``quality`` (e.g. SONA's); returns how many were used."""
        n = 0
        for t in trajectories:
            route = getattr(t, "model_route", None)
            emb = next(
                (
                    getattr(t, a)
                    for a in ("embedding", "query_embedding", "centroid")
                    if getattr(t, a, None) is not None
                ),
                None,
            )
            quality = next(
                (
                    getattr(t, a)
                    for a in ("quality", "final_quality", "avg_quality")
                    if getattr(t, a, None) is not None
                ),
                None,
            )
            if route not in self.config.models or emb is None or quality is None:
                continue
            vec = np.asarray(emb, dtype=np.float32).ravel()
            if vec.shape[0] != self.embedder.dim:
                continue
            feats = route_features(vec)
            self.router.update(feats, str(route), float(min(1.0, max(0.0, quality))))
            n += 1
        return n

    def learn_from_sona(self) -> int:
        """Train the router on SONA's new learned patterns (centroid, best route, mean
        quality); returns how many were used. A no-op without a SONA sink."""
        fresh = getattr(self.learning_sink, "learned_routes", None)
        if not callable(fresh):
            return 0
        learn_now = getattr(self.learning_sink, "learn_now", None)
        if callable(learn_now):
            learn_now()  # SONA's background loop: extract patterns from recent trajectories
        return self.learn_from_trajectories(fresh())

    def get_patterns(self, limit: int = 10) -> list[dict[str, Any]]:
        """Learned patterns, best supported first (JSON-serialisable).

        From the learning sink when it offers patterns (SONA), else the router's view:
        per model, how often it was routed and rated and its mean reward.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidInputError(f"limit must be an int >= 0, got {limit!r}")
        sink_patterns = getattr(self.learning_sink, "patterns", None)
        if callable(sink_patterns):
            got = sink_patterns(limit)
            if got:
                return list(got)[:limit]
        with self._lock:
            rows: list[dict[str, Any]] = [
                {
                    "id": f"route:{m}",
                    "model": m,
                    "routed": int(v["routed"]),
                    "feedback": int(v["feedback"]),
                    "avg_reward": (v["reward_sum"] / v["feedback"]) if v["feedback"] else None,
                }
                for m, v in self._per_model.items()
            ]
        rows.sort(key=lambda r: (-r["feedback"], -r["routed"], r["model"]))
        return rows[:limit]

    def _sink_stats(self) -> dict[str, Any] | None:
        return _sink_stats_of(self.learning_sink)

    def stats(self) -> dict[str, Any]:
        """Counters, latency percentiles, router, memory and cache state (JSON-serialisable)."""
        with self._lock:
            lat = {
                s: {
                    "p50": statistics.median(v) if v else None,
                    "p95": float(np.percentile(list(v), 95)) if v else None,
                }
                for s, v in self._latency.items()
            }
            counts = dict(self._counts)
            fb = counts["feedback"]
            avg = self._reward_sum / fb if fb else None
            sessions = len(self._sessions)
            pending = len(self._records)
        cache = self.embedder.cache_info() if isinstance(self.embedder, CachedEmbedder) else {}
        tuner = self.store.tuner
        return {
            **counts,
            "avg_reward": avg,
            "sessions": sessions,
            "pending_requests": pending,
            "latency_ms": lat,
            "backend": self.backend.name,
            "embedder": {"name": self.embedder.name, "dim": self.embedder.dim, "cache": cache},
            "memory": {
                "entries": len(self.store),
                "edges": self.store.edge_count(),
                "writebacks": self.store.writebacks,
                "duplicates_skipped": self.store.duplicates,
                "ef_search": tuner.ef if tuner is not None else self.config.hnsw_ef_search,
            },
            "router": self.router.stats(),
            "learning_sink": self._sink_stats(),
            "models": self.models(),
        }


def _sink_stats_of(sink: LearningSink | None) -> dict[str, Any] | None:
    if sink is None:
        return None
    out: dict[str, Any] = {"kind": type(sink).__name__}
    more = getattr(sink, "stats", None)
    if callable(more):
        out.update(more())
    return out


def _default_sink(dim: int) -> LearningSink | None:
    """A SONA-backed sink when ``ruvector_edge.sona`` is importable, else None."""
    try:
        from ruvector_edge.llm.sona_sink import SonaSink  # noqa: PLC0415
    except ImportError:
        return None
    try:
        return SonaSink.create(dim)
    except Exception:  # SONA present but incompatible: learning still works without it
        return None
