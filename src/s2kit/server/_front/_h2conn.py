"""The HTTP/2 server connection (h2c with prior knowledge, or TLS with ALPN ``h2``).

Theory of operation
-------------------
``h2`` is the sans-IO state machine; this protocol is its driver. Bytes from the transport go
into ``receive_data``; the events it returns are applied in order, and whatever ``h2`` queued
(SETTINGS ACKs, PING ACKs, WINDOW_UPDATEs, responses) is written once per received chunk.
Writes made by handler tasks are coalesced the same way: they schedule one flush on the next
loop iteration (or flush at once past ``_FLUSH_BYTES``, so transport backpressure is felt).

Flow control (RFC 9113 §5.2) runs both ways:

* inbound, each DATA frame's credit is given back only when the application reads the chunk
  (padding is credited at once), so a handler that does not read stops its client after one
  stream window (1 MiB) and never makes us buffer more;
* outbound, ``_send_body`` splits data to the peer's window and frame size and waits on a
  per-stream future that WINDOW_UPDATE and SETTINGS wake.

Abuse (the HTTP/2 attacks of CVE-2023-44487 and the CONTINUATION flood): a client that resets
streams faster than ``RESET_RATE`` per second over a burst of ``RESET_BURST`` gets GOAWAY
(ENHANCE_YOUR_CALM) and loses the connection, so a rapid-reset flood costs lite a bounded
amount of work before it stops; a header block is refused as soon as its fragments pass the
advertised header-list limit; a stream above the advertised concurrency limit is refused
with REFUSED_STREAM (``s2kit/_h2fast.py``).

Graceful shutdown writes GOAWAY itself instead of calling ``close_connection``: ``h2`` moves
to its CLOSED state on *any* GOAWAY and would refuse the DATA of the streams we promised to
finish (python-hyper/h2#1181). Streams the client opens above the promised id are refused
with REFUSED_STREAM, and the transport is closed when the last handler is done.
A GOAWAY *from* the client closes the connection for the same reason.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from s2kit._h2fast import CONNECTION_SPECIFIC, LeanFrameBuffer, new_connection
from s2kit.server._front._conn import BaseConnection
from s2kit.server._front._exchange import ClientDisconnected, Request, Responder

if TYPE_CHECKING:
    from s2kit.server._front._exchange import Handler
    from s2kit.server._front._limits import Limits

__all__ = ["H2Connection"]

logger = logging.getLogger("s2kit.server")

STREAM_WINDOW = 1 << 20
CONNECTION_WINDOW = 16 << 20
MAX_FRAME_SIZE = 1 << 20
MAX_CONCURRENT_STREAMS = 1000
MAX_HEADER_LIST_SIZE = 64 << 10
_DEFAULT_WINDOW = 65_535
_FLUSH_BYTES = 256 << 10
_EMPTY_BUFFER = LeanFrameBuffer(server=True)
RESET_BURST = 1000
"""Client resets a connection may make at once..."""
RESET_RATE = 100.0
"""...and per second after that: far above what any SDK does (a reset per failed attempt,
cancelled call or abandoned session), far below a rapid-reset flood (tens of thousands)."""


def _b(value: bytes | str) -> bytes:
    # header_encoding=None makes h2 hand us bytes; the str branch only satisfies its types.
    return value if isinstance(value, bytes) else value.encode("latin-1")


class _H2Exchange:
    """One stream: the body source and response sink behind a Request/Responder pair."""

    __slots__ = (
        "conn",
        "continue_sent",
        "head_only",
        "request",
        "responder",
        "stream_id",
        "streaming",
        "task",
        "window_waiter",
    )

    def __init__(self, conn: H2Connection, stream_id: int, headers: list[tuple[bytes, bytes]]):
        self.conn = conn
        self.stream_id = stream_id
        self.window_waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.continue_sent = False
        pseudo: dict[bytes, bytes] = {}
        regular: list[tuple[str, str]] = []
        for name, value in headers:
            if name.startswith(b":"):
                pseudo[name] = value
            else:
                regular.append((name.decode("latin-1"), value.decode("latin-1")))
        path, _, query = pseudo.get(b":path", b"").decode("latin-1").partition("?")
        authority = pseudo.get(b":authority")
        self.request = Request(
            method=pseudo.get(b":method", b"").decode("latin-1"),
            path=path,
            query=query,
            authority=authority.decode("latin-1") if authority is not None else None,
            headers=regular,
            http_version="2",
            scheme="https" if conn._tls else "http",
            source=self,
        )
        self.responder = Responder(self)
        self.head_only = self.request.method == "HEAD"
        # An S2S append session may sit idle between inputs: no body deadline for it.
        self.streaming = (self.request.header("content-type") or "").startswith("s2s/")

    def consumed(self, size: int) -> None:
        self.conn._credit(self.stream_id, size)

    def wanted(self) -> None:
        # RFC 9110 §10.1.1: answer 100-continue only once the body is actually wanted.
        if not self.continue_sent and not self.responder.started:
            self.continue_sent = True
            if self.request.header("expect") == "100-continue":
                self.conn._send_continue(self.stream_id)

    def head(self, status: int, headers: list[tuple[str, str]], *, end: bool) -> None:
        self.conn._send_head(self, status, headers, end=end)

    async def body(self, data: bytes, *, end: bool) -> None:
        await self.conn._send_body(self, data, end=end)

    def abort(self) -> None:
        # From here on the stream is as gone for us as for a client that reset it.
        self.responder._disconnect()
        self.conn._reset(self.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)

    def disconnect(self) -> None:
        self.request._fail()
        self.responder._disconnect()
        self.wake()

    def wake(self) -> None:
        if self.window_waiter is not None and not self.window_waiter.done():
            self.window_waiter.set_result(None)


class H2Connection(BaseConnection):
    """An HTTP/2 server connection driving an ``h2.connection.H2Connection``."""

    def __init__(self, handler: Handler, *, tls: bool, limits: Limits | None = None) -> None:
        super().__init__(handler, tls=tls, limits=limits)
        self._block_since: float | None = None  # a header block incomplete since
        self._h2 = new_connection(client_side=False, max_header_block=MAX_HEADER_LIST_SIZE)
        self._streams: dict[int, _H2Exchange] = {}
        self._reset_tokens = float(RESET_BURST)
        self._reset_stamp = self._loop.time()
        self._flush_scheduled = False
        self._unflushed = 0
        self._goaway_last_id: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._h2.initiate_connection()
        # Raised through a second SETTINGS rather than a pre-built Settings object so that h2
        # applies the new frame size and windows to itself when the client ACKs them.
        self._h2.update_settings(
            {
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: MAX_FRAME_SIZE,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
            }
        )
        self._h2.increment_flow_control_window(CONNECTION_WINDOW - _DEFAULT_WINDOW)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # h2 has already queued GOAWAY with the right error code.
            if isinstance(exc, h2.exceptions.DenialOfServiceError):
                logger.info("HTTP/2 client refused: %s", exc)
            else:
                logger.debug("HTTP/2 protocol error from client: %s", exc)
            self._flush()
            self._close()
            return
        except Exception:
            logger.exception("unexpected error decoding HTTP/2 input; dropping the connection")
            self.abort()
            return
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                self._on_data(event)
            elif isinstance(event, h2.events.RequestReceived):
                self._on_request(event)
            elif isinstance(event, h2.events.StreamEnded):
                if (exchange := self._streams.get(event.stream_id)) is not None:
                    exchange.request._finish()
            elif isinstance(event, h2.events.WindowUpdated):
                self._on_window_updated(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                if not self._spend_reset():
                    return
                self._on_reset(event.stream_id)
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                self._on_window_updated(0)
            elif isinstance(event, h2.events.ConnectionTerminated):
                logger.debug("client sent GOAWAY (%s)", event.error_code)
                self._close()
        self._flush()

    def begin_shutdown(self) -> None:
        if self._goaway_last_id is not None or self._lost:
            return
        self._goaway_last_id = self._h2.highest_inbound_stream_id
        self._flush()
        goaway = GoAwayFrame(0, last_stream_id=self._goaway_last_id, error_code=0)
        self._write(goaway.serialize())
        if not self._streams:
            self._close()

    def _on_lost(self) -> None:
        for exchange in self._streams.values():
            exchange.disconnect()
        # A connection is a web of references (h2 state, exchanges, transport): garbage only
        # the cyclic collector frees, and lite runs it rarely. Drop the large buffers now,
        # by reference counting, so churned connections hold no megabytes meanwhile.
        self._h2.incoming_buffer = _EMPTY_BUFFER
        self._h2.clear_outbound_data_buffer()

    def _sweep(self, now: float) -> None:
        limits = self._limits
        if self._h2.incoming_buffer._headers_buffer:  # HEADERS seen, its END_HEADERS not yet
            if self._block_since is None:
                self._block_since = now
            elif now - self._block_since > limits.header_timeout:
                logger.info("header block incomplete for %.0f s: closing", now - self._block_since)
                self.abort()
                return
        else:
            self._block_since = None
        if not self._streams:
            if now - self._since > limits.idle_timeout:
                self.begin_shutdown()
            return
        for exchange in list(self._streams.values()):
            waiting = exchange.request.waiting_since
            if waiting is None or exchange.streaming or now - waiting <= limits.body_timeout:
                continue
            logger.info("request body stalled for %.0f s: stream reset", now - waiting)
            self._reset(exchange.stream_id, h2.errors.ErrorCodes.CANCEL)
            exchange.disconnect()
            if exchange.task is not None:
                exchange.task.cancel()

    # -- inbound ---------------------------------------------------------------------------

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        if self._goaway_last_id is not None and stream_id > self._goaway_last_id:
            self._reset(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        exchange = _H2Exchange(self, stream_id, [(_b(n), _b(v)) for n, v in event.headers])
        self._streams[stream_id] = exchange
        exchange.task = self._spawn(
            exchange.request, exchange.responder, lambda: self._finished(exchange)
        )

    def _on_data(self, event: h2.events.DataReceived) -> None:
        data = event.data or b""
        credit = event.flow_controlled_length or 0
        exchange = self._streams.get(event.stream_id)
        if exchange is None:
            # Nobody will read it (the handler is gone): hand the credit straight back.
            self._credit(event.stream_id, credit)
            return
        if credit > len(data):
            self._credit(event.stream_id, credit - len(data))  # padding (RFC 9113 §6.1)
        if data:
            exchange.request._feed(data)

    def _spend_reset(self) -> bool:
        """Count a client reset; past the budget, GOAWAY(ENHANCE_YOUR_CALM) and close."""
        now = self._loop.time()
        tokens = self._reset_tokens + (now - self._reset_stamp) * RESET_RATE
        self._reset_tokens = min(float(RESET_BURST), tokens) - 1.0
        self._reset_stamp = now
        if self._reset_tokens >= 0:
            return True
        logger.info("HTTP/2 client resets streams too fast: GOAWAY (ENHANCE_YOUR_CALM)")
        self._h2.close_connection(error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        self._flush()
        self._close()  # the GOAWAY goes out first; losing the transport cancels the handlers
        return False

    def _on_reset(self, stream_id: int) -> None:
        exchange = self._streams.get(stream_id)
        if exchange is None:
            return
        exchange.disconnect()
        self._credit(stream_id, exchange.request._discard())
        if exchange.task is not None:
            exchange.task.cancel()

    def _on_window_updated(self, stream_id: int) -> None:
        if stream_id == 0:
            for exchange in self._streams.values():
                exchange.wake()
        elif (one := self._streams.get(stream_id)) is not None:
            one.wake()

    # -- outbound --------------------------------------------------------------------------

    def _send_head(
        self, exchange: _H2Exchange, status: int, headers: list[tuple[str, str]], *, end: bool
    ) -> None:
        self._check(exchange.responder)
        block = [(b":status", str(status).encode("ascii"))]
        for name, value in headers:
            name = name.lower()
            # Dropped rather than failing the response for a field HTTP/1.1 allows.
            if name not in CONNECTION_SPECIFIC:
                block.append((name.encode("latin-1"), value.encode("latin-1")))
        try:
            self._h2.send_headers(exchange.stream_id, block, end_stream=end)
        except h2.exceptions.StreamClosedError as exc:
            raise ClientDisconnected("the stream is closed") from exc
        except (h2.exceptions.ProtocolError, UnicodeEncodeError) as exc:
            # serve_exchange aborts the stream when this reaches it.
            raise ValueError(f"cannot send response head: {exc}") from exc
        self._schedule_flush()

    async def _send_body(self, exchange: _H2Exchange, data: bytes, *, end: bool) -> None:
        stream_id = exchange.stream_id
        # RFC 9110 §9.3.2: a response to HEAD has no content, whatever the handler sends.
        view = memoryview(b"" if exchange.head_only else data)
        offset = 0
        while True:
            self._check(exchange.responder)
            if self._write_paused:
                await self._drain()
                continue
            remaining = len(view) - offset
            try:
                window = self._h2.local_flow_control_window(stream_id) if remaining else 0
                size = min(remaining, window, self._h2.max_outbound_frame_size)
                if size <= 0 and remaining:
                    exchange.window_waiter = self._loop.create_future()
                    try:
                        await exchange.window_waiter
                    finally:
                        exchange.window_waiter = None
                    continue
                last = end and size == remaining
                if size and size == len(view) and type(data) is bytes:  # h2 copies views, not bytes
                    self._h2.send_data(stream_id, data, end_stream=last)
                elif size or last:
                    self._h2.send_data(stream_id, view[offset : offset + size], end_stream=last)
            except h2.exceptions.ProtocolError as exc:
                # Reset by the peer, or the whole connection is being torn down.
                raise ClientDisconnected("the stream is closed") from exc
            offset += size
            self._unflushed += size
            if self._unflushed >= _FLUSH_BYTES:
                self._flush()
            else:
                self._schedule_flush()
            if offset == len(view):
                return

    def _send_continue(self, stream_id: int) -> None:
        try:
            self._h2.send_headers(stream_id, [(b":status", b"100")])
        except h2.exceptions.ProtocolError:
            return
        self._schedule_flush()

    def _credit(self, stream_id: int, size: int) -> None:
        if size <= 0 or self._lost:
            return
        try:
            self._h2.acknowledge_received_data(size, stream_id)
        except h2.exceptions.ProtocolError:
            return
        self._schedule_flush()

    def _reset(self, stream_id: int, code: h2.errors.ErrorCodes) -> None:
        try:
            self._h2.reset_stream(stream_id, code)
        except h2.exceptions.ProtocolError:
            return  # already closed both ways: nothing left to stop
        self._schedule_flush()

    def _finished(self, exchange: _H2Exchange) -> None:
        """Run when the stream's handler task is done, however it ended."""
        try:
            self._finish(exchange)
        finally:
            # The exchange and its request and responder refer to each other, and its task's
            # frames to all three: cyclic garbage, which lite collects rarely. Cut the cycles
            # so each stream is freed as it ends (a flood of streams otherwise piles up).
            exchange.task = None
            del exchange.request, exchange.responder

    def _finish(self, exchange: _H2Exchange) -> None:
        stream_id = exchange.stream_id
        self._streams.pop(stream_id, None)
        if not self._streams:
            self._since = self._loop.time()  # idle from now
        exchange.wake()
        if self._lost:
            return
        if not exchange.responder.disconnected:
            if not exchange.responder.ended:
                self._reset(stream_id, h2.errors.ErrorCodes.CANCEL)
            elif not exchange.request.body_complete:
                # RFC 9113 §8.1: the response is complete, so ask the client to stop sending.
                self._reset(stream_id, h2.errors.ErrorCodes.NO_ERROR)
        # After any reset, so only the connection window gets the unread bytes back.
        self._credit(stream_id, exchange.request._discard())
        if self._goaway_last_id is not None and not self._streams:
            self._flush()
            self._close()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._unflushed = 0
        data = self._h2.data_to_send()
        if data:
            self._write(data)
