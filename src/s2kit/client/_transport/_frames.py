"""Take GOAWAY frames out of the server's HTTP/2 byte stream before ``h2`` sees them.

``h2`` moves the whole connection to CLOSED on a received GOAWAY and from then on refuses
the frames of the very streams the server promised to finish (python-hyper/h2#1181). So the
connection feeds every read through :class:`GoAwayFilter` first: it walks the 9-byte frame
headers (RFC 9113 §4.1), passes all other frames through untouched, and returns each GOAWAY
(RFC 9113 §6.8) as a :class:`GoAwayReceived` event in stream order.

Sans-IO: bytes in, an ordered list of pass-through segments and events out. A read made of
whole frames without a GOAWAY (the usual case) comes back as the very same object, uncopied;
a frame header split across reads is held back (copied: a read may be a view of a buffer the
connection reuses) until its type is known.
"""

from __future__ import annotations

from dataclasses import dataclass

from s2kit.errors import RemoteProtocolError

__all__ = ["GOAWAY", "GoAwayFilter", "GoAwayReceived"]

FRAME_HEADER_SIZE = 9
GOAWAY = 0x7
_GOAWAY_MIN_PAYLOAD = 8  # last-stream-id and error code (RFC 9113 §6.8)


@dataclass(frozen=True, slots=True, kw_only=True)
class GoAwayReceived:
    """A GOAWAY frame from the server."""

    last_stream_id: int
    """The highest stream id the server may have processed."""
    error_code: int
    """The HTTP/2 error code (0 = NO_ERROR: a graceful shutdown)."""
    debug_data: bytes
    """Opaque diagnostic data."""


class GoAwayFilter:
    """Split incoming HTTP/2 bytes at frame boundaries and remove the GOAWAY frames.

    Args:
        max_frame_size: the largest GOAWAY payload accepted (our SETTINGS_MAX_FRAME_SIZE);
            other frames are checked by ``h2``.
    """

    __slots__ = ("_goaway", "_goaway_left", "_head", "_max_frame_size", "_skip")

    def __init__(self, *, max_frame_size: int) -> None:
        self._max_frame_size = max_frame_size
        self._head = b""  # a frame header split across reads (fewer than 9 bytes)
        self._skip = 0  # payload bytes of a passed-through frame still to come
        self._goaway = bytearray()  # a GOAWAY payload being collected
        self._goaway_left = 0

    def receive(self, data: bytes | memoryview) -> list[bytes | memoryview | GoAwayReceived]:
        """Feed one read; return what to hand to ``h2`` and the GOAWAYs, in stream order.

        Raises:
            RemoteProtocolError: a malformed GOAWAY frame.
        """
        out: list[bytes | memoryview | GoAwayReceived] = []
        end = len(data)
        pos = 0
        if self._head:
            pos = FRAME_HEADER_SIZE - len(self._head)
            head = self._head + data[:pos]
            if len(head) < FRAME_HEADER_SIZE:
                self._head = head
                return out
            self._head = b""
            if self._start_frame(head, 0):
                out.append(head)
        run = pos  # where the current pass-through run started
        while True:
            if self._goaway_left:
                take = min(self._goaway_left, end - pos)
                self._goaway += data[pos : pos + take]
                pos += take
                run = pos
                self._goaway_left -= take
                if self._goaway_left:
                    break
                out.append(self._finish_goaway())
            if self._skip:
                take = min(self._skip, end - pos)
                pos += take
                self._skip -= take
                if self._skip:
                    break
            if end - pos < FRAME_HEADER_SIZE:
                if pos < end:
                    self._head = bytes(data[pos:])  # the caller may reuse its buffer
                break
            if not self._start_frame(data, pos):
                if pos > run:
                    out.append(memoryview(data)[run:pos])
                run = pos + FRAME_HEADER_SIZE
            pos += FRAME_HEADER_SIZE
        if pos > run:  # pos stops short of a held-back header
            out.append(data if run == 0 and pos == end else memoryview(data)[run:pos])
        return out

    def _start_frame(self, buf: bytes | memoryview, at: int) -> bool:
        """Read the header at ``buf[at:]``; True if the frame passes through to ``h2``."""
        length = buf[at] << 16 | buf[at + 1] << 8 | buf[at + 2]
        if buf[at + 3] != GOAWAY:
            self._skip = length
            return True
        stream_id = int.from_bytes(buf[at + 5 : at + 9], "big") & 0x7FFF_FFFF
        if stream_id != 0:
            raise RemoteProtocolError(f"GOAWAY on stream {stream_id} (RFC 9113 §6.8)")
        if not _GOAWAY_MIN_PAYLOAD <= length <= self._max_frame_size:
            raise RemoteProtocolError(f"GOAWAY frame of bad length {length}")
        self._goaway = bytearray()
        self._goaway_left = length
        return False

    def _finish_goaway(self) -> GoAwayReceived:
        payload = bytes(self._goaway)
        self._goaway = bytearray()
        return GoAwayReceived(
            last_stream_id=int.from_bytes(payload[0:4], "big") & 0x7FFF_FFFF,
            error_code=int.from_bytes(payload[4:8], "big"),
            debug_data=payload[8:],
        )
