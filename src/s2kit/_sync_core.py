"""The machinery under :mod:`s2kit.sync`: the background event loop, and blocking tickets.

Every blocking call runs on one event loop, in a daemon thread shared by all blocking clients
of the process, through the asyncio core (so behaviour, retries and types are the async ones).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from s2kit.client import AppendTicket, RecordTicket

T = TypeVar("T")


class Loop:
    """The shared background loop."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        """The loop, started on first use (and again if it was closed)."""
        with cls._lock:
            if cls._loop is None or cls._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="s2kit-sync", daemon=True)
                thread.start()
                cls._loop = loop
            return cls._loop


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the background loop and block for its result."""
    future = asyncio.run_coroutine_threadsafe(coro, Loop.get())
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError("timed out waiting for the result") from None


async def await_(aw: Awaitable[T]) -> T:
    """A coroutine awaiting ``aw`` (what ``run`` takes)."""
    return await aw


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A coroutine calling ``fn`` on the loop (for constructors and getters bound to it)."""
    return fn(*args, **kwargs)


class Ticket:
    """The outcome of a submitted input or record; :meth:`result` blocks for it."""

    __slots__ = ("_future", "_ticket")

    def __init__(self) -> None:
        # Resolved from the loop; made here so that a ticket exists before its record reached
        # the loop (the blocking producer hands records over in bulk).
        self._future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._ticket: AppendTicket | RecordTicket | None = None

    @classmethod
    def relaying(cls, ticket: AppendTicket | RecordTicket) -> Ticket:
        """A ticket following an async one through a coroutine on the loop."""
        t = cls()
        t._ticket = ticket
        t._future = asyncio.run_coroutine_threadsafe(await_(ticket), Loop.get())
        return t

    def result(self, timeout: float | None = None) -> Any:
        """The ack (:class:`~s2kit.types.AppendAck` or :class:`~s2kit.RecordAck`)."""
        return self._future.result(timeout)

    def done(self) -> bool:
        """Whether the outcome is in."""
        # Also the async ticket itself: the relay completes a loop turn after it, so it could
        # still be pending right after close() or flush() returned.
        return self._future.done() or (self._ticket is not None and self._ticket.done())
