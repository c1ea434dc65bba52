"""Crash test (issue 5, acceptance 1): durable lite is SIGKILLed at random moments while the
s2kit SDK appends, then restarted and read back.

Each cycle starts lite on the same data directory and port, checks everything written so far,
appends from three writers for a random while, and kills lite mid-flight:

* an append session: pipelined batches of 1-30 records;
* a producer: record tickets, batched by the producer;
* unary appends with ``match_seq_num`` and a fencing token, after a fence command.

Every record's body names its batch (cycle and number) and its place in it, so the checks need
nothing but the acks the client saw:

* every acked batch (or producer record) is present exactly once, at the seq_nums of its ack;
* every batch present is whole (no batch partly visible) and appears once, acked or not;
* batches appear in submission order;
* records are contiguous from 0 to the tail, and the tail is never behind the last ack;
* the fencing token is the last fence command's: a wrong token gets 412 naming it, and the
  next cycle's fence, sent with it, succeeds.

``S2KIT_CRASH_SEED=N`` replays a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from s2kit import (
    S2,
    AppendInput,
    CommandRecord,
    Endpoints,
    ReadLimit,
    Record,
    Retry,
    SeqNum,
)
from s2kit.errors import FencingTokenMismatch, S2Error

from ._proc import LiteChild, free_port

if TYPE_CHECKING:
    from pathlib import Path

    from s2kit import AppendTicket, RecordTicket, Stream
    from s2kit.types import SequencedRecord, StreamPosition

BASIN = "crash-test-basin"
SESSION, PRODUCER, FENCED = "session", "producer", "fenced"
STREAMS = (SESSION, PRODUCER, FENCED)
WRITERS_END_TIMEOUT = 30.0


@dataclass
class Ledger:
    """What the client saw acked: per stream, batch id -> (start, end) seq_nums."""

    acks: dict[str, dict[str, tuple[int, int]]] = field(default_factory=lambda: defaultdict(dict))

    def ack(self, stream: str, bid: str, start: int, end: int) -> None:
        assert bid not in self.acks[stream], f"{stream}: {bid} acked twice"
        self.acks[stream][bid] = (start, end)


def _body(bid: str, index: int, count: int, rng: random.Random) -> bytes:
    return f"{bid}|{index}|{count}|".encode() + b"x" * rng.randint(0, 150)


def _parse(body: bytes) -> tuple[str, int, int]:
    bid, index, count, _ = body.split(b"|", 3)
    return bid.decode(), int(index), int(count)


def _client(url: str) -> S2:
    # No retries: an append either is acked in this cycle or its fate is left to the check.
    return S2("ignored", endpoints=Endpoints.for_url(url), retry=Retry(max_attempts=1))


# --- checking -------------------------------------------------------------------------------


async def _read_all(stream: Stream) -> tuple[list[SequencedRecord], StreamPosition]:
    tail = await stream.check_tail()
    records: list[SequencedRecord] = []
    while len(records) < tail.seq_num:
        batch = await stream.read(start=SeqNum(len(records)), limit=ReadLimit(count=1000))
        assert batch.records, f"read at {len(records)} below tail {tail.seq_num} was empty"
        records.extend(batch.records)
    return records, tail


def _check(
    name: str,
    records: list[SequencedRecord],
    tail: StreamPosition,
    acks: dict[str, tuple[int, int]],
) -> str:
    """Assert the acceptance properties; returns the stream's last fencing token."""
    assert [r.seq_num for r in records] == list(range(tail.seq_num)), f"{name}: gap in seq_nums"
    runs: dict[str, tuple[int, int]] = {}
    order: list[str] = []
    token = ""
    i = 0
    while i < len(records):
        r = records[i]
        if r.headers == ((b"", b"fence"),):
            token = r.body.decode()
            i += 1
            continue
        bid, index, count = _parse(r.body)
        assert index == 0, f"{name}: batch {bid} starts mid-way at seq_num {r.seq_num}"
        assert i + count <= len(records), f"{name}: batch {bid} is cut short at the tail"
        for j in range(count):
            assert _parse(records[i + j].body)[:2] == (bid, j), (
                f"{name}: batch {bid} is not whole at seq_num {r.seq_num + j}"
            )
        assert bid not in runs, f"{name}: batch {bid} appears twice"
        runs[bid] = (r.seq_num, r.seq_num + count)
        order.append(bid)
        i += count
    assert order == sorted(order), f"{name}: batches out of submission order"
    for bid, span in acks.items():
        assert runs.get(bid) == span, f"{name}: acked batch {bid} {span} found at {runs.get(bid)}"
    if acks:
        assert tail.seq_num >= max(end for _, end in acks.values()), f"{name}: tail behind an ack"
    return token


async def _verify(client: S2, ledger: Ledger) -> str:
    """Check every stream; returns the fenced stream's token, proven by a wrong-token append."""
    basin = client.basin(BASIN)
    page = await basin.list_streams()
    assert sorted(s.name for s in page.items) == sorted(STREAMS)
    token = ""
    for name in STREAMS:
        records, tail = await _read_all(basin.stream(name))
        found = _check(name, records, tail, ledger.acks[name])
        if name == FENCED:
            token = found
    with pytest.raises(FencingTokenMismatch) as info:
        await basin.stream(FENCED).append(
            AppendInput(records=[Record(body=b"never")], fencing_token="not-the-token")
        )
    assert info.value.expected == token
    return token


