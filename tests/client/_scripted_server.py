"""A scriptable raw HTTP/2 server for the transport tests (``h2`` server side, 127.0.0.1:0).

Each request runs a *script*: an async function of a :class:`ServerStream` that decides what
the server does: answer, echo, stall, withhold flow-control window, reset the stream, send
GOAWAY, close or abort the connection. Connection-wide behaviour (the SETTINGS the server
announces, a server that never speaks, one that stops reading) is set on the server.

Besides ``h2``'s view, every connection parses the client's frames off the wire itself and
records each DATA payload per stream (``ServerConnection.raw``), so a test can prove what
reached the server even on streams ``h2`` has already closed (gap G2,
docs/retry-safety.md#gaps-found-in-other-sdks).

Waiting is event-driven: ``await server.until(predicate)`` re-checks after everything the
server sees or does, so tests never sleep for a fixed time.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame, WindowUpdateFrame

Script = Callable[["ServerStream"], Awaitable[None]]

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8
_PADDED = 0x8


class ServerStream:
    """One request as the server sees it, with the script's controls."""

    def __init__(self, conn: ServerConnection, stream_id: int, headers: list[Any]) -> None:
        self.conn = conn
        self.server = conn.server
        self.stream_id = stream_id
        self.headers: dict[str, str] = {}
        for name, value in headers:
            self.headers[bytes(name).decode()] = bytes(value).decode()
        self.method = self.headers.get(":method", "")
        self.path = self.headers.get(":path", "")
        self.body = bytearray()  # what h2 delivered
        self.ended = False  # END_STREAM received
        self.reset_code: int | None = None  # RST_STREAM from the client
        self.auto_credit = conn.server.auto_credit
        self._chunks: collections.deque[bytes] = collections.deque()

    # -- waiting ---------------------------------------------------------------------------

    async def wait_body(self, size: int) -> None:
        """Wait until ``size`` body bytes arrived (or the request ended or was reset)."""
        await self.server.until(
            lambda: len(self.body) >= size or self.ended or self.reset_code is not None
        )

    async def wait_end(self) -> None:
        """Wait for END_STREAM (or a reset)."""
        await self.server.until(lambda: self.ended or self.reset_code is not None)

    async def read(self) -> bytes | None:
        """The next body chunk, or None at END_STREAM or reset."""
        await self.server.until(
            lambda: bool(self._chunks) or self.ended or self.reset_code is not None
        )
        return self._chunks.popleft() if self._chunks else None

    # -- answering -------------------------------------------------------------------------

    def respond(
        self, status: int = 200, headers: Sequence[tuple[str, str]] = (), *, end: bool = False
    ) -> None:
        block = [(":status", str(status)), *headers]
        self.conn.h2.send_headers(self.stream_id, block, end_stream=end)
        self.conn.flush()

    async def send(self, data: bytes, *, end: bool = False) -> None:
        """Send body bytes, waiting for the client's flow-control window."""
        h2conn = self.conn.h2

        def window() -> int:
            stream_window = h2conn.local_flow_control_window(self.stream_id)
            return min(stream_window, h2conn.max_outbound_frame_size)

        view = memoryview(data)
        while True:
            if view:
                await self.server.until(lambda: window() > 0)
            size = min(len(view), window())
            last = end and size == len(view)
            if size or last:
                h2conn.send_data(self.stream_id, view[:size], end_stream=last)
                self.conn.flush()
            view = view[size:]
            if not view:
                return

    def end(self) -> None:
        self.conn.h2.end_stream(self.stream_id)
        self.conn.flush()

    def reset(self, error_code: int) -> None:
        self.conn.h2.reset_stream(self.stream_id, error_code)
        self.conn.flush()

    def grant(self, size: int) -> None:
        """Open this stream's window (and the connection's) by ``size`` bytes."""
        self.conn.h2.increment_flow_control_window(size, self.stream_id)
        self.conn.h2.increment_flow_control_window(size)
        self.conn.flush()


