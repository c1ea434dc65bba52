"""The HTTP/1.1 server connection, driving ``h11``.

Theory of operation
-------------------
One exchange at a time: ``h11`` parses the request head and body into events, the body is fed
to the current ``Request``, and the handler's writes are framed by ``h11`` (chunked unless the
handler gave a ``content-length``). Request and response bodies flow at the same time, so a
chunked upload can be answered chunk by chunk (full duplex).

Reading is paused, never buffered without bound, when

* the application has more than ``_HIGH_WATER`` body bytes unread (resumed below
  ``_LOW_WATER``), or
* ``h11`` says PAUSED: the client pipelined its next request before we finished this response.

When a response is complete *and its handler has returned* (it may still be waiting for the
client to read the response: one request in flight per connection, so a client that
pipelines without reading costs one handler, not one per request), the connection either
starts the next keep-alive cycle (the request body must be complete too; a body the handler
left unread is read and dropped once the handler returns) or closes, if ``h11`` says it must
(``Connection: close``, HTTP/1.0) or the server is draining.

A request carrying both ``Content-Length`` and ``Transfer-Encoding`` is answered 400 and the
connection closed (RFC 9112 §6.3: the framing is ambiguous, a request-smuggling vector).
"""

from __future__ import annotations

import http
import logging
from typing import TYPE_CHECKING

import h11

from s2kit.server._front._conn import BaseConnection
from s2kit.server._front._exchange import Request, Responder

if TYPE_CHECKING:
    from s2kit.server._front._exchange import Handler
    from s2kit.server._front._limits import Limits

__all__ = ["H1Connection"]

logger = logging.getLogger("s2kit.server")

MAX_HEAD_BYTES = 64 << 10
_HIGH_WATER = 256 << 10
_LOW_WATER = 64 << 10


def _split_target(target: str) -> tuple[str, str]:
    if not target.startswith("/") and "://" in target:
        # absolute-form (RFC 9112 §3.2.2): keep only the path and query.
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        target = rest[slash:] if slash >= 0 else "/"
    path, _, query = target.partition("?")
    return path, query


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


class _H1Exchange:
    """One request/response cycle: the body source and response sink of the current request."""

    __slots__ = ("conn", "head_only", "request", "responder", "response_done", "task_done")

    def __init__(self, conn: H1Connection, event: h11.Request) -> None:
        self.conn = conn
        self.head_only = event.method == b"HEAD"
        self.response_done = False
        self.task_done = False
        headers = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers
        ]
        path, query = _split_target(event.target.decode("latin-1"))
        self.request = Request(
            method=event.method.decode("latin-1"),
            path=path,
            query=query,
            authority=next((value for name, value in headers if name == "host"), None),
            headers=headers,
            http_version=event.http_version.decode("latin-1"),
            scheme="https" if conn._tls else "http",
            source=self,
        )
        self.responder = Responder(self)

    def consumed(self, size: int) -> None:
        if self.request.buffered < _LOW_WATER and self is self.conn._current:
            self.conn._resume_reading()

    def wanted(self) -> None:
        self.conn._send_continue(self)

    def head(self, status: int, headers: list[tuple[str, str]], *, end: bool) -> None:
        self.conn._send_head(self, status, headers, end=end)

    async def body(self, data: bytes, *, end: bool) -> None:
        await self.conn._send_body(self, data, end=end)

    def abort(self) -> None:
        # HTTP/1.1 has no way to fail one response but to drop the connection under it.
        self.responder._disconnect()
        self.conn._close()


