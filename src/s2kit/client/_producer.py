"""The producer: submit records one at a time; it batches them over an append session.

A batch closes when it reaches ``max_records`` or ``max_bytes``, when its linger expires (one
timer per batch, armed by its first record), or on :meth:`Producer.flush`. Two owned tasks run
the pipeline: one hands closed batches to the append session in order (waiting on its
backpressure), the other awaits their acks in order and resolves each record's ticket. Bytes
are reserved per record and released when its batch is acked, which bounds memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from s2kit.errors import ClosedError, S2Error, UsageError
from s2kit.types import AppendAck, AppendInput, Record, metered_bytes
from s2kit.wire._validate import MAX_BATCH_BYTES

if TYPE_CHECKING:
    from s2kit.client._append_session import AppendSession, AppendTicket
    from s2kit.client._config import Batching
    from s2kit.client._stream import Stream


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordAck:
    """Where one produced record landed, and the ack of its batch."""

    seq_num: int
    """The record's sequence number."""
    batch: AppendAck
    """The ack of the batch that carried it."""


class RecordTicket:
    """Resolves to the :class:`RecordAck` of one submitted record."""

    __slots__ = ("_future",)

    def __init__(self, future: asyncio.Future[RecordAck]) -> None:
        self._future = future

    def __await__(self) -> Generator[Any, None, RecordAck]:
        return self._future.__await__()

    def done(self) -> bool:
        """Whether the outcome is in."""
        return self._future.done()


class _Batch:
    __slots__ = ("bytes", "futures", "records", "timer")

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.futures: list[asyncio.Future[RecordAck]] = []
        self.bytes = 0
        self.timer: asyncio.TimerHandle | None = None


class Producer:
    """Batches records into an append session; get one from :meth:`Stream.producer`."""

    def __init__(
        self,
        stream: Stream,
        session: AppendSession,
        *,
        batching: Batching,
        fencing_token: str | None,
        match_seq_num: int | None,
    ) -> None:
        self._stream = stream
        self._session = session
        self._batching = batching
        self._fencing_token = fencing_token
        self._next_match = match_seq_num
        self._max_bytes = 5 * 1024 * 1024
        self._reserved = 0
        self._room = asyncio.Event()
        self._room.set()
        self._batch = _Batch()
        self._closed_batches: asyncio.Queue[_Batch | None] = asyncio.Queue()
        self._acks: asyncio.Queue[tuple[AppendTicket, _Batch] | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._error: S2Error | None = None
        self._closing = False
        self._unresolved = 0
        self._drained = asyncio.Event()
        self._drained.set()

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.close()
        else:
            await self.abort()

    def _start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._submitter(), name="s2kit-producer-submit"),
                asyncio.create_task(self._acker(), name="s2kit-producer-ack"),
            ]

    async def submit(self, record: Record) -> RecordTicket:
        """Add a record; waits while too many bytes are unacknowledged.

        Raises:
            UsageError: the record alone exceeds the batch limit.
            S2Error: the producer failed earlier (that error).
        """
        size = metered_bytes(record.headers, record.body)
        if size > min(self._batching.max_bytes, MAX_BATCH_BYTES):
            raise UsageError("record exceeds the batch size limit")
        while True:
            self._check()
            if self._reserved + size <= self._max_bytes or self._reserved == 0:
                break
            self._room.clear()
            await self._room.wait()
        self._reserved += size
        self._start()
        b = self._batch
        if b.records and (
            len(b.records) >= self._batching.max_records
            or b.bytes + size > self._batching.max_bytes
        ):
            self._close_batch()
            b = self._batch
        future: asyncio.Future[RecordAck] = asyncio.get_running_loop().create_future()
        b.records.append(record)
        b.futures.append(future)
        b.bytes += size
        self._unresolved += 1
        self._drained.clear()
        if len(b.records) >= self._batching.max_records:
            self._close_batch()
        elif b.timer is None and len(b.records) == 1:
            b.timer = asyncio.get_running_loop().call_later(
                self._batching.linger, self._linger_expired, b
            )
        return RecordTicket(future)

    def _linger_expired(self, batch: _Batch) -> None:
        if batch is self._batch and batch.records:
            self._close_batch()

    def _close_batch(self) -> None:
        b = self._batch
        if b.timer is not None:
            b.timer.cancel()
        self._batch = _Batch()
        if b.records:
            self._closed_batches.put_nowait(b)

    async def flush(self) -> None:
        """Send the partial batch now and wait until every record so far is acknowledged."""
        self._close_batch()
        await self._drained.wait()
        self._check()

    async def close(self) -> None:
        """Flush, wait for every ack, and end the session.

        Raises:
            S2Error: the error that failed the producer, if any.
        """
        if self._closing:
            return
        self._closing = True
        self._close_batch()
        self._closed_batches.put_nowait(None)
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        try:
            await self._session.close()
        except S2Error as exc:
            self._error = self._error or exc
        if self._error is not None and not isinstance(self._error, ClosedError):
            raise self._error
        self._error = ClosedError("producer closed")

    async def abort(self) -> None:
        """Stop now; unresolved tickets fail with :class:`~s2kit.errors.ClosedError`."""
        self._closing = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, S2Error):
                await t
        await self._session.abort()
        self._fail(ClosedError("producer aborted"))

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closing:
            raise ClosedError("producer is closed")

    def _fail(self, error: S2Error) -> None:
        self._error = self._error or error
        pending: list[_Batch] = [self._batch]
        while not self._closed_batches.empty():
            b = self._closed_batches.get_nowait()
            if b is not None:
                pending.append(b)
        while not self._acks.empty():
            item = self._acks.get_nowait()
            if item is not None:
                pending.append(item[1])
        for b in pending:
            self._settle(b, self._error)
        self._batch = _Batch()
        self._room.set()

    def _settle(self, b: _Batch, outcome: AppendAck | S2Error) -> None:
        for i, f in enumerate(b.futures):
            if f.done():
                continue
            if isinstance(outcome, S2Error):
                f.set_exception(outcome)
                f.exception()
            else:
                f.set_result(RecordAck(seq_num=outcome.start.seq_num + i, batch=outcome))
            self._unresolved -= 1
        b.futures = []
        self._reserved -= b.bytes
        b.bytes = 0
        self._room.set()
        if self._unresolved <= 0:
            self._drained.set()

    async def _submitter(self) -> None:
        while True:
            b = await self._closed_batches.get()
            if b is None:
                self._acks.put_nowait(None)
                return
            inp = AppendInput(
                records=tuple(b.records),
                match_seq_num=self._next_match,
                fencing_token=self._fencing_token,
            )
            if self._next_match is not None:
                self._next_match += len(b.records)
            try:
                ticket = await self._session.submit(inp)
            except S2Error as exc:
                self._settle(b, exc)
                self._fail(exc)
                return
            self._acks.put_nowait((ticket, b))

    async def _acker(self) -> None:
        while True:
            item = await self._acks.get()
            if item is None:
                return
            ticket, b = item
            try:
                ack = await ticket
            except S2Error as exc:
                self._settle(b, exc)
                self._fail(exc)
                return
            self._settle(b, ack)
