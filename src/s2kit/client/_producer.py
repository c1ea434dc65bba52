"""The producer: submit records one at a time; it batches them over an append session.

A batch closes when it reaches ``max_records`` or ``max_bytes``, when its linger expires (one
timer per batch, armed by its first record), or on :meth:`Producer.flush`. Two owned tasks run
the pipeline: the submitter hands closed batches to the append session in order (waiting on
its backpressure), the acker awaits their acks in order and resolves each record's ticket.
Bytes are reserved per record and released when its batch is resolved, which bounds memory.

Every batch not yet resolved is on exactly one list, in order: the open batch, ``_closed``
(closed, not handed over; the submitter takes the first only once the session accepted it),
``_handed`` (handed to the session, with its session ticket). So whatever ends the producer
(a failure, ``abort()``, a cancelled ``close()``, its tasks cancelled when the loop stops)
finds every batch and resolves it truthfully (docs/outcomes.md): a handed batch from its
session ticket (the session has settled it), the others as never sent, except that a batch
with a *doubt* (an earlier attempt that handed it off ended without a verdict) is reported
as possibly applied.

With ``match_seq_num`` every batch carries the seq_num it must land at, so retries under ALL
are exactly-once; an ambiguous ``412 SeqNumMismatch`` is settled by reading the stream back
(``_settle.py``), and the batches that did not land go to a new session, in order.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from s2kit.client import _outcome
from s2kit.client._settle import judge, read_back
from s2kit.errors import (
    BrokenError,
    ClosedError,
    S2Error,
    SeqNumMismatch,
    UsageError,
    indefinite_after,
)
from s2kit.types import AppendAck, AppendInput, Record, metered_bytes
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
    per-record cost of producing); the record's own ack is derived when awaited. Awaiting
    only waits: cancelling the wait leaves the record and its outcome alone.
    """

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: _Batch, index: int) -> None:
        self._batch = batch
        self._index = index

    def __await__(self) -> Generator[Any, None, RecordAck]:
        future = self._batch.future
        # Tickets are mostly awaited after their batch was acked: no wait at all then.
        if not future.done():
            yield from _outcome.wait(future)
        return record_ack(future.result(), self._index)

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
    __slots__ = ("_future", "bytes", "doubt", "match", "records", "ticket", "timer")

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._future: asyncio.Future[AppendAck] | None = None
        self.bytes = 0
        self.timer: asyncio.TimerHandle | None = None
        self.match: int | None = None  # fixed at the first hand-over, kept by every re-send
        self.ticket: AppendTicket | None = None  # from the session it was last handed to
        self.doubt: S2Error | None = None  # an earlier session may have applied it

    @property
    def future(self) -> asyncio.Future[AppendAck]:
        """The batch's outcome, shared by its records' tickets (made on first use)."""
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
        return self._future


