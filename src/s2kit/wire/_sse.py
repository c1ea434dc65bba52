"""Server-sent events for SSE read sessions, sans-IO (docs/protocol.md#sse).

The encoders write what lite writes: ``field:value`` lines with no space after the colon, in the
order ``event``, ``id``, ``data``, and a blank line after each event. (Data that itself starts
with a space, which JSON never does, gets one extra space, since receivers drop one.)

The decoder reads any conforming stream, following the WHATWG HTML "event stream
interpretation" rules: lines end in CRLF, LF or CR; one space after the colon is dropped;
``data`` lines are joined with LF; lines starting with ``:`` are comments; the last ``id``
persists across events; an event is dispatched on a blank line, and only if it has data.

Line endings are found on the raw bytes, which is safe because no UTF-8 multi-byte sequence
contains CR or LF; each line is decoded on its own, invalid sequences becoming U+FFFD as the
spec requires. A CR that ends the buffered bytes is taken as a line end at once, and an LF that
then begins the next chunk is skipped, so CR-only streams are not delayed by a byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from collections.abc import Iterator

    from s2kit.wire._compress import BytesLike

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "SseDecoder",
    "SseEvent",
    "format_event_id",
    "sse_batch",
    "sse_done",
    "sse_error",
    "sse_ping",
]

DEFAULT_MAX_EVENT_SIZE = 16 * 1024 * 1024
"""Default limit on one line and on one event's data.

