"""Lite's lmdb environment and the bodies of its transactions.

``open_env`` opens (or initializes) the environment and refuses what it must not trust: a
foreign, truncated, damaged (page by page, before lmdb walks any), older or newer file. Then
come the start-up checks of the metadata (``load_ids``, ``check_stream``), the checked reads
the event loop runs, and the write transactions the writer thread runs. Each function does
one job inside a transaction handed to it; ``_lmdb.py`` decides when they run. Layouts and
checksums are in ``_lmdb_keys.py``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import lmdb
from lmdb import verify as lmdb_verify

from s2kit.server import _lmdb_keys as K
from s2kit.server._datadir import DataDirError

if TYPE_CHECKING:
    from pathlib import Path

    from s2kit.server._storage import StreamCommit, StreamKey
    from s2kit.types import RecordFields

Txn: TypeAlias = "lmdb.Transaction[bytes]"  # generic in the stubs only

DAMAGE = (K.Damaged, lmdb.Error, struct.error)
"""What reading a damaged store raises: a failed check, lmdb's own errors (damaged pages),
or a key of the wrong length."""

CHUNK = 10_000
"""Keys deleted per background transaction."""
RUN_SLACK = (1.0, 60.0)
"""A commit joins the stream's last run when its expiry is later by at most 1 % of the
retention age, clamped to this range (seconds): records may outlive their age by that much."""


class Dbs:
    """Handles of the named databases."""

    def __init__(self, env: lmdb.Environment, txn: Txn | None = None, *, create: bool = True):
        h = {name: env.open_db(name, txn=txn, create=create) for name in K.DB_NAMES}
        self.meta, self.catalog, self.ids, self.state = (
            h[b"meta"],
            h[b"catalog"],
            h[b"ids"],
            h[b"state"],
        )
        self.records, self.by_ts, self.runs, self.gc = (
            h[b"records"],
            h[b"by_ts"],
            h[b"runs"],
            h[b"gc"],
        )


@dataclass(slots=True)
class Share:
    """One stream's part of a group commit, ready for the writer."""

    sid: int
    new_id: tuple[bytes, bytes] | None
    """The ``ids`` row to write: this commit is the stream's first."""
    commit: StreamCommit
    expiry: float
    """Wall-clock expiry of the records (inf = never)."""


def open_env(root: Path, map_size: int, *, check_pages: bool = True) -> lmdb.Environment:
    """Open lmdb in ``root``; a new or empty file is initialized with the format marker.

    With ``check_pages``, every page is verified first (:func:`refuse_damaged_pages`).

    Raises:
        DataDirError: not an lmdb file, truncated, damaged pages, not lite's, or another
            format version.
    """
    try:
        env = lmdb.open(
            str(root),
            map_size=map_size,
            max_dbs=len(K.DB_NAMES),
            # lmdb zeroes the unused part of each page it mallocs before writing it: without
            # that, leftover heap bytes of this process (a request's headers, an access token,
            # an encryption key) could land in data.mdb, as the root token once did in a test
            # run (tests/auth/test_durable.py).
            meminit=True,
            sync=True,
            metasync=True,
        )
    except lmdb.Error as exc:
        raise DataDirError(
            f"{root / 'data.mdb'} is corrupt or not an lmdb file ({type(exc).__name__}: {exc}); "
            "refusing to use it"
        ) from None
    try:
        check_size(env, root)
        if check_pages:
            refuse_damaged_pages(root)
        _check_format(env, root)
    except BaseException:
        env.close()
        raise
    return env


def check_size(env: lmdb.Environment, root: Path) -> None:
    """Refuse a data file shorter than lmdb's own header says it is.

    lmdb maps the file and reads pages in place: a page past the end of a truncated file is a
    SIGBUS that kills the process, not an error. Only the two meta pages have been read when
    this runs (lmdb reads them with ``pread``), and they record the highest page in use.
    """
    path = root / "data.mdb"
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    size = path.stat().st_size
    if size < needed:
        raise DataDirError(
            f"{path} is truncated ({size} bytes, lmdb's header needs {needed}); refusing to "
            "use it: restore it from a copy"
        )


