"""``hash_embedding``: a dependency-free, deterministic text embedding by feature hashing.

Words and character trigrams of each word are hashed (BLAKE2b, stable across processes
and Python versions, unlike ``hash()``) into ``dim`` signed buckets, and the result is
L2-normalised. Texts that share words land close under cosine; texts that share nothing
are near-orthogonal. Good enough to file and find task context in swarm memory; the
``llm`` layer offers learned embedders for semantic search.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

import numpy as np
from numpy.typing import NDArray

from ruvector_edge.errors import InvalidInputError

__all__ = ["hash_embedding"]

_WORD: Final = re.compile(r"\w+", re.UNICODE)


def _features(text: str) -> list[tuple[bytes, float]]:
    feats: list[tuple[bytes, float]] = []
    for word in _WORD.findall(text.lower()):
        feats.append((b"w:" + word.encode(), 1.0))
        padded = f"<{word}>"
        for i in range(len(padded) - 2):
            feats.append((b"c:" + padded[i : i + 3].encode(), 0.35))
    return feats


def hash_embedding(text: str, dim: int = 64) -> NDArray[np.float32]:
    """Embed ``text`` into a unit-length ``dim``-vector (zero text -> a fixed unit vector)."""
    if not isinstance(text, str):
        raise InvalidInputError(f"text must be a str, got {type(text).__name__}")
    if not isinstance(dim, int) or not 8 <= dim <= 65_536:
        raise InvalidInputError(f"dim must be an int in 8..65536, got {dim!r}")
    feats = _features(text)
    out = np.zeros(dim, dtype=np.float32)
    if not feats:
        out[0] = 1.0
        return out
    digests = [hashlib.blake2b(f, digest_size=8).digest() for f, _ in feats]
    codes = np.frombuffer(b"".join(digests), dtype="<u8")
    weights = np.fromiter((w for _, w in feats), dtype=np.float32, count=len(feats))
    signs = np.where((codes >> np.uint64(63)) == 0, 1.0, -1.0).astype(np.float32)
    np.add.at(out, (codes % np.uint64(dim)).astype(np.intp), signs * weights)
    norm = float(np.linalg.norm(out))
    if norm == 0.0:
        out[0] = 1.0
        return out
    out /= norm
    return out