class Producer:
    """Batches records into an append session; get one from :meth:`Stream.producer`.

    Outcomes (docs/outcomes.md): every ticket resolves, whatever ends the producer. A record
    error with ``has_no_side_effects`` True means the record is not on the stream and will
    never be; any other error means it may be.
    """

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
        self._closed: deque[_Batch] = deque()
        self._handed: deque[_Batch] = deque()
        self._work = asyncio.Event()  # a batch closed, closing, or failed
        self._progress = asyncio.Event()  # a batch handed over, or the submitter stopped
        self._submit_error: S2Error | None = None
        self._submitter: asyncio.Task[None] | None = None
        self._acker: asyncio.Task[None] | None = None
        self._error: S2Error | None = None
        self._closing = False
        self._stopping = False
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

    async def submit(self, record: Record) -> RecordTicket:
        """Add a record; waits while too many bytes are unacknowledged.

        Cancelling the wait leaves the record out (it was not added).

        Raises:
            UsageError: the record alone exceeds the batch limit.
            S2Error: the producer failed earlier (that error).
            ClosedError: the producer was closed or aborted.
        """
        # Per-record hot path: plain attribute reads and inlined checks.
        headers = record.headers
        size = metered_bytes(headers, record.body) if headers else 8 + len(record.body)
        if size > self._max_record:
            raise UsageError(
                f"record of {size} metered bytes exceeds the batch limit of {self._max_record}"
            )
        if self._error is not None or self._closing:
            self._check()
        if self._reserved and self._reserved + size > self._max_bytes:
            while self._reserved and self._reserved + size > self._max_bytes:
                self._room.clear()
                await self._room.wait()
                self._check()
        self._reserved += size
        if self._acker is None:
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

    async def flush(self) -> None:
        """Send the partial batch now and wait until every record so far is resolved.

        A wait only: cancelling it leaves the records in flight.

        Raises:
            S2Error: the producer failed (or was aborted) with records unacknowledged.
        """
        self._close_batch()
        await self._drained.wait()
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        """Flush, wait for every ack, and end the session.

        Bounded by the session's timeouts and retry budget. Cancelling it (or a deadline
        around it) aborts the producer as :meth:`abort` does, then the cancellation
        propagates.

        Raises:
            S2Error: the error that failed the producer, if any.
        """
        if not self._closing:
            self._closing = True
            self._close_batch()
            self._work.set()  # the submitter ends once everything is handed over
        try:
            tasks = [t for t in (self._submitter, self._acker) if t is not None]
            if tasks:
                await asyncio.wait(tasks)  # a wait: cancelling it does not cancel them
            if self._error is None:
                await self._session.close()
        except asyncio.CancelledError:
            await self._stop("producer close was cancelled")
            raise
        except S2Error as exc:
            self._error = self._error or exc
        if self._error is not None:
            raise self._error

    async def abort(self) -> None:
        """Stop now; every unresolved ticket fails with :class:`~s2kit.errors.ClosedError`.

        Records that may have reached the server have ``maybe_applied`` set; records acked
        before the abort resolve with their acks.
        """
        await self._stop("producer aborted")

    def statistics(self) -> ProducerStatistics:
        """Sessions, attempts and settled 412s so far."""
        return ProducerStatistics(
            sessions=self._sessions,
            attempts=self._past_attempts + self._session.statistics().attempts,
            settled=self._settled,
        )

    # -- batches ------------------------------------------------------------------------------

    def _start(self) -> None:
        self._submitter = asyncio.create_task(self._submit_loop(), name="s2kit-producer-submit")
        self._acker = asyncio.create_task(self._ack_loop(), name="s2kit-producer-ack")

    def _linger_expired(self, batch: _Batch) -> None:
        if batch is self._batch and batch.records:
            self._close_batch()

    def _close_batch(self) -> None:
        b = self._batch
        if b.timer is not None:
            b.timer.cancel()
        self._batch = _Batch()
        if b.records:
            self._closed.append(b)
            self._work.set()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closing:
            raise ClosedError("producer is closed")

    def _input(self, b: _Batch) -> AppendInput:
        return AppendInput(
            records=tuple(b.records), match_seq_num=b.match, fencing_token=self._fencing_token
        )

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

    # -- the two tasks ------------------------------------------------------------------------

    async def _submit_loop(self) -> None:
        closed = self._closed
        try:
            while self._error is None:
                if not closed:
                    if self._closing:
                        return
                    self._work.clear()
                    await self._work.wait()
                    continue
                b = closed[0]  # stays listed until the session has it
                if b.match is None and self._next_match is not None:
                    b.match = self._next_match
                    self._next_match += len(b.records)
                try:
                    ticket = await self._session.submit(self._input(b))
                except S2Error as exc:
                    self._submit_error = exc  # the session failed: the acker decides
                    return
                closed.popleft()
                b.ticket = ticket
                self._handed.append(b)
                self._progress.set()
        finally:
            self._progress.set()

    async def _ack_loop(self) -> None:
        handed = self._handed
        try:
            while True:
                if not handed:
                    if self._submit_error is not None:
                        if not await self._on_failure(self._submit_error):
                            return
                        continue
                    if self._submitter is None or self._submitter.done():
                        return  # closing (or failed): nothing more comes
                    self._progress.clear()
                    await self._progress.wait()
                    continue
                b = handed[0]
                assert b.ticket is not None
                try:
                    ack = await b.ticket
                except S2Error as exc:
                    if not await self._on_failure(exc):
                        return
                    continue
                handed.popleft()
                self._settle(b, ack)
        except asyncio.CancelledError:
            if not self._stopping:  # cancelled from outside (the loop is shutting down)
                self._abandon("producer stopped")
            raise

    async def _on_failure(self, exc: S2Error) -> bool:
        """The session failed with ``exc``: settle and go on (True), or fail the producer."""
        self._submit_error = None
        pending = [*self._handed, *itertools.takewhile(lambda b: b.match is not None, self._closed)]
        if self._may_settle(exc, pending):
            assert isinstance(exc, SeqNumMismatch)
            failure = await self._recover(exc, pending)
            if failure is None:
                return True
            exc = failure
        self._fail(exc)
        return False

    def _fail(self, error: S2Error) -> None:
        """Fail every unresolved batch with one error, indefinite if any may have landed."""
        batches = [*self._handed, *self._closed, self._batch]
        doubt = next((b.doubt for b in batches if b.doubt is not None), None)
        if self._error is None:
            self._error = indefinite_after(error, doubt)
        for b in batches:
            self._settle(b, self._error)
        self._drop_all()

    async def _stop(self, reason: str) -> None:
        self._closing = self._stopping = True
        tasks = [t for t in (self._submitter, self._acker) if t is not None and not t.done()]
        try:
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.wait(tasks)
            await self._session.abort()  # settles its tickets, truthfully, before any wait
        finally:
            self._abandon(reason)

    def _abandon(self, reason: str) -> None:
        """Resolve every batch now: handed ones from their session tickets, others unsent."""
        maybe = ClosedError(
            f"{reason} with this record sent: it may have been appended", maybe_applied=True
        )
        certain = ClosedError(f"{reason} before this record was sent")
        lost: ClosedError | None = None
        for b in self._handed:
            assert b.ticket is not None
            f = b.ticket.outcome()
            error = f.exception() if f.done() and not f.cancelled() else None
            if f.done() and not f.cancelled() and error is None:
                self._settle(b, f.result())
                continue
            sent = b.doubt is not None or not isinstance(error, S2Error) or error.is_indefinite
            lost = maybe if sent or lost is maybe else certain
            self._settle(b, maybe if sent else certain)
        for b in (*self._closed, self._batch):
            if b.records:
                sent = b.doubt is not None
                lost = maybe if sent or lost is maybe else certain
                self._settle(b, maybe if sent else certain)
        if self._error is None:
            self._error = lost
        self._drop_all()

    def _drop_all(self) -> None:
        self._handed.clear()
        self._closed.clear()
        if self._batch.timer is not None:
            self._batch.timer.cancel()
        self._batch = _Batch()
        self._work.set()
        self._room.set()

    # -- settling an ambiguous 412 (_settle.py) -------------------------------------------------

    def _may_settle(self, exc: S2Error, pending: list[_Batch]) -> bool:
        return (
            isinstance(exc, SeqNumMismatch)
            and self._next_match is not None
            and self._new_session is not None
            and bool(pending)
            and (exc.earlier_indefinite is not None or any(b.doubt is not None for b in pending))
        )

    async def _recover(self, exc: SeqNumMismatch, pending: list[_Batch]) -> S2Error | None:
        """Resolve the pending batches that landed and hand the rest to a new session.

        Returns None when the producer goes on, else the error to fail it with: a definite
        412 when another writer's records are in the way, the 412 as it came (indefinite)
        when the batches start beyond the stream's end, or an indefinite
        :class:`BrokenError` when the stream could not be read back.
        """
        assert self._new_session is not None
        submitter = self._submitter
        if submitter is not None and not submitter.done():
            submitter.cancel()  # its batch stays first in _closed
            await asyncio.wait([submitter])
        self._submit_error = None  # the same failure, seen by the submitter too
        start = pending[0].match
        assert start is not None
        count = sum(len(b.records) for b in pending)
        try:
            found = await read_back(self._stream, start, min(exc.expected, start + count))
        except S2Error as error:
            failure = BrokenError(f"an ambiguous 412 could not be settled: {error}")
            failure.__cause__ = error
            return failure
        batches: list[tuple[int, list[Record]]] = []
        for b in pending:
            assert b.match is not None  # every batch handed over in match mode has one
            batches.append((b.match, b.records))
        verdict = judge(batches, exc.expected, found)
        # Decide, then do: nothing below waits until the state is whole again.
        self._settled += 1
        landed = pending[: len(verdict.landed)]
        for b, ack in zip(landed, verdict.landed, strict=True):
            self._settle(b, ack)
        rest = pending[len(landed) :]
        if verdict.rest == "taken":  # proven: none of the rest can ever land
            for b in rest:
                b.doubt = None
            definite = SeqNumMismatch(exc.expected)
            definite.__cause__ = exc
            return definite
        if verdict.rest == "beyond":
            return exc
        for b in rest:
            if b.ticket is not None and b.doubt is None:
                b.doubt = exc.earlier_indefinite  # its copy from that session may still land
            b.ticket = None
        later = list(self._closed)[len(pending) - len(self._handed) :]
        self._handed.clear()
        self._closed.clear()
        self._closed.extend([*rest, *later])
        old = self._session
        self._sessions += 1
        self._past_attempts += old.statistics().attempts
        self._session = self._new_session()
        self._submitter = asyncio.create_task(self._submit_loop(), name="s2kit-producer-submit")
        await old.abort()  # it has failed already: this only releases it
        return None
