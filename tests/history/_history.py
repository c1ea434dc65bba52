"""A recorded history: every operation's invocation, completion and outcome, and every record
each read returned.

Time is logical: one counter for the whole run (all workers share one event loop). An
operation is stamped with ``invoke`` just before it is handed to the SDK and with
``complete`` once its outcome is known (an ack's future resolving, a call returning), so
``a.complete < b.invoke`` proves that ``a`` ended before ``b`` began. A stamp taken late only
weakens what the checker may conclude, never makes it claim too much.

Records are identified by their *key*: the body of an ordinary record (workers make every
body unique: ``<op id>.<index>.<padding>``), or ``!<op>:<payload>`` for a command record
(a fence's payload is its token, unique per fence; a trim's is its 8-byte trim point, so
trims are told apart through the marker record that precedes each in its batch).

Outcomes follow the SDK's contract (docs/outcomes.md): ``ok`` (acked, or the read answered),
``fail`` (the error has ``has_no_side_effects``: nothing was applied, ever), ``info`` (the
outcome is unknown: indefinite, cancelled, or never resolved).

The checker (``_checker.py``) is pure and reads only these plain objects; the
:class:`Recorder` is the only part that knows the SDK's types.
"""

from __future__ import annotations

import itertools
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from s2kit.errors import (
    FencingTokenMismatch,
    ProtocolError,
    ReadUnwritten,
    S2Error,
    SeqNumMismatch,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from s2kit.types import AppendAck, ReadBatch, SequencedRecord

OK, FAIL, INFO = "ok", "fail", "info"
MAX_RECORD_METERED = 256
"""No record a worker writes is larger (metered): a read whose ``bytes`` limit has this much
room left did not stop because of it."""

UNARY, SESSION, PRODUCER = "unary", "session", "producer"
NSE, ALL = "nse", "all"


def command_key(op: bytes, payload: bytes) -> bytes:
    """The key of a command record."""
    return b"!" + op + b":" + payload


def record_key(headers: Sequence[tuple[bytes, bytes]], body: bytes) -> bytes:
    """The key of a record, as submitted or as read."""
    if len(headers) == 1 and headers[0][0] == b"":
        return command_key(headers[0][1], body)
    return body


def parse_body(key: bytes) -> tuple[int, int] | None:
    """``(op id, index)`` named by an ordinary record's body (``<op id>.<index>.<pad>``), or
    None. Only a claim: the checker confirms it against the append's own keys."""
    parts = key.split(b".", 2)
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1])


@dataclass(slots=True, eq=False)
class Ack:
    """An append's acknowledgement: ``[start, end)``, the tail then, and the timestamps."""

    start: int
    end: int
    tail: int
    start_ts: int | None
    end_ts: int | None
    """None when unknown (a producer record's own timestamp is not in its batch's ack)."""


@dataclass(slots=True, eq=False)
class Append:
    """One append: a unary call, an append-session input or a producer record.

    ``keys`` are its records' keys in order. ``group``/``index`` name the session or producer
    it went through and its place there (inputs of one group land in submission order).
    """

    id: int
    stream: str
    worker: str
    via: str
    proto: str
    policy: str
    keys: tuple[bytes, ...]
    invoke: int
    match_seq_num: int | None = None
    fencing_token: str | None = None
    group: str | None = None
    index: int = 0
    complete: int | None = None
    outcome: str = INFO
    ack: Ack | None = None
    error: str = ""
    error_type: str = ""
    expected: int | str | None = None
    """A 412's answer: the stream's next seq_num (``int``) or its fencing token (``str``)."""

    def describe(self) -> str:
        what = f"append #{self.id} ({self.worker}, {self.via} {self.proto} {self.policy}"
        if self.match_seq_num is not None:
            what += f", match_seq_num={self.match_seq_num}"
        if self.fencing_token is not None:
            what += f", fencing_token={self.fencing_token!r}"
        return what + f", {len(self.keys)} records)"


