"""``s2kit bench`` against lite with small parameters, through both SDKs, and its failure modes.

The runs are short (2 s of writing at 1 MiB/s) but complete: live read, catch-up read and the
chain verification all happen. Injecting a foreign record into the bench stream while it runs
must fail the run with exit code 3.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest

from s2kit import S2, AppendInput, Endpoints, Record, TailOffset

if TYPE_CHECKING:
    from s2kit.testing import LiteEndpoint

    from .conftest import Cli

SMALL = ("-b", "128", "-t", "1", "-d", "2s", "-w", "0")
KEYS = ("min", "p50", "p90", "p99", "max")
RATE = r"\d+\.\d\d MiB/s, \d+ records/s \((\d+) bytes, (\d+) records in \d+\.\d\ds\)"
DURATION = re.compile(r"\d+ns|\d+\.\dus|\d+\.\d\dms|\d+\.\d\ds")


def _row(text: str, key: str) -> None:
    """``key`` left-aligned in 7, ``: ``, a duration right-aligned in 9 (18 characters)."""
    assert len(text) == 18, text
    assert text[:9] == f"{key:<7}: ", text
    assert DURATION.fullmatch(text[9:].lstrip()), text


@pytest.mark.parametrize("sdk", ["s2kit", "official"])
def test_bench_small_run_verifies_the_chain(
    cli: Cli, basin: str, sdk: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "92")  # just wide enough for the tables side by side
    r = cli("--json", "bench", basin, *SMALL, "--sdk", sdk)
    assert r.code == 0, r.err
    report = r.json
    assert report["sdk"].startswith("s2kit " if sdk == "s2kit" else "s2-sdk ")
    assert report["verified"] is True
    assert report["interrupted"] is False
    records = report["write"]["records"]
    assert records > 10_000  # 2 s at 1 MiB/s of 128-byte records is 16384 when on pace
    assert report["write"]["bytes"] == records * 128
    assert report["read"]["records"] == records
    assert report["catchup"]["records"] == records
    assert report["ack_latency_us"]["n"] == records
    assert report["e2e_latency_us"]["n"] == records
    ack = report["ack_latency_us"]
    assert 0 < ack["min"] <= ack["p50"] <= ack["p90"] <= ack["p99"] <= ack["max"]
    assert 0.5 < report["write"]["mib_per_s"] < 1.1

    stream = report["stream"]
    lines = r.err.splitlines()
    assert lines[0] == (
        f"Creating temporary stream s2://{basin}/{stream} (storage class: <default>)"
    )
    assert lines[1] == (
        "Running for 2s targeting 1 MiB/s with 128 byte records, Ctrl+C to end early"
    )
    assert re.fullmatch(f"Write: {RATE}", lines[2])
    assert re.fullmatch(f"Read: {RATE}", lines[3])
    assert lines[4] == ""
    assert re.fullmatch(
        rf"Ack Latency Statistics \(n={records}\) +End-to-End Latency Statistics \(n={records}\)",
        lines[5],
    )
    assert lines[5].index("End-to-End") == 48  # 44 columns, then 4 spaces
    for key, line in zip(KEYS, lines[6:11], strict=True):
        _row(line[:18], key)
        assert line[18:48] == " " * 30
        _row(line[48:], key)
    assert lines[11] == "Starting catchup read (no delay)..."  # -w 0
    assert re.fullmatch(f"Catchup: {RATE}", lines[12])
    assert len(lines) == 13

    # The temporary stream is deleted after a successful run.
    listed = cli.ok("--json", "list-streams", basin, "--prefix", "bench/").json
    assert all(s["deleted_at"] is not None for s in listed)


def test_bench_stacks_the_tables_on_a_narrow_terminal(
    cli: Cli, basin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "91")
    started = time.monotonic()
    r = cli("bench", basin, "-b", "1024", "-d", "1s")
    elapsed = time.monotonic() - started
    assert r.code == 0, r.err
    # Without -w the catch-up waits a third of the run (at most 20 s, `s2 bench`'s default),
    # so a short run stays short: 1 s of writing, 0.3 s of waiting, and set-up and reads.
    assert elapsed < 10, elapsed
    assert r.out == ""  # the report is on stderr only, without --json
    lines = r.err.splitlines()
    assert lines[5].startswith("Ack Latency Statistics (n=")
    for key, line in zip(KEYS, lines[6:11], strict=True):
        _row(line, key)
    assert lines[11] == ""
    assert lines[12].startswith("End-to-End Latency Statistics (n=")
    for key, line in zip(KEYS, lines[13:18], strict=True):
        _row(line, key)
    assert lines[18] == "Waiting 300ms before catchup read..."


def _inject_duplicate(url: str, basin: str, stop: threading.Event) -> None:
    """Append a copy of the newest record of the bench stream once it has a few records."""

    async def run() -> None:
        async with S2("t", endpoints=Endpoints.for_url(url)) as s2:
            b = s2.basin(basin)
            while not stop.is_set():
                page = await b.list_streams(prefix="bench/")
                if page.items:
                    stream = b.stream(page.items[0].name)
                    if (await stream.check_tail()).seq_num >= 20:
                        last = (await stream.read(TailOffset(1))).records[-1]
                        copy = Record(
                            body=last.body, headers=last.headers, timestamp=last.timestamp
                        )
                        await stream.append(AppendInput(records=(copy,)))
                        return
                await asyncio.sleep(0.01)

    asyncio.run(run())


@pytest.mark.parametrize("sdk", ["s2kit", "official"])
def test_bench_detects_a_duplicated_record(
    cli: Cli, basin: str, sdk: str, lite_endpoint: LiteEndpoint
) -> None:
    stop = threading.Event()
    injector = threading.Thread(target=_inject_duplicate, args=(lite_endpoint.url, basin, stop))
    injector.start()
    try:
        r = cli("bench", basin, "-b", "1024", "-d", "5s", "-w", "0", "--sdk", sdk)
    finally:
        stop.set()
        injector.join(timeout=30)
    assert r.code == 3, r.err
    last = r.err.splitlines()[-1]
    assert re.fullmatch(
        r"s2kit bench: verification failed: live read: seq_num \d+: (duplicate record hash "
        r"\(a record was appended twice\)|hash chain broken \(a record was lost, reordered or "
        r"corrupted\)); the stream s2://\S+/bench/\S+ is kept for inspection",
        last,
    ), last
    # The stream is kept (not deleted) after a failed run.
    listed = cli.ok("--json", "list-streams", basin, "--prefix", "bench/").json
    assert [s["deleted_at"] for s in listed] == [None]


def test_bench_usage_and_server_errors(cli: Cli, basin: str) -> None:
    for flags, message in {
        ("-b", "127"): "record size must be at least 128 and below 1048576 bytes",
        ("-b", "1048576"): "record size must be at least 128 and below 1048576 bytes",
        ("-t", "0"): "expected a positive integer, got 0",
        ("-d", "forever"): "invalid duration 'forever'",
        ("--sdk", "rust"): "invalid SDK 'rust'",
        ("-c", "glacier"): "invalid storage class 'glacier'",
    }.items():
        r = cli("bench", basin, *flags)
        assert r.code == 2, flags
        assert message in r.err, r.err
    r = cli("bench", "no-such-basin-b", *SMALL)
    assert r.code == 1
    assert r.err.splitlines()[-1] == (
        "s2kit bench: error: basin `no-such-basin-b` not found [basin_not_found, HTTP 404]"
    )


def test_bench_missing_extra(cli: Cli, basin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xxhash", None)
    r = cli("bench", basin, *SMALL)
    assert (r.code, r.err) == (
        1,
        "s2kit: this command needs the `cli` extra (xxhash is missing): pip install 's2kit[cli]'\n",
    )


def test_bench_official_sdk_missing(cli: Cli, basin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s2_sdk", None)
    r = cli("bench", basin, *SMALL, "--sdk", "official")
    assert (r.code, r.err) == (
        1,
        "s2kit bench: --sdk official needs the official S2 SDK: pip install s2-sdk\n",
    )


def test_bench_ctrl_c_shows_partial_results(
    cli: Cli, basin: str, lite_endpoint: LiteEndpoint
) -> None:
    def interrupt_once_writing() -> None:
        async def run() -> None:
            async with S2("t", endpoints=Endpoints.for_url(url)) as s2:
                b = s2.basin(basin)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    page = await b.list_streams(prefix="bench/")
                    if page.items and (await b.stream(page.items[0].name).check_tail()).seq_num:
                        signal.raise_signal(signal.SIGINT)  # delivered to the main thread
                        return
                    await asyncio.sleep(0.01)

        asyncio.run(run())

    url = lite_endpoint.url
    t = threading.Thread(target=interrupt_once_writing)
    t.start()
    try:
        r = cli("--json", "bench", basin, "-b", "1024", "-d", "60s", "-w", "0")
    finally:
        t.join(timeout=30)
    assert r.code == 0, r.err
    assert "Interrupted by Ctrl+C; showing partial results." in r.err.splitlines()
    report = r.json
    assert report["interrupted"] is True
    assert report["verified"] is False
    assert report["catchup"] is None
    assert 0 < report["write"]["records"] < 60 * 1024
    assert report["write"]["seconds"] < 30
    listed = cli.ok("--json", "list-streams", basin, "--prefix", "bench/").json
    assert all(s["deleted_at"] is not None for s in listed)
