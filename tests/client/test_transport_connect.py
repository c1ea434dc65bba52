"""Set-up: every failure before a request can leave is a (side-effect free) ConnectError."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import trustme
from _scripted_server import ScriptedServer, respond

from s2kit.client import _transport
from s2kit.client._transport import ConnectionPool, Origin
from s2kit.errors import ClosedError, ConnectError, UsageError

EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def test_exports() -> None:
    assert _transport.__all__ == [
        "ConnectionPool",
        "ConnectionState",
        "H2Stream",
        "Origin",
        "PoolStatistics",
        "StreamState",
    ]
    for name in _transport.__all__:
        assert getattr(_transport, name).__module__ == "s2kit.client._transport"


@pytest.mark.parametrize(
    ("url", "origin", "authority"),
    [
        ("http://example.com", Origin("http", "example.com", 80), "example.com"),
        ("https://Example.COM/v1?x=1", Origin("https", "example.com", 443), "example.com"),
        ("http://127.0.0.1:8080", Origin("http", "127.0.0.1", 8080), "127.0.0.1:8080"),
        ("https://[::1]:4433", Origin("https", "::1", 4433), "[::1]:4433"),
        ("https://h:443", Origin("https", "h", 443), "h"),
    ],
)
def test_origin_parse(url: str, origin: Origin, authority: str) -> None:
    assert Origin.parse(url) == origin
    assert origin.authority == authority


@pytest.mark.parametrize("url", ["ftp://h", "h:80", "http://", "http://h:99999", "http://hé"])
def test_origin_parse_rejects(url: str) -> None:
    with pytest.raises(UsageError):
        Origin.parse(url)


def test_pool_rejects_bad_arguments() -> None:
    with pytest.raises(UsageError):
        ConnectionPool(connect_timeout=0)
    with pytest.raises(UsageError):
        ConnectionPool(max_connections_per_origin=0)
    with pytest.raises(UsageError):
        ConnectionPool(keepalive_interval=-1)


async def expect_connect_error(
    pool: ConnectionPool, origin: Origin, *, retryable: bool = True
) -> ConnectError:
    with pytest.raises(ConnectError) as info:
        await pool.open_stream(origin, "GET", "/", [], end_stream=True)
    error = info.value
    assert error.has_no_side_effects
    # A certificate that does not verify, or no h2 in ALPN, is configuration: no retry
    # (C4a and C4c, docs/retry-safety.md#connecting-no-request-byte-can-leave).
    assert error.is_retryable is retryable
    assert pool.statistics().connections == 0
    return error


async def test_refused_connection() -> None:
    async with ScriptedServer() as server:
        server.close_listener()
        async with ConnectionPool() as pool:
            error = await expect_connect_error(pool, Origin.parse(server.url))
    assert isinstance(error.__cause__, ConnectionRefusedError)


async def test_concurrent_opens_share_one_failed_connect() -> None:
    async with ScriptedServer() as server:
        server.close_listener()
        async with ConnectionPool() as pool:
            origin = Origin.parse(server.url)
            opens = [pool.open_stream(origin, "GET", "/", [], end_stream=True) for _ in range(5)]
            results = await asyncio.gather(*opens, return_exceptions=True)
            assert all(isinstance(r, ConnectError) for r in results)
            assert len({id(r) for r in results}) == 1  # one connect, one error
            assert pool.statistics().connecting == 0


async def test_bad_host_name() -> None:
    async with ConnectionPool() as pool:
        await expect_connect_error(pool, Origin("http", "bad..host", 80))


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A listening port whose accept queue is full: further SYNs go unanswered."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(address)
            fillers.append(filler)
        yield address[1]
    finally:
        for sock in [*fillers, listener]:
            sock.close()


async def test_connect_timeout_on_full_backlog() -> None:
    with full_backlog() as port:
        async with ConnectionPool(connect_timeout=0.3) as pool:
            started = time.monotonic()
            error = await expect_connect_error(pool, Origin("http", "127.0.0.1", port))
            elapsed = time.monotonic() - started
    assert isinstance(error.__cause__, TimeoutError)
    assert 0.25 <= elapsed < 5


async def test_server_that_never_sends_settings() -> None:
    async with ScriptedServer(silent=True) as server:
        async with ConnectionPool(connect_timeout=0.3) as pool:
            error = await expect_connect_error(pool, Origin.parse(server.url))
        assert isinstance(error.__cause__, TimeoutError)
        # Our preface and SETTINGS went out, but never a request.
        assert server.connections[0].frames
        assert all(t != 0x1 for t, _, _ in server.connections[0].frames)


@contextlib.asynccontextmanager
async def raw_server(
    on_connect: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def _close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def _speak_http1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
    await writer.drain()
    writer.close()


async def _goaway_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    goaway = b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + bytes(8)
    writer.write(EMPTY_SETTINGS + goaway)
    await writer.drain()
    await reader.read()  # until the client closes
    writer.close()


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (_close_at_once, "before HTTP/2 was set up"),
        (_speak_http1, "before HTTP/2 was set up"),
        (_goaway_at_once, "sent GOAWAY"),
    ],
)
async def test_server_that_fails_the_handshake(
    behaviour: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    message: str,
) -> None:
    async with raw_server(behaviour) as url:
        async with ConnectionPool() as pool:
            error = await expect_connect_error(pool, Origin.parse(url))
        assert message in str(error)


# -- TLS ----------------------------------------------------------------------------------------


def server_context(ca: trustme.CA, alpn: list[str] | None, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("127.0.0.1", "localhost"))).configure_cert(context)
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    return context


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_tls_with_trusted_certificate() -> None:
    ca = trustme.CA()
    script = respond(200, b"over tls")
    async with ScriptedServer(script, ssl_context=server_context(ca, ["h2"])) as server:
        async with ConnectionPool(ssl_context=client_context(ca)) as pool:
            stream = await pool.open_stream(
                Origin.parse(server.url), "GET", "/", [], end_stream=True
            )
            assert (await stream.response_headers())[0] == 200
            assert await stream.read_all(100) == b"over tls"
        assert server.streams[0].headers[":scheme"] == "https"
        assert server.streams[0].headers[":authority"] == f"127.0.0.1:{server.port}"


async def test_tls_with_untrusted_certificate() -> None:
    ca = trustme.CA()
    async with ScriptedServer(ssl_context=server_context(ca, ["h2"])) as server:
        async with ConnectionPool() as pool:  # the system trust store
            error = await expect_connect_error(pool, Origin.parse(server.url), retryable=False)
        assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
        assert not server.streams


async def test_tls_with_certificate_for_another_host() -> None:
    ca = trustme.CA()
    context = server_context(ca, ["h2"], "example.org")
    async with ScriptedServer(ssl_context=context) as server:
        async with ConnectionPool(ssl_context=client_context(ca)) as pool:
            error = await expect_connect_error(pool, Origin.parse(server.url), retryable=False)
        assert isinstance(error.__cause__, ssl.SSLCertVerificationError)


@pytest.mark.parametrize("alpn", [["http/1.1"], None])
async def test_tls_without_h2_alpn(alpn: list[str] | None) -> None:
    ca = trustme.CA()
    async with ScriptedServer(ssl_context=server_context(ca, alpn)) as server:
        async with ConnectionPool(ssl_context=client_context(ca)) as pool:
            error = await expect_connect_error(pool, Origin.parse(server.url), retryable=False)
        assert "ALPN" in str(error)
        assert not server.streams


# -- pool ---------------------------------------------------------------------------------------


async def test_concurrent_opens_share_one_connection() -> None:
    async with ScriptedServer() as server, ConnectionPool() as pool:
        origin = Origin.parse(server.url)
        opens = [pool.open_stream(origin, "GET", f"/{i}", [], end_stream=True) for i in range(10)]
        streams = await asyncio.gather(*opens)
        for stream in streams:
            assert (await stream.response_headers())[0] == 200
        assert len(server.connections) == 1
        assert sorted(s.stream_id for s in streams) == list(range(1, 21, 2))


async def test_connect_survives_a_cancelled_caller() -> None:
    async with ScriptedServer() as server, ConnectionPool() as pool:
        origin = Origin.parse(server.url)
        opener = asyncio.create_task(pool.open_stream(origin, "GET", "/", [], end_stream=True))
        await server.until(lambda: bool(server.connections))
        opener.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opener
        stream = await pool.open_stream(origin, "GET", "/", [], end_stream=True)
        assert (await stream.response_headers())[0] == 200
        assert len(server.connections) == 1


async def test_closed_pool_refuses_streams() -> None:
    async with ScriptedServer() as server:
        pool = ConnectionPool()
        await pool.aclose()
        with pytest.raises(ClosedError):
            await pool.open_stream(Origin.parse(server.url), "GET", "/", [])
        assert not server.connections
