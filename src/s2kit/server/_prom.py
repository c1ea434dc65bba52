"""Lite's operator metrics: ``GET /metrics`` in the Prometheus text format.

The hot paths bump plain ints and histograms of plain lists (:class:`Telemetry`); a collector
turns them into metric families only when Prometheus scrapes, and prometheus-client renders
the text. Measured here: prometheus-client's labelled ``Histogram.observe`` costs 1.7 µs a
call and a plain-list histogram 0.2 µs, with one call per request and a few per append batch.
Gauges (connections, sessions, memory, storage) are read at scrape time and cost nothing
between scrapes.

Each lite has its own ``CollectorRegistry``, so several lites in one process (tests) never
share a figure. Names: ``s2_append_*`` as s2-lite names them (same meaning), everything else
``s2kit_lite_*``; docs/observability.md lists them all.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from s2kit.server._lite import Lite
    from s2kit.server._storage import StreamCommit

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""What s2-lite answers ``/metrics`` with: the classic text format (version 0.0.4)."""

SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)
RECORDS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
BYTES = (64, 256, 1024, 4096, 16384, 65536, 262144, 1 << 20)
COMMIT_RECORDS = (1, 10, 100, 1000, 10_000, 100_000)
COMMIT_BYTES = (1024, 16384, 262144, 1 << 20, 4 << 20, 16 << 20, 64 << 20)


