"""Lite's metrics handlers: the S2 metrics API (``GET /v1/metrics``, ``/v1/metrics/{basin}``,
``/v1/metrics/{basin}/{stream}``), answered from the usage accounting (``_accounting.py``),
and ``GET /metrics`` for Prometheus (``_prom.py``).

Requests (the rules S2 applies; docs/observability.md says the same for users):

* Query ``set`` (required), ``start`` and ``end`` (u32 Unix seconds; start inclusive, end
  exclusive), ``interval`` (``minute``, ``hour`` or ``day``). A missing ``set``, a set the
  level does not have, an unknown interval or a number that does not parse is 400
  ``bad_query``, as lite's query parsing answers everywhere (s2-lite parses the set and the
  interval as enums of the query).
* Then 422 ``invalid``: ``start`` or ``end`` missing; ``start`` after ``end``; ``end`` more than
  60 s ahead; more than 30 days between them; an interval a ``storage`` set does not have
  (a basin's has hourly points only, a stream's minutely ones).
* No 404: a basin or stream that does not exist (any more) has no figures, and gets empty ones.
* ``estimated-billable-usage`` (S2's newer API, which the official SDK knows): 400
  ``bad_query`` saying lite bills nothing.

Responses list the set's metrics in a fixed order: ``append-ops`` always both storage classes,
``read-ops`` always both read kinds (their values may be empty); ``account-ops`` and
``basin-ops`` one metric per operation seen in the range. Values are non-zero buckets only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from s2kit.errors import ErrorCode
from s2kit.server._accounting import DAY, HOUR, MINUTE, Points, live_bytes
from s2kit.server._http import Query, err
from s2kit.server._prom import CONTENT_TYPE

if TYPE_CHECKING:
    from s2kit.server._backend import Backend
    from s2kit.server._http import Reply

ACCOUNT_SETS: dict[str, int | None] = {"active-basins": None, "account-ops": HOUR}
"""Account metric sets and their default intervals."""
BASIN_SETS: dict[str, int | None] = {
    "storage": HOUR,
    "append-ops": MINUTE,
    "read-ops": MINUTE,
    "read-throughput": MINUTE,
    "append-throughput": MINUTE,
    "basin-ops": HOUR,
}
STREAM_SETS: dict[str, int | None] = {"storage": MINUTE}
NOT_KEPT = {
    "estimated-billable-usage": "lite bills nothing: `estimated-billable-usage` is S2's only",
}
"""Sets of S2's newer API lite has no figures for (it answers them ``bad_query``)."""
INTERVALS = {"minute": MINUTE, "hour": HOUR, "day": DAY}
_INTERVAL_NAMES = {v: k for k, v in INTERVALS.items()}
MAX_RANGE = 30 * DAY
FUTURE_SLACK = 60
"""How far ``end`` may lie ahead of now (seconds)."""

STORAGE_CLASSES = ("standard", "express")
READ_KINDS = ("unary", "streaming")


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """A validated metrics request."""

    set: str
    start: int
    end: int
    interval: int


def parse_query(raw: str, sets: dict[str, int | None], now: float) -> MetricQuery:
    """Validate a metrics request's query (see the module) for a level offering ``sets``.

    Raises:
        ServerError: ``bad_query`` (400) or ``invalid`` (422).
    """
    q = Query(raw)
    if not q.has("set"):
        raise err(ErrorCode.BAD_QUERY, "missing query parameter `set`")
    name = q.text("set")
    if name in NOT_KEPT and sets is ACCOUNT_SETS:
        raise err(ErrorCode.BAD_QUERY, f"invalid query parameter `set`: {NOT_KEPT[name]}")
    if name not in sets:
        raise err(
            ErrorCode.BAD_QUERY,
            f"invalid query parameter `set`: {name!r} is none of {', '.join(sets)}",
        )
    start, end = q.u64("start", bits=32), q.u64("end", bits=32)
    interval = None
    if q.has("interval"):
        interval = INTERVALS.get(q.text("interval"))
        if interval is None:
            raise err(
                ErrorCode.BAD_QUERY,
                f"invalid query parameter `interval`: {q.text('interval')!r} is none of "
                "minute, hour, day",
            )
    if start is None or end is None:
        raise err(ErrorCode.INVALID, f"start and end params required for `{name}`")
    if start > end:
        raise err(ErrorCode.INVALID, "`start` must not be after `end`")
    if end > now + FUTURE_SLACK:
        raise err(ErrorCode.INVALID, "`end` must not be more than 60 seconds in the future")
    if end - start > MAX_RANGE:
        raise err(ErrorCode.INVALID, "the time range must not exceed 30 days")
    default = sets[name]
    if name == "storage" and interval is not None and interval != default:
        assert default is not None
        only = _INTERVAL_NAMES[default]
        raise err(ErrorCode.INVALID, f"`storage` here has the interval `{only}` only")
    return MetricQuery(name, start, end, interval or default or HOUR)


