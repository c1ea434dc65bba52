"""One HTTP/2 client connection: an ``asyncio.Protocol`` driving an ``h2`` state machine.

Theory of operation
-------------------
``h2`` is the sans-IO HTTP/2 codec; this protocol is its only driver. A read goes through
:class:`GoAwayFilter` (``h2`` must never see GOAWAY, python-hyper/h2#1181), the rest into
``receive_data``, and the events are applied in order to the :class:`H2Stream` objects, which
wake whoever awaits them. Everything ``h2`` queues (our frames, SETTINGS and PING ACKs,
WINDOW_UPDATEs) is written by ``_flush``, once per event-loop iteration (``call_soon``) or at
once past ``_FLUSH_BYTES``, so many small DATA frames from one iteration share one write.
Transport backpressure (``pause_writing``) parks senders until ``resume_writing``.

Life cycle (``ConnectionState``, one table): HANDSHAKE until the server's SETTINGS arrive (so
SETTINGS_MAX_CONCURRENT_STREAMS is known before the first stream), OPEN, DRAINING after a
GOAWAY (no new streams; streams above its last-stream-id fail at once with
``GoAway(processed=False)``, the others run to completion, and the connection closes when
none remain), CLOSING when we close it, CLOSED when the transport is gone. When the
connection breaks, every stream fails with an error built for it (``ConnectionLost`` carries
that stream's own ``data_sent``).

The keepalive task (one per connection, owned here, cancelled on loss and awaited by
``wait_closed``) sends a PING whenever nothing was received for ``interval`` seconds and
declares the connection dead when the ACK takes longer than ``timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import socket
from typing import TYPE_CHECKING, Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from s2kit._h2fast import CONNECTION_SPECIFIC, new_connection
from s2kit.client._transport._errors import LOCAL_H2, REMOTE_H2, chain
from s2kit.client._transport._frames import GoAwayFilter, GoAwayReceived
from s2kit.client._transport._stream import H2Stream
from s2kit.errors import (
    ConnectError,
    ConnectionLost,
    GoAway,
    LocalProtocolError,
    RemoteProtocolError,
    StreamReset,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from s2kit.client._transport._origin import Origin
    from s2kit.errors import S2Error

__all__ = ["ConnectionState", "H2ClientConnection"]

logger = logging.getLogger("s2kit.client")

STREAM_WINDOW = 4 << 20
CONNECTION_WINDOW = 16 << 20
# The largest DATA frame we accept. Bigger is not cheaper: with 1 MiB frames lite spent
# 1.9 µs per catch-up record (every copy of a frame overflows the CPU caches), with 64 KiB
# 1.1 µs, and our own per-frame cost stays small (bench/sdk_compare.py, docs/benchmarks.md).
MAX_FRAME_SIZE = 64 << 10
MAX_HEADER_LIST_SIZE = 64 << 10
_DEFAULT_WINDOW = 65_535
_FLUSH_BYTES = 256 << 10
_READ_SIZE = 256 << 10  # what asyncio reads at once into a fresh bytes object otherwise
_LAST_STREAM_ID = 2**31 - 1
_CANCEL = 0x8


def _field_problem(name: str, value: str) -> str | None:
    """Why a header field may not be sent (RFC 9113 §8.2), or None. h2's own outbound checks
    are off (``s2kit/_h2fast.py``): these are the ones a caller's fields can break."""
    if name == "te":
        return None if value == "trailers" else "header field te may only be 'trailers'"
    if not name or name.startswith(":") or name in CONNECTION_SPECIFIC:
        return f"header field {name!r} is not allowed in HTTP/2"
    if "\r" in value or "\n" in value or "\0" in value or " " in name:
        return f"header field {name!r} has a forbidden character"
    return None


class ConnectionState(enum.Enum):
    """Where a client connection is in its life."""

    HANDSHAKE = "handshake"  # waiting for the server's SETTINGS (RFC 9113 §3.4)
    OPEN = "open"
    DRAINING = "draining"  # GOAWAY received, or stream ids used up: no new streams
    CLOSING = "closing"  # we are closing it
    CLOSED = "closed"  # the transport is gone


class _Input(enum.Enum):
    SETTINGS = "server SETTINGS"
    DRAIN = "drain"
    CLOSE = "close"
    LOST = "transport lost"


