"""``s2kit`` run in-process (``main(argv)``) for tests: the one runner of tests/cli and of the
CLI tests elsewhere (tests/auth/test_cli.py).

``main`` runs its own event loop (``asyncio.run``), so callers are synchronous; output is
captured as bytes (``capsysbinary``) because ``read`` writes record bodies to
``sys.stdout.buffer``.
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2kit.cli import main

if TYPE_CHECKING:
    import pytest


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

    def __call__(
        self, *argv: str, stdin: bytes | str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        for key, value in (env or {}).items():
            self._monkeypatch.setenv(key, value)
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


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str]) -> None:
    """Point the CLI at a lite through ``env``, with nothing of the developer's own: no TLS
    overrides or terminal width, and configuration and cache directories of the test's own
    (``tmp_path/config``, ``tmp_path/cache``), so a user's ``s2kit config`` never leaks in."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("S2_SSL_NO_VERIFY", "SSL_CERT_FILE", "COLUMNS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
