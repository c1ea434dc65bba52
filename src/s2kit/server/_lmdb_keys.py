"""Key and value layouts of lite's lmdb store (all integers big-endian, so keys sort by them).

One lmdb environment holds everything, in named sub-databases:

========  ===================================  ==============================================
name      key                                  value
========  ===================================  ==============================================
meta      ``format`` / ``version`` / ``next``  format marker, format version, next stream id
catalog   ``b`` basin / ``s`` + name hash       a catalog row (JSON, see ``_meta.py``)
ids       name hash (128-bit BLAKE2b of        stream id (u64) of the stream's incarnation,
          basin NUL stream)                    then basin NUL stream
state     stream id                            tail seq_num, tail timestamp, trim point,
                                               last write (wall seconds, f64), fencing token
records   stream id + seq_num                  timestamp, metered size, headers, body
by_ts     stream id + timestamp + seq_num      empty: the timestamp index
runs      stream id + first seq_num            expiry (wall seconds, f64; inf = never)
gc        stream id                            its ``ids`` key: a deleted incarnation whose
                                               data is still being removed
========  ===================================  ==============================================

Records are keyed by a stream *id*, not by name: a deleted stream's id is retired, and a new
stream with the same name gets a fresh one, so a deletion can reclaim space in the background
while the name is already reusable. A run is the records of consecutive commits whose expiry
(write time + retention age, s2-api.md §15.2) is about the same; retention drops whole leading
runs, as the in-memory store does.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import TYPE_CHECKING

from s2kit.server._storage import StreamKey, StreamState
from s2kit.types import RecordFields, StreamPosition

if TYPE_CHECKING:
    from collections.abc import Iterable

FORMAT = b"s2kit-lite"
VERSION = 1
DB_NAMES = (b"meta", b"catalog", b"ids", b"state", b"records", b"by_ts", b"runs", b"gc")

_U64 = struct.Struct(">Q")
_U64X2 = struct.Struct(">QQ")
_U64X3 = struct.Struct(">QQQ")
_REC_HEAD = struct.Struct(">QII")  # timestamp, metered size, header count
_HDR = struct.Struct(">II")  # name length, value length
_STATE = struct.Struct(">QQQd")
_F64 = struct.Struct(">d")

Buf = bytes | memoryview

u64 = _U64.pack


def read_u64(data: bytes, offset: int = 0) -> int:
    """The big-endian u64 at ``offset``."""
    value: int = _U64.unpack_from(data, offset)[0]
    return value


def name_key(key: StreamKey) -> bytes:
    """``basin NUL stream``: basin names never contain NUL, so the first NUL splits."""
    return key[0].encode() + b"\0" + key[1].encode()


def id_key(key: StreamKey) -> bytes:
    """``ids`` key: a 128-bit hash of the name (names can exceed lmdb's 511-byte key limit)."""
    return hashlib.blake2b(name_key(key), digest_size=16).digest()


def id_value(sid: int, key: StreamKey) -> bytes:
    """``ids`` value: the stream id, then the name (to rebuild the id map at start-up)."""
    return _U64.pack(sid) + name_key(key)


def split_id_value(raw: bytes) -> tuple[int, StreamKey]:
    """Inverse of :func:`id_value`."""
    basin, _, stream = raw[8:].partition(b"\0")
    return read_u64(raw), (basin.decode(), stream.decode())


def record_key(sid: int, seq_num: int) -> bytes:
    """``records`` key."""
    return _U64X2.pack(sid, seq_num)


def ts_key(sid: int, timestamp: int, seq_num: int) -> bytes:
    """``by_ts`` key."""
    return _U64X3.pack(sid, timestamp, seq_num)


def run_key(sid: int, first_seq_num: int) -> bytes:
    """``runs`` key."""
    return _U64X2.pack(sid, first_seq_num)


def encode_expiry(expiry: float) -> bytes:
    """A run's expiry (wall seconds; ``inf`` = never)."""
    return _F64.pack(expiry)


def decode_expiry(raw: bytes) -> float:
    """Inverse of :func:`encode_expiry`."""
    value: float = _F64.unpack(raw)[0]
    return value


def encode_record(record: RecordFields, size: int) -> bytes:
    """A record value: timestamp, plaintext metered size, headers, then the body."""
    _, timestamp, headers, body = record
    if not headers:
        return _REC_HEAD.pack(timestamp, size, 0) + body
    parts = [_REC_HEAD.pack(timestamp, size, len(headers))]
    for name, value in headers:
        parts += (_HDR.pack(len(name), len(value)), name, value)
    parts.append(body)
    return b"".join(parts)


def record_timestamp(value: bytes) -> int:
    """The timestamp of an encoded record, without decoding the rest."""
    return read_u64(value)


def record_size(value: bytes) -> int:
    """The plaintext metered size of an encoded record."""
    size: int = _REC_HEAD.unpack_from(value)[1]
    return size


def decode_record(key: Buf, value: Buf) -> tuple[RecordFields, int]:
    """A record and its plaintext metered size from its key and value (bytes or buffers
    valid only inside their read transaction: everything kept is copied out)."""
    seq_num: int = _U64X2.unpack_from(key)[1]
    ts, size, count = _REC_HEAD.unpack_from(value)
    if not count:
        return (seq_num, ts, (), bytes(value[16:])), size
    pos = 16
    headers = []
    for _ in range(count):
        n, v = _HDR.unpack_from(value, pos)
        pos += 8
        headers.append((bytes(value[pos : pos + n]), bytes(value[pos + n : pos + n + v])))
        pos += n + v
    return (seq_num, ts, tuple(headers), bytes(value[pos:])), size


def decode_records(
    items: Iterable[tuple[Buf, Buf]], prefix: bytes, max_count: int, max_bytes: int
) -> tuple[list[RecordFields], list[int]]:
    """Records from a cursor positioned in a stream (``prefix``): at most ``max_count``, and
    stopping before the one that would take the metered total past ``max_bytes``.

    The read path's inner loop (it runs on the event loop), so it decodes inline; with
    buffer cursors each body is copied exactly once.
    """
    records: list[RecordFields] = []
    sizes: list[int] = []
    head, key, total = _REC_HEAD.unpack_from, _U64X2.unpack_from, 0
    for k, v in items:
        if k[:8] != prefix:
            break
        ts, size, count = head(v)
        total += size
        if total > max_bytes:
            break
        if count:
            records.append(decode_record(k, v)[0])
        else:
            records.append((key(k)[1], ts, (), bytes(v[16:])))
        sizes.append(size)
        if len(records) >= max_count:
            break
    return records, sizes


def encode_state(tail: StreamPosition, trim_point: int, last_write: float, token: str) -> bytes:
    """A ``state`` value; ``last_write`` in wall-clock seconds (0 = never written)."""
    return _STATE.pack(tail.seq_num, tail.timestamp, trim_point, last_write) + token.encode()


def decode_state(raw: bytes, wall_to_mono: float) -> StreamState:
    """A ``state`` value as the engine sees it (``last_write`` on the monotonic clock)."""
    seq_num, ts, trim_point, last_write = _STATE.unpack_from(raw)
    return StreamState(
        tail=StreamPosition(seq_num, ts),
        fencing_token=raw[_STATE.size :].decode(),
        trim_point=trim_point,
        last_write=last_write + wall_to_mono if last_write else 0.0,
    )


def state_wall_fields(raw: bytes | None) -> tuple[StreamPosition, int, float, str]:
    """(tail, trim point, last write in wall seconds, fencing token) of a ``state`` value."""
    if raw is None:
        return StreamPosition(0, 0), 0, 0.0, ""
    seq_num, ts, trim_point, last_write = _STATE.unpack_from(raw)
    return StreamPosition(seq_num, ts), trim_point, last_write, raw[_STATE.size :].decode()


NEVER = math.inf
