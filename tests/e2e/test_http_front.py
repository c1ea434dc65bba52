"""End-to-end tests of the lite server's HTTP front, over real sockets on 127.0.0.1.

HTTP/2 behaviour that httpx hides (flow control, RST_STREAM, GOAWAY, full duplex) is driven
with ``RawH2``, a bare ``h2`` client; HTTP/1.1 edge cases use raw asyncio streams.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from typing import TYPE_CHECKING, Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import httpx
import pytest
import trustme
from hyperframe.frame import Frame, GoAwayFrame

from s2kit.server import _front
from s2kit.server._front import (
    BodyTooLarge,
    ClientDisconnected,
    HttpServer,
    Request,
    Responder,
    generate_self_signed_cert,
    make_self_signed_context,
    make_server_context,
)

if TYPE_CHECKING:
    import pathlib
    from collections.abc import AsyncIterator, Coroutine

TIMEOUT = 10.0


def run(coro: Coroutine[Any, Any, None]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(60):
            await coro

    asyncio.run(bounded())


async def echo(request: Request, responder: Responder) -> None:
    """Echo the body back, and the request head as ``x-*`` headers."""
    body = await request.read_all(64 << 20)
    await responder.respond(
        200,
        [
            ("x-method", request.method),
            ("x-path", request.path),
            ("x-query", request.query),
            ("x-authority", request.authority or ""),
            ("x-version", request.http_version),
            ("x-scheme", request.scheme),
            ("x-multi", ",".join(request.header_all("x-multi"))),
            ("x-te", request.header("Transfer-Encoding") or ""),
        ],
        body,
    )


async def duplex_echo(request: Request, responder: Responder) -> None:
    """Send the head at once, then echo every chunk as it arrives."""
    await responder.start(200, [("content-type", "application/octet-stream")])
    while (chunk := await request.read_chunk()) is not None:
        await responder.send(chunk)
    await responder.end()


class RawH2:
    """A bare HTTP/2 client over asyncio streams, driven frame by frame by the test.

    GOAWAY frames are taken out of the byte stream before ``h2`` sees them and kept in
    ``goaways``: ``h2`` goes CLOSED on any GOAWAY (python-hyper/h2#1181) and would refuse the
    rest of the streams a graceful GOAWAY promised to finish.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.reader = reader
        self.writer = writer
        self.queues: collections.defaultdict[int, asyncio.Queue[h2.events.Event | None]] = (
            collections.defaultdict(asyncio.Queue)
        )
        self.goaways: list[GoAwayFrame] = []
        self.settings_received = asyncio.Event()
        self.goaway_received = asyncio.Event()
        self.window_changed = asyncio.Event()
        self.closed = asyncio.Event()
        self._frames = bytearray()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, port: int, context: ssl.SSLContext | None = None) -> RawH2:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        client = cls(reader, writer)
        client.conn.initiate_connection()
        client.flush()
        client._task = asyncio.create_task(client._read_loop())
        return client

    async def __aenter__(self) -> RawH2:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    def flush(self) -> None:
        if data := self.conn.data_to_send():
            self.writer.write(data)

    def request(
        self,
        path: str = "/",
        *,
        method: str = "POST",
        end: bool = False,
        extra: tuple[tuple[bytes, bytes], ...] = (),
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":scheme", b"http"),
            (b":authority", b"127.0.0.1"),
            (b":path", path.encode()),
            *extra,
        ]
        self.conn.send_headers(stream_id, headers, end_stream=end)
        self.flush()
        return stream_id

    def send_available(self, stream_id: int, data: bytes) -> int:
        """Send as much of ``data`` as flow control allows now; return how much went."""
        sent = 0
        while sent < len(data):
            window = self.conn.local_flow_control_window(stream_id)
            size = min(window, self.conn.max_outbound_frame_size, len(data) - sent)
            if size <= 0:
                break
            self.conn.send_data(stream_id, data[sent : sent + size])
            sent += size
        self.flush()
        return sent

    async def send(self, stream_id: int, data: bytes, *, end: bool = False) -> None:
        sent = 0
        while sent < len(data):
            self.window_changed.clear()
            sent += self.send_available(stream_id, data[sent:])
            if sent < len(data):
                await asyncio.wait_for(self.window_changed.wait(), TIMEOUT)
        if end:
            self.conn.end_stream(stream_id)
            self.flush()

    def reset(self, stream_id: int) -> None:
        self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        self.flush()

    async def next_event(self, stream_id: int) -> h2.events.Event | None:
        queue = self.queues[stream_id]
        if self.closed.is_set() and queue.empty():
            return None
        return await asyncio.wait_for(queue.get(), TIMEOUT)

    async def response(self, stream_id: int) -> tuple[int, dict[bytes, bytes], bytes]:
        """Collect a whole response: status, headers and body (status -1 if reset)."""
        status, headers, body = -1, {}, bytearray()
        while True:
            event = await self.next_event(stream_id)
            if isinstance(event, h2.events.ResponseReceived):
                headers = dict(event.headers)
                status = int(headers[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                body += event.data or b""
            elif isinstance(event, h2.events.StreamEnded):
                return status, headers, bytes(body)
            elif isinstance(event, h2.events.StreamReset) or event is None:
                return -1, headers, bytes(body)

    def _strip_goaways(self, data: bytes) -> bytes:
        self._frames += data
        passed = bytearray()
        while len(self._frames) >= 9:
            length = int.from_bytes(self._frames[:3], "big")
            if len(self._frames) < 9 + length:
                break
            raw = bytes(self._frames[: 9 + length])
            del self._frames[: 9 + length]
            if raw[3] == 0x7:
                frame, _ = Frame.parse_frame_header(memoryview(raw[:9]))
                frame.parse_body(memoryview(raw[9:]))
                assert isinstance(frame, GoAwayFrame)
                self.goaways.append(frame)
                self.goaway_received.set()
            else:
                passed += raw
        return bytes(passed)

    async def _read_loop(self) -> None:
        try:
            while data := await self.reader.read(1 << 16):
                for event in self.conn.receive_data(self._strip_goaways(data)):
                    if isinstance(event, h2.events.DataReceived):
                        length = event.flow_controlled_length or 0
                        self.conn.acknowledge_received_data(length, event.stream_id)
                    if isinstance(event, h2.events.RemoteSettingsChanged):
                        self.settings_received.set()
                    if isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                        self.window_changed.set()
                    if stream_id := getattr(event, "stream_id", 0):
                        self.queues[stream_id].put_nowait(event)
                self.flush()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self.closed.set()
            for queue in self.queues.values():
                queue.put_nowait(None)


async def read_until_eof(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), TIMEOUT)


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def test_exports() -> None:
    assert _front.__all__ == [
        "BodyTooLarge",
        "ClientDisconnected",
        "Handler",
        "HttpServer",
        "Limits",
        "Request",
        "Responder",
        "ServerStatistics",
        "TlsConfigError",
        "default_max_connections",
        "generate_self_signed_cert",
        "make_self_signed_context",
        "make_server_context",
        "raise_fd_limit",
    ]
    assert HttpServer.__module__ == "s2kit.server._front"


# -- HTTP/2 -------------------------------------------------------------------------------


def test_h2c_unary_echo() -> None:
    async def main() -> None:
        async with (
            HttpServer(echo) as server,
            httpx.AsyncClient(http1=False, http2=True) as client,
        ):
            response = await client.post(
                f"http://127.0.0.1:{server.port}/v1/streams/a%2Fb?limit=3&x=",
                content=b"hello" * 50_000,
                headers=[("x-multi", "1"), ("x-multi", "2")],
            )
            assert response.http_version == "HTTP/2"
            assert response.status_code == 200
            assert response.content == b"hello" * 50_000
            assert response.headers["x-method"] == "POST"
            assert response.headers["x-path"] == "/v1/streams/a%2Fb"
            assert response.headers["x-query"] == "limit=3&x="
            assert response.headers["x-authority"] == f"127.0.0.1:{server.port}"
            assert response.headers["x-version"] == "2"
            assert response.headers["x-scheme"] == "http"
            assert response.headers["x-multi"] == "1,2"

    run(main())


def test_h2c_full_duplex_ping_pong() -> None:
    async def main() -> None:
        async with HttpServer(duplex_echo) as server, await RawH2.connect(server.port) as client:
            stream_id = client.request("/session")
            # The response head must come before the client has sent a single body byte.
            head = await client.next_event(stream_id)
            assert isinstance(head, h2.events.ResponseReceived)
            assert dict(head.headers)[b":status"] == b"200"
            for round_ in range(200):
                ping = b"ping %d" % round_
                await client.send(stream_id, ping)
                echoed = await client.next_event(stream_id)
                assert isinstance(echoed, h2.events.DataReceived)
                assert echoed.data == ping
            await client.send(stream_id, b"", end=True)
            last = await client.next_event(stream_id)
            if isinstance(last, h2.events.DataReceived):  # end() may close with an empty DATA
                assert last.data == b""
                last = await client.next_event(stream_id)
            assert isinstance(last, h2.events.StreamEnded)

    run(main())


def test_h2_large_bodies_both_ways() -> None:
    payload = bytes(range(256)) * 20_000  # 5 MB: several windows, frames and WINDOW_UPDATEs

    async def main() -> None:
        async with HttpServer(duplex_echo) as server, await RawH2.connect(server.port) as client:
            stream_id = client.request()
            sender = asyncio.create_task(client.send(stream_id, payload, end=True))
            status, _, body = await client.response(stream_id)
            await sender
            assert status == 200
            assert body == payload

    run(main())


def test_h2_backpressure_stops_a_client_the_handler_does_not_read() -> None:
    total = 4 << 20

    async def main() -> None:
        gate, entered = asyncio.Event(), asyncio.Event()

        async def lazy(request: Request, responder: Responder) -> None:
            entered.set()
            await gate.wait()
            body = await request.read_all(total)
            await responder.respond(200, [], str(len(body)).encode())

        async with HttpServer(lazy) as server, await RawH2.connect(server.port) as client:
            await asyncio.wait_for(client.settings_received.wait(), TIMEOUT)
            stream_id = client.request()
            await asyncio.wait_for(entered.wait(), TIMEOUT)
            data = b"x" * total
            sent = client.send_available(stream_id, data)
            await asyncio.sleep(0.3)  # room for any WINDOW_UPDATE the server might (wrongly) send
            sent += client.send_available(stream_id, data[sent:])
            assert sent == 1 << 20  # exactly one stream window, no more
            assert server.statistics().active_requests == 1
            gate.set()
            await client.send(stream_id, data[sent:], end=True)
            status, _, body = await client.response(stream_id)
            assert (status, body) == (200, str(total).encode())

    run(main())


def test_h2_rst_stream_cancels_the_handler() -> None:
    async def main() -> None:
        entered, finalized = asyncio.Event(), asyncio.Event()

        async def long_poll(request: Request, responder: Responder) -> None:
            if request.path == "/ok":
                await responder.respond(204, [], b"")
                return
            entered.set()
            try:
                await asyncio.Event().wait()  # parked on something unrelated to the socket
            finally:
                finalized.set()

        async with HttpServer(long_poll) as server, await RawH2.connect(server.port) as client:
            stream_id = client.request("/poll", method="GET", end=True)
            await asyncio.wait_for(entered.wait(), TIMEOUT)
            client.reset(stream_id)
            await asyncio.wait_for(finalized.wait(), TIMEOUT)
            # The connection survives the reset.
            status, _, _ = await client.response(client.request("/ok", method="GET", end=True))
            assert status == 204
            assert server.statistics().active_requests == 0

    run(main())


def test_h2_connection_loss_cancels_handlers() -> None:
    async def main() -> None:
        entered, finalized = asyncio.Semaphore(0), asyncio.Semaphore(0)

        async def stuck(request: Request, responder: Responder) -> None:
            await responder.start(200, [])
            entered.release()
            try:
                await asyncio.Event().wait()
            finally:
                finalized.release()

        async with HttpServer(stuck) as server:
            async with await RawH2.connect(server.port) as client:
                for _ in range(3):
                    client.request(method="GET", end=True)
                for _ in range(3):
                    await asyncio.wait_for(entered.acquire(), TIMEOUT)
            for _ in range(3):
                await asyncio.wait_for(finalized.acquire(), TIMEOUT)
            stats = server.statistics()
            assert (stats.open_connections, stats.active_requests) == (0, 0)

    run(main())


def test_h2_many_concurrent_streams_on_one_connection() -> None:
    count = 500

    async def main() -> None:
        arrived = 0
        everyone = asyncio.Event()
        peak: list[Any] = []

        async def barrier(request: Request, responder: Responder) -> None:
            nonlocal arrived
            arrived += 1
            if arrived == count:
                peak.append(server.statistics())
                everyone.set()
            await everyone.wait()  # only returns if all streams are served at once
            await responder.respond(200, [], request.path.encode())

        async with HttpServer(barrier) as server, await RawH2.connect(server.port) as client:
            await asyncio.wait_for(client.settings_received.wait(), TIMEOUT)
            streams = [client.request(f"/{i}", method="GET", end=True) for i in range(count)]
            responses = await asyncio.gather(*(client.response(s) for s in streams))
            assert [body for _, _, body in responses] == [f"/{i}".encode() for i in range(count)]
            assert peak[0].open_connections == 1
            assert peak[0].active_requests == count

    run(main())


def test_h2_body_too_large_answers_early_and_stops_the_upload() -> None:
    async def main() -> None:
        async def small(request: Request, responder: Responder) -> None:
            try:
                await request.read_all(10_000)
            except BodyTooLarge:
                await responder.respond(413, [], b"too big")

        async with HttpServer(small) as server, await RawH2.connect(server.port) as client:
            stream_id = client.request()
            await client.send(stream_id, b"x" * 50_000)  # and never END_STREAM
            events: list[h2.events.Event | None] = []
            while len(events) < 4:
                event = await client.next_event(stream_id)
                if not isinstance(event, h2.events.WindowUpdated):
                    events.append(event)
            kinds = [type(event) for event in events]
            assert kinds == [
                h2.events.ResponseReceived,
                h2.events.DataReceived,
                h2.events.StreamEnded,
                h2.events.StreamReset,
            ]
            reset = events[3]
            assert isinstance(reset, h2.events.StreamReset)
            assert reset.error_code == h2.errors.ErrorCodes.NO_ERROR

    run(main())


def test_handler_failures_never_break_the_connection() -> None:
    async def faulty(request: Request, responder: Responder) -> None:
        if request.path == "/raise":
            raise RuntimeError("boom (expected by the test)")
        if request.path == "/forget":
            return
        if request.path == "/unfinished":
            await responder.start(200, [])
            await responder.send(b"partial")
            return
        if request.path == "/raise-mid-response":
            await responder.start(200, [])
            await responder.send(b"partial")
            raise RuntimeError("mid-response (expected by the test)")
        await responder.respond(200, [], b"fine")

    async def main() -> None:
        async with HttpServer(faulty) as server, await RawH2.connect(server.port) as client:
            for path, expected in [
                ("/raise", (500, b"")),
                ("/forget", (500, b"")),
                ("/unfinished", (200, b"partial")),
                ("/raise-mid-response", (-1, b"partial")),
                ("/", (200, b"fine")),
            ]:
                status, _, body = await client.response(client.request(path, end=True))
                assert (status, body) == expected, path

    run(main())


def test_h2_shutdown_sends_goaway_and_waits_for_the_handler() -> None:
    async def main() -> None:
        entered, release = asyncio.Event(), asyncio.Event()
        drained: list[bool] = []

        async def slow(request: Request, responder: Responder) -> None:
            entered.set()
            await release.wait()
            await responder.respond(200, [], b"done")

        server = HttpServer(slow)
        await server.start()
        async with await RawH2.connect(server.port) as client:
            stream_id = client.request(method="GET", end=True)
            await asyncio.wait_for(entered.wait(), TIMEOUT)
            shutdown = asyncio.create_task(server.shutdown(on_drain=lambda: drained.append(True)))
            await asyncio.wait_for(client.goaway_received.wait(), TIMEOUT)
            assert drained == [True]
            goaway = client.goaways[0]
            assert (goaway.last_stream_id, goaway.error_code) == (stream_id, 0)
            # A stream opened after the GOAWAY is refused; the promised one still completes.
            late = client.request(method="GET", end=True)
            refused = await client.next_event(late)
            assert isinstance(refused, h2.events.StreamReset)
            assert refused.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
            await asyncio.sleep(0.1)
            assert not shutdown.done()
            release.set()
            assert await client.response(stream_id) == (
                200,
                {b":status": b"200", b"content-length": b"4"},
                b"done",
            )
            await asyncio.wait_for(shutdown, TIMEOUT)
            await asyncio.wait_for(client.closed.wait(), TIMEOUT)  # the server hung up
        await server.shutdown()  # idempotent

    run(main())


def test_shutdown_grace_expiry_cancels_stuck_handlers() -> None:
    async def main() -> None:
        entered, finalized = asyncio.Event(), asyncio.Event()

        async def stuck(request: Request, responder: Responder) -> None:
            entered.set()
            try:
                await asyncio.Event().wait()
            finally:
                finalized.set()

        server = HttpServer(stuck)
        await server.start()
        async with httpx.AsyncClient() as client:
            request = asyncio.create_task(client.get(f"http://127.0.0.1:{server.port}/"))
            await asyncio.wait_for(entered.wait(), TIMEOUT)
            await server.shutdown(grace=0.2)
            assert finalized.is_set()
            with pytest.raises(httpx.RemoteProtocolError):
                await request

    run(main())


# -- TLS ----------------------------------------------------------------------------------


@pytest.fixture
def tls_files(tmp_path: pathlib.Path) -> tuple[trustme.CA, str, str]:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key_path.write_bytes(leaf.private_key_pem.bytes())
    return ca, str(cert_path), str(key_path)


def test_tls_alpn_h2_and_http11_and_plaintext_share_one_port(
    tls_files: tuple[trustme.CA, str, str],
) -> None:
    ca, cert_path, key_path = tls_files

    def trusting() -> ssl.SSLContext:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        return context

    async def main() -> None:
        context = make_server_context(cert_path, key_path)
        async with HttpServer(echo, ssl_context=context) as server:
            for http2, version in [(True, "HTTP/2"), (False, "HTTP/1.1")]:
                async with httpx.AsyncClient(verify=trusting(), http2=http2) as client:
                    url = f"https://127.0.0.1:{server.port}/tls"
                    response = await client.post(url, content=b"secret")
                    assert response.http_version == version
                    assert response.content == b"secret"
                    assert response.headers["x-scheme"] == "https"
            async with httpx.AsyncClient() as client:
                response = await client.post(f"http://127.0.0.1:{server.port}/", content=b"p")
                assert (response.content, response.headers["x-scheme"]) == (b"p", "http")
            async with await RawH2.connect(server.port) as raw:  # h2c on the TLS port too
                assert (await raw.response(raw.request(end=True)))[0] == 200

    run(main())


def test_self_signed_contexts(tmp_path: pathlib.Path) -> None:
    cert_pem, key_pem = generate_self_signed_cert()
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(key_pem)

    async def main() -> None:
        trusting = ssl.create_default_context(cadata=cert_pem.decode())
        pinned = make_server_context(tmp_path / "c.pem", tmp_path / "k.pem")
        async with (
            HttpServer(echo, ssl_context=pinned) as server,
            httpx.AsyncClient(verify=trusting, http2=True) as client,
        ):
            for host in ("127.0.0.1", "localhost"):
                response = await client.post(f"https://{host}:{server.port}/", content=b"ok")
                assert (response.http_version, response.content) == ("HTTP/2", b"ok")

        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        async with (
            HttpServer(echo, ssl_context=make_self_signed_context()) as server,
            httpx.AsyncClient(verify=insecure, http2=True) as client,
        ):
            response = await client.post(f"https://127.0.0.1:{server.port}/", content=b"ok")
            assert (response.http_version, response.content) == ("HTTP/2", b"ok")

    run(main())


# -- HTTP/1.1 -----------------------------------------------------------------------------


def test_http11_keep_alive_chunked_request_and_streamed_response() -> None:
    async def app(request: Request, responder: Responder) -> None:
        if request.path == "/stream":
            await responder.start(200, [("content-type", "text/plain")])
            for i in range(5):
                await responder.send(b"part %d;" % i)
                await asyncio.sleep(0.01)
            await responder.end(b"end")
        else:
            await echo(request, responder)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(10):
            yield b"chunk %d," % i

    async def main() -> None:
        async with HttpServer(app) as server, httpx.AsyncClient() as client:
            base = f"http://127.0.0.1:{server.port}"
            for i in range(3):
                response = await client.get(f"{base}/keep?i={i}")
                assert response.headers["x-query"] == f"i={i}"
                assert response.headers["x-version"] == "1.1"
            assert server.statistics().open_connections == 1  # one keep-alive connection

            response = await client.post(f"{base}/up", content=chunks())
            assert response.headers["x-te"] == "chunked"
            assert response.content == b"".join([b"chunk %d," % i for i in range(10)])

            async with client.stream("GET", f"{base}/stream") as streamed:
                assert streamed.headers["transfer-encoding"] == "chunked"
                body = b"".join([part async for part in streamed.aiter_bytes()])
            assert body == b"part 0;part 1;part 2;part 3;part 4;end"
            assert server.statistics().open_connections == 1

    run(main())


def test_http11_full_duplex_chunked() -> None:
    async def main() -> None:
        async with HttpServer(duplex_echo) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"POST /session HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert b"transfer-encoding: chunked" in head.lower()
            for round_ in range(50):
                ping = b"ping %02d" % round_
                writer.write(b"%x\r\n%s\r\n" % (len(ping), ping))
                echoed = await asyncio.wait_for(reader.readexactly(len(ping) + 5), TIMEOUT)
                assert echoed == b"%x\r\n%s\r\n" % (len(ping), ping)
            writer.write(b"0\r\n\r\n")
            assert await asyncio.wait_for(reader.readexactly(5), TIMEOUT) == b"0\r\n\r\n"
            await close_writer(writer)

    run(main())


def test_http11_expect_100_continue() -> None:
    async def main() -> None:
        async with HttpServer(echo) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
            )
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            assert interim.startswith(b"HTTP/1.1 100 ")
            writer.write(b"hello")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert await asyncio.wait_for(reader.readexactly(5), TIMEOUT) == b"hello"
            await close_writer(writer)

    run(main())


