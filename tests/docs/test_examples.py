"""Every program in examples/ runs, as a user would run it, against a fresh lite.

Each runs in a child process (a fresh interpreter, nothing shared with the test) with the
``S2_*`` variables of the test's lite, and its output is checked for what it promises.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import s2kit
from s2kit.sync import S2

from ._markdown import ROOT

if TYPE_CHECKING:
    from s2kit.testing import LiteEndpoint

EXAMPLES = ROOT / "examples"


def run(
    lite: LiteEndpoint | None, *args: str, cwd: Path, expect: int = 0
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(lite.env if lite else {})}
    proc = subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=90
    )
    assert proc.returncode == expect, (
        f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    return proc


def bodies(lite: LiteEndpoint, basin: str, stream: str) -> list[bytes]:
    with S2("ignored", endpoints=s2kit.Endpoints.for_url(lite.url)) as s2:
        batch = s2.basin(basin).stream(stream).read(start=s2kit.SeqNum(0))
    return [r.body for r in batch.records if not (r.headers and r.headers[0][0] == b"")]


def test_every_example_is_run_here() -> None:
    covered = {
        "producer.py", "consumer.py", "exactly_once.py", "blocking.py", "test_with_lite.py",
        "demo.py",
    }  # fmt: skip
    assert {p.name for p in EXAMPLES.glob("*.py")} == covered


def test_producer_then_a_consumer_that_resumes(s2kit_lite: LiteEndpoint, tmp_path: Path) -> None:
    producer, consumer = str(EXAMPLES / "producer.py"), str(EXAMPLES / "consumer.py")
    position = str(tmp_path / "events.pos")
    out = run(s2kit_lite, producer, "example-basin", "events", "--count", "5", cwd=tmp_path)
    assert "appended 5 records at seq_nums 0..4" in out.stdout

    first = run(s2kit_lite, consumer, "example-basin", "events", "--position", position, "--once",
                cwd=tmp_path)  # fmt: skip
    assert [line.split(":")[0] for line in first.stdout.splitlines()[:5]] == list("01234")
    assert "processed 5 records; next position 5" in first.stdout

    run(s2kit_lite, producer, "example-basin", "events", "--count", "3", cwd=tmp_path)
    again = run(s2kit_lite, consumer, "example-basin", "events", "--position", position, "--once",
                cwd=tmp_path)  # fmt: skip
    # Only the new records: it resumed at the stored position.
    assert [line.split(":")[0] for line in again.stdout.splitlines()[:3]] == ["5", "6", "7"]
    assert "processed 3 records; next position 8" in again.stdout


def test_exactly_once_writer_resumes_after_a_crash(
    s2kit_lite: LiteEndpoint, tmp_path: Path
) -> None:
    writer = str(EXAMPLES / "exactly_once.py")
    crashed = run(s2kit_lite, writer, "example-basin", "ledger", "--entries", "12",
                  "--crash-after", "5", cwd=tmp_path, expect=3)  # fmt: skip
    assert "crashing after entry 4" in crashed.stdout
    resumed = run(s2kit_lite, writer, "example-basin", "ledger", "--entries", "12", cwd=tmp_path)
    assert "resuming at entry 5" in resumed.stdout
    done = run(s2kit_lite, writer, "example-basin", "ledger", "--entries", "12", cwd=tmp_path)
    assert "resuming at entry 12" in done.stdout
    # Every entry once, in order; the fences of the three runs are the only other records.
    assert bodies(s2kit_lite, "example-basin", "ledger") == [
        f"entry {i}".encode() for i in range(12)
    ]


def test_blocking_api(s2kit_lite: LiteEndpoint, tmp_path: Path) -> None:
    out = run(s2kit_lite, str(EXAMPLES / "blocking.py"), "example-basin", "notes", cwd=tmp_path)
    assert "append: seq_nums 0..1" in out.stdout
    assert "producer: [2, 3, 4, 5, 6]" in out.stdout
    assert "read 6: note 4" in out.stdout


def test_the_pytest_example_passes(tmp_path: Path) -> None:
    # Its own fixtures: a fresh lite per test, from the plugin. Run from a directory outside
    # the repository, as a user's project would, so only the plugin and the file matter.
    target = tmp_path / "test_with_lite.py"
    target.write_text((EXAMPLES / "test_with_lite.py").read_text())
    out = run(None, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(target), cwd=tmp_path)
    assert "3 passed" in out.stdout


def test_demo(tmp_path: Path) -> None:
    out = run(None, str(EXAMPLES / "demo.py"), cwd=tmp_path)
    assert "the follower saw 8 records" in out.stdout
    assert "lite stopped" in out.stdout
