"""Lite's stream engine: one owner per stream sequences appends; one committer makes them durable.

Theory of operation
-------------------
* ``StreamOwner.append`` runs synchronously on the event loop, so appends to a stream are
  sequenced in arrival order without locks: conditions (fencing token, match_seq_num) are
  checked against the *pending* state, which includes earlier appends not yet durable, so
  pipelined sessions work (docs/protocol.md#append-conditions). Seq_nums and timestamps are
  assigned there and then.
* The sequenced batch waits in the owner's ``unflushed`` list. The :class:`Committer` wakes at
  most every flush interval, takes every dirty owner's batches and hands them to storage in one
  commit (group commit across streams). Only after the commit returns are acks released, in
  order, and the records broadcast to followers (docs/protocol.md#write-path-and-durability): an
  ack means durable, and no reader sees a record that could still be lost.
* If a commit fails, every batch of that round fails with ``storage``, and so does every batch
  sequenced on top of them; the pending state rolls back to the committed state.
* A condition failure (412) is reported only once everything before it is durable, so the
  state it reports is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING

from s2kit.errors import ErrorCode, FencingTokenMismatch, S2Error, SeqNumMismatch, ServerError
from s2kit.server._crypto import encode_envelope
from s2kit.server._storage import Reported, Storage, StreamCommit, StreamKey
from s2kit.types import (
    AppendAck,
    EncryptionAlgorithm,
    RecordFields,
    StreamPosition,
    TimestampingMode,
)
from s2kit.wire._pbdec import PlainInput

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from s2kit.server._catalog import StreamMeta
    from s2kit.server._crypto import RecordCipher
    from s2kit.server._meta import MetaLog
    from s2kit.server._storage import MetaRow
    from s2kit.types import AppendInput

log = logging.getLogger("s2kit.server")

FOLLOWER_CAPACITY = 25
"""Live batches a follower may have queued before it is switched to a storage scan..."""
FOLLOWER_MAX_BYTES = 8 << 20
"""...and their metered bytes. The batches are shared by every follower, so this bounds the
recent commits that followers which fell behind keep in memory, together (a storage scan
serves them from there on)."""
AES_GCM_MAX_SEQ_NUM = 2**32 - 1


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch (record timestamps)."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True, eq=False)
class _Pending:
    future: asyncio.Future[AppendAck]
    records: list[RecordFields]
    sizes: list[int]
    start: StreamPosition
    end: StreamPosition
    fencing_token: str | None
    trim_point: int | None
    expiry: float | None


class Follower:
    """A reader waiting at the live tail: receives committed batches from the owner."""

    def __init__(self, capacity: int = FOLLOWER_CAPACITY) -> None:
        self.batches: deque[tuple[list[RecordFields], list[int], int]] = deque()
        """Committed batches not yet taken: records, their metered sizes, their total."""
        self.queued = 0
        """Metered bytes in ``batches``."""
        self.capacity = capacity
        self.lagged = False
        self.error: S2Error | None = None
        self.wakeup = asyncio.Event()
        self.due = math.inf
        """When (loop time) the waiting read must wake with nothing pushed: its next
        heartbeat or its ``wait`` deadline. The backend's ticker wakes it then
        (:func:`wake_due`): no timer per follower."""

    def push(self, records: list[RecordFields], sizes: list[int], nbytes: int) -> None:
        """Queue a committed batch (``nbytes``: its metered size); past the capacity in
        batches or bytes the follower lags and must rescan."""
        if self.lagged:
            return
        if self.batches and (
            len(self.batches) >= self.capacity or self.queued + nbytes > FOLLOWER_MAX_BYTES
        ):
            self.lagged = True
            self.batches.clear()
            self.queued = 0
        else:
            self.batches.append((records, sizes, nbytes))
            self.queued += nbytes
        self.wakeup.set()

    def take(self) -> tuple[list[RecordFields], list[int]]:
        """The oldest queued batch."""
        records, sizes, nbytes = self.batches.popleft()
        self.queued -= nbytes
        return records, sizes

    def put_back(self, records: list[RecordFields], sizes: list[int]) -> None:
        """Queue what was taken and not used, first."""
        nbytes = sum(sizes)
        self.batches.appendleft((records, sizes, nbytes))
        self.queued += nbytes

    def close(self, error: S2Error) -> None:
        """End the follow with ``error``."""
        self.error = error
        self.wakeup.set()


FOLLOW_TICK = 0.25
"""Seconds between passes of the follower ticker: the precision of heartbeats and of a
read's ``wait`` deadline."""


