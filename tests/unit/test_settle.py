"""``judge``: which pending batches of a producer landed, decided from the stream read back
(the pure half of settling an ambiguous 412; docs/outcomes.md)."""

from __future__ import annotations

import pytest

from s2kit.client._settle import judge
from s2kit.types import Record, SequencedRecord


def batch(match: int, *bodies: bytes) -> tuple[int, list[Record]]:
    return match, [Record(body=b) for b in bodies]


def stored(start: int, *bodies: bytes) -> list[SequencedRecord]:
    return [
        SequencedRecord(seq_num=start + i, timestamp=100 + i, body=b) for i, b in enumerate(bodies)
    ]


def test_every_pending_batch_landed() -> None:
    verdict = judge([batch(5, b"a", b"b"), batch(7, b"c")], 8, stored(5, b"a", b"b", b"c"))
    assert verdict.rest == "resubmit"
    assert [(a.start.seq_num, a.end.seq_num) for a in verdict.landed] == [(5, 7), (7, 8)]
    assert verdict.landed[0].tail.seq_num == 8
    assert (verdict.landed[0].start.timestamp, verdict.landed[0].end.timestamp) == (100, 101)


def test_the_first_missing_batch_at_the_end_is_resubmitted_with_those_after_it() -> None:
    verdict = judge([batch(0, b"a"), batch(1, b"b"), batch(2, b"c")], 1, stored(0, b"a"))
    assert len(verdict.landed) == 1
    assert verdict.rest == "resubmit"


def test_nothing_landed_and_the_first_batch_starts_at_the_end() -> None:
    verdict = judge([batch(3, b"a")], 3, [])
    assert verdict.landed == ()
    assert verdict.rest == "resubmit"


@pytest.mark.parametrize(
    "found",
    [
        stored(0, b"a", b"theirs"),  # another writer's record in the second batch's place
        stored(0, b"a", b"b", b"x"),  # the second batch's first record, then another's
        stored(0, b"a", b"b"),  # only part of the second batch before the end
    ],
    ids=["other-record", "batch-split", "partial"],
)
def test_another_writers_records_in_place_mean_the_rest_never_land(
    found: list[SequencedRecord],
) -> None:
    verdict = judge([batch(0, b"a"), batch(1, b"b", b"c")], len(found), found)
    assert len(verdict.landed) == 1
    assert verdict.rest == "taken"


def test_headers_count_as_much_as_bodies() -> None:
    mine = (0, [Record(body=b"a", headers=[(b"k", b"v")])])
    theirs = [SequencedRecord(seq_num=0, timestamp=1, body=b"a", headers=((b"k", b"w"),))]
    assert judge([mine], 1, theirs).rest == "taken"


def test_batches_starting_beyond_the_end_are_of_unknown_future() -> None:
    verdict = judge([batch(10, b"a")], 4, [])
    assert verdict.landed == ()
    assert verdict.rest == "beyond"


def test_pending_batches_must_be_contiguous() -> None:
    with pytest.raises(ValueError, match="contiguous"):
        judge([batch(0, b"a"), batch(5, b"b")], 6, stored(0, b"a"))
