"""The SDK's unary data plane against lite: ``Stream.check_tail``, ``append`` and ``read``."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

import s2kit
from conftest import ByteTap, Endpoint, assert_no_tasks_left, unique
from s2kit import (
    AppendInput,
    BasinConfig,
    CommandRecord,
    Compression,
    EncryptionAlgorithm,
    ReadLimit,
    Record,
    SeqNum,
    StreamPosition,
    TailOffset,
    Timestamp,
)
from s2kit.errors import (
    AppendConditionFailed,
    FencingTokenMismatch,
    ReadUnwritten,
    SeqNumMismatch,
    ServerError,
    UsageError,
)


def batch(
    *bodies: bytes, timestamps: tuple[int, ...] = (), match_seq_num: int | None = None
) -> AppendInput:
    stamps = timestamps or (None,) * len(bodies)
    records = (Record(body=b, timestamp=t) for b, t in zip(bodies, stamps, strict=True))
    return AppendInput(records=tuple(records), match_seq_num=match_seq_num)


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def test_check_tail_of_a_new_and_a_written_stream(stream: s2kit.Stream) -> None:
    assert await stream.check_tail() == StreamPosition(0, 0)
    ack = await stream.append(batch(b"a", b"b", b"c", timestamps=(10, 20, 30)))
    assert await stream.check_tail() == ack.end == StreamPosition(3, 30)


async def test_append_ack_and_read_back_headers_timestamps_and_bodies(
    stream: s2kit.Stream,
) -> None:
    records = (
        Record(body=b"first", headers=((b"k", b"v1"), (b"k", b"v2"), (b"z", b"")), timestamp=5),
        # str is documented as accepted, but the annotations say bytes only.
        Record(body=b"", headers=[("text", "ü")], timestamp=7),  # type: ignore[arg-type]
        Record(body="unicode body ✓"),  # type: ignore[arg-type]
        Record(body=bytes(range(256))),
    )
    ack = await stream.append(AppendInput(records=records))
    assert (ack.start.seq_num, ack.end.seq_num) == (0, 4)
    assert ack.start.timestamp == 5
    assert ack.tail == ack.end

    read = await stream.read(SeqNum(0))
    assert read.tail is None  # a catch-up read, not from the live tail
    assert [r.seq_num for r in read.records] == [0, 1, 2, 3]
    assert [(r.headers, r.body) for r in read.records] == [(r.headers, r.body) for r in records]
    assert [r.timestamp for r in read.records[:2]] == [5, 7]
    assert read.records[1].headers == ((b"text", "ü".encode()),)
    assert read.records[2].body == "unicode body ✓".encode()
    # Records without a timestamp get the arrival time, never below the previous record's.
    assert read.records[2].timestamp >= 7
    assert all(not r.is_command for r in read.records)

    again = await stream.append(batch(b"next"))
    assert again.start.seq_num == 4


async def test_a_record_of_almost_one_mebibyte_round_trips(stream: s2kit.Stream) -> None:
    body = os.urandom(1024 * 1024 - 8)
    ack = await stream.append(AppendInput(records=(Record(body=body),)))
    assert ack.end.seq_num == 1
    read = await stream.read(SeqNum(0))
    assert read.records[0].body == body


async def test_invalid_batches_are_usage_errors_before_any_request(stream: s2kit.Stream) -> None:
    too_big = Record(body=b"x" * (1024 * 1024))
    for bad in (
        AppendInput(records=()),
        AppendInput(records=tuple(Record(body=b"") for _ in range(1001))),
        AppendInput(records=(too_big,)),
        AppendInput(records=(Record(body=b"x" * 600_000), Record(body=b"x" * 600_000))),
    ):
        with pytest.raises(UsageError):
            await stream.append(bad)
    assert await stream.check_tail() == StreamPosition(0, 0)
    ok = await stream.append(AppendInput(records=tuple(Record(body=b"") for _ in range(1000))))
    assert ok.end.seq_num == 1000


async def test_fence_and_fencing_token_mismatch_reports_the_expected_token(
    stream: s2kit.Stream,
) -> None:
    ack = await stream.append(AppendInput(records=(CommandRecord.fence("owner-1"),)))
    assert ack.end.seq_num == 1
    # Absent token: no check. The right token: accepted.
    await stream.append(batch(b"unchecked"))
    await stream.append(AppendInput(records=(Record(body=b"ok"),), fencing_token="owner-1"))

    with pytest.raises(FencingTokenMismatch) as exc:
        await stream.append(AppendInput(records=(Record(body=b"no"),), fencing_token="owner-0"))
    assert exc.value.expected == "owner-1"
    assert isinstance(exc.value, AppendConditionFailed)
    assert exc.value.status == 412
    assert not exc.value.is_retryable
    assert (await stream.check_tail()).seq_num == 3  # nothing of the rejected batch landed

    # A fence inside a fenced batch: the batch is checked against the token before it.
    await stream.append(
        AppendInput(records=(CommandRecord.fence("owner-2"),), fencing_token="owner-1")
    )
    with pytest.raises(FencingTokenMismatch) as exc:
        await stream.append(AppendInput(records=(Record(body=b"no"),), fencing_token="owner-1"))
    assert exc.value.expected == "owner-2"

    records = (await stream.read(SeqNum(0))).records
    assert [r.body for r in records] == [b"owner-1", b"unchecked", b"ok", b"owner-2"]
    assert records[0].is_command
    assert records[0].headers == ((b"", b"fence"),)


async def test_match_seq_num_mismatch_reports_the_expected_seq_num(stream: s2kit.Stream) -> None:
    await stream.append(AppendInput(records=(Record(body=b"0"),), match_seq_num=0))
    await stream.append(batch(b"1", b"2", match_seq_num=1))
    with pytest.raises(SeqNumMismatch) as exc:
        await stream.append(AppendInput(records=(Record(body=b"x"),), match_seq_num=1))
    assert exc.value.expected == 3
    assert exc.value.status == 412
    assert (await stream.check_tail()).seq_num == 3


async def test_trim_command_removes_earlier_records(stream: s2kit.Stream) -> None:
    await stream.append(batch(*(b"%d" % i for i in range(5))))
    ack = await stream.append(AppendInput(records=(CommandRecord.trim(3),)))
    assert ack.start.seq_num == 5
    async with asyncio.timeout(20):  # trimmed records are deleted by a background pass
        # No event tells when the pass ran: poll (ASYNC110 wants one).
        while (await stream.read(SeqNum(0))).records[0].seq_num < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    records = (await stream.read(SeqNum(0))).records
    assert [r.seq_num for r in records] == [3, 4, 5]
    assert records[-1].is_command
    assert records[-1].headers == ((b"", b"trim"),)


async def test_read_starts_limits_and_until(stream: s2kit.Stream) -> None:
    await stream.append(
        batch(b"a", b"b", b"c", b"d", b"e", timestamps=(1000, 2000, 2000, 3000, 4000))
    )

    async def bodies(*args: object, **kwargs: object) -> list[bytes]:
        return [r.body for r in (await stream.read(*args, **kwargs)).records]  # type: ignore[arg-type]

    assert await bodies(SeqNum(3)) == [b"d", b"e"]
    assert await bodies(Timestamp(2000)) == [b"b", b"c", b"d", b"e"]
    assert await bodies(Timestamp(2001)) == [b"d", b"e"]
    assert await bodies(TailOffset(2)) == [b"d", b"e"]
    assert await bodies(TailOffset(50)) == [b"a", b"b", b"c", b"d", b"e"]
    assert await bodies(SeqNum(0), limit=ReadLimit(count=2)) == [b"a", b"b"]
    one = Record(body=b"a").metered_bytes
    assert await bodies(SeqNum(0), limit=ReadLimit(bytes=2 * one)) == [b"a", b"b"]
    assert await bodies(SeqNum(0), limit=ReadLimit(bytes=one - 1)) == []
    assert await bodies(SeqNum(0), limit=ReadLimit(count=4, bytes=2 * one)) == [b"a", b"b"]
    assert await bodies(SeqNum(0), until=3000) == [b"a", b"b", b"c"]
    assert await bodies(Timestamp(2000), until=3000) == [b"b", b"c"]
    assert await bodies(SeqNum(0), until=1000) == []

    with pytest.raises(ServerError) as exc:
        await stream.read(Timestamp(3000), until=3000)
    assert (exc.value.status, exc.value.code) == (422, "invalid")
    with pytest.raises(UsageError):
        await stream.read(3)  # type: ignore[arg-type]


async def test_read_beyond_the_tail_is_read_unwritten_with_the_tail(stream: s2kit.Stream) -> None:
    ack = await stream.append(batch(b"a", b"b"))
    for start in (SeqNum(100), SeqNum(2), TailOffset(0)):
        with pytest.raises(ReadUnwritten) as exc:
            await stream.read(start)
        assert exc.value.tail == ack.end
        assert exc.value.status == 416
        assert not exc.value.is_retryable
    with pytest.raises(ReadUnwritten) as exc:
        await stream.read(Timestamp(ack.end.timestamp + 1_000_000))
    assert exc.value.tail == ack.end


async def test_clamp_and_wait_long_poll_at_the_tail(stream: s2kit.Stream) -> None:
    await stream.append(batch(b"old"))
    # Clamped to the tail, nothing arrives: an empty batch once the wait expires.
    loop = asyncio.get_running_loop()
    started = loop.time()
    empty = await stream.read(SeqNum(100), clamp=True, wait=1)
    assert empty.records == ()
    assert loop.time() - started >= 0.9

    # A record appended while the read waits is returned, from the live tail.
    waiting = asyncio.create_task(stream.read(SeqNum(100), clamp=True, wait=30))
    await asyncio.sleep(0.1)  # let the read reach the server; correctness does not depend on it
    ack = await stream.append(batch(b"new"))
    got = await asyncio.wait_for(waiting, 20)
    assert [(r.seq_num, r.body) for r in got.records] == [(1, b"new")]
    assert got.tail is not None
    assert got.tail.seq_num >= ack.end.seq_num


async def test_long_poll_longer_than_the_request_timeout(endpoint: Endpoint) -> None:
    # The unary timeout is extended by ``wait``, so a poll longer than it does not time out.
    async with endpoint.client(timeout=s2kit.Timeout(request=0.5)) as s2:
        name = unique("poll")
        await s2.create_basin(name)
        stream = s2.basin(name).stream("s")
        await s2.basin(name).create_stream("s")
        got = await stream.read(SeqNum(0), wait=1)
        assert got.records == ()


async def test_missing_stream_and_auto_create_on_append_and_read(s2: s2kit.S2) -> None:
    name = unique("auto")
    await s2.create_basin(name)
    stream = s2.basin(name).stream("missing")
    for call in (stream.check_tail, lambda: stream.append(batch(b"x")), stream.read):
        with pytest.raises(ServerError) as exc:
            await call()
        assert (exc.value.status, exc.value.code) == (404, "stream_not_found")

    auto = unique("auto")
    await s2.create_basin(
        auto, BasinConfig(create_stream_on_append=True, create_stream_on_read=True)
    )
    ack = await s2.basin(auto).stream("on-append").append(batch(b"x"))
    assert ack.end.seq_num == 1
    assert await s2.basin(auto).stream("on-read").check_tail() == StreamPosition(0, 0)
    names = [s.name for s in (await s2.basin(auto).list_streams()).items]
    assert names == ["on-append", "on-read"]


async def test_encrypted_stream_needs_the_key(s2: s2kit.S2) -> None:
    name = unique("cipher")
    await s2.create_basin(name, BasinConfig(stream_cipher=EncryptionAlgorithm.AEGIS_256))
    basin = s2.basin(name)
    info = await basin.create_stream("secret")
    assert info.cipher is EncryptionAlgorithm.AEGIS_256
    plain = basin.stream("secret")
    the_key = key()
    keyed = plain.with_encryption_key(the_key)
    assert (keyed.basin, keyed.name) == (plain.basin, plain.name)

    with pytest.raises(ServerError) as exc:
        await plain.append(batch(b"x"))
    assert (exc.value.status, exc.value.code) == (400, "bad_header")

    await keyed.append(AppendInput(records=(Record(body=b"hidden", headers=((b"h", b"v"),)),)))
    got = await keyed.read(SeqNum(0))
    assert [(r.headers, r.body) for r in got.records] == [(((b"h", b"v"),), b"hidden")]
    assert (await plain.check_tail()).seq_num == 1  # check-tail needs no key

    with pytest.raises(ServerError) as exc:
        await plain.with_encryption_key(key()).read(SeqNum(0))
    assert (exc.value.status, exc.value.code) == (400, "decryption_failed")
    with pytest.raises(ServerError) as exc:
        await plain.read(SeqNum(0))
    assert exc.value.code == "bad_header"


@pytest.mark.parametrize("compression", [Compression.ZSTD, Compression.GZIP])
async def test_compressed_unary_append_and_read(
    endpoint: Endpoint, compression: Compression
) -> None:
    payload = b"compressible payload " * 20_000  # ~420 KB, squeezes to a few KB
    scheme = "https" if endpoint.tls else "http"
    async with (
        ByteTap(endpoint.port) as tap,
        endpoint.client(tap.url(scheme), compression=compression) as s2,
    ):
        name = unique("zip")
        await s2.create_basin(name)
        await s2.basin(name).create_stream("s")
        stream = s2.basin(name).stream("s")
        before_up, before_down = tap.upstream, tap.downstream
        await stream.append(AppendInput(records=(Record(body=payload),)))
        got = await stream.read(SeqNum(0))
        assert got.records[0].body == payload
        assert tap.upstream - before_up < len(payload) // 10
        assert tap.downstream - before_down < len(payload) // 10
    assert_no_tasks_left()
