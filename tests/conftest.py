"""Shared fixtures: a lite server per test, in this test's event loop, with quick timers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from s2kit.server import Lite, LiteConfig


def quick_config(**overrides: object) -> LiteConfig:
    """Lite settings that keep tests fast: short deletion grace, frequent background passes."""
    base: dict[str, object] = {
        "background_interval": 0.05,
        "deletion_grace": 0.2,
        "shutdown_grace": 2.0,
    }
    base.update(overrides)
    return LiteConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
async def lite() -> AsyncIterator[Lite]:
    """A running in-memory lite on 127.0.0.1 (free port), in the test's loop."""
    async with Lite(quick_config()) as server:
        yield server
