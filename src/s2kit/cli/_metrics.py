"""Metrics commands: ``account-metrics``, ``basin-metrics`` and ``stream-metrics`` (the S2
metrics API; lite answers them from its own accounting, docs/observability.md).

Human output is one table per command: for time series a row per point (``METRIC  TIME
VALUE  UNIT``, the time in UTC: the start of an accumulation's bucket, a gauge's reading), for
a label set a row per value. ``--json`` prints the metrics as one JSON list, each tagged with
its kind as the API tags it (``{"gauge": {"name": ..., "unit": ..., "values": [[t, v]]}}``).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from s2kit import (
    AccumulationMetric,
    GaugeMetric,
    LabelMetric,
    Metric,
    ScalarMetric,
    TimeseriesInterval,
)
from s2kit.cli._config import Settings, basin_arg, make_client, parse_duration, stream_arg
from s2kit.cli._output import print_json, print_table

if TYPE_CHECKING:
    from s2kit.cli._commands import Commands

ACCOUNT_SETS = ("active-basins", "account-ops")
BASIN_SETS = (
    "storage",
    "append-ops",
    "read-ops",
    "read-throughput",
    "append-throughput",
    "basin-ops",
)
STREAM_SETS = ("storage",)


_KINDS: dict[type, str] = {
    ScalarMetric: "scalar",
    AccumulationMetric: "accumulation",
    GaugeMetric: "gauge",
    LabelMetric: "label",
}


def moment(text: str) -> int:
    """argparse type: a time as Unix seconds (digits) or ISO 8601 (UTC without an offset)."""
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use Unix seconds or ISO 8601, e.g. 2030-01-31T12:00:00Z"
        ) from None
    return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp())


def _range(args: argparse.Namespace) -> tuple[int, int]:
    # `end` is exclusive: now's own second is inside the range only with the next one as the
    # end. (At a minute's first second, int(now) would leave out the minute in progress, which
    # is all a basin created since holds: server/_accounting.py, `active_basins`.)
    end = args.end if args.end is not None else int(time.time()) + 1
    start = args.start if args.start is not None else end - int(args.since)
    return start, end


def _interval(args: argparse.Namespace) -> TimeseriesInterval | None:
    return None if args.interval is None else TimeseriesInterval(args.interval)


def _when(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(v: float) -> str:
    return str(int(v)) if v == int(v) else f"{v:g}"


def print_metrics(metrics: list[Metric], settings: Settings) -> None:
    """The metrics as a table (or JSON with ``--json``)."""
    if settings.json:
        print_json([{_KINDS[type(m)]: m} for m in metrics])
        return
    rows: list[list[str]] = []
    for m in metrics:
        if isinstance(m, LabelMetric):
            rows.extend([m.name, "-", v, "-"] for v in m.values)
        elif isinstance(m, ScalarMetric):
            rows.append([m.name, "-", _number(m.value), m.unit.value])
        elif isinstance(m, AccumulationMetric | GaugeMetric):
            rows.extend([m.name, _when(t), _number(v), m.unit.value] for t, v in m.values)
    print_table(["METRIC", "TIME", "VALUE", "UNIT"], rows)


async def account_metrics(args: argparse.Namespace, settings: Settings) -> int:
    """``account-metrics``."""
    start, end = _range(args)
    async with make_client(settings) as s2:
        metrics = await s2.account_metrics(args.set, start=start, end=end, interval=_interval(args))
    print_metrics(metrics, settings)
    return 0


async def basin_metrics(args: argparse.Namespace, settings: Settings) -> int:
    """``basin-metrics``."""
    start, end = _range(args)
    async with make_client(settings) as s2:
        metrics = await s2.basin_metrics(
            args.basin, args.set, start=start, end=end, interval=_interval(args)
        )
    print_metrics(metrics, settings)
    return 0


async def stream_metrics(args: argparse.Namespace, settings: Settings) -> int:
    """``stream-metrics``."""
    start, end = _range(args)
    async with make_client(settings) as s2:
        metrics = await s2.stream_metrics(
            args.uri.basin, args.uri.stream, args.set, start=start, end=end
        )
    print_metrics(metrics, settings)
    return 0


def _range_flags(p: argparse.ArgumentParser, *, interval: bool = True) -> None:
    p.add_argument(
        "--since",
        type=parse_duration,
        default=3600.0,
        metavar="DURATION",
        help="how far back from the end (default 1h; at most 30d)",
    )
    p.add_argument("--start", type=moment, metavar="TIME", help="Unix seconds or ISO 8601")
    p.add_argument("--end", type=moment, metavar="TIME", help="default: now")
    if interval:
        p.add_argument(
            "--interval",
            choices=[i.value for i in TimeseriesInterval],
            help="bucket size (default: the set's)",
        )


def add_parsers(cmds: Commands) -> None:
    """Register the metrics commands."""
    p = cmds.add(
        "account-metrics",
        account_metrics,
        "print account metrics: active basins, or operations per type",
        "s2kit account-metrics account-ops --since 1d --interval hour",
    )
    p.add_argument("set", choices=ACCOUNT_SETS, metavar="SET", help=", ".join(ACCOUNT_SETS))
    _range_flags(p)

    p = cmds.add(
        "basin-metrics",
        basin_metrics,
        "print basin metrics: storage, operations and throughput",
        "s2kit basin-metrics my-basin append-throughput --since 10m",
    )
    p.add_argument("basin", type=basin_arg, metavar="BASIN")
    p.add_argument("set", choices=BASIN_SETS, metavar="SET", help=", ".join(BASIN_SETS))
    _range_flags(p)

    p = cmds.add(
        "stream-metrics",
        stream_metrics,
        "print a stream's stored bytes, minute by minute",
        "s2kit stream-metrics s2://my-basin/my-stream --since 30m",
    )
    p.add_argument("uri", type=stream_arg, metavar="s2://BASIN/STREAM")
    p.add_argument(
        "set", nargs="?", default="storage", choices=STREAM_SETS, metavar="SET", help="storage"
    )
    _range_flags(p, interval=False)
