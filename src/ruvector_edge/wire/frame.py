"""Frame layout and an incremental, bounded frame decoder (sans-I/O).

``MAGIC(2) | VERSION(1) | FLAGS(1) | LEN(4, big endian) | BODY``. ``LEN`` counts the body,
including the link's authentication trailer when ``FLAG_AUTHENTICATED`` is set. A body with
``FLAG_BATCH`` (authenticated frames only) is a msgpack array of messages sealed together,
so a burst of small messages costs one AEAD operation instead of one per message.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from ruvector_edge.config import DEFAULT_MAX_FRAME_SIZE
from ruvector_edge.errors import FrameTooLargeError, ProtocolError

__all__ = [
    "FLAG_AUTHENTICATED",
    "FLAG_BATCH",
    "FLAG_ENCRYPTED",
    "HEADER_SIZE",
    "KNOWN_FLAGS",
    "MAGIC",
    "PROTOCOL_VERSION",
    "FrameDecoder",
    "RawFrame",
    "encode_frame",
    "frame_header",
]

MAGIC: Final = b"\xedR"  # 0xED 'R': unlikely in text protocols, easy to spot in a dump
PROTOCOL_VERSION: Final = 1
FLAG_AUTHENTICATED: Final = 0x01
FLAG_ENCRYPTED: Final = 0x02
FLAG_BATCH: Final = 0x04
KNOWN_FLAGS: Final = FLAG_AUTHENTICATED | FLAG_ENCRYPTED | FLAG_BATCH
_NEEDS_AUTH: Final = FLAG_ENCRYPTED | FLAG_BATCH
HEADER_SIZE: Final = 8
_HEADER = struct.Struct(">2sBBI")


def frame_header(length: int, flags: int = 0) -> bytes:
    """The 8-byte header for a body of ``length`` bytes."""
    if flags & ~KNOWN_FLAGS:
        raise ProtocolError(f"unknown frame flags 0x{flags:02x}")
    if flags & _NEEDS_AUTH and not flags & FLAG_AUTHENTICATED:
        raise ProtocolError("an encrypted or batched frame must also be authenticated")
    return _HEADER.pack(MAGIC, PROTOCOL_VERSION, flags, length)


def encode_frame(body: bytes, flags: int = 0) -> bytes:
    """Header + body for an unauthenticated frame (handshake, tests)."""
    return frame_header(len(body), flags) + body


class RawFrame(NamedTuple):
    """One complete frame as received: its header bytes (the AEAD's AAD) and body."""

    header: bytes
    flags: int
    body: bytes


class FrameDecoder:
    """Turns a byte stream, fed in arbitrary chunks, into :class:`RawFrame` objects.

    The header is validated (magic, version, flags, length <= ``max_frame_size``) as soon
    as its 8 bytes arrive, before any body is buffered, so an oversized announcement costs
    nothing. Buffered data never exceeds one partial frame plus the last chunk. After a
    framing error the stream cannot be resynchronised: the decoder stays failed and the
    connection should be closed. Frames completed before the error are still returned;
    the error is raised by the following call.
    """

    __slots__ = ("_buffer", "_error", "_need", "_pending_header", "max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if max_frame_size < 1:
            raise ValueError("max_frame_size must be positive")
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._pending_header: tuple[bytes, int, int] | None = None
        self._error: ProtocolError | None = None
        self._need = HEADER_SIZE

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buffer)

    @property
    def failed(self) -> bool:
        """Whether a framing error has poisoned this stream."""
        return self._error is not None

    def whole(self, data: bytes) -> RawFrame | None:
        """``data`` as one frame if it is exactly one valid frame and nothing is buffered
        (a ring record or WebSocket message usually is); None means: use :meth:`feed`."""
        if self._buffer or self._pending_header is not None or len(data) <= HEADER_SIZE:
            return None
        header = data[:HEADER_SIZE]
        magic, version, flags, length = _HEADER.unpack(header)
        if (
            length != len(data) - HEADER_SIZE
            or magic != MAGIC
            or version != PROTOCOL_VERSION
            or flags & ~KNOWN_FLAGS
            or (flags & _NEEDS_AUTH and not flags & FLAG_AUTHENTICATED)
            or length > self.max_frame_size
            or self._error is not None
        ):
            return None
        return RawFrame(header, flags, data[HEADER_SIZE:])

    def feed(self, data: bytes | bytearray | memoryview) -> list[RawFrame]:
        """Add bytes; return every frame now complete. Raises ``ProtocolError`` on bad framing."""
        if self._error is not None:
            raise self._error
        buf = self._buffer
        if buf:
            buf += data
            view = memoryview(buf)
        else:
            # Fast path: parse straight from the caller's bytes, buffer only the remainder.
            view = memoryview(data)
        frames: list[RawFrame] = []
        pos = 0
        end = len(view)
        try:
            while True:
                pending = self._pending_header
                if pending is None:
                    if end - pos < HEADER_SIZE:
                        break
                    pending = self._parse_header(bytes(view[pos : pos + HEADER_SIZE]))
                    self._pending_header = pending
                    pos += HEADER_SIZE
                header, flags, length = pending
                if end - pos < length:
                    break
                frames.append(RawFrame(header, flags, bytes(view[pos : pos + length])))
                pos += length
                self._pending_header = None
        except ProtocolError:
            if not frames:
                raise
            # Deliver the good frames that preceded the error; the next feed() raises it.
        finally:
            view.release()
            if self.failed:  # set by _parse_header during this call
                buf.clear()
            elif buf:
                del buf[:pos]
            elif pos < end:
                buf += memoryview(data)[pos:]
        return frames

    def _parse_header(self, header: bytes) -> tuple[bytes, int, int]:
        magic, version, flags, length = _HEADER.unpack(header)
        if magic != MAGIC:
            self._fail(ProtocolError(f"bad frame magic {magic!r}: not a ruvector-edge stream"))
        if version != PROTOCOL_VERSION:
            self._fail(
                ProtocolError(
                    f"unsupported protocol version {version} (this build speaks "
                    f"{PROTOCOL_VERSION}); upgrade the older side",
                    code="unsupported_version",
                )
            )
        if flags & ~KNOWN_FLAGS or (flags & _NEEDS_AUTH and not flags & FLAG_AUTHENTICATED):
            self._fail(ProtocolError(f"invalid frame flags 0x{flags:02x}"))
        if length > self.max_frame_size:
            self._fail(
                FrameTooLargeError(
                    f"frame of {length} bytes exceeds the {self.max_frame_size}-byte limit"
                )
            )
        return header, flags, length

    def _fail(self, error: ProtocolError) -> None:
        self._error = error  # feed() drops the buffer once its memoryview is released
        raise error
