"""Append conditions through the official Python SDK on lite: ``match_seq_num`` and fencing
tokens fail with 412, surfacing as the SDK's ``SeqNumMismatchError`` and
``FencingTokenMismatchError`` carrying what the server expected — for unary appends, inside
append sessions (terminal frame) and through the producer. Runs over h2c and TLS.
"""

from __future__ import annotations

import pytest
import s2_sdk
from s2_sdk import (
    AppendConditionError,
    AppendInput,
    CommandRecord,
    FencingTokenMismatchError,
    Record,
    S2ClientError,
    S2ServerError,
    SeqNum,
    SeqNumMismatchError,
    StreamPosition,
)


@pytest.fixture
async def stream(basin: s2_sdk.S2Basin) -> s2_sdk.S2Stream:
    await basin.create_stream("conditions")
    return basin.stream("conditions")


def batch(*bodies: bytes, **conditions: object) -> AppendInput:
    return AppendInput(records=[Record(body=b) for b in bodies], **conditions)  # type: ignore[arg-type]


async def bodies(stream: s2_sdk.S2Stream) -> list[bytes]:
    tail = await stream.check_tail()
    if tail.seq_num == 0:
        return []
    return [r.body for r in (await stream.read(start=SeqNum(0))).records]


async def test_match_seq_num_unary(stream: s2_sdk.S2Stream) -> None:
    first = await stream.append(batch(b"a", b"b", match_seq_num=0))
    second = await stream.append(batch(b"c", match_seq_num=2))

    for stale in (0, 2, 4, 100):
        with pytest.raises(SeqNumMismatchError) as caught:
            await stream.append(batch(b"never", match_seq_num=stale))
        assert caught.value.status_code == 412
        assert caught.value.expected_seq_num == 3
        assert isinstance(caught.value, AppendConditionError)
        assert isinstance(caught.value, S2ServerError)

    assert (first.end.seq_num, second.end.seq_num) == (2, 3)
    assert (await stream.check_tail()).seq_num == 3
    assert await bodies(stream) == [b"a", b"b", b"c"]


async def test_fencing_unary(stream: s2_sdk.S2Stream) -> None:
    await stream.append(batch(b"open", fencing_token=""))  # the initial token is empty
    fence = await stream.append(
        AppendInput(records=[CommandRecord.fence("writer-1")], match_seq_num=1)
    )
    assert (fence.start.seq_num, fence.end.seq_num) == (1, 2)

    for stale in ("", "writer-0", "WRITER-1"):
        with pytest.raises(FencingTokenMismatchError) as caught:
            await stream.append(batch(b"zombie", fencing_token=stale))
        assert caught.value.status_code == 412
        assert caught.value.expected_fencing_token == "writer-1"

    await stream.append(batch(b"owned", fencing_token="writer-1"))
    await stream.append(batch(b"unfenced"))  # no token given = no check
    # Re-fencing needs the current token; a batch may fence and write in one go.
    refence = AppendInput(
        records=[CommandRecord.fence("writer-2"), Record(body=b"first of writer-2")],
        fencing_token="writer-1",
    )
    await stream.append(refence)
    with pytest.raises(FencingTokenMismatchError) as caught:
        await stream.append(batch(b"late", fencing_token="writer-1"))
    assert caught.value.expected_fencing_token == "writer-2"

    assert await bodies(stream) == [
        b"open",
        b"writer-1",
        b"owned",
        b"unfenced",
        b"writer-2",
        b"first of writer-2",
    ]


async def test_fencing_is_checked_before_match_seq_num(stream: s2_sdk.S2Stream) -> None:
    await stream.append(AppendInput(records=[CommandRecord.fence("t")]))

    with pytest.raises(FencingTokenMismatchError) as caught:
        await stream.append(batch(b"x", fencing_token="wrong", match_seq_num=99))

    assert caught.value.expected_fencing_token == "t"
    with pytest.raises(SeqNumMismatchError) as mismatch:
        await stream.append(batch(b"x", fencing_token="t", match_seq_num=99))
    assert mismatch.value.expected_seq_num == 1


