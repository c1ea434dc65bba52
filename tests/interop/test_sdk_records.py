"""The official Python SDK's unary data plane on lite: append, read, check-tail.

Covers headers and timestamps (client-given, capped, arrival, client-require), every read start
(seq num, timestamp, tail offset), the count/bytes/until limits, clamping, long polls, command
records (fence, trim) and the 416 "unwritten" error. Runs over h2c and TLS (see
``conftest.py``).
"""

from __future__ import annotations

import asyncio
import time

import pytest
import s2_sdk
from s2_sdk import (
    AppendInput,
    CommandRecord,
    ReadLimit,
    ReadUnwrittenError,
    Record,
    S2ServerError,
    SeqNum,
    StreamConfig,
    StreamPosition,
    TailOffset,
    Timestamp,
    Timestamping,
    TimestampingMode,
    metered_bytes,
)

from .conftest import drain

T0 = 1_700_000_000_000  # a past timestamp (ms): client-prefer keeps it, the cap never applies


@pytest.fixture
async def stream(basin: s2_sdk.S2Basin) -> s2_sdk.S2Stream:
    await basin.create_stream("records")
    return basin.stream("records")


async def fill(stream: s2_sdk.S2Stream, timestamps: list[int]) -> list[Record]:
    """Append one record per timestamp, as a single batch; returns what was sent."""
    records = [
        Record(body=f"body-{i}".encode(), headers=[(b"i", str(i).encode())], timestamp=ts)
        for i, ts in enumerate(timestamps)
    ]
    await stream.append(AppendInput(records=records))
    return records


async def test_check_tail_of_empty_stream(stream: s2_sdk.S2Stream) -> None:
    assert await stream.check_tail() == StreamPosition(0, 0)


async def test_append_with_headers_and_timestamps_reads_back(stream: s2_sdk.S2Stream) -> None:
    records = [
        Record(body=b"plain"),
        Record(body=b"", headers=[(b"k", b"v"), (b"k", b"v2"), (b"bin", bytes(range(256)))]),
        Record(body=bytes(range(256)) * 4, headers=[(b"empty-value", b"")], timestamp=T0),
        Record(body=b"later", timestamp=T0 + 5),
    ]
    before = int(time.time() * 1000)

    ack = await stream.append(AppendInput(records=records))

    after = int(time.time() * 1000)
    assert (ack.start.seq_num, ack.end.seq_num, ack.tail.seq_num) == (0, 4, 4)
    assert before <= ack.start.timestamp <= after
    assert ack.end.timestamp == ack.tail.timestamp
    assert await stream.check_tail() == ack.tail

    batch = await stream.read(start=SeqNum(0))
    assert [(r.seq_num, r.body, r.headers) for r in batch.records] == [
        (i, r.body, r.headers) for i, r in enumerate(records)
    ]
    # No client timestamp -> arrival time; a client timestamp below the running maximum is
    # raised to it, so timestamps never go backwards.
    stamps = [r.timestamp for r in batch.records]
    assert stamps[0] == stamps[1] == ack.start.timestamp
    assert stamps[2] == stamps[3] == stamps[0]
    assert ack.end.timestamp == stamps[-1]

    second = await stream.append(AppendInput(records=[Record(body=b"next")]))
    assert (second.start.seq_num, second.end.seq_num) == (4, 5)
    assert second.start.timestamp >= stamps[-1]


async def test_client_timestamps_are_kept(stream: s2_sdk.S2Stream) -> None:
    await fill(stream, [T0, T0, T0 + 10, T0 + 20])

    batch = await stream.read(start=SeqNum(0))

    assert [r.timestamp for r in batch.records] == [T0, T0, T0 + 10, T0 + 20]
    assert await stream.check_tail() == StreamPosition(4, T0 + 20)


async def test_read_starts(stream: s2_sdk.S2Stream) -> None:
    sent = await fill(stream, [T0, T0 + 10, T0 + 10, T0 + 20, T0 + 30])

    from_seq = await stream.read(start=SeqNum(3))
    from_ts = await stream.read(start=Timestamp(T0 + 10))
    between = await stream.read(start=Timestamp(T0 + 11))
    from_tail = await stream.read(start=TailOffset(2))
    whole = await stream.read(start=TailOffset(50))

    assert [r.seq_num for r in from_seq.records] == [3, 4]
    assert [r.seq_num for r in from_ts.records] == [1, 2, 3, 4]  # all records sharing T0+10
    assert [r.seq_num for r in between.records] == [3, 4]
    assert [r.seq_num for r in from_tail.records] == [3, 4]
    assert [r.body for r in whole.records] == [r.body for r in sent]
    assert from_seq.tail is None  # catch-up batches carry no tail


