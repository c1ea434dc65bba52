"""``AppendSession`` against lite: pipelining, ordering, backpressure, closing and failure."""

from __future__ import annotations

import asyncio
import os

import pytest

import s2kit
from conftest import ByteTap, Endpoint, assert_no_tasks_left, unique
from s2kit import AppendInput, CommandRecord, Compression, Record, SeqNum
from s2kit.errors import ClosedError, FencingTokenMismatch, SeqNumMismatch, UsageError


def one(body: bytes, **kwargs: object) -> AppendInput:
    return AppendInput(records=(Record(body=body),), **kwargs)  # type: ignore[arg-type]


async def read_all(stream: s2kit.Stream) -> list[bytes]:
    out: list[bytes] = []
    tail = (await stream.check_tail()).seq_num
    while len(out) < tail:
        out += [r.body for r in (await stream.read(SeqNum(len(out)))).records]
    return out


async def test_a_thousand_pipelined_inputs_are_acked_in_order(stream: s2kit.Stream) -> None:
    async with stream.append_session() as session:
        tickets = [await session.submit(one(b"%d" % i)) for i in range(1000)]
        acks = [await t for t in tickets]
    assert [a.start.seq_num for a in acks] == list(range(1000))
    assert all(a.end.seq_num == a.start.seq_num + 1 for a in acks)
    assert all(a.tail.seq_num >= a.end.seq_num for a in acks)
    assert [a.tail.seq_num for a in acks] == sorted(a.tail.seq_num for a in acks)
    stats = session.statistics()
    assert (stats.queued, stats.inflight, stats.unacked_bytes) == (0, 0, 0)
    assert (stats.acked_batches, stats.attempts) == (1000, 1)
    assert await read_all(stream) == [b"%d" % i for i in range(1000)]


async def test_inputs_beyond_the_default_cap_flow_through(stream: s2kit.Stream) -> None:
    body = os.urandom(100_000)
    async with stream.append_session() as session:  # 6 MB in total, over the 5 MiB cap
        tickets = [await session.submit(one(body)) for _ in range(60)]
        assert session.statistics().unacked_bytes <= 5 * 1024 * 1024
    assert (await tickets[-1]).end.seq_num == 60
    assert await read_all(stream) == [body] * 60


async def test_multi_record_inputs_get_consecutive_ranges(stream: s2kit.Stream) -> None:
    async with stream.append_session() as session:
        first = await session.submit(AppendInput(records=(Record(body=b"a"), Record(body=b"b"))))
        second = await session.submit(
            AppendInput(records=tuple(Record(body=b"%d" % i, timestamp=i) for i in range(3)))
        )
    a, b = await first, await second
    assert (a.start.seq_num, a.end.seq_num, b.start.seq_num, b.end.seq_num) == (0, 2, 2, 5)


async def test_close_waits_for_every_ack_then_submit_is_closed(stream: s2kit.Stream) -> None:
    session = stream.append_session()
    tickets = [await session.submit(one(b"x" * 1000)) for _ in range(200)]
    assert session.statistics().unacked_bytes > 0
    await session.close()
    assert all(t.done() for t in tickets)
    assert (await tickets[-1]).end.seq_num == 200
    with pytest.raises(ClosedError):
        await session.submit(one(b"late"))
    await session.close()  # idempotent
    assert (await stream.check_tail()).seq_num == 200


async def test_an_unused_session_closes_without_a_request(stream: s2kit.Stream) -> None:
    async with stream.append_session() as session:
        pass
    assert session.statistics().attempts == 0
    with pytest.raises(ClosedError):
        await session.submit(one(b"late"))


async def test_backpressure_on_unacked_bytes(stream: s2kit.Stream) -> None:
    big = AppendInput(records=(Record(body=b"x" * 400_000),))
    async with stream.append_session(max_unacked_bytes=1024 * 1024) as session:
        first = await session.submit(big)
        await session.submit(big)
        # A third input does not fit under 1 MiB: submit returns only after an ack made room.
        await session.submit(big)
        assert first.done()
        assert session.statistics().unacked_bytes <= 1024 * 1024
    assert (await stream.check_tail()).seq_num == 3


async def test_backpressure_on_unacked_batches(stream: s2kit.Stream) -> None:
    async with stream.append_session(max_unacked_batches=2) as session:
        tickets = []
        for i in range(20):
            tickets.append(await session.submit(one(b"%d" % i)))
            stats = session.statistics()
            assert stats.queued + stats.inflight <= 2
            if i >= 2:
                assert tickets[i - 2].done()
    assert (await stream.check_tail()).seq_num == 20


