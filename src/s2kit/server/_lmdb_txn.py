"""Lite's lmdb environment and the write transactions' bodies (run on the writer thread).

``open_env`` opens (or initializes) the environment and refuses foreign or newer ones. The
functions below each do one job inside a write transaction handed to them; ``_lmdb.py``
decides when they run. Layouts are in ``_lmdb_keys.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import lmdb

from s2kit.server import _lmdb_keys as K
from s2kit.server._datadir import DataDirError

if TYPE_CHECKING:
    from pathlib import Path

    from s2kit.server._storage import StreamCommit

Txn: TypeAlias = "lmdb.Transaction[bytes]"  # generic in the stubs only

CHUNK = 10_000
"""Keys deleted per background transaction."""
RUN_SLACK = (1.0, 60.0)
"""A commit joins the stream's last run when its expiry is later by at most 1 % of the
retention age, clamped to this range (seconds): records may outlive their age by that much."""


class Dbs:
    """Handles of the named databases."""

    def __init__(self, env: lmdb.Environment) -> None:
        h = {name: env.open_db(name) for name in K.DB_NAMES}
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


def open_env(root: Path, map_size: int) -> lmdb.Environment:
    """Open lmdb in ``root``; a new or empty file is initialized with the format marker.

    Raises:
        DataDirError: not an lmdb file, not lite's, or a newer format version.
    """
    try:
        env = lmdb.open(
            str(root),
            map_size=map_size,
            max_dbs=len(K.DB_NAMES),
            meminit=False,
            sync=True,
            metasync=True,
        )
    except lmdb.Error as exc:
        raise DataDirError(
            f"{root / 'data.mdb'} is corrupt or not an lmdb file ({type(exc).__name__}: {exc}); "
            "refusing to use it"
        ) from None
    try:
        _check_format(env, root)
    except BaseException:
        env.close()
        raise
    return env


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
            fmt, version = txn.get(b"format", db=meta), txn.get(b"version", db=meta)
            if fmt != K.FORMAT or version is None or not version.isdigit():
                raise foreign
            if int(version) > K.VERSION:
                raise DataDirError(
                    f"{root} was written by a newer s2kit (format version {int(version)}; "
                    f"this one reads version {K.VERSION})"
                )
            return
    # A new (or never initialized) file: nothing in it to lose.
    with env.begin(write=True) as txn:
        meta = env.open_db(b"meta", txn=txn)
        for name in K.DB_NAMES[1:]:
            env.open_db(name, txn=txn)
        txn.put(b"format", K.FORMAT, db=meta)
        txn.put(b"version", str(K.VERSION).encode(), db=meta)
        txn.put(b"next", K.u64(1), db=meta)


# --- the group commit ---------------------------------------------------------------------------


def put_share(txn: Txn, db: Dbs, share: Share, now: float) -> None:
    """Write one stream's records, timestamp index, expiry run and state."""
    sid, c = share.sid, share.commit
    if share.new_id is not None:
        txn.put(*share.new_id, db=db.ids)
    records = c.records
    if records:
        rows = [
            (K.record_key(sid, r[0]), K.encode_record(r, size))
            for r, size in zip(records, c.sizes, strict=True)
        ]
        _, added = txn.cursor(db=db.records).putmulti(rows, overwrite=False)
        if added != len(rows):  # would overwrite committed records: refuse the whole round
            raise RuntimeError(f"records of stream id {sid} from {records[0][0]} exist")
        txn.cursor(db=db.by_ts).putmulti([(K.ts_key(sid, r[1], r[0]), b"") for r in records])
        _extend_runs(txn, db, sid, records[0][0], share.expiry, now)
    prefix = K.u64(sid)
    tail, trim, last_write, token = K.state_wall_fields(txn.get(prefix, db=db.state))
    txn.put(
        prefix,
        K.encode_state(
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
    if found and cur.key().startswith(prefix):
        last = K.decode_expiry(cur.value())
        slack = 0.0
        if not math.isinf(expiry):
            slack = min(max((expiry - now) / 100, RUN_SLACK[0]), RUN_SLACK[1])
        if last == expiry or 0 <= expiry - last <= slack:
            if expiry != last:
                txn.put(cur.key(), K.encode_expiry(expiry), db=db.runs)
            return
    txn.put(K.run_key(sid, first), K.encode_expiry(expiry), db=db.runs)


# --- background deletions -----------------------------------------------------------------------


def drop_below(txn: Txn, db: Dbs, sid: int, cut: int) -> bool:
    """Delete up to :data:`CHUNK` records below ``cut`` (trim or retention); True if more."""
    prefix = K.u64(sid)
    cur = txn.cursor(db=db.records)
    ok = cur.set_range(prefix)
    n = 0
    while ok and cur.key().startswith(prefix) and (seq := K.read_u64(cur.key(), 8)) < cut:
        if n == CHUNK:
            return True
        txn.delete(K.ts_key(sid, K.record_timestamp(cur.value()), seq), db=db.by_ts)
        ok = cur.delete()
        n += 1
    _cut_runs(txn, db, sid, cut)
    return False


def _cut_runs(txn: Txn, db: Dbs, sid: int, cut: int) -> None:
    prefix = K.u64(sid)
    cur = txn.cursor(db=db.runs)
    ok = cur.set_range(prefix)
    boundary = None
    while ok and cur.key().startswith(prefix) and K.read_u64(cur.key(), 8) < cut:
        boundary = cur.value()
        ok = cur.delete()
    if boundary is not None and not (ok and cur.key() == K.run_key(sid, cut)):
        # The records from ``cut`` on belonged to the last run deleted: it starts there now.
        txn.put(K.run_key(sid, cut), boundary, db=db.runs)


def _delete_prefix(txn: Txn, db: Any, prefix: bytes, limit: int) -> int:
    cur = txn.cursor(db=db)
    n = 0
    ok = cur.set_range(prefix)
    while ok and n < limit and cur.key().startswith(prefix):
        ok = cur.delete()
        n += 1
    return n


def drop_stream(txn: Txn, db: Dbs, sid: int, id_key: bytes) -> bool:
    """Retire a deleted stream's id durably, then delete up to :data:`CHUNK` of its keys;
    True when everything is gone."""
    prefix = K.u64(sid)
    txn.put(prefix, id_key, db=db.gc)
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
