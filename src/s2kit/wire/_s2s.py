"""S2S session framing (``s2s/proto``), sans-IO (docs/protocol.md#s2s-framing).

Theory of operation
-------------------
An S2S body, in either direction, is a sequence of frames::

    +-----------------+--------+---------------------------+
    | length (3 B BE) | flag   | payload (length - 1 B)    |
    +-----------------+--------+---------------------------+

    flag:  bit 7    T   terminal
           bits 6-5 CC  compression: 00 none, 01 zstd, 10 gzip, 11 invalid
           bit 4    R   reconnect advised
           bits 3-0     reserved: sent as 0, ignored on receipt

``length`` counts the flag and the payload, so it is never 0, and it is at most 2 MiB.
A regular frame carries one protobuf message, compressed as a whole when CC says so; the
decompressed message may be at most 2 MiB - 1 bytes. A terminal frame (flag exactly ``0x80`` when
we send it, bit 7 alone when we read it) carries a 2-byte HTTP status and a UTF-8 JSON error
body; it is the last frame of its body.

Senders compress only messages of at least 1 KiB, and only with the algorithm the session
negotiated (docs/protocol.md#s2s-compression). We additionally send a message uncompressed when
compression does not make it smaller: receivers must honour the per-frame flag anyway, and it
spares them a useless decompression.

:class:`FrameDecoder` follows h2's ``FrameBuffer``: bytes go in with ``receive_data``, whole
frames come out as events. Received chunks are kept as they are, not appended to one buffer:
a payload is copied once, out of its chunk (or joined once from the chunks it spans), so a
1 MiB read batch arriving in sixteen chunks costs one copy, and a chunk holding thousands of
small frames is walked with an offset, never re-sliced. The buffer is bounded, and the first
malformed frame breaks the decoder for good: nothing after it can be trusted.
"""

from __future__ import annotations

import collections
import enum
import itertools
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from s2kit.errors import FrameError, UsageError
from s2kit.wire._compress import BytesLike, Compression, DecompressionError, compress, decompress

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = [
    "COMPRESSION_THRESHOLD",
    "DEFAULT_MAX_BUFFER_SIZE",
    "MAX_FRAME_SIZE",
    "MAX_MESSAGE_SIZE",
    "FrameDecoder",
    "FrameFlag",
    "Message",
    "Terminal",
    "encode_message",
    "encode_message_chunks",
    "encode_messages",
    "encode_terminal",
]

MAX_FRAME_SIZE = 2 * 1024 * 1024
"""Largest value of the length prefix: flag plus payload bytes."""

MAX_MESSAGE_SIZE = MAX_FRAME_SIZE - 1
"""Largest message, before compression or after decompression."""

COMPRESSION_THRESHOLD = 1024
"""Messages shorter than this are always sent uncompressed."""

DEFAULT_MAX_BUFFER_SIZE = 4 * MAX_FRAME_SIZE
"""Default bound on bytes a :class:`FrameDecoder` holds: a partial frame plus a large chunk."""


class FrameFlag(enum.IntEnum):
    """Bits and masks of the S2S flag byte."""

    TERMINAL = 0x80
    COMPRESSION_MASK = 0x60
    RECONNECT_ADVISED = 0x10
    RESERVED_MASK = 0x0F


# Plain ints for the hot path: attribute lookups on an IntEnum class cost more than globals.
_TERMINAL = int(FrameFlag.TERMINAL)
_RECONNECT = int(FrameFlag.RECONNECT_ADVISED)
_CC_SHIFT = 5
_CC_INVALID = 3
_HEAD = struct.Struct(">I")  # the 3-byte length and the flag, read as one 32-bit word


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A regular frame."""

    payload: bytes
    """The protobuf message, already decompressed."""
    reconnect_advised: bool = False
    """The sender set R: it will end the session soon, so reconnect proactively."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Terminal:
    """A terminal frame: the session failed, and the peer sends nothing after this."""

    status: int
    """The HTTP status the error would have had as a unary response."""
    body: str
    """The JSON error body, as for a unary error with that status."""


def _head(length: int, flag: int) -> bytes:
    return ((length << 8) | flag).to_bytes(4, "big")


def _parts(
    payload: BytesLike, compression: Compression, reconnect_advised: bool
) -> tuple[bytes, BytesLike]:
    size = len(payload)
    if size > MAX_MESSAGE_SIZE:
        raise UsageError(f"message of {size} bytes exceeds the {MAX_MESSAGE_SIZE}-byte limit")
    flag = _RECONNECT if reconnect_advised else 0
    if compression and size >= COMPRESSION_THRESHOLD:
        packed = compress(payload, compression)
        if len(packed) < size:
            payload = packed
            flag |= compression << _CC_SHIFT
    return _head(len(payload) + 1, flag), payload


