"""Helpers for the durable-lite tests: lite on a data directory, an SDK client, polling."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from s2kit import S2, Endpoints, Retry
from s2kit.server import Lite, LiteConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from s2kit.server._lmdb import LmdbStorage

BASIN = "durable-basin"
DEADLINE = 15.0
"""How long background work may take on a loaded CI machine before a poll gives up."""


def config(data_dir: Path, **overrides: Any) -> LiteConfig:
    """Quick timers (as the shared ``quick_config``) on the durable storage in ``data_dir``."""
    base: dict[str, Any] = {
        "background_interval": 0.05,
        "deletion_grace": 0.2,
        "delete_on_empty_grace": 0.5,
        "shutdown_grace": 2.0,
        "data_dir": str(data_dir),
    }
    base.update(overrides)
    return LiteConfig(**base)


@contextlib.asynccontextmanager
async def running(
    data_dir: Path, *, storage: LmdbStorage | None = None, **overrides: Any
) -> AsyncIterator[tuple[Lite, S2]]:
    """Durable lite in this loop (on ``storage`` if given) and an SDK client (no retries)."""
    async with (
        Lite(config(data_dir, **overrides), storage=storage) as lite,
        S2("ignored", endpoints=Endpoints.for_url(lite.url), retry=Retry(max_attempts=1)) as c,
    ):
        yield lite, c


def lmdb_of(lite: Lite) -> LmdbStorage:
    """The durable storage behind ``lite``."""
    from s2kit.server._lmdb import LmdbStorage

    storage = lite.backend.storage
    assert isinstance(storage, LmdbStorage)
    return storage


async def eventually(
    probe: Callable[[], Awaitable[bool]], *, deadline: float = DEADLINE, what: str = ""
) -> None:
    """Poll ``probe`` until it returns true, failing after ``deadline`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    delay = 0.01
    while not await probe():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what or probe}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)
