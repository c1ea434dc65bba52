"""One request/response exchange on an HTTP/2 client connection.

Theory of operation
-------------------
A stream is driven from two sides. The connection (an ``asyncio.Protocol``) feeds it
synchronously as ``h2`` events arrive: response headers, body chunks, END_STREAM, RST_STREAM,
GOAWAY and the failure of the whole connection. The application awaits it: ``send``/``end``
for the request body, ``response_headers``/``read_chunk`` for the response. Every change of
state is a row of ``_TRANSITIONS``; the awaiting methods are thin drivers that check the
state, take one synchronous step and park on a future when they must wait. A stream leaves
its connection (``_detach``) as soon as it reaches a terminal state, which frees its slot
under the server's SETTINGS_MAX_CONCURRENT_STREAMS.

Retry safety (docs/retry-safety.md#the-hand-off-signal). ``data_sent`` is the hand-off signal F:
it is set *before* any DATA frame (or END_STREAM) of the stream is handed to ``h2``, so no body
byte can reach a buffer that might put it on the wire while it is still clear. No body byte is
ever queued outside ``h2`` either: ``send`` hands over only what the flow-control window allows
at that moment and keeps the rest in its own frame. When it is cancelled, or the stream is reset
while it waits for window (gap G2, docs/retry-safety.md#gaps-found-in-other-sdks), the remainder
is simply never sent.

Receive flow control (RFC 9113 §5.2): a DATA frame's credit goes back to the server only when
the application reads the chunk, so a slow reader holds at most one stream window.
"""

from __future__ import annotations

import asyncio
import collections
import enum
from typing import TYPE_CHECKING

from s2kit.client._transport._errors import LOCAL_H2
from s2kit.errors import ClosedError, LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from s2kit.client._transport._connection import H2ClientConnection
    from s2kit.errors import S2Error

__all__ = ["H2Stream", "StreamState"]

# Read credit is handed to h2 in batches, and at the latest when the reader has emptied the
# buffer (so a reader about to wait never sits on credit the server needs).
_CREDIT_BATCH = 64 << 10
_CANCEL = 0x8


class StreamState(enum.Enum):
    """Where a stream is in its life (RFC 9113 §5.1, seen from the client)."""

    OPEN = "open"
    LOCAL_ENDED = "half-closed (local)"  # the request is complete, the response is not
    REMOTE_ENDED = "half-closed (remote)"  # the response is complete, the request is not
    CLOSED = "closed"  # both complete
    RESET = "reset"  # we reset it
    FAILED = "failed"  # the server or the connection broke it


class _Input(enum.Enum):
    END_SENT = "END_STREAM sent"
    END_RECEIVED = "END_STREAM received"
    RESET = "reset by us"
    FAIL = "failure"


_S = StreamState
_I = _Input
_TERMINAL = frozenset({_S.CLOSED, _S.RESET, _S.FAILED})
_TRANSITIONS: dict[tuple[StreamState, _Input], StreamState] = {
    (_S.OPEN, _I.END_SENT): _S.LOCAL_ENDED,
    (_S.OPEN, _I.END_RECEIVED): _S.REMOTE_ENDED,
    (_S.LOCAL_ENDED, _I.END_RECEIVED): _S.CLOSED,
    (_S.REMOTE_ENDED, _I.END_SENT): _S.CLOSED,
    **{(state, _I.RESET): _S.RESET for state in (_S.OPEN, _S.LOCAL_ENDED, _S.REMOTE_ENDED)},
    **{(state, _I.FAIL): _S.FAILED for state in (_S.OPEN, _S.LOCAL_ENDED, _S.REMOTE_ENDED)},
    # A finished stream ignores later resets (reset() is idempotent) and failures (the
    # connection may die while the caller still reads what was buffered).
    **{(state, event): state for state in _TERMINAL for event in (_I.RESET, _I.FAIL)},
}


