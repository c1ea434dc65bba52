"""Streams that fail: each error's class, ``has_no_side_effects`` and ``data_sent``."""

from __future__ import annotations

import asyncio

import pytest
from _scripted_server import (
    PING,
    ScriptedServer,
    ServerStream,
    eventually,
    hang,
    respond,
)

from s2kit.client._transport import ConnectionPool, H2Stream, Origin, StreamState
from s2kit.errors import (
    ClosedError,
    ConnectionLost,
    GoAway,
    RemoteProtocolError,
    StreamReset,
)

REFUSED_STREAM, CANCEL, INTERNAL_ERROR = 0x7, 0x8, 0x2


async def post(pool: ConnectionPool, server: ScriptedServer, path: str = "/") -> H2Stream:
    return await pool.open_stream(Origin.parse(server.url), "POST", path, [])


# -- RST_STREAM -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "side_effect_free"),
    [(REFUSED_STREAM, True), (CANCEL, False), (INTERNAL_ERROR, False)],
)
async def test_reset_after_data(code: int, side_effect_free: bool) -> None:
    async def script(stream: ServerStream) -> None:
        await stream.wait_body(5)
        stream.reset(code)

    async with ScriptedServer(script) as server, ConnectionPool() as pool:
        stream = await post(pool, server)
        await stream.send(b"12345")
        with pytest.raises(StreamReset) as info:
            await stream.response_headers()
        error = info.value
        assert error.error_code == code
        assert error.has_no_side_effects is side_effect_free
        assert error.is_retryable
        assert stream.data_sent
        assert stream.state is StreamState.FAILED
        with pytest.raises(StreamReset):
            await stream.send(b"more")
        with pytest.raises(StreamReset):
            await stream.read_chunk()
        # Only the stream failed: the connection carries on.
        server.script = respond(200)
        again = await post(pool, server)
        await again.end()
        assert (await again.response_headers())[0] == 200
        assert len(server.connections) == 1


async def test_refused_before_any_data() -> None:
    async def script(stream: ServerStream) -> None:
        stream.reset(REFUSED_STREAM)

    async with ScriptedServer(script) as server, ConnectionPool() as pool:
        stream = await post(pool, server)
        with pytest.raises(StreamReset) as info:
            await stream.response_headers()
        assert info.value.has_no_side_effects
        assert not stream.data_sent


# -- GOAWAY -------------------------------------------------------------------------------------


async def test_goaway_below_the_stream_fails_it_unprocessed() -> None:
    async def script(stream: ServerStream) -> None:
        if stream.path == "/quick":
            stream.respond(200, end=True)
        else:
            await asyncio.Event().wait()

    async with ScriptedServer(script) as server, ConnectionPool() as pool:
        first = await post(pool, server, "/quick")
        await first.end()
        assert (await first.response_headers())[0] == 200
        second = await post(pool, server, "/slow")
        await second.send(b"body")
        await server.until(lambda: bytes(server.streams[-1].body) == b"body")
        old = server.connections[0]
        old.goaway(last_stream_id=first.stream_id)
        with pytest.raises(GoAway) as info:
            await second.response_headers()
        error = info.value
        assert (error.processed, error.last_stream_id, error.error_code) == (False, 1, 0)
        assert error.has_no_side_effects  # although its DATA was sent: RFC 9113 §6.8
        assert error.is_retryable
        assert second.data_sent
        with pytest.raises(GoAway):
            await second.send(b"more")
        # Nothing is left on the old connection, so the client closes it...
        await server.until(lambda: old.lost)
        # ... and a new request goes to a new one.
        third = await post(pool, server, "/quick")
        await third.end()
        assert (await third.response_headers())[0] == 200
        assert len(server.connections) == 2
        assert third.stream_id == 1


