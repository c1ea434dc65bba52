"""Storage behind lite's stream engine: the interface, and the in-memory backend.

The engine hands storage one :class:`CommitBatch` per flush interval holding every stream's
newly sequenced records and state changes; a backend applies it atomically (a durable backend
in one transaction) or raises, in which case nothing of it may become visible. Reads only ever
see committed data, so a reader never observes a record that could still be lost.

Records are kept as plain ``(seq_num, timestamp, headers, body)`` tuples
(:data:`~s2kit.types.RecordFields`, which the cyclic GC stops tracking). On an encrypted stream
an envelope record is stored sealed: no headers and the ciphertext as body; command records stay
plain (docs/protocol.md#encryption). The plaintext metered size of every record is stored beside
it, because read limits are in plaintext metered bytes.
"""

from __future__ import annotations

import abc
import bisect
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from operator import itemgetter

from s2kit.types import RecordFields, StreamPosition

StreamKey = tuple[str, str]
"""(basin, stream)."""
MetaRow = tuple[bytes, bytes | None]
"""A catalog row to persist with a commit: (key, value); value None deletes it (``_meta.py``)."""

_ts = itemgetter(1)


class Reported:
    """Marks a storage failure that storage has already logged, in one line (a full disk,
    damaged data): the layers above fail the requests it touches without logging it again."""


@dataclass(slots=True, kw_only=True)
class StreamCommit:
    """One stream's share of a group commit."""

    key: StreamKey
    records: list[RecordFields] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    expiry: float | None = None
    """Write-time TTL deadline (monotonic seconds) for these records; None = never."""
    tail: StreamPosition | None = None
    fencing_token: str | None = None
    """New fencing token, when the batch fenced."""
    trim_point: int | None = None
    """New trim point, when the batch trimmed."""


@dataclass(slots=True, kw_only=True)
class StreamState:
    """What storage remembers of a stream besides its records."""

    tail: StreamPosition = field(default_factory=lambda: StreamPosition(0, 0))
    fencing_token: str = ""
    trim_point: int = 0
    last_write: float = 0.0
    """Monotonic time of the last committed write."""


class Storage(abc.ABC):
    """The record store used by the engine; every method is called from the event loop."""

    @abc.abstractmethod
    def commit(self, batch: Sequence[StreamCommit], meta: Sequence[MetaRow] = ()) -> None:
        """Apply every stream's share and the catalog rows atomically, or raise and apply
        nothing."""

    async def commit_async(
        self, batch: Sequence[StreamCommit], meta: Sequence[MetaRow] = ()
    ) -> None:
        """:meth:`commit` as the committer calls it; durable backends run it off the loop."""
        self.commit(batch, meta)

    def load_catalog(self) -> list[tuple[bytes, bytes]] | None:
        """Persisted catalog rows at start-up; None when the catalog is not persisted."""
        return None

    @abc.abstractmethod
    def state(self, key: StreamKey) -> StreamState:
        """The committed state of a stream (a fresh one if unknown)."""

    @abc.abstractmethod
    def read(
        self, key: StreamKey, start: int, max_count: int, max_bytes: int
    ) -> tuple[list[RecordFields], list[int]]:
        """Committed records from ``start`` on: at most ``max_count``, and stopping before the
        one that would take the plaintext metered total past ``max_bytes`` (at least one record
        is returned when any exists and fits). Also returns their metered sizes."""

    @abc.abstractmethod
    def seek_timestamp(self, key: StreamKey, timestamp: int) -> int | None:
        """Seq_num of the first stored record with timestamp >= ``timestamp``, or None."""

    @abc.abstractmethod
    def first_seq_num(self, key: StreamKey) -> int:
        """The lowest seq_num still stored (the tail when nothing is stored)."""

    @abc.abstractmethod
    def delete_stream(self, key: StreamKey) -> None:
        """Forget a stream's records and state."""

    @abc.abstractmethod
    def collect(self, key: StreamKey, now: float) -> int:
        """Physically drop records that are trimmed or past their retention; returns how many."""

    def stored_bytes(self, key: StreamKey) -> int | None:
        """Plaintext metered bytes of the records a stream holds (0 if none); None while not
        known yet (a durable store counts them in the background after a start). Kept as a
        running total: usage accounting samples it every minute (``_accounting.py``)."""
        return None

    def close(self) -> None:
        """Release resources."""


