"""Each attack on lite found by trying as an attacker would (issue 12), as a test: lite keeps
answering another client within 2 s, its anonymous memory grows by at most 64 MiB, it stays
up, and it logs no traceback (see conftest.py for how it is watched).
"""

from __future__ import annotations

import asyncio
import time

import pytest

import s2kit
from hostile.conftest import DURABLE, TOKEN, HostileLite, attack

pytestmark = pytest.mark.timeout(180)

BASIN, STREAM = "hostile-basin", "s"
CHUNK = 32 << 10


async def prepare(lite: HostileLite, mib: int = 0) -> None:
    """The basin and stream the attacks use, with ``mib`` MiB of records in it."""
    async with s2kit.S2(TOKEN, endpoints=s2kit.Endpoints.for_url(lite.url)) as s2:
        await s2.create_basin(BASIN)
        await s2.basin(BASIN).create_stream(STREAM)
        if mib:
            await write(s2.basin(BASIN).stream(STREAM), mib)


async def write(stream: s2kit.Stream, mib: int) -> list[float]:
    """Append ``mib`` MiB in 1 MiB batches through a session; the ack latencies."""
    latencies: list[float] = []
    batch = s2kit.AppendInput(records=[s2kit.Record(body=b"x" * (CHUNK - 8))] * 32)
    async with stream.append_session() as session:
        for _ in range(mib):
            started = time.monotonic()
            ticket = await session.submit(batch)
            await ticket
            latencies.append(time.monotonic() - started)
    return latencies


async def writer(lite: HostileLite, mib: int) -> list[float]:
    async with s2kit.S2(TOKEN, endpoints=s2kit.Endpoints.for_url(lite.url)) as s2:
        return await write(s2.basin(BASIN).stream(STREAM), mib)


async def test_rapid_reset(hostile: HostileLite) -> None:
    async with hostile.watched():
        report = await attack("rapid_reset", hostile.port, 5)
    assert report["streams"] > 10_000
    assert report.get("dropped", 0) >= 1  # lite sent GOAWAY and closed, again and again
    hostile.check()


async def test_continuation_flood(hostile: HostileLite) -> None:
    async with hostile.watched():
        report = await attack("continuation_flood", hostile.port, 5)
    assert report.get("dropped", 0) >= 20
    hostile.check()


@pytest.mark.lite_flags(DURABLE)
async def test_http1_pipelining_without_reading(hostile: HostileLite) -> None:
    await prepare(hostile, mib=4)
    async with hostile.watched():
        report = await attack("pipelining", hostile.port, 5)
    assert report["requests"] >= 400
    hostile.check()


@pytest.mark.lite_flags(DURABLE)
async def test_silent_sse_readers_do_not_hold_a_writer_back(hostile: HostileLite) -> None:
    await prepare(hostile)
    async with hostile.watched(), asyncio.TaskGroup() as tg:
        readers = tg.create_task(attack("silent_sse", hostile.port, 20, ATTACK_READERS="500"))
        await asyncio.sleep(3)  # the readers are in
        latencies = await writer(hostile, 60)
    report = readers.result()
    assert report["readers"] == 500
    latencies.sort()
    assert latencies[int(len(latencies) * 0.99) - 1] < 2.0
    hostile.check(data=60 << 20)  # in memory: the 60 MiB appended are lite's data


@pytest.mark.lite_flags(DURABLE)
async def test_zero_window_s2s_reads(hostile: HostileLite) -> None:
    await prepare(hostile)
    async with hostile.watched(), asyncio.TaskGroup() as tg:
        readers = tg.create_task(
            attack("zero_window_reads", hostile.port, 15, ATTACK_READERS="500")
        )
        await asyncio.sleep(3)
        await writer(hostile, 30)
    report = readers.result()
    assert report["sessions"] >= 500
    hostile.check()


@pytest.mark.lite_flags("--body-timeout", "2")
async def test_unfinished_bodies(hostile: HostileLite) -> None:
    await prepare(hostile)
    async with hostile.watched():
        report = await attack("unfinished_bodies", hostile.port, 6)
    assert report.get("mib_sent", 0) > 0
    hostile.check()


@pytest.mark.lite_flags("--max-connections", "200", "--header-timeout", "3")
async def test_slowloris_beyond_the_connection_cap(hostile: HostileLite) -> None:
    async with hostile.watched():
        report = await attack("slowloris", hostile.port, 8, ATTACK_CONNECTIONS="1000")
    assert report["opened"] >= 200
    hostile.check()
