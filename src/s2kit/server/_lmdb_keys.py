"""Key and value layouts of lite's lmdb store (all integers big-endian, so keys sort by them).

One lmdb environment holds everything, in named sub-databases:

========  ===================================  ==============================================
name      key                                  value
========  ===================================  ==============================================
meta      ``format`` / ``version`` / ``next``  format marker, format version, next stream id
catalog   ``b`` basin / ``s`` + name hash       a catalog row (JSON, see ``_meta.py``)
          ``t`` + access token id              a token, its secret's digest (``_tokens.py``)
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
(write time + retention age, docs/protocol.md#lite-differences) is about the same; retention
drops whole leading runs, as the in-memory store does.

Checksums (format version 2)
----------------------------
lmdb checks nothing of what it stores, so a damaged page reads back as wrong data. Every value
above except the ``format`` and ``version`` markers (read before the layout is known) and the
empty ``by_ts`` values ends in a CRC-32C (4 bytes, little-endian) of its key followed by the
rest of the value. The key is covered so that a value read under a damaged key (or a key
rewritten onto another value) fails too. Little-endian at the end because then the CRC of the
whole value, check included, is a constant (the CRC's residue): a read verifies a record with
one call over the bytes lmdb returns, without slicing them first. A ``by_ts`` entry is checked
against the record it points to instead (``_lmdb.py``), and record keys by their order (each
stream's records are consecutive seq_nums ending at the tail in ``state``).

CRC-32C comes from ``google-crc32c`` (hardware instructions where the CPU has them): a 1 KiB
record costs about 0.1 µs, against 0.5 µs with ``zlib.crc32``, which has no hardware path.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import TYPE_CHECKING

from google_crc32c import extend as _crc_extend
from google_crc32c import value as _crc

from s2kit.server._storage import StreamKey, StreamState
from s2kit.types import RecordFields, StreamPosition

if TYPE_CHECKING:
    from collections.abc import Iterable

FORMAT = b"s2kit-lite"
VERSION = 2
"""1: no checksums (refused, see ``_lmdb_txn.open_env``); 2: a CRC-32C in every value."""
DB_NAMES = (b"meta", b"catalog", b"ids", b"state", b"records", b"by_ts", b"runs", b"gc")

_U64 = struct.Struct(">Q")
_U64X2 = struct.Struct(">QQ")
_U64X3 = struct.Struct(">QQQ")
_REC_HEAD = struct.Struct(">QII")  # timestamp, metered size, header count
_HDR = struct.Struct(">II")  # name length, value length
_STATE = struct.Struct(">QQQd")
_F64 = struct.Struct(">d")
_CHECK = struct.Struct("<I")
CHECK_SIZE = _CHECK.size
_RESIDUE = 0x48674BC7
"""CRC-32C of any message followed by its own CRC (little-endian)."""

u64 = _U64.pack


class Damaged(Exception):
    """A stored value fails its checksum, or the rows disagree (missing records, a bad index).

    The message says where, in one line.
    """


# --- checksums --------------------------------------------------------------------------------


def seal(key: bytes, payload: bytes) -> bytes:
    """``payload`` followed by the CRC-32C of ``key`` + ``payload``."""
    return payload + _CHECK.pack(_crc_extend(_crc(key), payload))


def intact(key: bytes, value: bytes) -> bool:
    """Whether ``value`` (sealed) matches its checksum under ``key``."""
    return len(value) >= CHECK_SIZE and _crc_extend(_crc(key), value) == _RESIDUE


def unseal(key: bytes, value: bytes, what: str) -> bytes:
    """The payload of a sealed value; :class:`Damaged` (naming ``what``) if it is not intact."""
    if not intact(key, value):
        raise Damaged(f"{what}: checksum mismatch")
    return value[:-CHECK_SIZE]


# --- keys and small values --------------------------------------------------------------------


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
    return seal(id_key(key), _U64.pack(sid) + name_key(key))


def split_id_value(hashed: bytes, raw: bytes) -> tuple[int, StreamKey]:
    """Inverse of :func:`id_value` (``hashed``: its key); checks that the name hashes to it."""
    payload = unseal(hashed, raw, "an `ids` row")
    if len(payload) < 9:
        raise Damaged("an `ids` row: too short")
    basin, _, stream = payload[8:].partition(b"\0")
    try:
        key = (basin.decode(), stream.decode())
    except UnicodeDecodeError:
        raise Damaged("an `ids` row: the name is not UTF-8") from None
    if id_key(key) != hashed:
        raise Damaged(f"the `ids` row of {key[0]}/{key[1]}: filed under another name's hash")
    return read_u64(payload), key


def record_key(sid: int, seq_num: int) -> bytes:
    """``records`` key."""
    return _U64X2.pack(sid, seq_num)


def split_record_key(key: bytes) -> tuple[int, int]:
    """(stream id, seq_num) of a ``records`` key."""
    sid, seq_num = _U64X2.unpack(key)
    return sid, seq_num


def ts_key(sid: int, timestamp: int, seq_num: int) -> bytes:
    """``by_ts`` key."""
    return _U64X3.pack(sid, timestamp, seq_num)


def split_ts_key(key: bytes) -> tuple[int, int, int]:
    """(stream id, timestamp, seq_num) of a ``by_ts`` key."""
    sid, timestamp, seq_num = _U64X3.unpack(key)
    return sid, timestamp, seq_num


def run_key(sid: int, first_seq_num: int) -> bytes:
    """``runs`` key."""
    return _U64X2.pack(sid, first_seq_num)


def encode_expiry(key: bytes, expiry: float) -> bytes:
    """A run's expiry (wall seconds; ``inf`` = never), sealed under its key."""
    return seal(key, _F64.pack(expiry))


