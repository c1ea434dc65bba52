"""Lite's usage accounting on its own, on a clock the test moves: minute and hour buckets,
how long they are kept, samples of stored bytes, and persistence (``_accounting.py``)."""

from __future__ import annotations

from s2kit.server._accounting import (
    DAY,
    HOUR,
    HOUR_KEEP,
    MINUTE,
    MINUTE_ROW,
    Sample,
    Usage,
    split_row_key,
)

T0 = 1_800_000_000 - 1_800_000_000 % DAY
"""A midnight (UTC) to start the clock at."""


class World:
    """A clock, the streams' stored bytes, and the rows usage accounting persisted."""

    def __init__(self) -> None:
        self.now = float(T0)
        self.streams: dict[tuple[str, str], int | None] = {}
        self.basins: set[str] = set()
        self.rows: dict[bytes, bytes] = {}

    def clock(self) -> float:
        return self.now

    def sample(self) -> Sample:
        active = {b for b, _ in self.streams}
        return Sample(dict(self.streams), set(self.basins) | active, active)

    def put_row(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.rows.pop(key, None)
        else:
            self.rows[key] = value

    def usage(self) -> Usage:
        return Usage(self.sample, put_row=self.put_row, clock=self.clock)

    def advance(self, usage: Usage, seconds: float, step: float = MINUTE) -> None:
        """Move the clock, ticking as lite does (every ``step`` seconds here)."""
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            usage.tick()


def test_counters_sum_per_interval_aligned_to_the_epoch() -> None:
    w = World()
    u = w.usage()
    u.count("b", "op:append", 2)  # minute 0
    w.advance(u, 90)
    u.count("b", "op:append", 3)  # minute 1
    u.count("b", "op:read")
    w.advance(u, HOUR)
    u.count("b", "op:append", 5)  # hour 1
    u.count("other", "op:append", 7)
    end = int(w.now) + 1
    assert u.counters("b", "op:", MINUTE, T0, end) == {
        "append": [(T0, 2), (T0 + 60, 3), (T0 + 3660, 5)],
        "read": [(T0 + 60, 1)],
    }
    assert u.counters("b", "op:", HOUR, T0, end) == {
        "append": [(T0, 5), (T0 + HOUR, 5)],
        "read": [(T0, 1)],
    }
    assert u.counters("b", "op:", DAY, T0, end) == {"append": [(T0, 10)], "read": [(T0, 1)]}
    # Buckets overlapping the range count whole; those outside do not.
    assert u.counters("b", "op:", MINUTE, T0 + 61, T0 + 62) == {
        "append": [(T0 + 60, 3)],
        "read": [(T0 + 60, 1)],
    }
    assert u.counters("b", "op:", MINUTE, T0 + 120, T0 + 3600) == {}
    assert u.counters("b", "nothing:", HOUR, T0, end) == {}


def test_minute_buckets_last_a_day_and_hour_buckets_a_month() -> None:
    w = World()
    u = w.usage()
    u.count("b", "op:append")
    w.advance(u, 2 * DAY, step=HOUR)
    minute_rows = [k for k in w.rows if split_row_key(k)[0] == MINUTE_ROW]
    assert minute_rows == []  # the day-old minute bucket is gone, on disk too
    assert u.counters("b", "op:", MINUTE, T0, T0 + DAY) == {}
    assert u.counters("b", "op:", HOUR, T0, T0 + DAY) == {"append": [(T0, 1)]}
    w.advance(u, HOUR_KEEP, step=HOUR)
    assert u.counters("b", "op:", HOUR, T0, T0 + DAY) == {}
    assert not u.minutes
    assert not u.hours
    assert w.rows == {}  # nothing was counted since: nothing is kept


def test_stored_bytes_are_sampled_each_minute_and_carried_forward() -> None:
    w = World()
    u = w.usage()
    w.streams[("b", "s")] = 100
    w.advance(u, MINUTE)  # the sample of minute 0
    w.streams[("b", "s")] = 250
    w.streams[("b", "t")] = 50
    w.advance(u, 3 * MINUTE)  # minutes 1, 2 and 3 end
    end = int(w.now)
    # A point per minute that ended; minutes 2 and 3 changed nothing: the value carries on.
    assert u.gauge(("b", "s"), MINUTE, T0, end, None) == [
        (T0, 100),
        (T0 + 60, 250),
        (T0 + 120, 250),
        (T0 + 180, 250),
    ]
    assert u.gauge(("b", ""), MINUTE, T0 + 60, end, None) == [
        (T0 + 60, 300),
        (T0 + 120, 300),
        (T0 + 180, 300),
    ]
    # The minute in progress shows the live value when the caller has one.
    assert u.gauge(("b", "s"), MINUTE, end, end + 1, 999) == [(end, 999)]
    # Hourly: the value at the end of each hour (so far: the latest).
    assert u.gauge(("b", ""), HOUR, T0, end, None) == [(T0, 300)]
    del w.streams[("b", "t")]
    w.advance(u, 2 * MINUTE)
    assert u.gauge(("b", "t"), MINUTE, T0 + 240, int(w.now), None) == []  # gone: no points
    assert u.active_basins(T0, int(w.now), None) == ["b"]
    assert u.active_basins(T0 - DAY, T0 - HOUR, None) == []


def test_a_stream_not_counted_yet_leaves_no_point() -> None:
    w = World()
    u = w.usage()
    w.basins.add("b")
    w.streams[("b", "s")] = None  # durable storage still counting after a start
    w.advance(u, MINUTE)
    assert u.gauge(("b", "s"), MINUTE, T0, int(w.now), None) == []
    assert u.gauge(("b", ""), MINUTE, T0, int(w.now), None) == []
    w.streams[("b", "s")] = 10
    w.advance(u, MINUTE)
    assert u.gauge(("b", ""), MINUTE, T0, int(w.now), None) == [(T0 + 60, 10)]


def test_buckets_survive_a_restart() -> None:
    w = World()
    u = w.usage()
    w.streams[("b", "s")] = 42
    u.count("", "op:list-basins", 3)
    u.count("b", "read-bytes", 1000)
    w.advance(u, 2 * MINUTE)
    u.count("b", "read-bytes", 24)
    u.close()  # a clean stop writes the minute in progress
    end = int(w.now) + 1

    again = w.usage()
    again.restore(w.rows.items())
    assert again.counters("", "op:", HOUR, T0, end) == {"list-basins": [(T0, 3)]}
    assert again.counters("b", "read-bytes", MINUTE, T0, end) == {"": [(T0, 1000), (T0 + 120, 24)]}
    assert again.gauge(("b", "s"), MINUTE, T0, end, None)[0] == (T0, 42)
    assert again.active_basins(T0, end, None) == ["b"]


def test_a_damaged_row_is_skipped_not_fatal() -> None:
    w = World()
    u = w.usage()
    u.count("b", "op:append")
    w.advance(u, MINUTE)
    (key,) = [k for k in w.rows if split_row_key(k)[0] == MINUTE_ROW]
    w.rows[key] = b'{"c": 5}'
    again = w.usage()
    again.restore(w.rows.items())
    assert again.counters("b", "op:", MINUTE, T0, T0 + HOUR) == {}
    assert again.counters("b", "op:", HOUR, T0, T0 + HOUR) == {"append": [(T0, 1)]}
