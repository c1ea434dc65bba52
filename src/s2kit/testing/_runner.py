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


def _env(url: str, token: str | None = None) -> dict[str, str]:
    # Without --auth lite ignores the token, but clients insist on one.
    token = token or "ignored"
    return {"S2_ACCOUNT_ENDPOINT": url, "S2_BASIN_ENDPOINT": url, "S2_ACCESS_TOKEN": token}


@contextlib.contextmanager
def run_lite(**config: object) -> Iterator[LiteEndpoint]:
    """Run lite in a background thread of this process for the ``with`` block.

    Keyword arguments are :class:`s2kit.server.LiteConfig` fields; with ``auth=True`` the
    endpoint's ``S2_ACCESS_TOKEN`` is lite's root token (docs/auth.md).

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
        yield LiteEndpoint(url=lite.url, port=lite.port, env=_env(lite.url, lite.root_token))


def _flag_value(args: tuple[str, ...], flag: str) -> str:
    """The value of ``flag`` among command-line ``args`` (``--flag V`` or ``--flag=V``)."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1 :]
    return ""


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
        url = None
        for line in self.proc.stdout:
            if url is None and (m := re.search(r"serving on (\S+)", line)):
                url = m.group(1)
            elif url is not None and "S2_ACCESS_TOKEN" in line:
                self.endpoint = LiteEndpoint(
                    url=url, port=int(url.rsplit(":", 1)[1]), env=_env(url, self._token(line))
                )
                return self.endpoint
        raise RuntimeError(f"s2kit lite exited with {self.proc.wait(timeout)} before serving")

    def _token(self, line: str) -> str:
        """The token of the start-up hint's S2_ACCESS_TOKEN line (``_lite_cmd._token_line``)."""
        m = re.match(r"\s*export S2_ACCESS_TOKEN=(\S+)", line)
        if m is None:  # with --auth, given with --root-token (not repeated)
            return _flag_value(self.args, "--root-token")
        token = m.group(1)
        if token.startswith('"$'):  # with --auth, from S2KIT_ROOT_TOKEN
            return os.environ.get(token.strip('"$'), "")
        return token  # "ignored" without --auth, else the root token lite generated

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
