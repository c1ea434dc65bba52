"""The fault proxy's asyncio driver: a loopback listener, one :class:`Relay` per connection.

Each accepted client connection gets its own upstream connection (opened by a task the
connection owns) and a sans-IO :class:`Relay` between them. Protocol callbacks feed the relay
and write what it returns, synchronously; the only other moving parts, each owned by the
connection and released when it closes, are the upstream connect (or hold) task, a timer for
delayed messages or held connections, and the short task that empties a write buffer before
a reset. Backpressure is passed through: when one side stops taking bytes, the proxy stops
reading from the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import urllib.parse
from collections import deque
from typing import TYPE_CHECKING, Any

from s2kit.testing._faults._model import (
    Blackhole,
    Cut,
    CutAfter,
    Direction,
    FaultStats,
    Hold,
    RequestInfo,
    Reset,
    Stall,
    StreamFault,
    TraceEvent,
    conn_fault_kind,
)
from s2kit.testing._faults._relay import ProtocolViolation, Relay

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from types import TracebackType

    from s2kit.testing._faults._chaos import Chaos
    from s2kit.testing._faults._model import ConnFault

__all__ = ["FaultProxy"]

_MAX_REQUESTS = 100_000
_RESET_FLUSH = 2.0  # at most this long to empty a write buffer before a reset


class _Rule:
    __slots__ = ("fault", "left")

    def __init__(self, fault: StreamFault) -> None:
        self.fault = fault
        self.left = fault.times


class FaultProxy:
    """A fault-injecting HTTP/2 proxy on loopback, between a client and an S2 server.

    ``async with FaultProxy(lite.url) as proxy:`` then point the client at ``proxy.url``.
    With no faults it relays faithfully. Faults are scripted per request stream with
    :meth:`add` (:class:`StreamFault` rules, consumed in order), per connection with
    :meth:`next_connections`, at random with :attr:`chaos`, or applied on demand
    (:meth:`cut_all`, :meth:`goaway_all`, :meth:`release_windows`, :meth:`stop_listening`).

    Args:
        upstream: the server's URL (``http://host:port``; with ``https`` the proxy relays
            the TLS bytes untouched and only connection faults apply).
        host: where to listen.
        port: the port to listen on (0: a free one).
        manage_windows: let stream faults withhold flow-control window (``stall``).
        record: keep a :attr:`trace` of every S2S message and control event.
    """

    def __init__(
        self,
        upstream: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        manage_windows: bool = False,
        record: bool = False,
    ) -> None:
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream must be an http(s) URL, not {upstream!r}")
        self.upstream_tls = parts.scheme == "https"
        self._upstream = (parts.hostname, parts.port or (443 if self.upstream_tls else 80))
        self._host = host
        self._port = port
        self._manage = manage_windows
        self.stats = FaultStats()
        """Running totals."""
        self.trace: list[TraceEvent] | None = [] if record else None
        """S2S messages and control events, with ``record=True``."""
        self.requests: deque[RequestInfo] = deque(maxlen=_MAX_REQUESTS)
        """Every request stream seen (the latest 100,000)."""
        self.chaos: Chaos | None = None
        """Random faults for whatever no rule or queued connection fault covers."""
        self._rules: list[_Rule] = []
        self._conn_faults: deque[ConnFault | None] = deque()
        self._server: asyncio.Server | None = None
        self._conns: set[_Connection] = set()
        self._changed = asyncio.Event()
        self._count = 0

    # -- life cycle --------------------------------------------------------------------------

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        return self._port

    @property
    def url(self) -> str:
        """The URL clients use (same scheme as the upstream)."""
        return f"{'https' if self.upstream_tls else 'http'}://{self._host}:{self._port}"

    async def start(self) -> str:
        """Start listening; returns :attr:`url`."""
        await self.start_listening()
        return self.url

    async def aclose(self) -> None:
        """Stop listening and drop every connection (reset). Idempotent."""
        self.stop_listening()
        for conn in list(self._conns):
            conn.close(reset=True)
        for conn in list(self._conns):
            await conn.wait_closed()

    async def start_listening(self) -> None:
        """Accept connections (again) on :attr:`port`."""
        if self._server is not None:
            return
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Side(self, None), self._host, self._port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]

    def stop_listening(self) -> None:
        """Close the listening socket: new connections are refused (ECONNREFUSED) until
        :meth:`start_listening`. Open connections are not touched."""
        if self._server is not None:
            self._server.close()
            self._server = None

    # -- scripting ---------------------------------------------------------------------------

    def add(self, *faults: StreamFault) -> None:
        """Add stream rules; each new request takes the first rule that matches and has uses
        left (see :class:`StreamFault`)."""
        self._rules.extend(_Rule(f) for f in faults)

    def next_connections(self, *faults: ConnFault | None) -> None:
        """Queue connection faults: the next accepted connections take one each, in order
        (None: a connection without fault)."""
        self._conn_faults.extend(faults)

    def pending(self) -> int:
        """Stream-rule uses and queued connection faults not yet consumed."""
        return sum(r.left for r in self._rules) + len(self._conn_faults)

    def cut_all(self, *, reset: bool = True) -> None:
        """Drop every open connection now."""
        for conn in list(self._conns):
            conn.cut(Cut(reset=reset))
        self._notify()

    def goaway_all(self, code: int = 0, last_stream_id: int | None = None) -> None:
        """Send GOAWAY to every client in the server's name (default last stream id: the
        highest each client opened)."""
        for conn in list(self._conns):
            conn.relay.goaway(code, last_stream_id)
            conn.flush()

    def release_windows(self) -> None:
        """Give every stalled stream its withheld flow-control window."""
        for conn in list(self._conns):
            conn.relay.release_windows()
            conn.flush()

    @property
    def open_connections(self) -> int:
        """Client connections currently open."""
        return len(self._conns)

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until ``predicate()`` holds; it is re-checked after everything the proxy does.

        Raises:
            TimeoutError: it did not hold within ``within`` seconds.
        """
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    # -- for connections -------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()

    def _accept(self, side: _Side, transport: asyncio.Transport) -> _Connection:
        self._count += 1
        self.stats.connections += 1
        if self._conn_faults:
            fault = self._conn_faults.popleft()
        else:
            fault = self.chaos.connection_fault(self._count) if self.chaos else None
        conn = _Connection(self, self._count, side, transport, fault)
        self._conns.add(conn)
        conn.start()
        self._notify()
        return conn

    def _choose(self, request: RequestInfo) -> StreamFault | None:
        self.requests.append(request)
        for rule in self._rules:
            if rule.left > 0 and rule.fault.match.matches(request):
                rule.left -= 1
                return rule.fault
        return self.chaos.stream_fault(request) if self.chaos else None

    def _relay(self, conn: int) -> Relay:
        loop = asyncio.get_running_loop()
        relay = Relay(
            conn=conn,
            choose=self._choose,
            stats=self.stats,
            now=loop.time,
            manage_windows=self._manage,
            trace=self.trace,
        )
        relay.raw = self.upstream_tls
        return relay


