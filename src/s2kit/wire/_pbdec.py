"""A hand-written decoder for the most common ``AppendInput`` of all: records that are a body
alone (no headers, no client timestamp), the shape of ``s2 bench``'s batches and of most
producers' (docs/benchmarks.md#against-the-targets-of-the-scale-and-speed-work).

Walking such a message's bytes here costs lite less than upb's parse and a Python→C crossing
per record field (309 against 760 ns per 1 KiB record, timeit), and the result is a list of
bodies that lite sequences without a :class:`Record` per record. For any other shape upb is
faster than Python (records with a timestamp: 810–860 against 1,370–1,960 ns), so
:func:`decode_plain_input` gives up — returning ``None`` — on the first record that is not a
body alone, as on anything it does not understand exactly (unknown fields, other wire types,
malformed lengths): the caller then decodes with upb, which accepts the message or reports
the error. So the result is always what upb would produce.
"""

from __future__ import annotations

from typing import NamedTuple

from s2kit.types import RECORD_SETTERS, AppendInput, Record


class _GiveUp(Exception):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    b = data[pos]
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    pos += 1
    while True:
        b = data[pos]
        result |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            if result >= 1 << 64:
                raise _GiveUp
            return result, pos
        shift += 7
        if shift > 63:
            raise _GiveUp


def _body_record(body: bytes) -> Record:
    # Slot stores, not Record.__init__: the fields are already what __init__ would make.
    rec: Record = object.__new__(Record)
    s_body, s_headers, s_ts = RECORD_SETTERS
    s_body(rec, body)
    s_headers(rec, ())
    s_ts(rec, None)
    return rec


class PlainInput(NamedTuple):
    """An ``AppendInput`` whose records are bodies only: no headers, no client timestamp.

    Most batches have this shape (``s2 bench``'s, a producer's of plain payloads). Lite
    sequences one straight from ``bodies``, without a :class:`Record` per record on the way
    in (server/_engine.py, ``StreamOwner.append``): a third of its CPU per appended record went
    to building, checking and unpacking those objects.
    """

    bodies: list[bytes]
    match_seq_num: int | None
    fencing_token: str | None

    def as_input(self) -> AppendInput:
        """The same batch as the public :class:`AppendInput`."""
        return AppendInput(
            records=tuple([_body_record(body) for body in self.bodies]),
            match_seq_num=self.match_seq_num,
            fencing_token=self.fencing_token,
        )


_HEADS: dict[bytes, tuple[int, int]] = {}
"""Record headers seen before (``0a len 1a len``, 4 or 6 bytes) → (their length, the body's).
A batch's records mostly repeat a few lengths: a known header costs a slice and a lookup
instead of two varints read byte by byte. Bounded; the bytes alone decide the entry."""
_MAX_HEADS = 4096


def decode_plain_input(data: bytes) -> PlainInput | None:
    """The batch when every record is a body alone (``0a len 1a len body``), else None."""
    bodies: list[bytes] = []
    add = bodies.append
    known = _HEADS.get
    match_seq_num: int | None = None
    fencing_token: str | None = None
    pos, end = 0, len(data)
    try:
        while pos < end:
            # A one-byte record length means a 4-byte header, a two-byte one mostly 6 bytes.
            head = known(data[pos : pos + 4] if data[pos + 1] < 0x80 else data[pos : pos + 6])
            if head is not None:
                h, n = head
                stop = pos + h + n
                if stop > end:
                    return None
                add(data[pos + h : stop])
                pos = stop
                continue
            key = data[pos]
            if key == 0x10:
                match_seq_num, pos = _varint(data, pos + 1)
                continue
            start = pos
            n, pos = _varint(data, pos + 1)
            stop = pos + n
            if stop > end:
                return None
            if key == 0x0A:
                if pos == stop or data[pos] != 0x1A:
                    return None
                n, body = _varint(data, pos + 1)
                if body + n != stop:  # more than the body, or a body past the record
                    return None
                add(data[body:stop])
                h = body - start
                if (h == 4 or h == 6) and len(_HEADS) < _MAX_HEADS:
                    _HEADS[data[start:body]] = (h, n)
            elif key == 0x1A:
                fencing_token = data[pos:stop].decode()
            else:
                return None
            pos = stop
    except (_GiveUp, IndexError, UnicodeDecodeError):
        return None
    return PlainInput(bodies, match_seq_num, fencing_token)
