"""Durable lite (``--data-dir``, lmdb) against in-memory lite: append throughput, ack latency.

Usage: ``.venv/bin/python bench/durable_vs_memory.py [--duration S] [--rounds N] [--dir D]``

Each phase runs once per storage mode per round, each time on a fresh lite process
(``python -m s2kit lite --port 0``, h2c on 127.0.0.1, default 5 ms group commit); the durable
one gets a fresh data directory under ``--dir`` (default: the system temp directory). The
client is s2kit's own SDK. Records are 1 KiB metered (a 1016-byte body), in batches of 100,
the shape of the storage measurements the durable design was chosen on.

Phases:

1. ``bulk``: one append session, pipelined (5 MiB unacked window), fed 100-record batches as
   fast as the window allows. Ack latency per batch, from just before ``submit`` to its ack.
2. ``fanin``: the same on 8 streams at once, one session each: group commit across streams.
3. ``sequential``: one unary append of one record at a time, each waiting for its ack. Nothing
   is amortized, so this is the latency of one commit (an fsync when durable).

Rates count acked records from the first submit to the last ack. Percentiles are nearest-rank
over every sample. With ``--rounds N`` each figure is the median over the rounds. The report
(markdown) goes to stdout, one progress line per run to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from _harness import MIB, fmt_duration, machine, markdown_table, proc_cpu_seconds, summary
from s2kit import S2, AppendInput, Endpoints, Record
from s2kit.testing import LiteProcess

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from s2kit import AppendTicket, Stream

RECORD = Record(body=b"\xab" * 1016)  # 1 KiB metered (8 bytes of overhead)
BATCH = AppendInput(records=[RECORD] * 100)
FANIN_STREAMS = 8
PHASES = ("bulk", "fanin", "sequential")
MODES = ("memory", "durable")


@dataclass(slots=True)
class Result:
    """One phase on one server."""

    records: int = 0
    seconds: float = 0.0
    server_cpu_s: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def records_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def mib_s(self) -> float:
        return self.records * 1024 / MIB / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        return self.server_cpu_s / self.records * 1e6 if self.records else 0.0


async def _sessions(streams: list[Stream], duration: float) -> Result:
    result = Result()
    first = last = 0.0

    async def one(stream: Stream) -> None:
        nonlocal first, last
        inflight: deque[tuple[float, AppendTicket]] = deque()
        wake = asyncio.Event()
        done = False

        async def collect() -> None:
            nonlocal last
            while inflight or not done:
                if not inflight:
                    wake.clear()
                    await wake.wait()
                    continue
                t0, ticket = inflight.popleft()
                ack = await ticket
                last = time.perf_counter()
                result.latencies.append(last - t0)
                result.records += ack.end.seq_num - ack.start.seq_num

        async with stream.append_session() as session:
            collector = asyncio.create_task(collect())
            end = time.perf_counter() + duration
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                first = first or t0
                inflight.append((t0, await session.submit(BATCH)))
                wake.set()
            done = True
            wake.set()
            await collector

    await asyncio.gather(*(one(s) for s in streams))
    result.seconds = last - first
    return result


async def _sequential(stream: Stream, duration: float) -> Result:
    result = Result()
    one = AppendInput(records=[RECORD])
    start = time.perf_counter()
    end = start + duration
    t1 = start
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        await stream.append(one)
        t1 = time.perf_counter()
        result.latencies.append(t1 - t0)
        result.records += 1
    result.seconds = t1 - start
    return result


async def run_phase(phase: str, mode: str, args: argparse.Namespace) -> Result:
    """One fresh lite process, one phase."""
    data_dir = None
    extra: list[str] = []
    if mode == "durable":
        data_dir = tempfile.mkdtemp(prefix="s2kit-bench-", dir=args.dir)
        extra = ["--data-dir", data_dir]
    lite = LiteProcess(*extra)
    endpoint = await asyncio.to_thread(lite.start)
    try:
        assert lite.proc is not None
        async with S2("bench", endpoints=Endpoints.for_url(endpoint.url)) as client:
            basin_name = f"bench-{uuid.uuid4().hex[:12]}"
            await client.create_basin(basin_name)
            basin = client.basin(basin_name)
            count = FANIN_STREAMS if phase == "fanin" else 1
            names = [f"bench/{i}" for i in range(count)]
            for name in names:
                await basin.create_stream(name)
            streams = [basin.stream(n) for n in names]
            cpu0 = proc_cpu_seconds(lite.proc.pid)
            runner: Callable[[], Awaitable[Result]] = (
                (lambda: _sequential(streams[0], args.duration))
                if phase == "sequential"
                else (lambda: _sessions(streams, args.duration))
            )
            result = await runner()
            result.server_cpu_s = proc_cpu_seconds(lite.proc.pid) - cpu0
    finally:
        await asyncio.to_thread(lite.stop)
        if data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)
    sys.stderr.write(
        f"{phase:<10} {mode:<7} {result.records_s:>10,.0f} records/s "
        f"p50 {fmt_duration(summary(result.latencies)['p50'])}\n"
    )
    return result


def _median(values: list[float]) -> float:
    return statistics.median(values)


def report(
    args: argparse.Namespace, phases: list[str], runs: dict[tuple[str, str], list[Result]]
) -> str:
    """The markdown report: per phase, memory vs durable and the ratio."""
    m = machine()
    lines = [
        f"Command: `.venv/bin/python bench/durable_vs_memory.py --duration {args.duration:g} "
        f"--rounds {args.rounds}`",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}, "
        f"s2kit {m['s2kit']}. Load average after the run: {m['loadavg']}. Data directory "
        f"filesystem: {args.dir or tempfile.gettempdir()}. Figures are medians of "
        f"{args.rounds} round(s).",
        "",
    ]
    rows = []
    for phase in phases:
        figures = {}
        for mode in MODES:
            rs = runs[(phase, mode)]
            figures[mode] = {
                "records/s": _median([r.records_s for r in rs]),
                "MiB/s": _median([r.mib_s for r in rs]),
                "p50": _median([summary(r.latencies)["p50"] for r in rs]),
                "p99": _median([summary(r.latencies)["p99"] for r in rs]),
                "cpu": _median([r.cpu_us for r in rs]),
            }
        mem, dur = figures["memory"], figures["durable"]
        for mode, f in (("memory", mem), ("durable", dur)):
            rows.append(
                [
                    phase,
                    mode,
                    f"{f['records/s']:,.0f}",
                    f"{f['MiB/s']:.1f}",
                    fmt_duration(f["p50"]),
                    fmt_duration(f["p99"]),
                    f"{f['cpu']:.0f}",
                ]
            )
        rows.append(
            [
                phase,
                "**durable ÷ memory**",
                f"{dur['records/s'] / mem['records/s']:.2f}x",
                f"{dur['MiB/s'] / mem['MiB/s']:.2f}x",
                f"{dur['p50'] / mem['p50']:.2f}x",
                f"{dur['p99'] / mem['p99']:.2f}x",
                f"{dur['cpu'] / mem['cpu']:.2f}x",
            ]
        )
    headers = [
        "phase",
        "storage",
        "records/s",
        "MiB/s",
        "ack p50",
        "ack p99",
        "server CPU µs/record",
    ]
    lines.append(markdown_table(headers, rows))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase (10)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; medians reported (1)")
    parser.add_argument("--dir", default=None, help="where durable data directories go")
    parser.add_argument(
        "--phases", default=",".join(PHASES), help=f"comma-separated ({','.join(PHASES)})"
    )
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
    phases = [p for p in args.phases.split(",") if p]
    runs: dict[tuple[str, str], list[Result]] = {(p, m): [] for p in phases for m in MODES}
    for _ in range(args.rounds):
        for phase in phases:
            for mode in MODES:
                runs[(phase, mode)].append(await run_phase(phase, mode, args))
    sys.stdout.write(report(args, phases, runs) + "\n")


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