async def test_read_limits(stream: s2_sdk.S2Stream) -> None:
    sent = await fill(stream, [T0 + 10 * i for i in range(10)])
    two = metered_bytes(sent[:2])

    by_count = await stream.read(start=SeqNum(0), limit=ReadLimit(count=3))
    by_bytes = await stream.read(start=SeqNum(0), limit=ReadLimit(bytes=two))
    short_bytes = await stream.read(start=SeqNum(0), limit=ReadLimit(bytes=two - 1))
    too_small = await stream.read(start=SeqNum(0), limit=ReadLimit(bytes=5))
    count_wins = await stream.read(start=SeqNum(0), limit=ReadLimit(count=2, bytes=10_000))
    bytes_wins = await stream.read(start=SeqNum(0), limit=ReadLimit(count=9, bytes=two))

    assert [r.seq_num for r in by_count.records] == [0, 1, 2]
    assert [r.seq_num for r in by_bytes.records] == [0, 1]
    assert [r.seq_num for r in short_bytes.records] == [0]
    assert too_small.records == []
    assert [r.seq_num for r in count_wins.records] == [0, 1]
    assert [r.seq_num for r in bytes_wins.records] == [0, 1]
    assert metered_bytes(by_bytes.records) == two


async def test_read_until(stream: s2_sdk.S2Stream) -> None:
    await fill(stream, [T0, T0 + 10, T0 + 10, T0 + 20, T0 + 30])

    below = await stream.read(start=SeqNum(0), until_timestamp=T0)
    at_dup = await stream.read(start=SeqNum(0), until_timestamp=T0 + 10)
    above = await stream.read(start=SeqNum(0), until_timestamp=T0 + 1000)
    window = await stream.read(start=Timestamp(T0 + 10), until_timestamp=T0 + 30)
    tighter_count = await stream.read(
        start=SeqNum(0), until_timestamp=T0 + 30, limit=ReadLimit(count=2)
    )

    assert below.records == []
    assert [r.seq_num for r in at_dup.records] == [0]
    assert [r.seq_num for r in above.records] == [0, 1, 2, 3, 4]
    assert [r.seq_num for r in window.records] == [1, 2, 3]
    assert [r.seq_num for r in tighter_count.records] == [0, 1]


async def test_invalid_timestamp_window_is_422(stream: s2_sdk.S2Stream) -> None:
    await fill(stream, [T0])

    with pytest.raises(S2ServerError) as caught:
        await stream.read(start=Timestamp(T0 + 5), until_timestamp=T0 + 5)

    assert (caught.value.status_code, caught.value.code) == (422, "invalid")


async def test_read_unwritten_is_416_with_the_tail(stream: s2_sdk.S2Stream) -> None:
    with pytest.raises(ReadUnwrittenError) as empty:
        await stream.read(start=SeqNum(0))
    assert (empty.value.status_code, empty.value.tail) == (416, StreamPosition(0, 0))

    await fill(stream, [T0, T0 + 1, T0 + 2])
    tail = StreamPosition(3, T0 + 2)
    for start in (SeqNum(3), SeqNum(100), TailOffset(0), Timestamp(T0 + 1000)):
        with pytest.raises(ReadUnwrittenError) as caught:
            await stream.read(start=start)
        assert (caught.value.status_code, caught.value.tail) == (416, tail)
    # Clamping moves the start to the tail, where a read that cannot wait is still unwritten.
    with pytest.raises(ReadUnwrittenError) as clamped:
        await stream.read(start=SeqNum(100), clamp_to_tail=True)
    assert clamped.value.tail == tail


async def test_read_session_beyond_the_tail_is_416(stream: s2_sdk.S2Stream) -> None:
    await fill(stream, [T0])

    with pytest.raises(ReadUnwrittenError) as caught:
        await drain(stream.read_session(start=SeqNum(5)))

    assert caught.value.tail == StreamPosition(1, T0)