def page_problems(root: Path) -> list[str]:
    """What py-lmdb's offline verifier finds wrong with the pages of ``root/data.mdb``.

    lmdb trusts its pages: a damaged one can make it read past the end of the file (a SIGBUS
    in py-lmdb, which touches every page of a value it returns), trip one of its assertions
    (an abort), or walk the tree wrongly. The verifier is pure Python and reads the file
    rather than mapping it, so nothing in the file can crash it; a clean answer means lmdb
    can walk every page. About 100-500 MB/s, depending on the records' size.

    Raises:
        DataDirError: the verifier cannot even start (no valid meta page).
    """
    path = root / "data.mdb"
    try:
        problems: list[str] = lmdb_verify.verify(str(root), subdir=True)  # type: ignore[no-untyped-call]
    except Exception as exc:  # VerifyError, or whatever else a mangled file makes it raise
        raise DataDirError(f"{path} is corrupt ({exc}); refusing to use it") from None
    return problems


def refuse_damaged_pages(root: Path) -> None:
    """Refuse a data file whose pages are damaged (see :func:`page_problems`)."""
    problems = page_problems(root)
    if problems:
        more = f"; {len(problems)} problems in all" if len(problems) > 1 else ""
        raise DataDirError(
            f"{root / 'data.mdb'} is damaged ({problems[0]}{more}); refusing to use it "
            f"(`s2kit lite verify --data-dir {root}` tells more)"
        )


def _check_format(env: lmdb.Environment, root: Path) -> None:
    foreign = DataDirError(f"{root} holds an lmdb database that is not s2kit lite's")
    with env.begin() as txn:
        names = list(txn.cursor().iternext(values=False))
        if names and b"meta" not in names:
            raise foreign
        if names:
            try:
                meta = env.open_db(b"meta", txn=txn, create=False)
            except lmdb.Error:
                raise foreign from None
            # The marker and the version are stored bare: they are read before the layout
            # (and so the checksums) are known.
            fmt, version = (
                marker(txn.get(b"format", db=meta)),
                marker(txn.get(b"version", db=meta)),
            )
            if fmt != K.FORMAT or not version.isdigit():
                raise foreign
            if int(version) > K.VERSION:
                raise DataDirError(
                    f"{root} was written by a newer s2kit (format version {int(version)}; "
                    f"this one reads version {K.VERSION})"
                )
            if int(version) < K.VERSION:
                # No migration: a version 1 store has no checksums to trust its data by, and
                # rewriting every value in place is a long transaction to get wrong.
                raise DataDirError(
                    f"{root} holds format version {int(version)} (no checksums), which this "
                    f"s2kit does not read (version {K.VERSION}); keep the s2kit that wrote it, "
                    "or start this one on a new directory"
                )
            return
    # A new (or never initialized) file: nothing in it to lose.
    with env.begin(write=True) as txn:
        meta = env.open_db(b"meta", txn=txn)
        for name in K.DB_NAMES[1:]:
            env.open_db(name, txn=txn)
        txn.put(b"format", K.FORMAT, db=meta)
        txn.put(b"version", str(K.VERSION).encode(), db=meta)
        txn.put(b"next", K.encode_next_id(1), db=meta)


def marker(value: bytes | None) -> bytes:
    """The ``format`` or ``version`` row (stored bare), or ``b""`` if missing or too long."""
    return b"" if value is None or len(value) > 64 else bytes(value)


def load_ids(txn: Txn, db: Dbs) -> tuple[int, dict[StreamKey, int], list[tuple[int, bytes]]]:
    """The next stream id, the id map and the retired ids still being removed, all checked.

    Raises:
        Damaged: a row fails its checksum.
    """
    raw = txn.get(b"next", db=db.meta)
    next_id = K.decode_next_id(raw) if raw is not None else 1
    ids: dict[StreamKey, int] = {}
    for hashed, value in txn.cursor(db=db.ids):
        sid, key = K.split_id_value(hashed, value)
        ids[key] = sid
    doomed = [
        (K.read_u64(k), K.unseal(k, v, f"the deletion row of stream id {K.read_u64(k)}"))
        for k, v in txn.cursor(db=db.gc)
    ]
    top = max([*ids.values(), *(sid for sid, _ in doomed)], default=0)
    if top >= next_id:
        raise K.Damaged(f"the next stream id is {next_id}, but stream id {top} is in use")
    return next_id, ids, doomed


