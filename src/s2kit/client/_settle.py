"""Settling an ambiguous ``412 SeqNumMismatch`` by reading the stream back.

With ``match_seq_num`` every batch of a producer carries the seq_num it must land at, fixed when
the batch is first handed over, so a re-send can never land twice: if an earlier copy had
landed, the re-send fails with ``412 SeqNumMismatch(expected = the stream's next seq_num)`` and
the session stops (nothing after it is applied; docs/retry-safety.md#match_seq_num-and-fencing).
That 412 is ambiguous only when an earlier copy of a pending batch may exist: an attempt that
handed the batch off ended without a verdict (the batch's *doubt*, docs/outcomes.md). Then the
producer reads the stream back from the first pending batch's position and :func:`judge`
decides, for the pending batches in order:

* a batch whose records are all there, in place, **landed**: it resolves with an ack built
  from what was read (the ack's ``tail`` is the 412's ``expected``);
* at the first batch that is not there: if it starts exactly at ``expected`` it and every
  batch after it **did not land** (so far) and are handed to a new session, in order, with the
  seq_nums they carry; if another writer's records are in its place it can never land, nor
  can any batch after it (every attempt that carried a later batch carried this one before
  it, and the server applies an attempt's inputs in order, none after a failed one), so they
  fail with a definite 412; if it starts beyond ``expected`` (the stream is shorter than the
  producer was told) nothing is known of its future and the failure stays indefinite.

The read-back covers at most the pending batches' records, and must return every position
from the first: a gap (trimmed records) or a read that fails leaves the outcome unknown, and
the producer then fails with an indefinite :class:`~s2kit.errors.BrokenError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from s2kit.errors import BrokenError
from s2kit.types import AppendAck, ReadLimit, Record, SeqNum, SequencedRecord, StreamPosition

if TYPE_CHECKING:
    from s2kit.client._stream import Stream

_EMPTY_READS = 10  # reads of 1 s each that may come back empty before giving up


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What the read-back says of the pending batches, in their order."""

    landed: tuple[AppendAck, ...]
    """Acks of the first ``len(landed)`` batches, which are on the stream."""
    rest: Literal["resubmit", "taken", "beyond"]
    """The other batches: they did not land and may be handed over again; another writer's
    records hold their place (they never will); or they start beyond the stream's end."""


def judge(
    pending: Sequence[tuple[int, Sequence[Record]]], expected: int, found: Sequence[SequencedRecord]
) -> Verdict:
    """Decide which of ``pending`` (``(match_seq_num, records)``, contiguous, in order) landed.

    ``found`` holds the stream's records from the first batch's position on, as far as the
    read-back went (at most up to ``expected``).
    """
    start = pending[0][0]
    acks: list[AppendAck] = []
    pos = start
    for match, records in pending:
        if match != pos:
            raise ValueError(f"pending batches are not contiguous at {pos}")
        if pos >= expected:
            return Verdict(landed=tuple(acks), rest="resubmit" if pos == expected else "beyond")
        landed = found[pos - start : pos - start + len(records)]
        if len(landed) < len(records) or not all(
            r.body == rec.body and tuple(r.headers) == tuple(rec.headers)
            for r, rec in zip(landed, records, strict=False)
        ):
            return Verdict(landed=tuple(acks), rest="taken")
        acks.append(
            AppendAck(
                start=StreamPosition(pos, landed[0].timestamp),
                end=StreamPosition(pos + len(records), landed[-1].timestamp),
                tail=StreamPosition(expected, found[-1].timestamp),
            )
        )
        pos += len(records)
    return Verdict(landed=tuple(acks), rest="resubmit")


async def read_back(stream: Stream, start: int, end: int) -> list[SequencedRecord]:
    """The records at ``[start, end)``, every position present.

    Raises:
        BrokenError: a position is missing (trimmed), or they do not all show up.
        S2Error: a read failed.
    """
    found: list[SequencedRecord] = []
    empty = 0
    while start + len(found) < end:
        batch = await stream.read(
            SeqNum(start + len(found)),
            limit=ReadLimit(count=end - start - len(found)),
            wait=1,  # the 412's expected may count records not yet durable
        )
        records = [r for r in batch.records if r.seq_num < end]
        for r in records:
            if r.seq_num != start + len(found):
                raise BrokenError(f"read back {r.seq_num} where {start + len(found)} was due")
            found.append(r)
        empty = 0 if records else empty + 1
        if empty >= _EMPTY_READS:
            raise BrokenError(f"records {start + len(found)}..{end} did not show up")
    return found
