"""The producer: submit records one at a time; it batches them over an append session.

A batch closes when it reaches ``max_records`` or ``max_bytes``, when its linger expires (one
timer per batch, armed by its first record), or on :meth:`Producer.flush`. Two owned tasks run
the pipeline: one hands closed batches to the append session in order (waiting on its
backpressure), the other awaits their acks in order and resolves each record's ticket. Bytes
are reserved per record and released when its batch is acked, which bounds memory.

Exactly once with ``match_seq_num`` (retry-safety.md §4.6)
----------------------------------------------------------
With ``match_seq_num`` every batch carries the seq_num it must land at, fixed when the batch is
first submitted, so a re-send after a failure can never land twice: if the original had been
applied, the re-send fails with ``412 SeqNumMismatch(expected = the stream's next seq_num)``
and the session stops (nothing after it is applied). That 412 alone is ambiguous, so the
producer *settles* it instead of failing: when the session that failed had retried (only a
re-send can meet its own earlier copy), it reads the stream back from the first unresolved
batch up to ``expected`` and compares the records with its batches, in order:

* a batch whose records are all there, in place, **landed**: its tickets resolve with acks
  built from what was read;
* once the read-back is used up, the next batch must start exactly at ``expected``; it and
  every batch after it **did not land**, and go to a new append session, in order, with the
  seq_nums they already carry;
* anything else (other records in the way, a batch cut in two) means another writer: the
  producer fails with the 412, a definite outcome.

So with ``AppendRetryPolicy.ALL`` and ``match_seq_num`` every record is appended exactly once,
as long as retries do not run out. Other failures end the producer as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from s2kit.errors import BrokenError, ClosedError, S2Error, SeqNumMismatch, UsageError
from s2kit.types import (
    AppendAck,
    AppendInput,
    ReadLimit,
    Record,
    SeqNum,
    SequencedRecord,
    StreamPosition,
    metered_bytes,
)
from s2kit.wire._validate import MAX_BATCH_BYTES

if TYPE_CHECKING:
    from collections.abc import Callable

    from s2kit.client._append_session import AppendSession, AppendTicket
    from s2kit.client._config import Batching
    from s2kit.client._stream import Stream


class RecordAck(NamedTuple):
    """Where one produced record landed, and the ack of its batch.

    A named tuple, like :class:`~s2kit.SequencedRecord`: one is built per record awaited.
    """

    seq_num: int
    """The record's sequence number."""
    batch: AppendAck
    """The ack of the batch that carried it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProducerStatistics:
    """A snapshot of a producer's sessions."""

    sessions: int
    """Append sessions used so far (settling an ambiguous 412 starts a new one)."""
    attempts: int
    """Session attempts over all of them: ``attempts - sessions`` were retries."""
    settled: int
    """Ambiguous 412s settled by reading the stream back."""


_tuple_new = tuple.__new__


class RecordTicket:
    """Resolves to the :class:`RecordAck` of one submitted record.

    Tickets of one batch share the batch's single future (a future per record was the largest
    per-record cost of producing); the record's own ack is derived when awaited.
    """

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: _Batch, index: int) -> None:
        self._batch = batch
        self._index = index

    def __await__(self) -> Generator[Any, None, RecordAck]:
        future = self._batch.future
        # Tickets are mostly awaited after their batch was acked: skip the future's iterator.
        ack = future.result() if future.done() else (yield from future.__await__())
        return record_ack(ack, self._index)

    def done(self) -> bool:
        """Whether the outcome is in."""
        return self._batch.future.done()

    def batch_outcome(self) -> tuple[asyncio.Future[AppendAck], int]:
        """The future of the record's batch and the record's index in it (internal: the
        blocking producer resolves a whole batch's tickets from one callback)."""
        return self._batch.future, self._index


def record_ack(batch: AppendAck, index: int) -> RecordAck:
    """The ack of the ``index``-th record of an acked batch."""
    return _tuple_new(RecordAck, (batch.start.seq_num + index, batch))


