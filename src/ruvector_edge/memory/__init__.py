"""Vector memory: HNSW search with metadata filters, eviction, tiers, sync and persistence.

* :class:`VectorMemory` stores ``(content, embedding, metadata)`` entries for one agent,
  searches them with usearch HNSW (M=32, ef_construction=200, ef_search=64 by default),
  filters on metadata, evicts by LRU or FIFO when full, moves vectors between float32,
  float16, int8 and binary storage by access frequency (:class:`TierPolicy`), syncs with
  peers (deltas, last-writer-wins, tombstones) and persists to SQLite + index files.
* :class:`VectorEntry`, :class:`SearchHit`, :class:`SearchRecords`, :class:`MemoryStats`,
  :class:`MergeReport`, :class:`RebalanceReport`, :class:`SyncDelta` are the values it
  returns.

User errors raise :class:`~ruvector_edge.errors.EdgeError` subclasses: DimensionError,
InvalidInputError, NotFoundError, ConfigError, SyncError, StorageError.
"""

from __future__ import annotations

from ruvector_edge.memory.hashing import hash_embedding
from ruvector_edge.memory.types import (
    EvictionPolicy,
    MemoryStats,
    MergeReport,
    Metric,
    RebalanceReport,
    SearchHit,
    SearchRecords,
    SyncDelta,
    Tier,
    TierPolicy,
    VectorEntry,
)
from ruvector_edge.memory.vector_memory import VectorMemory

__all__ = [
    "EvictionPolicy",
    "MemoryStats",
    "MergeReport",
    "Metric",
    "RebalanceReport",
    "SearchHit",
    "SearchRecords",
    "SyncDelta",
    "Tier",
    "TierPolicy",
    "VectorEntry",
    "VectorMemory",
    "hash_embedding",
]
