"""Sans-IO pieces of the fault proxy: HTTP/2 frames (RFC 9113 §4, §6) and S2S messages.

The proxy parses every byte it relays into frames, and the body of every S2S stream into
messages, so faults can be placed between two frames or two messages. Nothing here does I/O
or keeps time.

:class:`FrameReader` splits a byte stream into whole frames (a frame split across reads is held
back until complete); :func:`frame` builds one. :class:`MessageSplitter` cuts the body of a
stream into S2S messages (docs/protocol.md#s2s-framing: a 3-byte length, a flag byte, the
payload) without waiting for whole messages: it returns pieces tagged with the index of the
message they belong to, so a 1 MiB input can be forwarded as it arrives, under the peer's
flow-control window.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

__all__ = [
    "PREFACE",
    "Flag",
    "Frame",
    "FrameReader",
    "FrameType",
    "H2ErrorCode",
    "MessageSplitter",
    "Piece",
    "SettingCode",
    "frame",
    "goaway_payload",
    "parse_settings",
    "settings_payload",
    "window_update",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADER_SIZE = 9
MAX_PAYLOAD = (1 << 24) - 1
S2S_TERMINAL = 0x80
S2S_RECONNECT = 0x10


class FrameType(enum.IntEnum):
    """HTTP/2 frame types (RFC 9113 §6)."""

    DATA = 0x0
    HEADERS = 0x1
    PRIORITY = 0x2
    RST_STREAM = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    PING = 0x6
    GOAWAY = 0x7
    WINDOW_UPDATE = 0x8
    CONTINUATION = 0x9


class Flag(enum.IntEnum):
    """HTTP/2 frame flags (the ones the proxy looks at)."""

    END_STREAM = 0x1
    ACK = 0x1
    END_HEADERS = 0x4
    PADDED = 0x8
    PRIORITY = 0x20


class SettingCode(enum.IntEnum):
    """SETTINGS parameters (RFC 9113 §6.5.2)."""

    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6


class H2ErrorCode(enum.IntEnum):
    """HTTP/2 error codes for RST_STREAM and GOAWAY (RFC 9113 §7)."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


_HEAD = struct.Struct(">BHBBI")  # length as 1 + 2 bytes, type, flags, stream id


@dataclass(slots=True)
class Frame:
    """One HTTP/2 frame as received: ``raw`` is the whole frame, header included."""

    type: int
    flags: int
    stream_id: int
    raw: bytes

    @property
    def payload(self) -> memoryview:
        """The payload, padding included."""
        return memoryview(self.raw)[HEADER_SIZE:]

    def body(self) -> bytes:
        """The payload without padding (and, for HEADERS, without the priority fields).

        Raises:
            ValueError: the padding length is larger than the payload.
        """
        payload = self.raw[HEADER_SIZE:]
        start, end = 0, len(payload)
        if self.flags & Flag.PADDED and self.type in (FrameType.DATA, FrameType.HEADERS):
            if not payload:
                raise ValueError("padded frame without a pad length")
            start = 1
            end -= payload[0]
        if self.type == FrameType.HEADERS and self.flags & Flag.PRIORITY:
            start += 5
        if end < start:
            raise ValueError("padding exceeds the frame payload")
        return payload[start:end]


def frame(type_: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """Serialize one frame."""
    size = len(payload)
    return _HEAD.pack(size >> 16, size & 0xFFFF, type_, flags, stream_id & 0x7FFF_FFFF) + payload


def window_update(stream_id: int, increment: int) -> bytes:
    """A WINDOW_UPDATE frame, or nothing for an increment of 0 (which would be a protocol
    error); the increment must be at most 2**31 - 1."""
    if not increment:
        return b""
    return frame(FrameType.WINDOW_UPDATE, 0, stream_id, increment.to_bytes(4, "big"))


def goaway_payload(last_stream_id: int, error_code: int, debug: bytes = b"") -> bytes:
    """The payload of a GOAWAY frame."""
    return last_stream_id.to_bytes(4, "big") + error_code.to_bytes(4, "big") + debug


def parse_settings(payload: bytes | memoryview) -> list[tuple[int, int]]:
    """The (identifier, value) pairs of a SETTINGS payload.

    Raises:
        ValueError: the payload is not a multiple of 6 bytes.
    """
    if len(payload) % 6:
        raise ValueError("SETTINGS payload is not a multiple of 6 bytes")
    data = bytes(payload)
    return [struct.unpack_from(">HI", data, i) for i in range(0, len(data), 6)]


def settings_payload(pairs: list[tuple[int, int]]) -> bytes:
    """A SETTINGS payload from (identifier, value) pairs."""
    return b"".join(struct.pack(">HI", ident, value) for ident, value in pairs)


class FrameReader:
    """Split a byte stream into whole HTTP/2 frames."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buf)

    def receive(self, data: bytes) -> list[Frame]:
        """Feed bytes; return every frame completed by them, in order.

        Raises:
            ValueError: a frame announces a payload longer than 2**24 - 1 bytes (impossible).
        """
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        end = len(buf)
        while end - pos >= HEADER_SIZE:
            hi, lo, type_, flags, stream_id = _HEAD.unpack_from(buf, pos)
            stop = pos + HEADER_SIZE + (hi << 16 | lo)
            if stop > end:
                break
            frames.append(Frame(type_, flags, stream_id & 0x7FFF_FFFF, bytes(buf[pos:stop])))
            pos = stop
        if pos:
            del buf[:pos]
        return frames


@dataclass(frozen=True, slots=True)
class Piece:
    """A run of bytes of one S2S message.

    ``first`` pieces start with the message's 4-byte head, so the flag byte is ``data[3]``.
    """

    index: int
    """The message's position in the body (0-based)."""
    data: bytes
    first: bool
    last: bool
    flag: int
    """The message's flag byte."""


class MessageSplitter:
    """Cut one direction of an S2S body into pieces of messages, as bytes arrive."""

    __slots__ = ("_flag", "_head", "_index", "_left")

    def __init__(self) -> None:
        self._head = b""  # a message head (4 bytes) still incomplete
        self._left = 0  # payload bytes of the current message still to come
        self._index = 0  # index of the next message to start
        self._flag = 0

    @property
    def completed(self) -> int:
        """Messages received in full."""
        return self._index - (1 if self._left else 0)

    @property
    def partial(self) -> bool:
        """Whether the body stopped inside a message."""
        return bool(self._head) or self._left > 0

    def feed(self, data: bytes) -> list[Piece]:
        """Feed body bytes; return the pieces they complete or continue, in order.

        A length of 0 (a malformed frame) is passed on as an empty message: the receiver is
        the one to reject it.
        """
        out: list[Piece] = []
        pos, end = 0, len(data)
        while pos < end:
            if self._left:
                take = min(self._left, end - pos)
                self._left -= take
                piece = data[pos : pos + take]
                out.append(Piece(self._index - 1, piece, False, not self._left, self._flag))
                pos += take
                continue
            need = 4 - len(self._head)
            head = self._head + data[pos : pos + need]
            pos += len(head) - len(self._head)
            if len(head) < 4:
                self._head = head
                break
            self._head = b""
            length = int.from_bytes(head[:3], "big")
            self._flag = head[3]
            self._left = max(0, length - 1)
            take = min(self._left, end - pos)
            self._left -= take
            out.append(
                Piece(self._index, head + data[pos : pos + take], True, not self._left, self._flag)
            )
            self._index += 1
            pos += take
        return out
