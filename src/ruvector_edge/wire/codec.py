"""``MessageCodec``: SwarmMessage <-> frames for one link, plain or authenticated."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from ruvector_edge.config import DEFAULT_MAX_FRAME_SIZE
from ruvector_edge.errors import AuthError, EdgeError, FrameTooLargeError, ProtocolError
from ruvector_edge.identity import TRAILER_SIZE, LinkSession
from ruvector_edge.wire.frame import (
    FLAG_AUTHENTICATED,
    FLAG_BATCH,
    FLAG_ENCRYPTED,
    FrameDecoder,
    RawFrame,
    frame_header,
)
from ruvector_edge.wire.messages import MessageType, SwarmMessage

__all__ = [
    "BATCH_OVERHEAD",
    "HANDSHAKE_TYPES",
    "CodecStats",
    "FrameRejected",
    "MessageCodec",
    "decode_message",
    "encode_message",
]

# Message types that may travel without a link session (before/while it is established).
HANDSHAKE_TYPES = frozenset({MessageType.JOIN, MessageType.WELCOME, MessageType.ERROR})

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(SwarmMessage)
_batch_decoder = msgspec.msgpack.Decoder(list[SwarmMessage])

BATCH_OVERHEAD = 5
"""Most bytes a batch adds to its messages' bodies (the msgpack array header)."""


def _array_header(count: int) -> bytes:
    if count < 16:
        return bytes((0x90 | count,))
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def encode_message(msg: SwarmMessage) -> bytes:
    """msgpack body of ``msg`` (no frame header)."""
    return _encoder.encode(msg)


