"""Streams that work: requests, responses, full duplex, flow control, concurrency, usage."""

from __future__ import annotations

import asyncio
import os

import pytest
from _scripted_server import (
    ScriptedServer,
    ServerStream,
    echo,
    hang,
    headers_then_stall,
    respond,
)

from s2kit.client._transport import ConnectionPool, H2Stream, Origin, StreamState
from s2kit.errors import ClosedError, LocalProtocolError, RemoteProtocolError, UsageError


async def open_get(pool: ConnectionPool, server: ScriptedServer, path: str = "/") -> H2Stream:
    return await pool.open_stream(Origin.parse(server.url), "GET", path, [], end_stream=True)


async def test_request_head_and_response() -> None:
    script = respond(201, b"created", [("x-answer", "42"), ("Content-Type", "text/plain")])
    async with ScriptedServer(script) as server, ConnectionPool() as pool:
        stream = await pool.open_stream(
            Origin.parse(server.url), "PUT", "/v1/x?y=1", [("X-Custom", "Value"), ("a", "b")]
        )
        assert stream.stream_id == 1
        assert not stream.data_sent
        await stream.send(b"body", end_stream=True)
        assert stream.data_sent
        status, headers = await stream.response_headers()
        assert status == 201
        assert ("x-answer", "42") in headers
        assert ("content-type", "text/plain") in headers
        assert await stream.read_chunk() == b"created"
        assert await stream.read_chunk() is None
        assert await stream.read_chunk() is None
        assert stream.state is StreamState.CLOSED
        seen = server.streams[0]
        assert seen.headers[":method"] == "PUT"
        assert seen.headers[":path"] == "/v1/x?y=1"
        assert seen.headers[":scheme"] == "http"
        assert seen.headers[":authority"] == f"127.0.0.1:{server.port}"
        assert seen.headers["x-custom"] == "Value"
        assert bytes(seen.body) == b"body"
        assert pool.statistics().open_streams == 0


async def test_client_settings_and_receive_windows() -> None:
    async with ScriptedServer() as server, ConnectionPool() as pool:
        stream = await open_get(pool, server)
        assert (await stream.response_headers())[0] == 200
        h2conn = server.connections[0].h2
        assert h2conn.remote_settings.enable_push == 0
        assert h2conn.remote_settings.initial_window_size == 4 << 20
        assert h2conn.remote_settings.max_frame_size == 64 << 10
        assert h2conn.outbound_flow_control_window == 16 << 20


async def test_bodiless_request_ends_with_its_headers() -> None:
    async with ScriptedServer(respond(204)) as server, ConnectionPool() as pool:
        stream = await open_get(pool, server)
        # Conservative: a complete request may have been acted on, so it counts as handed off.
        assert stream.data_sent
        assert stream.state is StreamState.LOCAL_ENDED
        assert (await stream.response_headers())[0] == 204
        assert await stream.read_all(10) == b""
        assert server.streams[0].ended
        assert server.connections[0].raw == {}
        with pytest.raises(LocalProtocolError, match="already ended"):
            await stream.send(b"late")


async def test_trailers_are_kept() -> None:
    async def script(stream: ServerStream) -> None:
        stream.respond(200)
        await stream.send(b"data")
        stream.conn.h2.send_headers(stream.stream_id, [("grpc-status", "0")], end_stream=True)
        stream.conn.flush()

    async with ScriptedServer(script) as server, ConnectionPool() as pool:
        stream = await open_get(pool, server)
        assert await stream.read_all(100) == b"data"
        assert stream.trailers == [("grpc-status", "0")]


async def test_full_duplex_ping_pong() -> None:
    async with ScriptedServer(echo()) as server, ConnectionPool() as pool:
        stream = await pool.open_stream(Origin.parse(server.url), "POST", "/echo", [])
        assert (await stream.response_headers())[0] == 200
        for i in range(200):
            message = f"ping {i}".encode()
            await stream.send(message)
            assert await stream.read_chunk() == message
        await stream.end()
        assert await stream.read_chunk() is None
        assert stream.state is StreamState.CLOSED


