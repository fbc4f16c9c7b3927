"""Knowledge store: chunking, ingestion, graph edges, ef tuning, context assembly, write-back."""

from __future__ import annotations

import pytest

from ruvector_edge.errors import InvalidInputError, NotFoundError
from ruvector_edge.llm import EfTuner, HashEmbedder, KnowledgeStore, assemble_context, chunk_text
from ruvector_edge.llm.backends import approx_token_count
from ruvector_edge.llm.types import Source


def test_chunk_text_windows_and_overlap() -> None:
    words = [f"w{i}" for i in range(450)]
    chunks = chunk_text(" ".join(words), max_words=200, overlap=40)
    assert [len(c.split()) for c in chunks] == [200, 200, 130]
    assert chunks[1].split()[0] == "w160"  # 40 words of overlap
    assert chunk_text("short text") == ["short text"]
    with pytest.raises(InvalidInputError):
        chunk_text("   ")
    with pytest.raises(InvalidInputError):
        chunk_text("a b", max_words=10, overlap=10)


def test_ingest_links_chunks_and_retrieves_relevant() -> None:
    ks = KnowledgeStore(HashEmbedder(), latency_budget_ms=None, chunk_words=20, chunk_overlap=5)
    long_doc = " ".join(f"kubernetes pod scheduling note{i}" for i in range(20))
    ids = ks.add_documents(
        [(long_doc, {"topic": "k8s"}), ("sourdough bread needs a starter", {"topic": "food"})]
    )
    assert len(ids) > 3  # the long doc was chunked
    first = ids[0]
    assert "Follows" in {k for _, k in ks.neighbours(first)}
    assert ks.edge_count() == len(ids) - 2  # consecutive chunks of one doc, not across docs
    hits = ks.retrieve(HashEmbedder().embed("how to bake sourdough bread"), 1)
    assert hits.sources[0].metadata["topic"] == "food"
    assert hits.vectors.shape == (1, 384)


def test_neighbour_expansion_adds_linked_entries() -> None:
    emb = HashEmbedder()
    ks = KnowledgeStore(emb, latency_budget_ms=None)
    a, b = ks.add_documents([("alpha service deploy steps", None), ("zebra unrelated", None)])
    ks.link(a, b, "SameTopic")
    plain = ks.retrieve(emb.embed("alpha service deploy"), 1)
    expanded = ks.retrieve(emb.embed("alpha service deploy"), 1, expand=2)
    assert [s.id for s in plain.sources] == [a]
    assert [s.id for s in expanded.sources] == [a, b]
    assert expanded.sources[1].metadata["via"] == "SameTopic"
    assert expanded.sources[1].score == pytest.approx(0.9 * expanded.sources[0].score)
    with pytest.raises(NotFoundError):
        ks.link(a, "missing")
    with pytest.raises(InvalidInputError):
        ks.link(a, b, "Likes")


def test_write_back_deduplicates_at_095() -> None:
    emb = HashEmbedder()
    ks = KnowledgeStore(emb, latency_budget_ms=None)
    (src,) = ks.add_documents([("the pool size is set in settings.toml", None)])
    first = ks.write_back("where is the pool size set?", "In settings.toml.", sources=[src])
    again = ks.write_back("where is the pool size set?", "In settings.toml.")
    other = ks.write_back("how do I bake bread?", "Use a starter.")
    assert first is not None
    assert again is None
    assert other is not None
    assert ks.duplicates == 1
    assert ks.writebacks == 2
    assert (src, "SameTopic") in ks.neighbours(first)
    assert ks.memory.get(first).content.startswith("Q: where is the pool size set?\nA: ")


def test_ef_tuner_follows_the_latency_budget() -> None:
    t = EfTuner(1.0, ef=64, every=4)
    for _ in range(8):
        t.observe(5.0)  # over budget: halves
    assert t.ef == 16
    for _ in range(200):
        t.observe(0.01)  # far under budget: grows back, capped
    assert t.ef == 256
    assert t.changes >= 4


def test_ef_tuner_drives_the_live_index() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 0.01  # every retrieval "takes" 10 ms
        return now[0]

    ks = KnowledgeStore(HashEmbedder(dim=64), latency_budget_ms=1.0, clock=clock)
    ks.add_documents([(f"doc {i}", None) for i in range(50)])
    q = HashEmbedder(dim=64).embed("doc 3")
    for _ in range(100):
        ks.retrieve(q, 3)
    assert ks.tuner is not None
    assert ks.tuner.ef == 16
    assert ks.memory.ef_search == 16


def test_assemble_context_respects_budget() -> None:
    srcs = [Source(str(i), " ".join(["word"] * 50), 1.0 - i / 10, {}) for i in range(5)]
    text, used = assemble_context(srcs, 130, approx_token_count)  # 53 tokens per passage
    assert approx_token_count(text) <= 130
    assert [s.id for s in used] == ["0", "1", "2"]  # third passage cut to fit
    assert text.startswith("[1] word")
    _, used = assemble_context(srcs, 120, approx_token_count)
    assert len(used) == 2  # 14 tokens left: too few for a useful cut
    text, used = assemble_context(srcs, 1000, approx_token_count)
    assert len(used) == 5
    assert assemble_context(srcs, 0, approx_token_count) == ("", [])


@pytest.mark.parametrize("precision", ["float32", "float16", "int8"])
def test_every_index_precision_retrieves_the_matching_document(precision: str) -> None:
    emb = HashEmbedder()
    ks = KnowledgeStore(emb, latency_budget_ms=None, precision=precision)
    topics = ["database connection pool size", "pizza dough hydration", "kubernetes pod eviction"]
    ks.add_documents([(f"notes on {t} number {i}", None) for t in topics for i in range(20)])
    hit = ks.retrieve(emb.embed("how big should the database connection pool be"), 3)
    assert all("database connection pool" in s.text for s in hit.sources)
    assert ks.memory.stats().entries == 60


def test_an_unknown_index_precision_is_refused() -> None:
    from ruvector_edge.errors import ConfigError

    with pytest.raises(ConfigError, match="precision"):
        KnowledgeStore(HashEmbedder(), precision="int4")