class H2Stream:
    """An HTTP/2 stream: the request body goes out, the response comes back, full duplex.

    Obtained from :meth:`ConnectionPool.open_stream`. Use one sending and one reading task at
    most. Every stream must end: read the response to its end after ending the request, or
    call :meth:`reset`.

    Errors raised by the waiting methods:

    * :class:`~s2kit.errors.StreamReset`: the server reset the stream (``REFUSED_STREAM`` is
      side-effect free);
    * :class:`~s2kit.errors.GoAway`: the server's GOAWAY did not cover this stream
      (``processed=False``, side-effect free);
    * :class:`~s2kit.errors.ConnectionLost`: the connection broke, or its keepalive PING went
      unanswered; ``data_sent`` tells whether any of the body was handed off;
    * :class:`~s2kit.errors.RemoteProtocolError`: the server broke HTTP/2;
    * :class:`~s2kit.errors.ClosedError`: we reset the stream or closed the pool.

    Attributes:
        stream_id: the HTTP/2 stream id.
        data_sent: True once any DATA frame of the stream (or END_STREAM) was handed to
            ``h2``; set before the hand-off, so while it is False no body byte can have left.
    """

    __slots__ = (
        "_attached",
        "_body_complete",
        "_buffered",
        "_chunks",
        "_conn",
        "_error",
        "_headers",
        "_sending",
        "_state",
        "_status",
        "_trailers",
        "_unacked",
        "_waiters",
        "_window_waiter",
        "data_sent",
        "stream_id",
    )

    def __init__(self, conn: H2ClientConnection, stream_id: int) -> None:
        self.stream_id = stream_id
        self.data_sent = False
        self._conn = conn
        self._state = StreamState.OPEN
        self._status: int | None = None
        self._headers: list[tuple[str, str]] = []
        self._trailers: list[tuple[str, str]] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0  # bytes in _chunks whose credit the server has not had back
        self._unacked = 0  # bytes read whose credit is still held back (batched)
        self._body_complete = False
        self._error: S2Error | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._window_waiter: asyncio.Future[None] | None = None
        self._sending = False
        self._attached = True  # still in its connection's table (not yet terminal)

    def __repr__(self) -> str:
        return f"<H2Stream {self.stream_id} {self._state.value}>"

    @property
    def state(self) -> StreamState:
        """The stream's state."""
        return self._state

    @property
    def trailers(self) -> list[tuple[str, str]] | None:
        """The response trailers, once received (lowercase names)."""
        return self._trailers

    # -- request ---------------------------------------------------------------------------

    async def send(self, data: bytes, *, end_stream: bool = False) -> None:
        """Send ``data`` as DATA frames, waiting for flow-control window and write buffer.

        Cancellation-safe: whatever was not yet handed to ``h2`` when cancelled is dropped and
        never sent later (a cancelled call may have sent a prefix of ``data``).

        Raises:
            LocalProtocolError: the request already ended, or another send is running.
            ClosedError, StreamReset, GoAway, ConnectionLost, RemoteProtocolError: see the
                class docstring.
        """
        if not data:
            if end_stream:
                await self.end()
            return
        if self._sending:
            raise LocalProtocolError("another send() is running on this stream")
        conn = self._conn
        stream_id = self.stream_id
        total = len(data)
        view: memoryview | None = None
        offset = 0
        self._sending = True
        try:
            while True:
                self._check_send()
                if conn._write_paused:
                    await self._park(drain=True)
                    continue
                with LOCAL_H2:
                    window = conn._send_window(stream_id)
                if window <= 0:
                    await self._park(drain=False)
                    continue
                size = min(total - offset, window)
                last = end_stream and offset + size == total
                if size == total:
                    chunk: bytes | memoryview = data
                else:
                    if view is None:
                        view = memoryview(data)
                    chunk = view[offset : offset + size]
                self.data_sent = True  # F, before the hand-off
                conn._send_data(stream_id, chunk, last)
                offset += size
                if last:
                    self._transition(_I.END_SENT)
                if offset == total:
                    return
        finally:
            self._sending = False

    async def end(self) -> None:
        """End the request (an empty DATA frame with END_STREAM; needs no window).

        Raises:
            LocalProtocolError: the request already ended, or a send is running.
            ClosedError, StreamReset, GoAway, ConnectionLost, RemoteProtocolError: see the
                class docstring.
        """
        if self._sending:
            raise LocalProtocolError("end() while a send() is running on this stream")
        self._check_send()
        self.data_sent = True
        self._conn._end_stream(self.stream_id)
        self._transition(_I.END_SENT)

    def reset(self, error_code: int = _CANCEL) -> None:
        """Reset the stream now (RST_STREAM, CANCEL by default) unless it already finished.

        Synchronous and idempotent. The RST_STREAM is written at once, no DATA of this stream
        is handed to ``h2`` afterwards (a waiting ``send`` raises instead), buffered response
        data is dropped, and waiting calls raise :class:`~s2kit.errors.ClosedError`.
        """
        if self._state in _TERMINAL:
            return
        self._conn._reset_stream(self.stream_id, error_code)
        self._error = ClosedError(
            f"stream {self.stream_id} was reset", maybe_applied=self.data_sent
        )
        self._transition(_I.RESET)
        self._chunks.clear()
        self._wake()
        self._wake_window()

    # -- response --------------------------------------------------------------------------

    async def response_headers(self) -> tuple[int, list[tuple[str, str]]]:
        """Wait for the response head: the status and the headers (lowercase names).

        Raises:
            ClosedError, StreamReset, GoAway, ConnectionLost, RemoteProtocolError: see the
                class docstring.
        """
        while True:
            if self._status is not None:
                return self._status, self._headers
            if self._error is not None:
                raise self._error
            if self._body_complete:
                raise RemoteProtocolError(f"stream {self.stream_id} ended without a response")
            await self._wait()

    def chunk_ready(self) -> bool:
        """Whether :meth:`read_chunk` would return (or raise) without waiting."""
        return bool(self._chunks) or self._body_complete or self._error is not None

    async def read_chunk(self) -> bytes | None:
        """Return the next chunk of the response body, or None once it is complete.

        Chunks received before a failure are returned before the failure is raised; a
        chunk already buffered is returned without suspending.

        Raises:
            ClosedError, StreamReset, GoAway, ConnectionLost, RemoteProtocolError: see the
                class docstring.
        """
        while True:
            chunks = self._chunks
            if chunks:
                data = chunks.popleft()
                if self._attached:  # the server still wants the credit back
                    size = len(data)
                    self._buffered -= size
                    unacked = self._unacked + size
                    if unacked >= _CREDIT_BATCH or not chunks:
                        self._unacked = 0
                        self._conn._credit(self.stream_id, unacked)
                    else:
                        self._unacked = unacked
                return data
            if self._body_complete:
                return None
            if self._error is not None:
                raise self._error
            await self._wait()

    async def read_all(self, limit: int) -> bytes:
        """Read the rest of the response body.

        Raises:
            RemoteProtocolError: the body is longer than ``limit`` bytes (the stream is
                reset).
            ClosedError, StreamReset, GoAway, ConnectionLost: see the class docstring.
        """
        parts: list[bytes] = []
        size = 0
        while (chunk := await self.read_chunk()) is not None:
            size += len(chunk)
            if size > limit:
                self.reset()
                raise RemoteProtocolError(f"response body is longer than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    # -- driven by the connection ----------------------------------------------------------

    def _ended_with_headers(self) -> None:
        self.data_sent = True  # the request is complete: the server may act on it
        self._transition(_I.END_SENT)

    def _on_headers(self, status: int, headers: list[tuple[str, str]]) -> None:
        self._status = status
        self._headers = headers
        self._wake()

    def _on_data(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._waiters:
            self._wake()

    def _on_trailers(self, trailers: list[tuple[str, str]]) -> None:
        self._trailers = trailers

    def _on_end(self) -> None:
        self._body_complete = True
        self._transition(_I.END_RECEIVED)
        self._wake()

    def _fail(self, error: S2Error, *, discard: bool = False) -> None:
        """Fail the stream with ``error``, keeping the buffered body unless ``discard``."""
        if self._state in _TERMINAL:
            return
        self._error = error
        self._transition(_I.FAIL)
        if discard:
            self._chunks.clear()
        self._wake()
        self._wake_window()

    def _wake_window(self) -> None:
        waiter = self._window_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- internals -------------------------------------------------------------------------

    def _transition(self, event: _Input) -> None:
        state = self._state
        new = _TRANSITIONS.get((state, event))
        if new is None:
            raise LocalProtocolError(f"stream {self.stream_id}: {event.value} while {state.value}")
        self._state = new
        if self._attached and new in _TERMINAL:
            self._attached = False
            self._conn._detach(self)

    def _check_send(self) -> None:
        state = self._state
        if state is _S.OPEN or state is _S.REMOTE_ENDED:
            return
        if self._error is not None:
            raise self._error
        raise LocalProtocolError(f"stream {self.stream_id}: the request has already ended")

    async def _park(self, *, drain: bool) -> None:
        """Wait for the transport to drain or for window; a reset or failure wakes it too."""
        conn = self._conn
        waiter = conn._loop.create_future()
        self._window_waiter = waiter
        if drain:
            conn._drain_waiters.append(waiter)
        else:
            conn._window_waiters.add(self)
        try:
            await waiter
        finally:
            self._window_waiter = None
            conn._window_waiters.discard(self)

    async def _wait(self) -> None:
        waiter = self._conn._loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter.cancelled():  # a woken waiter was already taken off the list
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass

    def _wake(self) -> None:
        waiters = self._waiters
        if waiters:
            self._waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