def decode_message(body: bytes) -> SwarmMessage:
    """Parse and validate a msgpack envelope; ``ProtocolError`` says what is wrong."""
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"invalid message: {exc}") from None
    except (msgspec.DecodeError, ValueError) as exc:  # ValueError: invalid UTF-8 in a str
        raise ProtocolError(f"undecodable message body: {exc}") from None
    except RecursionError:
        raise ProtocolError("message body is nested too deeply") from None


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A frame that was received whole but refused; the stream itself is still usable."""

    error: EdgeError
    flags: int
    size: int


@dataclass(slots=True)
class CodecStats:
    """Counters for one link."""

    frames_out: int = 0
    frames_in: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    rejected: int = 0
    rejected_by_code: dict[str, int] = field(default_factory=dict)


class MessageCodec:
    """Encodes messages into frames and decodes a byte stream back, for one link.

    Without a session it handles only handshake traffic (JOIN, WELCOME, ERROR) in plain
    frames. Once :meth:`attach_session` is called, every outgoing frame is sealed with the
    link's AEAD and every incoming frame must authenticate; plain frames are rejected.
    ``feed`` returns messages and :class:`FrameRejected` items in arrival order; a
    rejected frame never stops the stream. A framing error (bad magic, version, oversize)
    raises ``ProtocolError``: the connection must be closed.
    """

    __slots__ = ("_decoder", "encrypt", "max_frame_size", "session", "stats")

    def __init__(
        self,
        session: LinkSession | None = None,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        encrypt: bool = False,
    ) -> None:
        self.session = session
        self.encrypt = encrypt
        self.max_frame_size = max_frame_size
        self._decoder = FrameDecoder(max_frame_size)
        self.stats = CodecStats()

    def attach_session(self, session: LinkSession) -> None:
        """Switch the link to authenticated frames."""
        self.session = session

    @property
    def authenticated(self) -> bool:
        """Whether a link session is attached."""
        return self.session is not None

    def encode(self, msg: SwarmMessage) -> bytes:
        """One complete frame for ``msg``."""
        body = self.encode_body(msg)
        if self.session is not None:
            return self.seal((body,))
        if msg.type not in HANDSHAKE_TYPES:
            raise ProtocolError(
                f"{msg.type.value} needs an authenticated link; finish the handshake first"
            )
        frame = frame_header(len(body)) + body
        self.stats.frames_out += 1
        self.stats.bytes_out += len(frame)
        return frame

    def encode_body(self, msg: SwarmMessage) -> bytes:
        """The msgpack body of ``msg``, checked against the frame limit (for :meth:`seal`)."""
        body = _encoder.encode(msg)
        size = len(body) + (TRAILER_SIZE if self.session is not None else 0)
        if size > self.max_frame_size:
            raise FrameTooLargeError(
                f"{msg.type.value} message of {size} bytes exceeds the {self.max_frame_size}-byte "
                "frame limit; split it or raise max_frame_size on both sides"
            )
        return body

    def seal(self, bodies: Sequence[bytes]) -> bytes:
        """One authenticated frame carrying ``bodies`` (from :meth:`encode_body`), in order.

        Several bodies travel as one batch frame: one AEAD operation for all of them. The
        caller keeps the batch within ``max_frame_size`` (``BATCH_OVERHEAD`` bytes plus the
        trailer on top of the bodies).
        """
        session = self.session
        if session is None:
            raise ProtocolError("sealing needs an authenticated link; finish the handshake first")
        flags = FLAG_AUTHENTICATED | (FLAG_ENCRYPTED if self.encrypt else 0)
        if len(bodies) == 1:
            body = bodies[0]
        else:
            body = b"".join((_array_header(len(bodies)), *bodies))
            flags |= FLAG_BATCH
        size = len(body) + TRAILER_SIZE
        if size > self.max_frame_size:
            raise FrameTooLargeError(
                f"a batch of {len(bodies)} messages ({size} bytes) exceeds the "
                f"{self.max_frame_size}-byte frame limit"
            )
        header = frame_header(size, flags)
        frame = header + session.seal(header, body, encrypt=self.encrypt)
        stats = self.stats
        stats.frames_out += 1
        stats.bytes_out += len(frame)
        return frame

    def feed(self, data: bytes | bytearray | memoryview) -> list[SwarmMessage | FrameRejected]:
        """Decode every complete frame in the stream so far (a batch yields all its messages)."""
        out: list[SwarmMessage | FrameRejected] = []
        whole = self._decoder.whole(data) if type(data) is bytes else None
        for raw in (whole,) if whole is not None else self._decoder.feed(data):
            self.stats.frames_in += 1
            self.stats.bytes_in += len(raw.header) + len(raw.body)
            try:
                if raw.flags & FLAG_BATCH:
                    self._open_batch(raw, out)
                else:
                    out.append(self._open(raw))
            except EdgeError as exc:
                out.append(self._reject(exc, raw))
        return out

    def _reject(self, exc: EdgeError, raw: RawFrame) -> FrameRejected:
        stats = self.stats
        stats.rejected += 1
        stats.rejected_by_code[exc.code] = stats.rejected_by_code.get(exc.code, 0) + 1
        return FrameRejected(exc, raw.flags, len(raw.body))

    def _open(self, raw: RawFrame) -> SwarmMessage:
        session = self.session
        if raw.flags & FLAG_AUTHENTICATED:
            if session is None:
                raise AuthError("authenticated frame received before the handshake finished")
            body = session.open(raw.header, raw.body, encrypted=bool(raw.flags & FLAG_ENCRYPTED))
            msg = decode_message(body)
            session.replay_guard.check_timestamp(msg.ts_ms)
            return msg
        if session is not None:
            raise AuthError("unauthenticated frame on an authenticated link")
        msg = decode_message(raw.body)
        if msg.type not in HANDSHAKE_TYPES:
            raise AuthError(f"{msg.type.value} arrived before the link was authenticated")
        return msg

    def _open_batch(self, raw: RawFrame, out: list[SwarmMessage | FrameRejected]) -> None:
        """Append a batch frame's messages; one with a stale timestamp is rejected alone."""
        session = self.session
        if session is None:  # the decoder only passes batches that are authenticated
            raise AuthError("batch frame received before the handshake finished")
        body = session.open(raw.header, raw.body, encrypted=bool(raw.flags & FLAG_ENCRYPTED))
        try:
            msgs = _batch_decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise ProtocolError(f"invalid message in batch: {exc}") from None
        except (msgspec.DecodeError, ValueError) as exc:
            raise ProtocolError(f"undecodable batch body: {exc}") from None
        except RecursionError:
            raise ProtocolError("batch body is nested too deeply") from None
        guard = session.replay_guard
        oldest, newest = guard.timestamp_window()
        for msg in msgs:
            if oldest <= msg.ts_ms <= newest:
                out.append(msg)
                continue
            try:
                guard.check_timestamp(msg.ts_ms)  # re-checked for the precise error
            except EdgeError as exc:
                out.append(self._reject(exc, raw))
                continue
            out.append(msg)

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame being held."""
        return self._decoder.buffered
