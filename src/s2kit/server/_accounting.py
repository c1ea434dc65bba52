"""Lite's usage accounting: the figures the S2 metrics API answers with (``/v1/metrics``...).

Theory of operation
-------------------
* **Counting is cheap.** Requests, appends and reads add to one dict of counters for the
  minute in progress (:meth:`Usage.count`), keyed by (basin, counter): one call per request or
  per batch, nothing per record, no clock read (a tick every second turns the minute).
* **Buckets.** When the minute turns, its counters are added to its minute bucket and to its
  hour bucket. Day figures are sums of hours. An operation counts in the minute it completes.
* **Samples.** Once a minute (on the first tick of the next one) the stored bytes of every
  stream and basin are sampled (the value at the end of the minute that ended), with the set of
  basins holding streams. A series keeps change points only, so an idle stream costs nothing
  per minute; a query carries the last value forward. For the minute in progress queries read
  live values instead (``live`` arguments), so an append shows at once.
* **Bounded.** Minute buckets and minute samples are kept for :data:`MINUTE_KEEP` (a day),
  hour buckets and hourly samples (the last one of each hour) for :data:`HOUR_KEEP` (31 days:
  queries reach 30 days back). Older data is dropped, in memory and on disk. Basins are counted
  only while they exist (the app checks), so garbage names in requests cost nothing.
* **Durable** with ``--data-dir``: each bucket is one JSON row kept with the catalog's rows,
  written with the next group commit (``_meta.MetaLog.put_row``): ``um`` + the minute's start,
  ``uh`` + the hour's start (u32, big-endian). A crash loses at most the minute in progress; a
  clean stop writes it too (:meth:`Usage.close`). Stored bytes themselves are not persisted:
  storage keeps them (``Storage.stored_bytes``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from s2kit.server._meta import USAGE_KIND

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from s2kit.server._catalog import Catalog
    from s2kit.server._meta import MetaLog
    from s2kit.server._storage import Storage

log = logging.getLogger("s2kit.server")

MINUTE = 60
HOUR = 3600
DAY = 86400
MINUTE_KEEP = DAY
"""How long minute buckets and minute samples are kept."""
HOUR_KEEP = 31 * DAY
"""How long hour buckets and hourly samples are kept."""
GONE = -1
"""A sample of a stream (or basin) that no longer exists."""
TICK = 1.0
"""Seconds between ticks (minute turns and samples are noticed within one)."""

MINUTE_ROW = USAGE_KIND + b"m"
HOUR_ROW = USAGE_KIND + b"h"
_U32 = struct.Struct(">I")

CounterKey = tuple[str, str]
"""(basin, counter); basin ``""`` for the account's counters."""
SeriesKey = tuple[str, str]
"""(basin, stream) of a stored-bytes series; stream ``""`` for the basin's total."""
Points = list[tuple[int, int]]


@dataclass(slots=True)
class Bucket:
    """What one minute or one hour holds."""

    counters: dict[CounterKey, int] = field(default_factory=dict)
    samples: dict[SeriesKey, int] = field(default_factory=dict)
    """The last sample in the bucket of each series sampled in it."""
    active: set[str] = field(default_factory=set)
    """Basins that held at least one stream when sampled."""

    def add(self, counters: dict[CounterKey, int]) -> None:
        """Add counters to the bucket's."""
        mine = self.counters
        for key, n in counters.items():
            mine[key] = mine.get(key, 0) + n

    def to_row(self) -> bytes:
        """The bucket's persisted row (compact JSON)."""
        doc = {
            "c": [[b, name, n] for (b, name), n in self.counters.items()],
            "s": [[b, s, v] for (b, s), v in self.samples.items()],
            "a": sorted(self.active),
        }
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_row(cls, raw: bytes) -> Bucket:
        """Inverse of :meth:`to_row`.

        Raises:
            ValueError: the row is not one (wrong JSON or shape).
        """
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        try:
            return cls(
                counters={(str(b), str(name)): int(n) for b, name, n in doc["c"]},
                samples={(str(b), str(s)): int(v) for b, s, v in doc["s"]},
                active={str(b) for b in doc["a"]},
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"wrong shape: {exc}") from None


def row_key(kind: bytes, start: int) -> bytes:
    """The key of a bucket's row."""
    return kind + _U32.pack(start)


