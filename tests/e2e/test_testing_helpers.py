"""Lite for users' tests: the ``s2kit_lite`` pytest fixture, ``run_lite`` and ``LiteProcess``;
and the ``s2kit lite`` command's start-up banner, drain on SIGTERM and missing-extra message."""

from __future__ import annotations

import os
import subprocess
import sys

import s2kit
from s2kit.sync import S2
from s2kit.testing import LiteEndpoint, LiteProcess, run_lite


def _roundtrip(url: str, basin: str) -> list[bytes]:
    with S2("t", endpoints=s2kit.Endpoints.for_url(url)) as client:
        client.create_basin(basin)
        client.basin(basin).create_stream("s")
        stream = client.basin(basin).stream("s")
        stream.append(s2kit.AppendInput(records=[s2kit.Record(body=b"a"), s2kit.Record(body=b"b")]))
        return [r.body for r in stream.read(s2kit.SeqNum(0)).records]


def test_the_pytest_fixture_serves_lite(s2kit_lite: LiteEndpoint) -> None:
    assert s2kit_lite.env == {
        "S2_ACCOUNT_ENDPOINT": s2kit_lite.url,
        "S2_BASIN_ENDPOINT": s2kit_lite.url,
        "S2_ACCESS_TOKEN": "ignored",
    }
    assert _roundtrip(s2kit_lite.url, "fixture-basin") == [b"a", b"b"]


def test_run_lite_in_a_thread() -> None:
    with run_lite(flush_interval=0.001) as lite:
        assert lite.url.startswith("http://127.0.0.1:")
        assert _roundtrip(lite.url, "thread-basin") == [b"a", b"b"]


def test_lite_process_prints_its_endpoints_and_drains_on_sigterm() -> None:
    lite = LiteProcess()
    endpoint = lite.start()
    try:
        assert _roundtrip(endpoint.url, "process-basin") == [b"a", b"b"]
    finally:
        code = lite.stop()
    assert code == 0


def test_lite_banner_lists_the_variables_to_export() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "s2kit", "lite", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(5)]
    proc.terminate()
    rest, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    url = lines[0].split("serving on ")[1].split()[0]
    assert f"export S2_ACCOUNT_ENDPOINT={url}\n" in [line.lstrip() for line in lines]
    assert f"export S2_BASIN_ENDPOINT={url}\n" in [line.lstrip() for line in lines]
    assert "export S2_ACCESS_TOKEN=ignored\n" in [line.lstrip() for line in lines]
    assert "draining" in rest


def test_missing_lite_extra_gives_one_line() -> None:
    # Simulate an install without the `lite` extra: h11 cannot be imported.
    code = (
        "import sys; sys.modules['h11'] = None\n"
        "from s2kit.cli import main\n"
        "sys.exit(main(['lite', '--port', '0']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert "pip install 's2kit[lite]'" in proc.stderr
