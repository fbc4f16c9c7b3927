"""Engine state files: ``sona-state/1``.

A TensorCodec bytes blob (LZ4, CRC-checked) of a msgpack ``_EngineState``; every float
array inside is a lossless TensorCodec tensor blob. Buffered (not yet learned)
trajectories are not saved: call ``force_learn()`` first to fold them into patterns.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from ruvector_edge.codec import CompressionLevel, TensorCodec
from ruvector_edge.errors import CodecError, EdgeError, StorageError
from ruvector_edge.sona._util import F32, Clock
from ruvector_edge.sona.config import SonaConfig
from ruvector_edge.sona.ewc import EwcPlusPlus
from ruvector_edge.sona.types import LearnedPattern, PatternType

if TYPE_CHECKING:
    from ruvector_edge.sona.engine import SonaEngine

STATE_FORMAT = "sona-state/1"
_CODEC = TensorCodec.with_level(CompressionLevel.FAST)


class _Ewc(msgspec.Struct, frozen=True):
    fisher: bytes
    fisher_steps: int
    omega: bytes
    anchor: bytes | None
    tasks: int


class _Adam(msgspec.Struct, frozen=True):
    m: bytes
    v: bytes
    steps: int


class _Pattern(msgspec.Struct, frozen=True):
    id: int
    centroid: bytes
    cluster_size: int
    total_weight: float
    avg_quality: float
    created_at: float
    last_accessed: float
    access_count: int
    pattern_type: str
    model_route: str | None


class _EngineState(msgspec.Struct, frozen=True):
    format: str
    config: dict[str, int | float | bool]
    baseline: float
    seen: int
    next_trajectory_id: int
    micro_updates: int
    cycles: int
    enabled: bool
    micro: list[bytes]
    base: list[bytes]
    ewc_micro: _Ewc
    ewc_base: _Ewc
    patterns: list[_Pattern]
    next_pattern_id: int
    adam_micro: _Adam | None = None
    adam_base: _Adam | None = None


def _t(a: F32) -> bytes:
    return _CODEC.compress_tensor(a)


def _ewc(e: EwcPlusPlus) -> _Ewc:
    s = e.state()
    anchor = s["anchor"]
    return _Ewc(
        _t(s["fisher"]),  # type: ignore[arg-type]
        int(s["fisher_steps"]),  # type: ignore[call-overload]
        _t(s["omega"]),  # type: ignore[arg-type]
        None if anchor is None else _t(anchor),  # type: ignore[arg-type]
        int(s["tasks"]),  # type: ignore[call-overload]
    )


def dump_engine(engine: SonaEngine) -> bytes:
    """Serialise ``engine``."""
    md, mu = engine.micro_lora.get_weights()
    bd, bu = engine.base_lora.get_weights()
    bank = engine.reasoning_bank
    st = engine.stats()
    doc = _EngineState(
        format=STATE_FORMAT,
        config=engine.config.to_dict(),
        baseline=engine.quality_baseline,
        seen=st.trajectories_seen,
        next_trajectory_id=engine._next_id,
        micro_updates=st.micro_updates,
        cycles=st.background_cycles,
        enabled=engine.is_enabled(),
        micro=[_t(md), _t(mu)],
        base=[_t(bd), _t(bu)],
        ewc_micro=_ewc(engine.ewc_micro),
        ewc_base=_ewc(engine.ewc_base),
        patterns=[
            _Pattern(
                p.id,
                _t(p.centroid),
                p.cluster_size,
                p.total_weight,
                p.avg_quality,
                p.created_at,
                p.last_accessed,
                p.access_count,
                p.pattern_type.value,
                p.model_route,
            )
            for p in bank.get_all_patterns()
        ],
        next_pattern_id=bank.next_pattern_id,
        adam_micro=_Adam(_t(engine.adam_micro.m), _t(engine.adam_micro.v), engine.adam_micro.steps),
        adam_base=_Adam(_t(engine.adam_base.m), _t(engine.adam_base.v), engine.adam_base.steps),
    )
    return _CODEC.compress(msgspec.msgpack.encode(doc))


def load_engine(
    engine_cls: type[SonaEngine], data: bytes, *, clock: Clock, wall: Clock
) -> SonaEngine:
    """Rebuild an engine; ``CodecError`` for damaged bytes, ``ConfigError``/``DimensionError``
    for state that does not fit together."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError("SONA state must be bytes")
    try:
        doc = msgspec.msgpack.decode(_CODEC.decompress(data), type=_EngineState)
    except msgspec.DecodeError as exc:
        raise CodecError(f"not a SONA state file: {exc}") from None
    if doc.format != STATE_FORMAT:
        raise CodecError(f"unsupported SONA state format {doc.format!r}")
    cfg = SonaConfig.from_dict(dict(doc.config))
    eng = engine_cls.with_config(cfg, clock=clock, wall=wall)

    def arr(b: bytes) -> F32:
        try:
            return _CODEC.decompress_tensor(b)
        except EdgeError as exc:
            raise CodecError(f"damaged tensor in SONA state: {exc}") from None

    if len(doc.micro) != 2 or len(doc.base) != 2:
        raise CodecError("SONA state must hold two MicroLoRA and two BaseLoRA tensors")
    eng.micro_lora.set_weights(arr(doc.micro[0]), arr(doc.micro[1]))
    eng.base_lora.set_weights(arr(doc.base[0]), arr(doc.base[1]))
    for e, s in ((eng.ewc_micro, doc.ewc_micro), (eng.ewc_base, doc.ewc_base)):
        e.load(
            arr(s.fisher),
            s.fisher_steps,
            arr(s.omega),
            None if s.anchor is None else arr(s.anchor),
            s.tasks,
        )
    for opt, st in ((eng.adam_micro, doc.adam_micro), (eng.adam_base, doc.adam_base)):
        if st is not None:
            opt.load(arr(st.m), arr(st.v), st.steps)
    patterns = []
    for p in doc.patterns:
        c = arr(p.centroid)
        if c.shape != (cfg.hidden_dim,):
            raise CodecError(f"pattern {p.id} centroid has shape {c.shape}")
        try:
            ptype = PatternType(p.pattern_type)
        except ValueError:
            raise CodecError(f"unknown pattern type {p.pattern_type!r}") from None
        patterns.append(
            LearnedPattern(
                p.id,
                c,
                p.cluster_size,
                p.total_weight,
                p.avg_quality,
                p.created_at,
                p.last_accessed,
                p.access_count,
                ptype,
                p.model_route,
            )
        )
    eng.reasoning_bank.restore_patterns(patterns, doc.next_pattern_id)
    if not np.isfinite(doc.baseline):
        raise CodecError("SONA state baseline is not finite")
    eng._baseline = float(doc.baseline)
    eng._seen = doc.seen
    eng._next_id = doc.next_trajectory_id
    eng._micro_updates = doc.micro_updates
    eng._cycles = doc.cycles
    eng.set_enabled(doc.enabled)
    return eng


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file and rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise StorageError(f"cannot write SONA state to {path}: {exc}") from None
    return path


__all__ = ["STATE_FORMAT", "dump_engine", "load_engine", "write_atomic"]
