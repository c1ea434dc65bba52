"""Bookkeeping and the assertions A1–A6 of docs/retry-safety.md#assertions.

Every record the tests submit has a unique body (``tag/batch/record``), so reading the stream
back tells exactly which inputs landed, how often, and where. A :class:`Ledger` keeps each
submitted input with its ticket's outcome; :func:`check` then asserts:

* A1: under NO_SIDE_EFFECTS no record appears twice (and with ``match_seq_num`` under ALL);
* A2: the inputs of one session that landed form a prefix of its submissions, each input's
  records contiguous and in order; every ack points at exactly its input's records;
* A5: every acked input is present; under NO_SIDE_EFFECTS an input whose ticket failed with a
  side-effect-free error is absent; nothing is present more often than there were attempts.

A4 (one terminal error for every unacked ticket, later submits and close) and A6 (contiguous
reads) have their own helpers.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from s2kit.client import AppendRetryPolicy
from s2kit.errors import S2Error
from s2kit.types import AppendAck, AppendInput, ReadBatch, Record, SeqNum, SequencedRecord

if TYPE_CHECKING:
    from s2kit import S2
    from s2kit.client import AppendSession, AppendTicket, Stream
    from s2kit.client._transport import PoolStatistics


def records_of(tag: str, index: int, count: int = 1, pad: int = 0) -> tuple[Record, ...]:
    """The records of input ``index`` of ``tag`` (``pad`` bytes of header each, for size)."""
    headers = ((b"pad", b"x" * pad),) if pad else ()
    return tuple(Record(body=f"{tag}/{index}/{j}".encode(), headers=headers) for j in range(count))


def parse(body: bytes) -> tuple[str, int, int] | None:
    """(tag, input, record) of a body made by :func:`records_of`."""
    parts = body.decode(errors="replace").split("/")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1]), int(parts[2])


async def read_stream(s2: S2, basin: str, stream: str) -> list[SequencedRecord]:
    """Every record of the stream, read directly."""
    handle = s2.basin(basin).stream(stream)
    tail = (await handle.check_tail()).seq_num
    out: list[SequencedRecord] = []
    while len(out) < tail:
        out.extend((await handle.read(SeqNum(len(out)))).records)
    # Records committed after check_tail may come along: contiguous from 0 is what counts.
    seqs = [r.seq_num for r in out]
    assert seqs == list(range(len(out))), f"a gap or repeat in {seqs[:5]}...{seqs[-5:]}"
    return out


@dataclass
class Submitted:
    """One input and what became of it."""

    index: int
    input: AppendInput
    ticket: AppendTicket | None = None
    ack: AppendAck | None = None
    error: S2Error | None = None


@dataclass
class Ledger:
    """The inputs one session (or client) submitted, in order."""

    tag: str
    items: list[Submitted] = field(default_factory=list)

    def next_input(
        self, count: int = 1, match_seq_num: int | None = None, pad: int = 0
    ) -> Submitted:
        index = len(self.items)
        records = records_of(self.tag, index, count, pad)
        item = Submitted(index, AppendInput(records=records, match_seq_num=match_seq_num))
        self.items.append(item)
        return item

    async def submit(
        self,
        session: AppendSession,
        count: int = 1,
        match_seq_num: int | None = None,
        pad: int = 0,
    ) -> Submitted:
        """Submit the next input; a failed submit is recorded as the input's error."""
        item = self.next_input(count, match_seq_num, pad)
        try:
            item.ticket = await session.submit(item.input)
        except S2Error as exc:
            item.error = exc
        return item

    async def settle(self) -> None:
        """Wait for every ticket's outcome."""
        for item in self.items:
            if item.ticket is None or item.ack is not None or item.error is not None:
                continue
            try:
                item.ack = await item.ticket
            except S2Error as exc:
                item.error = exc

    @property
    def acked(self) -> list[Submitted]:
        return [i for i in self.items if i.ack is not None]

    @property
    def failed(self) -> list[Submitted]:
        return [i for i in self.items if i.error is not None]


@dataclass(frozen=True)
class Landed:
    """How often each input of a ledger is on the stream."""

    copies: dict[int, int]

    def of(self, index: int) -> int:
        return self.copies.get(index, 0)

    @property
    def total(self) -> int:
        return sum(self.copies.values())


