"""An HTTP/1.1 transport for unary requests and SSE reads, for networks hostile to HTTP/2.

It offers the same surface as the HTTP/2 pool (``open_stream`` returning a stream with
``send``/``end``/``reset``/``response_headers``/``read_chunk``/``read_all``/``data_sent``), one
request per connection at a time, with idle keep-alive connections reused. Append sessions
need full duplex and stay on HTTP/2. ``reset`` closes the connection: HTTP/1.1 cannot cancel a
single request otherwise, and a closed socket can send nothing more.

Requires ``h11`` (the ``http1`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from s2kit.client._transport._errors import tls_hint
from s2kit.errors import ClosedError, ConnectError, ConnectionLost, RemoteProtocolError, UsageError

if TYPE_CHECKING:
    from s2kit.client._transport import Origin

h11: Any
try:
    import h11
except ImportError:  # pragma: no cover - exercised only without the extra
    h11 = None

READ_SIZE = 256 * 1024
MAX_IDLE = 8


def _require_h11() -> Any:
    if h11 is None:
        raise UsageError("the HTTP/1.1 transport needs h11: pip install 's2kit[http1]'")
    return h11


@contextlib.contextmanager
def _io_errors(data_sent: bool, eof: bool = False) -> Iterator[None]:
    # The one place where socket and h11 exceptions become s2kit errors. Once the server has
    # closed the connection (``eof``), whatever h11 says of the unfinished exchange ("peer
    # closed connection without sending complete message body", "can't handle event type
    # ConnectionClosed") is a dropped connection: a transport failure, retryable, and
    # indefinite once the body was handed off, as on HTTP/2.
    try:
        yield
    except (ConnectionError, OSError) as exc:
        raise ConnectionLost(f"connection lost: {exc}", data_sent=data_sent) from exc
    except Exception as exc:
        if h11 is not None and isinstance(exc, h11.ProtocolError):
            if eof:
                raise ConnectionLost(
                    f"server closed the connection: {exc}", data_sent=data_sent
                ) from exc
            raise RemoteProtocolError(f"HTTP/1.1 protocol error: {exc}") from exc
        raise


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = _require_h11().Connection(_require_h11().CLIENT)

    def close(self) -> None:
        self.writer.close()

    @property
    def reusable(self) -> bool:
        lib = _require_h11()
        return self.h11.our_state is lib.DONE and self.h11.their_state is lib.DONE


class H1Stream:
    """One HTTP/1.1 request/response exchange (the H2Stream surface)."""

    def __init__(self, pool: H1Pool, origin: Origin, conn: _Conn, head: Any, end: bool) -> None:
        self._pool = pool
        self._origin = origin
        self._conn = conn
        self._head = head
        self._head_sent = False
        self._end_requested = end
        self.data_sent = False
        self._response: tuple[int, list[tuple[str, str]]] | None = None
        self._done = False
        self._closed = False
        self._eof = False  # the server closed its side

    async def _flush_head(self, content_length: int | None) -> None:
        if self._head_sent:
            return
        lib = _require_h11()
        # The caller may have declared the length already; framing headers are ours to set.
        headers = [h for h in self._head.headers if h[0] != b"content-length"]
        if content_length is not None:
            headers.append((b"content-length", str(content_length).encode()))
        elif not self._end_requested:
            headers.append((b"transfer-encoding", b"chunked"))
        req = lib.Request(method=self._head.method, target=self._head.target, headers=headers)
        out = self._conn.h11.send(req) or b""
        if self._end_requested:
            out += self._conn.h11.send(lib.EndOfMessage()) or b""
        self._head_sent = True
        await self._write(out)

    async def _write(self, data: bytes) -> None:
        with _io_errors(self.data_sent):
            self._conn.writer.write(data)
            await self._conn.writer.drain()

    async def send(self, data: bytes, *, end_stream: bool = False) -> None:
        """Send body bytes (a whole unary body in one call uses Content-Length)."""
        lib = _require_h11()
        self.data_sent = True  # before any byte of the body can reach the socket
        if not self._head_sent:
            self._end_requested = False
            await self._flush_head(len(data) if end_stream else None)
        out = self._conn.h11.send(lib.Data(data=data)) or b""
        if end_stream:
            out += self._conn.h11.send(lib.EndOfMessage()) or b""
        await self._write(out)

    async def end(self) -> None:
        """End the request body."""
        lib = _require_h11()
        if not self._head_sent:
            await self._flush_head(0)
            await self._write(self._conn.h11.send(lib.EndOfMessage()) or b"")
            return
        await self._write(self._conn.h11.send(lib.EndOfMessage()) or b"")

    def reset(self, error_code: int = 0x8) -> None:
        """Abandon the exchange: the connection is closed and never reused."""
        if not self._closed:
            self._closed = True
            self._done = True
            self._conn.close()

    async def _next_event(self) -> Any:
        lib = _require_h11()
        if self._closed:
            raise ClosedError("request was reset")
        while True:
            with _io_errors(self.data_sent, eof=self._eof):
                event = self._conn.h11.next_event()
            if event is lib.NEED_DATA:
                with _io_errors(self.data_sent):
                    data = await self._conn.reader.read(READ_SIZE)
                self._eof = not data
                self._conn.h11.receive_data(data)
                continue
            if isinstance(event, lib.ConnectionClosed):
                raise ConnectionLost("server closed the connection", data_sent=self.data_sent)
            if isinstance(event, lib.InformationalResponse):
                continue
            return event

    async def response_headers(self) -> tuple[int, list[tuple[str, str]]]:
        """Status and lowercase headers."""
        if self._response is None:
            if not self._head_sent:
                await self._flush_head(None)
            event = await self._next_event()
            lib = _require_h11()
            if not isinstance(event, lib.Response):
                raise RemoteProtocolError(f"expected a response, got {event!r}")
            headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers]
            self._response = (event.status_code, headers)
        return self._response

    def chunk_ready(self) -> bool:
        """Whether :meth:`read_chunk` would return without waiting (only known at the end)."""
        return self._done

    async def read_chunk(self) -> bytes | None:
        """The next body chunk, None at the end (the connection then goes back to the pool)."""
        if self._done:
            return None
        await self.response_headers()
        lib = _require_h11()
        event = await self._next_event()
        if isinstance(event, lib.Data):
            return bytes(event.data)
        if isinstance(event, lib.EndOfMessage):
            self._done = True
            self._pool._release(self._origin, self._conn)
            return None
        raise RemoteProtocolError(f"unexpected HTTP/1.1 event {event!r}")

    async def read_all(self, limit: int) -> bytes:
        """The whole body (at most ``limit`` bytes)."""
        parts = []
        size = 0
        while (chunk := await self.read_chunk()) is not None:
            size += len(chunk)
            if size > limit:
                self.reset()
                raise RemoteProtocolError(f"response body exceeds {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)


class _Head:
    __slots__ = ("headers", "method", "target")

    def __init__(self, method: str, target: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.method = method.encode()
        self.target = target.encode()
        self.headers = headers


class H1Pool:
    """HTTP/1.1 keep-alive connections per origin (the ``ConnectionPool`` surface)."""

    def __init__(self, *, connect_timeout: float = 3.0, ssl_context: ssl.SSLContext | None = None):
        _require_h11()
        self._connect_timeout = connect_timeout
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Conn]] = {}
        self._closed = False

    async def _connect(self, origin: Origin) -> _Conn:
        ctx: ssl.SSLContext | None = None
        if origin.scheme == "https":
            ctx = self._ssl or ssl.create_default_context()
            ctx.set_alpn_protocols(["http/1.1"])
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(
                    origin.host, origin.port, ssl=ctx, server_hostname=origin.host if ctx else None
                )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            # A certificate that does not verify is configuration: no retry fixes it.
            raise ConnectError(
                f"cannot connect to {origin.host}:{origin.port}: {exc}",
                retryable=not isinstance(exc, ssl.SSLCertVerificationError),
                hint=tls_hint(exc),
            ) from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Conn(reader, writer)

    async def open_stream(
        self,
        origin: Origin,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        *,
        end_stream: bool = False,
    ) -> H1Stream:
        """Start a request on an idle or new connection."""
        if self._closed:
            raise ClosedError("connection pool is closed")
        idle = self._idle.get(origin, [])
        conn = None
        while idle:
            candidate = idle.pop()
            if not candidate.writer.is_closing() and not candidate.reader.at_eof():
                conn = candidate
                break
            candidate.close()
        if conn is None:
            conn = await self._connect(origin)
        authority = origin.host if origin.port in (80, 443) else f"{origin.host}:{origin.port}"
        raw = [(b"host", authority.encode())] + [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in headers
        ]
        stream = H1Stream(self, origin, conn, _Head(method, path, raw), end_stream)
        if end_stream:
            await stream._flush_head(None)
        return stream

    def _release(self, origin: Origin, conn: _Conn) -> None:
        if self._closed or not conn.reusable:
            conn.close()
            return
        conn.h11.start_next_cycle()
        idle = self._idle.setdefault(origin, [])
        if len(idle) < MAX_IDLE:
            idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        """Close every idle connection. Idempotent."""
        self._closed = True
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()
