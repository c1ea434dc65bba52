"""A hand-written decoder for ``AppendInput``, the message lite decodes once per appended batch.

Reading upb message fields costs a Python→C crossing per field per record; walking the bytes
here is cheaper for the common shapes (records with a body, optionally headers and a timestamp).
It understands exactly the fields of docs/protocol.md#protobuf-messages and gives up — returning
``None`` — on anything else (unknown fields, other wire types, malformed lengths), in which case
the caller decodes with upb, which then accepts the message or reports the error. So the result
is always what upb would produce.

Lite first tries :func:`decode_plain_input`, for the most common shape of all (bodies alone),
which it sequences without building a :class:`Record` per record.
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


def _header(data: bytes, pos: int, end: int) -> tuple[bytes, bytes]:
    name = value = b""
    while pos < end:
        key = data[pos]
        n, pos = _varint(data, pos + 1)
        stop = pos + n
        if stop > end:
            raise _GiveUp
        if key == 0x0A:
            name = data[pos:stop]
        elif key == 0x12:
            value = data[pos:stop]
        else:
            raise _GiveUp
        pos = stop
    return name, value


def _record(data: bytes, pos: int, end: int) -> Record:
    body = b""
    headers: list[tuple[bytes, bytes]] = []
    timestamp: int | None = None
    while pos < end:
        key = data[pos]
        if key == 0x08:
            timestamp, pos = _varint(data, pos + 1)
            continue
        n, pos = _varint(data, pos + 1)
        stop = pos + n
        if stop > end:
            raise _GiveUp
        if key == 0x1A:
            body = data[pos:stop]
        elif key == 0x12:
            headers.append(_header(data, pos, stop))
        else:
            raise _GiveUp
        pos = stop
    if pos != end:  # a varint ran past the record: upb rejects that
        raise _GiveUp
    rec: Record = object.__new__(Record)
    s_body, s_headers, s_ts = RECORD_SETTERS
    s_body(rec, body)
    s_headers(rec, tuple(headers))
    s_ts(rec, timestamp)
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
        new = object.__new__
        s_body, s_headers, s_ts = RECORD_SETTERS
        records: list[Record] = []
        add = records.append
        for body in self.bodies:
            rec: Record = new(Record)
            s_body(rec, body)
            s_headers(rec, ())
            s_ts(rec, None)
            add(rec)
        return AppendInput(
            records=tuple(records),
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


def decode_append_input(data: bytes) -> AppendInput | None:
    """The decoded input, or None when this decoder does not handle these bytes."""
    if (plain := decode_plain_input(data)) is not None:
        return plain.as_input()
    records: list[Record] = []
    add = records.append
    match_seq_num: int | None = None
    fencing_token: str | None = None
    pos, end = 0, len(data)
    try:
        while pos < end:
            key = data[pos]
            if key == 0x10:
                match_seq_num, pos = _varint(data, pos + 1)
                continue
            n, pos = _varint(data, pos + 1)
            stop = pos + n
            if stop > end:
                return None
            if key == 0x0A:
                add(_record(data, pos, stop))
            elif key == 0x1A:
                fencing_token = data[pos:stop].decode()
            else:
                return None
            pos = stop
    except (_GiveUp, IndexError, UnicodeDecodeError):
        return None
    return AppendInput(
        records=tuple(records), match_seq_num=match_seq_num, fencing_token=fencing_token
    )
