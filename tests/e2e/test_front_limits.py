"""The HTTP front against hostile and slow clients: HTTP/2 abuse, HTTP/1.1 pipelining and
smuggling, deadlines for every wait, the connection cap, a TLS-only port.

Each attack is sent over a real socket to an ``HttpServer`` on 127.0.0.1 with short limits,
and each test checks that the server answers with the right refusal, stays bounded, and
keeps serving other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING

import h2.errors
import h2.events
import hpack
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
)
from test_http_front import RawH2, close_writer, duplex_echo, echo, read_until_eof

from s2kit.server._front import (
    HttpServer,
    Limits,
    Request,
    Responder,
    TlsConfigError,
    generate_self_signed_cert,
    make_self_signed_context,
    make_server_context,
)
from s2kit.server._front._h2conn import RESET_BURST

if TYPE_CHECKING:
    import pathlib
    from collections.abc import AsyncIterator

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
QUICK = Limits(
    header_timeout=0.5, body_timeout=0.5, send_timeout=0.5, idle_timeout=1.0, sweep_interval=0.1
)


@contextlib.asynccontextmanager
async def serving(handler: object = echo, **kwargs: object) -> AsyncIterator[HttpServer]:
    server = HttpServer(handler, **kwargs)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown(grace=1.0)


async def answered(port: int) -> float:
    """How long another client waits for an answer (it must get one)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.post(f"http://127.0.0.1:{port}/other", content=b"hi")
    assert response.status_code == 200
    return loop.time() - started


class RawFrames:
    """An HTTP/2 client that writes frames as told and only collects what comes back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.encoder = hpack.Encoder()
        self.received: list[Frame] = []

    @classmethod
    async def connect(cls, port: int) -> RawFrames:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(PREFACE + SettingsFrame(0).serialize())
        return cls(reader, writer)

    def block(self, path: str = "/", method: str = "GET") -> bytes:
        return self.encoder.encode(
            [(":method", method), (":scheme", "http"), (":authority", "x"), (":path", path)]
        )

    async def next_frame(self) -> Frame:
        head = await asyncio.wait_for(self.reader.readexactly(9), 5)
        frame, length = Frame.parse_frame_header(memoryview(head))
        frame.parse_body(memoryview(await asyncio.wait_for(self.reader.readexactly(length), 5)))
        return frame

    async def handshake(self) -> None:
        """ACK the server's two SETTINGS frames, so its limits apply as advertised."""
        acked = 0
        while acked < 2:
            frame = await self.next_frame()
            if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                self.writer.write(SettingsFrame(0, flags=["ACK"]).serialize())
                acked += 1

    async def drain_until_closed(self, within: float = 5.0) -> list[Frame]:
        """Read frames until the server closes the connection."""
        buffer = bytearray()
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(within):
                while data := await self.reader.read(65536):
                    buffer += data
        while len(buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(bytes(buffer[:9])))
            if len(buffer) < 9 + length:
                break
            frame.parse_body(memoryview(bytes(buffer[9 : 9 + length])))
            self.received.append(frame)
            del buffer[: 9 + length]
        return self.received


def goaway_codes(frames: list[Frame]) -> list[int]:
    return [f.error_code for f in frames if isinstance(f, GoAwayFrame)]


# --- HTTP/2 -------------------------------------------------------------------------------


async def test_rapid_reset_gets_goaway_enhance_your_calm() -> None:
    async with serving() as server:
        attacker = await RawFrames.connect(server.port)
        burst = bytearray()
        for i in range(RESET_BURST * 3):
            sid = 2 * i + 1
            burst += HeadersFrame(sid, attacker.block(), flags=["END_HEADERS"]).serialize()
            burst += RstStreamFrame(sid, error_code=h2.errors.ErrorCodes.CANCEL).serialize()
        attacker.writer.write(burst)
        frames = await attacker.drain_until_closed()
        assert goaway_codes(frames) == [h2.errors.ErrorCodes.ENHANCE_YOUR_CALM]
        await close_writer(attacker.writer)
        assert await answered(server.port) < 2.0
        assert server.statistics().active_requests == 0


async def test_a_few_resets_are_fine() -> None:
    async with serving(duplex_echo) as server, await RawH2.connect(server.port) as client:
        for _ in range(50):
            client.reset(client.request("/", end=False))
        sid = client.request("/", end=False)
        await client.send(sid, b"still here", end=True)
        status, _, body = await client.response(sid)
        assert (status, body) == (200, b"still here")
        assert not client.goaways


