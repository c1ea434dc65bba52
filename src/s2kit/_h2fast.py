"""Speed fixes for h2 and hyperframe, used by both HTTP/2 users in s2kit (client and lite).

1. h2 4.x logs every received frame with ``logger.trace("...", repr(frame))``: the ``repr``
   runs even when the logger discards it, and hyperframe's repr hex-encodes the whole payload
   before keeping 20 characters. With 1 MiB DATA frames that was a third of lite's CPU on bulk
   appends (docs/benchmarks.md). Hex-encoding only the first 11 bytes of the payload yields
   the same text; and every frame's repr is cut to its type and stream. Installed on import
   (idempotent).

2. h2's ``FrameBuffer`` copies every read into its buffer, then each frame's body out of it
   (a ``bytearray`` slice) before hyperframe copies it again (``tobytes``).
   :class:`LeanFrameBuffer` parses frames where they lie and copies a payload once; with
   large DATA frames each extra copy was about 8 % of lite's CPU on appends.
   :func:`new_connection` installs it.

3. Header blocks are encoded by ``wire/_hpack.py``'s stateless encoder, not h2's (why: there).

4. h2 walks every stream to count the open ones on each new stream; :class:`_Connection`
   walks only when the count can reach the limit.

5. h2 serializes every frame it sends into its own buffer: a DATA frame's
   payload was copied four or five times on its way to the socket (hyperframe's body, the frame,
   the join of several frames, h2's bytearray, then ``bytes()`` of it for ``data_to_send``).
   :class:`_Connection` queues a DATA frame as its 9-byte header and the payload object
   itself, and ``data_to_send`` joins what is queued once. In an append session that was a
   quarter of the client's CPU (docs/benchmarks.md#against-the-targets-of-the-scale-and-speed-work).

And two defences h2 lacks, for lite (the server side):

6. A header block is bounded as it arrives: h2 assembles HEADERS + CONTINUATION frames until
   END_HEADERS, up to 64 frames of up to the maximum frame size each (64 MiB with lite's
   1 MiB frames) before looking at the advertised header-list limit. The buffer refuses a
   block whose fragments pass ``max_header_block`` bytes (the CONTINUATION flood).
7. A stream opened above the advertised SETTINGS_MAX_CONCURRENT_STREAMS is refused with
   RST_STREAM(REFUSED_STREAM), which RFC 9113 §5.1.2 allows and a client can retry, instead
   of h2's connection error that would fail every other stream of the connection.

And one fix of h2's own:

8. A raised SETTINGS_MAX_FRAME_SIZE applies from the peer's ACK on (RFC 9113 §6.5.3), also
   to frames that arrive in the same read as that ACK. h2 applied it from the next read
   only, so a client that acked lite's 1 MiB frame size and sent a 1 MiB DATA frame at once
   got its connection closed whenever a busy lite read both together
   (tests/e2e/test_frame_size_ack.py).
"""

from __future__ import annotations

import binascii
import struct
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.stream
from h2.exceptions import DenialOfServiceError, FrameDataMissingError, ProtocolError
from h2.frame_buffer import FrameBuffer
from hyperframe import frame as _frame
from hyperframe.exceptions import InvalidDataError, InvalidFrameError

from s2kit.wire._hpack import StatelessEncoder

_HEADER = 9  # RFC 9113 §4.1
_DATA_HEADER = struct.Struct(">HBBBL")  # length (24 bits, as 16 + 8), type 0, flags, stream
_END_STREAM = 0x01
_HEADER_BLOCK_FRAMES = (_frame.HeadersFrame, _frame.ContinuationFrame, _frame.PushPromiseFrame)


def _raw_data_repr(data: bytes | None) -> str:
    if not data:
        return "None"
    r = binascii.hexlify(bytes(data[:11])).decode("ascii")
    if len(r) > 20:
        r = r[:20] + "..."
    return "<hex:" + r + ">"


def _data_body_repr(self: _frame.DataFrame) -> str:
    # The default serializes the whole (padded) body first, just to print 20 hex digits.
    return _raw_data_repr(self.data)


CONNECTION_SPECIFIC = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade"}
)
"""Header fields that are malformed in HTTP/2 (RFC 9113 §8.2.2; ``te`` only if it is not
``trailers``). h2's own outbound checks are off (:func:`new_connection`): lite drops these
from responses, the client refuses them in requests."""


def _lean_repr(self: _frame.Frame) -> str:
    # The type and stream only: h2 builds this string for every frame it receives, for a
    # trace log line nobody enables, and the full form (flags, body) cost about 2 % of lite's
    # CPU on unary appends (docs/benchmarks.md#lite-at-scale).
    return f"{type(self).__name__}(stream_id={self.stream_id})"


def apply() -> None:
    """Install the bounded reprs (idempotent)."""
    _frame._raw_data_repr = _raw_data_repr
    _frame.DataFrame._body_repr = _data_body_repr  # type: ignore[method-assign,assignment]
    _frame.Frame.__repr__ = _lean_repr  # type: ignore[method-assign]


