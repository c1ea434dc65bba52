"""The SDK over HTTP/1.1 (``S2(..., http1=True)``): unary operations and SSE read sessions."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

import s2kit
from s2kit.errors import ReadUnwritten, SeqNumMismatch, ServerError, UsageError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from s2kit.server import Lite

BASIN = "http1-basin"


@pytest.fixture
async def stream(lite: Lite) -> AsyncIterator[s2kit.Stream]:
    async with s2kit.S2("t", endpoints=s2kit.Endpoints.for_url(lite.url), http1=True) as client:
        await client.create_basin(BASIN)
        await client.basin(BASIN).create_stream("s")
        yield client.basin(BASIN).stream("s")


def _records(*bodies: str) -> s2kit.AppendInput:
    return s2kit.AppendInput(records=[s2kit.Record(body=b) for b in bodies])


async def test_unary_operations_over_http1(stream: s2kit.Stream) -> None:
    ack = await stream.append(_records("a", "b"))
    assert (ack.start.seq_num, ack.end.seq_num) == (0, 2)
    assert await stream.check_tail() == ack.end
    batch = await stream.read(s2kit.SeqNum(0))
    assert [r.body for r in batch.records] == [b"a", b"b"]
    with pytest.raises(SeqNumMismatch) as info:
        await stream.append(s2kit.AppendInput(records=(s2kit.Record(body=b"x"),), match_seq_num=0))
    assert info.value.expected == 2
    with pytest.raises(ReadUnwritten):
        await stream.read(s2kit.SeqNum(10))


async def test_many_requests_reuse_keepalive_connections(stream: s2kit.Stream) -> None:
    for i in range(50):
        await stream.append(_records(f"r{i}"))
    results = await asyncio.gather(*(stream.check_tail() for _ in range(20)))
    assert {r.seq_num for r in results} == {50}


async def test_sse_read_session_follows_the_tail(stream: s2kit.Stream) -> None:
    await stream.append(_records("stored"))

    async def write_later() -> None:
        await asyncio.sleep(0.1)
        for i in range(3):
            await stream.append(_records(f"live{i}"))

    seen: list[bytes] = []
    async with asyncio.TaskGroup() as tg:
        tg.create_task(write_later())
        async with stream.read_session(s2kit.SeqNum(0), wait=5) as session:
            async for batch in session:
                seen.extend(r.body for r in batch.records)
                if len(seen) == 4:
                    break
    assert seen == [b"stored", b"live0", b"live1", b"live2"]
    assert session.tail is not None
    assert session.tail.seq_num == 4


async def test_sse_bounded_read_ends_cleanly(stream: s2kit.Stream) -> None:
    await stream.append(_records(*(f"r{i}" for i in range(5))))
    got = []
    async with stream.read_session(s2kit.SeqNum(1), limit=s2kit.ReadLimit(count=3)) as session:
        async for batch in session:
            got.extend(r.seq_num for r in batch.records)
    assert got == [1, 2, 3]


async def test_sse_error_event_becomes_a_typed_error(lite: Lite, stream: s2kit.Stream) -> None:
    await stream.append(_records("x"))
    async with s2kit.S2("t", endpoints=s2kit.Endpoints.for_url(lite.url)) as admin:

        async def delete_later() -> None:
            await asyncio.sleep(0.2)
            await admin.basin(BASIN).delete_stream("s")

        deleter = asyncio.create_task(delete_later())
        with pytest.raises(ServerError) as info:
            async for _ in stream.read_session(s2kit.SeqNum(0)):
                pass
        await deleter
    err = info.value
    assert (err.status, err.code) == (409, "stream_deletion_pending")


async def test_append_session_needs_http2(stream: s2kit.Stream) -> None:
    with pytest.raises(UsageError):
        stream.append_session()


async def test_iter_streams_pages_with_a_page_size(lite: Lite, stream: s2kit.Stream) -> None:
    async with s2kit.S2("t", endpoints=s2kit.Endpoints.for_url(lite.url), http1=True) as client:
        basin = client.basin(BASIN)
        for i in range(4):
            await basin.create_stream(f"p{i}")
        names = [s.name async for s in basin.iter_streams(prefix="p", page_size=3)]
        assert names == ["p0", "p1", "p2", "p3"]
        all_basins = [b.name async for b in client.iter_basins(page_size=1)]
        assert all_basins == [BASIN]