A read batch holds at most 1 MiB of metered bytes (docs/protocol.md#follow-and-wait), but its
JSON can be about six times larger in ``raw`` format, where each control byte becomes a
``\\u00XX`` escape.
"""

_U64_MAX = (1 << 64) - 1
_DONE = b"data:[DONE]\n\n"
_LF = 0x0A


@dataclass(frozen=True, slots=True, kw_only=True)
class SseEvent:
    """A dispatched server-sent event."""

    event: str
    """The event type: ``batch``, ``ping``, ``error``, or ``message`` when none was given."""
    data: str
    """The data lines, joined with LF."""
    id: str | None
    """The last event ID in force when the event was dispatched; ``None`` when empty."""


def format_event_id(seq_num: int, count: int, bytes_: int, /) -> str:
    """Build the ``id`` of a batch event: ``seq_num,count,bytes``.

    Args:
        seq_num: the seq_num of the batch's last record.
        count: records delivered on this connection so far, this batch included.
        bytes_: metered bytes delivered on this connection so far, this batch included.

    Returns:
        The id, which :func:`~s2kit.wire._negotiate.parse_last_event_id` reads back.

    Raises:
        ValueError: a number is not an unsigned 64-bit integer.
    """
    for number in (seq_num, count, bytes_):
        if not 0 <= number <= _U64_MAX:
            raise ValueError(f"event id component {number} is not an unsigned 64-bit integer")
    return f"{seq_num},{count},{bytes_}"


def _data_line(line: str) -> str:
    # Receivers drop one space after the colon; a line that starts with one gets an extra one.
    # (Compact JSON never does, so lite's exact bytes are kept.)
    return f"data: {line}\n" if line[:1] == " " else f"data:{line}\n"


def _data_lines(data: str) -> str:
    # Compact JSON never holds a raw line break; anything else must become several data lines,
    # or the receiver would read the rest as other fields.
    if "\n" not in data and "\r" not in data:
        return _data_line(data)
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "".join(_data_line(line) for line in lines)


def sse_batch(id_: str, data_json: str) -> bytes:
    """Encode a ``batch`` event.

    Args:
        id_: the event id, from :func:`format_event_id`.
        data_json: the ``ReadBatch`` JSON.

    Returns:
        ``event:batch``, ``id:``, ``data:`` lines and the blank line.

    Raises:
        ValueError: the id contains CR, LF or NUL, which cannot be sent.
    """
    return sse_batch_head(id_) + sse_data(data_json)


def sse_batch_head(id_: str) -> bytes:
    """The ``event:batch`` and ``id:`` lines of a batch event; :func:`sse_data` follows.

    Split from the data so that one rendering of a batch's data serves every reader of it,
    each with its own id.

    Raises:
        ValueError: the id contains CR, LF or NUL, which cannot be sent.
    """
    if "\n" in id_ or "\r" in id_ or "\0" in id_:
        raise ValueError(f"event id {id_!r} contains CR, LF or NUL")
    return f"event:batch\nid:{id_}\n".encode()


def sse_data(data_json: str) -> bytes:
    """The ``data:`` lines of an event, and the blank line that ends it."""
    return f"{_data_lines(data_json)}\n".encode()


def sse_ping(data_json: str) -> bytes:
    """Encode a ``ping`` (heartbeat) event whose data is ``{"timestamp":..,"tail":..}``."""
    return f"event:ping\n{_data_lines(data_json)}\n".encode()


def sse_error(data_json: str) -> bytes:
    """Encode an ``error`` event carrying an error JSON body; it ends the stream."""
    return f"event:error\n{_data_lines(data_json)}\n".encode()


def sse_done() -> bytes:
    """Encode the ``data:[DONE]`` message that ends a session normally."""
    return _DONE


class SseDecoder:
    """Turns the bytes of a ``text/event-stream`` body into :class:`SseEvent` objects.

    Feed bytes with :meth:`receive_data`, then drain with :meth:`next_event` or by iterating.
    A line or an event's data longer than ``max_event_size``, or more than twice that many
    undecoded bytes buffered, raises :class:`ValueError`; after that the decoder is broken and
    every call raises the same error. An event still incomplete when the body ends is discarded,
    as the spec says, so there is no end-of-stream check.

    Args:
        max_event_size: the longest acceptable line, and the most data one event may carry.
    """

    __slots__ = (
        "_buf",
        "_data",
        "_data_size",
        "_error",
        "_event",
        "_last_id",
        "_max_event_size",
        "_pos",
        "_retry",
        "_scan",
        "_skip_lf",
        "_started",
    )

    def __init__(self, *, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        if max_event_size < 1:
            raise ValueError("max_event_size must be positive")
        self._max_event_size = max_event_size
        self._buf = bytearray()
        self._pos = 0  # first byte not yet consumed
        self._scan = 0  # bytes before this hold no line end past _pos: do not search them again
        self._skip_lf = False  # the last line ended in CR: an LF right after it belongs to it
        self._started = False  # a leading BOM has been dealt with
        self._error: ValueError | None = None
        self._event = ""
        self._data: list[str] = []
        self._data_size = 0
        self._last_id = ""
        self._retry: int | None = None

    @property
    def last_event_id(self) -> str | None:
        """The id to send as ``Last-Event-ID`` when reconnecting; ``None`` when empty."""
        return self._last_id or None

    @property
    def retry(self) -> int | None:
        """The reconnection delay in milliseconds the server last asked for, if any."""
        return self._retry

    def _fail(self, message: str) -> NoReturn:
        self._error = ValueError(message)
        raise self._error

    def receive_data(self, data: BytesLike) -> None:
        """Add bytes received from the server.

        Args:
            data: the next bytes of the body, in any chunking.

        Raises:
            ValueError: the decoder is broken, or more than ``2 * max_event_size`` undecoded
                bytes would be buffered.
        """
        if self._error is not None:
            raise self._error.with_traceback(None)
        if not data:
            return
        buf = self._buf
        if self._pos:
            del buf[: self._pos]  # cheap: CPython moves the bytearray's start pointer
            self._scan = max(self._scan - self._pos, 0)
            self._pos = 0
        if len(buf) + len(data) > 2 * self._max_event_size:
            self._fail(f"more than {2 * self._max_event_size} undecoded SSE bytes buffered")
        buf += data

    def next_event(self) -> SseEvent | None:
        """Process buffered lines up to the next dispatched event.

        Returns:
            The event, or ``None`` until more bytes arrive.

        Raises:
            ValueError: a line or an event's data exceeds ``max_event_size``, or the decoder is
                broken.
        """
        if self._error is not None:
            raise self._error.with_traceback(None)
        while (line := self._next_line()) is not None:
            if line:
                self._process_field(line)
                continue
            event = self._dispatch()
            if event is not None:
                return event
        return None

    def __iter__(self) -> Iterator[SseEvent]:
        """Yield every event that the buffered bytes complete (see :meth:`next_event`)."""
        while (event := self.next_event()) is not None:
            yield event

    def _next_line(self) -> str | None:
        buf = self._buf
        pos = self._pos
        size = len(buf)
        if self._skip_lf:
            if pos == size:
                return None
            if buf[pos] == _LF:
                pos += 1
                self._pos = pos
            self._skip_lf = False
        start = max(self._scan, pos)
        lf = buf.find(b"\n", start)
        # Search for CR only up to the LF, so each byte is scanned at most twice overall.
        cr = buf.find(b"\r", start, size if lf < 0 else lf)
        if cr >= 0:
            end = cr
            self._skip_lf = True
        elif lf >= 0:
            end = lf
        else:
            self._scan = size
            if size - pos > self._max_event_size:
                self._fail(f"SSE line longer than {self._max_event_size} bytes")
            return None
        if end - pos > self._max_event_size:
            self._fail(f"SSE line longer than {self._max_event_size} bytes")
        line = buf[pos:end].decode("utf-8", "replace")
        self._pos = self._scan = end + 1
        if not self._started:
            self._started = True
            line = line.removeprefix("\ufeff")  # the spec drops one BOM at the stream's start
        return line

    def _process_field(self, line: str) -> None:
        if line[0] == ":":
            return  # a comment
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data_size += len(value) + 1
            if self._data_size > self._max_event_size:
                self._fail(f"SSE event data longer than {self._max_event_size} characters")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        # Any other field is ignored, as the spec requires.

    def _dispatch(self) -> SseEvent | None:
        data = self._data
        event = self._event
        self._data = []
        self._data_size = 0
        self._event = ""
        if not data:
            return None  # an event without data is not dispatched; its id still counts
        return SseEvent(event=event or "message", data="\n".join(data), id=self._last_id or None)