class LeanFrameBuffer(FrameBuffer):
    """``FrameBuffer`` that copies a frame's payload once, not twice.

    h2's appends every read to one ``bytearray`` and hyperframe then copies each payload out
    of it. Here a read is parsed where it lies: a frame inside it is copied out once, and
    only the unparsed rest of a read is kept — as a view when the read is immutable
    ``bytes`` (lite's), else copied (the client reads into one reused buffer) — to be joined
    once with the rest of its frame from later reads. A DATA frame's payload is that one
    copy (hyperframe's own parse would copy it again).

    Also unlike h2's: a frame longer than the maximum is refused as soon as its header
    arrives rather than once all of it has been buffered. The preamble check and the
    header-block assembly (``_update_header_buffer``) are h2's.
    """

    def __init__(self, server: bool = False, max_header_block: int | None = None) -> None:
        super().__init__(server=server)
        self.max_header_block = max_header_block
        self._view = memoryview(b"")  # the last read, parsed up to ``_pos``
        self._pos = 0
        self._immutable = True  # whether views of the last read may be kept
        self._pending: list[bytes | memoryview] = []  # earlier reads' unparsed bytes
        self._pending_size = 0

    def add_data(self, data: bytes | memoryview) -> None:  # type: ignore[override]
        view = memoryview(data)
        if self._preamble_len:  # a server first checks the client's connection preface
            n = min(self._preamble_len, len(view))
            if self._preamble[:n] != view[:n]:
                raise ProtocolError("Invalid HTTP/2 preamble.")
            view = view[n:]
            self._preamble_len -= n
            self._preamble = self._preamble[n:]
        self._stash()  # h2 parses every read to the end; this is in case one was not
        self._view, self._pos = view, 0
        self._immutable = type(data) is bytes

    def _stash(self) -> None:
        """Keep what is left of the last read for later (it may be reused once we return)."""
        rest = self._view[self._pos :]
        if len(rest):
            self._pending.append(rest if self._immutable else rest.tobytes())
            self._pending_size += len(rest)
        self._view, self._pos = memoryview(b""), 0

    def _available(self) -> int:
        return self._pending_size + len(self._view) - self._pos

    def _joined(self, start: int, stop: int) -> bytes:
        """Unparsed bytes ``[start, stop)``, from the earlier reads' pieces on (one copy)."""
        parts: list[bytes | memoryview] = []
        for piece in [*self._pending, self._view[self._pos :]]:
            n = len(piece)
            if start < n:
                parts.append(piece[max(start, 0) : stop])
            start, stop = start - n, stop - n
            if stop <= 0:
                break
        return b"".join(parts)

    def _head(self) -> bytes | memoryview:
        """The next frame's header (the caller checked that it is buffered)."""
        if not self._pending:
            return self._view[self._pos : self._pos + _HEADER]
        return self._joined(0, _HEADER)

    def _take(self, length: int) -> bytes | memoryview:
        """Consume the next frame (header and ``length`` bytes, all buffered); its body."""
        end = _HEADER + length
        if not self._pending:
            pos = self._pos
            self._pos = pos + end
            return self._view[pos + _HEADER : pos + end]
        # The frame began in an earlier read: join its body's pieces, once.
        body = self._joined(_HEADER, end)
        self._pos += end - self._pending_size  # the rest of it is in the current read
        self._pending.clear()
        self._pending_size = 0
        return body

    def __next__(self) -> _frame.Frame:
        available = self._available()
        if available < _HEADER:
            self._stash()
            raise StopIteration
        try:
            frame, length = _frame.Frame.parse_frame_header(memoryview(self._head()))
        except (InvalidDataError, InvalidFrameError) as err:
            raise ProtocolError(f"Received frame with invalid header: {err!s}") from err
        self._validate_frame_length(length)
        if self.max_header_block is not None and isinstance(frame, _HEADER_BLOCK_FRAMES):
            # Judged on the frame's header, before its body is buffered: a flood of large
            # CONTINUATION frames costs one frame header each, not a frame each.
            block = length + sum(len(f.data) for f in self._headers_buffer)
            if block > self.max_header_block:
                raise DenialOfServiceError(
                    f"header block of {block} bytes or more (limit {self.max_header_block})"
                )
        if available < _HEADER + length:
            self._stash()
            raise StopIteration
        body = self._take(length)
        if type(frame) is _frame.DataFrame and "PADDED" not in frame.flags:
            # What hyperframe's parse does for an unpadded frame, minus a second copy.
            frame.data = body if isinstance(body, bytes) else body.tobytes()
            frame.body_len = length
        else:
            try:
                frame.parse_body(memoryview(body))
            except InvalidDataError as err:
                raise ProtocolError("Received frame with non-compliant data") from err
            except InvalidFrameError as err:
                raise FrameDataMissingError("Frame data missing or invalid") from err
        found = self._update_header_buffer(frame)
        # A frame swallowed into a header block yields nothing: go on to the next one.
        return found if found is not None else self.__next__()


