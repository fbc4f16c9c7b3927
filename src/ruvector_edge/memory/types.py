"""Value types of the vector memory: entries, hits, policies, statistics and reports."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, NamedTuple

import msgspec
import numpy as np
from numpy.typing import NDArray

from ruvector_edge.errors import ConfigError

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
]


class Metric(StrEnum):
    """Similarity measure. Scores are always "higher is better":

    * ``cosine``: cosine similarity in ``[-1, 1]``;
    * ``ip``: inner product ``<q, x>``;
    * ``l2``: negative Euclidean distance ``-||q - x||`` (so 0 is a perfect match).
    """

    COSINE = "cosine"
    L2 = "l2"
    IP = "ip"

    @classmethod
    def parse(cls, value: str | Metric) -> Metric:
        """Parse a metric name (``cos``, ``l2sq``, ``euclidean``, ``dot`` accepted)."""
        if isinstance(value, Metric):
            return value
        if not isinstance(value, str):
            raise ConfigError(f"metric must be a string, got {value!r}")
        key = value.strip().lower()
        aliases = {
            "cos": "cosine",
            "angular": "cosine",
            "l2sq": "l2",
            "euclidean": "l2",
            "dot": "ip",
            "inner": "ip",
            "inner_product": "ip",
        }
        try:
            return cls(aliases.get(key, key))
        except ValueError:
            raise ConfigError(
                f"unknown metric {value!r}; expected one of: cosine, l2, ip"
            ) from None


class EvictionPolicy(StrEnum):
    """Which entry makes room when the memory is full.

    ``lru``: the least recently used (stored, updated or returned by a search);
    ``fifo``: the oldest stored. Both pop the front of an ordered dict, O(1).
    """

    LRU = "lru"
    FIFO = "fifo"

    @classmethod
    def parse(cls, value: str | EvictionPolicy) -> EvictionPolicy:
        """Parse a policy name case-insensitively."""
        if isinstance(value, EvictionPolicy):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ConfigError(f"unknown eviction policy {value!r}; expected lru or fifo") from None


class Tier(IntEnum):
    """Storage tier of an entry's vector (the seed's hot/warm/cool/cold)."""

    HOT = 0  # float32, exact
    WARM = 1  # float16, 2x smaller
    COOL = 2  # int8 with a per-vector scale, ~4x smaller
    COLD = 3  # one sign bit per dimension plus norm and correction, ~30x smaller

    @property
    def storage(self) -> str:
        """Name of the stored representation."""
        return ("float32", "float16", "int8", "binary")[self.value]


@dataclass(frozen=True, slots=True)
class TierPolicy:
    """When entries move between tiers.

    Each entry carries an exponentially decayed access count ``f``: every search hit adds
    1, and ``f`` halves every ``half_life_s`` seconds. :meth:`VectorMemory.rebalance`
    (run automatically every ``rebalance_every`` writes, 0 = only when called) places an
    entry in HOT if ``f >= hot``, WARM if ``f >= warm``, COOL if ``f >= cool``, else COLD.
    A new entry starts in ``initial`` with ``f`` equal to that tier's threshold, so an
    entry nobody looks at sinks one tier every ``log2(threshold ratio)`` half-lives.
    """

    half_life_s: float = 3600.0
    hot: float = 4.0
    warm: float = 1.0
    cool: float = 0.25
    initial: Tier = Tier.HOT
    rebalance_every: int = 1024

    def __post_init__(self) -> None:
        if not (math.isfinite(self.half_life_s) and self.half_life_s > 0):
            raise ConfigError(f"half_life_s must be a positive number, got {self.half_life_s}")
        if not all(math.isfinite(x) for x in (self.hot, self.warm, self.cool)):
            raise ConfigError("tier thresholds must be finite numbers")
        if not self.hot > self.warm > self.cool > 0:
            raise ConfigError(
                f"tier thresholds must satisfy hot > warm > cool > 0, got "
                f"hot={self.hot}, warm={self.warm}, cool={self.cool}"
            )
        if not isinstance(self.initial, Tier):
            raise ConfigError(f"initial must be a Tier, got {self.initial!r}")
        if isinstance(self.rebalance_every, bool) or not isinstance(self.rebalance_every, int):
            raise ConfigError(f"rebalance_every must be an int, got {self.rebalance_every!r}")
        if self.rebalance_every < 0:
            raise ConfigError(f"rebalance_every must be >= 0, got {self.rebalance_every}")

    def initial_frequency(self) -> float:
        """The decayed access count a new entry starts with."""
        return (self.hot, self.warm, self.cool, 0.0)[self.initial.value]

    def tiers_for(self, freq: NDArray[np.float64]) -> NDArray[np.int8]:
        """Target tier for each decayed access count."""
        out = np.full(freq.shape, Tier.COLD.value, dtype=np.int8)
        out[freq >= self.cool] = Tier.COOL.value
        out[freq >= self.warm] = Tier.WARM.value
        out[freq >= self.hot] = Tier.HOT.value
        return out


class VectorEntry(msgspec.Struct, frozen=True):
    """One stored memory (the seed's fields plus its current tier).

    ``timestamp`` is the version time in microseconds since the Unix epoch;
    ``owner_agent`` is the agent that wrote this version. ``embedding`` is the vector as
    the memory holds it in RAM: exact for HOT, decoded from float16/int8/binary otherwise.
    ``access_count`` counts search hits on this replica (it is not synchronized).
    """

    id: str
    content: str
    embedding: NDArray[np.float32]
    metadata: dict[str, Any]
    timestamp: int
    owner_agent: str
    access_count: int = 0
    tier: Tier = Tier.HOT

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VectorEntry):
            return NotImplemented
        return (
            self.id == other.id
            and self.content == other.content
            and self.metadata == other.metadata
            and self.timestamp == other.timestamp
            and self.owner_agent == other.owner_agent
            and self.access_count == other.access_count
            and self.tier == other.tier
            and np.array_equal(self.embedding, other.embedding)
        )

    def __hash__(self) -> int:
        return hash((self.id, self.timestamp))


class SearchHit(NamedTuple):
    """A search result: the entry and its score (higher is better, see :class:`Metric`)."""

    entry: VectorEntry
    score: float

    @property
    def id(self) -> str:
        """The entry's id."""
        return self.entry.id

    @property
    def content(self) -> str:
        """The entry's content."""
        return self.entry.content


class SearchRecords(NamedTuple):
    """:meth:`VectorMemory.search_records` results as parallel columns, best first.

    ``vectors`` is one ``(n, dim)`` float32 matrix (the vectors as the memory holds them,
    like :attr:`VectorEntry.embedding`); ``metadata`` dicts are copies.
    """

    ids: list[str]
    contents: list[str]
    metadata: list[dict[str, Any]]
    scores: list[float]
    vectors: NDArray[np.float32]


class SyncDelta(NamedTuple):
    """Result of :meth:`VectorMemory.export_delta`: the bytes and the version they reach."""

    data: bytes
    version: int
    entries: int
    tombstones: int


@dataclass(frozen=True, slots=True)
class MergeReport:
    """What one :meth:`VectorMemory.merge_report` did.

    ``applied`` = entries written + tombstones applied; ``stale`` = items older than (or
    equal to) what this replica already had; ``evicted`` = local entries evicted to make
    room, following the eviction policy.
    """

    applied: int
    entries_written: int
    tombstones_applied: int
    stale: int
    evicted: int
    origin: str
    version: int


@dataclass(frozen=True, slots=True)
class RebalanceReport:
    """Entries moved by :meth:`VectorMemory.rebalance`, per destination tier."""

    moved: dict[Tier, int] = field(default_factory=dict)
    counts: dict[Tier, int] = field(default_factory=dict)

    @property
    def total_moved(self) -> int:
        """Entries that changed tier."""
        return sum(self.moved.values())


@dataclass(frozen=True, slots=True)
class MemoryStats:
    """A snapshot of a memory's size, settings and counters.

    ``index_bytes``: RAM reserved per tier (usearch's accounting, which includes arena
    slack, plus side arrays). ``bytes_per_entry``: vectors + HNSW links + side data per
    entry as serialized, i.e. what each entry costs without allocator slack.
    """

    agent_id: str
    entries: int
    max_entries: int
    dim: int | None
    metric: Metric
    eviction: EvictionPolicy
    tiers: dict[Tier, int]
    index_bytes: dict[Tier, int]
    bytes_per_entry: dict[Tier, float]
    tombstones: int
    evictions: int
    searches: int
    version: int
    connectivity: int
    ef_construction: int
    ef_search: int
    data_dir: str | None