async def test_clamped_long_poll_returns_the_next_append(stream: s2_sdk.S2Stream) -> None:
    await fill(stream, [T0, T0 + 1])

    poll = asyncio.create_task(stream.read(start=SeqNum(100), clamp_to_tail=True, wait=4))
    # Keep appending until the poll answers: whether the poll reached the tail before or
    # after an append, it must return the first record that became durable after it parked.
    acks: list[s2_sdk.AppendAck] = []
    while not poll.done():
        acks.append(await stream.append(AppendInput(records=[Record(body=b"live")])))
        await asyncio.wait({poll}, timeout=0.5)
    batch = poll.result()

    assert len(batch.records) == 1
    record = batch.records[0]
    assert record.body == b"live"
    assert record.seq_num in [ack.start.seq_num for ack in acks]
    assert batch.tail is not None  # a batch taken from the live tail carries the tail
    assert batch.tail.seq_num >= record.seq_num + 1


async def test_long_poll_expiry_returns_an_empty_batch(stream: s2_sdk.S2Stream) -> None:
    await fill(stream, [T0])

    batch = await stream.read(start=SeqNum(1), wait=1)

    assert batch.records == []


async def test_command_records_are_readable_and_filterable(stream: s2_sdk.S2Stream) -> None:
    await stream.append(
        AppendInput(records=[Record(body=b"a"), CommandRecord.fence("tok"), Record(body=b"b")])
    )

    everything = await stream.read(start=SeqNum(0))
    data_only = await stream.read(start=SeqNum(0), ignore_command_records=True)

    fence = everything.records[1]
    assert (fence.headers, fence.body, fence.is_command_record()) == (
        [(b"", b"fence")],
        b"tok",
        True,
    )
    assert [r.body for r in data_only.records] == [b"a", b"b"]


async def test_client_require_rejects_records_without_timestamp(
    basin: s2_sdk.S2Basin,
) -> None:
    config = StreamConfig(timestamping=Timestamping(mode=TimestampingMode.CLIENT_REQUIRE))
    await basin.create_stream("strict", config=config)
    strict = basin.stream("strict")

    with pytest.raises(S2ServerError) as caught:
        await strict.append(AppendInput(records=[Record(body=b"a", timestamp=T0), Record(b"b")]))
    ack = await strict.append(AppendInput(records=[Record(body=b"a", timestamp=123)]))

    assert (caught.value.status_code, caught.value.code) == (422, "invalid")
    assert (ack.start.seq_num, ack.start.timestamp) == (0, 123)


async def test_timestamp_capping_and_arrival_mode(basin: s2_sdk.S2Basin) -> None:
    future = int(time.time() * 1000) + 3_600_000
    await basin.create_stream("capped")
    await basin.create_stream(
        "uncapped", config=StreamConfig(timestamping=Timestamping(uncapped=True))
    )
    await basin.create_stream(
        "arrival", config=StreamConfig(timestamping=Timestamping(mode=TimestampingMode.ARRIVAL))
    )
    one = [Record(body=b"x", timestamp=future)]

    before = int(time.time() * 1000)
    capped = await basin.stream("capped").append(AppendInput(records=one))
    uncapped = await basin.stream("uncapped").append(AppendInput(records=one))
    arrival = await basin.stream("arrival").append(
        AppendInput(records=[Record(body=b"x", timestamp=T0)])
    )
    after = int(time.time() * 1000)

    assert before <= capped.start.timestamp <= after  # a future timestamp is capped to now
    assert uncapped.start.timestamp == future
    assert before <= arrival.start.timestamp <= after  # the client's timestamp is ignored


async def test_trim_command_removes_earlier_records(stream: s2_sdk.S2Stream) -> None:
    await fill(stream, [T0 + i for i in range(6)])
    await stream.append(AppendInput(records=[CommandRecord.trim(3)]))

    # Trimmed records are deleted in the background; reads skip them once they are gone.
    # No event announces that, so poll (bounded) the way a client would.
    async with asyncio.timeout(20):
        while True:
            batch = await stream.read(start=SeqNum(0))
            if batch.records[0].seq_num == 3:
                break
            await asyncio.sleep(0.02)

    assert [r.seq_num for r in batch.records] == [3, 4, 5, 6]
    assert batch.records[-1].headers == [(b"", b"trim")]
    assert (await stream.check_tail()).seq_num == 7


async def test_unary_read_caps_at_1000_records(stream: s2_sdk.S2Stream) -> None:
    for chunk in range(3):
        records = [Record(body=f"{chunk}-{i}".encode()) for i in range(500)]
        await stream.append(AppendInput(records=records))

    first = await stream.read(start=SeqNum(0))
    rest = await stream.read(start=SeqNum(first.records[-1].seq_num + 1))

    assert [r.seq_num for r in first.records] == list(range(1000))
    assert [r.seq_num for r in rest.records] == list(range(1000, 1500))
