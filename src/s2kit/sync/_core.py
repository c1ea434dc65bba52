"""The machinery under :mod:`s2kit.sync`: the background event loop, and blocking tickets.

Every blocking call runs on one event loop, in a daemon thread shared by all blocking clients
of the process, through the asyncio core (so behaviour, retries and types are the async ones).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from s2kit.errors import ClosedError

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


_INTERRUPT_GRACE = 5.0  # how long an interrupted call waits for its coroutine to wind down


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the background loop and block for its result.

    ``timeout`` is enforced on the loop, as ``asyncio.timeout`` around ``coro``, so the call
    returns only once the coroutine has really ended: a ``close()`` that runs out of time has
    aborted its session, and every ticket is resolved, before ``TimeoutError`` reaches the
    caller. An interrupt of the waiting thread (KeyboardInterrupt) cancels the coroutine the
    same way, and waits a moment for it to wind down.
    """
    ended = threading.Event()

    async def bounded() -> T:
        try:
            async with asyncio.timeout(timeout):
                return await coro
        finally:
            ended.set()

    future = asyncio.run_coroutine_threadsafe(bounded(), Loop.get())
    try:
        return future.result()
    except BaseException:
        if not future.done():
            future.cancel()
            ended.wait(_INTERRUPT_GRACE)
        raise


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A coroutine calling ``fn`` on the loop (for constructors and getters bound to it)."""
    return fn(*args, **kwargs)


class Ticket:
    """The outcome of a submitted input or record; :meth:`result` blocks for it."""

    __slots__ = ("_cond", "_done", "_error", "_ticket", "_value")

    def __init__(self, cond: threading.Condition) -> None:
        # Set from the loop, which then notifies ``cond``: tickets of one producer share it,
        # so a record's ticket costs a small object, and a batch's acks one notification.
        self._cond = cond
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None
        self._ticket: AppendTicket | RecordTicket | None = None

    def result(self, timeout: float | None = None) -> Any:
        """The ack (:class:`~s2kit.types.AppendAck` or :class:`~s2kit.RecordAck`).

        Raises:
            TimeoutError: no outcome within ``timeout`` seconds.
            S2Error: the append failed (or ClosedError: it was abandoned).
        """
        if not self._done:
            with self._cond:
                if not self._cond.wait_for(lambda: self._done, timeout):
                    raise TimeoutError("timed out waiting for the ack")
        if self._error is not None:
            raise self._error
        return self._value

    def done(self) -> bool:
        """Whether the outcome is in."""
        # Also the async ticket itself: the outcome is copied here a loop turn after it, so
        # this could still be pending right after close() or flush() returned.
        return self._done or (self._ticket is not None and self._ticket.done())

    def set(self, value: Any = None, error: BaseException | None = None) -> None:
        """Record the outcome (on the loop; the caller then notifies the condition)."""
        self._value, self._error = value, error
        self._done = True

    def settle(self, future: asyncio.Future[Any]) -> None:
        """Take a finished future's outcome and wake the waiters (a done-callback)."""
        self.set(*outcome_of(future))
        with self._cond:
            self._cond.notify_all()


def outcome_of(future: asyncio.Future[Any]) -> tuple[Any, BaseException | None]:
    """(value, error) of a finished future; cancelled means abandoned: ClosedError."""
    if future.cancelled():  # never by s2kit (its outcomes are not cancelled): be safe
        return None, ClosedError("the append was abandoned", maybe_applied=True)
    error = future.exception()
    return (None, error) if error is not None else (future.result(), None)