def check_stream(txn: Txn, db: Dbs, sid: int) -> None:
    """Check one stream's state row against the ends of its stored records (start-up).

    Its records must end exactly at the tail, and the first and last must be intact: cheap
    (two cursor steps), and enough to refuse a file whose damage shows before any read does.

    Raises:
        Damaged: they disagree, or a row fails its checksum.
    """
    prefix = K.u64(sid)
    raw = txn.get(prefix, db=db.state)
    tail, _, _, _ = K.state_wall_fields(prefix, raw)
    cur = txn.cursor(db=db.records)
    if not (cur.set_range(prefix) and cur.key()[:8] == prefix):
        return  # nothing stored: trimmed or expired away, or never written
    K.decode_record(*cur.item())
    # The stream's last record: the one before the next stream's first, or the last of all.
    if cur.set_range(K.u64(sid + 1)):
        cur.prev()
    else:
        cur.last()
    (end, _, _, _), _ = K.decode_record(*cur.item())
    if raw is None or end != tail.seq_num - 1:
        said = "no state row" if raw is None else f"a tail of {tail.seq_num} in its state row"
        raise K.Damaged(f"stream id {sid}: stored records end at seq_num {end}, with {said}")


# --- checked reads (on the event loop) -----------------------------------------------------------
#
# Beyond each record's checksum, the rows of a stream must agree: its records are consecutive
# seq_nums ending at the tail in its state row, and nothing is ever removed from the middle
# (trims, retention and deletions remove from the start). A record missing where these say
# one must be is damage (its key was overwritten), reported as such instead of ending a read
# early or skipping ahead.


def _tail(txn: Txn, db: Dbs, sid: int) -> int:
    prefix = K.u64(sid)
    tail, _, _, _ = K.state_wall_fields(prefix, txn.get(prefix, db=db.state))
    return tail.seq_num


def _gap(txn: Txn, db: Dbs, cur: lmdb.Cursor, sid: int, found: bool, upto: int) -> bool:
    """Whether the records of ``sid`` below ``upto`` should be there (``cur``: where a seek
    for the first of them landed; ``found``: it landed on a key). They may be gone only if
    nothing of the stream is stored before them and its first expiry run starts at ``upto``
    or later: trims and retention remove from the start, and move the first run up to where
    they cut (the floor a reader starts from may lag that after the clock stepped back)."""
    prefix = K.u64(sid)
    moved = cur.prev() if found else cur.last()
    if moved and cur.key()[:8] == prefix:
        return True
    runs = txn.cursor(db=db.runs)
    if not (runs.set_range(prefix) and runs.key()[:8] == prefix):
        return True
    return K.read_u64(runs.key(), 8) < upto


def _seek_records(cur: lmdb.Cursor, key: bytes) -> bool:
    found = cur.set_range(key)
    # A seek lands at or after its key, unless pages are damaged.
    if found and bytes(cur.key()) < key:
        raise K.Damaged(f"the records' index is out of order at {key.hex()}")
    return found


def read_records(
    txn: Txn, db: Dbs, sid: int, start: int, max_count: int, max_bytes: int
) -> tuple[list[RecordFields], list[int]]:
    """The records of stream ``sid`` from ``start`` on (see ``Storage.read``), checked: the
    intact ones up to the first damage (``K.decode_records``).

    Raises:
        Damaged: the record at ``start`` fails its checksum, or records from ``start`` on
            are missing.
    """
    prefix = K.u64(sid)
    cur = txn.cursor(db=db.records)
    found = _seek_records(cur, K.record_key(sid, start))
    first = K.read_u64(cur.key(), 8) if found and cur.key()[:8] == prefix else None
    if first is None or first > start:
        upto = first if first is not None else _tail(txn, db, sid)
        if upto > start and _gap(txn, db, cur, sid, found, upto):
            raise K.Damaged(f"stream id {sid}: records {start} to {upto - 1} missing")
        if first is None:
            return [], []
        cur.set_range(K.record_key(sid, first))
    # Records that stop short of the tail end this read early; the next one, starting where
    # they stopped, finds the hole above and raises.
    return K.decode_records(cur, prefix, max_count, max_bytes)


