"""``ReadSession`` against lite: catch-up, following the tail, bounds, heartbeats and closing."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

import s2kit
from conftest import ByteTap, Endpoint, assert_no_tasks_left, unique
from s2kit import (
    AppendInput,
    Compression,
    ReadBatch,
    ReadLimit,
    Record,
    SeqNum,
    StreamPosition,
    TailOffset,
    Timestamp,
)
from s2kit.errors import ReadUnwritten, ServerError

WAIT = 20.0  # generous bound on any wait for the server


@pytest.fixture
def lite_overrides() -> dict[str, object]:
    # Frequent heartbeats, so that sessions idling at the tail receive many of them.
    return {"heartbeat_min": 0.02, "heartbeat_max": 0.05}


async def fill(stream: s2kit.Stream, n: int, *, timestamps: bool = False) -> None:
    records = tuple(
        Record(body=b"%d" % i, timestamp=(i + 1) * 1000 if timestamps else None) for i in range(n)
    )
    for start in range(0, n, 1000):
        await stream.append(AppendInput(records=records[start : start + 1000]))


async def drain(session: s2kit.ReadSession) -> list[ReadBatch]:
    async with asyncio.timeout(WAIT):
        return [b async for b in session]


def bodies(batches: list[ReadBatch]) -> list[bytes]:
    return [r.body for b in batches for r in b.records]


async def test_catch_up_reads_everything_in_bounded_batches(stream: s2kit.Stream) -> None:
    await fill(stream, 2500)
    session = stream.read_session(SeqNum(0), wait=0)  # to the tail, then stop
    batches = await drain(session)
    assert bodies(batches) == [b"%d" % i for i in range(2500)]
    assert all(0 < len(b.records) <= 1000 for b in batches)
    assert len(batches) >= 3
    seq = [r.seq_num for b in batches for r in b.records]
    assert seq == list(range(2500))


async def test_catch_up_of_records_near_the_size_limit(stream: s2kit.Stream) -> None:
    big = [os.urandom(1024 * 1024 - 8) for _ in range(5)]
    for body in big:
        await stream.append(AppendInput(records=(Record(body=body),)))
    assert bodies(await drain(stream.read_session(wait=0))) == big


async def test_follows_the_tail_while_a_writer_appends(stream: s2kit.Stream) -> None:
    await fill(stream, 3)
    async with stream.read_session(SeqNum(0)) as session:
        got: list[bytes] = []
        async with asyncio.timeout(WAIT):
            async for batch in session:
                got += [r.body for r in batch.records]
                if 3 <= len(got) < 13:
                    await stream.append(AppendInput(records=(Record(body=b"live"),)))
                if len(got) == 13:
                    break
        assert got == [b"0", b"1", b"2"] + [b"live"] * 10
        assert session.caught_up.is_set()
        assert session.tail is not None
        assert session.tail.seq_num == 13
    with pytest.raises(StopAsyncIteration):
        await anext(session)


async def test_heartbeats_are_not_yielded_but_update_tail(stream: s2kit.Stream) -> None:
    session = stream.read_session(SeqNum(0))
    first = asyncio.create_task(anext(session))
    async with asyncio.timeout(WAIT):
        await session.caught_up.wait()  # set by the first heartbeat at the (empty) tail
    assert session.tail == StreamPosition(0, 0)
    assert not first.done()
    ack = await stream.append(AppendInput(records=(Record(body=b"wake"),)))
    batch = await asyncio.wait_for(first, WAIT)
    assert [r.body for r in batch.records] == [b"wake"]
    assert batch.tail is not None
    assert batch.tail.seq_num >= ack.end.seq_num
    await session.aclose()


async def test_wait_ends_an_idle_session_cleanly_without_yielding_heartbeats(
    stream: s2kit.Stream,
) -> None:
    await fill(stream, 2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    session = stream.read_session(SeqNum(0), wait=1)
    batches = await drain(session)
    # ~1 s at the tail with a heartbeat every <= 50 ms, yet only the records came out.
    assert bodies(batches) == [b"0", b"1"]
    assert loop.time() - started >= 0.9
    assert session.tail is not None
    assert session.tail.seq_num == 2


async def test_count_and_bytes_bounds_end_the_session(stream: s2kit.Stream) -> None:
    await fill(stream, 10)
    assert bodies(await drain(stream.read_session(limit=ReadLimit(count=4)))) == [
        b"0",
        b"1",
        b"2",
        b"3",
    ]
    size = Record(body=b"0").metered_bytes
    by_bytes = await drain(stream.read_session(SeqNum(2), limit=ReadLimit(bytes=3 * size)))
    assert bodies(by_bytes) == [b"2", b"3", b"4"]
    # A bound beyond the tail cannot follow: the session reads what there is and ends.
    assert len(bodies(await drain(stream.read_session(limit=ReadLimit(count=50))))) == 10


async def test_count_with_wait_takes_live_records_until_the_count(stream: s2kit.Stream) -> None:
    await fill(stream, 1)
    session = stream.read_session(SeqNum(0), limit=ReadLimit(count=3), wait=30)
    got: list[bytes] = []
    async with asyncio.timeout(WAIT):
        async for batch in session:
            got += [r.body for r in batch.records]
            if len(got) < 3:
                await stream.append(AppendInput(records=(Record(body=b"live"),)))
    assert got == [b"0", b"live", b"live"]


async def test_until_stops_before_the_cutoff(stream: s2kit.Stream) -> None:
    await fill(stream, 6, timestamps=True)  # timestamps 1000..6000
    assert bodies(await drain(stream.read_session(SeqNum(0), until=3500))) == [
        b"0",
        b"1",
        b"2",
    ]
    session = stream.read_session(Timestamp(2000), until=4000)
    assert bodies(await drain(session)) == [b"1", b"2"]


async def test_tail_offset_and_timestamp_starts(stream: s2kit.Stream) -> None:
    await fill(stream, 5, timestamps=True)
    assert bodies(await drain(stream.read_session(TailOffset(2), wait=0))) == [b"3", b"4"]
    assert bodies(await drain(stream.read_session(Timestamp(4000), wait=0))) == [b"3", b"4"]


async def test_start_beyond_the_tail_raises_read_unwritten_or_clamps(
    stream: s2kit.Stream,
) -> None:
    await fill(stream, 2)
    session = stream.read_session(SeqNum(100))
    with pytest.raises(ReadUnwritten) as exc:
        await anext(session)
    assert exc.value.tail.seq_num == 2
    assert session.reconnects == 0  # not retried
    with pytest.raises(StopAsyncIteration):
        await anext(session)

    async with stream.read_session(SeqNum(100), clamp=True) as clamped:
        pending = asyncio.create_task(anext(clamped))
        async with asyncio.timeout(WAIT):
            await clamped.caught_up.wait()
        await stream.append(AppendInput(records=(Record(body=b"after clamp"),)))
        batch = await asyncio.wait_for(pending, WAIT)
        assert [(r.seq_num, r.body) for r in batch.records] == [(2, b"after clamp")]


async def test_aclose_stops_a_session_another_task_is_reading(stream: s2kit.Stream) -> None:
    session = stream.read_session(SeqNum(0))
    reader = asyncio.create_task(drain(session))
    async with asyncio.timeout(WAIT):
        await session.caught_up.wait()
    await session.aclose()
    assert await asyncio.wait_for(reader, WAIT) == []
    await session.aclose()  # idempotent


async def test_aclose_while_the_session_connects(endpoint: Endpoint) -> None:
    async with endpoint.client() as s2:
        name = unique("race")
        await s2.create_basin(name)
        await s2.basin(name).create_stream("s")
        await fill(s2.basin(name).stream("s"), 5)
    async with endpoint.client() as s2:  # no connection yet: the session must connect
        session = s2.basin(name).stream("s").read_session(SeqNum(0))
        reader = asyncio.create_task(drain(session))
        for _ in range(3):
            await asyncio.sleep(0)  # the reader is now inside connect
        await session.aclose()
        assert await asyncio.wait_for(reader, WAIT) == []


async def test_missing_stream_fails_the_session(basin: s2kit.Basin) -> None:
    session = basin.stream("nope").read_session()
    with pytest.raises(ServerError) as exc:
        await anext(session)
    assert (exc.value.status, exc.value.code) == (404, "stream_not_found")


async def test_encrypted_read_session(s2: s2kit.S2) -> None:
    name = unique("cipher")
    await s2.create_basin(
        name, s2kit.BasinConfig(stream_cipher=s2kit.EncryptionAlgorithm.AEGIS_256)
    )
    await s2.basin(name).create_stream("s")
    plain = s2.basin(name).stream("s")
    keyed = plain.with_encryption_key(base64.b64encode(bytes(range(32))).decode())
    await fill(keyed, 3)
    assert bodies(await drain(keyed.read_session(wait=0))) == [b"0", b"1", b"2"]
    with pytest.raises(ServerError) as exc:
        await anext(plain.read_session(wait=0))
    assert (exc.value.status, exc.value.code) == (400, "bad_header")


@pytest.mark.parametrize("compression", [Compression.ZSTD, Compression.GZIP])
async def test_compressed_read_session(endpoint: Endpoint, compression: Compression) -> None:
    body = b"the same words over and over " * 2000  # ~58 KB each
    scheme = "https" if endpoint.tls else "http"
    async with (
        ByteTap(endpoint.port) as tap,
        endpoint.client(tap.url(scheme), compression=compression) as s2,
    ):
        name = unique("zip")
        await s2.create_basin(name)
        await s2.basin(name).create_stream("s")
        stream = s2.basin(name).stream("s")
        for _ in range(10):
            await stream.append(AppendInput(records=(Record(body=body),)))
        before = tap.downstream
        got = bodies(await drain(stream.read_session(wait=0)))
        assert got == [body] * 10
        assert tap.downstream - before < 10 * len(body) // 10
    assert_no_tasks_left()