async def test_goaway_before_reading_the_first_stream() -> None:
    async def script(stream: ServerStream) -> None:
        if len(stream.server.connections) == 1:
            stream.conn.goaway(last_stream_id=0)
        else:
            await stream.wait_end()
            stream.respond(200, end=True)

    # Without credit the send must wait for window, so the GOAWAY always finds it waiting.
    async with ScriptedServer(script, auto_credit=False) as server, ConnectionPool() as pool:
        stream = await post(pool, server)
        with pytest.raises(GoAway) as info:
            await stream.send(b"x" * 100_000)
        assert info.value.has_no_side_effects
        assert info.value.last_stream_id == 0
        retry = await post(pool, server)
        await retry.send(b"retried", end_stream=True)
        assert (await retry.response_headers())[0] == 200
        assert len(server.connections) == 2
        assert bytes(server.streams[1].body) == b"retried"


async def test_goaway_covering_the_stream_lets_it_finish() -> None:
    async def script(stream: ServerStream) -> None:
        await stream.wait_end()
        stream.respond(200)
        await stream.send(b"done:" + bytes(stream.body), end=True)

    async with ScriptedServer(script) as server, ConnectionPool() as pool:
        inflight = await post(pool, server)
        await inflight.send(b"part one, ")
        await server.until(lambda: bool(server.streams))
        old = server.connections[0]
        old.goaway(last_stream_id=inflight.stream_id)
        # New requests go to a new connection at once.
        await eventually(lambda: pool.statistics().draining == 1)
        fresh = await post(pool, server)
        await fresh.send(b"fresh", end_stream=True)
        assert await fresh.read_all(100) == b"done:fresh"
        assert len(server.connections) == 2
        # The covered stream completes normally on the draining connection.
        await inflight.send(b"part two", end_stream=True)
        assert (await inflight.response_headers())[0] == 200
        assert await inflight.read_all(100) == b"done:part one, part two"
        await server.until(lambda: old.lost)
        assert not server.connections[1].lost


async def test_goaway_then_connection_loss_keeps_data_sent() -> None:
    async def script(stream: ServerStream) -> None:
        await stream.wait_body(4)
        stream.conn.goaway(last_stream_id=stream.stream_id, error_code=INTERNAL_ERROR)
        stream.conn.abort()

    async with ScriptedServer(script) as server, ConnectionPool() as pool:
        stream = await post(pool, server)
        await stream.send(b"data")
        with pytest.raises(ConnectionLost) as info:
            await stream.response_headers()
        assert info.value.data_sent
        assert not info.value.has_no_side_effects


# -- connection loss ----------------------------------------------------------------------------


async def test_connection_aborted_after_data() -> None:
    async with ScriptedServer(hang(), abort_after_data=10) as server, ConnectionPool() as pool:
        stream = await post(pool, server)
        await stream.send(b"x" * 100)
        with pytest.raises(ConnectionLost) as info:
            await stream.read_chunk()
        assert info.value.data_sent
        assert not info.value.has_no_side_effects
        assert info.value.is_retryable
        await eventually(lambda: pool.statistics().connections == 0)


async def test_connection_aborted_before_any_data() -> None:
    async def script(stream: ServerStream) -> None:
        stream.conn.abort()

    async with ScriptedServer(script) as server, ConnectionPool() as pool:
        stream = await post(pool, server)
        with pytest.raises(ConnectionLost) as info:
            await stream.response_headers()
        assert not stream.data_sent
        assert info.value.data_sent is False
        assert info.value.has_no_side_effects
        with pytest.raises(ConnectionLost):
            await stream.send(b"x")
        assert not stream.data_sent  # a failed stream hands nothing off
        assert server.connections[0].raw == {}


async def test_connection_closed_mid_response_delivers_what_arrived_first() -> None:
    async def script(stream: ServerStream) -> None:
        stream.respond(200)
        await stream.send(b"partial")
        stream.conn.close()

    async with ScriptedServer(script) as server, ConnectionPool() as pool:
        stream = await post(pool, server)
        assert (await stream.response_headers())[0] == 200
        assert await stream.read_chunk() == b"partial"
        with pytest.raises(ConnectionLost, match="closed by the server") as info:
            await stream.read_chunk()
        assert not info.value.data_sent


