"""Compression with the official Python SDK on lite: ``compression=ZSTD|GZIP`` compresses unary
request bodies (``content-encoding``) and S2S frames ≥ 1 KiB, and asks for compressed responses
and frames (``accept-encoding``). The client talks through a byte-counting relay, so the tests
check both that data round-trips intact and that the wire really carried compressed bytes.
Runs over h2c and TLS.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import s2_sdk
from s2_sdk import AppendInput, Compression, ReadLimit, Record, SeqNum

from .conftest import drain, unique_basin

if TYPE_CHECKING:
    from .conftest import TcpTap

RECORDS = 64
RECORD_SIZE = 4096


def compressible(i: int) -> bytes:
    line = f"record {i:05d}: the quick brown fox jumps over the lazy dog. ".encode()
    return (line * (RECORD_SIZE // len(line) + 1))[:RECORD_SIZE]


def payload(seed: int) -> list[Record]:
    """Mostly compressible records of 4 KiB, with one incompressible record in every 16."""
    rng = random.Random(seed)
    return [
        Record(
            body=rng.randbytes(RECORD_SIZE) if i % 16 == 15 else compressible(i),
            headers=[(b"n", str(i).encode())],
        )
        for i in range(RECORDS)
    ]


RAW_BYTES = RECORDS * RECORD_SIZE
# The 4 incompressible records (16 KiB) bound what compression can achieve; the rest is text.
COMPRESSED_MAX = RAW_BYTES // 4


@pytest.fixture(params=[Compression.ZSTD, Compression.GZIP], ids=["zstd", "gzip"])
def compression(request: pytest.FixtureRequest) -> Compression:
    return request.param  # type: ignore[no-any-return]


async def new_stream(client: s2_sdk.S2) -> s2_sdk.S2Stream:
    name = unique_basin("squeeze")
    await client.create_basin(name)
    await client.basin(name).create_stream("data")
    return client.basin(name).stream("data")


async def test_uncompressed_baseline_carries_every_byte(
    connect: Callable[..., s2_sdk.S2], tap: TcpTap
) -> None:
    # The control for the tests below: without compression the relay sees the full payload.
    async with connect(tap.url) as client:
        stream = await new_stream(client)
        records = payload(1)

        up = tap.upstream
        await stream.append(AppendInput(records=records))
        sent = tap.upstream - up
        down = tap.downstream
        batch = await stream.read(start=SeqNum(0))
        received = tap.downstream - down

    assert sent > RAW_BYTES
    assert received > RAW_BYTES
    assert [r.body for r in batch.records] == [r.body for r in records]


async def test_unary_append_and_read(
    connect: Callable[..., s2_sdk.S2], tap: TcpTap, compression: Compression
) -> None:
    async with connect(tap.url, compression=compression) as client:
        stream = await new_stream(client)
        records = payload(2)

        up = tap.upstream
        ack = await stream.append(AppendInput(records=records))
        sent = tap.upstream - up
        down = tap.downstream
        batch = await stream.read(start=SeqNum(0))
        received = tap.downstream - down

    assert (ack.start.seq_num, ack.end.seq_num) == (0, RECORDS)
    assert [(r.body, r.headers) for r in batch.records] == [(r.body, r.headers) for r in records]
    assert sent < COMPRESSED_MAX
    assert received < COMPRESSED_MAX


async def test_append_session_and_read_session(
    connect: Callable[..., s2_sdk.S2], tap: TcpTap, compression: Compression
) -> None:
    per_batch = 8
    async with connect(tap.url, compression=compression) as client:
        stream = await new_stream(client)
        records = payload(3)

        up = tap.upstream
        async with stream.append_session() as session:
            tickets = [
                await session.submit(AppendInput(records=records[i : i + per_batch]))
                for i in range(0, RECORDS, per_batch)
            ]
            acks = [await ticket for ticket in tickets]
        sent = tap.upstream - up

        down = tap.downstream
        got = await drain(stream.read_session(start=SeqNum(0), limit=ReadLimit(count=RECORDS)))
        received = tap.downstream - down

    assert [(a.start.seq_num, a.end.seq_num) for a in acks] == [
        (i, i + per_batch) for i in range(0, RECORDS, per_batch)
    ]
    assert [r.seq_num for r in got] == list(range(RECORDS))
    assert [(r.body, r.headers) for r in got] == [(r.body, r.headers) for r in records]
    assert sent < COMPRESSED_MAX
    assert received < COMPRESSED_MAX


async def test_small_frames_and_control_plane_still_work(
    connect: Callable[..., s2_sdk.S2], compression: Compression
) -> None:
    # Everything below the 1 KiB threshold travels uncompressed; JSON control-plane bodies are
    # compressed by the SDK regardless of size.
    async with connect(compression=compression) as client:
        name = unique_basin("squeeze")
        await client.create_basin(name)
        basin = client.basin(name)
        await basin.create_stream("data")
        stream = basin.stream("data")
        async with stream.append_session() as session:
            tickets = [await session.submit(AppendInput(records=[Record(body=b"tiny")]))]
            tickets.append(await session.submit(AppendInput(records=[Record(body=b"t" * 2000)])))
            acks = [await ticket for ticket in tickets]
        got = await drain(stream.read_session(start=SeqNum(0), limit=ReadLimit(count=2)))
        # A listing of 40 streams is a JSON body well over 1 KiB: lite compresses it.
        for i in range(40):
            await basin.create_stream(f"listed-{i:02d}")
        listed = [s.name async for s in basin.list_all_streams(prefix="listed-")]

    assert [a.end.seq_num for a in acks] == [1, 2]
    assert [r.body for r in got] == [b"tiny", b"t" * 2000]
    assert listed == [f"listed-{i:02d}" for i in range(40)]
