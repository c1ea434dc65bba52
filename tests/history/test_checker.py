"""The checker checked: small hand-made histories, one per property (and the cases that must
*not* be flagged), then a real recorded history, clean, and corrupted one way at a time: a
lost record, a reappearing (trimmed) record, a duplicate under NO_SIDE_EFFECTS, a definite
failure that is visible, a stale fence that succeeded, a match_seq_num violated, a backwards
tail, two reads disagreeing, a read session with a gap and one with a repeat, an ack out of
real-time order, a record nobody submitted. Each must be flagged under its property, with a
message that names what broke.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import struct
from array import array
from typing import TYPE_CHECKING, Any

import pytest

from ._checker import PROPERTIES, Result, check
from ._history import (
    ALL,
    FAIL,
    INFO,
    NSE,
    OK,
    SESSION,
    UNARY,
    Ack,
    Append,
    Batch,
    Follow,
    History,
    Read,
    Segment,
    command_key,
)
from ._phases import PHASES, Plan, run_phase

if TYPE_CHECKING:
    from collections.abc import Callable


# --- a builder for small histories -----------------------------------------------------------


class Builder:
    """Hand-made histories: explicit times, timestamps equal to seq_nums unless given."""

    def __init__(self) -> None:
        self.h = History()
        self._ids = itertools.count(1)

    def append(
        self,
        n: int = 1,
        *,
        invoke: int,
        complete: int | None = None,
        at: int | None = None,
        outcome: str = OK,
        policy: str = NSE,
        via: str = UNARY,
        fence: str | None = None,
        trim: int | None = None,
        stream: str = "s",
        tail: int | None = None,
        **kw: Any,
    ) -> Append:
        op_id = next(self._ids)
        keys = [b"%d.%d." % (op_id, i) for i in range(n)]
        if fence is not None:
            keys.append(command_key(b"fence", fence.encode()))
        if trim is not None:
            keys.append(command_key(b"trim", struct.pack(">Q", trim)))
        a = Append(
            op_id,
            stream,
            "writer",
            via,
            "h2",
            policy,
            tuple(keys),
            invoke,
            complete=complete,
            outcome=outcome,
            **kw,
        )
        if at is not None:
            end = at + len(keys)
            a.ack = Ack(at, end, end if tail is None else tail, at, end - 1)
        self.h.appends.append(a)
        return a

    def read(
        self,
        records: list[tuple[int, bytes]],
        *,
        invoke: int,
        complete: int,
        start: tuple[str, int] | None = None,
        kind: str = "read",
        stream: str = "s",
        **kw: Any,
    ) -> Read:
        seqs = [s for s, _ in records]
        if start is None:
            start = ("seq", seqs[0] if seqs else 0)
        r = Read(
            next(self._ids),
            stream,
            "reader",
            "h2",
            kind,
            invoke,
            start=start,
            complete=complete,
            outcome=OK,
            seqs=array("q", seqs),
            timestamps=array("q", kw.pop("timestamps", seqs)),
            keys=[k for _, k in records],
            **kw,
        )
        self.h.reads.append(r)
        return r

    def tail(self, value: int, *, invoke: int, complete: int, kind: str = "check_tail") -> Read:
        r = Read(next(self._ids), "s", "reader", "h2", kind, invoke, complete=complete)
        r.outcome, r.tail = OK, value
        self.h.reads.append(r)
        return r

    def follow(
        self, segments: list[tuple[int, list[tuple[int, list[tuple[int, bytes]]]], str]]
    ) -> Follow:
        """``segments``: (invoke, [(at, records)], error) each."""
        f = Follow(next(self._ids), "s", "follower", "h2", 0)
        for invoke, batches, error in segments:
            seg = Segment(invoke, 0, end=invoke + 100, error=error)
            for at, records in batches:
                seqs = array("q", [s for s, _ in records])
                seg.batches.append(Batch(at, seqs, array("q", seqs), [k for _, k in records], None))
            f.segments.append(seg)
        self.h.follows.append(f)
        return f


def at(a: Append, pos: int | None = None) -> list[tuple[int, bytes]]:
    """The records of ``a`` placed from ``pos`` (its ack's start by default)."""
    if pos is None:
        assert a.ack is not None
        pos = a.ack.start
    return [(pos + i, k) for i, k in enumerate(a.keys)]


def flagged(result: Result, prop: str, *needles: str) -> str:
    """Assert ``prop`` was flagged with a message containing every needle; returns it."""
    assert prop in result.counts, f"{prop} not flagged: {result.summary()}"
    for v in result.violations:
        if v.prop == prop and all(n in v.message for n in needles):
            return v.message
    raise AssertionError(f"no {prop} message with {needles}: {result.summary()}")


def clean_history() -> tuple[Builder, dict[str, Any]]:
    """A small history that keeps every rule: appends with and without conditions, a fence,
    a trim that becomes visible, reads, a read session across a restart, a read-back."""
    b = Builder()
    a1 = b.append(2, invoke=1, complete=2, at=0)
    a2 = b.append(1, invoke=3, complete=6, at=2, match_seq_num=2)
    f = b.append(1, fence="tok", invoke=4, complete=7, at=3, fencing_token="")
    a3 = b.append(1, invoke=8, complete=9, at=5, fencing_token="tok")
    t = b.append(1, trim=4, invoke=10, complete=11, at=6)
    stale = b.append(1, invoke=12, complete=13, outcome=FAIL, fencing_token="", expected="tok")
    old = b.append(1, invoke=14, complete=15, outcome=FAIL, match_seq_num=3, expected=8)
    everything = at(a1) + at(a2) + at(f) + at(a3) + at(t)
    b.read(everything, invoke=16, complete=17)
    b.read(everything[4:], invoke=18, complete=19, start=("seq", 0))  # the trim is visible
    b.read(everything[6:], invoke=20, complete=21, start=("ts", 6), count=2)
    b.read(everything[4:6], invoke=22, complete=23, start=("tail_offset", 4), count=2)
    b.tail(8, invoke=24, complete=25)
    b.follow(
        [
            (1, [(5, everything[:3]), (9, everything[3:5])], "ConnectionLost: restart"),
            (17, [(18, everything[5:])], ""),
        ]
    )
    b.read(everything[4:], invoke=30, complete=31, start=("seq", 0), kind="final")
    b.tail(8, invoke=32, complete=33, kind="final_tail")
    return b, {"a1": a1, "a2": a2, "fence": f, "a3": a3, "trim": t, "stale": stale, "old": old}


# --- hand-made histories ---------------------------------------------------------------------


def test_a_clean_history_passes() -> None:
    b, _ = clean_history()
    b.h.follows[0].segments[0].error = ""  # a stop is a liveness finding; tested below
    result = check(b.h)
    assert result.ok, result.summary()
    assert result.stats["fence checks"] == 2
    assert result.stats["floors observed"] >= 1


def test_unsubmitted_record() -> None:
    b = Builder()
    b.read([(0, b"77.0.")], invoke=1, complete=2)
    flagged(check(b.h), "unsubmitted", "'77.0.'", "seq_num 0")


def test_record_read_before_its_append() -> None:
    b = Builder()
    a = b.append(invoke=5, complete=6, at=0)
    b.read(at(a), invoke=1, complete=2)
    flagged(check(b.h), "premature", f"append #{a.id}", "before")


def test_reads_disagreeing() -> None:
    b = Builder()
    a = b.append(invoke=1, complete=2, at=0)
    c = b.append(invoke=1, complete=2, outcome=INFO)
    b.read(at(a), invoke=3, complete=4)
    b.read(at(c, 0), invoke=5, complete=6)
    flagged(check(b.h), "disagree", "seq_num 0")
    b2 = Builder()
    a = b2.append(invoke=1, complete=2, at=0)
    b2.read(at(a), invoke=3, complete=4)
    b2.read(at(a), invoke=5, complete=6, timestamps=[7])
    flagged(check(b2.h), "disagree", "timestamp 7")


def test_timestamps_going_back() -> None:
    b = Builder()
    a = b.append(2, invoke=1, complete=2, at=0)
    b.read(at(a), invoke=3, complete=4, timestamps=[5, 4])
    flagged(check(b.h), "timestamps", "below")


def test_ack_not_matching_the_log() -> None:
    b = Builder()
    a = b.append(invoke=1, complete=2, at=0)
    c = b.append(invoke=1, complete=3, outcome=INFO)
    b.read(at(c, 0), invoke=4, complete=5)
    flagged(check(b.h), "ack", f"append #{a.id}", "acked at [0, 1)")
    b2 = Builder()
    b2.append(2, invoke=1, complete=2, at=0)
    b2.append(1, invoke=1, complete=3, at=1)
    flagged(check(b2.h), "ack", "two acks for one position")


def test_lost_acked_record() -> None:
    b = Builder()
    a = b.append(invoke=1, complete=2, at=0)
    c = b.append(invoke=3, complete=4, at=1)
    b.read(at(c), invoke=5, complete=6, start=("seq", 0), kind="final")
    flagged(check(b.h), "lost", "skipped seq_nums [0, 1)", f"append #{a.id}")
    b2 = Builder()
    b2.append(invoke=1, complete=2, at=0, tail=1)
    b2.tail(0, invoke=3, complete=4, kind="final_tail")
    flagged(check(b2.h), "lost", "final tail is 0")
    b3 = Builder()  # the read-back stops short of the tail it was given
    a = b3.append(invoke=1, complete=2, at=0)
    c = b3.append(invoke=3, complete=4, at=1)
    b3.tail(2, invoke=5, complete=6, kind="final_tail")
    b3.read(at(a), invoke=7, complete=8, start=("seq", 0), kind="final")
    flagged(check(b3.h), "lost", "skipped seq_nums [1, 2)", f"append #{c.id}")


def test_definite_failure_visible() -> None:
    b = Builder()
    a = b.append(invoke=1, complete=2, outcome=FAIL, error="ServerError: 429 rate_limited")
    b.read(at(a, 0), invoke=3, complete=4)
    flagged(check(b.h), "definite-visible", f"append #{a.id}", "rate_limited")


def test_duplicates_under_nse_and_match_seq_num() -> None:
    b = Builder()
    a = b.append(invoke=1, complete=2, outcome=INFO, policy=NSE)
    c = b.append(invoke=1, complete=2, outcome=INFO, policy=ALL)
    b.read(at(a, 0) + at(c, 1) + at(a, 2) + at(c, 3), invoke=3, complete=4)
    result = check(b.h)
    flagged(result, "duplicate", f"append #{a.id}", "2 times")
    assert result.counts["duplicate"] == 1, "ALL without match_seq_num may land twice"
    b2 = Builder()
    m = b2.append(invoke=1, complete=2, outcome=INFO, policy=ALL, match_seq_num=0)
    b2.read(at(m, 0) + at(m, 1), invoke=3, complete=4)
    flagged(check(b2.h), "duplicate", "match_seq_num=0")


def test_torn_append() -> None:
    b = Builder()
    a = b.append(2, invoke=1, complete=2, outcome=INFO)
    c = b.append(1, invoke=1, complete=2, outcome=INFO)
    b.read([(0, a.keys[0]), (1, c.keys[0]), (2, a.keys[1])], invoke=3, complete=4)
    flagged(check(b.h), "torn", f"append #{a.id}", "seq_num 1")


def test_inputs_out_of_order() -> None:
    b = Builder()
    first = b.append(invoke=1, complete=5, at=1, via=SESSION, group="g", index=0)
    second = b.append(invoke=2, complete=5, at=0, via=SESSION, group="g", index=1)
    b.read(at(second) + at(first), invoke=6, complete=7)
    flagged(check(b.h), "order", "in g", f"append #{second.id}")


def test_match_seq_num_violated() -> None:
    b = Builder()
    a = b.append(invoke=1, complete=2, at=1, match_seq_num=0)
    flagged(check(b.h), "match", f"append #{a.id}", "not at its match_seq_num")
    b2 = Builder()
    b2.append(invoke=1, complete=2, outcome=FAIL, match_seq_num=3, expected=3)
    flagged(check(b2.h), "match", "naming its own match_seq_num")


def test_stale_fencing_token() -> None:
    b = Builder()
    f = b.append(fence="new", invoke=1, complete=2, at=0)
    a = b.append(invoke=3, complete=4, at=2, fencing_token="old")
    b.read(at(f), invoke=5, complete=6)
    flagged(check(b.h), "fence", f"append #{a.id}", "'new'", "stale")
    b2 = Builder()
    b2.append(invoke=1, complete=2, outcome=FAIL, fencing_token="x", expected="never-set")
    flagged(check(b2.h), "fence", "'never-set'")


def test_fence_unknown_position_is_unverified_not_flagged() -> None:
    b = Builder()
    f = b.append(fence="new", invoke=1, complete=2, at=0)
    b.append(invoke=3, complete=4, outcome=INFO)  # may hold a fence; nobody saw it
    a = b.append(invoke=5, complete=6, at=3, fencing_token="other")
    b.read([*at(f), (3, a.keys[0])], invoke=7, complete=8, start=("seq", 0))
    result = check(b.h)
    assert "fence" not in result.counts, result.summary()
    assert result.stats["fence checks unverified"] == 1


def test_ack_out_of_real_time_order() -> None:
    b = Builder()
    early = b.append(invoke=1, complete=2, at=1)
    late = b.append(invoke=3, complete=4, at=0)
    flagged(check(b.h), "realtime", f"append #{late.id}", f"append #{early.id}")


def test_tail_going_back() -> None:
    b = Builder()
    b.tail(5, invoke=1, complete=2)
    b.tail(3, invoke=3, complete=4)
    flagged(check(b.h), "tail-back", "returned 3", "tail at 5")
    b2 = Builder()
    a = b2.append(2, invoke=1, complete=2, at=0)
    b2.read(at(a)[:1], invoke=3, complete=4, count=10)  # reached the tail at 1 < 2
    flagged(check(b2.h), "tail-back", "reached the tail at 1")
    b3 = Builder()
    b3.tail(5, invoke=1, complete=2)
    b3.tail(3, invoke=1, complete=4)  # concurrent: either order is possible
    assert check(b3.h).ok


def test_skip_no_trim_explains() -> None:
    b = Builder()
    a = b.append(3, invoke=1, complete=2, outcome=INFO)
    b.read([(0, a.keys[0]), (2, a.keys[2])], invoke=3, complete=4)
    flagged(check(b.h), "gap", "skipped seq_nums [1, 2)", "no trim")
    b2 = Builder()
    t = b2.append(1, trim=2, invoke=1, complete=2, at=0)
    a = b2.append(1, invoke=1, complete=2, at=2)
    b2.read(at(a), invoke=3, complete=4, start=("seq", 0))
    assert check(b2.h).ok, "a trim invoked before the read explains the skip"
    b3 = Builder()
    t = b3.append(1, trim=5, invoke=1, complete=2, at=0)
    a = b3.append(3, invoke=1, complete=2, at=2)
    b3.read(at(a)[2:], invoke=3, complete=4, start=("seq", 0))
    flagged(check(b3.h), "gap", "reach only 2", f"append #{t.id}")


def test_read_session_repeat() -> None:
    b = Builder()
    a = b.append(3, invoke=1, complete=2, at=0)
    records = at(a)
    b.follow([(1, [(3, records[:2]), (4, records[1:])], "")])
    flagged(check(b.h), "repeat", "read session", "seq_num 1 where 2 was next")


def test_trimmed_record_reappearing() -> None:
    b = Builder()
    t = b.append(1, trim=2, invoke=1, complete=2, at=0)
    a = b.append(1, invoke=1, complete=2, at=2)
    seer = b.read(at(a), invoke=3, complete=4, start=("seq", 0))
    again = b.read(at(t) + at(a), invoke=5, complete=6, start=("seq", 0))
    flagged(check(b.h), "trim-reappear", f"read #{again.id}", f"read #{seer.id}", "floor 2")
    b2 = Builder()
    t = b2.append(1, trim=2, invoke=1, complete=2, at=0)
    a = b2.append(1, invoke=1, complete=2, at=2)
    b2.read(at(a), invoke=3, complete=6, start=("seq", 0))
    b2.read(at(t) + at(a), invoke=5, complete=7, start=("seq", 0))  # concurrent: fine
    assert check(b2.h).ok


def test_protocol_error() -> None:
    b = Builder()
    b.append(
        invoke=1,
        complete=2,
        outcome=INFO,
        error="RemoteProtocolError: HTTP/1.1 protocol error",
        error_type="ProtocolError:RemoteProtocolError",
    )
    flagged(check(b.h), "protocol-error", "HTTP/1.1 protocol error")


def test_read_session_stopped() -> None:
    b, _ = clean_history()
    flagged(check(b.h), "read-stopped", "stopped after 5 records", "ConnectionLost")


PROPERTY_TESTS: dict[str, Callable[[], None]] = {
    "unsubmitted": test_unsubmitted_record,
    "premature": test_record_read_before_its_append,
    "disagree": test_reads_disagreeing,
    "timestamps": test_timestamps_going_back,
    "ack": test_ack_not_matching_the_log,
    "lost": test_lost_acked_record,
    "definite-visible": test_definite_failure_visible,
    "duplicate": test_duplicates_under_nse_and_match_seq_num,
    "torn": test_torn_append,
    "order": test_inputs_out_of_order,
    "match": test_match_seq_num_violated,
    "fence": test_stale_fencing_token,
    "realtime": test_ack_out_of_real_time_order,
    "tail-back": test_tail_going_back,
    "gap": test_skip_no_trim_explains,
    "repeat": test_read_session_repeat,
    "trim-reappear": test_trimmed_record_reappearing,
    "protocol-error": test_protocol_error,
    "read-stopped": test_read_session_stopped,
}


def test_every_property_has_a_test() -> None:
    assert list(PROPERTY_TESTS) == list(PROPERTIES)


# --- a real history, corrupted ---------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> History:
    """A short plain run's history (recorded once for this module)."""
    plan = Plan(seed=20261221, seconds=3.0, bulk_trim_every=5_000)
    run = asyncio.run(run_phase(PHASES["plain"], plan, tmp_path_factory.mktemp("real")))
    assert run.result.ok, run.result.summary()
    return run.history


def clone(h: History) -> History:
    """A copy whose lists can be changed; objects are replaced, never changed in place."""
    return History(appends=list(h.appends), reads=list(h.reads), follows=list(h.follows))


def swap(items: list[Any], old: Any, new: Any) -> None:
    items[next(i for i, x in enumerate(items) if x is old)] = new


def edit_read(h: History, r: Read, records: list[tuple[int, int, bytes]]) -> Read:
    new = dataclasses.replace(
        r,
        seqs=array("q", [s for s, _, _ in records]),
        timestamps=array("q", [t for _, t, _ in records]),
        keys=[k for _, _, k in records],
    )
    swap(h.reads, r, new)
    return new


def rows(seqs: array[int], tss: array[int], keys: list[bytes]) -> list[tuple[int, int, bytes]]:
    return list(zip(seqs, tss, keys, strict=True))


def edit_batch(
    h: History, f: Follow, seg: Segment, batch: Batch, records: list[tuple[int, int, bytes]]
) -> None:
    nb = dataclasses.replace(
        batch,
        seqs=array("q", [s for s, _, _ in records]),
        timestamps=array("q", [t for _, t, _ in records]),
        keys=[k for _, _, k in records],
    )
    batches = list(seg.batches)
    swap(batches, batch, nb)
    nseg = dataclasses.replace(seg, batches=batches)
    segments = list(f.segments)
    swap(segments, seg, nseg)
    swap(h.follows, f, dataclasses.replace(f, segments=segments))


def edit_append(h: History, a: Append, **changes: Any) -> Append:
    new = dataclasses.replace(a, **changes)
    swap(h.appends, a, new)
    return new


def observed(h: History, stream: str) -> dict[int, tuple[int, bytes]]:
    log: dict[int, tuple[int, bytes]] = {}
    for r in h.reads:
        if r.stream == stream:
            for s, t, k in rows(r.seqs, r.timestamps, r.keys):
                log[s] = (t, k)
    for f in h.follows:
        if f.stream == stream:
            for seg in f.segments:
                for b in seg.batches:
                    for s, t, k in rows(b.seqs, b.timestamps, b.keys):
                        log[s] = (t, k)
    return log


def trim_reach(h: History, stream: str, before: int | None = None) -> int:
    """An upper bound of the trim points the trims of ``stream`` (invoked before ``before``)
    can have reached."""
    top = 0
    for a in h.appends:
        if a.stream != stream or a.outcome == FAIL:
            continue
        if before is not None and a.invoke >= before:
            continue
        for i, k in enumerate(a.keys):
            if k.startswith(b"!trim:"):
                point = struct.unpack(">Q", k[6:])[0]
                if a.ack is not None:
                    point = min(point, a.ack.start + i + 1)
                top = max(top, point)
    return top


def final_reads(h: History, stream: str) -> list[Read]:
    return [r for r in h.reads if r.stream == stream and r.kind == "final"]


def corrupt_lost(h: History) -> str:
    """Remove an acked record from everything that read it (the stream lost it). It is one
    beyond every trim, on whichever stream has the most records after its last trim."""
    best: tuple[int, Append] | None = None
    for stream in sorted({a.stream for a in h.appends}):
        reach = trim_reach(h, stream)
        seen = observed(h, stream)
        for a in reversed(h.appends):
            ack = a.ack
            if a.stream == stream and a.outcome == OK and ack and ack.start in seen:
                if ack.start > reach and (best is None or ack.start - reach > best[0]):
                    best = (ack.start - reach, a)
                break
    assert best is not None, "no acked record beyond every trim"
    a = best[1]
    assert a.ack is not None
    pos, stream = a.ack.start, a.stream
    for r in list(h.reads):
        if r.stream == stream and pos in r.seqs:
            edit_read(h, r, [x for x in rows(r.seqs, r.timestamps, r.keys) if x[0] != pos])
    for f in list(h.follows):
        if f.stream == stream:
            for seg in f.segments:
                for b in seg.batches:
                    if pos in b.seqs:
                        kept = [x for x in rows(b.seqs, b.timestamps, b.keys) if x[0] != pos]
                        edit_batch(h, f, seg, b, kept)
                        f = next(x for x in h.follows if x.id == f.id)
    return f"append #{a.id}"


def corrupt_reappear(h: History) -> str:
    """A record below a floor some read had observed comes back in the read-back."""
    seer = next(
        r
        for r in h.reads
        if r.kind == "read"
        and r.outcome == OK
        and r.start is not None
        and r.start[0] == "seq"
        and r.seqs
        and r.seqs[0] > r.start[1]
        and r.stream.startswith("shared")
    )
    seen = observed(h, seer.stream)
    below = max(p for p in seen if p < seer.seqs[0])
    final = final_reads(h, seer.stream)[0]
    ts, key = seen[below]
    edit_read(h, final, [(below, ts, key), *rows(final.seqs, final.timestamps, final.keys)])
    return f"returned seq_num {below}, below the trim floor"


def corrupt_duplicate(h: History) -> str:
    """An acked NO_SIDE_EFFECTS append shows up a second time at the end of the stream."""
    a = next(
        a
        for a in reversed(h.appends)
        if a.stream == "shared-0" and a.outcome == OK and a.policy == NSE and a.via == UNARY
    )
    final = final_reads(h, "shared-0")[-1]
    tail, ts = final.seqs[-1] + 1, final.timestamps[-1]
    extra = [(tail + i, ts, k) for i, k in enumerate(a.keys)]
    edit_read(h, final, [*rows(final.seqs, final.timestamps, final.keys), *extra])
    return f"append #{a.id}"


def corrupt_definite(h: History) -> str:
    """An append that landed is reported as failed without side effects."""
    seen = {k for _, k in observed(h, "shared-1").values()}
    a = next(
        a
        for a in h.appends
        if a.stream == "shared-1" and a.outcome == OK and a.via == UNARY and a.keys[0] in seen
    )
    edit_append(h, a, outcome=FAIL, ack=None, error="ServerError: 429 rate_limited (corrupted)")
    return f"append #{a.id}"


def corrupt_stale_fence(h: History) -> str:
    """A fenced append that succeeded is recorded as sent with a token no longer in force."""
    for stream in ("shared-0", "shared-1"):
        seen = observed(h, stream)
        for a in h.appends:
            if a.stream != stream or a.outcome != OK or not a.fencing_token or a.ack is None:
                continue
            pos = a.ack.start - 1  # every position back to the last fence was read
            while pos >= 0 and pos in seen and not seen[pos][1].startswith(b"!fence:"):
                pos -= 1
            if pos >= 0 and pos in seen:
                edit_append(h, a, fencing_token="")
                return f"append #{a.id}"
    raise AssertionError("no verifiable fenced append in the real history")


def corrupt_match(h: History) -> str:
    """An append with match_seq_num landed one position off."""
    a = next(a for a in h.appends if a.outcome == OK and a.match_seq_num is not None and a.ack)
    assert a.match_seq_num is not None
    edit_append(h, a, match_seq_num=a.match_seq_num + 1)
    return f"append #{a.id}"


def corrupt_tail(h: History) -> str:
    """The last check_tail reports an empty stream."""
    r = next(
        r
        for r in reversed(h.reads)
        if r.kind == "check_tail" and r.outcome == OK and r.stream == "shared-0" and r.tail
    )
    swap(h.reads, r, dataclasses.replace(r, tail=0))
    return f"check_tail #{r.id}"


def corrupt_disagree(h: History) -> str:
    """A read returns two of its records swapped."""
    r = next(
        r
        for r in reversed(h.reads)
        if r.kind == "read" and r.outcome == OK and len(r.seqs) >= 2 and r.stream == "shared-0"
    )
    records = rows(r.seqs, r.timestamps, r.keys)
    (s0, t0, k0), (s1, t1, k1) = records[:2]
    edit_read(h, r, [(s0, t0, k1), (s1, t1, k0), *records[2:]])
    return f"seq_num {s0}"


def _batch(h: History, stream: str, size: int) -> tuple[Follow, Segment, Batch]:
    """A read-session batch of at least ``size`` records, above every trim invoked before
    it arrived."""
    return next(
        (f, seg, b)
        for f in h.follows
        if f.stream == stream
        for seg in f.segments
        for b in seg.batches
        if len(b.seqs) >= size and b.seqs[0] > trim_reach(h, stream, before=b.at)
    )


def corrupt_gap(h: History) -> str:
    """A read session skips a record in the middle of a batch."""
    f, seg, b = _batch(h, "exclusive", 3)
    records = rows(b.seqs, b.timestamps, b.keys)
    edit_batch(h, f, seg, b, [records[0], *records[2:]])
    return f"read session chain #{f.id}"


def corrupt_repeat(h: History) -> str:
    """A read session delivers a record twice."""
    f, seg, b = _batch(h, "shared-1", 2)
    records = rows(b.seqs, b.timestamps, b.keys)
    edit_batch(h, f, seg, b, [*records, records[-1]])
    return f"read session chain #{f.id}"


def corrupt_realtime(h: History) -> str:
    """An append recorded as invoked after a later one's ack, yet it landed below it."""
    acked = sorted(
        (a for a in h.appends if a.stream == "shared-0" and a.outcome == OK and a.ack),
        key=lambda a: a.ack.start if a.ack else 0,
    )
    low, high = acked[len(acked) // 2], acked[len(acked) // 2 + 1]
    assert high.complete is not None
    edit_append(h, low, invoke=high.complete + 1, complete=high.complete + 2)
    return f"append #{low.id}"


def corrupt_unsubmitted(h: History) -> str:
    """A read returns a record nobody wrote."""
    r = next(r for r in h.reads if r.kind == "read" and r.outcome == OK and r.seqs)
    records = rows(r.seqs, r.timestamps, r.keys)
    s, t, _ = records[0]
    edit_read(h, r, [(s, t, b"999999999.0.forged"), *records[1:]])
    return "'999999999.0.forged'"


CORRUPTIONS: dict[str, tuple[Callable[[History], str], str]] = {
    "a lost record": (corrupt_lost, "lost"),
    "a reappearing (trimmed) record": (corrupt_reappear, "trim-reappear"),
    "a duplicate under NO_SIDE_EFFECTS": (corrupt_duplicate, "duplicate"),
    "a definite failure that is visible": (corrupt_definite, "definite-visible"),
    "a stale fence that succeeded": (corrupt_stale_fence, "fence"),
    "a match_seq_num violated": (corrupt_match, "match"),
    "a backwards tail": (corrupt_tail, "tail-back"),
    "two reads disagreeing on a position": (corrupt_disagree, "disagree"),
    "a read session with a gap": (corrupt_gap, "gap"),
    "a read session with a repeat": (corrupt_repeat, "repeat"),
    "an ack out of real-time order": (corrupt_realtime, "realtime"),
    "a record nobody submitted": (corrupt_unsubmitted, "unsubmitted"),
}


def test_the_real_history_is_rich_enough(real: History) -> None:
    result = check(real)
    assert result.ok, result.summary()
    stats = result.stats
    assert stats["floors observed"] > 0
    assert stats["fence checks"] > 0
    assert stats["appends ok"] > 1000
    assert stats["read session batches"] > 0


@pytest.mark.parametrize("what", list(CORRUPTIONS))
def test_a_corrupted_real_history_is_flagged(real: History, what: str) -> None:
    corrupt, prop = CORRUPTIONS[what]
    h = clone(real)
    needle = corrupt(h)
    message = flagged(check(h), prop, needle)
    assert len(message) < 2000
    assert check(real).ok, "the corruption leaked into the original history"
