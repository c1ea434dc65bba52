"""Append sessions: pipelined appends over one S2S stream, with retries that never duplicate
under the no-side-effects policy.

Theory of operation
-------------------
Each submitted input becomes an :class:`_Entry` holding its encoded frame (so a re-send is
byte-identical and keeps its ``match_seq_num``), its ticket, and one fact about the wire: the
number of the attempt in which its bytes were last handed to the transport (``sent_in``). The
fact is recorded *before* the bytes are given to h2 or the socket (closing the official SDK's
gap G1), and it lives on the entry, not on the session: the official SDK's duplicate bug came
from a session-wide "sent" flag cleared by acks of re-sent inputs while fresh ones were already
on the wire (style habit 5).

An attempt opens ``POST .../records`` with ``content-type: s2s/proto`` and runs three owned
tasks: the writer sends queued entries in order (moving each to the in-flight queue first), the
reader matches each ack to the oldest in-flight entry and checks it, and the timer fails the
attempt when the oldest entry's ack deadline (set at hand-off) passes.

When an attempt fails, its stream is reset first, which guarantees that no byte buffered for it
can ever be sent (gap G2). Then :func:`append_may_retry` decides, with ``handed_off`` = "some
unacknowledged entry was handed off in this attempt" (docs/retry-safety.md#the-retry-rule). On a
retry the unacknowledged entries go back to the front of the queue, in order.
``server_draining`` moves to a new connection without spending the budget; an ack restores the
budget. When retries stop, every pending ticket, every waiting and later submit, and ``close``
fail with that one error.

Outcomes (docs/outcomes.md)
---------------------------
An entry also keeps its *doubt*: the error of the first attempt that handed its bytes off and
ended without a verdict (no ack, and an error that does not rule out that it was applied).
When the session fails, the one error it reports is made indefinite if any unresolved entry
has a doubt (error precedence, :func:`s2kit.errors.indefinite_after`): under ALL, an input
cut after it was applied and then retried against a server that refuses connections must not
come back as a side-effect-free ``ConnectError``. ``abort()``, a cancelled ``close()`` and a
cancelled driver resolve every ticket at once, synchronously, after resetting the running
attempt's stream: ``ClosedError(maybe_applied=True)`` where the entry has a doubt or its bytes
were handed off in the running attempt, a plain ``ClosedError`` where neither. An attempt
never leaves its HTTP/2 stream open (it is reset unless both sides ended), and once the
request has ended with nothing in flight the server gets one ack timeout to end its
response, so ``close()`` is bounded even against a server that never does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from s2kit.client import _outcome
from s2kit.client._retry import Budget, append_may_retry, server_error
from s2kit.errors import (
    ClosedError,
    RemoteProtocolError,
    RequestTimeout,
    S2Error,
    StreamReset,
    UsageError,
    indefinite_after,
)
from s2kit.wire import _proto, _s2s
from s2kit.wire._validate import InvalidBatch, validate_append_input

if TYPE_CHECKING:
    from s2kit.client._api import Api, Exchange
    from s2kit.client._config import AppendRetryPolicy
    from s2kit.types import AppendAck, AppendInput
    from s2kit.wire._compress import Compression as WireCompression

log = logging.getLogger("s2kit.client")

WRITE_COALESCE = 256 * 1024
_NO_ERROR = 0x0


class AppendTicket:
    """Resolves to the :class:`~s2kit.types.AppendAck` of one submitted input.

    Awaiting it only waits: cancelling the wait (``asyncio.wait_for(ticket, t)`` timing out)
    leaves the input and its outcome alone, and the ticket can be awaited again.
    """

    __slots__ = ("_future",)

    def __init__(self, future: asyncio.Future[AppendAck]) -> None:
        self._future = future

    def __await__(self) -> Generator[Any, None, AppendAck]:
        future = self._future
        if not future.done():
            yield from _outcome.wait(future)
        return future.result()

    def done(self) -> bool:
        """Whether the ack (or the failure) is in."""
        return self._future.done()

    def outcome(self) -> asyncio.Future[AppendAck]:
        """The future behind the ticket (internal: the blocking API relays it)."""
        return self._future


@dataclass(slots=True, eq=False)
class _Entry:
    frame: bytes
    metered: int
    records: int
    match: int | None
    """The input's ``match_seq_num``: its ack must start there."""
    future: asyncio.Future[AppendAck]
    sent_in: int = 0
    """Attempt in which the frame was last handed to the transport (0 = never)."""
    deadline: float = 0.0
    doubt: S2Error | None = None
    """The error of the first attempt that handed the frame off and ended without a verdict."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendSessionStatistics:
    """A snapshot of an append session."""

    queued: int
    inflight: int
    unacked_bytes: int
    attempts: int
    acked_batches: int


@dataclass(slots=True)
class _State:
    queue: deque[_Entry] = field(default_factory=deque)
    inflight: deque[_Entry] = field(default_factory=deque)
    unacked_bytes: int = 0
    attempt: int = 0
    acked: int = 0
    prev_end: int | None = None
    wire_touched: bool = False
    """Whether any body byte of the last attempt reached the transport (its ``data_sent``);
    cleared once that attempt's failure has been judged."""
    request_ended: bool = False
    """Our END_STREAM of the running attempt went out."""
    reconnect: bool = False
    """The server advised reconnecting (S2S flag R): end this exchange once nothing is in
    flight, and continue on a new one (scenario S19, docs/retry-safety.md#append-sessions)."""


