"""Knowledge store for ruvLLM: chunking, ingestion, retrieval, graph edges, write-back.

Documents are split into word-window chunks, embedded in batches and inserted into a
:class:`~ruvector_edge.memory.VectorMemory` in one bulk ``store_many`` call. Chunks of one
document are linked by ``Follows`` edges; write-backs are linked to the passages they
used by ``SameTopic`` edges; retrieval can expand the top hits with their neighbours.
The HNSW ``ef_search`` follows a latency budget (:class:`EfTuner`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from ruvector_edge.errors import ConfigError, InvalidInputError, NotFoundError
from ruvector_edge.llm.embeddings import Embedder
from ruvector_edge.llm.types import Source
from ruvector_edge.memory import Tier, TierPolicy, VectorMemory

__all__ = [
    "EDGE_KINDS",
    "EfTuner",
    "KnowledgeStore",
    "Retrieval",
    "assemble_context",
    "chunk_text",
]

F32 = NDArray[np.float32]
EDGE_KINDS: Final = ("SameTopic", "Follows")
DEDUP_THRESHOLD: Final = 0.95


def chunk_text(text: str, max_words: int = 200, overlap: int = 40) -> list[str]:
    """Split ``text`` into windows of at most ``max_words`` words overlapping by ``overlap``."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("document text must be a non-empty str")
    if max_words < 1 or not 0 <= overlap < max_words:
        raise InvalidInputError("chunking needs max_words >= 1 and 0 <= overlap < max_words")
    words = text.split()
    if len(words) <= max_words:
        return [text.strip()]
    step = max_words - overlap
    chunks = []
    for start in range(0, len(words), step):
        chunks.append(" ".join(words[start : start + max_words]))
        if start + max_words >= len(words):
            break
    return chunks


