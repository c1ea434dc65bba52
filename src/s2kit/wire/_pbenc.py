"""Protobuf *encoding* of the data-plane messages, written out by hand.

Building upb messages field by field crosses from Python into C for every record and header;
writing the wire format directly is about six times cheaper per record (1.47 → 0.25 µs for a
1 KiB record), and appends and reads are the hot paths of both the SDK and lite. The output is
byte-for-byte what upb's ``SerializeToString`` produces for the same message — fields in
number order, proto3 scalars omitted when zero or empty, explicit-presence fields (``optional``
and sub-messages) emitted when set — and tests check that equality. Decoding stays with upb
(:mod:`s2kit.wire._proto`), which is fast there.

Wire format reminder: a field is a key ``(number << 3) | wire_type`` then, for varints (type 0),
the value in base-128 little-endian groups, and for length-delimited fields (type 2) a varint
length and the bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s2kit.types import AppendAck, AppendInput, RecordFields, StreamPosition


def _varint_slow(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = tuple(_varint_slow(i) for i in range(1 << 14))


def varint(n: int) -> bytes:
    """Unsigned varint (values below 2**14, most lengths, come from a table)."""
    if n < 16384:
        return _SMALL[n]
    if n < 1 << 21:
        return bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, n >> 14))
    if n < 1 << 28:
        return bytes(
            ((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, ((n >> 14) & 0x7F) | 0x80, n >> 21)
        )
    return _varint_slow(n)


def _headers(field_key: bytes, headers: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
    out = []
    for name, value in headers:
        inner = b""
        if name:
            inner = b"\x0a" + varint(len(name)) + name
        if value:
            inner += b"\x12" + varint(len(value)) + value
        out.append(field_key + varint(len(inner)) + inner)
    return out


def _position(field_key: bytes, pos: StreamPosition) -> bytes:
    inner = b""
    if pos.seq_num:
        inner = b"\x08" + varint(pos.seq_num)
    if pos.timestamp:
        inner += b"\x10" + varint(pos.timestamp)
    return field_key + varint(len(inner)) + inner


def encode_append_input(inp: AppendInput) -> bytes:
    """``AppendInput``: records (1), match_seq_num (2, optional), fencing_token (3, optional)."""
    return b"".join(append_input_chunks(inp))


def append_input_chunks(inp: AppendInput) -> list[bytes]:
    """:func:`encode_append_input` as the pieces whose concatenation it is (so that a frame
    header can go in front without copying the message twice)."""
    parts: list[bytes] = []
    add = parts.append
    last_blen, prefix = -1, b""  # a plain record's framing, kept while body lengths repeat
    for r in inp.records:
        body = r.body
        blen = len(body)
        headers = r.headers
        ts = r.timestamp
        if headers or ts is not None:
            head = b"" if ts is None else b"\x08" + varint(ts)
            if headers:
                head += b"".join(_headers(b"\x12", headers))
            if blen:
                head += b"\x1a" + varint(blen)
            add(b"\x0a" + varint(len(head) + blen) + head)
        elif blen:
            if blen != last_blen:
                tag = b"\x1a" + varint(blen)
                last_blen, prefix = blen, b"\x0a" + varint(blen + len(tag)) + tag
            add(prefix)
        else:
            add(b"\x0a\x00")
            continue
        if blen:
            add(body)
    if inp.match_seq_num is not None:
        add(b"\x10" + varint(inp.match_seq_num))
    if inp.fencing_token is not None:
        token = inp.fencing_token.encode()
        add(b"\x1a" + varint(len(token)) + token)
    return parts


def encode_append_ack(ack: AppendAck) -> bytes:
    """``AppendAck``: start (1), end (2), tail (3), always present."""
    return (
        _position(b"\x0a", ack.start) + _position(b"\x12", ack.end) + _position(b"\x1a", ack.tail)
    )


# A varint's first byte when more bytes follow: the low 7 bits with the continuation bit.
_CONTINUED = tuple(bytes((i | 0x80,)) for i in range(128))


def encode_read_batch_parts(records: Iterable[RecordFields], tail: StreamPosition | None) -> bytes:
    """``ReadBatch``: records (1) of seq_num (1), timestamp (2), headers (3), body (4); tail (2)."""
    return b"".join(read_batch_chunks(records, tail))


def read_batch_chunks(records: Iterable[RecordFields], tail: StreamPosition | None) -> list[bytes]:
    """:func:`encode_read_batch_parts` as the pieces whose concatenation it is (so that a
    frame header can go in front without copying the message twice).

    This runs for every record lite serves. Consecutive records usually share their timestamp
    and differ only in the low 7 bits of seq_num, so everything but those bits and the body
    length is cached while it repeats: a record costs one table lookup and one list extend
    (about 0.18 µs against 0.55 µs field by field), plus two more lookups and a few
    concatenations when its body length differs from the previous one's.
    """
    parts: list[bytes] = []
    small = _SMALL
    last_ts = last_hi = last_blen = -1
    lead = rest = head = b""  # head: seq_num's high bits and the timestamp field, encoded
    for seq, ts, headers, body in records:
        blen = len(body)
        if headers or seq < 128:
            one = b"\x08" + varint(seq) if seq else b""
            if ts:
                one += b"\x10" + varint(ts)
            if headers:
                one += b"".join(_headers(b"\x1a", headers))
            if blen:
                one += b"\x22" + varint(blen)
            parts += (b"\x0a" + varint(len(one) + blen) + one, body)
            continue
        # seq >= 128: its varint is _CONTINUED[seq & 0x7F] then varint(seq >> 7).
        hi = seq >> 7
        if hi != last_hi or ts != last_ts:
            last_hi, last_ts, last_blen = hi, ts, -1
            head = varint(hi) + (b"\x10" + varint(ts) if ts else b"")
        if blen != last_blen:
            last_blen = blen
            rest = head
            if blen:
                rest += b"\x22" + (small[blen] if blen < 16384 else varint(blen))
            size = 2 + len(rest) + blen  # the \x08 key, the low seq_num byte, rest, body
            lead = b"\x0a" + (small[size] if size < 16384 else varint(size)) + b"\x08"
        parts += (lead, _CONTINUED[seq & 0x7F], rest, body)
    if tail is not None:
        parts.append(_position(b"\x12", tail))
    return parts