_C = ConnectionState
_TRANSITIONS: dict[tuple[ConnectionState, _Input], ConnectionState] = {
    (_C.HANDSHAKE, _Input.SETTINGS): _C.OPEN,
    **{(s, _Input.DRAIN): _C.DRAINING for s in (_C.HANDSHAKE, _C.OPEN, _C.DRAINING)},
    **{(s, _Input.CLOSE): _C.CLOSING for s in (_C.HANDSHAKE, _C.OPEN, _C.DRAINING, _C.CLOSING)},
    **{(s, _Input.LOST): _C.CLOSED for s in (_C.HANDSHAKE, _C.OPEN, _C.DRAINING, _C.CLOSING)},
    (_C.CLOSED, _Input.CLOSE): _C.CLOSED,
}


def _text(value: bytes | str) -> str:
    # header_encoding=None makes h2 hand us bytes; the str branch only satisfies its types.
    return value.decode("latin-1") if isinstance(value, bytes) else value


class H2ClientConnection(asyncio.BufferedProtocol):
    """An HTTP/2 client connection to one origin (created by the pool's connect)."""

    def __init__(self, origin: Origin, on_change: Callable[[H2ClientConnection], None]) -> None:
        self.origin = origin
        self._on_change = on_change  # capacity or life-cycle changed (the pool listens)
        self._loop = asyncio.get_running_loop()
        self._state = ConnectionState.HANDSHAKE
        self._h2 = new_connection(client_side=True)
        # In the connection preface's SETTINGS rather than a second SETTINGS: the server
        # applies them before it sees any of our streams, so they hold from the start.
        self._h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: MAX_FRAME_SIZE,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
            },
        )
        self._h2.max_inbound_frame_size = MAX_FRAME_SIZE
        self._filter = GoAwayFilter(max_frame_size=MAX_FRAME_SIZE)
        self._rbuf = memoryview(bytearray(_READ_SIZE))
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, H2Stream] = {}
        self._window_waiters: set[H2Stream] = set()  # streams parked on flow control
        self._drain_waiters: list[asyncio.Future[None]] = []  # senders parked in H2Stream._park
        self._write_paused = False
        self._flush_scheduled = False
        self._unflushed = 0
        self._max_streams = 0  # the server's SETTINGS_MAX_CONCURRENT_STREAMS, once known
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._cause: BaseException | None = None  # why it ended, for ConnectError
        self._goaway: GoAwayReceived | None = None
        self._last_received = self._loop.time()
        self._ping_ids = itertools.count(1)
        self._ping_data = b""
        self._ping_waiter: asyncio.Future[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._scheme = origin.scheme.encode("ascii")
        self._authority = origin.authority.encode("ascii")
        self._handlers: dict[type[h2.events.Event], Callable[[Any], None]] = {
            h2.events.DataReceived: self._on_data,
            h2.events.WindowUpdated: self._on_window_updated,
            h2.events.ResponseReceived: self._on_response,
            h2.events.StreamEnded: self._on_stream_ended,
            h2.events.StreamReset: self._on_stream_reset,
            h2.events.TrailersReceived: self._on_trailers,
            h2.events.RemoteSettingsChanged: self._on_settings,
            h2.events.PingAckReceived: self._on_ping_ack,
        }

    def __repr__(self) -> str:
        streams = len(self._streams)
        return f"<H2ClientConnection {self.origin} {self._state.value} streams={streams}>"

    # -- for the pool ----------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The connection's state."""
        return self._state

    @property
    def open_streams(self) -> int:
        """Streams not yet finished."""
        return len(self._streams)

    @property
    def finished(self) -> bool:
        """The transport is gone and the keepalive task has ended."""
        return self._state is _C.CLOSED and (self._keepalive is None or self._keepalive.done())

    def can_open(self) -> bool:
        """Whether a new stream fits now (OPEN, below the server's concurrency limit)."""
        return self._state is _C.OPEN and len(self._streams) < self._max_streams

    async def handshake(self) -> None:
        """Check ALPN and wait for the server's SETTINGS.

        Raises:
            ConnectError: TLS did not negotiate ``h2``, or the server closed, broke HTTP/2 or
                sent GOAWAY before its SETTINGS.
        """
        transport = self._transport
        if self.origin.tls and transport is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            if alpn != "h2":
                raise ConnectError(
                    f"{self.origin} did not negotiate HTTP/2 (ALPN {alpn!r})", retryable=False
                )
        await self._ready
        if self._state is not _C.OPEN:
            if self._goaway is not None:
                message = f"{self.origin} sent GOAWAY (code {self._goaway.error_code:#x}) at once"
            else:
                message = f"{self.origin} closed the connection before HTTP/2 was set up"
            raise chain(ConnectError(message), self._cause)

    def start_keepalive(self, interval: float | None, timeout: float) -> None:
        """Start the keepalive task (none when ``interval`` is None)."""
        if interval is None or self._keepalive is not None or self._state is _C.CLOSED:
            return
        self._keepalive = self._loop.create_task(
            self._keepalive_loop(interval, ack_timeout=timeout),
            name=f"s2kit keepalive {self.origin}",
        )
        self._keepalive.add_done_callback(lambda _: self._on_change(self))

    def open_stream(
        self, method: str, path: str, headers: list[tuple[str, str]], *, end_stream: bool
    ) -> H2Stream:
        """Send HEADERS on a new stream (flushed with this iteration's other writes).

        Raises:
            UsageError: a header is not latin-1.
            LocalProtocolError: the connection cannot take a stream, or ``h2`` rejected the
                headers.
        """
        if not self.can_open():
            raise LocalProtocolError(f"{self!r} cannot take a new stream")
        with LOCAL_H2:
            block = [
                (b":method", method.encode("latin-1")),
                (b":scheme", self._scheme),
                (b":authority", self._authority),
                (b":path", path.encode("latin-1")),
            ]
            for name, value in headers:
                # As h2's outbound normalizing did: a token read from a file with its newline
                # still works (a value may not begin or end with whitespace, RFC 9113 §8.2.1).
                name, value = name.lower(), value.strip()
                if problem := _field_problem(name, value):
                    raise h2.exceptions.ProtocolError(problem)
                block.append((name.encode("latin-1"), value.encode("latin-1")))
            stream_id = self._h2.get_next_available_stream_id()
            self._h2.send_headers(stream_id, block, end_stream=end_stream)
        stream = H2Stream(self, stream_id)
        self._streams[stream_id] = stream
        if end_stream:
            stream._ended_with_headers()
        if stream_id + 2 > _LAST_STREAM_ID:
            self._transition(_Input.DRAIN)  # RFC 9113 §5.1.1: ids cannot be reused
            self._on_change(self)
        self._schedule_flush()
        return stream

    def close(self, make_error: Callable[[H2Stream], S2Error]) -> None:
        """Fail every stream with its ``make_error(stream)``, send GOAWAY and start closing."""
        if self._state is _C.CLOSED:
            return
        if self._state is not _C.CLOSING:
            self._transition(_Input.CLOSE)
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._h2.close_connection()
        self._fail_streams(make_error, discard=True)
        self._close_transport()

    def abort(self) -> None:
        """Drop the transport now (the streams fail when it is lost)."""
        if self._transport is not None and self._state is not _C.CLOSED:
            self._transport.abort()

    async def wait_closed(self, grace: float) -> None:
        """Wait until the transport is gone (aborting it after ``grace`` s) and the keepalive
        task has ended."""
        if not self._lost.done():
            try:
                async with asyncio.timeout(grace):
                    await asyncio.shield(self._lost)
            except TimeoutError:
                self.abort()
                await asyncio.shield(self._lost)
        task = self._keepalive
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(CONNECTION_WINDOW - _DEFAULT_WINDOW)
        self._flush()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._rbuf

    def buffer_updated(self, nbytes: int) -> None:
        # Reads land in one buffer of ours, so no read allocates: h2 copies what it keeps.
        self.data_received(self._rbuf[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        self._last_received = self._loop.time()
        if self._state is _C.CLOSING or self._state is _C.CLOSED:
            return  # h2 may already have sent GOAWAY, and every stream has failed
        handlers = self._handlers
        try:
            for item in self._filter.receive(data):
                if isinstance(item, GoAwayReceived):
                    self._on_goaway(item)
                    continue
                with REMOTE_H2:
                    events = self._h2.receive_data(item)
                for event in events:
                    handler = handlers.get(type(event))
                    if handler is not None:
                        handler(event)
        except RemoteProtocolError as error:
            self._break(error)
            return
        self._schedule_flush()

    def eof_received(self) -> bool | None:
        return None  # close the transport: HTTP/2 has no half-closed connections

    def connection_lost(self, exc: Exception | None) -> None:
        if self._state is _C.CLOSED:
            return
        closing = self._state is _C.CLOSING
        self._transition(_Input.LOST)
        if self._cause is None:
            self._cause = exc
        if exc is None:
            message = f"connection to {self.origin} closed" + ("" if closing else " by the server")
        else:
            message = f"connection to {self.origin} lost: {exc!r}"
        logger.debug("%s", message)
        self._fail_streams(
            lambda stream: chain(ConnectionLost(message, data_sent=stream.data_sent), exc)
        )
        self._wake_drain()
        for waiter in (self._ready, self._lost):
            if not waiter.done():
                waiter.set_result(None)
        if self._keepalive is not None:
            self._keepalive.cancel()
        self._on_change(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()

    # -- h2 events -------------------------------------------------------------------------

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        data = event.data
        credit = event.flow_controlled_length
        stream = self._streams.get(stream_id)
        if stream is None:
            self._credit(stream_id, credit)  # nobody will read it: give the credit back
            return
        if credit > len(data):
            self._credit(stream_id, credit - len(data))  # padding (RFC 9113 §6.1)
        if data:
            stream._on_data(data)

    def _on_window_updated(self, event: h2.events.WindowUpdated) -> None:
        if event.stream_id == 0:
            for stream in self._window_waiters:
                stream._wake_window()
        elif (one := self._streams.get(event.stream_id)) is not None:
            one._wake_window()

    def _on_response(self, event: h2.events.ResponseReceived) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        status: int | None = None
        headers: list[tuple[str, str]] = []
        for name, value in event.headers:
            if name == b":status":
                with contextlib.suppress(ValueError):
                    status = int(value)
            elif name[:1] != b":":
                headers.append((_text(name), _text(value)))
        if status is None:
            self._reset_stream(stream.stream_id, 0x1)  # PROTOCOL_ERROR
            stream._fail(RemoteProtocolError(f"stream {stream.stream_id}: bad :status"))
            return
        stream._on_headers(status, headers)

    def _on_trailers(self, event: h2.events.TrailersReceived) -> None:
        if (stream := self._streams.get(event.stream_id)) is not None:
            stream._on_trailers([(_text(n), _text(v)) for n, v in event.headers])

    def _on_stream_ended(self, event: h2.events.StreamEnded) -> None:
        if (stream := self._streams.get(event.stream_id)) is not None:
            stream._on_end()

    def _on_stream_reset(self, event: h2.events.StreamReset) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        code = int(event.error_code)
        if event.remote_reset:
            stream._fail(StreamReset(code))
        else:  # h2 reset it because the server broke the protocol on this stream
            stream._fail(RemoteProtocolError(f"stream {event.stream_id}: bad frames ({code:#x})"))

    def _on_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        self._max_streams = self._h2.remote_settings.max_concurrent_streams
        for stream in self._window_waiters:  # the initial window or frame size may have grown
            stream._wake_window()
        if self._state is _C.HANDSHAKE:
            self._transition(_Input.SETTINGS)
            if not self._ready.done():
                self._ready.set_result(None)
        self._on_change(self)

    def _on_ping_ack(self, event: h2.events.PingAckReceived) -> None:
        waiter = self._ping_waiter
        if waiter is not None and not waiter.done() and event.ping_data == self._ping_data:
            waiter.set_result(None)

    def _on_goaway(self, goaway: GoAwayReceived) -> None:
        if self._state is _C.CLOSING or self._state is _C.CLOSED:
            return
        logger.debug("%s: GOAWAY %s", self.origin, goaway)
        self._goaway = goaway
        self._transition(_Input.DRAIN)
        last = goaway.last_stream_id
        for stream_id, stream in list(self._streams.items()):
            if stream_id > last:
                # RFC 9113 §6.8: never processed. Reset it so h2 forgets it too.
                self._reset_stream(stream_id, _CANCEL)
                stream._fail(GoAway(goaway.error_code, last, processed=False))
        self._on_change(self)
        if not self._streams:
            self._close_transport()

    # -- used by H2Stream ------------------------------------------------------------------

    def _send_window(self, stream_id: int) -> int:
        window = self._h2.local_flow_control_window(stream_id)
        frame = self._h2.max_outbound_frame_size
        return window if window < frame else frame

    def _send_data(self, stream_id: int, data: bytes | memoryview, end: bool) -> None:
        with LOCAL_H2:
            self._h2.send_data(stream_id, data, end_stream=end)
        self._unflushed += len(data)
        if self._unflushed >= _FLUSH_BYTES:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _end_stream(self, stream_id: int) -> None:
        with LOCAL_H2:
            self._h2.end_stream(stream_id)
        self._schedule_flush()

    def _reset_stream(self, stream_id: int, error_code: int) -> None:
        """Queue RST_STREAM and write it now, with everything queued before it."""
        if self._state is _C.CLOSING or self._state is _C.CLOSED:
            return
        with contextlib.suppress(h2.exceptions.ProtocolError):  # already closed in h2
            self._h2.reset_stream(stream_id, error_code)
        self._flush()

    def _credit(self, stream_id: int, size: int) -> None:
        if size <= 0 or self._state is _C.CLOSING or self._state is _C.CLOSED:
            return
        with LOCAL_H2:
            self._h2.acknowledge_received_data(size, stream_id)
        self._schedule_flush()

    def _detach(self, stream: H2Stream) -> None:
        """Forget a finished stream: give back its unread credit, free its slot."""
        del self._streams[stream.stream_id]
        self._window_waiters.discard(stream)
        credit = stream._buffered + stream._unacked
        stream._buffered = stream._unacked = 0
        self._credit(stream.stream_id, credit)  # h2 has closed it: the connection window only
        if self._state is _C.DRAINING and not self._streams:
            self._close_transport()
        self._on_change(self)

    # -- internals -------------------------------------------------------------------------

    def _transition(self, event: _Input) -> None:
        new = _TRANSITIONS.get((self._state, event))
        if new is None:
            raise LocalProtocolError(f"connection: {event.value} while {self._state.value}")
        self._state = new

    def _fail_streams(
        self, make_error: Callable[[H2Stream], S2Error], *, discard: bool = False
    ) -> None:
        for stream in list(self._streams.values()):
            stream._fail(make_error(stream), discard=discard)

    def _break(self, error: RemoteProtocolError) -> None:
        """The server broke HTTP/2: fail everything, send h2's GOAWAY and close."""
        logger.debug("%s: %s", self.origin, error)
        self._cause = error
        if self._state is not _C.CLOSED:
            self._transition(_Input.CLOSE)
        # h2 has queued GOAWAY itself when it found the error; when our GOAWAY filter did,
        # say so now (RFC 9113 §5.4.1). Either way h2 is closed afterwards.
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.close_connection(error_code=h2.errors.ErrorCodes.PROTOCOL_ERROR)
        self._fail_streams(lambda _: chain(RemoteProtocolError(str(error)), error.__cause__))
        self._close_transport()

    def _die(self, message: str) -> None:
        """The server stopped answering: fail everything and drop the transport."""
        logger.debug("%s: %s", self.origin, message)
        if self._state is not _C.CLOSED:
            self._transition(_Input.CLOSE)
        self._fail_streams(lambda stream: ConnectionLost(message, data_sent=stream.data_sent))
        self.abort()

    def _close_transport(self) -> None:
        if self._state is not _C.CLOSED:
            self._transition(_Input.CLOSE)
        self._flush()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()
        if not self._ready.done():
            self._ready.set_result(None)
        self._on_change(self)

    def _wake_drain(self) -> None:
        waiters = self._drain_waiters
        self._drain_waiters = []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._unflushed = 0
        data = self._h2.data_to_send()
        transport = self._transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)

    async def _keepalive_loop(self, interval: float, *, ack_timeout: float) -> None:
        loop = self._loop
        while self._state is _C.OPEN or self._state is _C.DRAINING:
            idle = loop.time() - self._last_received
            if idle < interval:
                await asyncio.sleep(interval - idle)
                continue
            self._ping_data = next(self._ping_ids).to_bytes(8, "big")
            waiter = self._ping_waiter = loop.create_future()
            with LOCAL_H2:
                self._h2.ping(self._ping_data)
            self._flush()
            try:
                async with asyncio.timeout(ack_timeout):
                    await waiter
            except TimeoutError:
                self._die(f"keepalive PING to {self.origin} not answered within {ack_timeout} s")
                return
            finally:
                self._ping_waiter = None
