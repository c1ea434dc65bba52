"""The figures ``s2kit bench`` prints must be defined as ``s2 bench`` defines them
(docs/bench-method.md#metrics): exact nearest-rank percentiles, the CLI's duration formats,
MiB = 2^20."""

from __future__ import annotations

import io
import random

import pytest

from s2kit.cli._bench_report import (
    LiveView,
    Rate,
    debug_duration,
    format_ns,
    human_duration,
    latency_table,
    percentiles,
    tables,
)
from s2kit.cli._config import parse_duration


def test_nearest_rank_percentiles() -> None:
    assert percentiles([]) == {}
    assert percentiles([7]) == {"min": 7, "p50": 7, "p90": 7, "p99": 7, "max": 7}
    # rank = max(1, ceil(n * p)); the value is the rank-th smallest sample.
    samples = list(range(1, 101))
    random.Random(1).shuffle(samples)
    assert percentiles(samples) == {"min": 1, "p50": 50, "p90": 90, "p99": 99, "max": 100}
    assert percentiles([10, 20, 30]) == {"min": 10, "p50": 20, "p90": 30, "p99": 30, "max": 30}
    assert percentiles([1, 2, 3, 4]) == {"min": 1, "p50": 2, "p90": 4, "p99": 4, "max": 4}
    # Not interpolated: 1000 samples, p99 is the 990th.
    assert percentiles(list(range(1000)))["p99"] == 989


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0ns"),
        (999, "999ns"),
        (1_000, "1.0us"),
        (752_884, "752.9us"),
        (999_949, "999.9us"),
        (1_000_000, "1.00ms"),
        (12_345_678, "12.35ms"),
        (999_990_000, "999.99ms"),
        (1_000_000_000, "1.00s"),
        (61_234_000_000, "61.23s"),
    ],
)
def test_latency_format(ns: int, text: str) -> None:
    assert format_ns(ns) == text


def test_durations_print_as_the_official_cli_prints_them() -> None:
    # Rust's Debug for Duration, used by "Waiting ... before catchup read...".
    assert [debug_duration(s) for s in (20, 0, 1.5, 0.25, 0.0000015, 90)] == [
        "20s", "0ns", "1.5s", "250ms", "1.5µs", "90s",
    ]  # fmt: skip
    # humantime, used by "Running for ...".
    assert [human_duration(s) for s in (60, 20, 90, 0.5, 3600 + 1.25)] == [
        "1m", "20s", "1m 30s", "500ms", "1h 1s 250ms",
    ]  # fmt: skip


def test_duration_flags_parse_humantime() -> None:
    assert parse_duration("60s") == 60
    assert parse_duration("5m") == 300
    assert parse_duration("1m 30s") == 90
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    assert parse_duration("2") == 2
    assert parse_duration("0") == 0


def test_rate_line_uses_mib_and_counts_metered_bytes() -> None:
    rate = Rate(records=7680, record_size=8192, seconds=60.0)
    assert rate.line("Write") == (
        "Write: 1.00 MiB/s, 128 records/s (62914560 bytes, 7680 records in 60.00s)"
    )
    assert Rate(records=0, record_size=8192, seconds=0.0).line("Read") == (
        "Read: 0.00 MiB/s, 0 records/s (0 bytes, 0 records in 0.00s)"
    )


def test_tables_side_by_side_only_from_92_columns() -> None:
    ack = latency_table("Ack Latency Statistics", [1_000_000, 2_000_000])
    e2e = latency_table("End-to-End Latency Statistics", [3_000])
    assert ack == [
        "Ack Latency Statistics (n=2)",
        "min    :    1.00ms",
        "p50    :    1.00ms",
        "p90    :    2.00ms",
        "p99    :    2.00ms",
        "max    :    2.00ms",
    ]
    wide = tables(ack, e2e, columns=92)
    assert (
        wide[0] == "Ack Latency Statistics (n=2)".ljust(48) + "End-to-End Latency Statistics (n=1)"
    )
    assert wide[1] == "min    :    1.00ms".ljust(48) + "min    :     3.0us"
    assert tables(ack, e2e, columns=91) == [*ack, "", *e2e]
    assert latency_table("Empty", [])[1] == "min    :         -"


class _Meters:
    """What the live view reads, at the widest figures a run can show."""

    def elapsed(self) -> float:
        return 1234.5

    def rows(self) -> list[tuple[str, Rate, list[int], str]]:
        rate = Rate(records=123_456_789, record_size=1024, seconds=1234.5)
        return [
            ("Write", rate, [1_500_000], "ack"),
            ("Read", rate, [12_345_000_000], "e2e"),
        ]


def test_live_view_fits_80_columns() -> None:
    from rich.console import Console

    view = LiveView("s2kit bench (s2-sdk 0.13.0)", 3600.0, _Meters())
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(view.render())
    lines = console.export_text().splitlines()
    assert len(lines) == 3, lines  # header, write, read: nothing wrapped
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert lines[1].split() == [
        "Write", "97.66", "MiB/s", "100005", "rec/s", "123456789", "records", "ack", "p50",
        "1.50ms",
    ]  # fmt: skip
    assert lines[2].split()[-3:] == ["e2e", "p50", "12.35s"]
