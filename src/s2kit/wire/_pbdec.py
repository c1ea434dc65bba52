"""A hand-written decoder for ``AppendInput``, the message lite decodes once per appended batch.

Reading upb message fields costs a Python→C crossing per field per record; walking the bytes
here is cheaper for the common shapes (records with a body, optionally headers and a timestamp).
It understands exactly the fields of docs/protocol.md#protobuf-messages and gives up — returning
``None`` — on anything else (unknown fields, other wire types, malformed lengths), in which case
the caller decodes with upb, which then accepts the message or reports the error. So the result
is always what upb would produce.
"""

from __future__ import annotations

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


def decode_append_input(data: bytes) -> AppendInput | None:
    """The decoded input, or None when this decoder does not handle these bytes."""
    records: list[Record] = []
    add = records.append
    new = object.__new__
    s_body, s_headers, s_ts = RECORD_SETTERS
    match_seq_num: int | None = None
    fencing_token: str | None = None
    pos, end = 0, len(data)
    try:
        while pos < end:
            key = data[pos]
            if key == 0x10:
                match_seq_num, pos = _varint(data, pos + 1)
                continue
            # The field's length, inline when it takes one or two bytes (records do).
            b = data[pos + 1]
            if b < 0x80:
                n, pos = b, pos + 2
            elif (c := data[pos + 2]) < 0x80:
                n, pos = (b & 0x7F) | c << 7, pos + 3
            else:
                n, pos = _varint(data, pos + 1)
            stop = pos + n
            if stop > end:
                return None
            if key == 0x0A:
                # The common record: `1a len body` and nothing else.
                if pos < stop and data[pos] == 0x1A:
                    b = data[pos + 1]
                    if b < 0x80:
                        blen, bpos = b, pos + 2
                    elif (c := data[pos + 2]) < 0x80:
                        blen, bpos = (b & 0x7F) | c << 7, pos + 3
                    else:
                        blen, bpos = _varint(data, pos + 1)
                    if bpos + blen == stop:
                        rec: Record = new(Record)
                        s_body(rec, data[bpos:stop])
                        s_headers(rec, ())
                        s_ts(rec, None)
                        add(rec)
                        pos = stop
                        continue
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