def split_row_key(key: bytes) -> tuple[bytes, int]:
    """(kind, start) of a usage row's key.

    Raises:
        ValueError: it is no usage row's key.
    """
    kind = key[:2]
    if kind not in (MINUTE_ROW, HOUR_ROW) or len(key) != 2 + _U32.size:
        raise ValueError(f"not a usage row key: {key!r}")
    start: int = _U32.unpack_from(key, 2)[0]
    return kind, start


@dataclass(frozen=True, slots=True)
class Sample:
    """What a sample sees: each stream's stored bytes (None: not known yet), the basins."""

    streams: dict[SeriesKey, int | None]
    basins: set[str]
    active: set[str]
    """Basins holding at least one stream."""


def catalog_sample(catalog: Catalog, storage: Storage) -> Sample:
    """A sample of lite as it is now."""
    streams: dict[SeriesKey, int | None] = {}
    active = set()
    for bname, b in catalog.basins.items():
        if b.streams:
            active.add(bname)
        for sname in b.streams:
            streams[(bname, sname)] = storage.stored_bytes((bname, sname))
    return Sample(streams, set(catalog.basins), active)


def live_bytes(catalog: Catalog, storage: Storage, basin: str, stream: str) -> int | None:
    """A stream's stored bytes now (``stream`` ``""``: the basin's total): :data:`GONE` if it
    does not exist, None if not known yet."""
    b = catalog.basins.get(basin)
    if b is None or (stream and stream not in b.streams):
        return GONE
    names = [stream] if stream else list(b.streams)
    total = 0
    for name in names:
        n = storage.stored_bytes((basin, name))
        if n is None:
            return None
        total += n
    return total