def encode_message(
    payload: BytesLike, compression: Compression, *, reconnect_advised: bool = False
) -> bytes:
    """Frame one message.

    Args:
        payload: the serialized protobuf message.
        compression: the session's algorithm, applied when the message is at least
            :data:`COMPRESSION_THRESHOLD` bytes and compression makes it smaller.
        reconnect_advised: set the R bit (servers only, before they end the session).

    Returns:
        The frame.

    Raises:
        UsageError: the message is longer than :data:`MAX_MESSAGE_SIZE`.
    """
    head, body = _parts(payload, compression, reconnect_advised)
    return head + body


def encode_message_chunks(chunks: list[bytes], compression: Compression) -> bytes:
    """:func:`encode_message` of ``b"".join(chunks)``, joining the frame header in with them:
    one copy of a large message instead of two."""
    size = sum(map(len, chunks))
    if (compression and size >= COMPRESSION_THRESHOLD) or size > MAX_MESSAGE_SIZE:
        return encode_message(b"".join(chunks), compression)
    return b"".join([_head(size + 1, 0), *chunks])


def encode_messages(
    payloads: Iterable[BytesLike], compression: Compression, *, reconnect_advised: bool = False
) -> bytes:
    """Frame several messages into one buffer, for a single write.

    Args:
        payloads: the serialized messages, in order.
        compression: as for :func:`encode_message`, decided per message.
        reconnect_advised: set the R bit on every frame.

    Returns:
        The frames, concatenated.

    Raises:
        UsageError: a message is longer than :data:`MAX_MESSAGE_SIZE`.
    """
    chunks: list[BytesLike] = []
    for payload in payloads:
        chunks.extend(_parts(payload, compression, reconnect_advised))
    return b"".join(chunks)


def encode_terminal(status: int, body: bytes) -> bytes:
    """Frame a terminal error: flag ``0x80``, the status, then the JSON body.

    Args:
        status: the HTTP status of the error.
        body: the UTF-8 JSON error body.

    Returns:
        The frame. Nothing may follow it on the same body.

    Raises:
        UsageError: the status does not fit in 16 bits, the body is not UTF-8, or the frame
            would exceed :data:`MAX_FRAME_SIZE`.
    """
    if not 0 <= status <= 0xFFFF:
        raise UsageError(f"terminal status {status} does not fit in 16 bits")
    if len(body) + 3 > MAX_FRAME_SIZE:
        raise UsageError(f"terminal body of {len(body)} bytes does not fit in a frame")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"terminal body is not UTF-8: {exc}") from exc
    return _head(len(body) + 3, _TERMINAL) + status.to_bytes(2, "big") + body


