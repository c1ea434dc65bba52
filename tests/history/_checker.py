"""The history checker: a recorded history (``_history.py``) held to a sequential log model.

The model
---------
Each stream is a log: positions 0, 1, 2, ... each holding one record and its timestamp,
forever, and two registers that command records change in log order: the *fencing token*
(initially ``""``) and the *trim point* (initially 0). An append applies atomically or not at
all: its records take consecutive positions from the tail, and only if its conditions hold
against the state just before it (``fencing_token`` equal to the token in force,
``match_seq_num`` equal to the tail). A fence record sets the token; a trim record at
position ``t`` asking for ``R`` moves the trim point to ``max(point, min(R, t + 1))`` (a trim
never trims past itself). Positions below the trim point become unreadable, but lite removes
them asynchronously, so a trim takes effect for readers at some moment after it was applied:
it is *visible* once a read has *observed the floor*, i.e. skipped positions below it.

Nothing in the history is the log itself: the checker rebuilds what it can see of it from
every record every read returned (unary reads, read sessions, the final read-back) and every
ack, then checks each operation against it. Positions never observed (trimmed before any
read reached them) are simply unknown; a property that would need one is counted as
unverified, never guessed.

Real time: ``a.complete < b.invoke`` means ``a`` ended before ``b`` began (``_history.py``).
An ack proves the append was applied (and durable) before the ack was stamped; an invocation
proves nothing was applied before it. Indefinite and failed calls prove neither: a request
the client gave up on may still be applied later.

The properties (each violation is reported under one of these names)
---------------------------------------------------------------------
Records and positions:

* ``unsubmitted``: a read returned a record that no append of that stream submitted.
* ``premature``: a read returned a record before the append carrying it was invoked.
* ``disagree``: two reads (or a read and the first reader of that position) returned
  different records, or different timestamps, at one position.
* ``timestamps``: timestamps decrease along the log, an ack's timestamps differ from its
  records', or a timestamp read returned a record older than its start.

Appends (``copies`` of an append: the places where its records appear, whole):

* ``ack``: an acked append's ack does not cover exactly its records (``end - start`` is not
  its record count, the tail before its end), or a position in its range holds another
  record.
* ``lost``: an acked record is not on the stream at the end: beyond the final tail, or
  skipped by the final read-back although no trim can have removed it.
* ``definite-visible``: an append that failed with ``has_no_side_effects`` is in the log.
* ``duplicate``: an append is in the log more than once under NO_SIDE_EFFECTS, or with
  ``match_seq_num`` under any policy (an indefinite one may be there at most once; under ALL
  without ``match_seq_num`` any number of copies is allowed, each whole).
* ``torn``: an append's records are not consecutive and in order at one of its copies.
* ``order``: inputs of one append session or producer landed out of submission order
  (first copies compared).
* ``match``: an append with ``match_seq_num`` landed elsewhere than at it, or a 412 named
  the very seq_num the append asked for.
* ``fence``: an append carrying ``fencing_token`` landed where another token was in force
  (a stale fence that succeeded), or a 412 named a token no fence ever set.

Real time:

* ``realtime``: an append landed below the end of an append acked before it was invoked.
* ``tail-back``: the tail went back: a check_tail, an ack's tail, a 416 or 412's tail, a
  unary read that reached the tail, a read session's tail, or a tail-offset read's start is
  below a tail proven earlier (by any of those, or by a record some read had returned).
  So reads and check_tail after an ack see it, and the tail never goes back, across
  restarts.

Reads and trims:

* ``gap``: a read or a read session (across reconnects and restarts) skipped positions that
  no trim invoked before it can have removed (``lost`` when the final read-back skips acked
  records).
* ``repeat``: a read session delivered a position again, or went backwards.
* ``trim-reappear``: a read invoked after some read had observed the floor at ``q`` returned
  a record below ``q`` (a visible trim stays visible, across restarts too).

Liveness of the SDK (lite is honest and the proxy's faults are truthful):

* ``protocol-error``: an operation failed with a protocol error (a dropped connection must
  surface as a transport error, which is retried).
* ``read-stopped``: a read session stopped with an error although it retries indefinitely.
"""

