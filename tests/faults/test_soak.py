"""The chaos soak: random faults from the proxy's whole repertoire while several writers and
readers run at once, then every promise checked against the streams read back directly.

* NO_SIDE_EFFECTS writers (append sessions, up to 32 inputs in flight): no record twice; every
  acked input present exactly once, at its ack; every input failed with a side-effect-free
  error absent. A stopped session is replaced by a new one; its unsettled inputs stay open.
* ALL + match_seq_num writers (producers): every submitted record exactly once, in order; the
  producer must never give up (its faults exclude the two that end a session for good).
* Readers follow every stream through the proxy from seq_num 0: contiguous seq_nums across
  every reconnect, and the same records as the stream.

The CI-sized run (``test_soak``) covers at least 20,000 batches; the larger one is marked
``slow`` (``pytest tests/faults/test_soak.py -m slow``). With ``S2KIT_SOAK_REPORT=path`` the
figures are written there as JSON (docs/reliability.md quotes them).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import pytest

from faults._harness import read_stream
from faults.conftest import ALL, NSE, TOKEN
from s2kit import S2
from s2kit.client import (
    AppendRetryPolicy,
    Batching,
    Endpoints,
    ReadSessionRetryPolicy,
    Retry,
    Timeout,
)
from s2kit.errors import S2Error
from s2kit.testing.faults import Chaos, FaultProxy
from s2kit.types import AppendInput, ReadLimit, Record, SeqNum

if TYPE_CHECKING:
    from s2kit.client import AppendTicket, RecordTicket
    from s2kit.server import Lite
    from s2kit.testing.faults import RequestInfo
    from s2kit.types import SequencedRecord

SEED = int(os.environ.get("S2KIT_SOAK_SEED", "20260829"))
WINDOW = 32  # inputs in flight per writer
ROTATE = 150  # inputs per session (and records per producer), so faults hit many streams


@dataclass
class Report:
    """What a soak run did and found."""

    seed: int
    seconds: float = 0.0
    batches_submitted: int = 0
    batches_acked: int = 0
    records_submitted: int = 0
    nse_acked_missing: int = 0
    nse_duplicates: int = 0
    nse_definite_failed_present: int = 0
    nse_indefinite_outcomes: int = 0
    nse_indefinite_landed: int = 0
    nse_sessions: int = 0
    producer_sessions: int = 0
    all_records_missing: int = 0
    all_records_duplicated: int = 0
    session_attempts: int = 0
    append_retries: int = 0
    producer_settles: int = 0
    read_reconnects: int = 0
    read_restarts: int = 0
    read_records: int = 0
    read_gaps_or_repeats: int = 0
    connections: int = 0
    faults_injected: int = 0
    faults: dict[str, int] = field(default_factory=dict)

    def lines(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def client(url: str, policy: AppendRetryPolicy, attempts: int) -> S2:
    return S2(
        TOKEN,
        endpoints=Endpoints.for_url(url),
        timeout=Timeout(connect=0.3, request=0.5),
        retry=Retry(
            max_attempts=attempts,
            min_base_delay=0.005,
            max_base_delay=0.05,
            append_retry_policy=policy,
            read_session_policy=ReadSessionRetryPolicy.INDEFINITE,
        ),
    )


def body(writer: str, batch: int, record: int) -> bytes:
    return f"{writer}/{batch}/{record}".encode()


@dataclass
class _Input:
    batch: int
    records: int
    ticket: AppendTicket | None = None
    outcome: str = "pending"  # acked | definite | indefinite
    ack_start: int = -1


async def nse_writer(s2: S2, basin: str, name: str, batches: int, report: Report) -> list[_Input]:
    """Append sessions under NO_SIDE_EFFECTS; a stopped session is replaced."""
    stream = s2.basin(basin).stream(name)
    inputs: list[_Input] = []
    window: list[_Input] = []

    async def settle(item: _Input) -> bool:
        assert item.ticket is not None
        try:
            ack = await item.ticket
        except S2Error as exc:
            item.outcome = "definite" if exc.has_no_side_effects else "indefinite"
            return False
        item.outcome = "acked"
        item.ack_start = ack.start.seq_num
        return True

    while len(inputs) < batches:
        session = stream.append_session()
        report.nse_sessions += 1
        alive = True
        rotate_at = len(inputs) + ROTATE
        while alive and len(inputs) < min(batches, rotate_at):
            item = _Input(len(inputs), 1 + len(inputs) % 3)
            records = tuple(Record(body=body(name, item.batch, j)) for j in range(item.records))
            try:
                item.ticket = await session.submit(AppendInput(records=records))
            except S2Error:
                break  # the session stopped: this input was never submitted
            inputs.append(item)
            window.append(item)
            if len(window) >= WINDOW:
                alive = await settle(window.pop(0))
        for item in window:
            await settle(item)
        window.clear()
        report.session_attempts += session.statistics().attempts
        try:
            await session.close()
        except S2Error:
            pass
    return inputs


async def all_writer(
    s2: S2, basin: str, name: str, records: int, report: Report
) -> list[RecordTicket]:
    """Producers with match_seq_num under ALL: they must settle every fault by themselves.

    Each producer writes ``ROTATE`` records; the next one starts where its acks ended."""
    stream = s2.basin(basin).stream(name)
    tickets: list[RecordTicket] = []
    while len(tickets) < records:
        start = len(tickets)
        batching = Batching(max_records=2, linger=0.0002)
        producer = stream.producer(match_seq_num=start, batching=batching)
        for i in range(start, min(records, start + ROTATE)):
            tickets.append(await producer.submit(Record(body=body(name, i, 0))))
            if i - start >= WINDOW:
                await tickets[-WINDOW]  # bounded in flight
        await producer.close()
        stats = producer.statistics()
        report.producer_settles += stats.settled
        report.producer_sessions += stats.sessions
        report.session_attempts += stats.attempts
    return tickets


async def reader(
    s2: S2, basin: str, name: str, seen: list[tuple[int, bytes]], report: Report
) -> None:
    """Follow the stream from 0 until cancelled; a session that gives up is replaced by one
    starting where it stopped (A6 is checked across both kinds of reconnect)."""
    stream = s2.basin(basin).stream(name)
    while True:
        # Sessions of ROTATE * 3 records, so faults hit many read streams too.
        limit = ReadLimit(count=3 * ROTATE)
        session = stream.read_session(SeqNum(len(seen)), limit=limit, wait=5, heartbeat_timeout=1.0)
        try:
            async for batch in session:
                for r in batch.records:
                    if r.seq_num != len(seen):
                        report.read_gaps_or_repeats += 1
                    seen.append((r.seq_num, r.body))
        except S2Error:
            report.read_restarts += 1
        finally:
            report.read_reconnects += session.reconnects
            await session.aclose()


def allow(request: RequestInfo, fault: str) -> bool:
    # Producers must never stop: keep the two faults that end a session for good away.
    return not ("/streams/all-" in request.path and fault in ("end-stream", "bad-ack"))


async def soak(lite: Lite, direct: S2, *, batches: int, writers: int, seed: int) -> Report:
    report = Report(seed=seed)
    basin = "faults-soak"
    await direct.create_basin(basin)
    names = [f"nse-{i}" for i in range(writers)] + [f"all-{i}" for i in range(writers)]
    for name in names:
        await direct.basin(basin).create_stream(name)
    per_writer = batches // (2 * writers)
    started = time.monotonic()
    async with FaultProxy(lite.url, manage_windows=True) as proxy:
        proxy.chaos = Chaos(
            seed=seed, stream_rate=0.5, connection_rate=0.1, allow=allow, blackhole_seconds=2.0
        )
        clients = [client(proxy.url, NSE, 3) for _ in range(writers)]
        clients += [client(proxy.url, ALL, 12) for _ in range(writers)]
        readers = [client(proxy.url, NSE, 3) for _ in names]
        seen: dict[str, list[tuple[int, bytes]]] = {name: [] for name in names}
        try:
            async with asyncio.timeout(600), asyncio.TaskGroup() as tg:
                follow = [
                    tg.create_task(reader(rc, basin, name, seen[name], report))
                    for rc, name in zip(readers, names, strict=True)
                ]
                nse = [
                    tg.create_task(nse_writer(c, basin, name, per_writer, report))
                    for c, name in zip(clients[:writers], names[:writers], strict=True)
                ]
                alls = [
                    tg.create_task(all_writer(c, basin, name, 2 * per_writer, report))
                    for c, name in zip(clients[writers:], names[writers:], strict=True)
                ]
                await asyncio.gather(*nse, *alls)
                for name in names:
                    tail = (await direct.basin(basin).stream(name).check_tail()).seq_num
                    async with asyncio.timeout(60):
                        while len(seen[name]) < tail:  # noqa: ASYNC110 (readers own the lists)
                            await asyncio.sleep(0.02)
                for task in follow:
                    task.cancel()
        finally:
            for c in clients + readers:
                await c.aclose()
        report.connections = proxy.stats.connections
        report.faults = dict(sorted(proxy.stats.faults.items()))
        report.faults_injected = proxy.stats.total_faults()
    report.seconds = round(time.monotonic() - started, 1)
    sessions = report.nse_sessions + report.producer_sessions
    report.append_retries = report.session_attempts - sessions
    for name, task in zip(names[:writers], nse, strict=True):
        verify_nse(name, task.result(), await read_stream(direct, basin, name), report)
    for name, task in zip(names[writers:], alls, strict=True):
        await verify_all(name, task.result(), await read_stream(direct, basin, name), report)
    for name in names:
        stored = await read_stream(direct, basin, name)
        report.read_records += len(seen[name])
        assert seen[name] == [(r.seq_num, r.body) for r in stored], f"reader of {name}"
    return report


def verify_nse(
    name: str, inputs: list[_Input], stored: list[SequencedRecord], report: Report
) -> None:
    counts = Counter(r.body for r in stored)
    at = {r.body: r.seq_num for r in stored}
    report.batches_submitted += len(inputs)
    for item in inputs:
        first = body(name, item.batch, 0)
        copies = counts[first]
        report.records_submitted += item.records
        report.nse_duplicates += sum(
            max(0, counts[body(name, item.batch, j)] - 1) for j in range(item.records)
        )
        if item.outcome == "acked":
            report.batches_acked += 1
            if copies != 1 or at[first] != item.ack_start:
                report.nse_acked_missing += 1
        elif item.outcome == "definite":
            report.nse_definite_failed_present += copies
        else:
            report.nse_indefinite_outcomes += 1
            report.nse_indefinite_landed += copies


async def verify_all(
    name: str, tickets: list[RecordTicket], stored: list[SequencedRecord], report: Report
) -> None:
    acks = [await t for t in tickets]
    report.records_submitted += len(tickets)
    batches = {a.batch.start.seq_num for a in acks}
    report.batches_submitted += len(batches)
    report.batches_acked += len(batches)
    expected = [body(name, i, 0) for i in range(len(tickets))]
    got = [r.body for r in stored]
    counts = Counter(got)
    report.all_records_missing += sum(1 for b in expected if counts[b] == 0)
    report.all_records_duplicated += sum(c - 1 for c in counts.values() if c > 1)
    assert got == expected, f"{name}: not exactly once, in order"
    assert [a.seq_num for a in acks] == list(range(len(tickets)))


def check_report(report: Report, batches: int) -> None:
    write = os.environ.get("S2KIT_SOAK_REPORT")
    if write:
        with open(write, "w") as f:
            f.write(report.lines() + "\n")
    print(report.lines())  # shown with -s; the report file is the record
    assert report.batches_submitted >= batches
    assert report.nse_duplicates == 0
    assert report.nse_acked_missing == 0
    assert report.nse_definite_failed_present == 0
    assert report.all_records_missing == report.all_records_duplicated == 0
    assert report.read_gaps_or_repeats == 0
    assert report.faults_injected > 0


async def test_soak(lite: Lite, direct: S2) -> None:
    report = await soak(lite, direct, batches=20_000, writers=2, seed=SEED)
    check_report(report, 20_000)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_soak_large(lite: Lite, direct: S2) -> None:
    report = await soak(lite, direct, batches=200_000, writers=4, seed=SEED + 1)
    check_report(report, 200_000)