# --- writers --------------------------------------------------------------------------------


async def _session_writer(stream: Stream, cycle: int, rng: random.Random, ledger: Ledger) -> None:
    queue: asyncio.Queue[tuple[str, AppendTicket]] = asyncio.Queue()

    async def collect() -> None:
        while True:
            bid, ticket = await queue.get()
            ack = await ticket
            ledger.ack(SESSION, bid, ack.start.seq_num, ack.end.seq_num)

    with contextlib.suppress(S2Error):
        async with stream.append_session(max_unacked_batches=16) as session:
            collector = asyncio.create_task(collect())
            try:
                n = 0
                while not collector.done():
                    bid = f"{cycle:04d}.{n:06d}"
                    count = rng.randint(1, 30)
                    records = [Record(body=_body(bid, i, count, rng)) for i in range(count)]
                    queue.put_nowait((bid, await session.submit(AppendInput(records=records))))
                    n += 1
                    await asyncio.sleep(rng.uniform(0, 0.004))
            finally:
                collector.cancel()
                with contextlib.suppress(asyncio.CancelledError, S2Error):
                    await collector


async def _producer_writer(stream: Stream, cycle: int, rng: random.Random, ledger: Ledger) -> None:
    tickets: list[tuple[str, RecordTicket]] = []
    with contextlib.suppress(S2Error):
        async with stream.producer() as producer:
            n = 0
            while True:
                bid = f"{cycle:04d}.{n:06d}"
                tickets.append((bid, await producer.submit(Record(body=_body(bid, 0, 1, rng)))))
                n += 1
                if n % 8 == 0:
                    await asyncio.sleep(rng.uniform(0, 0.004))
                    for bid, ticket in tickets:
                        if ticket.done():
                            with contextlib.suppress(S2Error):
                                ack = await ticket
                                ledger.ack(PRODUCER, bid, ack.seq_num, ack.seq_num + 1)
                    tickets = [(b, t) for b, t in tickets if not t.done()]
    for bid, ticket in tickets:
        with contextlib.suppress(S2Error):
            ack = await ticket
            ledger.ack(PRODUCER, bid, ack.seq_num, ack.seq_num + 1)


async def _fenced_writer(
    stream: Stream, cycle: int, token: str, rng: random.Random, ledger: Ledger
) -> None:
    with contextlib.suppress(S2Error):
        mine = f"c{cycle}"
        ack = await stream.append(
            AppendInput(records=[CommandRecord.fence(mine)], fencing_token=token or None)
        )
        n = 0
        while True:
            bid = f"{cycle:04d}.{n:06d}"
            count = rng.randint(1, 10)
            ack = await stream.append(
                AppendInput(
                    records=[Record(body=_body(bid, i, count, rng)) for i in range(count)],
                    match_seq_num=ack.end.seq_num,
                    fencing_token=mine,
                )
            )
            ledger.ack(FENCED, bid, ack.start.seq_num, ack.end.seq_num)
            n += 1


# --- the test -------------------------------------------------------------------------------


async def _crash_cycles(tmp_path: Path, cycles: int) -> None:
    seed = int(os.environ.get("S2KIT_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    child = LiteChild(tmp_path / "data", free_port(), tmp_path / "lite.log")
    ledger = Ledger()
    try:
        for cycle in range(cycles):
            url = await child.start()
            async with _client(url) as client:
                try:
                    if cycle == 0:
                        await client.create_basin(BASIN)
                        for name in STREAMS:
                            await client.basin(BASIN).create_stream(name)
                    token = await _verify(client, ledger)
                except AssertionError as exc:
                    raise AssertionError(f"cycle {cycle}, seed {seed}: {exc}") from exc
                basin = client.basin(BASIN)
                writers = [
                    asyncio.create_task(_session_writer(basin.stream(SESSION), cycle, rng, ledger)),
                    asyncio.create_task(
                        _producer_writer(basin.stream(PRODUCER), cycle, rng, ledger)
                    ),
                    asyncio.create_task(
                        _fenced_writer(basin.stream(FENCED), cycle, token, rng, ledger)
                    ),
                ]
                await asyncio.sleep(rng.uniform(0.02, 0.6))
                child.kill()
                done, pending = await asyncio.wait(writers, timeout=WRITERS_END_TIMEOUT)
                for task in pending:
                    task.cancel()
                assert not pending, f"cycle {cycle}, seed {seed}: writers hung after the kill"
                for task in done:
                    task.result()
        url = await child.start()
        async with _client(url) as client:
            await _verify(client, ledger)
        assert child.terminate() == 0
        assert all(ledger.acks[name] for name in STREAMS), "some writer never got an ack"
    except BaseException:
        print(child.output()[-5000:])
        raise
    finally:
        child.kill()


async def test_acked_records_survive_sigkill(tmp_path: Path) -> None:
    await _crash_cycles(tmp_path, 20)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_acked_records_survive_sigkill_many_times(tmp_path: Path) -> None:
    await _crash_cycles(tmp_path, 100)