def seek(txn: Txn, db: Dbs, sid: int, timestamp: int, floor: int) -> int | None:
    """Seq_num of the first record of ``sid`` with a timestamp >= ``timestamp`` (at least
    ``floor``), or None; the index entry is checked against the records it points between.

    Raises:
        Damaged: the entry's record is missing or has another timestamp, or the record before
            it already qualifies (an entry is missing).
    """
    prefix = K.u64(sid)
    cur = txn.cursor(db=db.by_ts)
    if cur.set_range(K.ts_key(sid, timestamp, 0)) and cur.key()[:8] == prefix:
        _, ts, seq = K.split_ts_key(cur.key())
        if seq >= floor:
            key = K.record_key(sid, seq)
            value = txn.get(key, db=db.records)
            if value is None or K.record_timestamp(key, value) != ts:
                raise K.Damaged(f"stream id {sid}: the timestamp index disagrees at seq_num {seq}")
        answer: int | None = max(seq, floor)
        before = seq - 1
    else:
        answer, before = None, _tail(txn, db, sid) - 1
    if before >= floor:
        key = K.record_key(sid, before)
        value = txn.get(key, db=db.records)
        if value is not None and K.record_timestamp(key, value) >= timestamp:
            raise K.Damaged(f"stream id {sid}: the timestamp index misses seq_num {before}")
        if value is None:
            # Gone with its index entry: fine below the stream's first record, not above it.
            cur = txn.cursor(db=db.records)
            found = _seek_records(cur, key)
            if _gap(txn, db, cur, sid, found, before + 1):
                raise K.Damaged(f"stream id {sid}: the record at seq_num {before} is missing")
    return answer


def first_stored(txn: Txn, db: Dbs, sid: int, floor: int) -> int:
    """The lowest seq_num of ``sid`` stored from ``floor`` on, else its tail; checked.

    Raises:
        Damaged: that record fails its checksum, or records before it are missing.
    """
    prefix = K.u64(sid)
    cur = txn.cursor(db=db.records)
    found = _seek_records(cur, K.record_key(sid, floor))
    if found and cur.key()[:8] == prefix:
        key, value = cur.item()
        K.record_timestamp(key, value)  # checks it
        upto = K.read_u64(key, 8)
    else:
        upto = _tail(txn, db, sid)
    if upto > floor and _gap(txn, db, cur, sid, found, upto):
        raise K.Damaged(f"stream id {sid}: records {floor} to {upto - 1} missing")
    return upto


# --- the group commit ---------------------------------------------------------------------------


def put_share(txn: Txn, db: Dbs, share: Share, now: float) -> None:
    """Write one stream's records, timestamp index, expiry run and state."""
    sid, c = share.sid, share.commit
    if share.new_id is not None:
        txn.put(*share.new_id, db=db.ids)
    records = c.records
    if records:
        rows = []
        for r, size in zip(records, c.sizes, strict=True):
            key = K.record_key(sid, r[0])
            rows.append((key, K.encode_record(key, r, size)))
        _, added = txn.cursor(db=db.records).putmulti(rows, overwrite=False)
        if added != len(rows):  # would overwrite committed records: refuse the whole round
            raise RuntimeError(f"records of stream id {sid} from {records[0][0]} exist")
        txn.cursor(db=db.by_ts).putmulti([(K.ts_key(sid, r[1], r[0]), b"") for r in records])
        _extend_runs(txn, db, sid, records[0][0], share.expiry, now)
    prefix = K.u64(sid)
    tail, trim, last_write, token = K.state_wall_fields(prefix, txn.get(prefix, db=db.state))
    txn.put(
        prefix,
        K.encode_state(
            prefix,
            c.tail if c.tail is not None else tail,
            c.trim_point if c.trim_point is not None else trim,
            now if records else last_write,
            c.fencing_token if c.fencing_token is not None else token,
        ),
        db=db.state,
    )


def _extend_runs(txn: Txn, db: Dbs, sid: int, first: int, expiry: float, now: float) -> None:
    prefix = K.u64(sid)
    cur = txn.cursor(db=db.runs)
    found = cur.prev() if cur.set_range(K.u64(sid + 1)) else cur.last()
    if found and cur.key()[:8] == prefix:
        key = cur.key()
        last = K.decode_expiry(key, cur.value())
        slack = 0.0
        if not math.isinf(expiry):
            slack = min(max((expiry - now) / 100, RUN_SLACK[0]), RUN_SLACK[1])
        if last == expiry or 0 <= expiry - last <= slack:
            if expiry != last:
                txn.put(key, K.encode_expiry(key, expiry), db=db.runs)
            return
    key = K.run_key(sid, first)
    txn.put(key, K.encode_expiry(key, expiry), db=db.runs)


