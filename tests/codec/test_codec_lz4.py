"""Seed-compatible LZ4 helpers (lz4_flex ``compress_prepend_size`` framing)."""

from __future__ import annotations

import lz4.block
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ruvector_edge.codec import lz4_compress_prepend_size, lz4_decompress_size_prepended
from ruvector_edge.errors import CodecError


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=3000))
def test_round_trip(data: bytes) -> None:
    assert lz4_decompress_size_prepended(lz4_compress_prepend_size(data)) == data


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=3000))
def test_format_is_le_size_then_lz4_block(data: bytes) -> None:
    blob = lz4_compress_prepend_size(data)
    assert int.from_bytes(blob[:4], "little") == len(data)
    assert blob == lz4.block.compress(data, store_size=True)
    assert lz4.block.decompress(blob[4:], uncompressed_size=len(data)) == data


def test_decodes_a_hand_made_lz4_flex_style_block() -> None:
    # Size 5, then one sequence: token 0x50 = 5 literals and no match, then the literals.
    assert lz4_decompress_size_prepended(b"\x05\x00\x00\x00\x50hello") == b"hello"
    # Size 17: token 0x44 = 4 literals "abcd" then a match (offset 4, length 4 + 4), and a
    # final literal-only sequence "hello" (LZ4 blocks must end with literals).
    blob = b"\x11\x00\x00\x00\x44abcd\x04\x00\x50hello"
    assert lz4_decompress_size_prepended(blob) == b"abcdabcdabcdhello"


def test_empty_input() -> None:
    blob = lz4_compress_prepend_size(b"")
    assert blob[:4] == b"\x00\x00\x00\x00"
    assert lz4_decompress_size_prepended(blob) == b""
    assert lz4_decompress_size_prepended(b"\x00\x00\x00\x00") == b""
    with pytest.raises(CodecError):
        lz4_decompress_size_prepended(b"\x00\x00\x00\x00\x10a")


def test_bytes_like_inputs() -> None:
    data = b"abc" * 100
    blob = lz4_compress_prepend_size(bytearray(data))
    assert lz4_decompress_size_prepended(memoryview(blob)) == data


@pytest.mark.parametrize("blob", [b"", b"\x05", b"\x05\x00\x00"])
def test_truncated_prefix(blob: bytes) -> None:
    with pytest.raises(CodecError, match="truncated"):
        lz4_decompress_size_prepended(blob)


def test_declared_size_above_limit_is_rejected() -> None:
    blob = lz4_compress_prepend_size(bytes(1000))
    with pytest.raises(CodecError, match="limit"):
        lz4_decompress_size_prepended(blob, max_size=999)
    assert lz4_decompress_size_prepended(blob, max_size=1000) == bytes(1000)


def test_impossible_expansion_rejected_without_allocating() -> None:
    with pytest.raises(CodecError, match="cannot expand"):
        lz4_decompress_size_prepended(b"\xff\xff\xff\x3f" + b"\x00" * 10)


@pytest.mark.parametrize(
    "blob",
    [
        b"\x06\x00\x00\x00\x50hello",  # decodes to 5 bytes, not 6
        b"\x04\x00\x00\x00\x50hello",  # output too small for the block
        b"\x05\x00\x00\x00\x60hello",  # token promises 6 literals, 5 present
        b"\x10\x00\x00\x00\x14a\x09\x00",  # match offset before the start
    ],
)
def test_corrupt_blocks_raise_codec_error(blob: bytes) -> None:
    with pytest.raises(CodecError):
        lz4_decompress_size_prepended(blob)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_input_never_leaks_other_errors(data: bytes) -> None:
    try:
        out = lz4_decompress_size_prepended(data)
    except CodecError:
        return
    assert len(out) == int.from_bytes(data[:4], "little")


def test_compress_rejects_non_bytes() -> None:
    with pytest.raises(CodecError):
        lz4_compress_prepend_size("text")  # type: ignore[arg-type]