from __future__ import annotations

import bisect
import itertools
import struct
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._history import (
    FAIL,
    INFO,
    MAX_RECORD_METERED,
    NSE,
    OK,
    Append,
    Follow,
    Read,
    Segment,
    parse_body,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._history import History

PROPERTIES = (
    "unsubmitted",
    "premature",
    "disagree",
    "timestamps",
    "ack",
    "lost",
    "definite-visible",
    "duplicate",
    "torn",
    "order",
    "match",
    "fence",
    "realtime",
    "tail-back",
    "gap",
    "repeat",
    "trim-reappear",
    "protocol-error",
    "read-stopped",
)
MESSAGES_PER_PROPERTY = 20
UNARY_CAP = 1000
TRIM = b"!trim:"
FENCE = b"!fence:"

Source = Append | Read | Follow


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken property, with a message that says where and how."""

    prop: str
    stream: str
    message: str

    def __str__(self) -> str:
        return f"[{self.prop}] {self.stream}: {self.message}"


@dataclass
class Result:
    """Every violation (messages capped per property, counts complete) and what was checked."""

    violations: list[Violation] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    stats: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.counts

    def flagged(self) -> set[str]:
        """The properties with at least one violation."""
        return set(self.counts)

    def summary(self, limit: int = 40) -> str:
        lines = [f"{sum(self.counts.values())} violations: {dict(self.counts)}"]
        lines += [str(v) for v in self.violations[:limit]]
        return "\n".join(lines)


def _desc(src: object) -> str:
    describe = getattr(src, "describe", None)
    return describe() if describe is not None else repr(src)


def _key(k: bytes) -> str:
    if k.startswith(TRIM) and len(k) == len(TRIM) + 8:
        return f"trim({struct.unpack('>Q', k[len(TRIM) :])[0]})"
    if k.startswith(FENCE):
        return f"fence({k[len(FENCE) :].decode(errors='replace')!r})"
    text = k[:24].decode(errors="replace").rstrip("~")
    return f"record {text!r}"


def _contiguous(seqs: array[int]) -> bool:
    n = len(seqs)
    return n == 0 or seqs == array("q", range(seqs[0], seqs[0] + n))


@dataclass(slots=True)
class _Floor:
    """A read skipped ``[start, q)`` (so the trim point was at least ``q``) at time ``at``."""

    at: int
    start: int
    q: int
    src: Source


@dataclass(slots=True)
class _Stream:
    name: str
    log: dict[int, bytes] = field(default_factory=dict)
    ts: dict[int, int] = field(default_factory=dict)
    seen_at: dict[int, int] = field(default_factory=dict)
    seen_by: dict[int, Source] = field(default_factory=dict)
    extra: list[tuple[int, bytes, int, Source]] = field(default_factory=list)
    ranges: list[tuple[int, int, Append]] = field(default_factory=list)
    """The acked appends' ``[start, end)``, sorted."""
    range_starts: list[int] = field(default_factory=list)
    floors: list[_Floor] = field(default_factory=list)
    visible: list[_Floor] = field(default_factory=list)
    """The floors that trims explain: the trims that had become visible."""
    mins: list[tuple[int, int, Source]] = field(default_factory=list)
    bounds: list[tuple[int, int, Source]] = field(default_factory=list)
    checks: list[tuple[int, int, Source, str]] = field(default_factory=list)
    appends: list[Append] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    follows: list[Follow] = field(default_factory=list)
    trim_keys: set[bytes] = field(default_factory=set)
    copies: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    final_tail: int | None = None

    def acked_at(self, pos: int) -> Append | None:
        """The acked append whose range covers ``pos``, if any."""
        i = bisect.bisect_right(self.range_starts, pos) - 1
        if i >= 0:
            _, end, a = self.ranges[i]
            if pos < end:
                return a
        return None

    def known(self, pos: int) -> bytes | None:
        """The record at ``pos``: as read, else as acked, else unknown."""
        k = self.log.get(pos)
        if k is None:
            a = self.acked_at(pos)
            if a is not None and a.ack is not None:
                k = a.keys[pos - a.ack.start]
        return k


class Checker:
    """Checks one history; :func:`check` is the entry point."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.result = Result()
        self.commands: dict[bytes, tuple[Append, int]] = {}
        self.by_id: dict[int, Append] = {}
        self.streams: dict[str, _Stream] = {}

    # -- reporting -------------------------------------------------------------------------

    def flag(self, prop: str, stream: str, message: str) -> None:
        assert prop in PROPERTIES, prop
        self.result.counts[prop] += 1
        if self.result.counts[prop] <= MESSAGES_PER_PROPERTY:
            self.result.violations.append(Violation(prop, stream, message))

    def stat(self, name: str, n: int = 1) -> None:
        self.result.stats[name] += n

    def stream(self, name: str) -> _Stream:
        st = self.streams.get(name)
        if st is None:
            st = self.streams[name] = _Stream(name)
        return st

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> Result:
        h = self.history
        for a in h.appends:
            st = self.stream(a.stream)
            st.appends.append(a)
            if a.id in self.by_id:
                raise ValueError(f"history: two appends with id {a.id}")
            self.by_id[a.id] = a
            for i, k in enumerate(a.keys):
                if k.startswith(TRIM):
                    st.trim_keys.add(k)
                elif k.startswith(b"!"):
                    if k in self.commands:
                        raise ValueError(f"history: command {k!r} submitted twice")
                    self.commands[k] = (a, i)
        for r in h.reads:
            self.stream(r.stream).reads.append(r)
        for f in h.follows:
            self.stream(f.stream).follows.append(f)
        for st in self.streams.values():
            self.check_stream(st)
        self.check_liveness()
        return self.result

    def check_stream(self, st: _Stream) -> None:
        for r in st.reads:
            self.observe_read(st, r)
        for f in st.follows:
            self.observe_follow(st, f)
        self.observe_read_back(st)
        self.observe_acks(st)
        if self.check_timestamps(st):
            positions = sorted(st.ts)
            stamps = [st.ts[p] for p in positions]
            for r in st.reads:
                if r.start is not None and r.start[0] == "ts" and r.outcome == OK and r.seqs:
                    self.timestamp_start(st, r, positions, stamps)
        self.attribute(st)
        trims = self.trim_points(st)
        self.check_floors(st, trims)
        self.check_reappear(st)
        self.check_appends(st)
        self.check_tails(st)
        self.check_realtime(st)
        self.check_fences(st)
        self.stat("positions observed", len(st.log))

    # -- observations ----------------------------------------------------------------------

    def observe(
        self, st: _Stream, seqs: array[int], tss: array[int], keys: list[bytes], t: int, src: Source
    ) -> None:
        """Record what a read returned at each position; flag disagreements."""
        log, lts, seen_at, seen_by = st.log, st.ts, st.seen_at, st.seen_by
        self.stat("records observed", len(seqs))
        for seq, ts, key in zip(seqs, tss, keys, strict=True):
            prev = log.get(seq)
            if prev is None:
                log[seq] = key
                lts[seq] = ts
                seen_at[seq] = t
                seen_by[seq] = src
            elif (prev is not key and prev != key) or lts[seq] != ts:
                first = seen_by[seq]
                self.flag(
                    "disagree",
                    st.name,
                    f"seq_num {seq}: {_desc(first)} returned {_key(prev)} (timestamp "
                    f"{lts[seq]}), {_desc(src)} returned {_key(key)} (timestamp {ts})",
                )
                st.extra.append((seq, key, t, src))
            elif t < seen_at[seq]:
                seen_at[seq] = t
                seen_by[seq] = src

    def scan(
        self,
        st: _Stream,
        expected: int,
        seqs: array[int],
        at: int,
        src: Source,
        *,
        session: bool,
    ) -> int:
        """Walk the seq_nums a read delivered from ``expected``: a jump forward is a floor
        observation (checked against the trims later), a step back a repeat. Returns the next
        expected seq_num."""
        if not seqs:
            return expected
        if seqs[0] == expected and _contiguous(seqs):
            return seqs[-1] + 1
        for seq in seqs:
            if seq > expected:
                st.floors.append(_Floor(at, expected, seq, src))
            elif seq < expected:
                what = "read session" if session else "read"
                self.flag(
                    "repeat",
                    st.name,
                    f"{_desc(src)}: the {what} delivered seq_num {seq} where {expected} was "
                    "next (a repeat, or going backwards)",
                )
                continue
            expected = seq + 1
        return expected

    def observe_read(self, st: _Stream, r: Read) -> None:
        if r.kind in ("check_tail", "final_tail"):
            if r.outcome == OK and r.tail is not None:
                self.stat("check_tail")
                st.bounds.append((r.complete or 0, r.tail, r))
                st.checks.append((r.invoke, r.tail, r, "check_tail returned"))
                if r.kind == "final_tail":
                    st.final_tail = r.tail
            return
        if r.outcome != OK:
            if r.tail is not None and r.complete is not None:  # a 416 names the tail
                st.bounds.append((r.complete, r.tail, r))
                st.checks.append((r.invoke, r.tail, r, "its 416 reported the tail"))
            return
        assert r.complete is not None
        assert r.start is not None
        self.stat("reads")
        seqs = r.seqs
        self.observe(st, seqs, r.timestamps, r.keys, r.complete, r)
        kind, value = r.start
        if not seqs:
            roomy = r.max_bytes is None or r.max_bytes >= MAX_RECORD_METERED
            if kind == "seq" and roomy:
                # 200 with nothing: the start was below the tail (else 416) and every
                # position from it up to the tail had been trimmed.
                st.floors.append(_Floor(r.complete, value, value + 1, r))
            return
        st.mins.append((r.invoke, min(seqs), r))
        last = seqs[-1]
        st.bounds.append((r.complete, last + 1, r))
        if kind == "seq":
            self.scan(st, value, seqs, r.complete, r, session=False)
            cap = min(UNARY_CAP, r.count if r.count is not None else UNARY_CAP)
            room = r.max_bytes is None or r.metered + MAX_RECORD_METERED <= r.max_bytes
            if len(seqs) < cap and room:
                st.checks.append((r.invoke, last + 1, r, "reached the tail at"))
        else:
            self.scan(st, seqs[0], seqs, r.complete, r, session=False)
            if kind == "tail_offset":
                st.checks.append(
                    (r.invoke, seqs[0] + value, r, f"started at {seqs[0]} = tail - {value}, tail")
                )

    def observe_read_back(self, st: _Stream) -> None:
        """The read-back after the run reads from 0 up to the tail it was given first: ending
        short of that tail means the positions in between were skipped too."""
        final = [r for r in st.reads if r.kind == "final" and r.outcome == OK]
        tails = [r.tail for r in st.reads if r.kind == "final_tail" and r.tail is not None]
        if not final or not tails:
            return
        end = max((r.seqs[-1] + 1 for r in final if r.seqs), default=0)
        if end < tails[0]:
            last = max(final, key=lambda r: r.invoke)
            assert last.complete is not None
            st.floors.append(_Floor(last.complete, end, tails[0], last))

    def observe_follow(self, st: _Stream, f: Follow) -> None:
        expected = f.start
        for seg in f.segments:
            self.stat("read sessions")
            for b in seg.batches:
                self.stat("read session batches")
                if b.seqs:
                    self.observe(st, b.seqs, b.timestamps, b.keys, b.at, f)
                    st.mins.append((seg.invoke, min(b.seqs), f))
                    st.bounds.append((b.at, b.seqs[-1] + 1, f))
                    expected = self.scan(st, expected, b.seqs, b.at, f, session=True)
                if b.tail is not None:
                    st.bounds.append((b.at, b.tail, f))
                    st.checks.append((seg.invoke, b.tail, f, "a batch carried the tail"))

    def owner(self, key: bytes) -> tuple[Append, int] | None:
        """The append that submitted ``key``, and its index there."""
        if key.startswith(b"!"):
            return self.commands.get(key)
        claim = parse_body(key)
        if claim is None:
            return None
        a = self.by_id.get(claim[0])
        i = claim[1]
        if a is None or i >= len(a.keys) or a.keys[i] != key:
            return None
        return a, i

    def observe_acks(self, st: _Stream) -> None:
        """Acked appends fill in the positions no read saw, and must match those seen."""
        for a in st.appends:
            if a.outcome != OK or a.ack is None:
                continue
            ack = a.ack
            st.bounds.append((a.complete or 0, ack.tail, a))
            st.checks.append((a.invoke, ack.tail, a, "its ack reported the tail"))
            if ack.end - ack.start != len(a.keys) or ack.tail < ack.end:
                self.flag(
                    "ack",
                    st.name,
                    f"{a.describe()} acked [{ack.start}, {ack.end}) with tail {ack.tail} for "
                    f"{len(a.keys)} records",
                )
                continue
            matches = True
            log = st.log
            for i, key in enumerate(a.keys):
                pos = ack.start + i
                seen = log.get(pos)
                if seen is not None and seen is not key and seen != key:
                    matches = False
                    self.flag(
                        "ack",
                        st.name,
                        f"{a.describe()} was acked at [{ack.start}, {ack.end}), but seq_num "
                        f"{pos} holds {_key(seen)} (seen by {_desc(st.seen_by[pos])}), not its "
                        f"{_key(a.keys[i])}",
                    )
            st.ranges.append((ack.start, ack.end, a))
            if matches:
                st.copies[a.id].add(ack.start)
            for pos, want in ((ack.start, ack.start_ts), (ack.end - 1, ack.end_ts)):
                got = st.ts.get(pos)
                if want is not None and got is not None and got != want:
                    self.flag(
                        "timestamps",
                        st.name,
                        f"{a.describe()}: its ack gives timestamp {want} for seq_num {pos}, "
                        f"reads returned {got}",
                    )
        st.ranges.sort(key=lambda r: r[0])
        st.range_starts = [r[0] for r in st.ranges]
        prev: tuple[int, int, Append] | None = None
        for r in st.ranges:
            if prev is not None and r[0] < prev[1]:
                self.flag(
                    "ack",
                    st.name,
                    f"{prev[2].describe()} acked [{prev[0]}, {prev[1]}) and "
                    f"{r[2].describe()} acked [{r[0]}, {r[1]}): two acks for one position",
                )
            if prev is None or r[1] > prev[1]:
                prev = r

    def check_timestamps(self, st: _Stream) -> bool:
        prev_pos, prev_ts = -1, -1
        ok = True
        for pos in sorted(st.ts):
            ts = st.ts[pos]
            if ts < prev_ts:
                ok = False
                self.flag(
                    "timestamps",
                    st.name,
                    f"timestamp {ts} at seq_num {pos} is below {prev_ts} at seq_num {prev_pos} "
                    f"(seen by {_desc(st.seen_by[pos])} and {_desc(st.seen_by[prev_pos])})",
                )
            prev_pos, prev_ts = pos, ts
        return ok

    def timestamp_start(
        self, st: _Stream, r: Read, positions: list[int], stamps: list[int]
    ) -> None:
        """A read from timestamp T starts at the first record whose timestamp is >= T (or at
        the floor above it): starting later is a floor observation."""
        assert r.start is not None
        assert r.complete is not None
        want = r.start[1]
        if r.timestamps[0] < want:
            self.flag(
                "timestamps",
                st.name,
                f"{_desc(r)} returned seq_num {r.seqs[0]} with timestamp {r.timestamps[0]} < "
                f"{want}",
            )
            return
        i = bisect.bisect_left(stamps, want)
        if i == len(positions):
            return
        first = positions[i]
        certain = first == 0 or (i > 0 and positions[i - 1] == first - 1)
        if certain and r.seqs[0] > first:
            st.floors.append(_Floor(r.complete, first, r.seqs[0], r))

    # -- appends ---------------------------------------------------------------------------

    def attribute(self, st: _Stream) -> None:
        """Trace every observed record to its append: where each copy of it starts."""
        owner = self.owner
        items: Iterable[tuple[int, bytes, int, Source]] = (
            (pos, key, st.seen_at[pos], st.seen_by[pos]) for pos, key in st.log.items()
        )
        for pos, key, t, src in [*items, *st.extra]:
            own = owner(key)
            if own is None or own[0].stream != st.name:
                if key in st.trim_keys:
                    continue  # a trim record: tied to its append through the marker before it
                where = "" if own is None else f" (submitted to {own[0].stream})"
                self.flag(
                    "unsubmitted",
                    st.name,
                    f"{_desc(src)} returned {_key(key)} at seq_num {pos}, which no append to "
                    f"this stream submitted{where}",
                )
                continue
            a, i = own
            if a.invoke > t:
                self.flag(
                    "premature",
                    st.name,
                    f"{_desc(src)} returned {_key(key)} at seq_num {pos} before "
                    f"{a.describe()} was invoked",
                )
            st.copies[a.id].add(pos - i)
        self.stat("copies", sum(len(c) for c in st.copies.values()))

    def trim_points(self, st: _Stream) -> tuple[list[int], list[int], list[Append]]:
        """For each trim that may have applied (by invocation time): the highest trim point
        reachable so far: ``min(R, t + 1)`` at a known copy at ``t``, ``R`` if none is known."""
        items: list[tuple[int, int, Append]] = []
        for a in st.appends:
            if a.outcome == FAIL:
                continue
            for i, k in enumerate(a.keys):
                if not k.startswith(TRIM):
                    continue
                point = struct.unpack(">Q", k[len(TRIM) :])[0]
                copies = st.copies.get(a.id)
                if copies:
                    point = max(min(point, c + i + 1) for c in copies)
                items.append((a.invoke, point, a))
        items.sort(key=lambda x: x[0])
        times: list[int] = []
        best: list[int] = []
        who: list[Append] = []
        for t, point, a in items:
            if not best or point > best[-1]:
                best.append(point)
                who.append(a)
            else:
                best.append(best[-1])
                who.append(who[-1])
            times.append(t)
        self.stat("trims", len(items))
        return times, best, who

    def check_floors(self, st: _Stream, trims: tuple[list[int], list[int], list[Append]]) -> None:
        times, best, who = trims
        self.stat("floors observed", len(st.floors))
        for fl in st.floors:
            i = bisect.bisect_left(times, fl.at)
            reach = best[i - 1] if i else 0
            if reach >= fl.q:
                st.visible.append(fl)
                continue
            span = range(fl.start, min(fl.q, fl.start + 10_000))
            acked = sorted(
                {a.id: a for p in span if (a := st.acked_at(p))}.values(), key=lambda a: a.id
            )
            seen = [p for p in span if p in st.log]
            if i:
                by = f" (trims invoked before it reach only {reach}, by {who[i - 1].describe()})"
            else:
                by = " (no trim was invoked before it)"
            text = f"{_desc(fl.src)} skipped seq_nums [{fl.start}, {fl.q}){by}"
            if seen:
                text += f"; other reads saw {len(seen)} of them, e.g. seq_num {seen[0]}"
            if acked:
                text += "; acked there: " + ", ".join(a.describe() for a in acked[:3])
            final = isinstance(fl.src, Read) and fl.src.kind == "final"
            self.flag("lost" if final and acked else "gap", st.name, text)

    def check_reappear(self, st: _Stream) -> None:
        """Once a read has observed a floor (one that trims explain: a skip no trim explains
        is a gap, not a trim), no read invoked later may return a record below it."""
        floors = sorted(st.visible, key=lambda f: f.at)
        times = [f.at for f in floors]
        best: list[_Floor] = []
        for f in floors:
            best.append(f if not best or f.q > best[-1].q else best[-1])
        for invoke, low, src in st.mins:
            i = bisect.bisect_left(times, invoke)
            if i and low < best[i - 1].q:
                f = best[i - 1]
                self.flag(
                    "trim-reappear",
                    st.name,
                    f"{_desc(src)} returned seq_num {low}, below the trim floor {f.q} that "
                    f"{_desc(f.src)} had observed before it was invoked",
                )

    def check_appends(self, st: _Stream) -> None:
        groups: dict[str, list[tuple[int, int, Append]]] = defaultdict(list)
        for a in st.appends:
            copies = sorted(st.copies.get(a.id, ()))
            self.stat(f"appends {a.outcome}")
            for c in copies:
                self.check_copy(st, a, c)
            if a.outcome == INFO:
                self.stat("indefinite appends landed" if copies else "indefinite appends absent")
            if not copies:
                continue
            if a.outcome == FAIL:
                self.flag(
                    "definite-visible",
                    st.name,
                    f"{a.describe()} failed without side effects ({a.error}), but it is in "
                    f"the log at seq_num {copies[0]}",
                )
            exact = a.policy == NSE or a.match_seq_num is not None
            if exact and len(copies) > 1:
                self.flag(
                    "duplicate",
                    st.name,
                    f"{a.describe()} ({a.outcome}) is in the log {len(copies)} times, at "
                    f"seq_nums {copies[:5]}",
                )
            if a.match_seq_num is not None and any(c != a.match_seq_num for c in copies):
                self.flag(
                    "match",
                    st.name,
                    f"{a.describe()} landed at seq_num {copies}, not at its match_seq_num",
                )
            if a.group is not None:
                groups[a.group].append((a.index, copies[0], a))
        for a in st.appends:
            if a.match_seq_num is not None and a.expected == a.match_seq_num:
                self.flag(
                    "match",
                    st.name,
                    f"{a.describe()} failed with a 412 naming its own match_seq_num "
                    f"{a.expected} as the next seq_num",
                )
            final = st.final_tail
            if final is not None and a.outcome == OK and a.ack and a.ack.end > final:
                self.flag(
                    "lost",
                    st.name,
                    f"{a.describe()} was acked at [{a.ack.start}, {a.ack.end}), but the final "
                    f"tail is {final}",
                )
        for name, items in groups.items():
            items.sort(key=lambda x: x[0])
            for (_, p1, a1), (_, p2, a2) in itertools.pairwise(items):
                if p2 <= p1:
                    self.flag(
                        "order",
                        st.name,
                        f"in {name}, {a2.describe()} (input {a2.index}) landed at seq_num {p2}, "
                        f"before {a1.describe()} (input {a1.index}) at {p1}",
                    )

    def check_copy(self, st: _Stream, a: Append, start: int) -> None:
        for i, want in enumerate(a.keys):
            got = st.known(start + i)
            if got is not None and got != want:
                self.flag(
                    "torn",
                    st.name,
                    f"{a.describe()} has a copy starting at seq_num {start}, but seq_num "
                    f"{start + i} holds {_key(got)}, not its record {i} ({_key(want)})",
                )
                return

    # -- real time -------------------------------------------------------------------------

    def check_tails(self, st: _Stream) -> None:
        """Sweep in time: every tail reported must be at least every tail proven before the
        report's invocation."""
        bounds = sorted(st.bounds, key=lambda b: b[0])
        checks = sorted(st.checks, key=lambda c: c[0])
        top, top_src, i = -1, None, 0
        for t, value, src, what in checks:
            while i < len(bounds) and bounds[i][0] < t:
                if bounds[i][1] > top:
                    top, top_src = bounds[i][1], bounds[i][2]
                i += 1
            if value < top:
                self.flag(
                    "tail-back",
                    st.name,
                    f"{_desc(src)} {what} {value}, but {_desc(top_src)} had already proven "
                    f"the tail at {top} before it was invoked",
                )
        self.stat("tail checks", len(checks))

    def check_realtime(self, st: _Stream) -> None:
        acked = sorted(
            (
                (a.complete, a.ack.end, a)
                for a in st.appends
                if a.outcome == OK and a.ack is not None and a.complete is not None
            ),
            key=lambda x: x[0],
        )
        landed = sorted(
            ((a.invoke, c, a) for a in st.appends for c in st.copies.get(a.id, ())),
            key=lambda x: x[0],
        )
        top, top_op, i = -1, None, 0
        for invoke, start, a in landed:
            while i < len(acked) and acked[i][0] < invoke:
                if acked[i][1] > top:
                    top, top_op = acked[i][1], acked[i][2]
                i += 1
            if start < top:
                assert top_op is not None
                self.flag(
                    "realtime",
                    st.name,
                    f"{a.describe()} landed at seq_num {start}, below the end {top} of "
                    f"{top_op.describe()}, which was acked before it was invoked",
                )
        self.stat("realtime checks", len(landed))

    # -- fencing ---------------------------------------------------------------------------

    def check_fences(self, st: _Stream) -> None:
        """Walk the log in order, keeping the token in force while every position is known."""
        want: dict[int, list[Append]] = defaultdict(list)
        tokens = {""}
        for a in st.appends:
            for k in a.keys:
                if k.startswith(FENCE):
                    tokens.add(k[len(FENCE) :].decode())
            if a.fencing_token is not None:
                for c in st.copies.get(a.id, ()):
                    want[c].append(a)
        for a in st.appends:
            if isinstance(a.expected, str) and a.expected not in tokens:
                self.flag(
                    "fence",
                    st.name,
                    f"{a.describe()} failed with a 412 naming token {a.expected!r}, which no "
                    "fence ever set",
                )
        if not want:
            return
        token: str | None = ""
        top = max(want)
        for pos in range(top + 1):
            for a in want.get(pos, ()):
                if token is None:
                    self.stat("fence checks unverified")
                elif token != a.fencing_token:
                    self.flag(
                        "fence",
                        st.name,
                        f"{a.describe()} landed at seq_num {pos}, where the token in force was "
                        f"{token!r}: a stale fencing token succeeded",
                    )
                else:
                    self.stat("fence checks")
            found = st.known(pos)
            if found is None:
                token = None  # a fence may hide there
            elif found.startswith(FENCE):
                token = found[len(FENCE) :].decode()

    # -- liveness --------------------------------------------------------------------------

    def check_liveness(self) -> None:
        for a in self.history.appends:
            if a.error_type.startswith("ProtocolError:"):
                self.flag("protocol-error", a.stream, f"{a.describe()} failed: {a.error}")
        for r in self.history.reads:
            if r.error_type.startswith("ProtocolError:"):
                self.flag("protocol-error", r.stream, f"{r.describe()} failed: {r.error}")
        for f in self.history.follows:
            for seg in f.segments:
                if seg.error:
                    self.flag("read-stopped", f.stream, _stopped(f, seg))


def _stopped(f: Follow, seg: Segment) -> str:
    return (
        f"{f.describe()}: the read session from seq_num {seg.start} stopped after "
        f"{sum(len(b.seqs) for b in seg.batches)} records with {seg.error}"
    )


def check(history: History) -> Result:
    """Check a whole history against the sequential log model."""
    return Checker(history).run()
