"""Lite's durable storage: one lmdb environment in a data directory.

Theory of operation
-------------------
* **One writer thread.** Every write — a group commit, a retention or trim deletion, the removal
  of a deleted stream — runs on one dedicated thread, in submission order, each in its own lmdb
  write transaction. With ``sync`` on, a commit returns only after lmdb's fdatasync, so when
  :meth:`LmdbStorage.commit_async` returns the round is durable, and the committer releases acks
  and feeds followers only then (docs/protocol.md#write-path-and-durability). The event loop
  never waits on a disk flush; it awaits the thread.
* **Atomic rounds.** A group commit is one transaction across all streams and the catalog
  rows of the round. If it fails (map full, disk full, I/O error) lmdb aborts it and nothing of
  it is visible; the engine fails every batch of the round with ``storage``. A full map is
  grown (doubling, up to ``max_map_size``) and the round retried once per step.
* **Reads on the loop.** lmdb reads are memory-mapped and never block on the writer (MVCC), so
  reads, seeks and state lookups run directly on the event loop in short read transactions.
  They see only committed transactions, so a reader never sees a record that could be lost.
* **Stream ids.** Records are keyed by a per-incarnation stream id (``_lmdb_keys.py``). The
  id map (name -> id) is in memory (one entry per stream, loaded at start); it is published
  before the first commit of a stream and withdrawn if that commit fails, which is harmless
  because an id without data reads as an empty stream.
* **Background deletions** run on the writer thread in chunks of ``_lmdb_txn.CHUNK`` keys, each
  chunk its own transaction, re-queued behind any commit that arrived meanwhile, so a big
  deletion never holds up appends for long. Trimmed or expired records become invisible at
  once (a per-stream read floor) and are removed behind it. The floors are computed again
  from the stored trim points and expiry runs at start, so a trim a reader saw before a
  crash holds from the first read after it. A deleted stream's id is retired
  in a durable ``gc`` row first, so a crash resumes the removal at the next start.

* **Stored bytes** (``stored_bytes``, for usage accounting) are a running total per stream
  kept by the writer thread: commits add their records' metered sizes, deletions subtract what
  they remove. Nothing persists them: after a start, each stream's total is counted again by
  background chunks on the writer thread (sizes only, no decoding), which run in order with
  the commits, so each record is counted exactly once; the stream's collections wait for it.

Nothing per record is kept in memory: the in-memory state is the id map, the read floors of
deletions in progress, the stored-bytes totals, and lmdb's page cache (the kernel's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import lmdb

from s2kit.server import _lmdb_faults as F
from s2kit.server import _lmdb_keys as K
from s2kit.server import _lmdb_txn as T
from s2kit.server._datadir import DataDirError, claim
from s2kit.server._storage import Storage, StreamCommit, StreamKey, StreamState

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from s2kit.server._storage import MetaRow
    from s2kit.types import RecordFields

log = logging.getLogger("s2kit.server")

DEFAULT_MAP_SIZE = 1 << 30
"""Initial map size; lmdb does not allocate it up front on Linux (the file grows as used)."""
MAX_MAP_SIZE = 1 << 40


@dataclass(frozen=True, slots=True, kw_only=True)
class LmdbStatistics:
    """What the store holds (from lmdb's own counters; cheap)."""

    streams: int
    """Stream ids in use."""
    records: int
    """Records stored (trimmed, expired and deleted ones count until removed)."""
    index_entries: int
    """Timestamp index entries (one per stored record)."""
    pending_deletions: int
    """Deleted streams whose records are still being removed, plus collections running."""
    map_size: int
    """Current lmdb map size in bytes."""
    used_bytes: int
    """Bytes of the map in use (pages up to the highest one written)."""


@dataclass(slots=True)
class _Plan:
    shares: list[T.Share]
    meta: Sequence[MetaRow]
    next_id: int | None
    now: float
    need: int
    """About the bytes the transaction writes (to tell a full disk from other failures)."""


class LmdbStorage(Storage):
    """Durable storage in ``path`` (created if missing; refused if foreign or locked).

    Args:
        path: the data directory.
        map_size: initial lmdb map size in bytes.
        max_map_size: the map grows by doubling up to this; past it commits fail ``storage``.
        check_pages: verify every lmdb page before lmdb reads any (``_lmdb_txn``): a damaged
            page could crash the process later. Costs about 3 s per GB of 1 KiB records at
            start-up (more for smaller records).

    Raises:
        DataDirError: the directory is foreign, corrupt, newer, or used by another process.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        max_map_size: int = MAX_MAP_SIZE,
        check_pages: bool = True,
    ) -> None:
        self.path, self._dir_lock, _ = claim(path)
        self._faults = F.FaultLog(self.path)
        self._floor: dict[int, int] = {}
        try:
            self._env = T.open_env(self.path, map_size, check_pages=check_pages)
            self._db = T.Dbs(self._env)
            with self._env.begin() as txn:
                self._next_id, self._ids, doomed = T.load_ids(txn, self._db)
                # Every metadata row is read here and checked, and each stream's records are
                # checked at both ends, so a damaged file is refused now rather than found by
                # a reader. A trim or expiry that a reader may have seen must hold from the
                # first read after a restart: the floors start where they stood.
                wall = time.time()
                for sid in self._ids.values():
                    T.check_stream(txn, self._db, sid)
                    if cut := self._cut(txn, sid, wall):
                        self._floor[sid] = cut
        except T.DAMAGE as exc:
            self._abandon()
            raise DataDirError(
                f"{self.path / 'data.mdb'} is damaged ({exc}); refusing to use it "
                f"(`s2kit lite verify --data-dir {self.path}` lists all the damage)"
            ) from None
        except BaseException:
            self._abandon()
            raise
        self.max_map_size = max(max_map_size, map_size)
        self._lock = threading.Lock()
        """Held by loop-side reads and by map resizing (lmdb: no live transactions then)."""
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="s2kit-lmdb")
        self._closed = False
        self._busy: set[int] = set()
        self._retry: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self._stored: dict[int, int] = {}
        """Stored metered bytes per stream id; written by the writer thread only."""
        self._counting: set[int] = set(self._ids.values())
        """Stream ids whose stored bytes are still being counted (after a start)."""
        for sid, id_key in doomed:  # deletions a crash interrupted
            self._submit(self._gc_step, sid, id_key)
        for sid in list(self._counting):  # the writer thread removes them as it goes
            self._submit(self._count_stored, sid, 0, 0)

    def _abandon(self) -> None:
        """Undo a failed start: nothing was written."""
        if hasattr(self, "_env"):
            self._env.close()
        self._dir_lock.release()

    # --- writes ---------------------------------------------------------------------------------

    def commit(self, batch: Sequence[StreamCommit], meta: Sequence[MetaRow] = ()) -> None:
        plan = self._plan(batch, meta)
        try:
            self._write(plan)
        except BaseException:
            self._unplan(plan)
            raise

    async def commit_async(
        self, batch: Sequence[StreamCommit], meta: Sequence[MetaRow] = ()
    ) -> None:
        self._kick()
        plan = self._plan(batch, meta)
        fut = asyncio.get_running_loop().run_in_executor(self._writer, self._write, plan)

        def settled(f: asyncio.Future[None]) -> None:
            # Cancelled (shutdown) leaves the outcome unknown: keep the ids, which read as
            # empty streams if the transaction never happened.
            if not f.cancelled() and f.exception() is not None:
                self._unplan(plan)

        fut.add_done_callback(settled)
        await fut

    def _plan(self, batch: Sequence[StreamCommit], meta: Sequence[MetaRow]) -> _Plan:
        now = time.time()
        offset = now - time.monotonic()
        shares = []
        allocated = False
        need = F.WRITE_HEADROOM
        for c in batch:
            sid = self._ids.get(c.key)
            name = None
            if sid is None:
                sid, self._next_id = self._next_id, self._next_id + 1
                self._ids[c.key] = sid
                self._stored[sid] = 0
                name, allocated = (K.id_key(c.key), K.id_value(sid, c.key)), True
            expiry = K.NEVER if c.expiry is None else c.expiry + offset
            shares.append(T.Share(sid, name, c, expiry))
            need += 2 * sum(c.sizes)
        need += sum(len(v) for _, v in meta if v is not None)
        return _Plan(shares, meta, self._next_id if allocated else None, now, need)

    def _unplan(self, plan: _Plan) -> None:
        for s in plan.shares:
            if s.new_id is not None and self._ids.get(s.commit.key) == s.sid:
                del self._ids[s.commit.key]
                self._stored.pop(s.sid, None)

    def _write(self, plan: _Plan) -> None:
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    if plan.next_id is not None:
                        txn.put(b"next", K.encode_next_id(plan.next_id), db=self._db.meta)
                    for share in plan.shares:
                        T.put_share(txn, self._db, share, plan.now)
                    for key, value in plan.meta:
                        if value is None:
                            txn.delete(key, db=self._db.catalog)
                        else:
                            txn.put(key, K.seal(key, value), db=self._db.catalog)
            except lmdb.MapFullError:
                if self._grow():
                    continue
                raise self._faults.failed(
                    "the store is full", f"the lmdb map reached its maximum of {self.max_map_size}"
                ) from None
            except lmdb.Error as exc:
                raise self._faults.write_failed(exc, plan.need) from None
            except T.DAMAGE as exc:  # a state or expiry row the commit had to read
                self._faults.damaged("a stream written by this commit", str(exc))
                raise F.StorageFailure("stored data is damaged") from None
            self._faults.write_succeeded()
            stored = self._stored
            for share in plan.shares:
                if share.sid in stored and share.commit.sizes:
                    stored[share.sid] += sum(share.commit.sizes)
            return

    def _grow(self) -> bool:
        size = self._env.info()["map_size"]
        if size >= self.max_map_size:
            return False
        new = min(size * 2, self.max_map_size)
        with self._lock:
            self._env.set_mapsize(new)
        log.info("lmdb map grown from %d to %d bytes", size, new)
        return True

    # --- reads (on the event loop) --------------------------------------------------------------

    def _damaged(self, key: StreamKey, exc: Exception) -> F.DamagedData:
        return self._faults.damaged(f"stream {key[0]}/{key[1]}", str(exc))

    def state(self, key: StreamKey) -> StreamState:
        sid = self._ids.get(key)
        if sid is None:
            return StreamState()
        prefix = K.u64(sid)
        try:
            with self._lock, self._env.begin(db=self._db.state) as txn:
                raw = txn.get(prefix)
                if raw is None:
                    return StreamState()
                return K.decode_state(prefix, raw, time.monotonic() - time.time())
        except T.DAMAGE as exc:
            raise self._damaged(key, exc) from None

    def read(
        self, key: StreamKey, start: int, max_count: int, max_bytes: int
    ) -> tuple[list[RecordFields], list[int]]:
        sid = self._ids.get(key)
        if sid is None or max_count <= 0:
            return [], []
        start = max(start, self._floor.get(sid, 0))
        try:
            with self._lock, self._env.begin() as txn:
                return T.read_records(txn, self._db, sid, start, max_count, max_bytes)
        except T.DAMAGE as exc:
            raise self._damaged(key, exc) from None

    def seek_timestamp(self, key: StreamKey, timestamp: int) -> int | None:
        sid = self._ids.get(key)
        if sid is None:
            return None
        try:
            with self._lock, self._env.begin() as txn:
                return T.seek(txn, self._db, sid, timestamp, self._floor.get(sid, 0))
        except T.DAMAGE as exc:
            raise self._damaged(key, exc) from None

    def first_seq_num(self, key: StreamKey) -> int:
        sid = self._ids.get(key)
        if sid is None:
            return 0
        try:
            with self._lock, self._env.begin() as txn:
                return T.first_stored(txn, self._db, sid, self._floor.get(sid, 0))
        except T.DAMAGE as exc:
            raise self._damaged(key, exc) from None

    def statistics(self) -> LmdbStatistics:
        """Counters for tests and operators."""
        with self._lock, self._env.begin() as txn:
            count = {
                name: txn.stat(db)["entries"]
                for name, db in (
                    ("records", self._db.records),
                    ("by_ts", self._db.by_ts),
                    ("gc", self._db.gc),
                )
            }
        info, psize = self._env.info(), self._env.stat()["psize"]
        return LmdbStatistics(
            streams=len(self._ids),
            records=count["records"],
            index_entries=count["by_ts"],
            pending_deletions=count["gc"] + len(self._busy),
            map_size=info["map_size"],
            used_bytes=(info["last_pgno"] + 1) * psize,
        )

    def stored_bytes(self, key: StreamKey) -> int | None:
        sid = self._ids.get(key)
        if sid is None:
            return 0
        return self._stored.get(sid)

    def load_catalog(self) -> list[tuple[bytes, bytes]]:
        rows = []
        try:
            with self._lock, self._env.begin(db=self._db.catalog) as txn:
                for key, value in txn.cursor():
                    rows.append((key, K.unseal(key, value, f"the row {key!r}")))
        except T.DAMAGE as exc:
            raise DataDirError(
                f"corrupt catalog row in {self.path / 'data.mdb'} ({exc}); refusing to use it "
                f"(`s2kit lite verify --data-dir {self.path}` lists all the damage)"
            ) from None
        return rows

    # --- background deletions --------------------------------------------------------------------

    def delete_stream(self, key: StreamKey) -> None:
        self._kick()
        sid = self._ids.pop(key, None)
        if sid is not None:
            # Queued behind any commit of this incarnation still in flight: FIFO on one thread.
            self._submit(self._gc_step, sid, K.id_key(key))

    def collect(self, key: StreamKey, now: float) -> int:
        self._kick()
        sid = self._ids.get(key)
        if sid is None or sid in self._busy or sid in self._counting:
            return 0
        wall = now + (time.time() - time.monotonic())
        prefix = K.u64(sid)
        try:
            with self._lock, self._env.begin() as txn:
                cur = txn.cursor(db=self._db.records)
                # From the first record stored, not the floor: a floor set at start has
                # records below it still to remove.
                if not (cur.set_range(prefix) and cur.key()[:8] == prefix):
                    return 0
                first = K.read_u64(cur.key(), 8)
                cut = self._cut(txn, sid, wall)
        except T.DAMAGE as exc:
            self._damaged(key, exc)  # logged; the pass goes on with the other streams
            return 0
        if cut <= first:
            return 0
        self._floor[sid] = cut
        self._busy.add(sid)
        self._submit(self._drop_below, sid, cut)
        return cut - first

    def _cut(self, txn: T.Txn, sid: int, wall: float) -> int:
        """Where reads of stream ``sid`` start: past its trim point and its expired records
        (``wall``: now, in wall seconds), never past its tail."""
        prefix = K.u64(sid)
        raw = txn.get(prefix, db=self._db.state)
        if raw is None:
            return 0
        tail, cut, _, _ = K.state_wall_fields(prefix, raw)
        runs = txn.cursor(db=self._db.runs)
        ok = runs.set_range(prefix) and runs.key()[:8] == prefix
        # Expiry runs are in write order; the leading runs that have expired go.
        while ok and K.decode_expiry(runs.key(), runs.value()) <= wall:
            ok = runs.next() and runs.key()[:8] == prefix
            cut = max(cut, K.read_u64(runs.key(), 8) if ok else tail.seq_num)
        return min(cut, tail.seq_num)

    def _submit(self, fn: Callable[..., None], *args: object) -> None:
        if self._closed:
            return
        with contextlib.suppress(RuntimeError):  # shut down meanwhile
            self._writer.submit(self._guarded, fn, *args)

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            if isinstance(exc, lmdb.Error):  # the disk refused the write (full?): one line
                self._faults.write_failed(exc, F.WRITE_HEADROOM)
            elif isinstance(exc, T.DAMAGE):
                self._faults.damaged(f"stream id {args[0]}", str(exc))
            else:
                log.exception("background storage job %s failed; retried later", fn.__name__)
            if fn == self._drop_below:
                self._busy.discard(args[0])  # the next collect pass plans it again
            else:
                self._retry.append((fn, args))
        else:
            self._faults.write_succeeded()

    def _kick(self) -> None:
        """Re-queue background jobs that failed (e.g. while the disk was full)."""
        if self._retry:
            jobs, self._retry = self._retry, []
            for fn, args in jobs:
                self._submit(fn, *args)

    def _drop_below(self, sid: int, cut: int) -> None:
        with self._env.begin(write=True) as txn:
            more, dropped = T.drop_below(txn, self._db, sid, cut)
        if sid in self._stored:
            self._stored[sid] -= dropped
        if more:
            self._submit(self._drop_below, sid, cut)  # behind any commit queued meanwhile
        else:
            self._busy.discard(sid)

    def _gc_step(self, sid: int, id_key: bytes) -> None:
        with self._env.begin(write=True) as txn:
            done = T.drop_stream(txn, self._db, sid, id_key)
        if done:
            self._floor.pop(sid, None)
            self._stored.pop(sid, None)
            self._counting.discard(sid)
        else:
            self._submit(self._gc_step, sid, id_key)

    def _count_stored(self, sid: int, start: int, total: int) -> None:
        """Count a stream's stored bytes after a start, a chunk at a time (see the module)."""
        if sid not in self._counting:
            return  # deleted meanwhile
        with self._env.begin() as txn:
            total, more_from = T.sum_sizes(txn, self._db, sid, start, total)
        if more_from is not None:
            self._submit(self._count_stored, sid, more_from, total)
            return
        self._stored[sid] = total
        self._counting.discard(sid)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Queued background chunks are dropped: they resume from the gc rows or the next
        # collect pass after a restart.
        self._writer.shutdown(wait=True, cancel_futures=True)
        self._env.close()
        self._dir_lock.release()
