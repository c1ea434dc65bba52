"""Lite measured with the official Python SDK (``s2_sdk``) over h2c.

Usage: ``.venv/bin/python bench/lite_official.py [--duration S] [--flush-interval MS]``

Each phase gets a fresh lite process (``python -m s2kit lite --port 0``), a fresh basin and a
``bench/<uuid>`` stream configured as ``s2 bench`` configures its own (ClientRequire, uncapped
timestamps). Records have the ``s2 bench`` shape: metered size exactly ``--record-size``, one
``hash`` header carrying the chained xxh3-64, timestamp = µs since the phase started.

Phases:

1. ``session``: one append session, pipelined, fed with batches the size the official Producer
   cuts (1 MiB = 128 records of 8 KiB), as fast as its 5 MiB unacked window allows.
2. ``producer``: the official Producer (default batching: linger 5 ms, 1000 records / 1 MiB,
   5 MiB unacked) fed one record at a time as fast as it accepts them.
3. ``paced``: the Producer at ``--rate-mibps`` (1 MiB/s by default), open-loop pacing as in
   ``s2 bench`` (docs/bench-method.md#workload); per-record ack latency from just before
   ``submit`` to the ticket resolving, linger included.

Throughput follows docs/bench-method.md#metrics: acked bytes / time from the first submit to
the last ack.
CPU per record is (CPU seconds in the phase) / (acked records), for this process (client) and
the lite process (server) separately.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import s2_sdk as s2
import xxhash

from _harness import MIB, CpuSpan, Server, fmt_duration, machine, markdown_table, summary

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

HASH_HEADER = b"hash"
RECORD_OVERHEAD = 8 + 2 + len(HASH_HEADER) + 8  # metered: 8 + 2 per header + name + value


class RecordMaker:
    """Records of the ``s2 bench`` shape: chained xxh3-64 header, µs-since-start timestamps.

    The body is one block of seeded pseudo-random bytes reused for every record (the chain
    value still differs per record); without compression its content does not matter.
    """

    def __init__(self, record_size: int) -> None:
        self.body = random.Random(0).randbytes(record_size - RECORD_OVERHEAD)
        self.chain = 0
        self.t0 = time.perf_counter()

    def make(self) -> s2.Record:
        h = xxhash.xxh3_64(self.chain.to_bytes(8, "big"))
        h.update(self.body)
        self.chain = h.intdigest()
        return s2.Record(
            body=self.body,
            headers=[(HASH_HEADER, self.chain.to_bytes(8, "big"))],
            timestamp=int((time.perf_counter() - self.t0) * 1e6),
        )


@dataclass(slots=True, kw_only=True)
class PhaseResult:
    """What one phase measured."""

    name: str
    record_size: int
    records: int = 0
    """Acked records."""
    batches: int = 0
    """Acked batches (append inputs)."""
    elapsed: float = 0.0
    """First submit to last ack, seconds."""
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    """Per-record ack latencies (paced) or per-batch ack latencies (session), seconds."""
    latency_unit: str = ""

    @property
    def mib_s(self) -> float:
        return self.records * self.record_size / MIB / self.elapsed

    def per_record_us(self, cpu_s: float) -> float:
        return cpu_s / self.records * 1e6


async def _with_stream(
    server: Server, body: Callable[[s2.S2Stream], Awaitable[PhaseResult]]
) -> PhaseResult:
    endpoints = s2.Endpoints(account=server.url, basin=server.url)
    async with s2.S2("ignored", endpoints=endpoints) as client:
        basin_name = f"bench-{uuid.uuid4().hex[:16]}"
        await client.create_basin(basin_name)
        basin = client.basin(basin_name)
        stream_name = f"bench/{uuid.uuid4()}"
        config = s2.StreamConfig(
            retention_policy=3600,
            timestamping=s2.Timestamping(mode=s2.TimestampingMode.CLIENT_REQUIRE, uncapped=True),
            delete_on_empty_min_age=60,
        )
        await basin.create_stream(stream_name, config=config)
        return await body(basin.stream(stream_name))


async def phase_session(server: Server, *, duration: float, record_size: int) -> PhaseResult:
    """One pipelined append session fed with Producer-sized (1 MiB) batches."""
    per_batch = max(1, min(1000, MIB // record_size))
    result = PhaseResult(name="session", record_size=record_size, latency_unit="batch")

    async def run(stream: s2.S2Stream) -> PhaseResult:
        maker = RecordMaker(record_size)
        pending: deque[tuple[float, s2.BatchSubmitTicket]] = deque()
        wake = asyncio.Event()
        done = False

        async def collect() -> None:
            expected = 0
            while True:
                while not pending:
                    if done:
                        return
                    wake.clear()
                    await wake.wait()
                t_submit, ticket = pending.popleft()
                ack = await ticket
                result.latencies.append(time.perf_counter() - t_submit)
                if ack.start.seq_num != expected:
                    raise RuntimeError(f"ack at {ack.start.seq_num}, expected {expected}")
                expected = ack.end.seq_num
                result.records += ack.end.seq_num - ack.start.seq_num
                result.batches += 1

        cpu = CpuSpan(server)
        session = stream.append_session()
        collector = asyncio.create_task(collect())
        cpu.start()
        t0 = time.perf_counter()
        try:
            while time.perf_counter() - t0 < duration:
                batch = s2.AppendInput(records=[maker.make() for _ in range(per_batch)])
                t_submit = time.perf_counter()
                pending.append((t_submit, await session.submit(batch)))
                wake.set()
        finally:
            await session.close()
            done = True
            wake.set()
            await collector
        result.elapsed = time.perf_counter() - t0
        cpu.stop()
        result.client_cpu, result.server_cpu = cpu.client_s, cpu.server_s
        return result

    return await _with_stream(server, run)


async def phase_producer(server: Server, *, duration: float, record_size: int) -> PhaseResult:
    """The official Producer with default batching, fed as fast as it accepts records."""
    result = PhaseResult(name="producer", record_size=record_size)

    async def run(stream: s2.S2Stream) -> PhaseResult:
        maker = RecordMaker(record_size)
        cpu = CpuSpan(server)
        tickets: list[s2.RecordSubmitTicket] = []
        cpu.start()
        t0 = time.perf_counter()
        async with stream.producer() as producer:
            while time.perf_counter() - t0 < duration:
                tickets.append(await producer.submit(maker.make()))
            await producer.flush()
        result.elapsed = time.perf_counter() - t0
        cpu.stop()
        # All resolved by now: check them and count the batches the Producer cut.
        batch_starts: set[int] = set()
        for expected, ticket in enumerate(tickets):
            ack = await ticket
            if ack.seq_num != expected:
                raise RuntimeError(f"ack for seq_num {ack.seq_num}, expected {expected}")
            batch_starts.add(ack.batch.start.seq_num)
        result.records = len(tickets)
        result.batches = len(batch_starts)
        result.client_cpu, result.server_cpu = cpu.client_s, cpu.server_s
        return result

    return await _with_stream(server, run)


async def phase_paced(
    server: Server, *, duration: float, record_size: int, rate_mibps: float
) -> PhaseResult:
    """The official Producer at a paced rate; per-record ack latency, linger included."""
    result = PhaseResult(name="paced", record_size=record_size, latency_unit="record")
    rate = rate_mibps * MIB

    async def run(stream: s2.S2Stream) -> PhaseResult:
        maker = RecordMaker(record_size)
        pending: deque[tuple[float, s2.RecordSubmitTicket]] = deque()
        wake = asyncio.Event()
        done = False
        batch_starts: set[int] = set()

        async def collect() -> None:
            expected = 0
            while True:
                while not pending:
                    if done:
                        return
                    wake.clear()
                    await wake.wait()
                t_submit, ticket = pending.popleft()
                ack = await ticket
                result.latencies.append(time.perf_counter() - t_submit)
                if ack.seq_num != expected:
                    raise RuntimeError(f"ack for seq_num {ack.seq_num}, expected {expected}")
                expected += 1
                batch_starts.add(ack.batch.start.seq_num)

        cpu = CpuSpan(server)
        collector = asyncio.create_task(collect())
        submitted_bytes = 0
        cpu.start()
        t0 = time.perf_counter()
        async with stream.producer() as producer:
            try:
                while True:
                    elapsed = time.perf_counter() - t0
                    if elapsed >= duration:
                        break
                    # Open loop (docs/bench-method.md#workload): sleep only while ahead of the
                    # target rate.
                    ahead = submitted_bytes / rate - elapsed
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                        continue
                    record = maker.make()
                    t_submit = time.perf_counter()
                    pending.append((t_submit, await producer.submit(record)))
                    wake.set()
                    submitted_bytes += record_size
            finally:
                await producer.flush()
                done = True
                wake.set()
                await collector
        result.elapsed = time.perf_counter() - t0
        cpu.stop()
        result.records = len(result.latencies)
        result.batches = len(batch_starts)
        result.client_cpu, result.server_cpu = cpu.client_s, cpu.server_s
        return result

    return await _with_stream(server, run)


async def idle_server_cpu(server: Server, seconds: float) -> float:
    """Server CPU per second while no client talks to it (timers only)."""
    before = server.cpu_seconds()
    await asyncio.sleep(seconds)
    return (server.cpu_seconds() - before) / seconds


def report(
    args: argparse.Namespace, results: list[PhaseResult], idle: float, load_before: str
) -> str:
    """The markdown report of a run."""
    out: list[str] = []
    m = machine()
    out.append(f"Command: `.venv/bin/python bench/lite_official.py {' '.join(sys.argv[1:])}`")
    out.append("")
    out.append(
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}, "
        f"s2-sdk {m['s2-sdk']}, s2kit {m['s2kit']}. Lite flush interval "
        f"{args.flush_interval:g} ms, in memory; h2c on 127.0.0.1. Record size "
        f"{args.record_size} B (metered). Idle lite CPU: {idle * 100:.1f} % of a core. "
        f"Load average before the run: {load_before}."
    )
    out.append("")
    rows = []
    for r in results:
        rows.append(
            [
                r.name,
                f"{r.mib_s:.2f}",
                f"{r.records / r.elapsed:,.0f}",
                f"{r.batches / r.elapsed:,.1f}",
                f"{r.records / max(1, r.batches):.1f}",
                f"{r.per_record_us(r.client_cpu):.0f}",
                f"{r.per_record_us(r.server_cpu):.0f}",
                f"{r.records:,}",
                f"{r.elapsed:.2f}",
            ]
        )
    headers = [
        "phase",
        "MiB/s",
        "records/s",
        "batches/s",
        "records/batch",
        "client CPU µs/record",
        "server CPU µs/record",
        "acked records",
        "seconds",
    ]
    out.append(markdown_table(headers, rows))
    for r in results:
        if not r.latencies:
            continue
        s = summary(r.latencies)
        out.append("")
        out.append(f"Ack latency, {r.name}, per {r.latency_unit} (n={len(r.latencies)}):")
        out.append("")
        out.append(
            markdown_table(
                ["min", "p50", "p90", "p99", "max"], [[fmt_duration(v) for v in s.values()]]
            )
        )
    return "\n".join(out)


async def run_phase(args: argparse.Namespace, name: str) -> tuple[PhaseResult, float]:
    with Server(flush_interval_ms=args.flush_interval) as server:
        idle = await idle_server_cpu(server, args.idle)
        common = {"duration": args.duration, "record_size": args.record_size}
        if name == "session":
            result = await phase_session(server, **common)
        elif name == "producer":
            result = await phase_producer(server, **common)
        else:
            result = await phase_paced(server, rate_mibps=args.rate_mibps, **common)
    sys.stderr.write(
        f"{name}: {result.mib_s:.2f} MiB/s, {result.records / result.elapsed:,.0f} records/s "
        f"({result.records} records in {result.elapsed:.2f}s)\n"
    )
    return result, idle


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase (10)")
    parser.add_argument(
        "--flush-interval", type=float, default=5.0, metavar="MS", help="lite's (5 ms)"
    )
    parser.add_argument("--record-size", type=int, default=8192, help="metered bytes (8192)")
    parser.add_argument("--rate-mibps", type=float, default=1.0, help="paced phase rate (1)")
    parser.add_argument(
        "--phases",
        default="session,producer,paced",
        help="comma-separated subset of session,producer,paced",
    )
    parser.add_argument("--idle", type=float, default=1.0, help="idle-CPU probe seconds (1)")
    args = parser.parse_args(argv)
    unknown = set(args.phases.split(",")) - {"session", "producer", "paced"}
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if not 128 <= args.record_size < MIB:
        parser.error("--record-size must be in [128, 1048576)")
    return args


async def main(args: argparse.Namespace) -> None:
    load_before = machine()["loadavg"]
    results: list[PhaseResult] = []
    idles: list[float] = []
    for name in args.phases.split(","):
        result, idle = await run_phase(args, name)
        results.append(result)
        idles.append(idle)
    print(report(args, results, min(idles), load_before))


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
