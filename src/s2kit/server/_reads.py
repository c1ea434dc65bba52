"""Lite's read path: start resolution, catch-up from storage, following the live tail.

One async generator serves unary reads, SSE and S2S sessions alike (docs/protocol.md#reads). It
yields ``(records, tail)`` pairs: catch-up batches have ``tail=None``; batches from following
the tail carry it; a heartbeat is ``([], tail)``. The transports only differ in how they render
them. A batch never holds more than ``BATCH_RECORDS`` records or ``BATCH_BYTES`` metered bytes,
as S2 promises: a group commit larger than that reaches a follower in several batches.

Memory: with a :class:`~s2kit.server._memory.Share`, the generator takes room for a batch
*before* it reads the batch from storage (``RENDER_FACTOR`` times its metered size: the
records, and the response rendered from them) or hands a live one over (its size: the
records and their rendering are shared by every follower, ``_render.py``), and the transport
gives it back once the batch went out. A reader that waits for room holds nothing
but references to committed records (shared with every other follower).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from s2kit.errors import ErrorCode, ReadUnwritten, ServerError
from s2kit.server._crypto import DecryptionFailed, RecordCipher, decode_envelope
from s2kit.server._engine import Follower, StreamOwner
from s2kit.types import ReadStart, RecordFields, SeqNum, StreamPosition, TailOffset, Timestamp

if TYPE_CHECKING:
    from s2kit.server._memory import Share
    from s2kit.server._observe import ReadTally
    from s2kit.server._storage import Storage

BATCH_RECORDS = 1000
BATCH_BYTES = 1024 * 1024
UNARY_WAIT_MAX = 60
RENDER_FACTOR = 3
"""Memory per metered byte of a batch on its way out: the records (decoded from storage, or
shared) and the response rendered from them (base64 in JSON is 4/3 of the body)."""

Batch = tuple[list[RecordFields], StreamPosition | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadParams:
    """A read's query parameters, validated."""

    start: ReadStart
    clamp: bool = False
    count: int | None = None
    bytes: int | None = None
    until: int | None = None
    wait: float | None = None
    """Seconds; None = the default (0 when bounded, forever otherwise)."""

    @property
    def bounded(self) -> bool:
        """Whether any of count/bytes/until is set."""
        return self.count is not None or self.bytes is not None or self.until is not None

    @property
    def may_follow(self) -> bool:
        """Whether the read may wait at the tail for new records.

        The rule is in docs/protocol.md#follow-and-wait.
        """
        return not self.bounded or bool(self.wait)

    @property
    def wait_secs(self) -> float:
        """The effective wait."""
        if self.wait is not None:
            return self.wait
        return 0.0 if self.bounded else math.inf


@dataclass(frozen=True, slots=True)
class ReadSettings:
    """Server-wide read tuning."""

    heartbeat_min: float = 5.0
    heartbeat_max: float = 15.0


def resolve_start(params: ReadParams, owner: StreamOwner, storage: Storage) -> int:
    """The first seq_num to read, or :class:`ReadUnwritten` (416)."""
    tail = owner.tail
    start = params.start
    at_tail_check = True
    if isinstance(start, SeqNum):
        seq = start.value
        if seq > tail.seq_num:
            if not params.clamp:
                raise ReadUnwritten(tail)
            seq = tail.seq_num
    elif isinstance(start, TailOffset):
        seq = max(0, tail.seq_num - start.value)
    else:
        assert isinstance(start, Timestamp)
        if start.value > tail.timestamp:
            if not params.clamp:
                raise ReadUnwritten(tail)
            seq = tail.seq_num
        else:
            # A timestamp start that finds nothing starts silently at the tail.
            found = storage.seek_timestamp(owner.key, start.value)
            seq = tail.seq_num if found is None else found
            at_tail_check = False
    if at_tail_check and seq >= tail.seq_num and not params.may_follow:
        raise ReadUnwritten(tail)
    return seq


def _open(records: list[RecordFields], cipher: RecordCipher | None) -> list[RecordFields]:
    if cipher is None:
        return records
    out = []
    for r in records:
        seq_num, timestamp, headers, body = r
        if headers:  # command records are stored in the clear
            out.append(r)
            continue
        try:
            headers, body = decode_envelope(cipher.decrypt(body))
        except (DecryptionFailed, ValueError):
            raise ServerError.for_code(
                ErrorCode.DECRYPTION_FAILED, "record decryption failed"
            ) from None
        out.append((seq_num, timestamp, headers, body))
    return out


class _Budget:
    """What is left of count/bytes/until, and where the read is."""

    __slots__ = ("bytes", "count", "done", "next", "tally", "until")

    def __init__(self, params: ReadParams, start: int, tally: ReadTally | None = None) -> None:
        self.tally = tally
        """Told what each batch hands the reader (metrics); one call per batch."""
        self.count = math.inf if params.count is None else params.count
        self.bytes = math.inf if params.bytes is None else params.bytes
        self.until = params.until
        self.next = start
        self.done = self.count <= 0 or self.bytes <= 0

    def fit(self, records: list[RecordFields], sizes: list[int]) -> list[RecordFields]:
        """Cut a batch to the remaining limits; marks the read done when one is reached."""
        until = self.until
        total = sum(sizes)
        if (
            len(records) <= self.count
            and total <= self.bytes
            and (until is None or not records or records[-1][1] < until)
        ):
            # The whole batch fits: the usual case, without a loop (timestamps never decrease).
            n, used = len(records), total
        else:
            n = used = 0
            for r, size in zip(records, sizes, strict=True):
                if n >= self.count:
                    break
                if until is not None and r[1] >= until:
                    self.done = True
                    break
                if used + size > self.bytes:
                    self.done = True
                    break
                used += size
                n += 1
        out = records[:n] if n < len(records) else records
        self.count -= n
        self.bytes -= used
        if out:
            self.next = out[-1][0] + 1
            if self.tally is not None:
                self.tally.add(n, used)
        if self.count <= 0 or self.bytes <= 0:
            self.done = True
        return out