def wake_due(owners: Iterable[StreamOwner], now: float) -> None:
    """Wake every follower whose heartbeat or deadline is due (one pass of the ticker).

    One sweep over all followers a few times a second costs far less than a timer armed and
    cancelled by each of 10,000 followers on every wait (a heap push and pop each time).
    """
    for owner in owners:
        for follower in owner.followers:
            if follower.due <= now:
                follower.due = math.inf
                follower.wakeup.set()


@dataclass(slots=True, eq=False)
class StreamOwner:
    """Sole sequencer of one stream's appends and publisher of its committed tail."""

    key: StreamKey
    meta: StreamMeta
    committer: Committer
    tail: StreamPosition
    """Committed (durable) tail."""
    fencing_token: str
    trim_point: int
    next_seq: int = 0
    max_ts: int = 0
    pending_token: str = ""
    pending_trim: int = 0
    unflushed: list[_Pending] = field(default_factory=list)
    inflight: list[_Pending] = field(default_factory=list)
    followers: set[Follower] = field(default_factory=set)
    readers: int = 0
    """Read sessions holding this owner; they keep it from going dormant."""
    last_active: float = field(default_factory=time.monotonic)
    closed: S2Error | None = None
    on_write: Callable[[StreamOwner], None] | None = None
    """Called after each sequenced append to a stream with delete-on-empty on (the backend
    arms its checks)."""
    doe_refreshed: float | None = None
    """Monotonic time a write last armed a delete-on-empty check; per owner, like s2-lite's
    per-streamer rate limit."""

    def __post_init__(self) -> None:
        self._rollback()

    def _rollback(self) -> None:
        self.next_seq = self.tail.seq_num
        self.max_ts = self.tail.timestamp
        self.pending_token = self.fencing_token
        self.pending_trim = self.trim_point

    @property
    def busy(self) -> bool:
        """Whether appends are pending or reads are in progress."""
        return bool(self.unflushed or self.inflight or self.followers or self.readers)

    def condition_failure(self, inp: AppendInput | PlainInput) -> S2Error | None:
        """The 412 ``inp`` fails with against the pending state, if any."""
        if inp.fencing_token is not None and inp.fencing_token != self.pending_token:
            return FencingTokenMismatch(self.pending_token)
        if inp.match_seq_num is not None and inp.match_seq_num != self.next_seq:
            return SeqNumMismatch(self.next_seq)
        return None

    def reject(self, error: S2Error) -> asyncio.Future[AppendAck]:
        """A future failing with ``error`` once everything before it is durable."""
        fut: asyncio.Future[AppendAck] = asyncio.get_running_loop().create_future()
        pending = self.unflushed or self.inflight
        if not pending:
            fut.set_exception(error)
            return fut

        def fail(_: object) -> None:
            if not fut.done():
                fut.set_exception(error)

        pending[-1].future.add_done_callback(fail)
        return fut

    def append(
        self,
        inp: AppendInput | PlainInput,
        sizes: list[int],
        cipher: RecordCipher | None = None,
    ) -> asyncio.Future[AppendAck]:
        """Sequence a validated batch; the future resolves with its ack once durable.

        Raises:
            ServerError: ``invalid`` (timestamps, AES-GCM limit) or the stream's closing error.
        """
        if self.closed is not None:
            raise self.closed
        self.last_active = time.monotonic()
        if (failure := self.condition_failure(inp)) is not None:
            return self.reject(failure)
        cfg = self.meta.config
        ts_cfg = cfg.timestamping
        mode = ts_cfg.mode if ts_cfg is not None else None
        uncapped = bool(ts_cfg.uncapped) if ts_cfg is not None else False
        now = now_ms()
        n = len(sizes)
        seq = self.next_seq
        if isinstance(inp, PlainInput) and (
            cipher is not None or mode is TimestampingMode.CLIENT_REQUIRE
        ):
            inp = inp.as_input()  # sealing and missing timestamps are per record
        if (
            cipher is not None
            and cipher.algorithm is EncryptionAlgorithm.AES_256_GCM
            and seq + n - 1 > AES_GCM_MAX_SEQ_NUM
        ):
            _check_aes_gcm_limit(inp, sizes, seq)
        max_ts = self.max_ts
        token, trim = self.pending_token, self.pending_trim
        out: list[RecordFields]
        if isinstance(inp, PlainInput):
            # Bodies alone: every record takes the arrival time (never below the stream's
            # latest), carries no command, and is built in one C-level pass.
            max_ts = max(now, max_ts)
            out = list(
                zip(range(seq, seq + n), repeat(max_ts, n), repeat((), n), inp.bodies, strict=True)
            )
            seq += n
        else:
            out = []
            add = out.append
            arrival = mode is TimestampingMode.ARRIVAL
            require = mode is TimestampingMode.CLIENT_REQUIRE
            for r in inp.records:
                ts = r.timestamp
                if arrival or ts is None:
                    if require:
                        raise ServerError.for_code(
                            ErrorCode.INVALID, "record timestamp was required but was missing"
                        )
                    ts = now
                elif ts > now and not uncapped:
                    ts = now
                if ts < max_ts:
                    ts = max_ts
                max_ts = ts
                headers, body = r.headers, r.body
                if headers:
                    if len(headers) == 1 and not headers[0][0]:
                        op = headers[0][1]
                        if op == b"fence":
                            token = body.decode()
                        elif op == b"trim":
                            # A trim never trims past itself and only moves forward.
                            trim = max(trim, min(struct.unpack(">Q", body)[0], seq + 1))
                    elif cipher is not None:
                        body = cipher.encrypt(encode_envelope(headers, body))
                        headers = ()
                elif cipher is not None:
                    body = cipher.encrypt(encode_envelope(headers, body))
                add((seq, ts, headers, body))  # a plain tuple: see RecordFields
                seq += 1
        retention = cfg.retention_policy
        expiry = None if not isinstance(retention, int) else time.monotonic() + retention
        first = out[0]
        pending = _Pending(
            future=asyncio.get_running_loop().create_future(),
            records=out,
            sizes=sizes,
            start=StreamPosition(first[0], first[1]),
            end=StreamPosition(seq, max_ts),
            fencing_token=token if token != self.pending_token else None,
            trim_point=trim if trim != self.pending_trim else None,
            expiry=expiry,
        )
        self.next_seq, self.max_ts = seq, max_ts
        self.pending_token, self.pending_trim = token, trim
        self.unflushed.append(pending)
        self.committer.mark_dirty(self)
        if self.on_write is not None and cfg.delete_on_empty_min_age_secs:
            self.on_write(self)
        return pending.future

    def take(self) -> StreamCommit | None:
        """Move unflushed batches in flight and describe them as one commit."""
        if not self.unflushed:
            return None
        batch, self.unflushed = self.unflushed, []
        self.inflight.extend(batch)
        commit = StreamCommit(key=self.key, tail=batch[-1].end)
        for p in batch:
            commit.records.extend(p.records)
            commit.sizes.extend(p.sizes)
            if p.fencing_token is not None:
                commit.fencing_token = p.fencing_token
            if p.trim_point is not None:
                commit.trim_point = p.trim_point
        # One expiry per commit run: the latest of the run's batches keeps everything long enough.
        expiries = [p.expiry for p in batch]
        commit.expiry = None if None in expiries else max(e for e in expiries if e is not None)
        return commit

    def committed(self, commit: StreamCommit) -> None:
        """Release the acks of a durable commit, then feed followers."""
        n = len(commit.records)
        done: list[_Pending] = []
        count = 0
        while count < n:
            p = self.inflight.pop(0)
            done.append(p)
            count += len(p.records)
        assert commit.tail is not None
        self.tail = commit.tail
        if commit.fencing_token is not None:
            self.fencing_token = commit.fencing_token
        if commit.trim_point is not None:
            self.trim_point = commit.trim_point
        tail = self.tail
        for p in done:
            if not p.future.done():
                p.future.set_result(AppendAck(start=p.start, end=p.end, tail=tail))
        # Plaintext metered sizes travel with the records: followers need them for their
        # bytes limits, and sealed records cannot tell them.
        records, sizes = commit.records, commit.sizes
        if self.followers:
            nbytes = sum(sizes)
            for f in self.followers:
                f.push(records, sizes, nbytes)

    def commit_failed(self, error: BaseException) -> None:
        """Fail everything in flight and everything sequenced on top; roll back."""
        failure = ServerError.for_code(ErrorCode.STORAGE, f"storage error: {error}")
        for p in self.inflight + self.unflushed:
            if not p.future.done():
                p.future.set_exception(failure)
        self.inflight.clear()
        self.unflushed.clear()
        self._rollback()

    def close(self, error: S2Error) -> None:
        """Refuse further appends and end followers with ``error``."""
        self.closed = error
        for f in self.followers:
            f.close(error)
        self.followers.clear()


