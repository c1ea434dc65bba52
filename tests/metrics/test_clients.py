"""The metrics API through clients: the official ``s2-sdk`` 0.13, s2kit's SDK (async and
blocking) and the ``s2kit`` CLI (tables and ``--json``), each against a running lite."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import s2_sdk
from s2_sdk import AccountMetricSet, BasinMetricSet, StreamMetricSet

from s2kit import (
    S2,
    AccumulationMetric,
    AppendInput,
    Endpoints,
    GaugeMetric,
    LabelMetric,
    MetricUnit,
    Record,
    TimeseriesInterval,
)
from s2kit.cli import main
from s2kit.errors import ServerError
from s2kit.sync import S2 as BlockingS2
from s2kit.testing import LiteEndpoint, run_lite

from .conftest import BASIN, metered, window

if TYPE_CHECKING:
    from s2kit.server import Lite

QUICK: dict[str, float] = {"deletion_grace": 0.2, "background_interval": 0.05, "shutdown_grace": 2}
BODIES = [b"x" * 40, b"y" * 2]
STORED = sum(metered(b) for b in BODIES)


async def _fill(s2: S2) -> None:
    await s2.create_basin(BASIN)
    await s2.basin(BASIN).create_stream("s")
    await s2.basin(BASIN).stream("s").append(AppendInput(records=[Record(body=b) for b in BODIES]))


async def test_official_sdk_reads_every_set(lite: Lite) -> None:
    async with S2("ignored", endpoints=Endpoints.for_url(lite.url)) as ours:
        await _fill(ours)
    endpoints = s2_sdk.Endpoints(account=lite.url, basin=lite.url)
    async with s2_sdk.S2("ignored-by-lite", endpoints=endpoints) as s2:
        w = window()
        active = await s2.account_metrics(set=AccountMetricSet.ACTIVE_BASINS, **w)
        assert active == [s2_sdk.Label(name="active-basins", values=[BASIN])]
        ops = await s2.account_metrics(
            set=AccountMetricSet.ACCOUNT_OPS, interval=s2_sdk.TimeseriesInterval.MINUTE, **w
        )
        assert {m.name for m in ops} == {"create-basin", "account-metrics"}
        assert all(isinstance(m, s2_sdk.Accumulation) for m in ops)
        for metric_set in BasinMetricSet:
            got = await s2.basin_metrics(BASIN, set=metric_set, **w)
            assert got, metric_set
            kind = s2_sdk.Gauge if metric_set is BasinMetricSet.STORAGE else s2_sdk.Accumulation
            assert all(isinstance(m, kind) for m in got), (metric_set, got)
        (throughput,) = await s2.basin_metrics(BASIN, set=BasinMetricSet.APPEND_THROUGHPUT, **w)
        assert isinstance(throughput, s2_sdk.Accumulation)
        assert sum(v for _, v in throughput.values) == STORED
        assert throughput.unit is s2_sdk.MetricUnit.BYTES
        (storage,) = await s2.stream_metrics(BASIN, "s", set=StreamMetricSet.STORAGE, **w)
        assert isinstance(storage, s2_sdk.Gauge)
        assert storage.values[-1][1] == STORED
        with pytest.raises(s2_sdk.S2ServerError) as exc:
            await s2.account_metrics(set=AccountMetricSet.ESTIMATED_BILLABLE_USAGE, **w)
        assert (exc.value.status_code, exc.value.code) == (400, "bad_query")
        with pytest.raises(s2_sdk.S2ServerError) as exc:
            await s2.stream_metrics(BASIN, "s", set=StreamMetricSet.STORAGE)  # no range
        assert (exc.value.status_code, exc.value.code) == (422, "invalid")


async def test_s2kit_sdk_types_and_errors(lite: Lite) -> None:
    async with S2("ignored", endpoints=Endpoints.for_url(lite.url)) as s2:
        await _fill(s2)
        w = window()
        assert await s2.account_metrics("active-basins", **w) == [
            LabelMetric(name="active-basins", values=(BASIN,))
        ]
        (standard, express) = await s2.basin_metrics(
            BASIN, "append-ops", interval=TimeseriesInterval.HOUR, **w
        )
        assert isinstance(express, AccumulationMetric)
        assert isinstance(standard, AccumulationMetric)
        assert (standard.name, express.name) == ("standard", "express")
        assert express.interval is TimeseriesInterval.HOUR
        assert express.unit is MetricUnit.OPERATIONS
        assert sum(v for _, v in express.values) == 1
        assert standard.values == ()
        (gauge,) = await s2.stream_metrics(BASIN, "s", **w)
        assert isinstance(gauge, GaugeMetric)
        assert gauge.values[-1][1] == STORED
        with pytest.raises(ServerError) as exc:
            await s2.basin_metrics(BASIN, "storage", start=w["end"], end=w["start"])
        assert (exc.value.status, exc.value.code) == (422, "invalid")
        with pytest.raises(ServerError) as exc:
            await s2.account_metrics("storage", **w)
        assert (exc.value.status, exc.value.code) == (400, "bad_query")


def test_blocking_sdk_reads_metrics() -> None:
    with run_lite(**QUICK) as ep, BlockingS2("ignored", endpoints=Endpoints.for_url(ep.url)) as s2:
        s2.create_basin(BASIN)
        (ops,) = s2.account_metrics("account-ops", **window())
        assert isinstance(ops, AccumulationMetric)
        assert (ops.name, sum(v for _, v in ops.values)) == ("create-basin", 1)


# --- the CLI ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint() -> Iterator[LiteEndpoint]:
    with run_lite(**QUICK) as ep:
        yield ep


def cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    endpoint: LiteEndpoint,
    *argv: str,
) -> tuple[int, str, str]:
    for key, value in endpoint.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("COLUMNS", raising=False)
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_tables_and_json(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    endpoint: LiteEndpoint,
    tmp_path: object,
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))

    def run(*argv: str) -> tuple[int, str, str]:
        return cli(monkeypatch, capsys, endpoint, *argv)

    assert run("create-basin", BASIN)[0] == 0
    assert run("create-stream", f"s2://{BASIN}/s")[0] == 0
    code, out, _ = run("account-metrics", "active-basins")
    assert code == 0
    assert out.splitlines() == [
        f"METRIC         TIME  VALUE{' ' * (len(BASIN) - 5)}  UNIT".rstrip(),
        f"active-basins  -     {BASIN}  -",
    ]
    code, out, _ = run("account-metrics", "account-ops", "--interval", "minute", "--since", "1h")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["METRIC", "TIME", "VALUE", "UNIT"]
    by_name = {row.split()[0]: row.split() for row in rows}
    assert by_name["create-basin"][2:] == ["1", "operations"]
    assert by_name["create-basin"][1].endswith(":00Z")  # a minute's start, in UTC
    assert time.time() - 3600 <= _epoch(by_name["create-basin"][1]) <= time.time()

    code, out, _ = run("stream-metrics", f"s2://{BASIN}/s", "--json")
    assert code == 0
    (metric,) = json.loads(out)
    assert metric["gauge"]["name"] == "storage"
    assert metric["gauge"]["unit"] == "bytes"
    code, out, _ = run("basin-metrics", BASIN, "basin-ops", "--json", "--interval", "day")
    assert code == 0
    (metric,) = json.loads(out)
    assert metric["accumulation"]["name"] == "create-stream"
    assert metric["accumulation"]["interval"] == "day"
    assert [v for _, v in metric["accumulation"]["values"]] == [1]

    # The server's refusals come out as one-line errors with their code.
    code, out, err = run("basin-metrics", BASIN, "storage", "--interval", "minute")
    assert (code, out) == (1, "")
    assert "[invalid, HTTP 422]" in err
    code, _, err = run("account-metrics", "account-ops", "--since", "40d")
    assert code == 1
    assert "the time range must not exceed 30 days" in err
    code, _, err = run("account-metrics", "storage")
    assert code == 2  # argparse: not an account set
    assert "invalid choice" in err


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def test_cli_default_range_includes_the_minute_in_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    # At a minute's first second, `end` = int(now) would stop at the minute's start (`end` is
    # exclusive) and leave out what lite counts in the minute in progress: a basin created in
    # it was missing from `active-basins` (about one CLI run in 60).
    from s2kit.cli import _metrics

    monkeypatch.setattr(_metrics.time, "time", lambda: 1_800_000_000.4)  # a minute's start
    args = argparse.Namespace(end=None, start=None, since=600)
    start, end = _metrics._range(args)
    assert end > 1_800_000_000 > start
    assert end - 1_800_000_000 <= 1  # and no further than the next second