async def test_large_bodies_both_ways_through_small_windows() -> None:
    payload = os.urandom(3 << 20)
    async with ScriptedServer(echo(), max_frame_size=16_384) as server, ConnectionPool() as pool:
        stream = await pool.open_stream(Origin.parse(server.url), "POST", "/", [])

        async def upload() -> None:
            await stream.send(payload, end_stream=True)

        sender = asyncio.create_task(upload())
        received = await stream.read_all(len(payload))
        await sender
        assert received == payload
        assert bytes(server.streams[0].body) == payload


async def test_response_buffering_is_bounded_by_the_stream_window() -> None:
    """A reader that stops reading stops the server after one stream window (4 MiB)."""
    payload = os.urandom(10 << 20)
    sent = asyncio.Event()

    async def script(stream: ServerStream) -> None:
        stream.respond(200)
        await stream.send(payload, end=True)
        sent.set()

    async with ScriptedServer(script) as server, ConnectionPool() as pool:
        stream = await open_get(pool, server)
        assert (await stream.response_headers())[0] == 200
        conn = server.connections[0]
        await server.until(lambda: conn.h2.local_flow_control_window(1) == 0)
        assert conn.h2.local_flow_control_window(1) == 0
        assert not sent.is_set()
        assert await stream.read_all(len(payload)) == payload
        assert sent.is_set()


async def test_read_all_limit_resets_the_stream() -> None:
    async def script(stream: ServerStream) -> None:
        stream.respond(200)
        await stream.send(b"x" * 100)
        await asyncio.Event().wait()

    async with ScriptedServer(script) as server, ConnectionPool() as pool:
        stream = await open_get(pool, server)
        with pytest.raises(RemoteProtocolError, match="longer than 10 bytes"):
            await stream.read_all(10)
        assert stream.state is StreamState.RESET
        await server.until(lambda: server.connections[0].count(0x3) == 1)


async def test_streams_beyond_max_concurrent_open_more_connections() -> None:
    release = asyncio.Event()

    async def script(stream: ServerStream) -> None:
        await release.wait()
        stream.respond(200, end=True)

    async with ScriptedServer(script, max_concurrent_streams=2) as server:
        async with ConnectionPool() as pool:
            opens = [open_get(pool, server, f"/{i}") for i in range(5)]
            streams = await asyncio.gather(*opens)
            await server.until(lambda: len(server.streams) == 5)
            assert len(server.connections) == 3
            assert pool.statistics().open_streams == 5
            release.set()
            for stream in streams:
                assert (await stream.response_headers())[0] == 200
        assert server.protocol_errors == []


async def test_streams_beyond_the_connection_limit_wait_for_room() -> None:
    releases = [asyncio.Event() for _ in range(3)]

    async def script(stream: ServerStream) -> None:
        await releases[int(stream.path[1:])].wait()
        stream.respond(200, end=True)

    async with ScriptedServer(script, max_concurrent_streams=2) as server:
        async with ConnectionPool(max_connections_per_origin=1) as pool:
            first, second = [await open_get(pool, server, f"/{i}") for i in range(2)]
            third = asyncio.create_task(open_get(pool, server, "/2"))
            done, _ = await asyncio.wait([third], timeout=0.2)
            assert not done  # no room: it waits rather than break the server's limit
            releases[1].set()
            assert (await second.response_headers())[0] == 200
            assert await second.read_chunk() is None
            stream = await third
            releases[2].set()
            assert (await stream.response_headers())[0] == 200
            releases[0].set()
            assert (await first.response_headers())[0] == 200
            assert len(server.connections) == 1
        assert server.protocol_errors == []