async def test_invalid_input_is_a_usage_error_and_the_session_goes_on(
    stream: s2kit.Stream,
) -> None:
    with pytest.raises(UsageError):
        stream.append_session(max_unacked_bytes=1024)
    async with stream.append_session() as session:
        ok = await session.submit(one(b"before"))
        for bad in (
            AppendInput(records=()),
            AppendInput(records=tuple(Record() for _ in range(1001))),
            AppendInput(records=(Record(body=b"x" * (1024 * 1024)),)),
        ):
            with pytest.raises(UsageError):
                await session.submit(bad)
        after = await session.submit(one(b"after"))
    assert ((await ok).start.seq_num, (await after).start.seq_num) == (0, 1)


async def test_a_seq_num_mismatch_fails_that_ticket_every_later_one_and_close(
    stream: s2kit.Stream,
) -> None:
    session = stream.append_session()
    good = [await session.submit(one(b"%d" % i, match_seq_num=i)) for i in range(3)]
    bad = await session.submit(one(b"stale", match_seq_num=1))
    later = [await session.submit(one(b"later")) for _ in range(5)]
    acks = [await t for t in good]
    assert [a.start.seq_num for a in acks] == [0, 1, 2]
    with pytest.raises(SeqNumMismatch) as exc:
        await bad
    error = exc.value
    assert error.expected == 3
    for ticket in later:
        with pytest.raises(SeqNumMismatch) as later_exc:
            await ticket
        assert later_exc.value is error
    with pytest.raises(SeqNumMismatch) as close_exc:
        await session.close()
    assert close_exc.value is error
    with pytest.raises(SeqNumMismatch):
        await session.submit(one(b"after the failure"))
    assert await read_all(stream) == [b"0", b"1", b"2"]


async def test_fencing_in_a_session(stream: s2kit.Stream) -> None:
    async with stream.append_session() as session:
        fence = await session.submit(AppendInput(records=(CommandRecord.fence("writer-a"),)))
        fenced = await session.submit(one(b"mine", fencing_token="writer-a"))
    assert ((await fence).start.seq_num, (await fenced).start.seq_num) == (0, 1)

    session = stream.append_session()
    ticket = await session.submit(one(b"stale writer", fencing_token="writer-0"))
    with pytest.raises(FencingTokenMismatch) as exc:
        await ticket
    assert exc.value.expected == "writer-a"
    with pytest.raises(FencingTokenMismatch):
        await session.close()
    assert (await stream.check_tail()).seq_num == 2


async def test_leaving_the_block_with_an_exception_aborts(stream: s2kit.Stream) -> None:
    tickets: list[s2kit.AppendTicket] = []
    session = stream.append_session()

    async def fail_inside() -> None:
        async with session:
            for i in range(50):
                tickets.append(await session.submit(one(b"%d" % i)))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_inside()
    assert all(t.done() for t in tickets)
    outcomes = await asyncio.gather(*(_outcome(t) for t in tickets))
    # Whatever was acked before the abort is in the stream; the rest failed as closed.
    acked = [o for o in outcomes if not isinstance(o, BaseException)]
    assert all(isinstance(o, ClosedError) for o in outcomes[len(acked) :])
    assert len(acked) < len(tickets)
    assert (await stream.check_tail()).seq_num >= len(acked)
    with pytest.raises(ClosedError):
        await session.submit(one(b"late"))


async def _outcome(ticket: s2kit.AppendTicket) -> object:
    try:
        return await ticket
    except ClosedError as exc:
        return exc


async def test_encrypted_session(s2: s2kit.S2) -> None:
    name = unique("cipher")
    await s2.create_basin(
        name, s2kit.BasinConfig(stream_cipher=s2kit.EncryptionAlgorithm.AES_256_GCM)
    )
    await s2.basin(name).create_stream("s")
    stream = s2.basin(name).stream("s").with_encryption_key("A" * 43 + "=")
    async with stream.append_session() as session:
        tickets = [await session.submit(one(b"secret %d" % i)) for i in range(10)]
    assert (await tickets[-1]).end.seq_num == 10
    assert await read_all(stream) == [b"secret %d" % i for i in range(10)]


@pytest.mark.parametrize("compression", [Compression.ZSTD, Compression.GZIP])
async def test_compressed_session_frames(endpoint: Endpoint, compression: Compression) -> None:
    body = b"a very compressible record body " * 1000  # 32 KB each
    scheme = "https" if endpoint.tls else "http"
    async with (
        ByteTap(endpoint.port) as tap,
        endpoint.client(tap.url(scheme), compression=compression) as s2,
    ):
        name = unique("zip")
        await s2.create_basin(name)
        await s2.basin(name).create_stream("s")
        stream = s2.basin(name).stream("s")
        before = tap.upstream
        async with stream.append_session() as session:
            tickets = [await session.submit(one(body)) for _ in range(20)]
        assert (await tickets[-1]).end.seq_num == 20
        assert tap.upstream - before < 20 * len(body) // 10
        assert await read_all(stream) == [body] * 20
    assert_no_tasks_left()