def test_http11_backpressure_pauses_reading() -> None:
    total = 64 << 20  # far beyond what the kernel's socket buffers can absorb

    async def main() -> None:
        gate = asyncio.Event()

        async def lazy(request: Request, responder: Responder) -> None:
            await gate.wait()
            size = 0
            while (chunk := await request.read_chunk()) is not None:
                size += len(chunk)
            await responder.respond(200, [], str(size).encode())

        async with HttpServer(lazy) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % total)
            block = b"y" * (1 << 20)
            sent = 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    while sent < total:
                        writer.write(block)
                        sent += len(block)
                        await writer.drain()
            assert sent < total  # the server stopped reading instead of buffering it all
            gate.set()
            while sent < total:
                writer.write(block)
                sent += len(block)
                await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            assert head.startswith(b"HTTP/1.1 200 ")
            body = await asyncio.wait_for(reader.readexactly(len(str(total))), TIMEOUT)
            assert body == str(total).encode()
            await close_writer(writer)

    run(main())


def test_http11_disconnect_cancels_the_handler() -> None:
    async def main() -> None:
        entered, finalized = asyncio.Event(), asyncio.Event()

        async def long_poll(request: Request, responder: Responder) -> None:
            entered.set()
            try:
                await asyncio.Event().wait()
            finally:
                finalized.set()

        async with HttpServer(long_poll) as server:
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /poll HTTP/1.1\r\nHost: h\r\n\r\n")
            await asyncio.wait_for(entered.wait(), TIMEOUT)
            await close_writer(writer)
            await asyncio.wait_for(finalized.wait(), TIMEOUT)

    run(main())


