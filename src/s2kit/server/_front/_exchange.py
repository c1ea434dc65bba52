"""One HTTP exchange as the application sees it: ``Request``, ``Responder`` and ``Handler``.

Theory of operation
-------------------
The HTTP/1.1 and HTTP/2 connections both turn a request into a ``Request`` (read side) and a
``Responder`` (write side) and run the application's ``Handler`` on them in a task owned by the
connection. The two halves talk to the connection through two small protocols:

* ``BodySource``: the request body is pushed into the ``Request`` by the connection
  (``_feed``/``_finish``/``_fail``); when the application takes a chunk out, the ``Request``
  reports how many bytes it consumed. HTTP/2 turns that into WINDOW_UPDATE credit and HTTP/1.1
  into ``resume_reading``, so a handler that stops reading stops the peer instead of making us
  buffer without bound.
* ``ResponseSink``: the ``Responder`` checks the call order (start, send*, end) and hands the
  validated calls to the connection, which frames them and waits for flow control.

``serve_exchange`` is the wrapper every handler task runs: it turns a handler that crashed or
forgot to finish into a well-formed response, so one bad handler never breaks its connection.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = [
    "BodySource",
    "BodyTooLarge",
    "ClientDisconnected",
    "Handler",
    "Request",
    "Responder",
    "ResponseSink",
    "serve_exchange",
]

logger = logging.getLogger("s2kit.server")


class ClientDisconnected(Exception):
    """The peer reset the stream or the connection died, so the exchange cannot go on."""


class BodyTooLarge(Exception):
    """The request body is longer than the limit given to ``Request.read_all``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds {limit} bytes")
        self.limit = limit
        """The limit that was exceeded, in bytes."""


class BodySource(Protocol):
    """What a ``Request`` needs from its connection."""

    def consumed(self, size: int) -> None:
        """The application took ``size`` body bytes out of the buffer."""

    def wanted(self) -> None:
        """The application is waiting for body bytes that have not arrived yet."""


class ResponseSink(Protocol):
    """What a ``Responder`` needs from its connection."""

    def head(self, status: int, headers: list[tuple[str, str]], *, end: bool) -> None:
        """Queue the response head (and the end of the response if ``end``)."""

    async def body(self, data: bytes, *, end: bool) -> None:
        """Send body bytes, waiting for flow control, then end the response if ``end``."""

    def abort(self) -> None:
        """Abandon a started response so the peer sees it fail, not finish."""


