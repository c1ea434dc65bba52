"""Shared fixtures: a lite server per test, in this test's event loop, with quick timers.

``LITE_STORAGE=lmdb pytest ...`` runs every test that builds lite from :func:`quick_config`
(the ``lite`` fixture included) on the durable lmdb storage, in a fresh data directory each.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator

import pytest

from s2kit.server import Lite, LiteConfig

LITE_STORAGE = os.environ.get("LITE_STORAGE", "memory")
_data_root: list[str] = []


def fresh_data_dir() -> str:
    """A new empty directory, removed when the test run ends."""
    if not _data_root:
        _data_root.append(tempfile.mkdtemp(prefix="s2kit-lite-tests-"))
        atexit.register(shutil.rmtree, _data_root[0], True)
    return tempfile.mkdtemp(dir=_data_root[0])


def quick_config(**overrides: object) -> LiteConfig:
    """Lite settings that keep tests fast: short deletion grace, frequent background passes."""
    base: dict[str, object] = {
        "background_interval": 0.05,
        "deletion_grace": 0.2,
        "shutdown_grace": 2.0,
    }
    if LITE_STORAGE == "lmdb":
        base["data_dir"] = fresh_data_dir()
    base.update(overrides)
    return LiteConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
async def lite() -> AsyncIterator[Lite]:
    """A running lite on 127.0.0.1 (free port), in the test's loop (in memory by default)."""
    async with Lite(quick_config()) as server:
        yield server