async def test_a_continuation_flood_is_refused_at_the_header_list_limit() -> None:
    async with serving() as server:
        attacker = await RawFrames.connect(server.port)
        attacker.writer.write(HeadersFrame(1, attacker.block()).serialize())  # no END_HEADERS
        # 60 x 256 KiB CONTINUATION frames: under h2's own backlog of 64 frames, far past the
        # advertised 64 KiB header list; only a bound on the block as it arrives stops it.
        with contextlib.suppress(ConnectionError):
            for _ in range(60):
                attacker.writer.write(ContinuationFrame(1, b"\x00" * (256 << 10)).serialize())
                await attacker.writer.drain()
        frames = await attacker.drain_until_closed()
        # The GOAWAY may be lost to the RST our unread flood causes; if it arrives, it says why.
        assert goaway_codes(frames) in ([], [h2.errors.ErrorCodes.ENHANCE_YOUR_CALM])
        await close_writer(attacker.writer)
        assert await answered(server.port) < 2.0


async def test_a_stream_above_the_concurrency_limit_is_refused_not_the_connection() -> None:
    async with serving(duplex_echo) as server:
        client = await RawFrames.connect(server.port)
        await client.handshake()
        limit = 1000  # advertised by lite (MAX_CONCURRENT_STREAMS)
        for i in range(limit + 1):  # one more than allowed, each left open (no END_STREAM)
            client.writer.write(
                HeadersFrame(
                    2 * i + 1, client.block("/", "POST"), flags=["END_HEADERS"]
                ).serialize()
            )
        extra = 2 * limit + 1
        while not isinstance(frame := await client.next_frame(), RstStreamFrame):
            assert not isinstance(frame, GoAwayFrame)
        assert (frame.stream_id, frame.error_code) == (extra, h2.errors.ErrorCodes.REFUSED_STREAM)
        # The connection lives on: the first stream still gets its answer.
        client.writer.write(DataFrame(1, b"first", flags=["END_STREAM"]).serialize())
        while not (isinstance(frame := await client.next_frame(), DataFrame) and frame.data):
            assert not isinstance(frame, GoAwayFrame | RstStreamFrame)
        assert (frame.stream_id, frame.data) == (1, b"first")
        await close_writer(client.writer)


async def test_a_header_block_left_open_is_closed_after_the_header_timeout() -> None:
    async with serving(limits=QUICK) as server:
        attacker = await RawFrames.connect(server.port)
        attacker.writer.write(HeadersFrame(1, attacker.block()).serialize())  # no END_HEADERS
        loop = asyncio.get_running_loop()
        started = loop.time()
        await attacker.drain_until_closed()
        assert loop.time() - started < 3.0
        await close_writer(attacker.writer)


async def test_an_idle_http2_connection_gets_goaway() -> None:
    async with serving(limits=QUICK) as server, await RawH2.connect(server.port) as client:
        sid = client.request("/", end=True)
        assert (await client.response(sid))[0] == 200
        await asyncio.wait_for(client.goaway_received.wait(), 5)
        assert client.goaways[0].error_code == 0


async def test_a_stalled_unary_body_on_http2_is_reset() -> None:
    async with serving(limits=QUICK) as server, await RawH2.connect(server.port) as client:
        sid = client.request("/", end=False)
        await client.send(sid, b"part of it")  # and never the rest
        event = await client.next_event(sid)
        assert isinstance(event, h2.events.StreamReset)
        assert server.statistics().active_requests == 0


# --- HTTP/1.1 -----------------------------------------------------------------------------


async def slow_reader(request: Request, responder: Responder) -> None:
    """A response far larger than the transport's buffer."""
    await request.read_all(1 << 20)
    await responder.respond(200, [], b"x" * (8 << 20))


async def test_pipelined_requests_without_reading_hold_one_handler() -> None:
    async with serving(slow_reader) as server:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        request = b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n"
        for _ in range(50):
            writer.write(request * 100)
        await asyncio.sleep(0.5)
        assert server.statistics().active_requests <= 1
        writer.close()
        assert await answered(server.port) < 2.0


async def test_content_length_with_transfer_encoding_is_refused_and_closed() -> None:
    async with serving() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n"
            b"transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        response = await read_until_eof(reader)  # EOF: the server closed
        assert response.startswith(b"HTTP/1.1 400 ")
        await close_writer(writer)


async def test_slowloris_headers_are_cut_off() -> None:
    async with serving(limits=QUICK) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with contextlib.suppress(ConnectionError):
            for byte in b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: " + b"y" * 100:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
                if reader.at_eof():
                    break
        with contextlib.suppress(ConnectionError):  # a reset if a byte was still in flight
            await read_until_eof(reader)
        assert loop.time() - started < 3.0
        await close_writer(writer)