def _is_command(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    return len(headers) == 1 and not headers[0][0]


def _check_aes_gcm_limit(inp: AppendInput | PlainInput, sizes: list[int], first: int) -> None:
    """Refuse a batch that would seal a record past the AES-256-GCM bound.

    Only sealed records count: command records are stored in plaintext and exempt, as in
    s2-lite, so fencing and trimming keep working on a stream at the bound. The error names
    the first record past it, as s2-lite's does.
    """
    for i in range(max(AES_GCM_MAX_SEQ_NUM + 1 - first, 0), len(sizes)):
        # Bodies alone (a PlainInput) are all sealed.
        if isinstance(inp, PlainInput) or not _is_command(inp.records[i].headers):
            raise ServerError.for_code(
                ErrorCode.INVALID,
                f"max assignable sequence number is {AES_GCM_MAX_SEQ_NUM}; attempted {first + i}",
            )


def commit_slot(last: float, now: float, interval: float) -> float:
    """When a commit may run, given the previous one's slot: now, or one interval after it.

    The slot, not the time the loop actually woke up for it, is what the next one counts
    from: timers fire up to a millisecond late, and counting that lateness pushed every later
    slot back, so appends arriving a little over an interval apart locked into waiting about
    3 ms each instead of committing at once.
    """
    return max(now, last + interval)


class Committer:
    """Group commit: one storage commit per flush interval across all streams."""

    def __init__(
        self,
        storage: Storage,
        flush_interval: float,
        meta: MetaLog | None = None,
    ) -> None:
        self.storage = storage
        self.flush_interval = flush_interval
        self._dirty: dict[StreamKey, StreamOwner] = {}
        self._wake = asyncio.Event()
        self.commits = 0
        self.meta = meta
        """Catalog changes to persist with each round (durable storage only)."""
        if meta is not None:
            meta.wake = self._wake.set
        self.on_commit: Callable[[float, Sequence[StreamCommit]], None] | None = None
        """Told how long each successful round took in storage (operator metrics)."""

    def mark_dirty(self, owner: StreamOwner) -> None:
        """Schedule ``owner``'s unflushed batches for the next commit."""
        self._dirty[owner.key] = owner
        self._wake.set()

    async def run(self) -> None:
        """Commit loop; runs until cancelled (then commits what is pending one last time)."""
        loop = asyncio.get_running_loop()
        last = -math.inf
        try:
            while True:
                await self._wake.wait()
                # At most one commit per interval, on a free-running schedule: an append that
                # arrives after a quiet spell commits at once, a busy stream waits for the
                # next slot and shares its commit with everything that arrived meanwhile.
                now = loop.time()
                last = commit_slot(last, now, self.flush_interval)
                if last > now:
                    await asyncio.sleep(last - now)
                await self.commit_once()
        finally:
            with contextlib.suppress(Exception):
                await self.commit_once()

    async def commit_once(self) -> None:
        """Commit every dirty owner's pending batches now."""
        self._wake.clear()
        owners, self._dirty = list(self._dirty.values()), {}
        work = [(o, c) for o in owners if (c := o.take()) is not None]
        meta = self.meta.take() if self.meta is not None else None
        if not work and meta is None:
            return
        commits = [c for _, c in work]
        started = time.perf_counter()
        try:
            await self._commit(commits, meta.rows if meta is not None else ())
        except Exception as exc:
            if not isinstance(exc, Reported):  # storage logged a full disk itself, once
                log.exception("commit of %d streams failed", len(commits))
            for o, _ in work:
                o.commit_failed(exc)
            if meta is not None and self.meta is not None:
                self.meta.failed(meta, exc)
            return
        self.commits += 1
        if self.on_commit is not None:
            self.on_commit(time.perf_counter() - started, commits)
        if meta is not None and self.meta is not None:
            self.meta.done(meta)
        for o, c in work:
            o.committed(c)

    async def _commit(self, commits: list[StreamCommit], meta: Sequence[MetaRow] = ()) -> None:
        # Durable backends run the transaction (and its fsync) off the event loop.
        await self.storage.commit_async(commits, meta)
