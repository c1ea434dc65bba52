"""Read sessions: follow a stream over S2S, resuming transparently after failures.

Resumption (docs/retry-safety.md#read-sessions-resume): after each batch the start becomes the
absolute seq_num after its last record; after a heartbeat it becomes the heartbeat's tail, so a
``TailOffset`` or ``Timestamp`` start is never evaluated twice against a newer tail. Remaining
``count`` and ``bytes`` are carried; ``wait`` is reduced by the whole seconds since the last
batch that came from the tail. Twenty seconds without any frame is a retryable heartbeat
timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING

from s2kit.client._config import ReadSessionRetryPolicy
from s2kit.client._retry import Budget, server_error
from s2kit.errors import (
    ConnectionLost,
    ErrorCode,
    RemoteProtocolError,
    RequestTimeout,
    S2Error,
    ServerError,
    UsageError,
)
from s2kit.types import (
    ReadBatch,
    ReadLimit,
    ReadStart,
    SeqNum,
    StreamPosition,
    TailOffset,
    Timestamp,
)
from s2kit.wire import _json, _proto, _s2s, _sse

if TYPE_CHECKING:
    from s2kit.client._api import Api, Exchange
    from s2kit.wire._compress import Compression as WireCompression


def read_query(
    start: ReadStart,
    limit: ReadLimit | None,
    until: int | None,
    clamp: bool,
    wait: int | None,
) -> dict[str, str | int]:
    """Query parameters of a read."""
    q: dict[str, str | int] = {}
    if isinstance(start, SeqNum):
        q["seq_num"] = start.value
    elif isinstance(start, Timestamp):
        q["timestamp"] = start.value
    elif isinstance(start, TailOffset):
        q["tail_offset"] = start.value
    else:
        raise UsageError(f"start must be SeqNum, Timestamp or TailOffset, not {start!r}")
    if limit is not None:
        if limit.count is not None:
            q["count"] = limit.count
        if limit.bytes is not None:
            q["bytes"] = limit.bytes
    if until is not None:
        q["until"] = until
    if clamp:
        q["clamp"] = "true"
    if wait is not None:
        q["wait"] = wait
    return q


def sse_error(data: str) -> ServerError:
    """The error an SSE ``error`` event carries (its status follows from the code)."""
    try:
        obj = _json.loads(data)
        code = str(obj["code"])
        message = str(obj.get("message", ""))
    except (_json.JsonShapeError, KeyError, TypeError):
        return ServerError(500, "", data[:200])
    try:
        status = ErrorCode(code).status
    except ValueError:
        status = 500
    return ServerError(status, code, message)


class ReadSession:
    """An async iterator of :class:`~s2kit.types.ReadBatch` (heartbeats are not yielded).

    Use ``async with stream.read_session() as session: async for batch in session:``, or
    iterate directly and call :meth:`aclose` when stopping early.
    """

    def __init__(
        self,
        api: Api,
        basin: str,
        path: str,
        headers: list[tuple[str, str]],
        *,
        start: ReadStart,
        limit: ReadLimit | None,
        until: int | None,
        clamp: bool,
        wait: int | None,
        heartbeat_timeout: float,
        compression: WireCompression,
        sse: bool = False,
    ) -> None:
        self._api = api
        self._basin = basin
        self._path = path
        # Over HTTP/1.1 the session is SSE; over HTTP/2 it is S2S (docs/protocol.md#sse).
        self._sse = sse
        if sse:
            self._headers = [("accept", "text/event-stream"), ("s2-format", "base64"), *headers]
        else:
            self._headers = [("content-type", "s2s/proto"), *headers]
        self._start: ReadStart = start
        self._count = None if limit is None else limit.count
        self._bytes = None if limit is None else limit.bytes
        self._until = until
        self._clamp = clamp
        self._wait = wait
        self._heartbeat_timeout = heartbeat_timeout
        self._budget = Budget(api.retry)
        self._indefinite = api.retry.read_session_policy is ReadSessionRetryPolicy.INDEFINITE
        self._stream: Exchange | None = None
        self._decoder = _s2s.FrameDecoder()
        self._sse_decoder = _sse.SseDecoder()
        self._ready: deque[ReadBatch] = deque()
        self._ended = False
        self._done = False
        self._last_tail_at: float | None = None
        self.tail: StreamPosition | None = None
        """The latest tail the server reported."""
        self.caught_up = asyncio.Event()
        """Set once every record up to a reported tail has been delivered."""
        self.reconnects = 0

    def __aiter__(self) -> ReadSession:
        return self

    async def __aenter__(self) -> ReadSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop reading and release the stream. Idempotent."""
        self._done = True
        self._drop()

    async def close(self) -> None:
        """:meth:`aclose`, under the official SDK's name."""
        await self.aclose()

    def _drop(self) -> None:
        if self._stream is not None:
            self._stream.reset()
            self._stream = None
        self._decoder = _s2s.FrameDecoder()
        self._sse_decoder = _sse.SseDecoder()
        self._ended = False
        self._ready.clear()

    def _exhausted(self) -> bool:
        return (self._count is not None and self._count <= 0) or (
            self._bytes is not None and self._bytes <= 0
        )

    async def __anext__(self) -> ReadBatch:
        while True:
            if self._done:
                raise StopAsyncIteration
            try:
                batch = await self._next()
            except S2Error as exc:
                if self._done:  # aclose() from another task reset the stream under us
                    raise StopAsyncIteration from None
                self._drop()
                await self._recover(exc)
                continue
            if batch is None:
                self._done = True
                self._drop()
                raise StopAsyncIteration
            if self._account(batch):
                self._budget.progress()
                return batch

    def _account(self, batch: ReadBatch) -> bool:
        """Carry the resume state past ``batch``; True if it has records to yield."""
        if batch.tail is not None:
            self.tail = batch.tail
            self._last_tail_at = time.monotonic()
        records = batch.records
        if records:
            last = records[-1].seq_num
            self._start = SeqNum(last + 1)
            if self._count is not None:
                self._count -= len(records)
            if self._bytes is not None:
                self._bytes -= sum(r.metered_bytes for r in records)
            if self.tail is not None and last + 1 >= self.tail.seq_num:
                self.caught_up.set()
            return True
        if batch.tail is None:
            raise RemoteProtocolError("empty read batch without a tail")
        if not isinstance(self._start, SeqNum):
            # A tail-offset or timestamp start is anchored by the first tail seen, so that a
            # reconnect does not evaluate it again (docs/retry-safety.md#read-sessions-resume).
            # A position already known is kept: a heartbeat never moves it past records not yet
            # received.
            self._start = SeqNum(batch.tail.seq_num)
        if self._start.value >= batch.tail.seq_num:
            self.caught_up.set()
        return False

    async def _recover(self, exc: S2Error) -> None:
        if not exc.is_retryable:
            self._done = True
            raise exc
        delay = self._budget.take(exc)  # server_draining is free (bounded): see Budget
        if delay is None and self._indefinite:
            base = self._api.retry.max_base_delay
            delay = base + random.uniform(0, base)
        if delay is None:
            self._done = True
            raise exc
        self.reconnects += 1
        await asyncio.sleep(delay)

    def _query(self) -> dict[str, str | int]:
        limit = ReadLimit(count=self._count, bytes=self._bytes)
        wait = self._wait
        if wait is not None and self._last_tail_at is not None:
            wait = max(0, wait - int(time.monotonic() - self._last_tail_at))
        return read_query(self._start, limit, self._until, self._clamp, wait)

    async def _connect(self) -> Exchange:
        from urllib.parse import urlencode

        path = f"{self._path}?{urlencode(self._query())}"
        stream = await self._api.open(
            "GET", path, basin=self._basin, headers=self._headers, end_stream=True
        )
        try:
            async with asyncio.timeout(self._api.timeout.request):
                status, _ = await stream.response_headers()
                if status != 200:
                    raise server_error(status, await stream.read_all(64 * 1024))
        except TimeoutError as exc:
            stream.reset()
            raise RequestTimeout("read session: no response within the request timeout") from exc
        except BaseException:
            stream.reset()
            raise
        return stream

    async def _next(self) -> ReadBatch | None:
        """The next batch (heartbeats included), or None when the server ended the session."""
        while not self._ready:
            if self._exhausted():
                return None
            if self._stream is None:
                stream = await self._connect()
                if self._done:  # aclose() ran while connecting: nothing may be yielded
                    stream.reset()
                    return None
                self._stream = stream
            if self._stream.chunk_ready():
                # Catching up, chunks are already buffered: arming a timer for each one
                # would cost more than decoding it.
                chunk = await self._stream.read_chunk()
            else:
                try:
                    async with asyncio.timeout(self._heartbeat_timeout):
                        chunk = await self._stream.read_chunk()
                except TimeoutError as exc:
                    raise RequestTimeout(
                        f"read session: no heartbeat within {self._heartbeat_timeout:g} s"
                    ) from exc
            if chunk is None:
                if self._sse:
                    # A clean SSE end is `data:[DONE]`; without it the connection broke.
                    if not self._ended:
                        raise ConnectionLost("SSE stream ended without [DONE]", data_sent=False)
                else:
                    self._decoder.end_of_stream()
                return None
            if self._sse:
                self._receive_sse(chunk)
            else:
                self._receive_s2s(chunk)
        return self._ready.popleft()

    def _receive_s2s(self, chunk: bytes) -> None:
        self._decoder.receive_data(chunk)
        while (event := self._decoder.next_event()) is not None:
            if isinstance(event, _s2s.Terminal):
                raise server_error(event.status, event.body)
            try:
                self._ready.append(_proto.decode_read_batch(event.payload))
            except _proto.ProtoDecodeError as exc:
                raise RemoteProtocolError(f"undecodable read batch: {exc}") from exc

    def _receive_sse(self, chunk: bytes) -> None:
        try:
            self._sse_decoder.receive_data(chunk)
            events = list(self._sse_decoder)
        except ValueError as exc:
            raise RemoteProtocolError(f"bad SSE stream: {exc}") from exc
        for event in events:
            try:
                if event.event == "batch":
                    self._ready.append(_json.decode_read_batch(event.data, "base64"))
                elif event.event == "ping":
                    self._ready.append(ReadBatch(records=(), tail=_json.decode_tail(event.data)))
                elif event.event == "error":
                    raise sse_error(event.data)
                elif event.data == "[DONE]":
                    self._ended = True
            except (_json.JsonShapeError, _json.JsonInvalid) as exc:
                raise RemoteProtocolError(f"bad SSE event: {exc}") from exc


async def collect(session: ReadSession) -> list[ReadBatch]:
    """Every batch of a bounded session (a small helper for scripts and tests)."""
    out = []
    async with contextlib.aclosing(session):
        async for batch in session:
            out.append(batch)
    return out