def check(
    ledger: Ledger,
    records: list[SequencedRecord],
    policy: AppendRetryPolicy,
    *,
    attempts: int = 3,
    match_seq_num: bool = False,
) -> Landed:
    """Assert A1, A2 and A5 for ``ledger`` against the stream's records; return the copies."""
    ours = [(r, p) for r in records if (p := parse(r.body)) is not None and p[0] == ledger.tag]
    counts = Counter(r.body for r, _ in ours)
    # A1: at most once under NO_SIDE_EFFECTS (and under ALL with match_seq_num).
    if policy is AppendRetryPolicy.NO_SIDE_EFFECTS or match_seq_num:
        dupes = {b: c for b, c in counts.items() if c > 1}
        assert not dupes, f"A1: duplicated records {dupes}"
    # A2: each occurrence of an input is its records, contiguous and in order...
    copies: Counter[int] = Counter()
    first_seen: list[int] = []
    i = 0
    while i < len(ours):
        _, (_, index, j) = ours[i]
        assert j == 0, f"A2: input {index} starts at record {j}"
        inp = ledger.items[index].input
        run = [r.body for r, _ in ours[i : i + len(inp.records)]]
        assert run == [rec.body for rec in inp.records], f"A2: input {index} is not contiguous"
        copies[index] += 1
        if index not in first_seen:
            first_seen.append(index)
        i += len(inp.records)
    # ... the inputs that landed are a prefix of the submissions, in submission order ...
    assert first_seen == list(range(len(first_seen))), f"A2: landed out of order {first_seen}"
    # ... and every ack points at exactly its input's records.
    by_seq = {r.seq_num: r for r in records}
    for item in ledger.acked:
        assert item.ack is not None
        start, end = item.ack.start.seq_num, item.ack.end.seq_num
        assert end - start == len(item.input.records), f"A2: ack of {item.index} has a bad count"
        got = [by_seq[s].body for s in range(start, end)]
        assert got == [rec.body for rec in item.input.records], f"A2: ack of {item.index}"
    acks = [i.ack.end.seq_num for i in ledger.items if i.ack is not None]
    assert acks == sorted(acks), "A2: acks out of order"
    # A5: acked inputs are present; definite failures under NSE absent; bounded copies.
    for item in ledger.items:
        if item.ack is not None:
            assert copies[item.index] >= 1, f"A5: acked input {item.index} is missing"
        elif (
            policy is AppendRetryPolicy.NO_SIDE_EFFECTS
            and item.error is not None
            and item.error.has_no_side_effects
        ):
            assert copies[item.index] == 0, f"A5: input {item.index} failed definitely, landed"
        assert copies[item.index] <= attempts, f"A5: input {item.index} landed too often"
    return Landed(dict(copies))


async def check_a4(session: AppendSession, ledger: Ledger) -> S2Error:
    """A4: every unacked ticket, a later submit and close fail with one and the same error."""
    await ledger.settle()
    errors = [i.error for i in ledger.items if i.ack is None]
    assert errors, "A4: expected unacked inputs"
    terminal = errors[0]
    assert terminal is not None
    assert all(e is terminal for e in errors), f"A4: different errors {set(map(repr, errors))}"
    later = ledger.next_input()
    with pytest.raises(S2Error) as submit_error:
        await session.submit(later.input)
    assert submit_error.value is terminal, f"A4: a later submit failed with {submit_error.value!r}"
    ledger.items.pop()
    with pytest.raises(S2Error) as close_error:
        await session.close()
    assert close_error.value is terminal, f"A4: close failed with {close_error.value!r}"
    return terminal


def check_contiguous(batches: list[ReadBatch], start: int = 0) -> list[int]:
    """A6: the seq_nums delivered are contiguous from ``start``; returns them."""
    seqs = [r.seq_num for b in batches for r in b.records]
    assert seqs == list(range(start, start + len(seqs))), f"A6: not contiguous: {seqs[:50]}"
    return seqs


async def wait_done(ledger: Ledger, within: float = 10.0) -> None:
    """Wait until every ticket of the ledger has its outcome."""
    async with asyncio.timeout(within):
        await ledger.settle()


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Poll ``predicate`` (for client-side state no event announces) until it holds."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 (client state changes announce nothing)
            await asyncio.sleep(0.005)


def pool_stats(s2: S2) -> PoolStatistics:
    """The client's connection pool statistics (the client has no public statistics yet)."""
    stats: PoolStatistics = s2._api.pool.statistics()  # type: ignore[attr-defined]
    return stats


def client_connections(s2: S2) -> int:
    """Connections the client's pool holds."""
    return pool_stats(s2).connections


def stream_of(s2: S2, names: tuple[str, str]) -> Stream:
    """The stream handle for ``(basin, stream)``."""
    return s2.basin(names[0]).stream(names[1])