class _Batch:
    __slots__ = ("_future", "bytes", "match", "records", "timer")

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._future: asyncio.Future[AppendAck] | None = None
        self.bytes = 0
        self.timer: asyncio.TimerHandle | None = None
        self.match: int | None = None  # fixed at the first submit, kept by every re-submit

    @property
    def future(self) -> asyncio.Future[AppendAck]:
        """The batch's outcome, shared by its records' tickets (made on first use)."""
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
        return self._future


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
        max_unacked_bytes: int = 5 * 1024 * 1024,
        session_factory: Callable[[], AppendSession] | None = None,
    ) -> None:
        self._stream = stream
        self._session = session
        self._new_session = session_factory
        self._in_submit: _Batch | None = None  # taken from the queue, its submit not done
        self._settled = 0
        self._sessions = 1
        self._past_attempts = 0  # attempts of the sessions already replaced
        self._batching = batching
        self._max_records = batching.max_records
        self._max_batch_bytes = batching.max_bytes
        self._max_record = min(batching.max_bytes, MAX_BATCH_BYTES)
        self._fencing_token = fencing_token
        self._next_match = match_seq_num
        # Records wait here before their batch reaches the session: bound both by one cap.
        self._max_bytes = max_unacked_bytes
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

    @property
    def max_record_bytes(self) -> int:
        """The largest record, in metered bytes, that :meth:`submit` accepts."""
        return self._max_record

    @property
    def error(self) -> S2Error | None:
        """The error that failed the producer, if it did (every later call raises it)."""
        return self._error

    @property
    def max_unacked_bytes(self) -> int:
        """The cap on metered bytes submitted but not yet acknowledged."""
        return self._max_bytes

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
        # Per-record hot path: plain attribute reads and inlined checks.
        headers = record.headers
        size = metered_bytes(headers, record.body) if headers else 8 + len(record.body)
        if size > self._max_record:
            raise UsageError("record exceeds the batch size limit")
        if self._error is not None or self._closing:
            self._check()
        if self._reserved and self._reserved + size > self._max_bytes:
            while self._reserved and self._reserved + size > self._max_bytes:
                self._room.clear()
                await self._room.wait()
                self._check()
        self._reserved += size
        if not self._tasks:
            self._start()
        b = self._batch
        records = b.records
        max_records = self._max_records
        if records and (len(records) >= max_records or b.bytes + size > self._max_batch_bytes):
            self._close_batch()
            b = self._batch
            records = b.records
        index = len(records)
        records.append(record)
        b.bytes += size
        if not self._unresolved:
            self._drained.clear()
        self._unresolved += 1
        if index + 1 >= max_records:
            self._close_batch()
        elif index == 0:
            b.timer = asyncio.get_running_loop().call_later(
                self._batching.linger, self._linger_expired, b
            )
        return RecordTicket(b, index)

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

    def statistics(self) -> ProducerStatistics:
        """Sessions, attempts and settled 412s so far."""
        return ProducerStatistics(
            sessions=self._sessions,
            attempts=self._past_attempts + self._session.statistics().attempts,
            settled=self._settled,
        )

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
        if not b.records:
            return
        f = b.future
        if f.done():
            return
        if isinstance(outcome, S2Error):
            f.set_exception(outcome)
            f.exception()  # retrieved: tickets may never be awaited
        else:
            f.set_result(outcome)
        self._unresolved -= len(b.records)
        # Tickets keep their batch alive, not the records: let those go (a producer's live
        # heap, which the cyclic GC walks again and again, stays the user's, not ours).
        b.records.clear()
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
            b.match = self._next_match
            if self._next_match is not None:
                self._next_match += len(b.records)
            self._in_submit = b
            try:
                ticket = await self._session.submit(self._input(b))
            except S2Error as exc:
                if self._may_settle(exc):
                    return  # the acker settles and restarts us (b is _in_submit)
                self._in_submit = None
                self._settle(b, exc)
                self._fail(exc)
                return
            self._in_submit = None
            self._acks.put_nowait((ticket, b))

    def _input(self, b: _Batch) -> AppendInput:
        return AppendInput(
            records=tuple(b.records), match_seq_num=b.match, fencing_token=self._fencing_token
        )

    async def _acker(self) -> None:
        while True:
            item = await self._acks.get()
            if item is None:
                return
            ticket, b = item
            try:
                ack = await ticket
            except S2Error as exc:
                error: S2Error = exc
                if self._may_settle(exc):
                    failure = await self._recover(b, exc)
                    if failure is None:
                        continue
                    error = failure
                self._settle(b, error)
                self._fail(error)
                return
            self._settle(b, ack)

    # -- settling an ambiguous 412 (see the module docstring) ----------------------------------

    def _may_settle(self, exc: S2Error) -> bool:
        return (
            isinstance(exc, SeqNumMismatch)
            and self._next_match is not None
            and self._new_session is not None
            and self._session.statistics().attempts > 1
        )

    async def _recover(self, first: _Batch, exc: S2Error) -> S2Error | None:
        """Settle which pending batches landed and re-submit the rest.

        Returns None when the producer goes on, else the error to fail it with: the 412 when
        another writer's records are in the way (definite), or a :class:`BrokenError` when
        the stream could not be read back (the outcome stays unknown).
        """
        assert isinstance(exc, SeqNumMismatch)
        assert self._new_session is not None
        submitter = self._tasks[0]
        submitter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await submitter
        pending = [first]
        ended = False
        while not self._acks.empty():
            item = self._acks.get_nowait()
            if item is None:
                ended = True
            else:
                pending.append(item[1])
        if self._in_submit is not None:
            pending.append(self._in_submit)
            self._in_submit = None
        failure: S2Error = exc
        try:
            rest = await self._settle_landed(pending, exc.expected)
        except S2Error as error:
            rest = None
            failure = BrokenError(f"an ambiguous 412 could not be settled: {error}")
            failure.__cause__ = error
        if rest is None:
            for b in pending[1:]:  # the caller fails the first, and the producer
                self._settle(b, failure)
            return failure
        self._settled += 1
        self._sessions += 1
        self._past_attempts += self._session.statistics().attempts
        old, self._session = self._session, self._new_session()
        await old.abort()
        for b in rest:
            try:
                ticket = await self._session.submit(self._input(b))
            except S2Error as error:
                for left in rest[rest.index(b) :]:
                    self._settle(left, error)
                return error
            self._acks.put_nowait((ticket, b))
        if ended:
            self._acks.put_nowait(None)
        else:
            self._tasks[0] = asyncio.create_task(self._submitter(), name="s2kit-producer-submit")
        return None

    async def _settle_landed(self, pending: list[_Batch], expected: int) -> list[_Batch] | None:
        """Resolve the batches found on the stream; return the others (None: inconsistent)."""
        start = pending[0].match
        assert start is not None
        if expected < start:
            return None
        found = await self._read_back(start, expected)
        if found is None:
            return None
        pos = start
        for i, b in enumerate(pending):
            if pos == expected:
                return pending[i:] if b.match == expected else None
            count = len(b.records)
            landed = found[pos - start : pos - start + count]
            if (
                b.match != pos
                or len(landed) < count
                or not all(
                    r.body == rec.body and tuple(r.headers) == tuple(rec.headers)
                    for r, rec in zip(landed, b.records, strict=True)
                )
            ):
                return None
            tail = StreamPosition(expected, found[-1].timestamp)
            self._settle(
                b,
                AppendAck(
                    start=StreamPosition(pos, landed[0].timestamp),
                    end=StreamPosition(pos + count, landed[-1].timestamp),
                    tail=tail,
                ),
            )
            pos += count
        return [] if pos == expected else None

    async def _read_back(self, start: int, end: int) -> list[SequencedRecord] | None:
        """The records [start, end) of the stream (None if they do not all show up)."""
        found: list[SequencedRecord] = []
        empty = 0
        while start + len(found) < end and empty < 10:
            batch = await self._stream.read(
                SeqNum(start + len(found)),
                limit=ReadLimit(count=end - start - len(found)),
                wait=1,  # the 412's expected may count records not yet durable
            )
            records = [r for r in batch.records if r.seq_num < end]
            empty = 0 if records else empty + 1
            found.extend(records)
        return found if start + len(found) == end else None