class _Connection(h2.connection.H2Connection):
    """h2's connection, counting its open streams only when the count can matter, and
    queueing DATA payloads without copying them (item 5 above).

    h2 counts open streams (and sweeps closed ones out of its table) by walking every stream,
    on every new stream it sends or receives: with a thousand streams on a connection (read
    sessions), every request paid a walk of a thousand. Below the concurrency limit the size
    of the table is an upper bound that decides the same, so the walk (and its sweep) happens
    only once the table reaches the limit.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queued: list[bytes] = []

    def _prepare_for_sending(self, frames: list[_frame.Frame]) -> None:
        # h2's own sends (its sizes already checked against the peer's frame size) end here.
        queued = self._queued
        if self._data_to_send:  # written by h2 directly (its preamble): keep the order
            queued.append(bytes(self._data_to_send))
            self._data_to_send = bytearray()
        for f in frames:
            if type(f) is _frame.DataFrame and "PADDED" not in f.flags:
                data: bytes = f.data  # h2 made bytes of a view; a bytearray could still change
                if type(data) is not bytes:
                    data = bytes(data)
                n = f.body_len = len(data)
                flags = _END_STREAM if "END_STREAM" in f.flags else 0
                queued.append(_DATA_HEADER.pack(n >> 8, n & 0xFF, 0, flags, f.stream_id))
                if n:
                    queued.append(data)
            else:
                queued.append(f.serialize())

    def data_to_send(self, amount: int | None = None) -> bytes:
        queued = self._queued
        if not queued:
            return super().data_to_send(amount)
        if self._data_to_send:
            queued.append(bytes(self._data_to_send))
        data = b"".join(queued)  # the payload's one copy on this side of the socket
        queued.clear()
        self._data_to_send = bytearray()
        if amount is not None and len(data) > amount:
            self._data_to_send = bytearray(data[amount:])
            data = data[:amount]
        return data

    def clear_outbound_data_buffer(self) -> None:
        self._queued.clear()
        super().clear_outbound_data_buffer()

    def _local_settings_acked(self) -> Any:
        changes = super()._local_settings_acked()
        # h2 hands the frame buffer a new maximum frame size only at the start of its next
        # ``receive_data``: a larger frame the peer sent right behind its ACK, read in the same
        # chunk, was refused as overlong, and the connection closed (item 8 above).
        self.incoming_buffer.max_frame_size = self.max_inbound_frame_size
        return changes

    @property
    def open_inbound_streams(self) -> int:
        if len(self.streams) < self.local_settings.max_concurrent_streams:
            return len(self.streams)
        return super().open_inbound_streams

    @property
    def open_outbound_streams(self) -> int:
        if len(self.streams) < self.remote_settings.max_concurrent_streams:
            return len(self.streams)
        return super().open_outbound_streams


class _ServerConnection(_Connection):
    """h2's connection, refusing a stream above the concurrency limit instead of failing all.

    Relies on h2 4.x internals (pinned below 5 in pyproject.toml): the headers frame
    handler, the HPACK decoder and the record of streams closed by a reset.
    """

    def _receive_headers_frame(self, frame: Any) -> Any:
        sid = frame.stream_id
        if (
            sid in self.streams
            or sid % 2 == 0
            or sid <= self.highest_inbound_stream_id
            or self.open_inbound_streams < self.local_settings.max_concurrent_streams
        ):
            return super()._receive_headers_frame(frame)  # h2's own rules and errors apply
        # The block must still be decoded: the HPACK table is shared by the connection.
        h2.connection._decode_headers(self.decoder, frame.data)
        events = self.state_machine.process_input(h2.connection.ConnectionInputs.RECV_HEADERS)
        self.highest_inbound_stream_id = sid
        # Frames still in flight for it are answered as for any stream we reset.
        self._closed_streams[sid] = h2.stream.StreamClosedBy.SEND_RST_STREAM
        refuse = _frame.RstStreamFrame(sid)
        refuse.error_code = h2.errors.ErrorCodes.REFUSED_STREAM
        return [refuse], events


def new_connection(
    *, client_side: bool, max_header_block: int | None = None
) -> h2.connection.H2Connection:
    """An ``H2Connection`` (header values as bytes) reading through :class:`LeanFrameBuffer`.

    A server's (``client_side=False``) refuses streams above its concurrency limit with
    REFUSED_STREAM; ``max_header_block`` bounds a header block as it arrives.
    """
    # Outbound blocks are built by s2kit from checked values (lower-case names, no
    # connection-specific fields), and encoded by StatelessEncoder, which keeps credentials
    # out of tables itself: h2's outbound normalizing and validating passes are skipped.
    config = h2.config.H2Configuration(
        client_side=client_side,
        header_encoding=None,
        normalize_outbound_headers=False,
        validate_outbound_headers=False,
    )
    kind = _Connection if client_side else _ServerConnection
    conn = kind(config=config)
    conn.encoder = StatelessEncoder()  # type: ignore[assignment]
    conn.incoming_buffer = LeanFrameBuffer(
        server=not client_side, max_header_block=max_header_block
    )
    conn.incoming_buffer.max_frame_size = conn.max_inbound_frame_size
    return conn


apply()
