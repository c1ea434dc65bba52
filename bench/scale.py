"""Lite at scale: many streams, a slow writer on each, and many readers tailing each one.

Command: ``.venv/bin/python bench/scale.py [--streams 1000] [--readers 10] [--seconds 30]``

Results: docs/benchmarks.md#lite-at-scale. ``--streams`` streams, one writer per stream
appending one ``--size`` byte record every ``1 / --rate`` seconds (unary appends, the
writers' start times spread over the first second), and ``--readers`` read sessions per
stream following it from seq_num 0. Readers run in ``--procs`` child processes (10,000
sessions do not fit one process's connection pool, and the work spreads over the cores); the
writers run in one more. Lite is a child process too (``s2kit lite``, in memory), so its CPU
and memory are its own.

After ``--seconds`` of writing, every reader must reach the stream's tail within
``--grace`` seconds. Reported: ack latency p50/p99/max over every append, failed appends,
readers that got every record in order (and how many did not), lite's CPU use while writing
(cores) and its peak resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time

import s2kit
from _harness import (
    MIB,
    Server,
    markdown_table,
    nearest_rank,
    proc_cpu_seconds,
    proc_memory_bytes,
)

BASIN = "scale-bench"


def stream_name(i: int) -> str:
    return f"s{i:05d}"


# --- child: readers -------------------------------------------------------------------------


async def readers_main(url: str, first: int, last: int, per_stream: int, until: str) -> None:
    """Follow streams [first, last) with ``per_stream`` sessions each; report per reader."""
    done = asyncio.Event()
    targets: dict[str, int] = {}
    results: list[tuple[str, int, bool]] = []
    clients = [
        s2kit.S2("bench", endpoints=s2kit.Endpoints.for_url(url))
        for _ in range(max(1, ((last - first) * per_stream + 7_999) // 8_000))
    ]

    async def follow(client: s2kit.S2, name: str) -> None:
        got, in_order = 0, True
        session = client.basin(BASIN).stream(name).read_session(s2kit.SeqNum(0))
        try:
            async with session:
                async for batch in session:
                    for record in batch.records:
                        in_order = in_order and record.seq_num == got
                        got += 1
                    if done.is_set() and got >= targets.get(name, 1 << 62):
                        break
        finally:
            results.append((name, got, in_order))

    async def stop_when_told() -> None:
        loop = asyncio.get_running_loop()
        line = await loop.run_in_executor(None, sys.stdin.readline)
        targets.update(json.loads(line))
        done.set()

    print("ready", flush=True)
    tasks = [
        asyncio.create_task(follow(clients[k % len(clients)], stream_name(i)))
        for k, i in enumerate(i for i in range(first, last) for _ in range(per_stream))
    ]
    await stop_when_told()
    grace = float(until)
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for client in clients:
        await client.aclose()
    complete = sum(1 for name, got, ok in results if ok and got == targets[name])
    print(json.dumps({"readers": len(results), "complete": complete}), flush=True)


# --- child: writers -------------------------------------------------------------------------


async def writers_main(url: str, streams: int, rate: float, size: int, seconds: float) -> None:
    body = b"w" * (size - 8)
    latencies: list[float] = []
    failed = 0
    counts: dict[str, int] = {}
    async with s2kit.S2("bench", endpoints=s2kit.Endpoints.for_url(url)) as s2:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.5
        end = start + seconds

        async def write(i: int) -> None:
            nonlocal failed
            stream = s2.basin(BASIN).stream(stream_name(i))
            due = start + i / streams  # spread over the first second
            n = 0
            while due < end:
                await asyncio.sleep(max(0.0, due - loop.time()))
                sent = loop.time()
                try:
                    await stream.append(s2kit.AppendInput(records=[s2kit.Record(body=body)]))
                    latencies.append(loop.time() - sent)
                    n += 1
                except s2kit.S2Error:
                    failed += 1
                due += 1 / rate
            counts[stream_name(i)] = n

        await asyncio.gather(*(write(i) for i in range(streams)))
    print(json.dumps({"latencies": latencies, "failed": failed, "counts": counts}), flush=True)


# --- the run ----------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> list[tuple[str, str]]:
    with Server() as server:
        async with s2kit.S2("bench", endpoints=s2kit.Endpoints.for_url(server.url)) as s2:
            await s2.create_basin(BASIN)
            basin = s2.basin(BASIN)
            await asyncio.gather(
                *(basin.create_stream(stream_name(i)) for i in range(args.streams))
            )
        per_proc = (args.streams + args.procs - 1) // args.procs
        readers = []
        for p in range(args.procs):
            first, last = p * per_proc, min(args.streams, (p + 1) * per_proc)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--readers-child", server.url, str(first), str(last),
                str(args.readers), str(args.grace),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 30,
            )  # fmt: skip
            assert proc.stdout is not None
            await proc.stdout.readline()  # "ready"
            readers.append(proc)
        await asyncio.sleep(args.settle)  # every session open and following
        cpu_before, wall_before = proc_cpu_seconds(server.pid), time.monotonic()
        readers_before = sum(proc_cpu_seconds(proc.pid) for proc in readers)
        writer = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--writers-child", server.url, str(args.streams),
            str(args.rate), str(args.size), str(args.seconds),
            stdout=asyncio.subprocess.PIPE, limit=1 << 30,
        )  # fmt: skip
        peak = 0
        writer_cpu = 0.0
        while writer.returncode is None:
            peak = max(peak, proc_memory_bytes(server.pid))
            with contextlib.suppress(OSError, ValueError):
                writer_cpu = proc_cpu_seconds(writer.pid)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(writer.wait(), 1.0)
        wall = time.monotonic() - wall_before
        cores = (proc_cpu_seconds(server.pid) - cpu_before) / wall
        reader_cores = (sum(proc_cpu_seconds(proc.pid) for proc in readers) - readers_before) / wall
        assert writer.stdout is not None
        written = json.loads(await writer.stdout.read())
        report = {"readers": 0, "complete": 0}
        for proc in readers:
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(written["counts"]) + "\n").encode())
            await proc.stdin.drain()
        for proc in readers:
            assert proc.stdout is not None
            out = json.loads(await proc.stdout.read())
            await proc.wait()
            report = {k: report[k] + out[k] for k in report}
            peak = max(peak, proc_memory_bytes(server.pid))
        # Everything the appends cost lite, fan-out included, until the last reader had them.
        work = proc_cpu_seconds(server.pid) - cpu_before
    lat = sorted(written["latencies"])
    return [
        ("appends acked", f"{len(lat):,}"),
        ("appends failed", f"{written['failed']:,}"),
        ("ack p50 / p99 / max", " / ".join(
            f"{nearest_rank(lat, p) * 1000:.1f} ms" for p in (0.5, 0.99, 1.0))),
        ("readers complete", f"{report['complete']:,} of {report['readers']:,}"),
        ("lite CPU while writing", f"{cores:.2f} cores"),
        ("lite CPU per append, delivery included", f"{work / max(1, len(lat)) * 1e6:.0f} µs"),
        ("readers' CPU while writing", f"{reader_cores:.2f} cores"),
        ("writer's CPU", f"{writer_cpu / wall:.2f} cores"),
        ("lite peak RSS", f"{peak / MIB:.0f} MiB"),
    ]  # fmt: skip


def main() -> None:
    if sys.argv[1:2] == ["--readers-child"]:
        url, first, last, per, grace = sys.argv[2:7]
        asyncio.run(readers_main(url, int(first), int(last), int(per), grace))
        return
    if sys.argv[1:2] == ["--writers-child"]:
        url, streams, rate, size, seconds = sys.argv[2:7]
        asyncio.run(writers_main(url, int(streams), float(rate), int(size), float(seconds)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--readers", type=int, default=10, help="read sessions per stream")
    parser.add_argument("--rate", type=float, default=1.0, help="appends per second per stream")
    parser.add_argument("--size", type=int, default=1024, help="metered bytes per record")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--procs", type=int, default=2, help="reader processes")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds for readers to open")
    parser.add_argument("--grace", type=float, default=30.0, help="seconds to catch up after")
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    title = f"{args.streams} streams x {args.readers} readers, {args.rate:g} append/s each"
    print(markdown_table([title, ""], rows))


if __name__ == "__main__":
    main()