@dataclass(slots=True, eq=False)
class Read:
    """A unary read or check_tail (``kind``: ``read``, ``check_tail``, ``final`` for the
    read-back after the run, ``final_tail``).

    ``start`` is ``("seq", n)``, ``("ts", t)`` or ``("tail_offset", k)``; ``seqs``,
    ``timestamps`` and ``keys`` are the records returned, ``metered`` their total size.
    ``tail`` is check_tail's answer or a 416's.
    """

    id: int
    stream: str
    worker: str
    proto: str
    kind: str
    invoke: int
    start: tuple[str, int] | None = None
    count: int | None = None
    max_bytes: int | None = None
    complete: int | None = None
    outcome: str = INFO
    seqs: array[int] = field(default_factory=lambda: array("q"))
    timestamps: array[int] = field(default_factory=lambda: array("q"))
    keys: list[bytes] = field(default_factory=list)
    metered: int = 0
    tail: int | None = None
    error: str = ""
    error_type: str = ""

    def describe(self) -> str:
        start = "" if self.start is None else f" from {self.start[0]}={self.start[1]}"
        return f"{self.kind} #{self.id} ({self.worker}, {self.proto}{start})"


@dataclass(slots=True, eq=False)
class Batch:
    """One batch a read session delivered, at time ``at``."""

    at: int
    seqs: array[int]
    timestamps: array[int]
    keys: list[bytes]
    tail: int | None


@dataclass(slots=True, eq=False)
class Segment:
    """One read session, from ``start``, opened at ``invoke``; ended at ``end`` (normally, or
    with ``error``)."""

    invoke: int
    start: int
    batches: list[Batch] = field(default_factory=list)
    end: int | None = None
    error: str = ""
    error_type: str = ""


@dataclass(slots=True, eq=False)
class Follow:
    """A reader following one stream: read sessions one after the other, each starting
    where the previous one stopped (after a normal end, or an error)."""

    id: int
    stream: str
    worker: str
    proto: str
    start: int
    segments: list[Segment] = field(default_factory=list)

    def describe(self) -> str:
        return f"read session chain #{self.id} ({self.worker}, {self.proto})"


@dataclass(slots=True, eq=False)
class History:
    """Everything recorded in one run."""

    appends: list[Append] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    follows: list[Follow] = field(default_factory=list)


def _error_fields(exc: BaseException) -> tuple[str, str, str]:
    """(outcome, error text, error type) of a failed operation."""
    name = type(exc).__name__
    if isinstance(exc, ProtocolError):
        name = "ProtocolError:" + name
    text = f"{type(exc).__name__}: {exc}"[:300]
    if isinstance(exc, S2Error) and exc.has_no_side_effects:
        return FAIL, text, name
    return INFO, text, name


