"""s2kit's SDK against the official ``s2-sdk``, on the same lite, in the same run.

Command: ``.venv/bin/python bench/sdk_compare.py [--records N] [--rounds R]``

Four workloads, each run by both SDKs alternately (``--rounds`` times, medians reported):

1. **Append session, 1 KiB records**: pipelined batches of 500 records; client CPU µs per
   record (``getrusage`` of this process around the workload) and MiB/s.
2. **Producer, 128 B records**: one record per ``submit`` through each SDK's producer (5 ms
   linger, default batching), until every ticket resolved; records/s and client CPU µs/record.
3. **Catch-up read**: a read session from seq 0 with ``wait=0`` over a stream of 1 KiB records
   written beforehand; MiB/s of metered bytes and client CPU µs/record.
4. **Unary appends**: 3,000 one-record (1 KiB) appends from 50 concurrent tasks, each append
   awaited before the task's next; appends/s and client CPU µs per append.

Each workload also reports lite's CPU per record (``lite_us``: /proc of lite's process around
the workload). Lite runs in its own process (bench/_harness.py). Results print as a markdown
table with the ratio s2kit / official for each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import s2_sdk

import s2kit
from _harness import MIB, Server, markdown_table, proc_cpu_seconds, self_cpu_seconds

BASIN = "bench-compare"
KIB_BODY = b"x" * (1024 - 8)  # metered 1 KiB
# With --vary: the batch's bodies take sizes spread over 512-1536 B metered (mean 1 KiB), the
# same for both SDKs, so the read path sees records of many lengths.
VARIED_BODIES = tuple(b"v" * (512 - 8 + (i * 389) % 1025) for i in range(500))
SMALL_BODY = b"y" * (128 - 8)  # metered 128 B
BATCH = 500
UNARY_WRITERS = 50
"""Concurrent tasks of the unary workload: one-record appends, each awaited before the next."""
UNARY_APPENDS = 3000


LITE_PID = 0
"""Lite's process, whose CPU each workload also measures."""


class Measure:
    """Wall time, client CPU and lite's CPU of one workload."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self.lite = 0.0

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        lite0 = proc_cpu_seconds(LITE_PID)
        cpu0, t0 = self_cpu_seconds(), time.perf_counter()
        await work()
        self.wall = time.perf_counter() - t0
        self.cpu = self_cpu_seconds() - cpu0
        self.lite = proc_cpu_seconds(LITE_PID) - lite0


VARY = False


def bodies() -> tuple[bytes, ...]:
    """One batch's bodies."""
    return VARIED_BODIES if VARY else (KIB_BODY,) * BATCH


def mean_size() -> float:
    """Mean metered bytes of a session record."""
    return sum(8 + len(b) for b in bodies()) / BATCH


# --- s2kit ------------------------------------------------------------------------------------