class Histogram:
    """Counts per bucket (``le`` bounds, then +Inf) and the sum: one bisect per value."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count one value."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        """Buckets as Prometheus has them: cumulative counts by ``le``."""
        out, running = [], 0
        for bound, n in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            running += n
            out.append((bound, float(running)))
        return out


class Telemetry:
    """The counters lite's hot paths bump; read by :class:`LiteCollector` when scraped."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        """This lite's registry (the collectors of :func:`register` go into it)."""
        self.requests: dict[tuple[str, int], Histogram] = {}
        """Request durations by (route name, status)."""
        self.appended_records = 0
        self.appended_bytes = 0
        self.batch_records = Histogram(RECORDS)
        self.batch_bytes = Histogram(BYTES)
        self.permit_seconds = Histogram(SECONDS)
        self.ack_seconds = Histogram(SECONDS)
        self.read_records = 0
        self.read_bytes = 0
        self.commit_seconds = Histogram(SECONDS)
        self.commit_records = Histogram(COMMIT_RECORDS)
        self.commit_bytes = Histogram(COMMIT_BYTES)
        self.auth_failures: dict[str, int] = {}
        """Requests refused by access control, by error code (``authn``,
        ``permission_denied``): bumped through :meth:`auth_failed`."""

    def request(self, name: str, status: int, seconds: float) -> None:
        """A request ended (``name``: its route's, see ``_routes.py``)."""
        key = (name, status)
        h = self.requests.get(key)
        if h is None:
            h = self.requests[key] = Histogram(SECONDS)
        h.observe(seconds)

    def appended(self, records: int, nbytes: int, permit_seconds: float) -> None:
        """An append batch was sequenced after waiting ``permit_seconds`` for admission."""
        self.appended_records += records
        self.appended_bytes += nbytes
        self.batch_records.observe(records)
        self.batch_bytes.observe(nbytes)
        self.permit_seconds.observe(permit_seconds)

    def read(self, records: int, nbytes: int) -> None:
        """A reader was handed ``records`` records of ``nbytes`` metered bytes."""
        self.read_records += records
        self.read_bytes += nbytes

    def committed(self, seconds: float, commits: Sequence[StreamCommit]) -> None:
        """A group commit took ``seconds`` (the storage transaction, its sync included)."""
        self.commit_seconds.observe(seconds)
        self.commit_records.observe(sum(len(c.records) for c in commits))
        self.commit_bytes.observe(sum(sum(c.sizes) for c in commits))

    def auth_failed(self, code: str) -> None:
        """Access control refused a request with ``code`` (for the auth helpers to call)."""
        self.auth_failures[code] = self.auth_failures.get(code, 0) + 1

    def render(self) -> bytes:
        """The scrape: every metric of this lite in the text format."""
        return generate_latest(self.registry)


def _histogram(name: str, doc: str, h: Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, buckets=h.cumulative(), sum_value=h.total)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    # prometheus-client appends ``_total`` to counter samples itself.
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class LiteCollector(Collector):
    """Turns a lite's :class:`Telemetry` and its live state into metric families."""

    def __init__(self, lite: Lite) -> None:
        self._lite = lite

    def collect(self) -> Iterator[Metric]:
        """Called by prometheus-client on each scrape."""
        lite = self._lite
        t = lite.backend.telemetry
        yield from self._requests(t)
        yield _counter("s2kit_lite_appended_records", "Records appended.", t.appended_records)
        yield _counter(
            "s2kit_lite_appended_bytes", "Metered bytes of records appended.", t.appended_bytes
        )
        yield _counter("s2kit_lite_read_records", "Records handed to readers.", t.read_records)
        yield _counter(
            "s2kit_lite_read_bytes", "Metered bytes of records handed to readers.", t.read_bytes
        )
        yield _histogram("s2_append_batch_records", "Records per append batch.", t.batch_records)
        yield _histogram("s2_append_batch_bytes", "Metered bytes per append batch.", t.batch_bytes)
        yield _histogram(
            "s2_append_permit_latency_seconds",
            "Time an append batch waited for admission (--append-inflight-bytes).",
            t.permit_seconds,
        )
        yield _histogram(
            "s2_append_ack_latency_seconds",
            "Time from an append batch's arrival to its durable ack.",
            t.ack_seconds,
        )
        yield _histogram(
            "s2kit_lite_commit_duration_seconds",
            "Time a group commit spent in storage (the sync included).",
            t.commit_seconds,
        )
        yield _histogram("s2kit_lite_commit_records", "Records per group commit.", t.commit_records)
        yield _histogram(
            "s2kit_lite_commit_bytes", "Metered bytes per group commit.", t.commit_bytes
        )
        auth = CounterMetricFamily(
            "s2kit_lite_auth_failures", "Requests refused by access control.", labels=["code"]
        )
        for code, n in sorted(t.auth_failures.items()):
            auth.add_metric([code], n)
        yield auth
        yield from self._live()

    @staticmethod
    def _requests(t: Telemetry) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "s2kit_lite_request_duration_seconds",
            "Requests by route and status, and how long they took (sessions: their length). "
            "Its _count is the number of requests.",
            labels=["op", "status"],
        )
        for (name, status), h in sorted(t.requests.items()):
            family.add_metric([name, str(status)], h.cumulative(), h.total)
        yield family

    def _live(self) -> Iterator[Metric]:
        lite = self._lite
        app, backend = lite.app, lite.backend
        yield _gauge(
            "s2kit_lite_open_connections",
            "Client connections open (including those in their handshake).",
            lite.http.statistics().open_connections,
        )
        yield _gauge("s2kit_lite_requests_in_progress", "Requests being served.", app.active)
        sessions = GaugeMetricFamily(
            "s2kit_lite_open_sessions",
            "Streaming sessions open, by kind.",
            labels=["kind"],
        )
        for kind, n in sorted(app.observer.sessions().items()):
            sessions.add_metric([kind], n)
        yield sessions
        memory = app.memory
        yield _gauge(
            "s2kit_lite_memory_budget_bytes",
            "Lite's memory budget (--memory-budget).",
            memory.capacity,
        )
        yield _gauge(
            "s2kit_lite_memory_budget_used_bytes",
            "Memory budget held by requests and sessions.",
            memory.used,
        )
        yield _counter(
            "s2kit_lite_memory_evictions",
            "Stuck readers evicted to free the memory budget.",
            memory.evictions,
        )
        yield _gauge(
            "s2kit_lite_append_inflight_bytes",
            "Metered bytes of appends sequenced and not yet durable.",
            backend.admission.used,
        )
        yield _gauge(
            "s2kit_lite_append_inflight_limit_bytes",
            "Limit of appends in flight (--append-inflight-bytes).",
            backend.admission.capacity,
        )
        catalog, storage = backend.catalog, backend.storage
        streams, stored = 0, 0
        for bname, b in catalog.basins.items():
            streams += len(b.streams)
            for sname in b.streams:
                stored += storage.stored_bytes((bname, sname)) or 0
        yield _gauge(
            "s2kit_lite_basins", "Basins (including those being deleted).", len(catalog.basins)
        )
        yield _gauge("s2kit_lite_streams", "Streams (those being deleted too).", streams)
        yield _gauge(
            "s2kit_lite_storage_bytes",
            "Metered bytes of the records stored, over all streams (after a restart of a "
            "durable lite, streams still being counted are left out).",
            stored,
        )


def register(lite: Lite) -> None:
    """Put a lite's collectors in its registry: its own, and the process's (as s2-lite)."""
    registry = lite.backend.telemetry.registry
    registry.register(LiteCollector(lite))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
