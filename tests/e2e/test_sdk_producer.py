"""``Producer`` against lite: record-at-a-time appends, batching, flush, fencing and matching."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

import s2kit
from s2kit import AppendInput, Batching, CommandRecord, Record, RecordAck, SeqNum
from s2kit.errors import ClosedError, FencingTokenMismatch, SeqNumMismatch, UsageError


def batch_sizes(acks: list[RecordAck]) -> list[int]:
    """Records per batch, in order, from the batch ranges the acks carry."""
    sizes = Counter((a.batch.start.seq_num, a.batch.end.seq_num) for a in acks)
    for (start, end), count in sizes.items():
        assert end - start == count, "every record of a batch must report that batch"
    return [end - start for start, end in sorted(sizes)]


async def read_bodies(stream: s2kit.Stream) -> list[bytes]:
    out: list[bytes] = []
    tail = (await stream.check_tail()).seq_num
    while len(out) < tail:
        out += [r.body for r in (await stream.read(SeqNum(len(out)))).records]
    return out


async def test_many_records_get_consecutive_seq_nums(stream: s2kit.Stream) -> None:
    async with stream.producer() as producer:
        tickets = [await producer.submit(Record(body=b"%d" % i)) for i in range(3000)]
    acks = [await t for t in tickets]
    assert [a.seq_num for a in acks] == list(range(3000))
    assert all(a.batch.start.seq_num <= a.seq_num < a.batch.end.seq_num for a in acks)
    assert len(batch_sizes(acks)) < 3000  # records were grouped
    assert await read_bodies(stream) == [b"%d" % i for i in range(3000)]


async def test_batches_close_at_max_records(stream: s2kit.Stream) -> None:
    batching = Batching(max_records=100, linger=60.0)
    async with stream.producer(batching=batching) as producer:
        tickets = [await producer.submit(Record(body=b"r")) for _ in range(250)]
        await producer.flush()
        assert all(t.done() for t in tickets)
    assert batch_sizes([await t for t in tickets]) == [100, 100, 50]


async def test_batches_close_at_max_bytes(stream: s2kit.Stream) -> None:
    record = Record(body=b"x" * 992)  # 1000 metered bytes
    async with stream.producer(batching=Batching(max_bytes=3500, linger=60.0)) as producer:
        tickets = [await producer.submit(record) for _ in range(10)]
    assert batch_sizes([await t for t in tickets]) == [3, 3, 3, 1]


async def test_linger_groups_records_and_flush_sends_the_partial_batch(
    stream: s2kit.Stream,
) -> None:
    async with stream.producer(batching=Batching(linger=60.0)) as producer:
        tickets = []
        for i in range(5):
            tickets.append(await producer.submit(Record(body=b"%d" % i)))
            await asyncio.sleep(0)  # the loop runs, but the batch keeps lingering
        assert not any(t.done() for t in tickets)
        await producer.flush()
        assert all(t.done() for t in tickets)
        await producer.flush()  # nothing pending: returns at once
    assert batch_sizes([await t for t in tickets]) == [5]


async def test_a_lone_record_is_sent_when_its_linger_expires(stream: s2kit.Stream) -> None:
    async with stream.producer(batching=Batching(linger=0.02)) as producer:
        ticket = await producer.submit(Record(body=b"alone"))
        ack = await asyncio.wait_for(ticket, 20)  # no flush, no close
        assert ack.seq_num == 0
        assert batch_sizes([ack]) == [1]


async def test_producer_bytes_in_flight_are_bounded(stream: s2kit.Stream) -> None:
    record = Record(body=b"x" * 99_992)  # 100 KB metered
    cap = 1024 * 1024
    async with stream.producer(max_unacked_bytes=cap) as producer:
        tickets = []
        for _ in range(40):
            tickets.append(await producer.submit(record))
            pending = sum(not t.done() for t in tickets)
            assert pending * record.metered_bytes <= cap + record.metered_bytes
    assert (await stream.check_tail()).seq_num == 40


async def test_producer_with_a_fencing_token(stream: s2kit.Stream) -> None:
    await stream.append(AppendInput(records=(CommandRecord.fence("leader-1"),)))
    async with stream.producer(fencing_token="leader-1") as producer:
        tickets = [await producer.submit(Record(body=b"%d" % i)) for i in range(20)]
    assert [(await t).seq_num for t in tickets] == list(range(1, 21))

    producer = stream.producer(fencing_token="leader-0")
    doomed = [await producer.submit(Record(body=b"no")) for _ in range(5)]
    with pytest.raises(FencingTokenMismatch) as exc:
        await doomed[0]
    assert exc.value.expected == "leader-1"
    for ticket in doomed[1:]:
        with pytest.raises(FencingTokenMismatch):
            await ticket
    with pytest.raises(FencingTokenMismatch):
        await producer.close()
    with pytest.raises(FencingTokenMismatch):
        await producer.submit(Record(body=b"after"))
    assert (await stream.check_tail()).seq_num == 21


async def test_producer_in_match_seq_num_mode(stream: s2kit.Stream) -> None:
    batching = Batching(max_records=7, linger=60.0)
    async with stream.producer(batching=batching, match_seq_num=0) as producer:
        tickets = [await producer.submit(Record(body=b"%d" % i)) for i in range(100)]
    acks = [await t for t in tickets]
    assert [a.seq_num for a in acks] == list(range(100))
    assert len(batch_sizes(acks)) == 15  # each batch carried its own running match_seq_num

    stale = stream.producer(batching=batching, match_seq_num=50)
    ticket = await stale.submit(Record(body=b"stale"))
    with pytest.raises(SeqNumMismatch) as exc:
        await stale.flush()
    assert exc.value.expected == 100
    assert ticket.done()
    with pytest.raises(SeqNumMismatch):
        await ticket
    with pytest.raises(SeqNumMismatch):
        await stale.close()
    assert (await stream.check_tail()).seq_num == 100


async def test_closed_producer_and_usage_errors(stream: s2kit.Stream) -> None:
    producer = stream.producer(batching=Batching(max_bytes=1000))
    with pytest.raises(UsageError):
        await producer.submit(Record(body=b"x" * 1000))
    ticket = await producer.submit(Record(body=b"fits"))
    await producer.close()
    assert ticket.done()
    await producer.close()  # idempotent
    with pytest.raises(ClosedError):
        await producer.submit(Record(body=b"late"))
    assert (await ticket).seq_num == 0


async def test_leaving_the_block_with_an_exception_aborts(stream: s2kit.Stream) -> None:
    producer = stream.producer(batching=Batching(linger=60.0))
    tickets: list[s2kit.RecordTicket] = []

    async def fail_inside() -> None:
        async with producer:
            tickets.append(await producer.submit(Record(body=b"never sent")))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_inside()
    (ticket,) = tickets
    with pytest.raises(ClosedError):
        await ticket
    with pytest.raises(ClosedError):
        await producer.submit(Record(body=b"late"))
    assert (await stream.check_tail()).seq_num == 0
