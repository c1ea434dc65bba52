"""The connection pool: HTTP/2 connections per origin, opened on demand and shared by streams.

``open_stream`` puts a stream on the first connection of its origin that is OPEN and below
the server's SETTINGS_MAX_CONCURRENT_STREAMS. When none has room it connects another one, up
to ``max_connections_per_origin``; past that it waits until a stream finishes. At most one
connect per origin runs at a time; it is a task owned by the pool, so a caller that gives up
waiting does not abort a connection other callers wait for, and ``aclose`` cancels and awaits
it. Connections that drain (GOAWAY) leave the origin's list at once, so new streams go to a new
connection, but the pool keeps them until their transport and keepalive task are gone.

Connect-phase failures (DNS, refused, timeout, TLS handshake or verification, ALPN, a server
that closes or never sends its SETTINGS) raise :class:`~s2kit.errors.ConnectError`: no request
byte can have left.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from s2kit.client._transport._connection import ConnectionState, H2ClientConnection
from s2kit.client._transport._errors import ExceptionMap, tls_hint
from s2kit.errors import ClosedError, ConnectError, UsageError

if TYPE_CHECKING:
    from types import TracebackType

    from s2kit.client._transport._origin import Origin
    from s2kit.client._transport._stream import H2Stream

__all__ = ["ConnectionPool", "PoolStatistics"]

_CLOSE_GRACE = 1.0  # how long aclose lets a transport close cleanly before aborting it


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolStatistics:
    """A snapshot of a :class:`ConnectionPool`."""

    connections: int
    """Connections whose transport is not gone yet (including draining ones)."""
    open_streams: int
    """Streams not yet finished, over all connections."""
    draining: int
    """Connections that take no new streams (GOAWAY received, or closing)."""
    connecting: int
    """Connects in progress."""


class ConnectionPool:
    """HTTP/2 connections to any number of origins.

    Args:
        connect_timeout: seconds for TCP connect, TLS handshake and the server's SETTINGS.
        ssl_context: for ``https`` origins; ALPN is set to ``["h2"]`` on it. Default: the
            system's trust store (``ssl.create_default_context()``).
        keepalive_interval: PING a connection after this many seconds without receiving
            anything (None: never).
        keepalive_timeout: declare a connection dead when a PING is not answered in time.
        max_connections_per_origin: connections per origin before ``open_stream`` waits.

    Raises:
        UsageError: a bad argument.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 3.0,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_interval: float | None = 30.0,
        keepalive_timeout: float = 10.0,
        max_connections_per_origin: int = 8,
    ) -> None:
        if connect_timeout <= 0 or keepalive_timeout <= 0:
            raise UsageError("timeouts must be positive")
        if keepalive_interval is not None and keepalive_interval <= 0:
            raise UsageError("keepalive_interval must be positive or None")
        if max_connections_per_origin < 1:
            raise UsageError("max_connections_per_origin must be at least 1")
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["h2"])
        self._connect_timeout = connect_timeout
        self._ssl_context = ssl_context
        self._keepalive_interval = keepalive_interval
        self._keepalive_timeout = keepalive_timeout
        self._max_connections = max_connections_per_origin
        self._by_origin: dict[Origin, list[H2ClientConnection]] = {}  # OPEN connections
        self._all: set[H2ClientConnection] = set()  # every connection not yet finished
        self._connecting: dict[Origin, asyncio.Task[H2ClientConnection]] = {}
        self._waiters: dict[Origin, list[asyncio.Future[None]]] = {}
        self._closed = False

    async def __aenter__(self) -> ConnectionPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open_stream(
        self,
        origin: Origin,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        *,
        end_stream: bool = False,
    ) -> H2Stream:
        """Open a stream and send its HEADERS (``end_stream=True`` for a bodiless request).

        Args:
            origin: where to send it.
            method: the request method.
            path: the request target (path and query).
            headers: regular headers (names are lowercased); ``:authority`` is the origin's.
            end_stream: end the request with the HEADERS frame.

        Raises:
            ConnectError: a new connection was needed and could not be set up.
            ClosedError: the pool is closed.
            UsageError: a header is not latin-1.
            LocalProtocolError: ``h2`` rejected the headers.
        """
        while True:
            if self._closed:
                raise ClosedError("the connection pool is closed")
            for conn in self._by_origin.get(origin, ()):
                if conn.can_open():
                    return conn.open_stream(method, path, headers, end_stream=end_stream)
            task = self._connecting.get(origin)
            if task is None and len(self._by_origin.get(origin, ())) < self._max_connections:
                task = asyncio.get_running_loop().create_task(
                    self._connect_and_register(origin), name=f"s2kit connect {origin}"
                )
                task.add_done_callback(_retrieve)
                self._connecting[origin] = task
            if task is None:
                await self._wait_for_room(origin)
                continue
            try:
                await asyncio.shield(task)  # its ConnectError is every waiter's
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not task.cancelled() or (current is not None and current.cancelling()):
                    raise
                # aclose cancelled the connect, not us: the loop reports ClosedError

    async def aclose(self) -> None:
        """Close every connection; streams still open fail with ClosedError. Idempotent."""
        self._closed = True
        connecting = list(self._connecting.values())
        for task in connecting:
            task.cancel()
        for waiters in self._waiters.values():
            _wake_all(waiters)
        self._waiters.clear()
        conns = list(self._all)
        for conn in conns:
            conn.close(
                lambda stream: ClosedError(
                    f"{stream!r}: the connection pool was closed", maybe_applied=stream.data_sent
                )
            )
        try:
            if connecting:
                await asyncio.wait(connecting)
            for conn in conns:
                await conn.wait_closed(_CLOSE_GRACE)
        finally:
            for conn in conns:
                conn.abort()  # only matters when this was cancelled
            self._by_origin.clear()

    def statistics(self) -> PoolStatistics:
        """A snapshot of the pool's connections and streams."""
        live = [conn for conn in self._all if conn.state is not ConnectionState.CLOSED]
        return PoolStatistics(
            connections=len(live),
            open_streams=sum(conn.open_streams for conn in live),
            draining=sum(1 for conn in live if conn.state is not ConnectionState.OPEN),
            connecting=len(self._connecting),
        )

    # -- internals -------------------------------------------------------------------------

    async def _connect_and_register(self, origin: Origin) -> H2ClientConnection:
        try:
            conn = await self._connect(origin)
            if self._closed:
                conn.abort()
                raise ClosedError("the connection pool is closed")
            self._by_origin.setdefault(origin, []).append(conn)
            self._all.add(conn)
            conn.start_keepalive(self._keepalive_interval, self._keepalive_timeout)
            return conn
        finally:
            if self._connecting.get(origin) is asyncio.current_task():
                del self._connecting[origin]
            self._wake(origin)

    async def _connect(self, origin: Origin) -> H2ClientConnection:
        loop = asyncio.get_running_loop()
        timeout = self._connect_timeout
        errors = ExceptionMap(
            [
                (
                    TimeoutError,
                    lambda _: ConnectError(f"connect to {origin}: no answer in {timeout} s"),
                ),
                # A certificate that does not verify is configuration: no retry fixes it.
                (
                    ssl.SSLCertVerificationError,
                    lambda exc: ConnectError(
                        f"cannot connect to {origin}: {exc}", retryable=False, hint=tls_hint(exc)
                    ),
                ),
                # ssl.SSLError, socket.gaierror and ConnectionRefusedError are all OSErrors.
                (
                    OSError,
                    lambda exc: ConnectError(
                        f"cannot connect to {origin}: {exc}", hint=tls_hint(exc)
                    ),
                ),
                # The IDNA codec rejects some host names before any lookup.
                (UnicodeError, lambda exc: ConnectError(f"bad host name {origin.host!r}: {exc}")),
            ]
        )
        conn: H2ClientConnection | None = None
        try:
            with errors:
                context = self._tls_context() if origin.tls else None
                async with asyncio.timeout(timeout):
                    _, conn = await loop.create_connection(
                        lambda: H2ClientConnection(origin, self._on_change),
                        origin.host,
                        origin.port,
                        ssl=context,
                        server_hostname=origin.host if context is not None else None,
                    )
                    await conn.handshake()
        except BaseException:
            if conn is not None:
                conn.abort()
            raise
        return conn

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            context = ssl.create_default_context()
            context.set_alpn_protocols(["h2"])
            self._ssl_context = context
        return self._ssl_context

    def _on_change(self, conn: H2ClientConnection) -> None:
        """A connection's capacity or state changed: update the lists, wake waiters."""
        origin = conn.origin
        if conn.state is not ConnectionState.OPEN:
            conns = self._by_origin.get(origin)
            if conns is not None and conn in conns:
                conns.remove(conn)
                if not conns:
                    del self._by_origin[origin]
        if conn.finished:
            self._all.discard(conn)
        self._wake(origin)

    async def _wait_for_room(self, origin: Origin) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(origin, []).append(waiter)
        try:
            await waiter
        finally:
            if waiter.cancelled() and waiter in self._waiters.get(origin, ()):
                self._waiters[origin].remove(waiter)

    def _wake(self, origin: Origin) -> None:
        waiters = self._waiters.pop(origin, None)
        if waiters:
            _wake_all(waiters)


def _wake_all(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


def _retrieve(task: asyncio.Task[H2ClientConnection]) -> None:
    # Every waiter may have given up: mark the outcome as seen so asyncio does not log it.
    if not task.cancelled():
        task.exception()
