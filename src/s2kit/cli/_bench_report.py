"""What ``s2kit bench`` reports: exact percentiles, the official text layout, JSON, a live view.

The layout is the official ``s2 bench`` one (docs/bench-method.md#output): rate lines
``Write: X.XX MiB/s, N records/s (B bytes, R records in S.SSs)``, then the ack and end-to-end
latency tables (key left-aligned in 7, ``: ``, value right-aligned in 9), side by side when the
terminal has at least 92 columns (44 + 4 + 44) and one above the other otherwise. Durations
print as ``Nns`` below 1 µs, ``X.Xus`` below 1 ms, ``X.XXms`` below 1 s, ``X.XXs`` otherwise.
Percentiles are exact nearest-rank over every sample: rank = max(1, ceil(n·p))
(docs/bench-method.md#metrics).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

MIB = 1 << 20
TABLE_WIDTH = 44
SIDE_BY_SIDE_MIN = TABLE_WIDTH * 2 + 4
QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))


def percentiles(samples: Sequence[int]) -> dict[str, int]:
    """min, p50, p90, p99 and max by the nearest-rank method (empty: no keys)."""
    if not samples:
        return {}
    s = sorted(samples)
    n = len(s)
    out = {"min": s[0]}
    for name, p in QUANTILES:
        out[name] = s[max(1, math.ceil(n * p)) - 1]
    out["max"] = s[-1]
    return out


def format_ns(ns: float) -> str:
    """A latency as the official CLI prints it."""
    if ns < 1_000:
        return f"{ns:.0f}ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.1f}us"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.2f}ms"
    return f"{ns / 1e9:.2f}s"


def debug_duration(secs: float) -> str:
    """A duration as Rust's ``Debug`` for ``Duration`` prints it (``20s``, ``1.5s``, ``250ms``)."""
    ns = round(secs * 1e9)
    for unit, scale in (("s", 10**9), ("ms", 10**6), ("µs", 10**3)):
        if ns >= scale:
            whole, frac = divmod(ns, scale)
            digits = str(frac).rjust(len(str(scale)) - 1, "0").rstrip("0")
            return f"{whole}.{digits}{unit}" if digits else f"{whole}{unit}"
    return f"{ns}ns"


def human_duration(secs: float) -> str:
    """A duration as humantime formats it (``1m 30s``, ``20s``, ``500ms``)."""
    ms_total = round(secs * 1000)
    parts = []
    for unit, scale in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms_total >= scale:
            parts.append(f"{ms_total // scale}{unit}")
            ms_total %= scale
    if ms_total:
        parts.append(f"{ms_total}ms")
    return " ".join(parts) or "0s"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rate:
    """A throughput figure: ``records`` of ``record_size`` bytes in ``seconds``."""

    records: int
    record_size: int
    seconds: float

    @property
    def bytes(self) -> int:
        """Metered bytes."""
        return self.records * self.record_size

    @property
    def mib_per_s(self) -> float:
        """MiB (2^20 bytes) per second."""
        return self.bytes / MIB / self.seconds if self.seconds > 0 else 0.0

    @property
    def records_per_s(self) -> float:
        """Records per second."""
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def line(self, label: str) -> str:
        """``Write: 1.00 MiB/s, 128 records/s (… bytes, … records in …s)``."""
        return (
            f"{label}: {self.mib_per_s:.2f} MiB/s, {self.records_per_s:.0f} records/s "
            f"({self.bytes} bytes, {self.records} records in {self.seconds:.2f}s)"
        )

    def as_json(self) -> dict[str, Any]:
        """The figure for ``--json``."""
        return {
            "records": self.records,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 6),
            "mib_per_s": round(self.mib_per_s, 4),
            "records_per_s": round(self.records_per_s, 2),
        }


def latency_table(title: str, samples_ns: Sequence[int]) -> list[str]:
    """``Title (n=N)`` and the min/p50/p90/p99/max rows."""
    stats = percentiles(samples_ns)
    lines = [f"{title} (n={len(samples_ns)})"]
    for key in ("min", "p50", "p90", "p99", "max"):
        value = format_ns(stats[key]) if stats else "-"
        lines.append(f"{key:<7}: {value:>9}")
    return lines


def tables(left: list[str], right: list[str], columns: int | None = None) -> list[str]:
    """Two tables side by side when there is room, else one above the other."""
    if columns is None:
        columns = terminal_columns()
    if columns < SIDE_BY_SIDE_MIN:
        return [*left, "", *right]
    rows = max(len(left), len(right))
    left = left + [""] * (rows - len(left))
    right = right + [""] * (rows - len(right))
    return [f"{a.ljust(TABLE_WIDTH)}    {b}".rstrip() for a, b in zip(left, right, strict=True)]


def terminal_columns() -> int:
    """The width of the terminal stderr goes to (``COLUMNS`` wins; 80 when not a terminal)."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit():
        return int(env)
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return 80


def latency_json(samples_ns: Sequence[int]) -> dict[str, Any]:
    """Percentiles in microseconds, and n."""
    stats = percentiles(samples_ns)
    return {"n": len(samples_ns), **{k: round(v / 1e3, 3) for k, v in stats.items()}}


class LiveView:
    """A live progress view on stderr with ``rich``, redrawn 20 times a second.

    Rendering reads counters the benchmark updates; only recent samples are summarised, so a
    redraw stays cheap however long the run.
    """

    def __init__(self, title: str, duration: float, sources: Any) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = Console(stderr=True)
        self._title = title
        self._duration = duration
        self._src = sources
        self._live = Live(
            console=self._console,
            get_renderable=self.render,
            refresh_per_second=20,
            transient=True,
        )

    @staticmethod
    def wanted() -> bool:
        """Whether stderr is a terminal (no live view in logs or CI)."""
        from rich.console import Console

        return Console(stderr=True).is_terminal

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def render(self) -> Any:
        """The view as it is now: a header line and one line per meter, within 80 columns."""
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        src = self._src
        elapsed = min(src.elapsed(), self._duration)
        header = Table.grid(padding=(0, 2))
        header.add_row(
            f"[bold]{self._title}[/]",
            ProgressBar(total=self._duration or 1, completed=elapsed, width=24),
            f"{elapsed:.1f}s / {self._duration:.0f}s",
        )
        # One column per figure, so the lines stay short and the numbers line up.
        meters = Table.grid(padding=(0, 2))
        for justify in ("left", "right", "right", "right", "left"):
            meters.add_column(justify=justify)
        for label, rate, recent, what in src.rows():
            p50 = percentiles(recent).get("p50")
            meters.add_row(
                label,
                f"{rate.mib_per_s:.2f} MiB/s",
                f"{rate.records_per_s:.0f} rec/s",
                f"{rate.records} records",
                f"{what} p50 {format_ns(p50) if p50 is not None else '-'}",
            )
        return Group(header, meters)
