"""The blocking producer: records cross from the caller's thread to the loop in bulk.

A blocking call per record, a round trip to the background loop and back, held a producer to
a few thousand records per second. Here ``submit`` only appends the record to a hand-off
queue (and starts a feeder task on the loop if none is running); the feeder passes queued
records to the async producer in order, and one callback per batch resolves the tickets of
all its records. The queue is bounded by the producer's unacknowledged-bytes cap: ``submit``
blocks while it is full, as the async one waits.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from functools import partial
from typing import TYPE_CHECKING

from s2kit.client._producer import record_ack
from s2kit.errors import ClosedError, UsageError
from s2kit.sync._core import Loop, Ticket, outcome_of, run

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from s2kit.client import Producer as AsyncProducer
    from s2kit.types import AppendAck, Record

_Entries = list[tuple[int, Ticket]]


def _settle(
    entries: _Entries, acked: threading.Condition, batch: asyncio.Future[AppendAck]
) -> None:
    """Resolve one batch's tickets (a done-callback of the batch's future)."""
    ack, error = outcome_of(batch)
    if error is not None:
        for _, t in entries:
            t.set(error=error)
    else:
        for index, t in entries:
            t.set(record_ack(ack, index))
    with acked:
        acked.notify_all()


class Producer:
    """Blocking :class:`s2kit.Producer`; ``submit`` returns without waiting for the loop."""

    def __init__(self, producer: AsyncProducer) -> None:
        self._producer = producer
        self._loop = Loop.get()
        self._max_record = producer.max_record_bytes
        self._limit = producer.max_unacked_bytes
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._acked = threading.Condition()  # notified when tickets get their outcome
        self._queue: collections.deque[tuple[Record, int, Ticket]] = collections.deque()
        self._queued = 0  # metered bytes in _queue and in the feeder's hands
        self._feeding = False  # a feeder runs or is about to start (guarded by _lock)
        self._feeder: asyncio.Task[None] | None = None  # touched on the loop only
        self._error: BaseException | None = None
        self._closed = False

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.close()
        else:
            self.abort()

    def submit(self, record: Record) -> Ticket:
        """Add a record; the ticket resolves to a :class:`~s2kit.RecordAck`.

        Blocks while the records queued and unacknowledged are at the byte cap.

        Raises:
            UsageError: the record alone exceeds the batch limit.
            S2Error: the producer failed earlier (that error).
            ClosedError: the producer was closed.
        """
        size = record.metered_bytes
        if size > self._max_record:
            raise UsageError(
                f"record of {size} metered bytes exceeds the batch limit of {self._max_record}"
            )
        ticket = Ticket(self._acked)
        with self._room:
            while self._queued and self._queued + size > self._limit and self._error is None:
                self._room.wait()
            error = self._error or self._producer.error  # a read across threads: benign
            if error is not None:
                raise error
            if self._closed:
                raise ClosedError("producer is closed")
            self._queue.append((record, size, ticket))
            self._queued += size
            start = not self._feeding
            self._feeding = True
        if start:
            self._loop.call_soon_threadsafe(self._start_feeder)
        return ticket

    def flush(self, timeout: float | None = None) -> None:
        """Send the partial batch and wait for every ack so far.

        Raises:
            TimeoutError: not all acked within ``timeout`` seconds (the records stay in
                flight: this was a wait).
            S2Error: the producer failed.
        """
        run(self._after_feeder(self._producer.flush), timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush, wait, and end.

        Raises:
            TimeoutError: not done within ``timeout`` seconds; the producer was then aborted
                and every ticket is resolved (docs/outcomes.md).
            S2Error: the producer failed.
        """
        with self._lock:
            self._closed = True
        run(self._close(), timeout)

    def abort(self) -> None:
        """Stop now; unresolved tickets fail with :class:`~s2kit.errors.ClosedError`."""
        with self._lock:
            self._closed = True
        run(self._abort())

    # -- on the loop -----------------------------------------------------------------------

    def _start_feeder(self) -> None:
        self._feeder = self._loop.create_task(self._feed(), name="s2kit-sync-producer")

    async def _feed(self) -> None:
        while True:
            with self._lock:
                items = list(self._queue)
                self._queue.clear()
                if not items:
                    self._feeding = False
                    return
            by_batch: dict[asyncio.Future[AppendAck], _Entries] = {}
            done = 0
            try:
                for record, _, ticket in items:
                    async_ticket = await self._producer.submit(record)
                    ticket._ticket = async_ticket
                    future, index = async_ticket.batch_outcome()
                    by_batch.setdefault(future, []).append((index, ticket))
                    done += 1
            except BaseException as exc:
                self._stop(exc, [t for _, _, t in items[done:]])
                if not isinstance(exc, Exception):
                    raise  # cancelled: by abort()
                return  # the error is kept: submit, flush and the tickets report it
            finally:
                for future, entries in by_batch.items():
                    future.add_done_callback(partial(_settle, entries, self._acked))
            with self._room:
                self._queued -= sum(size for _, size, _ in items)
                self._room.notify_all()

    def _stop(self, exc: BaseException, unsent: list[Ticket]) -> None:
        """The feeder failed (the producer did, or it was cancelled): fail what was not sent."""
        error = exc if isinstance(exc, Exception) else ClosedError("the producer stopped")
        with self._room:
            self._error = self._error or error
            unsent += [t for _, _, t in self._queue]
            self._queue.clear()
            self._queued = 0
            self._feeding = False
            self._room.notify_all()
        for t in unsent:
            t.set(error=error)
        with self._acked:
            self._acked.notify_all()

    async def _after_feeder(self, then: Callable[[], Awaitable[None]]) -> None:
        # Records submitted before this call were queued before it reached the loop, so the
        # feeder that takes them was started first; wait for it (without cancelling it if
        # this call is), then ``then()``, which reports the producer's error if it failed.
        while (feeder := self._feeder) is not None and not feeder.done():
            await asyncio.wait([feeder])
        await then()

    async def _close(self) -> None:
        try:
            await self._after_feeder(self._producer.close)
        except asyncio.CancelledError:
            await self._abort()  # a close that ran out of time ends as an abort
            raise

    async def _abort(self) -> None:
        feeder = self._feeder
        if feeder is not None and not feeder.done():
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
        self._stop(ClosedError("producer aborted"), [])
        await self._producer.abort()