class FrameDecoder:
    """Turns the bytes of an S2S body into :class:`Message` and :class:`Terminal` events.

    Feed bytes with :meth:`receive_data`, then drain with :meth:`next_event` or by iterating,
    before feeding more: the decoder buffers at most ``max_buffer_size`` undecoded bytes. Call
    :meth:`end_of_stream` when the body ends.

    Every decoding error is a :class:`~s2kit.errors.FrameError` (the server answers it with a
    ``bad_frame`` terminal). After the first one the decoder is broken: every later call raises
    that same error.

    Args:
        max_frame_size: the largest acceptable length prefix.
        max_buffer_size: the most undecoded bytes held at once; must leave room for a frame.
    """

    __slots__ = (
        "_chunks",
        "_error",
        "_max_buffer_size",
        "_max_frame_size",
        "_off",
        "_size",
        "_terminated",
    )

    def __init__(
        self,
        *,
        max_frame_size: int = MAX_FRAME_SIZE,
        max_buffer_size: int = DEFAULT_MAX_BUFFER_SIZE,
    ) -> None:
        if not 1 <= max_frame_size <= MAX_FRAME_SIZE:
            raise UsageError(f"max_frame_size must be in 1..{MAX_FRAME_SIZE}")
        if max_buffer_size < max_frame_size + 3:
            raise UsageError("max_buffer_size must hold at least one whole frame")
        self._chunks: collections.deque[bytes] = collections.deque()
        self._off = 0  # first undecoded byte of _chunks[0]
        self._size = 0  # undecoded bytes in all chunks
        self._error: FrameError | None = None
        self._terminated = False
        self._max_frame_size = max_frame_size
        self._max_buffer_size = max_buffer_size

    def _fail(self, message: str, cause: BaseException | None = None) -> NoReturn:
        error = FrameError(message)
        error.__cause__ = cause
        self._error = error
        raise error

    def _raise_broken(self, error: FrameError) -> NoReturn:
        # Re-raise without piling every earlier raise onto the traceback.
        raise error.with_traceback(None)

    def receive_data(self, data: BytesLike) -> None:
        """Add bytes received from the peer.

        Args:
            data: the next bytes of the body, in any chunking. Only ``bytes`` are kept as
                they are; other buffers are copied, so the caller may reuse them.

        Raises:
            FrameError: the decoder is broken, data follows a terminal frame, or the buffer
                would exceed ``max_buffer_size`` bytes.
        """
        if self._error is not None:
            self._raise_broken(self._error)
        if not data:
            return
        if self._terminated:
            self._fail("data after the terminal frame")
        size = self._size + len(data)
        if size > self._max_buffer_size:
            self._fail(
                f"{size} undecoded bytes buffered, over the limit of {self._max_buffer_size}"
            )
        self._chunks.append(data if type(data) is bytes else bytes(data))
        self._size = size

    def _peek(self, n: int) -> bytes:
        """The first ``n`` undecoded bytes (``n <= _size``), without consuming them."""
        first = self._chunks[0]
        off = self._off
        if len(first) - off >= n:
            return first[off : off + n]
        out = first[off:]
        for chunk in itertools.islice(self._chunks, 1, None):
            out += chunk[: n - len(out)]
            if len(out) == n:
                break
        return out

    def _take(self, skip: int, n: int) -> bytes:
        """Consume ``skip + n`` bytes and return the last ``n``: one copy of the payload."""
        chunks = self._chunks
        self._size -= skip + n
        start = self._off + skip
        if not n:
            while chunks and start >= len(chunks[0]):
                start -= len(chunks.popleft())
            self._off = start
            return b""
        first = chunks[0]
        while start >= len(first):  # the skipped header ended in a later chunk
            start -= len(chunks.popleft())
            first = chunks[0]
        end = start + n
        if end <= len(first):
            if end == len(first):
                chunks.popleft()
                self._off = 0
                return first if not start else first[start:]
            self._off = end
            return first[start:end]
        # The payload spans chunks: join views of its pieces, once.
        parts: list[bytes | memoryview] = [memoryview(first)[start:] if start else first]
        left = n - (len(chunks.popleft()) - start)
        while True:
            first = chunks[0]
            if len(first) > left:
                parts.append(memoryview(first)[:left])
                self._off = left
                break
            parts.append(chunks.popleft())
            left -= len(first)
            if not left:
                self._off = 0
                break
        return b"".join(parts)

    def next_event(self) -> Message | Terminal | None:
        """Decode the next whole frame.

        Returns:
            The frame's event, or ``None`` until more bytes arrive.

        Raises:
            FrameError: the frame is malformed (empty, too long, compression code 11, bad
                compressed payload, bad terminal), follows a terminal frame, or the decoder
                is broken.
        """
        if self._error is not None:
            self._raise_broken(self._error)
        available = self._size
        if available < 4:
            if available == 3:
                # Judge the length as soon as it is known, not when the frame completes.
                self._check_length(int.from_bytes(self._peek(3), "big"))
            return None
        if self._terminated:
            self._fail("data after the terminal frame")
        first = self._chunks[0]
        off = self._off
        if len(first) - off >= 4:
            word: int = _HEAD.unpack_from(first, off)[0]
        else:
            word = _HEAD.unpack(self._peek(4))[0]
        length = word >> 8
        self._check_length(length)
        if 3 + length > available:
            return None
        payload = self._take(4, length - 1)
        flag = word & 0xFF
        if flag & _TERMINAL:
            return self._terminal(payload)
        cc = (flag >> _CC_SHIFT) & 3
        if cc:
            if cc == _CC_INVALID:
                self._fail("frame uses the invalid compression code 0b11")
            try:
                payload = decompress(payload, Compression(cc), max_size=MAX_MESSAGE_SIZE)
            except DecompressionError as exc:
                self._fail(f"bad {Compression(cc).name.lower()} frame payload: {exc}", exc)
        return Message(payload=payload, reconnect_advised=bool(flag & _RECONNECT))

    def _check_length(self, length: int) -> None:
        if length == 0:
            self._fail("empty frame (length 0)")
        if length > self._max_frame_size:
            self._fail(f"frame length {length} exceeds the limit of {self._max_frame_size}")

    def _terminal(self, payload: bytes) -> Terminal:
        # Bit 7 alone makes a frame terminal; the other flag bits are not examined.
        self._terminated = True
        if len(payload) < 2:
            self._fail(f"terminal frame has {len(payload)} payload bytes, needs a 2-byte status")
        try:
            body = payload[2:].decode("utf-8")
        except UnicodeDecodeError as exc:
            self._fail(f"terminal frame body is not UTF-8: {exc}", exc)
        return Terminal(status=int.from_bytes(payload[:2], "big"), body=body)

    def __iter__(self) -> Iterator[Message | Terminal]:
        """Yield every whole frame buffered so far (see :meth:`next_event`)."""
        while (event := self.next_event()) is not None:
            yield event

    def end_of_stream(self) -> None:
        """Check that the body ended on a frame boundary; call after draining the events.

        Raises:
            FrameError: bytes of an incomplete frame remain ("truncated frame"), or the decoder
                is broken.
        """
        if self._error is not None:
            self._raise_broken(self._error)
        leftover = self._size
        if leftover:
            self._fail(f"truncated frame: the body ended {leftover} bytes into a frame")
