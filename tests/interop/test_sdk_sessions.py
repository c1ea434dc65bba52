"""The official Python SDK's streaming data plane on lite: S2S append sessions, the producer
and read sessions that follow the live tail. Runs over h2c and TLS (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
import s2_sdk
from s2_sdk import (
    AppendAck,
    AppendInput,
    Batching,
    ReadLimit,
    Record,
    SeqNum,
    SequencedRecord,
    StreamPosition,
    TailOffset,
)

from .conftest import drain

if TYPE_CHECKING:
    from .conftest import TcpTap

BATCHES = 1000
BATCH_SIZE = 5
HEARTBEATS_BYTES = 60  # a few heartbeats: each is an h2 DATA frame of at least ~20 bytes
WAIT = 20.0  # generous bound on anything that should happen "soon" on a loaded CI box


@pytest.fixture
def lite_overrides() -> dict[str, object]:
    # Frequent heartbeats, so followers see many of them interleaved with live batches.
    return {"deletion_grace": 30.0, "heartbeat_min": 0.02, "heartbeat_max": 0.05}


@pytest.fixture
async def stream(basin: s2_sdk.S2Basin) -> s2_sdk.S2Stream:
    await basin.create_stream("sessions")
    return basin.stream("sessions")


async def read_all(stream: s2_sdk.S2Stream, count: int) -> list[SequencedRecord]:
    """Read exactly ``count`` records from 0 with a bounded session (ends at the limit)."""
    return await drain(stream.read_session(start=SeqNum(0), limit=ReadLimit(count=count)))


async def test_append_session_pipelines_1000_batches(stream: s2_sdk.S2Stream) -> None:
    inputs = [
        AppendInput(
            records=[
                Record(body=f"{b}:{i}".encode() * 3, headers=[(b"batch", str(b).encode())])
                for i in range(BATCH_SIZE)
            ]
        )
        for b in range(BATCHES)
    ]

    async with stream.append_session() as session:
        # Every batch is submitted before the first ack is awaited.
        tickets = [await session.submit(inp) for inp in inputs]
        acks: list[AppendAck] = [await ticket for ticket in tickets]

    for b, ack in enumerate(acks):
        assert (ack.start.seq_num, ack.end.seq_num) == (b * BATCH_SIZE, (b + 1) * BATCH_SIZE)
        assert ack.tail.seq_num >= ack.end.seq_num
        assert ack.start.timestamp <= ack.end.timestamp <= ack.tail.timestamp
    assert [a.tail.seq_num for a in acks] == sorted(a.tail.seq_num for a in acks)
    assert [a.start.timestamp for a in acks] == sorted(a.start.timestamp for a in acks)
    total = BATCHES * BATCH_SIZE
    tail = await stream.check_tail()
    assert tail == StreamPosition(total, acks[-1].end.timestamp)

    got = await read_all(stream, total)
    sent = [r for inp in inputs for r in inp.records]
    assert [r.seq_num for r in got] == list(range(total))
    assert [(r.body, r.headers) for r in got] == [(r.body, r.headers) for r in sent]


async def test_append_session_with_nothing_submitted(stream: s2_sdk.S2Stream) -> None:
    async with stream.append_session():
        pass

    assert await stream.check_tail() == StreamPosition(0, 0)


async def test_append_sessions_take_turns_on_one_stream(stream: s2_sdk.S2Stream) -> None:
    async with stream.append_session() as first:
        ack_a = await (await first.submit(AppendInput(records=[Record(body=b"a")] * 3)))
    async with stream.append_session(max_unacked_batches=1) as second:
        ticket_b = await second.submit(AppendInput(records=[Record(body=b"b")] * 2))
        ticket_c = await second.submit(AppendInput(records=[Record(body=b"c")]))
        ack_b, ack_c = await ticket_b, await ticket_c

    assert (ack_a.start.seq_num, ack_a.end.seq_num) == (0, 3)
    assert (ack_b.start.seq_num, ack_b.end.seq_num) == (3, 5)
    assert (ack_c.start.seq_num, ack_c.end.seq_num) == (5, 6)
    assert [r.body for r in await read_all(stream, 6)] == [b"a"] * 3 + [b"b"] * 2 + [b"c"]


async def test_producer_assigns_consecutive_seq_nums(stream: s2_sdk.S2Stream) -> None:
    await stream.append(AppendInput(records=[Record(body=b"before")]))
    total = 3000
    # Small batches and a short linger: records span many batches, some full, some lingered.
    batching = Batching(max_records=64, linger=timedelta(milliseconds=2))

    async with stream.producer(batching=batching) as producer:
        tickets = []
        for i in range(total):
            tickets.append(await producer.submit(Record(body=f"rec-{i}".encode())))
            if i % 500 == 0:
                await asyncio.sleep(0)  # let the linger timer fire now and then
        acks = [await ticket for ticket in tickets]

    assert [a.seq_num for a in acks] == list(range(1, total + 1))
    for a in acks:
        assert a.batch.start.seq_num <= a.seq_num < a.batch.end.seq_num
        assert a.batch.end.seq_num - a.batch.start.seq_num <= 64
    assert len({a.batch.start.seq_num for a in acks}) >= total // 64
    assert (await stream.check_tail()).seq_num == total + 1
    got = await read_all(stream, total + 1)
    assert [r.body for r in got] == [b"before"] + [f"rec-{i}".encode() for i in range(total)]


async def test_producer_with_match_seq_num_and_fencing_token(stream: s2_sdk.S2Stream) -> None:
    await stream.append(AppendInput(records=[s2_sdk.CommandRecord.fence("owner-1")]))

    async with stream.producer(
        fencing_token="owner-1",
        match_seq_num=1,
        batching=Batching(max_records=10),
    ) as producer:
        tickets = [await producer.submit(Record(body=bytes([i]))) for i in range(95)]
        await producer.flush()
        acks = [await ticket for ticket in tickets]

    assert [a.seq_num for a in acks] == list(range(1, 96))
    assert (await stream.check_tail()).seq_num == 96


async def test_read_session_follows_the_tail_while_a_writer_appends(
    basin: s2_sdk.S2Basin,
    stream: s2_sdk.S2Stream,
    connect: Callable[..., s2_sdk.S2],
    tap: TcpTap,
) -> None:
    rounds, per_round = 20, 7
    total = rounds * per_round
    seen: list[SequencedRecord] = []
    progress = asyncio.Condition()

    async def reader(session: s2_sdk.ReadSession) -> None:
        async for batch in session:
            async with progress:
                seen.extend(batch.records)
                progress.notify_all()

    async def seen_at_least(n: int) -> None:
        async with progress:
            await asyncio.wait_for(progress.wait_for(lambda: len(seen) >= n), WAIT)

    # The session follows the tail (wait > 0) and ends by itself once it has delivered
    # ``total`` records, so the test never has to cancel it mid-stream. (Closing a following
    # session just as a frame lands can hang s2_sdk 0.13.0 on Python 3.11, whose
    # asyncio.wait_for swallows the cancellation in that case: CPython gh-86296.)
    async with (
        asyncio.timeout(60),
        connect(tap.url) as via_tap,
        via_tap.basin(basin.name)
        .stream(stream.name)
        .read_session(start=SeqNum(0), limit=ReadLimit(count=total), wait=30) as session,
    ):
        # On an empty stream the only thing the server can send is a heartbeat carrying the
        # tail; the SDK reports it as "caught up".
        assert await asyncio.wait_for(session.caught_up(), WAIT) == StreamPosition(0, 0)
        task = asyncio.create_task(reader(session))
        for r in range(rounds):
            if r % 2:
                for i in range(per_round):
                    body = f"{r}.{i}".encode()
                    await stream.append(AppendInput(records=[Record(body=body)]))
            else:
                records = [Record(body=f"{r}.{i}".encode()) for i in range(per_round)]
                await stream.append(AppendInput(records=records))
            if r % 5 == 2:
                # Pause until the reader has everything, then until the idle session has
                # received more bytes: with no writes, those can only be heartbeats.
                await seen_at_least((r + 1) * per_round)
                await tap.wait_downstream(tap.downstream + HEARTBEATS_BYTES)
        await asyncio.wait_for(task, WAIT)  # the session ended at its count limit

    expected = [f"{r}.{i}".encode() for r in range(rounds) for i in range(per_round)]
    assert [r.seq_num for r in seen] == list(range(total))
    assert [r.body for r in seen] == expected


async def test_read_session_catches_up_then_goes_live(stream: s2_sdk.S2Stream) -> None:
    await stream.append(AppendInput(records=[Record(body=b"old-0"), Record(body=b"old-1")]))
    batches: list[s2_sdk.ReadBatch] = []

    async with stream.read_session(
        start=TailOffset(1), limit=ReadLimit(count=3), wait=10
    ) as session:
        iterator = aiter(session)
        batches.append(await asyncio.wait_for(anext(iterator), WAIT))
        await asyncio.wait_for(session.caught_up(), WAIT)
        await stream.append(AppendInput(records=[Record(body=b"new-0")]))
        await stream.append(AppendInput(records=[Record(body=b"new-1"), Record(body=b"x")]))
        async for batch in iterator:
            batches.append(batch)

    got = [(r.seq_num, r.body) for b in batches for r in b.records]
    assert got == [(1, b"old-1"), (2, b"new-0"), (3, b"new-1")]  # live batch truncated to fit
    assert batches[0].tail is None or batches[0].tail.seq_num == 2
    assert all(b.tail is not None for b in batches[1:])


async def test_bounded_read_session_with_wait_ends_after_idle(stream: s2_sdk.S2Stream) -> None:
    await stream.append(AppendInput(records=[Record(body=b"only")]))

    got = await drain(stream.read_session(start=SeqNum(0), limit=ReadLimit(count=10), wait=1))

    assert [r.body for r in got] == [b"only"]


async def test_unbounded_read_session_with_zero_wait_stops_at_the_tail(
    stream: s2_sdk.S2Stream,
) -> None:
    await stream.append(AppendInput(records=[Record(body=b"r")] * 4))

    empty = await drain(stream.read_session(start=SeqNum(100), clamp_to_tail=True, wait=0))
    rest = await drain(stream.read_session(start=SeqNum(1), wait=0))

    assert empty == []
    assert [r.seq_num for r in rest] == [1, 2, 3]


async def test_max_size_batches_cross_flow_control(stream: s2_sdk.S2Stream) -> None:
    # Batches at the 1 MiB metered limit: far beyond HTTP/2's initial 64 KiB windows, so both
    # directions depend on WINDOW_UPDATEs flowing while frames are in flight.
    body_size = 1024 * 1024 - 8 - 2 * 1 - len(b"i") - 3  # one header (b"i", 3 digits)
    inputs = [
        AppendInput(records=[Record(body=bytes([i]) * body_size, headers=[(b"i", b"%03d" % i)])])
        for i in range(6)
    ]
    assert s2_sdk.metered_bytes(inputs[0].records) == 1024 * 1024

    async with stream.append_session(max_unacked_bytes=3 * 1024 * 1024) as session:
        tickets = [await session.submit(inp) for inp in inputs]
        acks = [await ticket for ticket in tickets]
    unary = await stream.append(inputs[0])
    got = await read_all(stream, 7)

    assert [a.end.seq_num for a in acks] == [1, 2, 3, 4, 5, 6]
    assert unary.end.seq_num == 7
    assert [(r.body, r.headers) for r in got] == [
        (inp.records[0].body, inp.records[0].headers) for inp in [*inputs, inputs[0]]
    ]
    first = await stream.read(start=SeqNum(0))
    assert len(first.records) == 1  # a unary read stops at 1 MiB


async def test_follow_with_limits(stream: s2_sdk.S2Stream) -> None:
    await stream.append(AppendInput(records=[Record(body=b"stored", timestamp=1_000)]))
    one_record = s2_sdk.metered_bytes([Record(body=b"live-0")])

    by_bytes = stream.read_session(start=SeqNum(0), limit=ReadLimit(bytes=14 + one_record), wait=10)
    by_until = stream.read_session(start=SeqNum(0), until_timestamp=2_000, wait=10)
    async with by_bytes, by_until:
        first_bytes = await asyncio.wait_for(anext(by_bytes), WAIT)
        first_until = await asyncio.wait_for(anext(by_until), WAIT)
        await asyncio.wait_for(by_bytes.caught_up(), WAIT)
        await asyncio.wait_for(by_until.caught_up(), WAIT)
        await stream.append(
            AppendInput(
                records=[
                    Record(body=b"live-0", timestamp=1_500),
                    Record(body=b"live-1", timestamp=2_500),
                ]
            )
        )
        rest_bytes = [r async for b in by_bytes for r in b.records]
        rest_until = [r async for b in by_until for r in b.records]

    assert [r.body for r in first_bytes.records] == [b"stored"]
    assert [r.body for r in first_until.records] == [b"stored"]
    # The live batch is cut to what the bytes budget allows, and until stops before 2_500.
    assert [r.body for r in rest_bytes] == [b"live-0"]
    assert [r.body for r in rest_until] == [b"live-0"]