async def read_session(
    params: ReadParams,
    owner: StreamOwner,
    storage: Storage,
    cipher: RecordCipher | None,
    settings: ReadSettings,
    *,
    start: int | None = None,
    share: Share | None = None,
    tally: ReadTally | None = None,
) -> AsyncIterator[Batch]:
    """Yield the batches of a read; returns when its limits, ``until`` or ``wait`` end it.

    With ``share``, room for each batch is taken from the memory budget first (see above);
    with ``tally``, each batch is counted for the metrics.
    """
    first = resolve_start(params, owner, storage) if start is None else start
    budget = _Budget(params, first, tally)
    if budget.done:
        return
    wait = params.wait_secs
    loop = asyncio.get_running_loop()
    deadline: float | None = None
    key = owner.key
    while True:
        # Catch-up from storage up to the committed tail.
        while budget.next < owner.tail.seq_num:
            # Never past the published tail: a durable store may already hold the next round.
            limit_n = int(min(BATCH_RECORDS, budget.count, owner.tail.seq_num - budget.next))
            limit_b = int(min(BATCH_BYTES, budget.bytes))
            if share is not None:
                await share.ensure(RENDER_FACTOR * limit_b)
            records, sizes = storage.read(key, budget.next, limit_n, limit_b)
            # A store that moved the start up to its read floor (a trim) counted from there:
            # never pass the published tail (records past it are not acked yet).
            if records and records[-1][0] >= owner.tail.seq_num:
                keep = bisect.bisect_left(records, owner.tail.seq_num, key=_seq_of)
                records, sizes = records[:keep], sizes[:keep]
            if not records:
                first = storage.first_seq_num(key)
                if first > budget.next:  # trimmed or expired underneath: skip the gap
                    budget.next = min(first, owner.tail.seq_num)
                    continue
                return  # the next record alone exceeds the bytes left
            records = budget.fit(records, sizes)
            if records:
                yield _open(records, cipher), None
                deadline = loop.time() + wait
            if budget.done:
                return
            # A send that never had to wait (a socket with room) does not suspend, so a read
            # with a long backlog would otherwise render batch after batch without letting
            # anything else run: the writers' acks, the other readers, a client's hang-up.
            await asyncio.sleep(0)
        if not params.may_follow or wait <= 0:
            return
        if deadline is None:
            deadline = loop.time() + wait
        follower = Follower()
        owner.followers.add(follower)
        try:
            follow = _follow(follower, owner, budget, cipher, settings, deadline, wait, share)
            async for batch in follow:
                if batch is None:
                    break  # lagged: back to a storage scan
                yield batch
            else:
                return
        finally:
            owner.followers.discard(follower)
        deadline = loop.time() + wait


async def _follow(
    follower: Follower,
    owner: StreamOwner,
    budget: _Budget,
    cipher: RecordCipher | None,
    settings: ReadSettings,
    deadline: float,
    wait: float,
    share: Share | None,
) -> AsyncIterator[Batch | None]:
    loop = asyncio.get_running_loop()

    def next_heartbeat() -> float:
        return loop.time() + random.uniform(settings.heartbeat_min, settings.heartbeat_max)

    yield [], owner.tail  # entering follow mode: the first heartbeat
    heartbeat_at = next_heartbeat()
    while True:
        if follower.error is not None:
            raise follower.error
        if follower.lagged:
            yield None
            return
        if follower.batches:
            records, sizes = follower.take()
            # A commit's records are consecutive; skip any the read already delivered.
            skip = budget.next - records[0][0] if records else 0
            if skip > 0:
                records, sizes = records[skip:], sizes[skip:]
            cut = _batch_cut(sizes)
            if cut < len(records):  # more than one batch's worth: the rest goes next
                follower.put_back(records[cut:], sizes[cut:])
                records, sizes = records[:cut], sizes[:cut]
            if records:
                records = budget.fit(records, sizes)
            if records:
                if share is not None:
                    # A live batch is shared by every follower, and so is its rendering
                    # (_render.py): what this reader adds is what its transport holds.
                    await share.ensure(sum(sizes[: len(records)]))
                yield _open(records, cipher), owner.tail
                deadline = loop.time() + wait
                heartbeat_at = next_heartbeat()
            if budget.done:
                return
            if follower.batches:
                await asyncio.sleep(0)  # a backlog: let others run between its batches
            continue
        now = loop.time()
        if now >= deadline:
            return
        if now >= heartbeat_at:
            # Only with nothing pending: clients resume from a heartbeat's tail (the Rust SDK
            # as well), so it must not run ahead of the records this read has delivered.
            yield [], owner.tail
            heartbeat_at = next_heartbeat()
            continue
        # No timer of our own: the backend's ticker wakes us when ``due`` (_engine.wake_due).
        follower.due = min(deadline, heartbeat_at)
        follower.wakeup.clear()
        await follower.wakeup.wait()


def _seq_of(record: RecordFields) -> int:
    return record[0]


def _batch_cut(sizes: list[int]) -> int:
    """How many of these records make one batch (at most BATCH_RECORDS and BATCH_BYTES)."""
    if len(sizes) <= BATCH_RECORDS and sum(sizes) <= BATCH_BYTES:
        return len(sizes)
    total = 0
    for i, size in enumerate(sizes[:BATCH_RECORDS]):
        total += size
        if total > BATCH_BYTES:
            return max(1, i)
    return min(len(sizes), BATCH_RECORDS)