class EfTuner:
    """Keeps HNSW ``ef_search`` inside a retrieval latency budget.

    An exponentially weighted mean of measured retrieval times drives ``ef``: above the
    budget it halves (down to ``ef_min``); below a third of the budget it grows by half
    (up to ``ef_max``), re-checked every ``every`` searches. The caller measures (with
    its own injectable clock) and reports each time to :meth:`observe`.
    """

    def __init__(
        self,
        budget_ms: float,
        *,
        ef: int = 64,
        ef_min: int = 16,
        ef_max: int = 256,
        every: int = 32,
        alpha: float = 0.1,
    ) -> None:
        if budget_ms <= 0:
            raise InvalidInputError(f"retrieval budget must be > 0 ms, got {budget_ms}")
        self.budget_ms = float(budget_ms)
        self.ef = ef
        self.ef_min, self.ef_max = ef_min, ef_max
        self.every = every
        self.alpha = alpha
        self.ewma_ms: float | None = None
        self._n = 0
        self.changes = 0

    def observe(self, ms: float) -> int | None:
        """Record one retrieval time; returns a new ``ef`` when it should change."""
        self.ewma_ms = (
            ms if self.ewma_ms is None else (1 - self.alpha) * self.ewma_ms + self.alpha * ms
        )
        self._n += 1
        if self._n % self.every:
            return None
        new = self.ef
        if self.ewma_ms > self.budget_ms and self.ef > self.ef_min:
            new = max(self.ef_min, self.ef // 2)
        elif self.ewma_ms < self.budget_ms / 3 and self.ef < self.ef_max:
            new = min(self.ef_max, self.ef + self.ef // 2)
        if new == self.ef:
            return None
        self.ef = new
        self.changes += 1
        return new


@dataclass(frozen=True, slots=True)
class Retrieval:
    """Retrieved sources plus what the router needs (their vectors and scores)."""

    sources: list[Source]
    vectors: F32
    scores: list[float]


def _content(entry_content: str) -> str:
    return entry_content


_PRECISIONS: dict[str, Tier | None] = {"float32": None, "float16": Tier.WARM, "int8": Tier.COOL}


class KnowledgeStore:
    """Vector memory + edges for ruvLLM (thread-safe: the memory is, edges use a lock)."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        max_entries: int = 1_000_000,
        ef_search: int = 64,
        ef_min: int = 16,
        connectivity: int = 32,
        ef_construction: int = 200,
        precision: str = "int8",
        latency_budget_ms: float | None = 0.5,
        chunk_words: int = 200,
        chunk_overlap: int = 40,
        agent_id: str = "ruvllm",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.embedder = embedder
        tier = _PRECISIONS.get(precision)
        if precision not in _PRECISIONS:
            raise ConfigError(
                f"index precision must be one of {sorted(_PRECISIONS)}, got {precision!r}"
            )
        self.memory = VectorMemory(
            agent_id,
            max_entries=max_entries,
            dim=embedder.dim,
            connectivity=connectivity,
            ef_construction=ef_construction,
            ef_search=ef_search,
            # One fixed tier: every vector stays at the chosen precision.
            tiers=None if tier is None else TierPolicy(initial=tier, rebalance_every=0),
        )
        self.chunk_words = chunk_words
        self.chunk_overlap = chunk_overlap
        self.tuner = (
            EfTuner(latency_budget_ms, ef=ef_search, ef_min=min(ef_min, ef_search))
            if latency_budget_ms
            else None
        )
        self._clock = clock
        self._edges: dict[str, list[tuple[str, str]]] = {}
        self._lock = threading.Lock()
        self.writebacks = 0
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self.memory)

    # ---------------------------------------------------------------- ingestion
    def add_documents(
        self, docs: Sequence[tuple[str, Mapping[str, Any] | None]], *, chunk: bool = True
    ) -> list[str]:
        """Chunk, embed (batched) and store documents in one bulk insert; returns chunk ids."""
        texts: list[str] = []
        metas: list[dict[str, Any]] = []
        doc_of: list[int] = []
        for d, (text, meta) in enumerate(docs):
            if not isinstance(text, str) or not text.strip():
                raise InvalidInputError(f"document {d} is empty; give some text")
            if meta is not None and not isinstance(meta, Mapping):
                raise InvalidInputError(f"metadata of document {d} must be a mapping")
            pieces = chunk_text(text, self.chunk_words, self.chunk_overlap) if chunk else [text]
            for i, piece in enumerate(pieces):
                m = dict(meta or {})
                m.setdefault("kind", "document")
                if len(pieces) > 1:
                    m["chunk"] = i
                texts.append(piece)
                metas.append(m)
                doc_of.append(d)
        if not texts:
            return []
        vecs = self.embedder.embed_batch(texts)
        ids = self.memory.store_many(texts, vecs, metas)
        with self._lock:
            for i in range(1, len(ids)):
                if doc_of[i] == doc_of[i - 1]:
                    self._link(ids[i - 1], ids[i], "Follows")
        return ids

    # -------------------------------------------------------------------- edges
    def _link(self, a: str, b: str, kind: str) -> None:
        self._edges.setdefault(a, []).append((b, kind))
        self._edges.setdefault(b, []).append((a, kind))

    def link(self, a: str, b: str, kind: str = "SameTopic") -> None:
        """Add an undirected edge of ``kind`` (``SameTopic`` or ``Follows``) between entries."""
        if kind not in EDGE_KINDS:
            raise InvalidInputError(f"edge kind must be one of {EDGE_KINDS}, got {kind!r}")
        for x in (a, b):
            if x not in self.memory:
                raise NotFoundError(f"no memory entry with id {x!r}")
        with self._lock:
            self._link(a, b, kind)

    def neighbours(self, id: str) -> list[tuple[str, str]]:
        """``(neighbour id, edge kind)`` pairs of an entry."""
        with self._lock:
            return list(self._edges.get(id, ()))

    def edge_count(self) -> int:
        """Number of undirected edges."""
        with self._lock:
            return sum(len(v) for v in self._edges.values()) // 2

    # ---------------------------------------------------------------- retrieval
    def retrieve(self, query: F32, k: int, *, expand: int = 0) -> Retrieval:
        """Top ``k`` entries for ``query``; ``expand`` > 0 adds up to that many graph
        neighbours of the top hits (score = 0.9 x the hit's score)."""
        if k <= 0 or not len(self.memory):
            return Retrieval([], np.zeros((0, self.embedder.dim), dtype=np.float32), [])
        start = self._clock()
        found = self.memory.search_records(query, k)
        tuner = self.tuner
        if tuner is not None:
            new = tuner.observe((self._clock() - start) * 1000.0)
            if new is not None:
                self.memory.set_ef_search(new)
        scores = found.scores
        sources = [
            Source(i, c, s, m)
            for i, c, s, m in zip(found.ids, found.contents, scores, found.metadata, strict=True)
        ]
        mat = found.vectors
        if expand and self._edges:
            seen = set(found.ids)
            extra: list[Source] = []
            vectors: list[F32] = []
            for s in sources[:2]:
                for nid, kind in self.neighbours(s.id):
                    if nid in seen or len(extra) >= expand:
                        continue
                    try:
                        e = self.memory.get(nid)
                    except NotFoundError:
                        continue
                    seen.add(nid)
                    meta = {**e.metadata, "via": kind, "neighbour_of": s.id}
                    extra.append(Source(nid, e.content, s.score * 0.9, meta))
                    vectors.append(e.embedding)
            if extra:
                sources.extend(extra)
                scores = [s.score for s in sources]
                mat = np.concatenate([mat, np.stack(vectors).astype(np.float32, copy=False)])
        return Retrieval(sources, mat, scores)

    # --------------------------------------------------------------- write-back
    def write_back(
        self, question: str, answer: str, *, sources: Sequence[str] = (), quality: float = 1.0
    ) -> str | None:
        """Store ``"Q: ...\\nA: ..."`` unless a near-duplicate (cosine >= 0.95) exists.

        Links the new entry to the passages it used with ``SameTopic`` edges. Returns the
        new id, or None for a duplicate.
        """
        text = f"Q: {question.strip()}\nA: {answer.strip()}"
        vec = self.embedder.embed(text)
        if len(self.memory):
            top = self.memory.search(vec, 1, filter={"kind": "qa"})
            if top and top[0].score >= DEDUP_THRESHOLD:
                with self._lock:
                    self.duplicates += 1
                return None
        eid = self.memory.store(text, vec, {"kind": "qa", "quality": float(quality)})
        with self._lock:
            self.writebacks += 1
            for sid in sources:
                if sid in self.memory:
                    self._link(eid, sid, "SameTopic")
        return eid


def assemble_context(
    sources: Sequence[Source], budget_tokens: int, count_tokens: Callable[[str], int]
) -> tuple[str, list[Source]]:
    """Numbered passages ``[1] ...`` best first, as many as fit in ``budget_tokens``.

    A passage that does not fit whole is cut to the remaining budget (by words) if at
    least 16 tokens remain; otherwise assembly stops.
    """
    lines: list[str] = []
    used: list[Source] = []
    left = budget_tokens
    for s in sources:
        line = f"[{len(used) + 1}] {s.text.strip()}"
        n = count_tokens(line)
        if n > left:
            if left < 16:
                break
            words = line.split()
            keep = max(1, int(len(words) * left / max(n, 1)))
            line = " ".join(words[:keep])
            n = count_tokens(line)
            while n > left and keep > 1:
                keep -= 1
                line = " ".join(words[:keep])
                n = count_tokens(line)
        lines.append(line)
        used.append(s)
        left -= n
        if left <= 0:
            break
    return "\n".join(lines), used
