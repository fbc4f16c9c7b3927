"""Metadata validation and the inverted index behind filtered search.

A filter is a mapping ``{key: condition}``; all keys must match (AND). A condition is a
scalar (``str``, ``int``, ``float``, ``bool`` or ``None``), matching entries whose
metadata value under ``key`` equals it, or a list/tuple/set/frozenset of scalars,
matching entries whose value is any of them. ``True`` and ``1`` are different values
(``1`` and ``1.0`` are the same). Only scalar metadata values are indexed, so entries
whose value is a list or a dict never match a filter on that key.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any, Final

import msgspec

from ruvector_edge.errors import InvalidInputError

__all__ = [
    "CompiledFilter",
    "MetadataIndex",
    "compile_filter",
    "normalize_metadata",
    "validate_metadata_value",
]

Tag = tuple[str, object]
CompiledFilter = list[tuple[str, list[Tag]]]
_MAX_DEPTH: Final = 32
_EMPTY: Final[frozenset[int]] = frozenset()


def _tag(value: object) -> Tag | None:
    """A hashable key that keeps bools apart from numbers; None if not indexable."""
    if value is None:
        return ("z", None)
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            return None
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    return None


def validate_metadata_value(value: object, depth: int = 0) -> None:
    """Raise InvalidInputError unless ``value`` is JSON-like (plus bytes)."""
    if depth > _MAX_DEPTH:
        raise InvalidInputError(f"metadata is nested deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return
    if isinstance(value, list):
        for v in value:
            validate_metadata_value(v, depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInputError(f"metadata keys must be strings, got {k!r}")
            validate_metadata_value(v, depth + 1)
        return
    raise InvalidInputError(
        f"metadata value {value!r} of type {type(value).__name__} is not supported "
        "(use str, int, float, bool, None, bytes, lists and dicts with str keys)"
    )


_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder()


def normalize_metadata(metadata: Mapping[str, Any] | None) -> tuple[dict[str, Any], bytes]:
    """A private copy of ``metadata`` (tuples become lists) and its msgpack encoding."""
    if metadata is None:
        return {}, _ENC.encode({})
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a mapping, got {type(metadata).__name__}")
    for k in metadata:
        if not isinstance(k, str):
            raise InvalidInputError(f"metadata keys must be strings, got {k!r}")
    try:
        blob = _ENC.encode(dict(metadata))
        copy = _DEC.decode(blob)
    except (TypeError, ValueError, OverflowError, msgspec.MsgspecError) as exc:
        raise InvalidInputError(f"metadata cannot be encoded: {exc}") from None
    validate_metadata_value(copy)
    return copy, blob


def decode_metadata(blob: bytes) -> dict[str, Any]:
    """Inverse of the encoding in :func:`normalize_metadata`."""
    out = _DEC.decode(blob)
    if not isinstance(out, dict):
        raise InvalidInputError("stored metadata is not a mapping")
    return out


def compile_filter(flt: Mapping[str, Any]) -> CompiledFilter:
    """Check a filter and turn it into ``[(key, [tags])]``, most selective first later."""
    if not isinstance(flt, Mapping):
        raise InvalidInputError(f"filter must be a mapping of metadata key to value, got {flt!r}")
    out: CompiledFilter = []
    for key, cond in flt.items():
        if not isinstance(key, str):
            raise InvalidInputError(f"filter keys must be strings, got {key!r}")
        values: Collection[Any] = (
            cond if isinstance(cond, list | tuple | set | frozenset) else (cond,)
        )
        tags: list[Tag] = []
        for v in values:
            if v is not None and not isinstance(v, bool | int | float | str):
                raise InvalidInputError(
                    f"filter value {v!r} for {key!r} must be a str, int, float, bool or None "
                    "(or a list of them for set membership)"
                )
            t = _tag(v)
            if t is not None:
                tags.append(t)
        out.append((key, tags))
    return out


class MetadataIndex:
    """Posting sets ``key -> value -> {slot}`` for scalar metadata values."""

    __slots__ = ("_postings",)

    def __init__(self) -> None:
        self._postings: dict[str, dict[Tag, set[int]]] = {}

    def add(self, slot: int, metadata: Mapping[str, Any]) -> None:
        """Index ``slot``'s scalar metadata values."""
        for key, value in metadata.items():
            t = _tag(value)
            if t is not None:
                self._postings.setdefault(key, {}).setdefault(t, set()).add(slot)

    def remove(self, slot: int, metadata: Mapping[str, Any]) -> None:
        """Forget ``slot`` (``metadata`` must be what :meth:`add` saw)."""
        for key, value in metadata.items():
            t = _tag(value)
            if t is None:
                continue
            by_value = self._postings.get(key)
            if by_value is None:
                continue
            slots = by_value.get(t)
            if slots is None:
                continue
            slots.discard(slot)
            if not slots:
                del by_value[t]
                if not by_value:
                    del self._postings[key]

    def match(self, flt: CompiledFilter) -> Collection[int]:
        """Slots matching every clause. May return an internal set: do not mutate it."""
        sets: list[Collection[int]] = []
        for key, tags in flt:
            by_value = self._postings.get(key)
            if by_value is None or not tags:
                return _EMPTY
            if len(tags) == 1:
                s: Collection[int] = by_value.get(tags[0], _EMPTY)
            else:
                union: set[int] = set()
                for t in tags:
                    union.update(by_value.get(t, _EMPTY))
                s = union
            if not s:
                return _EMPTY
            sets.append(s)
        if not sets:
            raise InvalidInputError("filter must have at least one key")
        if len(sets) == 1:
            return sets[0]
        sets.sort(key=len)
        result = set(sets[0])
        for s in sets[1:]:
            result.intersection_update(s)
            if not result:
                break
        return result