class H1Connection(BaseConnection):
    """An HTTP/1.1 server connection driving an ``h11.Connection``."""

    def __init__(self, handler: Handler, *, tls: bool, limits: Limits | None = None) -> None:
        super().__init__(handler, tls=tls, limits=limits)
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._first_cycle = True
        self._head_since: float | None = None  # the first byte of the next request head
        self._current: _H1Exchange | None = None
        self._discarding = False
        self._reading_paused = False
        self._draining = False
        self._in_process = False

    def data_received(self, data: bytes) -> None:
        if self._current is None and self._head_since is None:
            self._head_since = self._loop.time()
        self._h11.receive_data(data)
        self._process()

    def _sweep(self, now: float) -> None:
        limits = self._limits
        current = self._current
        if current is None:
            started = self._since if self._first_cycle else self._head_since
            if started is not None and now - started > limits.header_timeout:
                logger.info("no request head within %.0f s: closing", limits.header_timeout)
                self._refuse(408)
            elif started is None and now - self._since > limits.idle_timeout:
                self._close()
            return
        waiting = current.request.waiting_since
        if waiting is not None and now - waiting > limits.body_timeout:
            logger.info("request body stalled for %.0f s: closing", now - waiting)
            if current.responder.started:
                self._close()
            else:
                current.responder._disconnect()  # the handler's answer must not follow ours
                self._refuse(408)

    def eof_received(self) -> bool:
        # HTTP/1.1 frames its requests, so a FIN means the client is gone, not a half-close
        # to honour; closing cancels a handler parked on, say, a long poll.
        return False

    def begin_shutdown(self) -> None:
        self._draining = True
        current = self._current
        if current is None or (current.response_done and current.task_done):
            self._close()

    def _on_lost(self) -> None:
        if self._current is not None:
            self._current.request._fail()
            self._current.responder._disconnect()

    # -- inbound ---------------------------------------------------------------------------

    def _process(self) -> None:
        # Not re-entrant: _next_cycle, reached from inside this loop, must not call it again.
        if self._in_process:
            return
        self._in_process = True
        try:
            self._process_events()
        finally:
            self._in_process = False

    def _process_events(self) -> None:
        while not self._closing:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._protocol_error(exc)
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:
                self._pause_reading()
                return
            if isinstance(event, h11.Data):
                if self._current is not None and not self._discarding:
                    self._current.request._feed(bytes(event.data))
                    if self._current.request.buffered > _HIGH_WATER:
                        self._pause_reading()
            elif isinstance(event, h11.Request):
                self._start(event)
            elif isinstance(event, h11.EndOfMessage):
                if self._current is not None:
                    self._current.request._finish()
                    self._maybe_finish(self._current)
            elif isinstance(event, h11.ConnectionClosed):
                if self._current is None:
                    self._close()
                return

    def _start(self, event: h11.Request) -> None:
        self._head_since = None
        names = {name for name, _ in event.headers}
        if b"content-length" in names and b"transfer-encoding" in names:
            self._refuse(400)
            return
        exchange = _H1Exchange(self, event)
        self._current = exchange
        self._discarding = False
        self._spawn(exchange.request, exchange.responder, lambda: self._task_done(exchange))

    def _protocol_error(self, exc: h11.RemoteProtocolError) -> None:
        logger.debug("HTTP/1.1 protocol error from client: %s", exc)
        if self._current is None and self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self._refuse(exc.error_status_hint)
            return
        if self._current is not None:
            self._current.request._fail()
        self._close()

    def _refuse(self, status: int) -> None:
        """Answer ``status`` with no body, and close."""
        response = h11.Response(
            status_code=status,
            headers=[(b"content-length", b"0"), (b"connection", b"close")],
            reason=_reason(status),
        )
        try:
            self._write(self._h11.send(response) or b"")
        except h11.LocalProtocolError:
            pass
        self._close()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if not self._reading_paused or self._transport is None or self._closing:
            return
        if self._h11.their_state is h11.DONE and self._h11.trailing_data[0]:
            return  # a pipelined request waits its turn; reading on would only buffer more
        self._reading_paused = False
        self._transport.resume_reading()

    # -- outbound --------------------------------------------------------------------------

    def _send_head(
        self, exchange: _H1Exchange, status: int, headers: list[tuple[str, str]], *, end: bool
    ) -> None:
        self._check(exchange.responder)
        try:
            raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
            if self._draining:
                raw.append((b"connection", b"close"))
            response = h11.Response(status_code=status, headers=raw, reason=_reason(status))
            out = self._h11.send(response) or b""
            if end:
                out += self._h11.send(h11.EndOfMessage()) or b""
        except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
            # serve_exchange aborts the exchange (and so the connection) when this reaches it.
            raise ValueError(f"cannot send response head: {exc}") from exc
        self._write(out)
        if end:
            exchange.response_done = True
            self._maybe_finish(exchange)

    async def _send_body(self, exchange: _H1Exchange, data: bytes, *, end: bool) -> None:
        self._check(exchange.responder)
        parts: list[bytes] = []
        try:
            if data and not exchange.head_only:
                parts.extend(self._h11.send_with_data_passthrough(h11.Data(data=data)) or ())
            if end:
                parts.append(self._h11.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError as exc:
            raise ValueError(f"cannot send response body: {exc}") from exc
        transport = self._transport
        if parts and transport is not None and not transport.is_closing():
            # One writelines, so a chunk's size line, data and CRLF leave in one send().
            transport.writelines(parts)
        if end:
            exchange.response_done = True
            self._maybe_finish(exchange)
        await self._drain()

    def _send_continue(self, exchange: _H1Exchange) -> None:
        if exchange is self._current and self._h11.they_are_waiting_for_100_continue:
            continue_ = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
            self._write(self._h11.send(continue_) or b"")

    # -- end of an exchange ----------------------------------------------------------------

    def _task_done(self, exchange: _H1Exchange) -> None:
        exchange.task_done = True
        self._maybe_finish(exchange)

    def _maybe_finish(self, exchange: _H1Exchange) -> None:
        """Decide what follows this exchange: wait, read on, next cycle, or close."""
        if exchange is not self._current or self._closing:
            return
        if not exchange.response_done:
            if exchange.task_done:
                # The handler is gone and the response can never be completed: drop the
                # connection with whatever of it is still buffered for a client that is not
                # reading (a graceful close would keep that until the client read it all).
                self.abort()
            return
        ours, theirs = self._h11.our_state, self._h11.their_state
        keep_alive = ours is h11.DONE and not self._draining
        if theirs is h11.SEND_BODY:
            if exchange.task_done:
                if not keep_alive:
                    self._close()
                    return
                # Nobody will read the rest of this body: drop it as it comes, then carry on.
                self._discarding = True
                exchange.request._discard()
                self._resume_reading()
            return
        if not exchange.task_done:
            return  # the handler may still be draining the response to a slow reader
        if keep_alive and theirs is h11.DONE:
            self._next_cycle()
        else:
            self._close()

    def _next_cycle(self) -> None:
        try:
            self._h11.start_next_cycle()
        except h11.LocalProtocolError:
            self._close()
            return
        self._current = None
        self._discarding = False
        self._first_cycle = False
        self._since = self._loop.time()
        self._head_since = self._since if self._h11.trailing_data[0] else None
        self._resume_reading()
        self._process()  # a pipelined request may already be buffered
