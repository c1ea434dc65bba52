"""Fixtures for the CLI tests: lite in a background thread, and ``main(argv)`` run in-process.

``main`` runs its own event loop (``asyncio.run``), so the tests are synchronous and lite runs
in a thread of the test process (:func:`s2kit.testing.run_lite`). Output is captured as bytes
(``capsysbinary``) because ``read`` writes record bodies to ``sys.stdout.buffer``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from s2kit.testing import LiteEndpoint, run_lite

from ._runner import Cli, isolate

_names = itertools.count()


def unique_basin(prefix: str = "cli") -> str:
    """A basin name not used before in this process."""
    return f"{prefix}-test-{next(_names):06d}"


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
    """The CLI, configured for the module's lite through the environment (:func:`isolate`)."""
    isolate(monkeypatch, tmp_path, lite_endpoint.env)
    return Cli(capsysbinary, monkeypatch)


@pytest.fixture
def basin(cli: Cli) -> str:
    """A fresh basin that creates streams on append and on read."""
    name = unique_basin()
    cli.ok("create-basin", name, "--create-stream-on-append", "true")
    return name