class ServerConnection(asyncio.Protocol):
    """One accepted connection."""

    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: server.initial_window_size,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: server.max_concurrent_streams,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: server.max_frame_size,
            },
        )
        self.h2.max_inbound_frame_size = server.max_frame_size
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, ServerStream] = {}
        self.raw: dict[int, bytearray] = {}  # DATA payload per stream, off the wire
        self.frames: list[tuple[int, int, int]] = []  # (type, flags, stream id) received
        self.raw_data_total = 0
        self.client_goaway: h2.events.ConnectionTerminated | None = None
        self.lost = False
        self._unparsed = bytearray()
        self._preface_left = len(_PREFACE)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- controls --------------------------------------------------------------------------

    def goaway(self, last_stream_id: int | None = None, error_code: int = 0) -> None:
        """Write GOAWAY behind h2's back (it keeps serving the streams it has)."""
        if last_stream_id is None:
            last_stream_id = self.h2.highest_inbound_stream_id
        self.flush()
        frame = GoAwayFrame(0, last_stream_id=last_stream_id, error_code=error_code)
        self.write(frame.serialize())

    def raw_window_update(self, stream_id: int, size: int) -> None:
        """Write WINDOW_UPDATE behind h2's back (for a stream it has closed)."""
        frame = WindowUpdateFrame(stream_id, window_increment=size)
        self.write(frame.serialize())

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def freeze(self) -> None:
        """Stop reading: nothing the client sends is seen or answered any more."""
        if self.transport is not None:
            self.transport.pause_reading()

    def thaw(self) -> None:
        """Read again after ``freeze``."""
        if self.transport is not None:
            self.transport.resume_reading()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.write(data)
        self.server.notify()

    def count(self, frame_type: int) -> int:
        return sum(1 for t, _, _ in self.frames if t == frame_type)

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.append(self)
        if not self.server.silent:
            self.h2.initiate_connection()
            extra = self.server.connection_window - 65_535
            if extra > 0:
                self.h2.increment_flow_control_window(extra)
            self.flush()
        self.server.notify()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        for task in self._tasks:
            task.cancel()
        self.server.notify()

    def data_received(self, data: bytes) -> None:
        self._record(data)
        limit = self.server.abort_after_data
        if limit is not None and self.raw_data_total >= limit:
            self.abort()
            return
        if self.server.silent:
            self.server.notify()
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.server.protocol_errors.append(exc)
            self.close()
            return
        for event in events:
            self._on_event(event)
        self.flush()

    # -- internals -------------------------------------------------------------------------

    def _record(self, data: bytes) -> None:
        if self._preface_left:
            skip = min(self._preface_left, len(data))
            self._preface_left -= skip
            data = data[skip:]
        buf = self._unparsed
        buf += data
        while len(buf) >= 9:
            length = int.from_bytes(buf[0:3], "big")
            if len(buf) < 9 + length:
                break
            frame_type, flags = buf[3], buf[4]
            stream_id = int.from_bytes(buf[5:9], "big") & 0x7FFF_FFFF
            payload = bytes(buf[9 : 9 + length])
            del buf[: 9 + length]
            self.frames.append((frame_type, flags, stream_id))
            if frame_type == DATA:
                if flags & _PADDED:
                    payload = payload[1 : len(payload) - payload[0]]
                self.raw.setdefault(stream_id, bytearray()).extend(payload)
                self.raw_data_total += len(payload)

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            stream = ServerStream(self, event.stream_id, list(event.headers))
            self.streams[event.stream_id] = stream
            self.server.streams.append(stream)
            if event.stream_ended is not None:
                stream.ended = True
            task = asyncio.get_running_loop().create_task(self._run(stream))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams[event.stream_id]
            if event.data:
                stream.body += event.data
                stream._chunks.append(event.data)
            if stream.auto_credit and event.flow_controlled_length:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.streams[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            if (one := self.streams.get(event.stream_id)) is not None:
                one.reset_code = int(event.error_code)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.client_goaway = event

    async def _run(self, stream: ServerStream) -> None:
        try:
            await self.server.script(stream)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.server.script_errors.append(exc)


class ScriptedServer:
    """A raw HTTP/2 server; ``async with ScriptedServer(script) as server``.

    Args:
        script: what to do with each request (default: 200, empty body).
        ssl_context: serve TLS (set its ALPN yourself).
        initial_window_size: SETTINGS_INITIAL_WINDOW_SIZE (0 stalls every request body).
        max_concurrent_streams: SETTINGS_MAX_CONCURRENT_STREAMS.
        max_frame_size: SETTINGS_MAX_FRAME_SIZE.
        connection_window: the connection's receive window (RFC 9113 §6.9.2).
        auto_credit: give flow-control credit back as soon as DATA arrives.
        silent: accept connections but never send a byte (not even SETTINGS).
        abort_after_data: abort a connection once it received this many DATA bytes.
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        initial_window_size: int = 65_535,
        max_concurrent_streams: int = 100,
        max_frame_size: int = 16_384,
        connection_window: int = 65_535,
        auto_credit: bool = True,
        silent: bool = False,
        abort_after_data: int | None = None,
    ) -> None:
        self.script: Script = script or respond()
        self.ssl_context = ssl_context
        self.initial_window_size = initial_window_size
        self.max_concurrent_streams = max_concurrent_streams
        self.max_frame_size = max_frame_size
        self.connection_window = connection_window
        self.auto_credit = auto_credit
        self.silent = silent
        self.abort_after_data = abort_after_data
        self.connections: list[ServerConnection] = []
        self.streams: list[ServerStream] = []
        self.script_errors: list[Exception] = []
        self.protocol_errors: list[Exception] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._waiters: list[asyncio.Future[None]] = []

    async def __aenter__(self) -> ScriptedServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ServerConnection(self), "127.0.0.1", 0, ssl=self.ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def close_listener(self) -> None:
        """Stop listening: new connections are refused; accepted ones stay."""
        if self._server is not None:
            self._server.close()

    async def aclose(self) -> None:
        self.close_listener()
        tasks: list[asyncio.Task[None]] = []
        for conn in self.connections:
            conn.abort()
            tasks.extend(conn._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await self.until(lambda: all(conn.lost for conn in self.connections))

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def until(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (re-checked whenever the server sees anything)."""
        async with asyncio.timeout(within):
            while not predicate():
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter

    async def next_stream(self, index: int) -> ServerStream:
        """Wait for the ``index``-th request (0-based) to arrive."""
        await self.until(lambda: len(self.streams) > index)
        return self.streams[index]


async def eventually(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Poll a client-side condition the server cannot observe (every few milliseconds)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - the client offers no event for these
            await asyncio.sleep(0.005)


# -- stock scripts ---------------------------------------------------------------------------


def respond(
    status: int = 200, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
) -> Script:
    """Read the whole request, then answer with ``status``, ``headers`` and ``body``."""

    async def script(stream: ServerStream) -> None:
        await stream.wait_end()
        stream.respond(status, headers, end=not body)
        if body:
            await stream.send(body, end=True)

    return script


def echo(status: int = 200) -> Script:
    """Answer at once, then send back every chunk as it arrives; end with the request."""

    async def script(stream: ServerStream) -> None:
        stream.respond(status)
        while (chunk := await stream.read()) is not None:
            await stream.send(chunk)
        stream.end()

    return script


def headers_then_stall(status: int = 200) -> Script:
    """Send the response head at once, then nothing more."""

    async def script(stream: ServerStream) -> None:
        stream.respond(status)
        await asyncio.Event().wait()

    return script


def hang() -> Script:
    """Accept the request and never answer."""

    async def script(stream: ServerStream) -> None:
        await asyncio.Event().wait()

    return script
