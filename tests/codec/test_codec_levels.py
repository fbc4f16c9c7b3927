"""CompressionLevel parsing and properties."""

from __future__ import annotations

import pytest

from ruvector_edge.codec import BlobKind, CompressionLevel, TensorCodec
from ruvector_edge.errors import CodecError


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("none", CompressionLevel.NONE),
        ("FAST", CompressionLevel.FAST),
        ("High", CompressionLevel.HIGH),
        ("quantized8", CompressionLevel.QUANTIZED8),
        (" Quantized4 ", CompressionLevel.QUANTIZED4),
    ],
)
def test_parse_is_case_insensitive(name: str, level: CompressionLevel) -> None:
    assert CompressionLevel.parse(name) is level


@pytest.mark.parametrize("name", ["", "fastest", "q8", "quantized16", "0"])
def test_parse_rejects_unknown_names(name: str) -> None:
    with pytest.raises(CodecError, match="unknown compression level"):
        CompressionLevel.parse(name)


def test_parse_rejects_non_str() -> None:
    with pytest.raises(CodecError, match="must be a str"):
        CompressionLevel.parse(3)  # type: ignore[arg-type]


def test_is_quantized() -> None:
    assert [lv.is_quantized for lv in CompressionLevel] == [False, False, False, True, True]


def test_codec_accepts_names_and_defaults_to_fast() -> None:
    assert TensorCodec().level is CompressionLevel.FAST
    assert TensorCodec("high").level is CompressionLevel.HIGH
    assert TensorCodec.with_level("quantized4").level is CompressionLevel.QUANTIZED4
    assert TensorCodec.with_level(CompressionLevel.NONE).level is CompressionLevel.NONE


@pytest.mark.parametrize("bad", ["turbo", 7, None, 1.5])
def test_codec_rejects_bad_levels(bad: object) -> None:
    with pytest.raises(CodecError):
        TensorCodec(bad)  # type: ignore[arg-type]


def test_blob_kind_values_are_stable() -> None:
    # These values are written into every blob; changing them breaks the format.
    assert [int(k) for k in BlobKind] == [0, 1]
    assert [int(lv) for lv in CompressionLevel] == [0, 1, 2, 3, 4]
