"""Shared pieces of the benchmarks: lite in its own process, CPU meters, percentiles, tables.

Lite runs as a child process (``python -m s2kit lite --port 0``, through
:class:`s2kit.testing.LiteProcess`) so the CPU of the client (this process, from
``getrusage``) and of the server (``/proc/<pid>/stat``) are measured separately. On a 2-core
machine the two still compete for cores; the per-record CPU figures are the steadier ones.

Percentiles follow ``s2 bench`` (docs/bench-method.md#metrics): exact, from every
sample, nearest rank ``max(1, ceil(n * p))``; durations print like the CLI's (``ns``, ``us``,
``ms``, ``s``).

Set ``S2KIT_BENCH_PROFILE=FILE`` to run the server under ``cProfile`` (``python -m cProfile -o
FILE -m s2kit lite ...``); the stats are written when the server stops (SIGTERM drains and
returns normally). Read them with ``python -m pstats FILE``.
"""

from __future__ import annotations

import math
import os
import platform
import re
import resource
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from s2kit.testing import LiteEndpoint, LiteProcess

if TYPE_CHECKING:
    from collections.abc import Sequence

MIB = 1 << 20
PROFILE_ENV = "S2KIT_BENCH_PROFILE"


# -- the server process --------------------------------------------------------------------------


class _ProfiledLite(LiteProcess):
    """``LiteProcess`` with the server under ``cProfile`` (writes ``out`` on a clean stop)."""

    def __init__(self, out: str, *args: str) -> None:
        super().__init__(*args)
        self.out = out

    def start(self, timeout: float = 30.0) -> LiteEndpoint:
        cmd = [sys.executable, "-m", "cProfile", "-o", self.out, "-m", "s2kit", "lite"]
        cmd += ["--port", "0", *self.args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            m = re.search(r"serving on (\S+)", line)
            if m:
                url = m.group(1)
                port = int(url.rsplit(":", 1)[1])
                self.endpoint = LiteEndpoint(url=url, port=port)
                return self.endpoint
        raise RuntimeError(f"s2kit lite exited with {self.proc.wait(timeout)} before serving")


class Server:
    """A lite server in its own process, with its CPU time readable at any moment."""

    def __init__(self, *, flush_interval_ms: float = 5.0) -> None:
        self.flush_interval_ms = flush_interval_ms
        args = ("--flush-interval", f"{flush_interval_ms:g}")
        profile = os.environ.get(PROFILE_ENV)
        self.profile_out = profile
        self._lite = _ProfiledLite(profile, *args) if profile else LiteProcess(*args)
        self.url = ""

    def __enter__(self) -> Server:
        self.url = self._lite.start().url
        return self

    def __exit__(self, *exc: object) -> None:
        code = self._lite.stop()
        if code != 0:
            sys.stderr.write(f"bench: lite exited with status {code}\n")

    @property
    def pid(self) -> int:
        assert self._lite.proc is not None
        return self._lite.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process (all its threads) so far."""
        return proc_cpu_seconds(self.pid)


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` from ``/proc/<pid>/stat`` (resolution 1/CLK_TCK, often 10 ms)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _CLK_TCK


def proc_memory_bytes(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of ``/proc/PID/status`` in bytes (``VmRSS``, ``RssAnon``, ...); 0 when
    the process has none."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def self_cpu_seconds() -> float:
    """User + system CPU of this process (all threads) so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass(slots=True)
class CpuSpan:
    """CPU seconds spent by the client and the server between :meth:`start` and :meth:`stop`."""

    server: Server
    client_s: float = 0.0
    server_s: float = 0.0

    def start(self) -> None:
        self.client_s = -self_cpu_seconds()
        self.server_s = -self.server.cpu_seconds()

    def stop(self) -> None:
        self.client_s += self_cpu_seconds()
        self.server_s += self.server.cpu_seconds()


# -- statistics and formatting -------------------------------------------------------------------

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("min", 0.0),
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("max", 1.0),
)


def nearest_rank(sorted_samples: Sequence[float], p: float) -> float:
    """The smallest sample whose rank is at least ``max(1, ceil(n * p))`` (``s2 bench``)."""
    if not sorted_samples:
        raise ValueError("no samples")
    rank = max(1, math.ceil(len(sorted_samples) * p))
    return sorted_samples[rank - 1]


def summary(samples: Sequence[float]) -> dict[str, float]:
    """min, p50, p90, p99 and max of ``samples`` by nearest rank."""
    ordered = sorted(samples)
    return {name: nearest_rank(ordered, p) for name, p in PERCENTILES}


def fmt_duration(seconds: float) -> str:
    """A duration the way ``s2 bench`` prints it: ``Nns``, ``X.Xus``, ``X.XXms`` or ``X.XXs``."""
    ns = seconds * 1e9
    if ns < 1e3:
        return f"{ns:.0f}ns"
    if ns < 1e6:
        return f"{ns / 1e3:.1f}us"
    if ns < 1e9:
        return f"{ns / 1e6:.2f}ms"
    return f"{seconds:.2f}s"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; numbers are right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [
        bool(cells) and all(_looks_numeric(r[i]) for r in cells) for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        padded = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "| "
        + " | ".join(
            ("-" * (w - 1) + ":") if n else "-" * w for w, n in zip(widths, numeric, strict=True)
        )
        + " |"
    )
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


def _looks_numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d.,]+\s*[a-zµ/%]*", text))


# -- the machine ---------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "s2-sdk": _dist_version("s2-sdk"),
        "s2kit": _dist_version("s2kit") + _git_rev(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _dist_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _git_rev() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return f" (git {out.stdout.strip()})"
