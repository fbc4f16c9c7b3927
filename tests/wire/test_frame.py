from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ruvector_edge.errors import FrameTooLargeError, ProtocolError
from ruvector_edge.wire import (
    FLAG_AUTHENTICATED,
    FLAG_ENCRYPTED,
    HEADER_SIZE,
    MAGIC,
    PROTOCOL_VERSION,
    FrameDecoder,
    encode_frame,
    frame_header,
)


def test_header_layout_is_magic_version_flags_big_endian_length() -> None:
    header = frame_header(0x01020304, FLAG_AUTHENTICATED)
    assert header == MAGIC + bytes([PROTOCOL_VERSION, FLAG_AUTHENTICATED]) + b"\x01\x02\x03\x04"
    assert len(header) == HEADER_SIZE


@given(
    st.lists(st.binary(max_size=300), max_size=20),
    st.lists(st.integers(1, 64), min_size=1, max_size=20),
)
def test_frames_survive_any_chunking(bodies: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(b) for b in bodies)
    decoder = FrameDecoder(max_frame_size=1024)
    out = []
    pos, i = 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        out.extend(decoder.feed(stream[pos : pos + step]))
        pos += step
        i += 1
    assert [f.body for f in out] == bodies
    assert decoder.buffered == 0


def test_oversize_is_refused_from_the_header_alone() -> None:
    decoder = FrameDecoder(max_frame_size=1000)
    # Only the header of a 2 GiB frame: refused before any body byte arrives.
    with pytest.raises(FrameTooLargeError, match="exceeds"):
        decoder.feed(struct.pack(">2sBBI", MAGIC, PROTOCOL_VERSION, 0, 2**31))
    assert decoder.failed
    assert decoder.buffered == 0
    with pytest.raises(FrameTooLargeError):  # stays failed
        decoder.feed(b"")


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (b"XX\x01\x00\x00\x00\x00\x01", "bad frame magic"),
        (MAGIC + b"\x09\x00\x00\x00\x00\x01", "unsupported protocol version 9"),
        (MAGIC + b"\x01\x80\x00\x00\x00\x01", "invalid frame flags"),
        (MAGIC + bytes([1, FLAG_ENCRYPTED]) + b"\x00\x00\x00\x01", "invalid frame flags"),
    ],
)
def test_bad_headers(header: bytes, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        FrameDecoder().feed(header + b"x")


@pytest.mark.parametrize("split", [1, 3, 7, 8])
def test_bad_header_split_across_feeds(split: int) -> None:
    decoder = FrameDecoder(max_frame_size=100)
    frame = encode_frame(b"ok")
    bad = MAGIC + b"\x01\x00" + (10_000).to_bytes(4, "big")
    assert decoder.feed(frame + bad[:split])[0].body == b"ok"
    with pytest.raises(FrameTooLargeError):
        decoder.feed(bad[split:])
    assert decoder.buffered == 0


def test_unknown_version_error_code() -> None:
    with pytest.raises(ProtocolError) as info:
        FrameDecoder().feed(MAGIC + b"\x02\x00\x00\x00\x00\x00")
    assert info.value.code == "unsupported_version"


@given(st.binary(max_size=200))
def test_garbage_never_hangs_or_leaks_other_errors(garbage: bytes) -> None:
    decoder = FrameDecoder(max_frame_size=64)
    try:
        frames = decoder.feed(garbage)
    except ProtocolError:
        return
    assert sum(HEADER_SIZE + len(f.body) for f in frames) + decoder.buffered == len(garbage)
    assert decoder.buffered <= HEADER_SIZE + 64


def test_buffer_is_bounded_by_one_frame() -> None:
    decoder = FrameDecoder(max_frame_size=100)
    frame = encode_frame(b"z" * 100)
    for _ in range(1000):
        decoder.feed(frame[:50])
        assert decoder.feed(frame[50:])[0].body == b"z" * 100
        assert decoder.buffered == 0


@given(st.binary(max_size=300), st.integers(0, 7))
def test_whole_agrees_with_feed_for_any_single_chunk(body: bytes, flags: int) -> None:
    frame = MAGIC + bytes([PROTOCOL_VERSION, flags]) + len(body).to_bytes(4, "big") + body
    for data in (frame, frame[:-1] if body else frame + b"x", b"garbage" + frame):
        fast = FrameDecoder(max_frame_size=200).whole(data)
        if fast is None:
            continue  # not exactly one valid frame: feed() handles (or refuses) it
        assert FrameDecoder(max_frame_size=200).feed(data) == [fast]
        assert len(body) <= 200
        assert data == frame


def test_whole_declines_while_a_frame_is_half_received() -> None:
    decoder = FrameDecoder()
    first, second = encode_frame(b"first"), encode_frame(b"second")
    assert decoder.feed(first[:3]) == []
    assert decoder.whole(second) is None  # it would skip the 3 buffered bytes
    assert [f.body for f in decoder.feed(first[3:] + second)] == [b"first", b"second"]
    assert decoder.whole(second) is not None  # back at a frame boundary