async def test_match_seq_num_in_session(stream: s2_sdk.S2Stream) -> None:
    await stream.append(batch(b"seed"))

    session = stream.append_session()
    ok_1 = await session.submit(batch(b"a", match_seq_num=1))
    ok_2 = await session.submit(batch(b"b", b"c", match_seq_num=2))
    stale = await session.submit(batch(b"dup", match_seq_num=2))
    ack_1, ack_2 = await ok_1, await ok_2
    with pytest.raises(SeqNumMismatchError) as caught:
        await stale
    with pytest.raises(SeqNumMismatchError):
        await session.close()

    assert (ack_1.start.seq_num, ack_2.start.seq_num, ack_2.end.seq_num) == (1, 2, 4)
    assert (caught.value.status_code, caught.value.expected_seq_num) == (412, 4)
    assert await bodies(stream) == [b"seed", b"a", b"b", b"c"]


async def test_session_stops_at_the_first_failed_condition(stream: s2_sdk.S2Stream) -> None:
    session = stream.append_session()
    first = await session.submit(batch(b"one", match_seq_num=0))
    failing = await session.submit(batch(b"two", match_seq_num=7))
    after = [await session.submit(batch(f"after-{i}".encode())) for i in range(5)]

    assert (await first).end == StreamPosition(1, (await stream.check_tail()).timestamp)
    with pytest.raises(SeqNumMismatchError) as caught:
        await failing
    assert caught.value.expected_seq_num == 1
    for ticket in after:  # inputs behind the failure are never applied
        with pytest.raises(SeqNumMismatchError):
            await ticket
    with pytest.raises(SeqNumMismatchError):
        await session.close()
    with pytest.raises(S2ClientError, match="closed"):
        await session.submit(batch(b"too late"))

    assert await bodies(stream) == [b"one"]


async def test_fencing_in_session(stream: s2_sdk.S2Stream) -> None:
    async with stream.append_session() as owner:
        fenced = await owner.submit(AppendInput(records=[CommandRecord.fence("leader-a")]))
        ok = await owner.submit(batch(b"by a", fencing_token="leader-a"))
        await fenced, await ok

    zombie = stream.append_session()
    good = await zombie.submit(batch(b"unchecked"))
    bad = await zombie.submit(batch(b"by b", fencing_token="leader-b"))
    await good
    with pytest.raises(FencingTokenMismatchError) as caught:
        await bad
    with pytest.raises(FencingTokenMismatchError):
        await zombie.close()

    assert (caught.value.status_code, caught.value.expected_fencing_token) == (412, "leader-a")
    assert await bodies(stream) == [b"leader-a", b"by a", b"unchecked"]


async def test_producer_with_stale_fencing_token_fails_its_tickets(
    stream: s2_sdk.S2Stream,
) -> None:
    await stream.append(AppendInput(records=[CommandRecord.fence("current")]))

    producer = stream.producer(fencing_token="stale")
    tickets = [await producer.submit(Record(body=bytes([i]))) for i in range(10)]
    with pytest.raises(FencingTokenMismatchError) as caught:
        await producer.close()

    assert caught.value.expected_fencing_token == "current"
    for ticket in tickets:
        with pytest.raises(FencingTokenMismatchError):
            await ticket
    assert (await stream.check_tail()).seq_num == 1


async def test_producer_with_wrong_match_seq_num_fails(stream: s2_sdk.S2Stream) -> None:
    await stream.append(batch(b"x", b"y"))

    producer = stream.producer(match_seq_num=0)
    ticket = await producer.submit(Record(body=b"z"))
    with pytest.raises(SeqNumMismatchError) as caught:
        await producer.close()

    assert caught.value.expected_seq_num == 2
    with pytest.raises(SeqNumMismatchError):
        await ticket
    assert await bodies(stream) == [b"x", b"y"]
