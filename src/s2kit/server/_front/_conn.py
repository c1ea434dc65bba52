"""What the HTTP/1.1 and HTTP/2 connections share: transport flow control and task ownership.

A connection is an ``asyncio.Protocol``. It owns every handler task it spawns: the tasks are
kept in a set, cancelled when the transport is lost, and awaited by ``wait_closed``, which the
listener awaits from the task that owns the connection. Writes go straight to the transport;
when the transport's buffer passes its high-water mark, ``pause_writing`` makes senders wait
in ``drain`` until ``resume_writing`` (or the loss of the connection) wakes them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from s2kit.server._front._exchange import ClientDisconnected, serve_exchange
from s2kit.server._front._limits import Limits

if TYPE_CHECKING:
    from collections.abc import Callable

    from s2kit.server._front._exchange import Handler, Request, Responder

__all__ = ["BaseConnection"]

logger = logging.getLogger("s2kit.server")


class BaseConnection(asyncio.Protocol):
    """An HTTP server connection: owns its handler tasks and its transport's write side."""

    def __init__(self, handler: Handler, *, tls: bool, limits: Limits | None = None) -> None:
        self._handler = handler
        self._tls = tls
        self._limits = limits or Limits()
        self._loop = asyncio.get_running_loop()
        self._since = self._loop.time()  # when the state the deadlines look at began
        self._paused_since: float | None = None
        self._transport: asyncio.Transport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        self._lost = False
        self._closing = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        if exc is not None:
            logger.debug("connection lost: %r", exc)
        self._on_lost()
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()
        # The handlers may be parked on events that have nothing to do with this connection
        # (a long poll, say), so losing the peer must cancel them, not merely fail their I/O.
        for task in self._tasks:
            task.cancel()
        self._closed.set()

    def _check(self, responder: Responder) -> None:
        """Raise :class:`ClientDisconnected` if this exchange can no longer be answered."""
        transport = self._transport
        # A transport already closing (the client hung up; connection_lost may not have run
        # yet) takes no more: stop the handler here rather than render more for nobody.
        if responder.disconnected or self._closing or transport is None or transport.is_closing():
            raise ClientDisconnected("the client went away")

    def pause_writing(self) -> None:
        self._write_paused = True
        self._paused_since = self._loop.time()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._paused_since = None
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    # -- for the listener ------------------------------------------------------------------

    @property
    def active_requests(self) -> int:
        """Handler tasks still running on this connection."""
        return len(self._tasks)

    @property
    def closing(self) -> bool:
        """Whether the connection is closing (or gone)."""
        return self._closing

    @property
    def idle_since(self) -> float:
        """When (loop time) the connection's current state began: for an idle one, when it
        last had a request in flight (or was opened)."""
        return self._since

    def begin_shutdown(self) -> None:
        """Stop taking new requests and close once the in-flight ones are done."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop the connection now; every handler task gets cancelled."""
        self._closing = True
        if self._transport is not None and not self._lost:
            self._transport.abort()

    def sweep(self, now: float) -> None:
        """Enforce the deadlines of ``Limits`` (called about once a second by the server)."""
        if self._lost:
            return
        paused = self._paused_since
        if paused is not None and now - paused > self._limits.send_timeout:
            logger.info("client read nothing for %.0f s: closing", now - paused)
            self.abort()  # a graceful close would wait on the very buffer that is stuck
            return
        if not self._closing:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """The protocol's own deadlines."""

    async def wait_closed(self) -> None:
        """Wait until the transport is gone and every handler task has finished."""
        await self._closed.wait()
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    # -- for subclasses --------------------------------------------------------------------

    def _on_lost(self) -> None:
        """Fail every exchange in flight (called once, before the tasks are cancelled)."""

    def _spawn(
        self, request: Request, responder: Responder, done: Callable[[], None]
    ) -> asyncio.Task[None]:
        finish = _Once(done, request)
        task = self._loop.create_task(
            self._run(request, responder, finish),
            name=f"s2kit-http {request.method} {request.path}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # A task cancelled before its first step never runs its body, so its ``finally``
        # neither: the done-callback finishes the exchange then (a stream reset at once by
        # its client, as a rapid-reset flood does, would otherwise stay in the table).
        task.add_done_callback(finish.after)
        if self._lost:
            task.cancel()  # the peer is already gone; still owned, so wait_closed awaits it
        return task

    async def _run(self, request: Request, responder: Responder, finish: _Once) -> None:
        try:
            await serve_exchange(self._handler, request, responder)
        finally:
            finish()

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def _close(self) -> None:
        """Close after the buffered writes; the handlers are cancelled on connection_lost."""
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    async def _drain(self) -> None:
        """Wait while the transport's buffer is above its high-water mark.

        Raises:
            ClientDisconnected: the connection is gone.
        """
        while self._write_paused and not self._lost:
            waiter = self._loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter
        if self._lost:
            raise ClientDisconnected("the connection was lost")


class _Once:
    """An exchange's bookkeeping, run exactly once however its task ends; an error in it is
    logged (nobody retrieves these tasks' results)."""

    __slots__ = ("_done", "_request")

    def __init__(self, done: Callable[[], None], request: Request) -> None:
        self._done: Callable[[], None] | None = done
        self._request = request

    def __call__(self) -> None:
        done, self._done = self._done, None
        if done is None:
            return
        try:
            done()
        except Exception:
            logger.exception("error finishing %s %s", self._request.method, self._request.path)

    def after(self, _: asyncio.Task[None]) -> None:
        self()
