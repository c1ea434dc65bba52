"""``HttpServer``: one port for HTTP/1.1, h2c and (optionally) TLS with ALPN.

Theory of operation
-------------------
The server runs its own accept loop on a non-blocking listening socket, and each accepted
socket gets a task that owns it from accept to close:

1. With an ``ssl.SSLContext``, it waits (at most ``SNIFF_TIMEOUT``) for the first byte and
   peeks at it: 0x16 is a TLS handshake record (RFC 8446 §5.1), anything else is plaintext,
   which that port still accepts.
2. ``loop.connect_accepted_socket`` wraps the socket in a transport (doing the handshake if
   TLS) whose protocol is a ``_Sniffer``. The sniffer picks the HTTP version from ALPN when
   there is one, else from the first bytes: the HTTP/2 client preface (RFC 9113 §3.4) means
   HTTP/2 with prior knowledge, anything else is HTTP/1.1. It then hands the transport over
   to an ``H1Connection`` or ``H2Connection`` with ``set_protocol``.
3. The task awaits the connection's ``wait_closed``: the transport is gone and every handler
   task the connection spawned has finished.

Shutdown stops the accept loop, lets the application drain, asks every connection to finish
(GOAWAY, ``Connection: close``), waits up to ``grace`` for the connection tasks, then aborts
what is left; aborting cancels the handlers, which the connection tasks still await.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from s2kit.server._front._h1conn import H1Connection
from s2kit.server._front._h2conn import H2Connection
from s2kit.server._front._limits import Limits

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable
    from types import TracebackType

    from s2kit.server._front._conn import BaseConnection
    from s2kit.server._front._exchange import Handler

__all__ = ["HttpServer", "ServerStatistics"]

logger = logging.getLogger("s2kit.server")

SNIFF_TIMEOUT = 10.0
SEND_BUFFER = 256 << 10
_ACCEPT_BATCH = 64
_AT_CAP_RECHECK = 0.05
_TLS_HANDSHAKE = 0x16
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerStatistics:
    """A snapshot of an ``HttpServer``'s load."""

    open_connections: int
    """Accepted connections not yet closed, including those still in their handshake."""
    active_requests: int
    """Handler tasks still running."""


class _Sniffer(asyncio.Protocol):
    """The first protocol of every transport: picks HTTP/1.1 or HTTP/2, then steps aside."""

    def __init__(
        self,
        handler: Handler,
        *,
        tls: bool,
        draining: bool,
        limits: Limits,
        sock: socket.socket,
    ) -> None:
        self._handler = handler
        self.sock = sock
        """The accepted socket, to look for bytes not read yet (``HttpServer._evict_idle``)."""
        self._tls = tls
        self._limits = limits
        self._draining = draining
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._timer: asyncio.TimerHandle | None = None
        self._decided = asyncio.Event()
        self.connection: BaseConnection | None = None
        self.started = asyncio.get_running_loop().time()
        self.aborted = False

    @property
    def has_transport(self) -> bool:
        return self._transport is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if alpn == "h2":
            self._select(H2Connection)
        elif alpn == "http/1.1":
            self._select(H1Connection)
        elif self._draining:
            transport.close()
        else:
            self._timer = asyncio.get_running_loop().call_later(SNIFF_TIMEOUT, transport.abort)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        seen = min(len(self._buffer), len(_H2_PREFACE))
        if self._buffer[:seen] != _H2_PREFACE[:seen]:
            self._select(H1Connection)
        elif seen == len(_H2_PREFACE):
            self._select(H2Connection)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._decided.set()

    def _select(self, kind: type[H1Connection | H2Connection]) -> None:
        assert self._transport is not None
        if self._timer is not None:
            self._timer.cancel()
        connection = kind(self._handler, tls=self._tls, limits=self._limits)
        self.connection = connection
        self._transport.set_protocol(connection)
        connection.connection_made(self._transport)
        if self._buffer:
            connection.data_received(self._buffer)
            self._buffer = b""
        if self._draining:
            connection.begin_shutdown()
        self._decided.set()

    def begin_shutdown(self) -> None:
        self._draining = True
        if self.connection is not None:
            self.connection.begin_shutdown()
        elif self._transport is not None:
            self._transport.close()  # no request has arrived yet

    def abort(self) -> None:
        self.aborted = True
        if self.connection is not None:
            self.connection.abort()
        elif self._transport is not None:
            self._transport.abort()

    async def wait_closed(self) -> None:
        await self._decided.wait()
        if self.connection is not None:
            await self.connection.wait_closed()


