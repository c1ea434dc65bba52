"""Lite as a child process on a durable data directory, for the crash and restart tests.

The port is chosen once, up front, so a client's URL stays valid across restarts. Output goes
to a log file (read on failure), never to a pipe nobody drains.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

START_TIMEOUT = 30.0


def free_port() -> int:
    """A port that was free a moment ago (lite binds it with SO_REUSEADDR)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiteChild:
    """``python -m s2kit lite --data-dir DIR --port PORT`` that can be killed and restarted."""

    def __init__(self, data_dir: Path, port: int, log: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.port = port
        self.log = log
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"
        self.starts = 0
        self.kills = 0
        """SIGKILLs that hit a running lite (the history checker reports them)."""

    def _spawn(self) -> int:
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts}\n".encode())
            out.flush()
            offset = out.tell()
            cmd = [sys.executable, "-m", "s2kit", "lite", "--data-dir", str(self.data_dir)]
            self.proc = subprocess.Popen(
                [*cmd, "--port", str(self.port), *self.extra],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            return offset

    async def start(self) -> str:
        """Start it and wait until it serves; returns its URL."""
        offset = self._spawn()
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while loop.time() < deadline:
            with self.log.open("rb") as f:
                f.seek(offset)
                if b"serving on" in f.read():
                    return self.url
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.02)
        self.kill()
        raise AssertionError(f"lite did not start:\n{self.output()}")

    def output(self) -> str:
        """Everything the children printed so far."""
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL (counted) and reap (a no-op when not running)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            self.kills += 1
        if proc is not None:
            proc.wait()

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (drain) and wait; returns the exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