# --- background deletions -----------------------------------------------------------------------


def drop_below(txn: Txn, db: Dbs, sid: int, cut: int) -> tuple[bool, int]:
    """Delete up to :data:`CHUNK` records below ``cut`` (trim or retention) and up to as many
    of their index entries; returns whether more are left, and the metered bytes removed.

    Nothing is decoded (sizes are read unchecked), so a damaged record can still be removed.
    Index entries sort by timestamp, then seq_num, and timestamps never decrease along a
    stream: the entries of the records below ``cut`` are the stream's first ones, as the
    records are.
    """
    prefix = K.u64(sid)
    more = False
    dropped = 0
    for sub, offset in ((db.records, 8), (db.by_ts, 16)):
        cur = txn.cursor(db=sub)
        ok = cur.set_range(prefix)
        n = 0
        while ok and cur.key()[:8] == prefix and K.read_u64(cur.key(), offset) < cut:
            if n == CHUNK:
                more = True
                break
            if offset == 8:
                dropped += _size_of(cur.value())
            ok = cur.delete()
            n += 1
    if more:
        return True, dropped
    _cut_runs(txn, db, sid, cut)
    return False, dropped


def _size_of(value: bytes) -> int:
    """A record value's metered size, unchecked (0 for a value too short to hold one)."""
    return K.record_size(value) if len(value) >= 16 else 0


def sum_sizes(txn: Txn, db: Dbs, sid: int, start: int, total: int) -> tuple[int, int | None]:
    """Add the metered sizes of up to :data:`CHUNK` records of ``sid`` from seq_num ``start``
    on to ``total``; returns the sum and where to go on (None: the stream's end was reached).
    Sizes are read unchecked: a count, not a read (``s2kit lite verify`` checks values)."""
    prefix = K.u64(sid)
    cur = txn.cursor(db=db.records)
    ok = cur.set_range(K.record_key(sid, start))
    n = 0
    while ok and cur.key()[:8] == prefix:
        if n == CHUNK:
            return total, K.read_u64(cur.key(), 8)
        total += _size_of(cur.value())
        n += 1
        ok = cur.next()
    return total, None


def _cut_runs(txn: Txn, db: Dbs, sid: int, cut: int) -> None:
    prefix = K.u64(sid)
    cur = txn.cursor(db=db.runs)
    ok = cur.set_range(prefix)
    boundary = None
    while ok and cur.key()[:8] == prefix and K.read_u64(cur.key(), 8) < cut:
        boundary = K.decode_expiry(cur.key(), cur.value())
        ok = cur.delete()
    if boundary is not None and not (ok and cur.key() == K.run_key(sid, cut)):
        # The records from ``cut`` on belonged to the last run deleted: it starts there now.
        key = K.run_key(sid, cut)
        txn.put(key, K.encode_expiry(key, boundary), db=db.runs)


def _delete_prefix(txn: Txn, db: Any, prefix: bytes, limit: int) -> int:
    cur = txn.cursor(db=db)
    n = 0
    ok = cur.set_range(prefix)
    while ok and n < limit and cur.key()[:8] == prefix:
        ok = cur.delete()
        n += 1
    return n


def drop_stream(txn: Txn, db: Dbs, sid: int, id_key: bytes) -> bool:
    """Retire a deleted stream's id durably, then delete up to :data:`CHUNK` of its keys;
    True when everything is gone."""
    prefix = K.u64(sid)
    txn.put(prefix, K.seal(prefix, id_key), db=db.gc)
    current = txn.get(id_key, db=db.ids)
    if current is not None and current[:8] == prefix:  # not if the name was reused meanwhile
        txn.delete(id_key, db=db.ids)
    n = 0
    for sub in (db.records, db.by_ts, db.runs):
        n += _delete_prefix(txn, sub, prefix, CHUNK - n)
    if n >= CHUNK:
        return False
    txn.delete(prefix, db=db.state)
    txn.delete(prefix, db=db.gc)
    return True
