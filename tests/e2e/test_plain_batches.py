"""Batches of bodies alone (no headers, no timestamps) take lite's short path
(``wire/_pbdec.PlainInput``, ``server/_engine.py``): the same outcome as any other batch, over
a unary protobuf append and over an append session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

import s2kit
from s2kit import AppendAck, AppendInput, Record, StreamConfig, Timestamping, TimestampingMode
from s2kit.errors import ServerError

Append = Callable[[s2kit.Stream, AppendInput], Awaitable[AppendAck]]


async def unary(stream: s2kit.Stream, inp: AppendInput) -> AppendAck:
    return await stream.append(inp)


async def session(stream: s2kit.Stream, inp: AppendInput) -> AppendAck:
    async with stream.append_session() as sess:
        return await (await sess.submit(inp))


def plain(*bodies: bytes, match_seq_num: int | None = None) -> AppendInput:
    return AppendInput(records=[Record(body=b) for b in bodies], match_seq_num=match_seq_num)


@pytest.fixture(params=[unary, session], ids=["unary", "session"])
def append(request: pytest.FixtureRequest) -> Append:
    fn: Append = request.param
    return fn


async def test_bodies_alone_are_sequenced_read_back_and_acked(
    stream: s2kit.Stream, append: Append
) -> None:
    bodies = [b"a", b"", b"x" * 300, b"y" * 20_000]
    first = await append(stream, plain(*bodies))
    assert (first.start.seq_num, first.end.seq_num) == (0, 4)
    second = await append(stream, plain(b"z", match_seq_num=4))
    assert (second.start.seq_num, second.end.seq_num) == (4, 5)
    batch = await stream.read(start=s2kit.SeqNum(0))
    assert [r.body for r in batch.records] == [*bodies, b"z"]
    assert [r.seq_num for r in batch.records] == [0, 1, 2, 3, 4]
    assert all(r.headers == () for r in batch.records)
    # Arrival timestamps, one per batch, never going back.
    stamps = [r.timestamp for r in batch.records]
    assert len(set(stamps[:4])) == 1
    assert stamps[4] >= stamps[0] > 0
    assert second.end.timestamp == stamps[4]


async def test_arrival_time_never_goes_below_a_future_client_timestamp(
    basin: s2kit.Basin, append: Append
) -> None:
    config = StreamConfig(
        timestamping=Timestamping(mode=TimestampingMode.CLIENT_PREFER, uncapped=True)
    )
    await basin.create_stream("s", config)
    stream = basin.stream("s")
    future = 4_000_000_000_000  # year 2096
    await stream.append(AppendInput(records=[Record(body=b"t", timestamp=future)]))
    ack = await append(stream, plain(b"p", b"q"))
    assert ack.start.timestamp == ack.end.timestamp == future
    batch = await stream.read(start=s2kit.SeqNum(1))
    assert [r.timestamp for r in batch.records] == [future, future]


async def test_client_require_refuses_bodies_alone(basin: s2kit.Basin, append: Append) -> None:
    config = StreamConfig(timestamping=Timestamping(mode=TimestampingMode.CLIENT_REQUIRE))
    await basin.create_stream("s", config)
    stream = basin.stream("s")
    with pytest.raises(ServerError) as caught:
        await append(stream, plain(b"p"))
    assert caught.value.code == "invalid"
    assert "record timestamp was required but was missing" in str(caught.value)
    assert await stream.check_tail() == s2kit.StreamPosition(0, 0)


async def test_a_fencing_token_and_match_seq_num_apply_to_bodies_alone(
    stream: s2kit.Stream, append: Append
) -> None:
    await stream.append(AppendInput(records=[s2kit.CommandRecord.fence("tok")]))
    fenced = AppendInput(records=[Record(body=b"ok")], fencing_token="tok", match_seq_num=1)
    ack = await append(stream, fenced)
    assert ack.start.seq_num == 1
    with pytest.raises(s2kit.errors.FencingTokenMismatch):
        await append(stream, AppendInput(records=[Record(body=b"no")], fencing_token="other"))
    assert (await stream.check_tail()).seq_num == 2