async def test_slow_headers_time_out_in_the_caller() -> None:
    async with ScriptedServer(hang()) as server, ConnectionPool() as pool:
        stream = await open_get(pool, server)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await stream.response_headers()
        assert stream.state is StreamState.LOCAL_ENDED  # still alive: the caller decides
        stream.reset()
        await server.until(lambda: server.streams[0].reset_code == 0x8)
        assert pool.statistics().open_streams == 0
        server.script = respond(200)
        again = await open_get(pool, server)
        assert (await again.response_headers())[0] == 200
        assert len(server.connections) == 1


async def test_stalled_body_times_out_in_the_caller() -> None:
    async with ScriptedServer(headers_then_stall()) as server, ConnectionPool() as pool:
        stream = await open_get(pool, server)
        assert (await stream.response_headers())[0] == 200
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await stream.read_chunk()
        stream.reset()
        with pytest.raises(ClosedError):
            await stream.read_chunk()
        await server.until(lambda: server.streams[0].reset_code == 0x8)


async def test_cancelled_read_leaves_the_stream_usable() -> None:
    async with ScriptedServer(echo()) as server, ConnectionPool() as pool:
        stream = await pool.open_stream(Origin.parse(server.url), "POST", "/", [])
        reader = asyncio.create_task(stream.read_chunk())
        await server.until(lambda: bool(server.streams))
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        await stream.send(b"after", end_stream=True)
        assert await stream.read_all(100) == b"after"


async def test_headers_and_body_awaited_from_two_tasks() -> None:
    async def script(stream: ServerStream) -> None:
        await stream.wait_end()
        stream.respond(200)
        await stream.send(b"late body", end=True)

    async with ScriptedServer(script) as server, ConnectionPool() as pool:
        stream = await pool.open_stream(Origin.parse(server.url), "POST", "/", [])
        head = asyncio.create_task(stream.response_headers())
        body = asyncio.create_task(stream.read_all(100))
        await stream.end()
        assert (await head)[0] == 200
        assert await body == b"late body"


async def test_usage_errors() -> None:
    async with ScriptedServer(hang()) as server, ConnectionPool() as pool:
        origin = Origin.parse(server.url)
        with pytest.raises(UsageError):
            await pool.open_stream(origin, "GET", "/", [("x", "snow ☃")])
        with pytest.raises(LocalProtocolError):
            await pool.open_stream(origin, "GET", "/", [("te", "gzip")])  # RFC 9113 §8.2.2
        with pytest.raises(LocalProtocolError):
            await pool.open_stream(origin, "GET", "/", [("connection", "close")])
        with pytest.raises(LocalProtocolError):
            await pool.open_stream(origin, "GET", "/", [("x-token", "a\r\nx-injected: 1")])
        with pytest.raises(LocalProtocolError):
            await pool.open_stream(origin, "GET", "/", [(":path", "/other")])
        stream = await pool.open_stream(origin, "POST", "/", [])
        await stream.send(b"")  # nothing to do
        assert not stream.data_sent
        await stream.end()
        with pytest.raises(LocalProtocolError):
            await stream.end()
        with pytest.raises(LocalProtocolError):
            await stream.send(b"x")
        stream.reset()
        stream.reset()  # idempotent


async def test_concurrent_sends_are_refused() -> None:
    async with ScriptedServer(hang(), initial_window_size=0) as server, ConnectionPool() as pool:
        stream = await pool.open_stream(Origin.parse(server.url), "POST", "/", [])
        sender = asyncio.create_task(stream.send(b"x"))
        await server.until(lambda: bool(server.streams))
        with pytest.raises(LocalProtocolError, match="another send"):
            await stream.send(b"y")
        with pytest.raises(LocalProtocolError, match="send"):
            await stream.end()
        stream.reset()
        with pytest.raises(ClosedError, match="reset"):
            await sender


async def test_statistics() -> None:
    async with ScriptedServer(hang()) as server, ConnectionPool() as pool:
        assert pool.statistics().connections == 0
        streams = [await open_get(pool, server) for _ in range(3)]
        stats = pool.statistics()
        assert (stats.connections, stats.open_streams, stats.draining) == (1, 3, 0)
        streams[0].reset()
        assert pool.statistics().open_streams == 2