class Request:
    """The read side of an exchange: the request head and its streamed body.

    Only one task may read the body at a time.
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_eof",
        "_failed",
        "_source",
        "_waited",
        "_waiter",
        "authority",
        "headers",
        "http_version",
        "method",
        "path",
        "query",
        "scheme",
    )

    def __init__(
        self,
        *,
        method: str,
        path: str,
        query: str,
        authority: str | None,
        headers: list[tuple[str, str]],
        http_version: str,
        scheme: str,
        source: BodySource,
    ) -> None:
        self.method = method
        """The request method, e.g. ``"GET"``."""
        self.path = path
        """The raw path, still percent-encoded, without the query."""
        self.query = query
        """The raw query string without ``?``; ``""`` if there is none."""
        self.authority = authority
        """``:authority`` (HTTP/2) or ``Host`` (HTTP/1.1), if the client sent one."""
        self.headers = headers
        """Lowercase names and latin-1 values, every occurrence in order, no pseudo-headers."""
        self.http_version = http_version
        """``"2"``, ``"1.1"``, or ``"1.0"`` for the rare HTTP/1.0 client."""
        self.scheme = scheme
        """``"https"`` when the connection is TLS, else ``"http"``."""
        self._source = source
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._eof = False
        self._failed = False
        self._waiter: asyncio.Future[None] | None = None
        self._waited = 0.0

    def header(self, name: str) -> str | None:
        """Return the first value of header ``name`` (any case), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        """Return every value of header ``name`` (any case), in order."""
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    async def read_chunk(self) -> bytes | None:
        """Return the next body chunk, or None once the whole body has been read.

        Raises:
            ClientDisconnected: the stream was reset or the connection died.
        """
        while not self._chunks:
            if self._failed:
                raise ClientDisconnected("the client went away before the body ended")
            if self._eof:
                return None
            self._source.wanted()
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            self._waited = loop.time()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._failed:
            raise ClientDisconnected("the client went away before the body ended")
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        self._source.consumed(len(chunk))
        return chunk

    async def read_all(self, limit: int) -> bytes:
        """Read the rest of the body into memory.

        Args:
            limit: the largest body accepted, in bytes.

        Raises:
            BodyTooLarge: the body (or its declared ``content-length``) exceeds ``limit``.
            ClientDisconnected: the stream was reset or the connection died.
        """
        declared = self.header("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(limit)
        body = bytearray()
        while (chunk := await self.read_chunk()) is not None:
            body += chunk
            if len(body) > limit:
                raise BodyTooLarge(limit)
        return bytes(body)

    @property
    def body_complete(self) -> bool:
        """Whether the peer has sent the whole body (it may not all be read yet)."""
        return self._eof

    @property
    def waiting_since(self) -> float | None:
        """Since when (loop time) the application waits for body bytes; None if it does not."""
        return self._waited if self._waiter is not None else None

    @property
    def buffered(self) -> int:
        """Body bytes received but not yet read by the application."""
        return self._buffered

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self._wake()

    def _finish(self) -> None:
        self._eof = True
        self._wake()

    def _fail(self) -> None:
        self._failed = True
        self._wake()

    def _discard(self) -> int:
        """Drop the unread body and return how many bytes were dropped."""
        dropped = self._buffered
        self._chunks.clear()
        self._buffered = 0
        return dropped

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Responder:
    """The write side of an exchange: ``start``, any number of ``send``, then ``end``.

    ``respond`` does all three at once with a ``content-length``. Only one task may write at a
    time; a response to HEAD keeps its headers but drops whatever body is sent.
    """

    __slots__ = ("_disconnected", "_ended", "_sink", "_started")

    def __init__(self, sink: ResponseSink) -> None:
        self._sink = sink
        self._started = False
        self._ended = False
        self._disconnected = False

    @property
    def started(self) -> bool:
        """Whether the response head has been sent."""
        return self._started

    @property
    def ended(self) -> bool:
        """Whether the end of the response has been sent."""
        return self._ended

    @property
    def disconnected(self) -> bool:
        """Whether the peer reset the stream or the connection died."""
        return self._disconnected

    async def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        """Send the response head now, before any of the request body need be read.

        Without a ``content-length`` header, HTTP/1.1 responses are chunked.

        Raises:
            ClientDisconnected: the stream was reset or the connection died.
            RuntimeError: the response was already started.
            ValueError: the status or a header cannot be sent (the exchange is aborted).
        """
        self._check(started=False)
        self._started = True
        self._sink.head(status, headers, end=False)

    async def send(self, data: bytes) -> None:
        """Send body bytes, waiting for flow-control credit and transport drain.

        Raises:
            ClientDisconnected: the stream was reset or the connection died.
            RuntimeError: the response was not started, or already ended.
        """
        self._check(started=True)
        if data:
            await self._sink.body(data, end=False)

    async def end(self, data: bytes = b"") -> None:
        """Send the last body bytes (if any) and end the response.

        Raises:
            ClientDisconnected: the stream was reset or the connection died.
            RuntimeError: the response was not started, or already ended.
        """
        self._check(started=True)
        self._ended = True
        await self._sink.body(data, end=True)

    async def respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Send a whole response at once, adding ``content-length``.

        Raises:
            ClientDisconnected: the stream was reset or the connection died.
            RuntimeError: the response was already started.
            ValueError: the status or a header cannot be sent (the exchange is aborted).
        """
        self._check(started=False)
        if not any(name.lower() == "content-length" for name, _ in headers):
            headers = [*headers, ("content-length", str(len(body)))]
        self._started = True
        self._ended = True
        self._sink.head(status, headers, end=not body)
        if body:
            await self._sink.body(body, end=True)

    def abort(self) -> None:
        """Abandon the response so the peer sees it fail (a reset stream, a closed connection)
        rather than end; nothing happens once it has ended. Lite aborts the sessions of a
        revoked access token this way (``_tokens_gate.py``)."""
        if not self._ended:
            self._abort()

    def _check(self, *, started: bool) -> None:
        if self._disconnected:
            raise ClientDisconnected("the client went away")
        if self._started != started:
            raise RuntimeError("response already started" if self._started else "start() first")
        if self._ended:
            raise RuntimeError("response already ended")

    def _disconnect(self) -> None:
        self._disconnected = True

    def _abort(self) -> None:
        self._ended = True
        self._sink.abort()


Handler = Callable[[Request, Responder], Awaitable[None]]
"""The application: called once per request, in its own task."""


async def serve_exchange(handler: Handler, request: Request, responder: Responder) -> None:
    """Run ``handler`` and make sure the exchange ends well-formed.

    A handler that raises before starting gets an empty 500; one that raises mid-response has
    its response aborted; one that returns early has its response ended (or gets a 500 if it
    never started one). Cancellation propagates: the connection cancels a handler whose
    client went away.
    """
    try:
        await handler(request, responder)
    except ClientDisconnected:
        return
    except Exception:
        if responder.disconnected:
            return
        logger.exception("handler failed on %s %s", request.method, request.path)
        if not responder.started:
            await _respond_quietly(responder, 500)
        elif not responder.ended:
            responder._abort()
        return
    if responder.ended or responder.disconnected:
        return
    if not responder.started:
        logger.error("handler returned without a response on %s %s", request.method, request.path)
        await _respond_quietly(responder, 500)
        return
    try:
        await responder.end()
    except ClientDisconnected:
        pass


async def _respond_quietly(responder: Responder, status: int) -> None:
    try:
        await responder.respond(status, [], b"")
    except ClientDisconnected:
        pass