class Recorder:
    """Builds a :class:`History` from the SDK's calls and answers."""

    def __init__(self) -> None:
        self.history = History()
        self._clock = itertools.count(1)
        self._ids = itertools.count(1)
        self._intern: dict[bytes, bytes] = {}

    def now(self) -> int:
        """The next logical time."""
        return next(self._clock)

    def new_id(self) -> int:
        """A fresh operation id (workers build record bodies from it)."""
        return next(self._ids)

    def body(self, op_id: int, index: int, pad: int) -> bytes:
        """A unique body for record ``index`` of operation ``op_id`` (see :func:`parse_body`)."""
        return b"%d.%d." % (op_id, index) + b"~" * pad

    # -- appends -------------------------------------------------------------------------------

    def append(
        self, op_id: int, stream: str, worker: str, keys: tuple[bytes, ...], **kw: Any
    ) -> Append:
        """Register an append about to be invoked (stamps ``invoke``)."""
        for k in keys:
            self._intern.setdefault(k, k)
        op = Append(op_id, stream, worker, keys=keys, invoke=self.now(), **kw)
        self.history.appends.append(op)
        return op

    def acked(self, op: Append, ack: AppendAck) -> None:
        op.complete = self.now()
        op.outcome = OK
        op.ack = Ack(
            ack.start.seq_num,
            ack.end.seq_num,
            ack.tail.seq_num,
            ack.start.timestamp,
            ack.end.timestamp,
        )

    def record_acked(self, op: Append, seq_num: int, batch: AppendAck) -> None:
        """A producer record acked at ``seq_num`` within ``batch``."""
        op.complete = self.now()
        op.outcome = OK
        first = batch.start.seq_num == seq_num
        last = batch.end.seq_num == seq_num + 1
        op.ack = Ack(
            seq_num,
            seq_num + 1,
            batch.tail.seq_num,
            batch.start.timestamp if first else None,
            batch.end.timestamp if last else None,
        )

    def failed(self, op: Append, exc: BaseException) -> None:
        op.complete = self.now()
        op.outcome, op.error, op.error_type = _error_fields(exc)
        if isinstance(exc, SeqNumMismatch | FencingTokenMismatch):
            op.expected = exc.expected

    def refused(self, op: Append, exc: BaseException) -> None:
        """``submit()`` raised: the input was never queued, so nothing of it can land."""
        op.complete = self.now()
        _, error, _ = _error_fields(exc)
        op.outcome, op.error, op.error_type = FAIL, f"refused: {error}", "Refused"

    def abandoned(self, op: Append, why: str) -> None:
        """The caller stopped waiting (cancelled): the outcome is unknown."""
        op.outcome, op.error, op.error_type = INFO, why, "Abandoned"

    # -- reads ---------------------------------------------------------------------------------

    def read(self, stream: str, worker: str, proto: str, kind: str, **kw: Any) -> Read:
        """Register a unary read or check_tail about to be invoked."""
        r = Read(self.new_id(), stream, worker, proto, kind, invoke=self.now(), **kw)
        self.history.reads.append(r)
        return r

    def _columns(
        self, records: Sequence[SequencedRecord]
    ) -> tuple[array[int], array[int], list[bytes], int]:
        intern = self._intern
        keys = []
        metered = 0
        for r in records:
            headers = r.headers
            body = r.body
            if headers and len(headers) == 1 and not headers[0][0]:
                k = command_key(headers[0][1], body)
            else:
                k = body
            keys.append(intern.get(k, k))
            metered += r.metered_bytes
        seqs = array("q", [r.seq_num for r in records])
        tss = array("q", [r.timestamp for r in records])
        return seqs, tss, keys, metered

    def read_ok(self, r: Read, batch: ReadBatch) -> None:
        r.complete = self.now()
        r.outcome = OK
        r.seqs, r.timestamps, r.keys, r.metered = self._columns(batch.records)

    def tail_ok(self, r: Read, seq_num: int) -> None:
        r.complete = self.now()
        r.outcome = OK
        r.tail = seq_num

    def read_failed(self, r: Read, exc: BaseException) -> None:
        r.complete = self.now()
        r.outcome, r.error, r.error_type = _error_fields(exc)
        if isinstance(exc, ReadUnwritten):
            r.tail = exc.tail.seq_num

    # -- read sessions -------------------------------------------------------------------------

    def follow(self, stream: str, worker: str, proto: str, start: int) -> Follow:
        f = Follow(self.new_id(), stream, worker, proto, start)
        self.history.follows.append(f)
        return f

    def segment(self, f: Follow, start: int) -> Segment:
        """A read session about to be opened."""
        seg = Segment(self.now(), start)
        f.segments.append(seg)
        return seg

    def batch(self, seg: Segment, batch: ReadBatch) -> None:
        seqs, tss, keys, _ = self._columns(batch.records)
        tail = None if batch.tail is None else batch.tail.seq_num
        seg.batches.append(Batch(self.now(), seqs, tss, keys, tail))

    def segment_end(self, seg: Segment, exc: BaseException | None = None) -> None:
        seg.end = self.now()
        if exc is not None:
            _, seg.error, seg.error_type = _error_fields(exc)
