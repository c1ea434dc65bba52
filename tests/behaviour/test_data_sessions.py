"""S2S append sessions at the frame level: poisoning, resets, durable acks, drain and bad
frames (S1–S4 of docs/retry-safety.md#server-obligations, P1–P3 and P5 of
docs/retry-safety.md#the-server-side).

Every test that says "nothing after it is applied" proves it by appending one more record
afterwards: anything the server had admitted would be sequenced before that record.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import pytest
from _s2s_client import (
    Api,
    AppendSession,
    H2Client,
    StreamClosed,
    create_basin,
    create_stream,
    eventually,
    frame,
    open_append,
    open_read,
    records,
)

from conftest import quick_config
from s2kit.server import Lite
from s2kit.types import AppendAck, ReadBatch, StreamPosition
from s2kit.wire._compress import Compression
from s2kit.wire._s2s import Terminal, encode_message, encode_terminal

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

BASIN = "data-sessions"
KEY = (BASIN, "s")


@pytest.fixture
async def api(lite: Lite) -> AsyncIterator[Api]:
    await create_basin(lite.url, BASIN)
    await create_stream(lite.url, BASIN, "s")
    async with Api(lite.url, BASIN) as a:
        yield a


@pytest.fixture
async def h2c(lite: Lite) -> AsyncIterator[H2Client]:
    async with await H2Client.connect(lite.url) as client:
        yield client


def _spans(acks: list[AppendAck]) -> list[tuple[int, int]]:
    return [(a.start.seq_num, a.end.seq_num) for a in acks]


def _ack(item: object) -> AppendAck:
    assert isinstance(item, AppendAck), item
    return item


def _seqs(item: object) -> list[int]:
    assert isinstance(item, ReadBatch), item
    return [r.seq_num for r in item.records]


def _error(terminal: Terminal | None) -> tuple[int, object]:
    assert terminal is not None, "expected a terminal frame"
    return terminal.status, json.loads(terminal.body)


async def _applied_then(api: Api, first_free: int) -> list[bytes]:
    """Append a marker; it must land at ``first_free``. Returns every body."""
    r = await api.append("s", "marker")
    assert r.status_code == 200, r.text
    assert r.json()["start"]["seq_num"] == first_free
    return await api.bodies("s")


GOOD = [records("g0"), records("g1"), records("g2")]


# --- P1: a failed input poisons the session ---------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "status", "body"),
    [
        (records("x", match_seq_num=7), 412, {"seq_num_mismatch": 3}),
        (records("x", fencing_token="nope"), 412, {"fencing_token_mismatch": ""}),
        (
            encode_message(b"", Compression.NONE),  # an AppendInput without records
            422,
            {"code": "invalid", "message": "record batch must not be empty"},
        ),
    ],
)
async def test_failed_input_poisons_session(
    api: Api, h2c: H2Client, bad: object, status: int, body: object
) -> None:  # P1, items 35-36
    session = await open_append(h2c, BASIN, "s")
    await session.send(*GOOD, bad, records("after, same write"))  # type: ignore[arg-type]
    await session.send(records("after, next write"))
    acks, terminal = await session.results()
    assert _spans(acks) == [(0, 1), (1, 2), (2, 3)]  # every admitted input acked first (S2)
    assert _error(terminal) == (status, body)
    with pytest.raises(StreamClosed):  # the exchange is over: nothing more reaches the server
        await session.send(records("after the terminal"))
    assert await _applied_then(api, 3) == [b"g0", b"g1", b"g2", b"marker"]


# --- P2: the client resets the stream ---------------------------------------------------------


@pytest.mark.parametrize("wait_for_acks", [True, False])
async def test_reset_applies_a_prefix(
    lite: Lite, api: Api, h2c: H2Client, wait_for_acks: bool
) -> None:  # P2
    session = await open_append(h2c, BASIN, "s")
    bodies = [f"r{i}".encode() for i in range(6)]
    await session.send(*(records(b) for b in bodies[:3]))
    if wait_for_acks:
        assert [await session.ack() for _ in range(3)] != []
    await session.send(*(records(b) for b in bodies[3:]))
    session.stream.reset()
    await eventually(lambda: lite.app.active == 0)  # the handler is gone
    r = await api.append("s", "marker")  # sequenced after whatever the session had admitted
    assert r.status_code == 200, r.text
    applied = r.json()["start"]["seq_num"]
    assert (3 if wait_for_acks else 0) <= applied <= 6
    assert await api.bodies("s") == [*bodies[:applied], b"marker"]
    # The server is healthy: a new session on the same connection works.
    again = await open_append(h2c, BASIN, "s")
    await again.send(records("again"), end=True)
    acks, terminal = await again.results()
    assert (_spans(acks), terminal) == ([(applied + 1, applied + 2)], None)


# --- P3: acks mean durable --------------------------------------------------------------------


async def test_ack_and_delivery_wait_for_the_commit() -> None:  # P3
    async with (
        Lite(quick_config(flush_interval=0.5)) as lite,
        await H2Client.connect(lite.url) as h2c,
        Api(lite.url, BASIN) as api,
    ):
        await create_basin(lite.url, BASIN)
        await create_stream(lite.url, BASIN, "s")
        reader = await open_read(h2c, BASIN, "s", {"seq_num": 0})
        assert await reader.batch() == ReadBatch(records=(), tail=StreamPosition(0, 0))
        session = await open_append(h2c, BASIN, "s")
        # The first commit starts the flush clock: the next input waits for the next commit.
        await session.send(records("first"))
        assert _spans([_ack(await session.ack())]) == [(0, 1)]
        assert _seqs(await reader.batch()) == [0]
        owner = lite.backend.owners[KEY]
        await session.send(records("durable?"))
        await eventually(lambda: owner.next_seq == 2)  # admitted...
        assert await api.tail_seq("s") == 1  # ...but not durable, so not visible as the tail
        assert (session.stream.pending(), reader.stream.pending()) == (0, 0)  # no ack, no record
        ack = _ack(await session.ack())
        assert ack.tail == ack.end == StreamPosition(2, ack.start.timestamp)  # the stable tail
        batch = await reader.batch()
        assert isinstance(batch, ReadBatch)
        assert ([r.body for r in batch.records], batch.tail) == ([b"durable?"], ack.tail)
        reader.stream.reset()
        await session.close()
        assert await session.results() == ([], None)


# --- P5: drain --------------------------------------------------------------------------------


async def test_drain_acks_then_terminates() -> None:  # P5
    lite = Lite(quick_config(flush_interval=0.5, shutdown_grace=5.0))
    await lite.start()
    try:
        await create_basin(lite.url, BASIN)
        await create_stream(lite.url, BASIN, "s")
        async with (
            await H2Client.connect(lite.url) as h2c,
            await H2Client.connect(lite.url) as other,
        ):
            session = await open_append(h2c, BASIN, "s")
            await session.send(records("first"))  # commits, and starts the flush clock
            assert _spans([_ack(await session.ack())]) == [(0, 1)]
            await session.send(*GOOD)
            owner = lite.backend.owners[KEY]
            await eventually(lambda: owner.next_seq == 4)  # accepted; acks wait for the commit
            closing = asyncio.create_task(lite.aclose())
            await eventually(lite.backend.draining.is_set)
            for method, path in (("GET", "/v1/basins"), ("POST", "/v1/streams/s/records")):
                fresh = other.request(method, path, {"s2-basin": BASIN}, end=True)
                status, _ = await fresh.response()
                assert (status, json.loads(await fresh.body())["code"]) == (503, "server_draining")
            await session.send(records("late"))  # draining: never admitted
            acks, terminal = await session.results()
            assert _spans(acks) == [(1, 2), (2, 3), (3, 4)]
            assert acks[-1].tail.seq_num == 4
            assert _error(terminal) == (
                503,
                {"code": "server_draining", "message": "server is shutting down"},
            )
            await closing
        assert (owner.next_seq, owner.tail.seq_num) == (4, 4)
    finally:
        await lite.aclose()


# --- bad frames -------------------------------------------------------------------------------


def _head(length: int, flag: int) -> bytes:
    return length.to_bytes(3, "big") + bytes([flag])


BAD_FRAMES = {
    "empty": b"\x00\x00\x00",
    "compression 11": _head(3, 0x60) + b"\x0a\x00",
    "bad zstd payload": _head(5, 0x20) + b"nope",
    "client terminal": encode_terminal(400, b'{"code":"x","message":"y"}'),
    "terminal without status": _head(2, 0x80) + b"\x01",
    "undecodable protobuf": encode_message(b"\xff\xff\xff\xff", Compression.NONE),
    "oversize": _head(2 * 1024 * 1024 + 1, 0) + b"\x00" * 100,
}


async def _expect_bad_frame(api: Api, session: AppendSession) -> None:
    acks, terminal = await session.results()
    assert _spans(acks) == [(0, 1), (1, 2), (2, 3)]
    status, body = _error(terminal)
    assert (status, body["code"]) == (400, "bad_frame")  # type: ignore[index]
    assert await _applied_then(api, 3) == [b"g0", b"g1", b"g2", b"marker"]


@pytest.mark.parametrize("bad", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
async def test_bad_frame(api: Api, h2c: H2Client, bad: bytes) -> None:
    session = await open_append(h2c, BASIN, "s")
    await session.send(*GOOD, bad, records("after"))
    await session.send(records("after, next write"))
    await _expect_bad_frame(api, session)


async def test_bad_frame_after_acks(api: Api, h2c: H2Client) -> None:
    session = await open_append(h2c, BASIN, "s")
    await session.send(*GOOD)
    first = [await session.ack() for _ in range(3)]
    assert all(isinstance(a, AppendAck) for a in first)
    await session.send(BAD_FRAMES["empty"], records("after"))
    acks, terminal = await session.results()
    assert acks == []
    assert _error(terminal)[0] == 400
    assert await _applied_then(api, 3) == [b"g0", b"g1", b"g2", b"marker"]


async def test_truncated_frame_at_end_of_body(api: Api, h2c: H2Client) -> None:
    session = await open_append(h2c, BASIN, "s")
    await session.send(*GOOD, frame(records("cut short"))[:-2], end=True)
    await _expect_bad_frame(api, session)


# --- framing details --------------------------------------------------------------------------


async def test_frames_split_across_data_frames(api: Api, h2c: H2Client) -> None:
    session = await open_append(h2c, BASIN, "s")
    data = b"".join(frame(i) for i in GOOD)
    for i in range(len(data)):
        await session.send(data[i : i + 1])  # one byte per HTTP/2 DATA frame
    await session.close()
    acks, terminal = await session.results()
    assert (_spans(acks), terminal) == ([(0, 1), (1, 2), (2, 3)], None)


@pytest.mark.parametrize("compression", [Compression.ZSTD, Compression.GZIP])
async def test_compressed_input_frames(api: Api, h2c: H2Client, compression: Compression) -> None:
    body = b"compressible " * 500
    data = frame(records(body), compression)
    assert data[3] >> 5 == compression
    session = await open_append(h2c, BASIN, "s")
    await session.send(data, end=True)
    acks, terminal = await session.results()
    assert (_spans(acks), terminal) == ([(0, 1)], None)
    assert await api.bodies("s") == [body]


@pytest.mark.parametrize(
    ("accept_encoding", "code"),
    [("gzip, zstd", 1), ("zstd;q=0", 1), ("gzip", 2), ("br", 0), (None, 0)],
)
async def test_read_frame_compression(
    api: Api, h2c: H2Client, accept_encoding: str | None, code: int
) -> None:
    assert (await api.append("s", b"a" * 5000)).status_code == 200
    headers = {"accept-encoding": accept_encoding} if accept_encoding else None
    session = await open_read(h2c, BASIN, "s", {"seq_num": 0, "wait": 0}, headers)
    raw = await session.stream.body()
    assert (raw[3] >> 5) & 3 == code
    assert int.from_bytes(raw[:3], "big") == len(raw) - 3  # exactly one frame, then the end


async def test_session_content_type_uses_first_entry(api: Api, h2c: H2Client) -> None:
    headers = {"s2-basin": BASIN, "content-type": "s2s/proto, application/json"}
    stream = h2c.request("POST", "/v1/streams/s/records", headers)
    session = AppendSession(stream, *await stream.response())
    assert (session.status, session.headers["content-type"]) == (200, "s2s/proto")
    await session.send(GOOD[0], end=True)
    acks, terminal = await session.results()
    assert (_spans(acks), terminal) == ([(0, 1)], None)