class Usage:
    """Usage counters and stored-bytes samples in minute and hour buckets (see the module).

    Args:
        sample: takes a :class:`Sample` (:func:`catalog_sample`).
        put_row: persists a row (``MetaLog.put_row``); None keeps everything in memory.
        clock: wall-clock seconds (tests pass their own).
    """

    def __init__(
        self,
        sample: Callable[[], Sample],
        *,
        put_row: Callable[[bytes, bytes | None], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sample = sample
        self._put_row = put_row
        self._clock = clock
        now = int(clock())
        self._minute = now - now % MINUTE
        """Start of the minute being counted in ``_current``."""
        self._current: dict[CounterKey, int] = {}
        self.minutes: dict[int, Bucket] = {}
        self.hours: dict[int, Bucket] = {}
        self._series: dict[SeriesKey, Points] = {}
        """Change points (minute start, value at its end) of each series, oldest first."""
        self._last: dict[SeriesKey, int] = {}
        self._sampled = self._minute
        """Samples are taken up to the end of the minute before this one."""
        self._thinned = self._minute - self._minute % HOUR
        self._dirty: set[tuple[bytes, int]] = set()

    # --- counting (hot paths) -----------------------------------------------------------------

    def count(self, basin: str, name: str, n: int = 1) -> None:
        """Add ``n`` to a counter of the minute in progress (no clock read: :meth:`tick` turns
        the minute, so a count lands at most one tick late in the minute that just ended)."""
        cur = self._current
        key = (basin, name)
        cur[key] = cur.get(key, 0) + n

    def minute(self) -> int:
        """The start of the minute being counted (operations that count once a minute per
        session key on it, ``_observe.py``)."""
        return self._minute

    # --- time passing -------------------------------------------------------------------------

    def _roll(self) -> None:
        """Close the minute being counted: its counters go into its minute and hour buckets."""
        if self._current:
            m = self._minute
            self._bucket(MINUTE_ROW, m).add(self._current)
            self._bucket(HOUR_ROW, m - m % HOUR).add(self._current)
            self._current = {}
        now = int(self._clock())
        self._minute = max(self._minute, now - now % MINUTE)

    def _bucket(self, kind: bytes, start: int) -> Bucket:
        table = self.minutes if kind == MINUTE_ROW else self.hours
        b = table.get(start)
        if b is None:
            b = table[start] = Bucket()
        self._dirty.add((kind, start))
        return b

    def tick(self) -> None:
        """Roll the minute, sample once a minute, drop what is too old, persist changes."""
        if self._clock() - self._minute >= MINUTE:
            self._roll()
        m = self._minute
        if m > self._sampled:
            self._take_sample(m - MINUTE)
            self._sampled = m
            self._prune(m)
        self._flush()

    def close(self) -> None:
        """A clean stop: count the minute in progress, sample now, persist everything."""
        self._roll()
        self._take_sample(self._minute)
        self._flush()

    async def run(self) -> None:
        """Tick every :data:`TICK` seconds until cancelled."""
        while True:
            await asyncio.sleep(TICK)
            try:
                self.tick()
            except Exception:  # a bug here must not stop the accounting for good
                log.exception("usage accounting tick failed")

    def _take_sample(self, minute: int) -> None:
        sample = self._sample()
        totals = dict.fromkeys(sample.basins, 0)
        seen: set[SeriesKey] = set()
        notes: list[tuple[SeriesKey, int]] = []
        for key, value in sample.streams.items():
            seen.add(key)
            if value is None:  # not known yet: no point, and no total for its basin
                totals.pop(key[0], None)
                seen.add((key[0], ""))
                continue
            notes.append((key, value))
            if key[0] in totals:
                totals[key[0]] += value
        for basin, total in totals.items():
            seen.add((basin, ""))
            notes.append(((basin, ""), total))
        notes.extend((key, GONE) for key, last in self._last.items() if key not in seen)
        notes = [(key, value) for key, value in notes if self._last.get(key) != value]
        if not notes and not sample.active:
            return  # nothing changed, nothing to keep: an idle lite writes nothing
        mb = self._bucket(MINUTE_ROW, minute)
        hb = self._bucket(HOUR_ROW, minute - minute % HOUR)
        for key, value in notes:
            self._last[key] = value
            points = self._series.setdefault(key, [])
            if points and points[-1][0] >= minute:
                # The same minute again (a stop, then a start within it); never back in time.
                if points[-1][0] == minute:
                    points[-1] = (minute, value)
            else:
                points.append((minute, value))
            mb.samples[key] = value
            hb.samples[key] = value
        mb.active |= sample.active
        hb.active |= sample.active

    def _prune(self, now: int) -> None:
        tables = ((MINUTE_ROW, self.minutes, MINUTE_KEEP), (HOUR_ROW, self.hours, HOUR_KEEP))
        for kind, table, keep in tables:
            for start in [t for t in table if t < now - keep]:
                del table[start]
                self._dirty.discard((kind, start))
                if self._put_row is not None:
                    self._put_row(row_key(kind, start), None)
        hour = now - now % HOUR
        if hour > self._thinned:  # once an hour: thin the series
            self._thinned = hour
            for key in list(self._series):
                points = _thin(self._series[key], now - MINUTE_KEEP, now - HOUR_KEEP)
                if len(points) == 1 and points[0][1] == GONE and points[0][0] < now - HOUR_KEEP:
                    del self._series[key]
                    self._last.pop(key, None)
                else:
                    self._series[key] = points

    def _flush(self) -> None:
        if self._put_row is None:
            self._dirty.clear()
            return
        for kind, start in sorted(self._dirty):
            table = self.minutes if kind == MINUTE_ROW else self.hours
            bucket = table.get(start)
            self._put_row(row_key(kind, start), None if bucket is None else bucket.to_row())
        self._dirty.clear()

    # --- restart ------------------------------------------------------------------------------

    def restore(self, rows: Iterable[tuple[bytes, bytes]]) -> None:
        """Load persisted buckets (rows of other kinds are ignored); rebuilds the series.

        A row that does not parse is skipped with a warning: usage figures are not worth
        refusing to start for (its checksum held, so only a bug writes one).
        """
        for rkey, raw in rows:
            if not rkey.startswith(USAGE_KIND):
                continue
            try:
                kind, start = split_row_key(rkey)
                bucket = Bucket.from_row(raw)
            except ValueError as exc:
                log.warning("skipping a usage row %r: %s", rkey, exc)
                continue
            (self.minutes if kind == MINUTE_ROW else self.hours)[start] = bucket
        merged: dict[SeriesKey, dict[int, int]] = {}
        # The last sample of an hour stands at the hour's last minute, for hours older than
        # the minute buckets kept (those say the same and more).
        fine_from = min(self.minutes, default=None)
        for start, bucket in self.hours.items():
            if fine_from is None or start + HOUR <= fine_from:
                for key, value in bucket.samples.items():
                    merged.setdefault(key, {})[start + HOUR - MINUTE] = value
        for start, bucket in self.minutes.items():
            for key, value in bucket.samples.items():
                merged.setdefault(key, {})[start] = value
        for key, points in merged.items():
            series = sorted(points.items())
            self._series[key] = series
            self._last[key] = series[-1][1]

    # --- queries ------------------------------------------------------------------------------

    def counters(
        self, basin: str, prefix: str, interval: int, start: int, end: int
    ) -> dict[str, Points]:
        """Counters of ``basin`` named ``prefix...`` summed per ``interval`` bucket (aligned to
        the epoch) for the buckets overlapping ``[start, end)``; by name without the prefix,
        non-zero buckets only, oldest first. Minute figures come from minute buckets (kept a
        day), the others from hour buckets."""
        minutely = interval == MINUTE
        table = self.minutes if minutely else self.hours
        sums: dict[str, dict[int, int]] = {}

        def take(t: int, counters: dict[CounterKey, int]) -> None:
            at = t - t % interval
            if at >= end or at + interval <= start:
                return
            for (b, name), n in counters.items():
                if b == basin and name.startswith(prefix):
                    per = sums.setdefault(name[len(prefix) :], {})
                    per[at] = per.get(at, 0) + n

        for t, bucket in table.items():
            take(t, bucket.counters)
        take(self._minute, self._current)
        return {
            name: sorted((t, n) for t, n in per.items() if n)
            for name, per in sorted(sums.items())
            if any(per.values())
        }

    def gauge(
        self, key: SeriesKey, interval: int, start: int, end: int, live: int | None
    ) -> Points:
        """A series' value at the end of each ``interval`` bucket overlapping ``[start, end)``
        up to now (for the bucket in progress: ``live``, when known), carried forward from its
        last change; no point where it did not exist (yet, or any more)."""
        now = int(self._clock())
        points = self._series.get(key, [])
        out: Points = []
        i, value = 0, None
        t = start - start % interval
        while t < end and t <= now:
            # Points stand at minute starts, each the value at the end of its minute.
            while i < len(points) and points[i][0] <= t + interval - MINUTE:
                value = points[i][1]
                i += 1
            v = live if t + interval > now and live is not None else value
            if v is not None and v != GONE:
                out.append((t, v))
            t += interval
        return out

    def active_basins(self, start: int, end: int, live: set[str] | None) -> list[str]:
        """Basins that held a stream during ``[start, end)`` (``live``: those that do now,
        counted when the range reaches the present)."""
        names: set[str] = set()
        fine_from = min(self.minutes, default=self._minute)
        for t, bucket in self.minutes.items():
            if t < end and t + MINUTE > start:
                names |= bucket.active
        for t, bucket in self.hours.items():
            # Hours that minute buckets cover are better answered by them.
            if t < end and t + HOUR > start and t < fine_from:
                names |= bucket.active
        if live is not None and end > self.minute():  # the range reaches the minute in progress
            names |= live
        return sorted(names)


def _thin(points: Points, fine_from: int, keep_from: int) -> Points:
    """Keep every point from ``fine_from`` on, the last of each hour before it, and of those
    before ``keep_from`` only the last (the value carried into the kept range)."""
    out: Points = []
    for t, v in points:
        if t < fine_from and out and out[-1][0] < fine_from:
            prev = out[-1][0]
            coarse_prev = -1 if prev < keep_from else prev - prev % HOUR
            coarse = -1 if t < keep_from else t - t % HOUR
            if coarse == coarse_prev:
                out[-1] = (t, v)
                continue
        out.append((t, v))
    return out


def attach_usage(catalog: Catalog, storage: Storage, meta: MetaLog | None) -> Usage:
    """Usage accounting for a backend: persisted with the catalog when storage is durable."""
    usage = Usage(
        lambda: catalog_sample(catalog, storage),
        put_row=None if meta is None else meta.put_row,
    )
    if meta is not None:
        usage.restore(meta.rows_of(USAGE_KIND))
    return usage


def decode_row(key: bytes, raw: bytes) -> Any:
    """Check one persisted usage row (``s2kit lite verify``).

    Raises:
        ValueError: it is not a usage row.
    """
    split_row_key(key)
    return Bucket.from_row(raw)