async def test_keepalive_detects_a_dead_peer() -> None:
    async def script(stream: ServerStream) -> None:
        stream.conn.freeze()
        await asyncio.Event().wait()

    async with (
        ScriptedServer(script) as server,
        ConnectionPool(keepalive_interval=0.1, keepalive_timeout=0.2) as pool,
    ):
        stream = await post(pool, server)
        await stream.send(b"x")
        with pytest.raises(ConnectionLost, match="keepalive") as info:
            async with asyncio.timeout(5):
                await stream.response_headers()
        assert info.value.data_sent
        await eventually(lambda: pool.statistics().connections == 0)


async def test_keepalive_keeps_a_live_connection() -> None:
    release = asyncio.Event()

    async def script(stream: ServerStream) -> None:
        await release.wait()
        stream.respond(200, end=True)

    async with (
        ScriptedServer(script) as server,
        ConnectionPool(keepalive_interval=0.05, keepalive_timeout=1.0) as pool,
    ):
        stream = await post(pool, server)
        await server.until(lambda: server.connections[0].count(PING) >= 3)
        release.set()
        assert (await stream.response_headers())[0] == 200
        assert pool.statistics().connections == 1


# -- protocol errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x",  # DATA on stream 0
        b"\x00\x00\x04\x07\x00\x00\x00\x00\x00" + bytes(4),  # GOAWAY too short
    ],
)
async def test_server_breaking_http2(garbage: bytes) -> None:
    async def script(stream: ServerStream) -> None:
        stream.conn.write(garbage)
        await asyncio.Event().wait()

    async with ScriptedServer(script) as server, ConnectionPool() as pool:
        stream = await post(pool, server)
        with pytest.raises(RemoteProtocolError):
            await stream.response_headers()
        old = server.connections[0]
        await server.until(lambda: old.lost)
        assert old.client_goaway is not None
        assert old.client_goaway.error_code == 0x1  # PROTOCOL_ERROR
        server.script = respond(200)
        again = await post(pool, server)
        await again.end()
        assert (await again.response_headers())[0] == 200
        assert len(server.connections) == 2


async def test_bad_status_fails_only_that_stream() -> None:
    async def script(stream: ServerStream) -> None:
        stream.conn.h2.send_headers(stream.stream_id, [(":status", "abc")], end_stream=True)
        stream.conn.flush()

    async with ScriptedServer(script) as server, ConnectionPool() as pool:
        stream = await post(pool, server)
        with pytest.raises(RemoteProtocolError):
            await stream.response_headers()


# -- closing the pool ---------------------------------------------------------------------------


async def test_aclose_fails_open_streams_and_leaves_no_tasks() -> None:
    async with ScriptedServer(hang(), initial_window_size=0, max_concurrent_streams=2) as server:
        pool = ConnectionPool(keepalive_interval=0.05, max_connections_per_origin=1)
        reading = await post(pool, server, "/read")
        sending = await post(pool, server, "/send")
        reader = asyncio.create_task(reading.read_chunk())
        sender = asyncio.create_task(sending.send(b"stalled"))  # no window
        opener = asyncio.create_task(post(pool, server, "/third"))  # no room
        await server.until(lambda: len(server.streams) == 2)
        await server.until(lambda: server.connections[0].count(PING) >= 1)
        await pool.aclose()
        for task in (reader, sender, opener):
            with pytest.raises(ClosedError):
                await task
        assert not sending.data_sent
        await pool.aclose()  # idempotent
        with pytest.raises(ClosedError):
            await post(pool, server)
        assert pool.statistics().connections == 0
        await server.until(lambda: server.connections[0].lost)
        assert server.connections[0].client_goaway is not None
        assert server.connections[0].raw == {}
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_aclose_during_connect() -> None:
    async with ScriptedServer(silent=True) as server:
        pool = ConnectionPool(connect_timeout=30)
        opener = asyncio.create_task(post(pool, server))
        await server.until(lambda: bool(server.connections))
        await pool.aclose()
        with pytest.raises(ClosedError):
            await opener
        await server.until(lambda: server.connections[0].lost)
    assert asyncio.all_tasks() == {asyncio.current_task()}