async def ours_session(stream: s2kit.Stream, n: int) -> None:
    records = tuple(s2kit.Record(body=b) for b in bodies())
    inp = s2kit.AppendInput(records=records)
    async with stream.append_session() as session:
        tickets = [await session.submit(inp) for _ in range(n // BATCH)]
        for t in tickets:
            await t


async def ours_producer(stream: s2kit.Stream, n: int) -> None:
    async with stream.producer() as producer:
        tickets = [await producer.submit(s2kit.Record(body=SMALL_BODY)) for _ in range(n)]
        for t in tickets:
            await t


async def ours_read(stream: s2kit.Stream, n: int) -> None:
    got = 0
    async with stream.read_session(s2kit.SeqNum(0), wait=0) as session:
        async for batch in session:
            got += len(batch.records)
    assert got == n, (got, n)


async def ours_unary(stream: s2kit.Stream, n: int) -> None:
    inp = s2kit.AppendInput(records=[s2kit.Record(body=KIB_BODY)])

    async def writer() -> None:
        for _ in range(n // UNARY_WRITERS):
            await stream.append(inp)

    await asyncio.gather(*(writer() for _ in range(UNARY_WRITERS)))


# --- official ---------------------------------------------------------------------------------


async def theirs_session(stream: Any, n: int) -> None:
    records = [s2_sdk.Record(body=b) for b in bodies()]
    inp = s2_sdk.AppendInput(records=records)
    async with stream.append_session() as session:
        tickets = [await session.submit(inp) for _ in range(n // BATCH)]
        for t in tickets:
            await t


async def theirs_producer(stream: Any, n: int) -> None:
    async with stream.producer() as producer:
        tickets = [await producer.submit(s2_sdk.Record(body=SMALL_BODY)) for _ in range(n)]
        for t in tickets:
            await t


async def theirs_read(stream: Any, n: int) -> None:
    got = 0
    async for batch in stream.read_session(start=s2_sdk.SeqNum(0), wait=0):
        got += len(batch.records)
    assert got == n, (got, n)


async def theirs_unary(stream: Any, n: int) -> None:
    inp = s2_sdk.AppendInput(records=[s2_sdk.Record(body=KIB_BODY)])

    async def writer() -> None:
        for _ in range(n // UNARY_WRITERS):
            await stream.append(inp)

    await asyncio.gather(*(writer() for _ in range(UNARY_WRITERS)))


# --- driver -----------------------------------------------------------------------------------


async def fresh_stream(admin: s2kit.S2) -> str:
    name = f"s-{uuid.uuid4().hex[:12]}"
    await admin.basin(BASIN).create_stream(name)
    return name


async def one_round(url: str, sdk: str, n: int, results: dict[str, list[float]]) -> None:
    async with s2kit.S2("t", endpoints=s2kit.Endpoints.for_url(url)) as admin:
        names = [await fresh_stream(admin) for _ in range(2)]
        if sdk == "s2kit":
            client: Any = s2kit.S2("t", endpoints=s2kit.Endpoints.for_url(url))
            stream = lambda name: client.basin(BASIN).stream(name)  # noqa: E731
            session, producer, read, unary = ours_session, ours_producer, ours_read, ours_unary
        else:
            client = s2_sdk.S2("t", endpoints=s2_sdk.Endpoints(account=url, basin=url))
            stream = lambda name: client.basin(BASIN).stream(name)  # noqa: E731
            session, producer, read = theirs_session, theirs_producer, theirs_read
            unary = theirs_unary
        try:
            m = Measure()
            await m.run(lambda: session(stream(names[0]), n))
            results[f"{sdk} session cpu_us"].append(m.cpu / n * 1e6)
            results[f"{sdk} session MiB/s"].append(n * mean_size() / MIB / m.wall)
            results[f"{sdk} session lite_us"].append(m.lite / n * 1e6)
            m = Measure()
            await m.run(lambda: read(stream(names[0]), n))
            results[f"{sdk} read MiB/s"].append(n * mean_size() / MIB / m.wall)
            results[f"{sdk} read cpu_us"].append(m.cpu / n * 1e6)
            results[f"{sdk} read lite_us"].append(m.lite / n * 1e6)
            m = Measure()
            await m.run(lambda: producer(stream(names[1]), n))
            results[f"{sdk} producer rec/s"].append(n / m.wall)
            results[f"{sdk} producer cpu_us"].append(m.cpu / n * 1e6)
            m = Measure()
            await m.run(lambda: unary(stream(names[1]), UNARY_APPENDS))
            results[f"{sdk} unary append/s"].append(UNARY_APPENDS / m.wall)
            results[f"{sdk} unary cpu_us"].append(m.cpu / UNARY_APPENDS * 1e6)
            results[f"{sdk} unary lite_us"].append(m.lite / UNARY_APPENDS * 1e6)
        finally:
            await (client.aclose() if sdk == "s2kit" else client.close())
        # Free lite's memory for the next round: otherwise every round writes to fresh pages,
        # and a VM's first touch of new memory slowed whichever SDK came later.
        for name in names:
            await admin.basin(BASIN).delete_stream(name)
        # Lite drops a deleted stream's records in the background, a second or two later
        # (server/_backend.py, `tick`): wait for that, or freeing this round's records would
        # be counted in the next round's lite CPU.
        while (await admin.basin(BASIN).list_streams()).items:  # noqa: ASYNC110 (polls lite)
            await asyncio.sleep(0.1)


async def main(n: int, rounds: int, pin: bool) -> None:
    results: dict[str, list[float]] = {
        f"{sdk} {what}": []
        for sdk in ("s2kit", "official")
        for what in (
            "session cpu_us",
            "session MiB/s",
            "session lite_us",
            "read MiB/s",
            "read lite_us",
            "read cpu_us",
            "producer rec/s",
            "producer cpu_us",
            "unary append/s",
            "unary cpu_us",
            "unary lite_us",
        )
    }
    global LITE_PID
    with Server() as server:
        LITE_PID = server.pid
        if pin:
            # Lite on one core, the client on the other: each side's own ceiling shows.
            os.sched_setaffinity(server.pid, {1})
            os.sched_setaffinity(0, {0})
        async with s2kit.S2("t", endpoints=s2kit.Endpoints.for_url(server.url)) as admin:
            await admin.create_basin(BASIN)
        for _ in range(rounds):
            for sdk in ("official", "s2kit"):
                await one_round(server.url, sdk, n, results)
    if os.environ.get("S2KIT_BENCH_RAW"):
        for k, v in results.items():
            print(k, [round(x, 2) for x in v])
    rows = []
    for what, better in (
        ("session cpu_us", "lower"),
        ("session MiB/s", "higher"),
        ("session lite_us", "lower"),
        ("producer rec/s", "higher"),
        ("producer cpu_us", "lower"),
        ("read MiB/s", "higher"),
        ("read cpu_us", "lower"),
        ("read lite_us", "lower"),
        ("unary append/s", "higher"),
        ("unary cpu_us", "lower"),
        ("unary lite_us", "lower"),
    ):
        ours = statistics.median(results[f"s2kit {what}"])
        theirs = statistics.median(results[f"official {what}"])
        rows.append([what, f"{theirs:,.1f}", f"{ours:,.1f}", f"{ours / theirs:.2f}x", better])
    print(
        markdown_table(
            ["figure (median of rounds)", "official s2-sdk", "s2kit", "s2kit / official", "better"],
            rows,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=40_000, help="records per workload")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per SDK")
    parser.add_argument(
        "--pin", action="store_true", help="pin lite to CPU 1 and this client to CPU 0"
    )
    parser.add_argument(
        "--vary", action="store_true", help="session records of 512-1536 B instead of 1 KiB"
    )
    args = parser.parse_args()
    VARY = args.vary
    asyncio.run(main(args.records, args.rounds, args.pin))