def _accumulation(name: str, unit: str, interval: int, points: Points) -> dict[str, Any]:
    return {
        "accumulation": {
            "name": name,
            "unit": unit,
            "interval": _INTERVAL_NAMES[interval],
            "values": [[t, float(v)] for t, v in points],
        }
    }


def _gauge(name: str, points: Points) -> dict[str, Any]:
    return {"gauge": {"name": name, "unit": "bytes", "values": [[t, float(v)] for t, v in points]}}


def _label(name: str, values: list[str]) -> dict[str, Any]:
    return {"label": {"name": name, "values": values}}


def _per_name(
    found: dict[str, Points], names: tuple[str, ...], unit: str, interval: int
) -> list[dict[str, Any]]:
    """One metric per name: those of ``names`` always, in that order (empty when nothing was
    counted), else every name found, sorted."""
    order = names or tuple(found)
    return [_accumulation(n, unit, interval, found.get(n, [])) for n in order]


async def account_metrics(backend: Backend, reply: Reply) -> None:
    """GET /v1/metrics."""
    q = parse_query(reply.request.query, ACCOUNT_SETS, time.time())
    usage = backend.usage
    if q.set == "active-basins":
        live = {name for name, b in backend.catalog.basins.items() if b.streams}
        values = [_label("active-basins", usage.active_basins(q.start, q.end, live))]
    else:
        found = usage.counters("", "op:", q.interval, q.start, q.end)
        values = _per_name(found, (), "operations", q.interval)
    await reply.json(200, {"values": values})


async def basin_metrics(backend: Backend, reply: Reply, basin: str) -> None:
    """GET /v1/metrics/{basin}."""
    q = parse_query(reply.request.query, BASIN_SETS, time.time())
    usage, i = backend.usage, q.interval
    values: list[dict[str, Any]]
    if q.set == "storage":
        live = live_bytes(backend.catalog, backend.storage, basin, "")
        values = [_gauge("storage", usage.gauge((basin, ""), i, q.start, q.end, live))]
    elif q.set == "append-ops":
        found = usage.counters(basin, "append-ops:", i, q.start, q.end)
        values = _per_name(found, STORAGE_CLASSES, "operations", i)
    elif q.set == "read-ops":
        found = usage.counters(basin, "read-ops:", i, q.start, q.end)
        values = _per_name(found, READ_KINDS, "operations", i)
    elif q.set in ("read-throughput", "append-throughput"):
        counter = "read-bytes" if q.set == "read-throughput" else "append-bytes"
        points = usage.counters(basin, counter, i, q.start, q.end).get("", [])
        values = [_accumulation(q.set, "bytes", i, points)]
    else:
        found = usage.counters(basin, "op:", i, q.start, q.end)
        values = _per_name(found, (), "operations", i)
    await reply.json(200, {"values": values})


async def stream_metrics(backend: Backend, reply: Reply, basin: str, stream: str) -> None:
    """GET /v1/metrics/{basin}/{stream}."""
    q = parse_query(reply.request.query, STREAM_SETS, time.time())
    live = live_bytes(backend.catalog, backend.storage, basin, stream)
    points = backend.usage.gauge((basin, stream), q.interval, q.start, q.end, live)
    await reply.json(200, {"values": [_gauge("storage", points)]})


async def prometheus(backend: Backend, reply: Reply) -> None:
    """GET /metrics: the operator metrics in the Prometheus text format."""
    await reply.send(200, backend.telemetry.render(), [("content-type", CONTENT_TYPE)])
