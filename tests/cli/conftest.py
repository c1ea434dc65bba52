"""Fixtures for the CLI tests: lite in a background thread, and ``main(argv)`` run in-process.

``main`` runs its own event loop (``asyncio.run``), so the tests are synchronous and lite runs
in a thread of the test process (:func:`s2kit.testing.run_lite`). Output is captured as bytes
(``capsysbinary``) because ``read`` writes record bodies to ``sys.stdout.buffer``.
"""

from __future__ import annotations

import io
import itertools
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from s2kit.cli import main
from s2kit.testing import LiteEndpoint, run_lite

_names = itertools.count()


def unique_basin(prefix: str = "cli") -> str:
    """A basin name not used before in this process."""
    return f"{prefix}-test-{next(_names):06d}"


@dataclass(frozen=True)
class Result:
    """What one ``main(argv)`` call did."""

    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        """stdout as one JSON document."""
        return json.loads(self.out)

    @property
    def lines(self) -> list[str]:
        """stdout lines."""
        return self.out.splitlines()


class Cli:
    """Runs ``s2kit`` in-process: ``cli("read", "s2://b/s", stdin=b"...")``."""

    def __init__(self, capsys: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch):
        self._capsys = capsys
        self._monkeypatch = monkeypatch

    def __call__(self, *argv: str, stdin: bytes | str | None = None) -> Result:
        data = stdin.encode() if isinstance(stdin, str) else (stdin or b"")
        self._monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        self._capsys.readouterr()
        code = main(list(argv))
        out, err = self._capsys.readouterr()
        return Result(code, out.decode(), err.decode())

    def ok(self, *argv: str, stdin: bytes | str | None = None) -> Result:
        """Run and assert success (exit code 0)."""
        result = self(*argv, stdin=stdin)
        assert result.code == 0, result
        return result


@pytest.fixture(scope="module")
def lite_endpoint() -> Iterator[LiteEndpoint]:
    """One lite per test module, in a background thread, with quick background passes."""
    with run_lite(deletion_grace=0.2, background_interval=0.05, shutdown_grace=2.0) as ep:
        yield ep


@pytest.fixture
def cli(
    lite_endpoint: LiteEndpoint,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Cli:
    """The CLI, configured for the module's lite through the environment.

    The user's configuration and cache directories are the test's own (``tmp_path/config``,
    ``tmp_path/cache``), so a developer's ``s2kit config`` never leaks into a test.
    """
    for key, value in lite_endpoint.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("S2_SSL_NO_VERIFY", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return Cli(capsysbinary, monkeypatch)


@pytest.fixture
def basin(cli: Cli) -> str:
    """A fresh basin that creates streams on append and on read."""
    name = unique_basin()
    cli.ok("create-basin", name, "--create-stream-on-append", "true")
    return name
