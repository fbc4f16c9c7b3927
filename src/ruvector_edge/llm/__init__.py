"""ruvLLM: embed, retrieve from vector memory, route with a learned router, generate, learn.

* :class:`RuvLLM` (with :class:`Config`, :class:`Session`) answers queries and chats,
  streams, takes :class:`Feedback` and learns from it; :class:`Response` carries the text,
  routing info, calibrated confidence, sources, latency breakdown and token usage.
* Embedders: :class:`HashEmbedder` (default, no dependencies), :class:`MiniLMEmbedder`
  (``[embeddings]`` extra), :class:`CachedEmbedder` (LRU).
* Backends: :class:`MockBackend`, :class:`ExternalBackend` (OpenAI-compatible HTTP),
  :class:`LocalBackend` (SmolLM2-135M, ``[local-llm]`` extra), :class:`FallbackBackend`.
* :class:`Router`: a contextual-bandit router (per-model ridge regression with LinUCB
  exploration plus a FastGRNN cell for the residual and the context size) trained online
  from feedback and SONA patterns, with EWC and temperature-calibrated confidence.
* :class:`SyntheticWorkload`: the fixed-seed topic -> best-model workload used by the
  router tests and ``benchmarks/bench_llm_router.py``.
* SONA: when :mod:`ruvector_edge.sona` is importable every feedback event becomes a SONA
  trajectory (:mod:`ruvector_edge.llm.sona_sink`); any :class:`LearningSink` can replace it.
"""

from __future__ import annotations

from ruvector_edge.llm.backends import (
    ExternalBackend,
    FallbackBackend,
    InferenceBackend,
    LocalBackend,
    MockBackend,
    create_backend,
)
from ruvector_edge.llm.context import EfTuner, KnowledgeStore, assemble_context, chunk_text
from ruvector_edge.llm.embeddings import (
    CachedEmbedder,
    Embedder,
    HashEmbedder,
    MiniLMEmbedder,
    create_embedder,
)
from ruvector_edge.llm.orchestrator import Config, LearningSink, RuvLLM, Session
from ruvector_edge.llm.router import RouteFeatures, Router, route_features
from ruvector_edge.llm.types import (
    BackendError,
    BackendTimeoutError,
    ChatMessage,
    Feedback,
    Generation,
    Response,
    RoutingInfo,
    Source,
    StreamStart,
    TokenUsage,
)
from ruvector_edge.llm.workload import SyntheticWorkload

__all__ = [
    "BackendError",
    "BackendTimeoutError",
    "CachedEmbedder",
    "ChatMessage",
    "Config",
    "EfTuner",
    "Embedder",
    "ExternalBackend",
    "FallbackBackend",
    "Feedback",
    "Generation",
    "HashEmbedder",
    "InferenceBackend",
    "KnowledgeStore",
    "LearningSink",
    "LocalBackend",
    "MiniLMEmbedder",
    "MockBackend",
    "Response",
    "RouteFeatures",
    "Router",
    "RoutingInfo",
    "RuvLLM",
    "Session",
    "Source",
    "StreamStart",
    "SyntheticWorkload",
    "TokenUsage",
    "assemble_context",
    "chunk_text",
    "create_backend",
    "create_embedder",
    "route_features",
]