class HttpServer:
    """An asyncio HTTP server: HTTP/1.1, h2c and optional TLS (ALPN) on one port.

    Args:
        handler: called once per request, each in its own task.
        host: the address to bind.
        port: the port to bind; 0 picks a free one (see ``start``).
        ssl_context: when given, TLS connections (ALPN ``h2`` or ``http/1.1``) are accepted
            on the port too, next to plaintext ones.
        tls_only: with ``ssl_context``, refuse plaintext connections on the port.
        limits: deadlines and the connection cap (``_limits.py``).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        tls_only: bool = False,
        limits: Limits | None = None,
    ) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        self._tls_only = tls_only and ssl_context is not None
        self._limits = limits or Limits()
        self._room = asyncio.Event()  # set while below max_connections
        self._room.set()
        self._evicted: set[asyncio.Task[None]] = set()  # aborted to make room, not gone yet
        self._sweeper: asyncio.Task[None] | None = None
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._tasks: dict[asyncio.Task[None], _Sniffer | None] = {}
        self._draining = False
        self._stopped = asyncio.Event()

    @property
    def host(self) -> str:
        """The bound host (the requested one before ``start``)."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port (the requested one, maybe 0, before ``start``)."""
        return self._port

    async def start(self) -> tuple[str, int]:
        """Bind, listen and start accepting.

        Only the first address ``getaddrinfo`` gives for ``host`` is bound. The TLS sniff uses
        ``loop.add_reader``, so a selector event loop is required (not Windows' proactor).

        Returns:
            The bound ``(host, port)``: the real port when 0 was asked for.

        Raises:
            OSError: the address cannot be bound.
            RuntimeError: the server was already started, or shut down.
        """
        if self._listener is not None or self._draining:
            raise RuntimeError("HttpServer is already started, or shut down")
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, address = infos[0]
        listener = socket.socket(family, kind, proto)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(1024)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._host, self._port = listener.getsockname()[:2]
        self._accept_task = loop.create_task(self._accept_loop(listener), name="s2kit-accept")
        self._sweeper = loop.create_task(self._sweep_loop(), name="s2kit-sweep")
        logger.info("listening on %s:%d", self._host, self._port)
        return self._host, self._port

    def statistics(self) -> ServerStatistics:
        """Return how many connections are open and how many requests are in flight."""
        active = 0
        for sniffer in self._tasks.values():
            if sniffer is not None and sniffer.connection is not None:
                active += sniffer.connection.active_requests
        return ServerStatistics(open_connections=len(self._tasks), active_requests=active)

    async def shutdown(
        self, grace: float = 10.0, on_drain: Callable[[], None] | None = None
    ) -> None:
        """Shut down gracefully; a second call waits for the first.

        Stops accepting, calls ``on_drain`` (so the application can wind its sessions down),
        sends GOAWAY on every HTTP/2 connection and closes idle HTTP/1.1 ones, waits up to
        ``grace`` seconds for the requests in flight, then aborts every connection left and
        waits for its (cancelled) handlers. Everything is released even if this is cancelled.
        """
        if self._draining:
            await self._stopped.wait()
            return
        self._draining = True
        try:
            await self._stop_accepting()
            if on_drain is not None:
                on_drain()
            for task, sniffer in list(self._tasks.items()):
                if sniffer is None or not sniffer.has_transport:
                    task.cancel()  # still sniffing or handshaking: no request yet
                else:
                    sniffer.begin_shutdown()
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=grace)
        finally:
            for task, sniffer in list(self._tasks.items()):
                if sniffer is not None:
                    sniffer.abort()
                else:
                    task.cancel()
            while self._tasks:
                await asyncio.wait(set(self._tasks))
            self._stopped.set()
            logger.info("server on %s:%d stopped", self._host, self._port)

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    async def _stop_accepting(self) -> None:
        for task in (self._accept_task, self._sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._listener is not None:
            self._listener.close()

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.0
        while True:
            if self._at_cap() and not self._evict_idle():
                # At the cap with every connection busy (or just accepted, not yet started):
                # new connections wait in the listen backlog, not in our memory, until one
                # closes or goes idle; look again shortly.
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_AT_CAP_RECHECK):
                        await self._room.wait()
                continue
            try:
                sock, _ = await loop.sock_accept(listener)
                self._adopt(loop, sock)
                # Take what else the backlog holds now, without a loop turn per connection
                # (a burst of connections must not keep the ones behind it waiting).
                for _ in range(_ACCEPT_BATCH):
                    if self._at_cap():
                        break
                    sock, _ = listener.accept()
                    self._adopt(loop, sock)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                # EMFILE and friends: back off (doubling to a second) instead of spinning, and
                # say so once per episode; the backlog keeps the connections meanwhile.
                if not backoff:
                    logger.warning("accept failed (backing off): %s", exc)
                backoff = min(1.0, backoff * 2 or 0.05)
                await asyncio.sleep(backoff)
                continue
            backoff = 0.0

    def _adopt(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        sock.setblocking(False)
        task = loop.create_task(self._serve(sock), name="s2kit-conn")
        self._tasks[task] = None
        task.add_done_callback(self._forget)

    def _at_cap(self) -> bool:
        return len(self._tasks) - len(self._evicted) >= self._limits.max_connections

    def _evict_idle(self) -> bool:
        """At the cap: drop the connections idle the longest (no request in flight: kept-alive
        ones, or ones still sending their head) to make room, a few at a time so a burst is
        not a scan per connection. False when none is idle.

        A connection whose first bytes wait in its socket, not read yet, is not idle: it is a
        client whose request a busy loop has not got to (evicting it dropped a request that
        had arrived whole, seen in tests/hostile under load). Its bytes are read before the
        accept loop looks again (``_AT_CAP_RECHECK``), and its request then keeps it.
        """
        idle: list[tuple[float, asyncio.Task[None], _Sniffer]] = []
        for task, sniffer in self._tasks.items():
            if sniffer is None or task in self._evicted:
                continue
            connection = sniffer.connection
            if connection is None:
                idle.append((sniffer.started, task, sniffer))  # no byte of a request yet
            elif connection.active_requests == 0 and not connection.closing:
                idle.append((connection.idle_since, task, sniffer))
        batch = max(1, min(_ACCEPT_BATCH, self._limits.max_connections // 3))
        # The oldest first; twice the batch, so a few with bytes waiting do not stall it.
        evicted = 0
        for _, task, sniffer in heapq.nsmallest(2 * batch, idle, key=lambda entry: entry[0]):
            if sniffer.connection is None and _bytes_waiting(sniffer.sock):
                continue
            self._evicted.add(task)
            sniffer.abort()
            evicted += 1
            if evicted == batch:
                break
        if evicted:
            logger.info(
                "at the connection limit: closed the %d connections idle the longest", evicted
            )
        return evicted > 0

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._evicted.discard(task)
        if not self._at_cap():
            self._room.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("connection task failed", exc_info=exc)

    async def _sweep_loop(self) -> None:
        """Enforce every connection's deadlines, once per ``sweep_interval``."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._limits.sweep_interval)
            now = loop.time()
            for sniffer in list(self._tasks.values()):
                if sniffer is not None and sniffer.connection is not None:
                    try:
                        sniffer.connection.sweep(now)
                    except Exception:
                        logger.exception("deadline check failed; dropping the connection")
                        sniffer.connection.abort()

    async def _serve(self, sock: socket.socket) -> None:
        """Own one accepted socket from its first byte to the end of its last handler."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                # A fixed send buffer: the kernel's autotuning grows it to megabytes per
                # socket, so each client that reads nothing could take megabytes of copies
                # (and of our CPU) before its connection backs up (docs/lite-limits.md).
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            context = None
            if self._ssl_context is not None:
                async with asyncio.timeout(SNIFF_TIMEOUT):
                    first = await _peek_first_byte(sock)
                if first is None:
                    sock.close()
                    return
                if first == _TLS_HANDSHAKE:
                    context = self._ssl_context
                elif self._tls_only:
                    sock.close()  # plaintext on a TLS-only port
                    return
            sniffer = _Sniffer(
                self._handler,
                tls=context is not None,
                draining=self._draining,
                limits=self._limits,
                sock=sock,
            )
            self._tasks[task] = sniffer
            await loop.connect_accepted_socket(
                lambda: sniffer,
                sock,
                ssl=context,
                ssl_handshake_timeout=SNIFF_TIMEOUT if context is not None else None,
            )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            logger.debug("connection setup failed: %r", exc)
            sock.close()
            return
        except BaseException:
            sock.close()
            raise
        await sniffer.wait_closed()


def _bytes_waiting(sock: socket.socket) -> bool:
    """Whether the peer's bytes wait in ``sock``, unread (not at its end, not when empty)."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # BlockingIOError: nothing waits; any other: the socket is gone
        return False


async def _peek_first_byte(sock: socket.socket) -> int | None:
    """Wait until ``sock`` is readable and return its first byte without consuming it."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            pass
        else:
            return data[0] if data else None
        readable = loop.create_future()
        loop.add_reader(sock.fileno(), _set_done, readable)
        try:
            await readable
        finally:
            loop.remove_reader(sock.fileno())


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
