"""Flow control, backpressure and cancellation: what is never sent stays unsent (G2).

The scripted server records the DATA payload of every stream straight off the wire, so these
tests see bytes even on streams its ``h2`` has already closed. "Nothing more arrives" is
proved with round trips on the same connection: TCP keeps order, so once the answer to a
request sent later has come back, everything the client wrote before it has arrived.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from _scripted_server import ScriptedServer, ServerStream

from s2kit.client._transport import ConnectionPool, H2Stream, Origin, StreamState
from s2kit.errors import ClosedError, ConnectionLost

CANCEL = 0x8


async def script(stream: ServerStream) -> None:
    """``/probe`` answers at once; every other request is left to the test."""
    if stream.path == "/probe":
        stream.respond(200, end=True)
    else:
        await asyncio.Event().wait()


async def round_trip(pool: ConnectionPool, server: ScriptedServer, times: int = 2) -> None:
    """Requests on the same connection, answered in order after everything sent before."""
    for _ in range(times):
        probe = await pool.open_stream(
            Origin.parse(server.url), "GET", "/probe", [], end_stream=True
        )
        assert (await probe.response_headers())[0] == 200
    assert len(server.connections) == 1


async def post(pool: ConnectionPool, server: ScriptedServer) -> H2Stream:
    return await pool.open_stream(Origin.parse(server.url), "POST", "/upload", [])


async def test_send_waits_for_window() -> None:
    data = os.urandom(3000)
    async with ScriptedServer(script, initial_window_size=0) as server, ConnectionPool() as pool:
        stream = await post(pool, server)
        sender = asyncio.create_task(stream.send(data, end_stream=True))
        await round_trip(pool, server)
        assert not sender.done()
        assert not stream.data_sent
        assert server.connections[0].raw == {}
        server.streams[0].grant(1000)  # auto-credit then keeps it open
        await sender
        await server.streams[0].wait_end()
        assert bytes(server.streams[0].body) == data
        assert stream.state is StreamState.LOCAL_ENDED


async def test_reset_while_waiting_for_stream_window_never_sends_the_rest() -> None:
    """G2: once reset, bytes that were waiting for window never reach the wire."""
    data = os.urandom(5000)
    async with (
        ScriptedServer(script, initial_window_size=1000, auto_credit=False) as server,
        ConnectionPool() as pool,
    ):
        stream = await post(pool, server)
        conn = server.connections[0]
        sender = asyncio.create_task(stream.send(data))
        await server.until(lambda: len(conn.raw.get(stream.stream_id, b"")) == 1000)
        await round_trip(pool, server)
        assert not sender.done()
        assert stream.data_sent  # the first 1000 bytes were handed off
        stream.reset()
        with pytest.raises(ClosedError):
            await sender
        # The server opens every window, as if its WINDOW_UPDATE had crossed our RST_STREAM.
        conn.raw_window_update(stream.stream_id, 1 << 20)
        conn.raw_window_update(0, 1 << 20)
        await round_trip(pool, server)
        assert bytes(conn.raw[stream.stream_id]) == data[:1000]
        assert server.streams[0].reset_code == CANCEL
        assert server.protocol_errors == []


async def test_reset_while_waiting_for_connection_window_never_sends() -> None:
    """G2 with the connection window used up by another stream of the same connection."""
    async with (
        ScriptedServer(script, initial_window_size=1 << 20, auto_credit=False) as server,
        ConnectionPool() as pool,
    ):
        hog = await post(pool, server)
        await hog.send(os.urandom(65_535))  # the whole connection window
        conn = server.connections[0]
        await server.until(lambda: len(conn.raw.get(hog.stream_id, b"")) == 65_535)
        stalled = await post(pool, server)
        sender = asyncio.create_task(stalled.send(b"must never arrive"))
        await round_trip(pool, server)
        assert not sender.done()
        assert not stalled.data_sent
        stalled.reset()
        with pytest.raises(ClosedError):
            await sender
        conn.h2.increment_flow_control_window(1 << 20)
        conn.flush()
        await hog.send(b"hog goes on")
        await server.until(lambda: bytes(conn.raw[hog.stream_id]).endswith(b"hog goes on"))
        await round_trip(pool, server)
        assert stalled.stream_id not in conn.raw
        assert server.streams[1].reset_code == CANCEL


async def test_cancelled_send_drops_the_unsent_remainder() -> None:
    data = os.urandom(5000)
    async with (
        ScriptedServer(script, initial_window_size=1000, auto_credit=False) as server,
        ConnectionPool() as pool,
    ):
        stream = await post(pool, server)
        conn = server.connections[0]
        sender = asyncio.create_task(stream.send(data))
        await server.until(lambda: len(conn.raw.get(stream.stream_id, b"")) == 1000)
        sender.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sender
        assert stream.data_sent
        assert stream.state is StreamState.OPEN
        server.streams[0].grant(1 << 20)
        await round_trip(pool, server)
        await stream.send(b"tail", end_stream=True)
        await server.streams[0].wait_end()
        assert bytes(server.streams[0].body) == data[:1000] + b"tail"


async def test_cancelled_send_before_any_window_hands_nothing_off() -> None:
    async with ScriptedServer(script, initial_window_size=0) as server, ConnectionPool() as pool:
        stream = await post(pool, server)
        sender = asyncio.create_task(stream.send(b"never"))
        await round_trip(pool, server)
        sender.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sender
        assert not stream.data_sent
        stream.reset()
        conn = server.connections[0]
        conn.raw_window_update(stream.stream_id, 1 << 20)
        await round_trip(pool, server)
        assert conn.raw == {}


async def test_send_waits_while_the_transport_is_full() -> None:
    """A server that stops reading fills the socket: send() parks in drain, bounded."""
    data = bytes(64 << 20)
    async with (
        ScriptedServer(
            script, initial_window_size=(1 << 31) - 1, connection_window=(1 << 31) - 1
        ) as server,
        ConnectionPool() as pool,
    ):
        stream = await post(pool, server)
        await server.until(lambda: bool(server.streams))
        conn = server.connections[0]
        conn.freeze()
        sender = asyncio.create_task(stream.send(data))
        done, _ = await asyncio.wait([sender], timeout=0.5)
        assert not done
        stream.reset()
        with pytest.raises(ClosedError):
            async with asyncio.timeout(5):  # the reset wakes a sender parked on drain
                await sender
        conn.thaw()
        await round_trip(pool, server)
        received = bytes(conn.raw[stream.stream_id])
        assert 0 < len(received) < len(data) // 2
        assert received == data[: len(received)]


async def test_connection_lost_while_waiting_for_drain() -> None:
    async with (
        ScriptedServer(
            script, initial_window_size=(1 << 31) - 1, connection_window=(1 << 31) - 1
        ) as server,
        ConnectionPool() as pool,
    ):
        stream = await post(pool, server)
        await server.until(lambda: bool(server.streams))
        server.connections[0].freeze()
        sender = asyncio.create_task(stream.send(bytes(64 << 20)))
        done, _ = await asyncio.wait([sender], timeout=0.5)
        assert not done
        server.connections[0].abort()
        with pytest.raises(ConnectionLost) as info:
            await sender
        assert info.value.data_sent