@dataclass(slots=True)
class _MemStream:
    state: StreamState = field(default_factory=StreamState)
    records: list[RecordFields] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    # (first seq_num, expiry) of each commit's run of records, in write order.
    expiries: list[tuple[int, float]] = field(default_factory=list)
    base: int = 0
    """Seq_num of records[0]."""
    stored: int = 0
    """Metered bytes of ``records``."""


class MemoryStorage(Storage):
    """Everything in process memory: fast, and gone when the process ends."""

    def __init__(self) -> None:
        self._streams: dict[StreamKey, _MemStream] = {}

    def _stream(self, key: StreamKey) -> _MemStream:
        s = self._streams.get(key)
        if s is None:
            s = self._streams[key] = _MemStream()
        return s

    def commit(self, batch: Sequence[StreamCommit], meta: Sequence[MetaRow] = ()) -> None:
        now = time.monotonic()
        for c in batch:
            s = self._stream(c.key)
            if c.records:
                if not s.records:
                    s.base = c.records[0][0]
                expiry = math.inf if c.expiry is None else c.expiry
                s.expiries.append((s.base + len(s.records), expiry))
                s.records.extend(c.records)
                s.sizes.extend(c.sizes)
                s.stored += sum(c.sizes)
                s.state.last_write = now
            if c.tail is not None:
                s.state.tail = c.tail
            if c.fencing_token is not None:
                s.state.fencing_token = c.fencing_token
            if c.trim_point is not None:
                s.state.trim_point = c.trim_point

    def state(self, key: StreamKey) -> StreamState:
        return self._stream(key).state

    def read(
        self, key: StreamKey, start: int, max_count: int, max_bytes: int
    ) -> tuple[list[RecordFields], list[int]]:
        s = self._streams.get(key)
        if s is None or not s.records:
            return [], []
        lo = max(start - s.base, 0)
        hi = min(lo + max_count, len(s.records))
        # Running totals in C; the last record that still fits marks the end.
        n = bisect.bisect_right(list(accumulate(s.sizes[lo:hi])), max_bytes)
        return s.records[lo : lo + n], s.sizes[lo : lo + n]

    def seek_timestamp(self, key: StreamKey, timestamp: int) -> int | None:
        s = self._streams.get(key)
        if s is None:
            return None
        # Timestamps are non-decreasing along a stream, so records are sorted by them.
        i = bisect.bisect_left(s.records, timestamp, key=_ts)
        return s.base + i if i < len(s.records) else None

    def first_seq_num(self, key: StreamKey) -> int:
        s = self._streams.get(key)
        if s is None:
            return 0
        return s.base if s.records else s.state.tail.seq_num

    def delete_stream(self, key: StreamKey) -> None:
        self._streams.pop(key, None)

    def stored_bytes(self, key: StreamKey) -> int:
        s = self._streams.get(key)
        return 0 if s is None else s.stored

    def collect(self, key: StreamKey, now: float) -> int:
        s = self._streams.get(key)
        if s is None or not s.records:
            return 0
        cut = max(s.state.trim_point - s.base, 0)
        # Expiry runs are in write order; drop the leading runs that have expired.
        while s.expiries and s.expiries[0][1] <= now:
            s.expiries.pop(0)
            run_end = s.expiries[0][0] - s.base if s.expiries else len(s.records)
            cut = max(cut, run_end)
        cut = min(cut, len(s.records))
        if cut:
            s.stored -= sum(s.sizes[:cut])
            del s.records[:cut]
            del s.sizes[:cut]
            s.base += cut
        return cut