async def test_a_stalled_unary_body_on_http1_gets_408() -> None:
    async with serving(limits=QUICK) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nonly this")
        response = await read_until_eof(reader)
        assert response.startswith(b"HTTP/1.1 408 ")
        await close_writer(writer)


async def test_an_idle_keepalive_connection_is_closed() -> None:
    async with serving(limits=QUICK) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        response = await read_until_eof(reader)  # ends when the idle deadline closes it
        assert response.startswith(b"HTTP/1.1 200 ")
        await close_writer(writer)


async def test_a_client_that_never_reads_is_dropped_after_the_send_timeout() -> None:
    async with serving(slow_reader, limits=QUICK) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        loop = asyncio.get_running_loop()
        started = loop.time()
        while server.statistics().open_connections and loop.time() - started < 5:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert server.statistics().open_connections == 0
        sock.close()


# --- connections --------------------------------------------------------------------------


async def test_at_the_connection_cap_the_longest_idle_connection_makes_room() -> None:
    limits = Limits(max_connections=3)
    async with serving(limits=limits) as server:
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
        await asyncio.sleep(0.2)
        assert await answered(server.port) < 2.0  # one idle connection was dropped for it
        closed = [r.at_eof() for r, _ in idle]
        for _, writer in idle:
            await close_writer(writer)
        assert closed.count(True) >= 1


async def test_at_the_connection_cap_a_request_not_read_yet_is_not_taken_for_idle() -> None:
    """The oldest connection has sent its request, but lite has not read it yet (its loop
    was busy: here its reading is paused). Room is made from the silent ones instead."""
    limits = Limits(max_connections=4)  # 3 open: the accept loop evicts nothing by itself
    async with serving(limits=limits) as server, contextlib.AsyncExitStack() as stack:
        clients = []
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            stack.push_async_callback(close_writer, writer)
            clients.append((reader, writer))
            await asyncio.sleep(0.05)  # the first is the oldest
        sniffers = sorted(server._tasks.values(), key=lambda s: s.started)  # type: ignore[union-attr]
        first = sniffers[0]
        assert first is not None
        assert first.connection is None
        first._transport.pause_reading()  # type: ignore[union-attr]
        reader, writer = clients[0]
        writer.write(b"GET /first HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.sleep(0.1)  # in lite's socket, unread
        assert server._evict_idle()
        assert not first.aborted
        assert [s.aborted for s in sniffers[1:]] == [True, False]  # the oldest silent one
        first._transport.resume_reading()  # type: ignore[union-attr]
        async with asyncio.timeout(5):
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")


async def test_at_the_connection_cap_busy_connections_are_kept() -> None:
    async def forever(request: Request, responder: Responder) -> None:
        await asyncio.Event().wait()

    limits = Limits(max_connections=3)
    async with serving(forever, limits=limits) as server:
        busy = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
        for _, writer in busy:
            writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await reader.read(1)  # waits in the backlog: every connection is busy
        await close_writer(busy[0][1])
        async with asyncio.timeout(5):
            await asyncio.sleep(0)  # the freed slot goes to the waiting connection
        for _, w in busy[1:]:
            await close_writer(w)
        await close_writer(writer)
        assert server.statistics().open_connections <= 3


async def test_a_tls_only_port_refuses_plaintext() -> None:
    async with serving(ssl_context=make_self_signed_context(), tls_only=True) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        with contextlib.suppress(ConnectionError):  # closed unread: a reset, or an EOF
            assert await read_until_eof(reader) == b""
        await close_writer(writer)


# --- TLS configuration --------------------------------------------------------------------


def test_tls_configuration_mistakes_are_one_line_errors_naming_the_file(
    tmp_path: pathlib.Path,
) -> None:
    cert_pem, key_pem = generate_self_signed_cert()
    _, other_key = generate_self_signed_cert()
    cert, key, wrong, locked = (tmp_path / n for n in ("c.pem", "k.pem", "w.pem", "e.pem"))
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    wrong.write_bytes(other_key)
    private = serialization.load_pem_private_key(key_pem, password=None)
    locked.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    cases = [
        (tmp_path / "missing.pem", key, "cannot read the TLS certificate"),
        (cert, wrong, "does not match"),
        (cert, locked, "is encrypted"),
        (key, key, "not PEM"),
    ]
    for cert_path, key_path, says in cases:
        with pytest.raises(TlsConfigError, match=says) as info:
            make_server_context(cert_path, key_path)
        assert "\n" not in str(info.value)
        assert str(key_path) in str(info.value) or str(cert_path) in str(info.value)