def decode_expiry(key: bytes, raw: bytes) -> float:
    """Inverse of :func:`encode_expiry`."""
    payload = unseal(key, raw, f"the expiry run at {_where(key)}")
    if len(payload) != _F64.size:
        raise Damaged(f"the expiry run at {_where(key)}: wrong size")
    value: float = _F64.unpack(payload)[0]
    return value


def encode_next_id(next_id: int) -> bytes:
    """The ``next`` row of ``meta``."""
    return seal(b"next", _U64.pack(next_id))


def decode_next_id(raw: bytes) -> int:
    """Inverse of :func:`encode_next_id`."""
    payload = unseal(b"next", raw, "the next stream id")
    if len(payload) != _U64.size:
        raise Damaged("the next stream id: wrong size")
    return read_u64(payload)


def _where(key: bytes) -> str:
    """A key named for a message: ``stream id N``, ``..., seq_num M`` when the key has one."""
    if len(key) >= 16:
        sid, seq_num = _U64X2.unpack_from(key)
        return f"stream id {sid}, seq_num {seq_num}"
    if len(key) == 8:
        return f"stream id {read_u64(key)}"
    return repr(key[:64])


# --- records ----------------------------------------------------------------------------------


def encode_record(key: bytes, record: RecordFields, size: int) -> bytes:
    """A record value: timestamp, plaintext metered size, headers, the body, the checksum."""
    _, timestamp, headers, body = record
    parts = [_REC_HEAD.pack(timestamp, size, len(headers))]
    for name, value in headers:
        parts += (_HDR.pack(len(name), len(value)), name, value)
    parts.append(body)
    crc = _crc(key)
    for part in parts:
        crc = _crc_extend(crc, part)
    parts.append(_CHECK.pack(crc))
    return b"".join(parts)


def record_timestamp(key: bytes, value: bytes) -> int:
    """The timestamp of an encoded record, checked."""
    if not intact(key, value) or len(value) < _REC_HEAD.size + CHECK_SIZE:
        raise Damaged(f"the record at {_where(key)}: checksum mismatch")
    return read_u64(value)


def record_size(value: bytes) -> int:
    """The plaintext metered size of an encoded record (unchecked)."""
    size: int = _REC_HEAD.unpack_from(value)[1]
    return size


def _record(seq_num: int, value: bytes, count: int, ts: int) -> RecordFields:
    # A checked value: the lengths are what was written, so a mismatch means a CRC collision
    # (2^-32) on damaged bytes, reported as damage all the same.
    pos, end = 16, len(value) - CHECK_SIZE
    headers = []
    for _ in range(count):
        if pos + 8 > end:
            raise Damaged(f"the record at seq_num {seq_num}: headers past its end")
        n, v = _HDR.unpack_from(value, pos)
        pos += 8
        headers.append((value[pos : pos + n], value[pos + n : pos + n + v]))
        pos += n + v
    if pos > end:
        raise Damaged(f"the record at seq_num {seq_num}: headers past its end")
    return (seq_num, ts, tuple(headers), value[pos:end])


