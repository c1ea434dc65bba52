"""``s2kit read`` and ``tail``: start positions, limits, following, and Ctrl+C."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from s2kit.testing import LiteEndpoint

    from .conftest import Cli


@pytest.fixture
def stream(cli: Cli, basin: str) -> str:
    """A stream of ten records ``r0``..``r9`` with timestamps 1000, 2000, ..., 10000."""
    uri = f"s2://{basin}/ten"
    lines = "".join(
        json.dumps({"body": f"r{i}", "timestamp": (i + 1) * 1000}) + "\n" for i in range(10)
    )
    cli.ok("append", uri, "--format", "json", stdin=lines)
    return uri


def _bodies(cli: Cli, *argv: str) -> list[str]:
    return cli.ok("read", *argv).lines


def test_start_positions(cli: Cli, stream: str) -> None:
    assert _bodies(cli, stream) == [f"r{i}" for i in range(10)]
    assert _bodies(cli, stream, "--seq-num", "7") == ["r7", "r8", "r9"]
    assert _bodies(cli, stream, "-s", "9") == ["r9"]
    assert _bodies(cli, stream, "--timestamp", "8500") == ["r8", "r9"]
    assert _bodies(cli, stream, "--tail-offset", "2") == ["r8", "r9"]
    assert _bodies(cli, stream, "--start", "8") == ["r8", "r9"]
    assert _bodies(cli, stream, "--start", "seq:8") == ["r8", "r9"]
    assert _bodies(cli, stream, "--start", "timestamp:9000") == ["r8", "r9"]
    assert _bodies(cli, stream, "--start", "tail-offset:1") == ["r9"]


def test_limits(cli: Cli, stream: str) -> None:
    assert _bodies(cli, stream, "--count", "3") == ["r0", "r1", "r2"]
    assert _bodies(cli, stream, "-s", "5", "-n", "2") == ["r5", "r6"]
    # Each record is 8 + 2 = 10 metered bytes: 25 bytes allow two.
    assert _bodies(cli, stream, "--bytes", "25") == ["r0", "r1"]
    assert _bodies(cli, stream, "--until", "3000") == ["r0", "r1"]
    assert _bodies(cli, stream, "--timestamp", "4000", "--until", "6000") == ["r3", "r4"]


def test_beyond_the_tail(cli: Cli, stream: str) -> None:
    r = cli("read", stream, "--seq-num", "50")
    assert r.code == 1
    assert r.err == (
        "s2kit read: error: nothing to read there: start is beyond the tail 10 "
        "(use --clamp to start at the tail)\n"
    )
    clamped = cli.ok("read", stream, "--seq-num", "50", "--clamp")
    assert clamped.out == ""


def test_read_stops_at_the_tail_unless_following(cli: Cli, stream: str) -> None:
    # Without --follow a count beyond the tail stops at the tail...
    assert _bodies(cli, stream, "-s", "8", "--count", "5") == ["r8", "r9"]
    # ...and --wait bounds how long to wait for more at the tail.
    assert _bodies(cli, stream, "-s", "8", "--count", "5", "--wait", "0") == ["r8", "r9"]


def test_tail(cli: Cli, stream: str) -> None:
    assert cli.ok("tail", stream).lines == [f"r{i}" for i in range(10)]
    assert cli.ok("tail", stream, "-n", "3").lines == ["r7", "r8", "r9"]
    assert [
        json.loads(x)["seq_num"] for x in cli.ok("--json", "tail", stream, "-n", "2").lines
    ] == [
        8,
        9,
    ]
    assert cli.ok("tail", stream, "-n", "0").out == ""


def _lines_of(proc: subprocess.Popen[bytes]) -> queue.Queue[bytes]:
    q: queue.Queue[bytes] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            q.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return q


def _s2kit(endpoint: LiteEndpoint, *argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "s2kit", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **endpoint.env, "PYTHONUNBUFFERED": "1"},
    )


def _close(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def test_follow_waits_for_new_records(cli: Cli, stream: str, lite_endpoint: LiteEndpoint) -> None:
    proc = _s2kit(lite_endpoint, "read", stream, "-s", "9", "--count", "3", "--follow")
    try:
        lines = _lines_of(proc)
        assert lines.get(timeout=30) == b"r9\n"  # it is reading, and needs two more
        cli.ok("append", stream, "--format", "json", stdin='{"body": "n1", "timestamp": 11000}\n')
        assert lines.get(timeout=30) == b"n1\n"
        cli.ok("append", stream, "--format", "json", stdin='{"body": "n2", "timestamp": 12000}\n')
        assert lines.get(timeout=30) == b"n2\n"
        assert proc.wait(timeout=30) == 0
    finally:
        _close(proc)


def test_tail_follow_and_ctrl_c(cli: Cli, stream: str, lite_endpoint: LiteEndpoint) -> None:
    proc = _s2kit(lite_endpoint, "tail", "-f", "-n", "1", stream)
    try:
        lines = _lines_of(proc)
        assert lines.get(timeout=30) == b"r9\n"
        cli.ok("append", stream, "--format", "json", stdin='{"body": "live", "timestamp": 1}\n')
        assert lines.get(timeout=30) == b"live\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert proc.stderr is not None
        assert proc.stderr.read() == b""  # Ctrl+C is how -f ends: quietly, with status 130
    finally:
        _close(proc)


def test_bad_read_flags(cli: Cli, stream: str) -> None:
    cases = {
        ("--seq-num", "1", "--tail-offset", "2"): "not allowed with argument",
        ("--start", "soon:1"): "invalid start 'soon:1'",
        ("--start", "banana"): (
            "invalid start 'banana': use N or seq:N (a seq_num), timestamp:MS (milliseconds "
            "since the epoch) or tail-offset:N (N records before the tail)"
        ),
        ("--start", "seq:x"): "invalid start 'seq:x': use N or seq:N",
        ("--count", "0"): "expected a positive integer, got 0",
        ("--timestamp", "yesterday"): "expected an integer, got 'yesterday'",
        ("--format", "yaml"): "invalid format 'yaml'",
    }
    for flags, message in cases.items():
        r = cli("read", stream, *flags)
        assert r.code == 2, flags
        assert message in r.err, r.err
        assert r.err.count("\n") == 1
