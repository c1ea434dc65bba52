"""Lite for tests: in-process (a background thread) or as a subprocess (``s2kit lite``)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class LiteEndpoint:
    """Where a running lite listens."""

    url: str
    """``http://127.0.0.1:PORT``."""
    port: int
    """The bound port."""
    env: dict[str, str] = field(default_factory=dict)
    """``S2_ACCOUNT_ENDPOINT``, ``S2_BASIN_ENDPOINT`` and ``S2_ACCESS_TOKEN`` for clients."""


def _env(url: str) -> dict[str, str]:
    return {"S2_ACCOUNT_ENDPOINT": url, "S2_BASIN_ENDPOINT": url, "S2_ACCESS_TOKEN": "ignored"}


@contextlib.contextmanager
def run_lite(**config: object) -> Iterator[LiteEndpoint]:
    """Run lite in a background thread of this process for the ``with`` block.

    Keyword arguments are :class:`s2kit.server.LiteConfig` fields.

    Raises:
        ImportError: the ``lite`` extra is not installed (the message says so).
    """
    try:
        from s2kit.server import LiteConfig, LiteThread
    except ImportError as exc:
        # Lite's dependencies are the `lite` extra; say so instead of naming a module the
        # user never asked for (the CLI's `s2kit lite` says the same).
        package = (exc.name or "a dependency").split(".")[0]
        raise ImportError(
            f"lite, which the s2kit_lite fixture and run_lite() start, needs the `lite` extra "
            f"({package} is missing): pip install 's2kit[lite]'",
            name=exc.name,
        ) from exc

    with LiteThread(LiteConfig(**config)) as lite:  # type: ignore[arg-type]
        yield LiteEndpoint(url=lite.url, port=lite.port, env=_env(lite.url))


class LiteProcess:
    """``s2kit lite`` as a child process on a free port; stopped with SIGTERM (drain)."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.endpoint: LiteEndpoint | None = None

    def start(self, timeout: float = 30.0) -> LiteEndpoint:
        """Start the process and wait for its URL."""
        cmd = [sys.executable, "-m", "s2kit", "lite", "--port", "0", *self.args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            m = re.search(r"serving on (\S+)", line)
            if m:
                url = m.group(1)
                self.endpoint = LiteEndpoint(
                    url=url, port=int(url.rsplit(":", 1)[1]), env=_env(url)
                )
                return self.endpoint
        raise RuntimeError(f"s2kit lite exited with {self.proc.wait(timeout)} before serving")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return 0
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def __enter__(self) -> LiteEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
