"""Lite under attack: lite runs as a child process (``s2kit lite``; durable when a test writes
data, so stored records live in its memory-mapped file and not in its anonymous memory), an
attack runs in another child process (``_attack.py``), and the test watches lite from outside:

* a probe asks ``/health`` on a new connection every 100 ms: every answer must come within
  ``PROBE_LIMIT`` seconds, throughout the attack;
* lite's anonymous resident memory (``RssAnon`` in ``/proc/PID/status``: heap and buffers,
  not the mapped data file) may grow by at most ``RSS_LIMIT`` over the attack;
* lite is still running at the end, and its log has no traceback.

Every attack is bounded in time (a few seconds) and bytes, on loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).parent
PROBE_LIMIT = 2.0
RSS_LIMIT = 64 << 20
TOKEN = "hostile"
DURABLE = "DURABLE"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Watch:
    """What the probe and the RSS sampler saw."""

    probes: int = 0
    slowest: float = 0.0
    failures: list[str] = field(default_factory=list)
    rss_start: int = 0
    rss_peak: int = 0


class HostileLite:
    """``s2kit lite --data-dir`` in a child process, watched from outside."""

    def __init__(self, tmp: Path, *flags: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "lite.log"
        # "DURABLE" among the flags: on a data directory of its own.
        self.flags = tuple(
            arg for flag in flags
            for arg in (("--data-dir", str(tmp / "data")) if flag == DURABLE else (flag,))
        )  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.watch = Watch()

    def _spawn(self) -> None:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "s2kit", "lite", "--port", str(self.port), *self.flags],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def start(self) -> None:
        await asyncio.to_thread(self._spawn)
        async with asyncio.timeout(30):
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    async with httpx.AsyncClient() as c:
                        if (await c.get(f"{self.url}/health")).status_code == 200:
                            return
                await asyncio.sleep(0.1)

    def rss_anon(self) -> int:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no RssAnon")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @contextlib.asynccontextmanager
    async def watched(self) -> AsyncIterator[Watch]:
        """Probe and sample RSS while the block runs."""
        watch = self.watch
        watch.rss_start = watch.rss_peak = self.rss_anon()
        stop = asyncio.Event()

        async def probe() -> None:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    async with httpx.AsyncClient(timeout=PROBE_LIMIT * 3) as c:
                        r = await c.get(f"{self.url}/health")
                    if r.status_code != 200:
                        watch.failures.append(f"probe got {r.status_code}")
                except httpx.HTTPError as exc:
                    watch.failures.append(f"probe failed: {exc!r}")
                watch.slowest = max(watch.slowest, time.monotonic() - started)
                watch.probes += 1
                if self.alive():
                    watch.rss_peak = max(watch.rss_peak, self.rss_anon())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.1):
                        await stop.wait()

        task = asyncio.create_task(probe())
        try:
            yield watch
        finally:
            stop.set()
            await task

    def check(self, data: int = 0) -> None:
        """Lite answered throughout, stayed within its memory bound, and is still up.

        ``data`` is how many record bytes the test appended to an in-memory lite during the
        attack: they are lite's data, held in anonymous memory, and not part of the bound.
        """
        w = self.watch
        assert self.alive(), f"lite died:\n{self.output()[-3000:]}"
        assert not w.failures, w.failures[:5]
        assert w.probes > 0
        assert w.slowest < PROBE_LIMIT, f"a probe waited {w.slowest:.2f} s"
        growth = w.rss_peak - w.rss_start
        beyond = growth - data
        assert beyond <= RSS_LIMIT, f"RssAnon grew by {beyond / 2**20:.0f} MiB beyond the data"
        assert "Traceback" not in self.output(), self.output()[-3000:]


async def attack(name: str, port: int, seconds: float, **env: str) -> dict[str, int]:
    """Run ``_attack.py NAME`` in a child process; returns what it reports it did."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "_attack.py"), name, str(port), str(seconds),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )  # fmt: skip
    try:
        async with asyncio.timeout(seconds + 60):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:  # the test failed or timed out meanwhile: no orphan left
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, f"attack {name} failed ({proc.returncode})"
    report: dict[str, int] = json.loads(out.decode().strip().splitlines()[-1])
    return report


@pytest.fixture
async def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HostileLite]:
    """Lite started with the flags of the test's ``lite_flags`` marker."""
    marker = request.node.get_closest_marker("lite_flags")
    flags: tuple[str, ...] = marker.args if marker is not None else ()
    lite = HostileLite(tmp_path, *flags)
    await lite.start()
    try:
        yield lite
    finally:
        await lite.stop()
        # Shown with the report of a test that failed (pytest prints captured output only
        # then): what lite logged is how a failure in CI gets explained.
        print(f"--- the end of lite's log ({lite.log}) ---\n{lite.output()[-6000:]}")
