"""The blocking API (``s2kit.sync``) against the async one, on the same lite, in the same run.

Command: ``.venv/bin/python bench/sync_vs_async.py [--records N] [--rounds R]``

Two workloads, each through both APIs alternately (medians of ``--rounds``):

1. **Producer, 128 B records**: one record per ``submit``, every ticket awaited (or
   ``result()``-ed) at the end; records/s.
2. **Catch-up read**: a read session from seq 0 with ``wait=0`` over those records;
   records/s.

The blocking API runs the async core on a background loop thread, so its figures show what the
hand-off between the caller's thread and that loop costs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import s2kit
import s2kit.sync
from _harness import Server, markdown_table

BASIN = "bench-sync"
BODY = b"y" * (128 - 8)


async def async_producer(url: str, stream: str, n: int) -> float:
    async with s2kit.S2("t", endpoints=s2kit.Endpoints.for_url(url)) as s2:
        t0 = time.perf_counter()
        async with s2.basin(BASIN).stream(stream).producer() as producer:
            tickets = [await producer.submit(s2kit.Record(body=BODY)) for _ in range(n)]
            for t in tickets:
                await t
        return n / (time.perf_counter() - t0)


async def async_read(url: str, stream: str, n: int) -> float:
    async with s2kit.S2("t", endpoints=s2kit.Endpoints.for_url(url)) as s2:
        t0 = time.perf_counter()
        got = 0
        async with s2.basin(BASIN).stream(stream).read_session(s2kit.SeqNum(0), wait=0) as rs:
            async for batch in rs:
                got += len(batch.records)
        assert got == n, (got, n)
        return n / (time.perf_counter() - t0)


def sync_producer(url: str, stream: str, n: int) -> float:
    with s2kit.sync.S2("t", endpoints=s2kit.Endpoints.for_url(url)) as s2:
        t0 = time.perf_counter()
        with s2.basin(BASIN).stream(stream).producer() as producer:
            tickets = [producer.submit(s2kit.Record(body=BODY)) for _ in range(n)]
        for t in tickets:
            t.result()
        return n / (time.perf_counter() - t0)


def sync_read(url: str, stream: str, n: int) -> float:
    with s2kit.sync.S2("t", endpoints=s2kit.Endpoints.for_url(url)) as s2:
        t0 = time.perf_counter()
        got = 0
        with s2.basin(BASIN).stream(stream).read_session(s2kit.SeqNum(0), wait=0) as rs:
            for batch in rs:
                got += len(batch.records)
        assert got == n, (got, n)
        return n / (time.perf_counter() - t0)


def main(n: int, rounds: int) -> None:
    results: dict[str, list[float]] = {}
    with Server() as server:
        endpoints = s2kit.Endpoints.for_url(server.url)
        admin = s2kit.sync.S2("t", endpoints=endpoints)
        admin.create_basin(BASIN)
        for _ in range(rounds):
            for api in ("async", "sync"):
                stream = f"s-{uuid.uuid4().hex[:12]}"
                admin.basin(BASIN).create_stream(stream)
                if api == "async":
                    produced = asyncio.run(async_producer(server.url, stream, n))
                    read = asyncio.run(async_read(server.url, stream, n))
                else:
                    produced = sync_producer(server.url, stream, n)
                    read = sync_read(server.url, stream, n)
                results.setdefault(f"{api} producer", []).append(produced)
                results.setdefault(f"{api} read", []).append(read)
                admin.basin(BASIN).delete_stream(stream)
        admin.close()
    rows = []
    for what in ("producer", "read"):
        a = statistics.median(results[f"async {what}"])
        s = statistics.median(results[f"sync {what}"])
        rows.append([f"{what} records/s", f"{a:,.0f}", f"{s:,.0f}", f"{s / a:.2f}x"])
    print(markdown_table(["figure (median of rounds)", "async", "sync", "sync / async"], rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="records per workload")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per API")
    args = parser.parse_args()
    main(args.records, args.rounds)