def decode_record(key: bytes, value: bytes) -> tuple[RecordFields, int]:
    """A record and its plaintext metered size from its key and value, checked."""
    if not intact(key, value) or len(value) < _REC_HEAD.size + CHECK_SIZE:
        raise Damaged(f"the record at {_where(key)}: checksum mismatch")
    seq_num: int = _U64X2.unpack_from(key)[1]
    ts, size, count = _REC_HEAD.unpack_from(value)
    return _record(seq_num, value, count, ts), size


def decode_records(
    items: Iterable[tuple[bytes, bytes]], prefix: bytes, max_count: int, max_bytes: int
) -> tuple[list[RecordFields], list[int]]:
    """Records from a cursor positioned in a stream (``prefix``): at most ``max_count``, and
    stopping before the one that would take the metered total past ``max_bytes``.

    Every record is checked against its checksum, and the seq_nums must follow one another.
    The records before a damaged or missing one are returned, so the next read starts at the
    damage; a read that starts there raises :class:`Damaged`. A reader thus gets every intact
    record, then an error, and never a record that is not what was written.

    The read path's inner loop (it runs on the event loop), so it decodes inline. Values are
    lmdb's copies (bytes, not buffers): the CRC function takes bytes only, and a buffer would
    then cost a second copy per record.
    """
    records: list[RecordFields] = []
    sizes: list[int] = []
    head, key16, crc, extend = _REC_HEAD.unpack_from, _U64X2.unpack_from, _crc, _crc_extend
    total, expected = 0, -1
    for k, v in items:
        if len(k) != 16 or k[:8] != prefix:
            break
        seq_num = key16(k)[1]
        if seq_num != expected and expected >= 0:
            break  # a gap: the next read, from ``expected``, reports it
        if len(v) < 20 or extend(crc(k), v) != _RESIDUE:
            if records:
                break
            raise Damaged(f"the record at {_where(k)}: checksum mismatch")
        expected = seq_num + 1
        ts, size, count = head(v)
        total += size
        if total > max_bytes:
            break
        records.append(_record(seq_num, v, count, ts) if count else (seq_num, ts, (), v[16:-4]))
        sizes.append(size)
        if len(records) >= max_count:
            break
    return records, sizes


# --- stream state -----------------------------------------------------------------------------


def encode_state(
    key: bytes, tail: StreamPosition, trim_point: int, last_write: float, token: str
) -> bytes:
    """A ``state`` value; ``last_write`` in wall-clock seconds (0 = never written)."""
    payload = _STATE.pack(tail.seq_num, tail.timestamp, trim_point, last_write) + token.encode()
    return seal(key, payload)


def _state_fields(key: bytes, raw: bytes) -> tuple[StreamPosition, int, float, str]:
    payload = unseal(key, raw, f"the state of {_where(key)}")
    if len(payload) < _STATE.size:
        raise Damaged(f"the state of {_where(key)}: too short")
    seq_num, ts, trim_point, last_write = _STATE.unpack_from(payload)
    try:
        token = payload[_STATE.size :].decode()
    except UnicodeDecodeError:
        raise Damaged(f"the state of {_where(key)}: the fencing token is not UTF-8") from None
    return StreamPosition(seq_num, ts), trim_point, last_write, token


def decode_state(key: bytes, raw: bytes, wall_to_mono: float) -> StreamState:
    """A ``state`` value as the engine sees it (``last_write`` on the monotonic clock)."""
    tail, trim_point, last_write, token = _state_fields(key, raw)
    return StreamState(
        tail=tail,
        fencing_token=token,
        trim_point=trim_point,
        last_write=last_write + wall_to_mono if last_write else 0.0,
    )


def state_wall_fields(key: bytes, raw: bytes | None) -> tuple[StreamPosition, int, float, str]:
    """(tail, trim point, last write in wall seconds, fencing token) of a ``state`` value."""
    if raw is None:
        return StreamPosition(0, 0), 0, 0.0, ""
    return _state_fields(key, raw)


NEVER = math.inf