def test_http11_send_after_disconnect_raises_client_disconnected() -> None:
    async def main() -> None:
        outcome: asyncio.Future[BaseException | None] = asyncio.Future()

        async def streamer(request: Request, responder: Responder) -> None:
            await responder.start(200, [])
            try:
                while True:  # the client is gone long before the buffers fill
                    await responder.send(b"z" * 65536)
            except ClientDisconnected as exc:
                outcome.set_result(exc)
                raise
            except asyncio.CancelledError as exc:
                outcome.set_result(exc)
                raise

        async with HttpServer(streamer) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            await close_writer(writer)
            result = await asyncio.wait_for(outcome, TIMEOUT)
            assert isinstance(result, ClientDisconnected | asyncio.CancelledError)

    run(main())


def test_http11_shutdown_closes_idle_and_finishes_busy_connections() -> None:
    async def main() -> None:
        entered, release = asyncio.Event(), asyncio.Event()

        async def app(request: Request, responder: Responder) -> None:
            if request.path == "/slow":
                entered.set()
                await release.wait()
            await responder.respond(200, [], b"ok")

        server = HttpServer(app)
        await server.start()
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", server.port)
        idle_writer.write(b"GET /fast HTTP/1.1\r\nHost: h\r\n\r\n")
        await asyncio.wait_for(idle_reader.readuntil(b"ok"), TIMEOUT)
        busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", server.port)
        busy_writer.write(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        await asyncio.wait_for(entered.wait(), TIMEOUT)

        shutdown = asyncio.create_task(server.shutdown())
        assert await read_until_eof(idle_reader) == b""  # idle keep-alive: closed at once
        release.set()
        response = await read_until_eof(busy_reader)
        assert response.startswith(b"HTTP/1.1 200 ")
        assert b"connection: close" in response.lower()
        assert response.endswith(b"ok")
        await asyncio.wait_for(shutdown, TIMEOUT)
        await close_writer(idle_writer)
        await close_writer(busy_writer)

    run(main())


# -- garbage ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"\x00\x01\x02 not http at all\r\n\r\n", id="binary"),
        pytest.param(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", id="bad-h1-header"),
        pytest.param(b"GET /" + b"a" * (80 << 10) + b" HTTP/1.1\r\n", id="huge-h1-head"),
        pytest.param(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x05\x04\x00\x00\x00\x00\x00junk!",
            id="h2-preface-then-junk",
        ),
        pytest.param(b"\x16\x03\x01\x00\x05hello", id="fake-tls-record"),
    ],
)
def test_garbage_closes_the_connection_and_the_server_lives_on(garbage: bytes) -> None:
    async def main() -> None:
        async with HttpServer(echo, ssl_context=make_self_signed_context()) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(garbage)
            with contextlib.suppress(ConnectionError):
                answer = await read_until_eof(reader)
                if answer.startswith(b"HTTP/1.1"):
                    assert answer.split(b" ")[1] in (b"400", b"431")
            await close_writer(writer)
            async with httpx.AsyncClient() as client:
                response = await client.post(f"http://127.0.0.1:{server.port}/", content=b"a")
                assert response.content == b"a"

    run(main())


def test_http11_pipelined_requests_are_answered_in_order() -> None:
    async def main() -> None:
        async with HttpServer(echo) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                b"POST /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\none"
                b"HEAD /2 HTTP/1.1\r\nHost: h\r\n\r\n"
                b"POST /3 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
                b"three"
            )
            answer = await read_until_eof(reader)
            heads = answer.split(b"HTTP/1.1 ")[1:]
            assert [head.split(b"\r\n")[0] for head in heads] == [b"200 OK"] * 3
            assert [b"x-path: /%d" % i in head for i, head in enumerate(heads, 1)] == [True] * 3
            assert heads[0].endswith(b"\r\n\r\none")
            assert heads[1].endswith(b"content-length: 0\r\n\r\n")  # HEAD: no body
            assert heads[2].endswith(b"\r\n\r\nthree")
            await close_writer(writer)

    run(main())