class AppendSession:
    """Pipelined appends to one stream; get one from :meth:`Stream.append_session`.

    ``async with stream.append_session() as session:`` then ``ticket = await
    session.submit(input)`` and ``ack = await ticket``. Leaving the block waits for every ack
    (leaving it with an exception, or cancelled, aborts).

    Outcomes (docs/outcomes.md): every ticket resolves, whatever ends the session. An error
    with ``has_no_side_effects`` True means the input is not on the stream and never will be;
    any other error means it may be (at most once under NO_SIDE_EFFECTS).
    """

    def __init__(
        self,
        api: Api,
        basin: str,
        path: str,
        headers: list[tuple[str, str]],
        *,
        compression: WireCompression,
        policy: AppendRetryPolicy,
        ack_timeout: float,
        max_unacked_bytes: int = 5 * 1024 * 1024,
        max_unacked_batches: int | None = None,
    ) -> None:
        if max_unacked_bytes < 1024 * 1024:
            raise UsageError("max_unacked_bytes must be at least 1 MiB")
        self._api = api
        self._basin = basin
        self._path = path
        self._headers = headers
        self._compression = compression
        self._policy = policy
        self._ack_timeout = ack_timeout
        self._max_bytes = max_unacked_bytes
        self._max_batches = max_unacked_batches
        self._s = _State()
        self._budget = Budget(api.retry)
        self._changed = asyncio.Event()  # new work, an ack, or closing
        self._capacity = asyncio.Event()
        self._capacity.set()
        self._closing = False
        self._stopped = False  # aborted (or a close was cancelled)
        self._error: S2Error | None = None
        """Set when the session failed or was stopped with inputs unacknowledged."""
        self._driver: asyncio.Task[None] | None = None
        self._exchange: Exchange | None = None  # the running attempt's stream

    # --- public -------------------------------------------------------------------------------

    async def __aenter__(self) -> AppendSession:
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

    async def submit(self, inp: AppendInput) -> AppendTicket:
        """Queue an input; waits while the unacknowledged bytes (or batches) are at their cap.

        Raises:
            UsageError: the batch is invalid (empty, > 1000 records, > 1 MiB metered).
            S2Error: the session has failed (the error that ended it).
            ClosedError: the session was closed.
        """
        try:
            metered = validate_append_input(inp)
        except InvalidBatch as exc:
            raise UsageError(exc.for_client) from None
        while True:
            self._check_open()
            s = self._s
            pending = len(s.queue) + len(s.inflight)
            fits = s.unacked_bytes + metered <= self._max_bytes and (
                self._max_batches is None or pending < self._max_batches
            )
            if fits or pending == 0:
                break
            self._capacity.clear()
            await self._capacity.wait()
        frame = _s2s.encode_message_chunks(_proto.append_input_chunks(inp), self._compression)
        future: asyncio.Future[AppendAck] = asyncio.get_running_loop().create_future()
        entry = _Entry(frame, metered, len(inp.records), inp.match_seq_num, future)
        self._s.queue.append(entry)
        self._s.unacked_bytes += metered
        self._changed.set()
        if self._driver is None:
            self._driver = asyncio.create_task(self._run(), name="s2kit-append-session")
        return AppendTicket(future)

    async def close(self) -> None:
        """Wait until every submitted input is acknowledged, then end the session.

        Bounded by the session's own timeouts and retry budget. Cancelling it (or a deadline
        around it) aborts the session as :meth:`abort` does, then the cancellation propagates.

        Raises:
            S2Error: the error that ended the session, if any input was not acknowledged
                (a :class:`~s2kit.errors.ClosedError` after an abort).
        """
        self._closing = True
        self._changed.set()
        driver = self._driver
        if driver is not None and not driver.done():
            try:
                await asyncio.shield(driver)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or not task.cancelling():
                    raise  # the driver was cancelled (loop shutdown): it settled the tickets
                await self._stop("append session close was cancelled")
                raise
        if self._error is not None:
            raise self._error

    async def abort(self) -> None:
        """Stop now; every unacknowledged ticket fails with :class:`~s2kit.errors.ClosedError`.

        Inputs whose bytes may have reached the server have ``maybe_applied`` set (so
        ``has_no_side_effects`` is False); the others certainly were not appended.
        """
        await self._stop("append session aborted")

    async def _stop(self, reason: str) -> None:
        self._closing = self._stopped = True
        self._abandon(reason)  # first, synchronously: no wait can leave a ticket unresolved
        driver = self._driver
        if driver is not None and not driver.done():
            driver.cancel()
            await asyncio.wait([driver])
        if driver is not None and driver.done() and not driver.cancelled():
            driver.exception()  # retrieved (a crash was reported through the tickets)

    def statistics(self) -> AppendSessionStatistics:
        """Queued, in-flight and acknowledged counts."""
        s = self._s
        return AppendSessionStatistics(
            queued=len(s.queue),
            inflight=len(s.inflight),
            unacked_bytes=s.unacked_bytes,
            attempts=s.attempt,
            acked_batches=s.acked,
        )

    # --- driver -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._error is not None and not self._stopped:
            raise self._error  # the failure, as every unacknowledged ticket has it (A4)
        if self._closing:
            # After an abort: an input refused here was never queued, so its error is
            # definite, whatever the session told the inputs it had queued.
            raise ClosedError("append session is closed")

    def _fail(self, error: S2Error) -> None:
        """Retries stopped: fail every unacknowledged entry with one error, made indefinite
        if any of them may have been applied by an earlier attempt."""
        s = self._s
        pending = [e for e in (*s.inflight, *s.queue) if not e.future.done()]
        doubt = next((e.doubt for e in pending if e.doubt is not None), None)
        if self._error is None:
            self._error = indefinite_after(error, doubt)
        for e in pending:
            _set_error(e.future, self._error)
        self._clear()

    def _abandon(self, reason: str) -> None:
        """Stopped by the owner: resolve every unacknowledged entry now, truthfully."""
        s = self._s
        exchange = self._exchange
        if exchange is not None:
            live = exchange.data_sent
            exchange.reset()  # nothing buffered for the attempt can go out after this
        else:
            live = s.wire_touched  # an attempt ended and not judged yet (its task cancelled)
        maybe = ClosedError(
            f"{reason} with this input sent: it may have been appended", maybe_applied=True
        )
        certain = ClosedError(f"{reason} before this input was sent")
        error: ClosedError | None = None
        for e in (*s.inflight, *s.queue):
            if not e.future.done():
                sent = e.doubt is not None or (live and e.sent_in == s.attempt)
                _set_error(e.future, maybe if sent else certain)
                error = maybe if sent or error is maybe else certain
        if self._error is None:
            self._error = error  # close() reports it: inputs were lost (None: nothing was)
        self._clear()

    def _clear(self) -> None:
        s = self._s
        s.inflight.clear()
        s.queue.clear()
        s.unacked_bytes = 0
        self._capacity.set()

    def _idle(self) -> bool:
        return not self._s.queue and not self._s.inflight

    async def _run(self) -> None:
        s = self._s
        try:
            while True:
                if self._idle():
                    if self._closing:
                        return
                    self._changed.clear()
                    await self._changed.wait()
                    continue
                s.attempt += 1
                try:
                    await self._attempt(s.attempt)
                    if self._closing and self._idle():
                        return
                    # A clean end with nothing in flight (reconnect advised, or the server
                    # closed an idle session): continue on a new exchange, no budget spent.
                    s.reconnect = False
                    continue
                except S2Error as exc:
                    # Entries are marked handed off before their bytes go to the transport;
                    # if the exchange never passed it a body byte (a window of 0, S15), none
                    # of them was.
                    handed_off = s.wire_touched and any(e.sent_in == s.attempt for e in s.inflight)
                    s.wire_touched = False  # judged
                    if handed_off and not exc.has_no_side_effects:
                        for e in s.inflight:
                            if e.sent_in == s.attempt and e.doubt is None:
                                e.doubt = exc
                    delay = self._retry_delay(exc, handed_off)
                    if delay is None:
                        self._fail(exc)
                        return
                    log.info("append session retrying in %.3f s after: %s", delay, exc)
                    # Unacked entries go back to the front, in order, for a byte-identical re-send.
                    s.queue.extendleft(reversed(s.inflight))
                    s.inflight.clear()
                    s.prev_end = None
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self._abandon("append session stopped")  # a no-op after abort(), which did it
            raise
        except BaseException as exc:
            self._fail(
                exc
                if isinstance(exc, S2Error)
                else ClosedError(f"session crashed: {exc!r}", maybe_applied=True)
            )
            raise

    def _retry_delay(self, exc: S2Error, handed_off: bool) -> float | None:
        if not append_may_retry(exc, self._policy, handed_off):
            return None
        return self._budget.take(exc)  # server_draining is free (bounded): see Budget

    async def _attempt(self, attempt: int) -> None:
        s = self._s
        stream: Exchange | None = None
        s.wire_touched = False
        s.request_ended = False
        try:
            async with asyncio.timeout(self._api.timeout.request):
                stream = await self._api.open(
                    "POST", self._path, basin=self._basin, headers=self._headers, end_stream=False
                )
            self._exchange = stream
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._write(stream, attempt))
                    tg.create_task(self._timer())
                    await self._read(stream)
                    raise _Done
            except* _Done:
                pass
            except* S2Error as group:
                raise _first(group) from None
        except TimeoutError as exc:
            raise RequestTimeout("append session: no response within the request timeout") from exc
        finally:
            if stream is not None:
                self._exchange = None
                # Never left open: nothing buffered for this attempt may ever be sent, and a
                # stream the server ended (but we did not) must not stay in the connection.
                stream.reset()
                s.wire_touched = stream.data_sent

    async def _write(self, stream: Exchange, attempt: int) -> None:
        s = self._s
        loop = asyncio.get_running_loop()
        while True:
            if not s.queue or (s.reconnect and not s.inflight):
                if self._closing or (s.reconnect and not s.inflight):
                    with _response_complete():
                        await stream.end()
                    s.request_ended = True
                    self._changed.set()  # the timer bounds the wait for the server's end
                    return
                self._changed.clear()
                await self._changed.wait()
                continue
            frames = []
            size = 0
            deadline = loop.time() + self._ack_timeout
            while s.queue and size < WRITE_COALESCE:
                e = s.queue.popleft()
                # Record the hand-off before the bytes can reach h2 or the socket (G1).
                e.sent_in = attempt
                e.deadline = deadline
                s.inflight.append(e)
                frames.append(e.frame)
                size += len(e.frame)
            self._changed.set()  # the timer watches the in-flight queue
            with _response_complete():
                await stream.send(b"".join(frames) if len(frames) > 1 else frames[0])
                continue
            return  # the server wants no more; the reader reports the outcome

    async def _read(self, stream: Exchange) -> None:
        status, _ = await stream.response_headers()
        if status != 200:
            raise server_error(status, await stream.read_all(64 * 1024))
        decoder = _s2s.FrameDecoder()
        s = self._s
        while True:
            chunk = await stream.read_chunk()
            if chunk is None:
                try:
                    decoder.end_of_stream()
                except S2Error as exc:
                    raise RemoteProtocolError(str(exc)) from exc
                if not s.inflight:
                    return  # nothing lost; `_run` decides whether to go on
                # A clean end with inputs unacknowledged: not retryable (S10).
                raise RemoteProtocolError("append session ended with inputs unacknowledged")
            decoder.receive_data(chunk)
            while (event := decoder.next_event()) is not None:
                if isinstance(event, _s2s.Terminal):
                    raise server_error(event.status, event.body)
                try:
                    ack = _proto.decode_append_ack(event.payload)
                except _proto.ProtoDecodeError as exc:
                    raise RemoteProtocolError(f"undecodable ack: {exc}") from exc
                self._on_ack(ack)
                if event.reconnect_advised and not s.reconnect:
                    s.reconnect = True
                    self._changed.set()
            if self._closing and self._idle():
                self._changed.set()

    def _on_ack(self, ack: AppendAck) -> None:
        s = self._s
        if not s.inflight:
            raise RemoteProtocolError("ack received with nothing in flight")
        e = s.inflight[0]
        start, end = ack.start.seq_num, ack.end.seq_num
        if end - start != e.records:
            problem = f"for a batch of {e.records} records"
        elif s.prev_end is not None and start < s.prev_end:
            problem = f"overlapping the previous ack, which ended at {s.prev_end}"
        elif e.match is not None and start != e.match:
            problem = f"for a batch with match_seq_num {e.match}"
        else:
            problem = ""
        if problem:
            raise RemoteProtocolError(f"invalid ack [{start}, {end}) {problem}")
        s.inflight.popleft()
        s.prev_end = end
        s.unacked_bytes -= e.metered
        s.acked += 1
        self._budget.progress()
        if not e.future.done():
            e.future.set_result(ack)
        self._capacity.set()
        self._changed.set()

    async def _timer(self) -> None:
        s = self._s
        loop = asyncio.get_running_loop()
        while True:
            if not s.inflight:
                if s.request_ended:
                    # Everything is acked and our side has ended: the server's end is only a
                    # courtesy now. Wait one ack timeout for it, then end the attempt cleanly
                    # (its stream is reset): a server that never ends cannot hold close().
                    await asyncio.sleep(self._ack_timeout)
                    raise _Done
                self._changed.clear()
                await self._changed.wait()
                continue
            oldest = s.inflight[0]
            delay = oldest.deadline - loop.time()
            if delay <= 0:
                raise RequestTimeout(f"no ack within {self._ack_timeout:g} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._changed.wait()


class _Done(Exception):
    """Ends an attempt's task group once it finished cleanly."""


def _set_error(future: asyncio.Future[AppendAck], error: S2Error) -> None:
    future.set_exception(error)
    future.exception()  # retrieved: the ticket holder may never await it


@contextlib.contextmanager
def _response_complete() -> Generator[None, None, None]:
    """Swallow RST_STREAM(NO_ERROR) on a send.

    RFC 9113 §8.1: a server that has sent its whole response (a terminal frame, or an HTTP
    error before the session) may reset the stream with NO_ERROR to stop the request body.
    That is no failure: the response says what happened, and the reader reports it. Were the
    writer to fail first, its StreamReset would mask the server's verdict (a side-effect-free
    ``server_draining`` would turn into an indefinite reset).
    """
    try:
        yield
    except StreamReset as exc:
        if exc.error_code != _NO_ERROR:
            raise


def _first(group: BaseExceptionGroup[S2Error]) -> S2Error:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        return exc
    raise AssertionError("empty exception group")