class _Side(asyncio.Protocol):
    """One socket of a proxied connection (the client's, or the server's once opened)."""

    def __init__(self, proxy: FaultProxy, conn: _Connection | None) -> None:
        self.proxy = proxy
        self.conn = conn
        self.is_client = conn is None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.conn is None:
            self.conn = self.proxy._accept(self, transport)

    def data_received(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.received(self.is_client, data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.conn.lost(self.is_client, exc)

    def pause_writing(self) -> None:
        if self.conn is not None:
            self.conn.backpressure(self.is_client, True)

    def resume_writing(self) -> None:
        if self.conn is not None:
            self.conn.backpressure(self.is_client, False)


def _reset(transport: asyncio.Transport | None) -> None:
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _Connection:
    """A client connection, its upstream connection and the relay between them."""

    def __init__(
        self,
        proxy: FaultProxy,
        number: int,
        side: _Side,
        client: asyncio.Transport,
        fault: ConnFault | None,
    ) -> None:
        self.proxy = proxy
        self.number = number
        self.relay = proxy._relay(number)
        self.client: asyncio.Transport = client
        self.server: asyncio.Transport | None = None
        self.fault = fault
        self._loop = asyncio.get_running_loop()
        self._pending_up: list[bytes] = []
        self._tasks: set[asyncio.Task[None]] = set()  # the connect and the reset-flush task
        self._timer: asyncio.TimerHandle | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._counted = {True: 0, False: 0}  # bytes received from the client / the server
        self._paused: dict[bool, set[str]] = {True: set(), False: set()}  # by reading side
        self._closed = asyncio.Event()
        self._lost = {True: False, False: False}
        self._cutting = False
        self._flushed = asyncio.Event()
        self.closing = False

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        fault = self.fault
        if fault is not None:
            self.proxy.stats.faults[conn_fault_kind(fault)] += 1
        if isinstance(fault, Reset):
            self.close(reset=True)
        elif isinstance(fault, Blackhole):
            self._pause(True, "blackhole")
            self._timer = self._loop.call_later(fault.seconds, self.close, True)
        else:
            self._spawn(self._connect())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro, name=f"fault-proxy-{self.number}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._maybe_done()

    async def _connect(self) -> None:
        fault = self.fault
        try:
            if isinstance(fault, Hold):
                self._pause(True, "hold")
                async with asyncio.timeout(fault.seconds):
                    await fault.release.wait()
                self._unpause(True, "hold")
            host, port = self.proxy._upstream
            _, side = await self._loop.create_connection(
                lambda: _Side(self.proxy, self), host, port
            )
        except (OSError, TimeoutError):
            self.close(reset=True)
            return
        if self.closing:
            _reset(side.transport)
            return
        self.server = side.transport
        if self._pending_up:
            assert self.server is not None
            self.server.write(b"".join(self._pending_up))
            self._pending_up.clear()

    def close(self, reset: bool = False) -> None:
        """Close both sides (RST or FIN) and release everything the connection owns."""
        if self.closing:
            return
        self.closing = True
        for handle in (self._timer, self._tick):
            if handle is not None:
                handle.cancel()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for transport in (self.client, self.server):
            if reset:
                _reset(transport)
            elif transport is not None:
                transport.close()
        self._maybe_done()

    def _buffered(self) -> int:
        server = self.server.get_write_buffer_size() if self.server is not None else 0
        return self.client.get_write_buffer_size() + server

    def cut(self, cut: Cut) -> None:
        """Drop the connection once everything already relayed has reached the kernel (a
        FIN follows the buffered bytes by itself; a reset must wait for them)."""
        if self.closing or self._cutting:
            return
        if not cut.reset or not self._buffered():
            self.close(reset=cut.reset)
            return
        self._cutting = True
        for transport in (self.client, self.server):
            if transport is not None:
                # pause_writing now, resume_writing once the buffer is empty.
                transport.set_write_buffer_limits(high=0, low=0)
        self._spawn(self._reset_when_flushed())

    async def _reset_when_flushed(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_RESET_FLUSH):
                while self._buffered():
                    self._flushed.clear()
                    await self._flushed.wait()
        self.close(reset=True)

    def lost(self, is_client: bool, exc: Exception | None) -> None:
        self._lost[is_client] = True
        if not self.closing:
            # Mirror the way it ended on the other side: a reset for a reset.
            self.close(reset=exc is not None)
        self._maybe_done()
        self.proxy._notify()

    def _maybe_done(self) -> None:
        server_done = self.server is None or self._lost[False]
        if self._lost[True] and server_done and not self._tasks:
            self.proxy._conns.discard(self)
            self._closed.set()

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_RESET_FLUSH):
                await self._closed.wait()
        self.proxy._conns.discard(self)

    # -- data --------------------------------------------------------------------------------

    def received(self, from_client: bool, data: bytes) -> None:
        if self.closing or self._cutting:
            return
        fault = self.fault
        direction = Direction.UP if from_client else Direction.DOWN
        if not isinstance(fault, CutAfter | Stall) or fault.direction is not direction:
            self._relay_bytes(from_client, data)
            return
        before = self._counted[from_client]
        self._counted[from_client] += len(data)
        reached = self._counted[from_client] >= fault.nbytes
        if isinstance(fault, CutAfter):
            # Only the whole frames within the first nbytes are forwarded.
            self._relay_bytes(from_client, data[: max(0, fault.nbytes - before)])
            if reached:
                self.cut(Cut(reset=fault.reset))
            return
        self._relay_bytes(from_client, data)
        if reached and "stall" not in self._paused[from_client]:
            self._pause(from_client, "stall")
            self._timer = self._loop.call_later(fault.seconds, self.close, fault.reset)

    def _relay_bytes(self, from_client: bool, data: bytes) -> None:
        try:
            if from_client:
                self.relay.receive_up(data)
            else:
                self.relay.receive_down(data)
        except ProtocolViolation:
            self.relay.cut = Cut(reset=True)
        self.flush()

    def flush(self) -> None:
        """Write what the relay produced; carry out a cut; arm the timer for delayed items."""
        up, down = self.relay.take_output()
        if up:
            if self.server is not None:
                self.server.write(up)
            else:
                self._pending_up.append(up)
        if down and not self.client.is_closing():
            self.client.write(down)
        if self.relay.cut is not None:
            self.cut(self.relay.cut)
        elif (deadline := self.relay.next_deadline()) is not None:
            if self._tick is not None:
                self._tick.cancel()
            self._tick = self._loop.call_at(deadline, self._on_tick)
        self.proxy._notify()

    def _on_tick(self) -> None:
        self._tick = None
        if not self.closing:
            self.relay.tick()
            self.flush()

    # -- backpressure --------------------------------------------------------------------------

    def backpressure(self, writer_is_client: bool, paused: bool) -> None:
        # A side that stops taking our writes stops us reading from the other side.
        if paused:
            self._pause(not writer_is_client, "backpressure")
        else:
            self._unpause(not writer_is_client, "backpressure")
            self._flushed.set()

    def _transport(self, is_client: bool) -> asyncio.Transport | None:
        return self.client if is_client else self.server

    def _pause(self, is_client: bool, reason: str) -> None:
        reasons = self._paused[is_client]
        transport = self._transport(is_client)
        if not reasons and transport is not None and not transport.is_closing():
            transport.pause_reading()
        reasons.add(reason)

    def _unpause(self, is_client: bool, reason: str) -> None:
        reasons = self._paused[is_client]
        reasons.discard(reason)
        transport = self._transport(is_client)
        if not reasons and transport is not None and not transport.is_closing():
            transport.resume_reading()
