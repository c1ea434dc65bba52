"""Fixtures for the retry-safety suite: lite, the fault proxy in front of it, and clients.

Every test runs lite and the proxy in its own event loop. The SDK under test talks to the
proxy; setup and verification go straight to lite (``direct``), so faults only ever hit the
operations under test. Timeouts and backoff are shortened so each scenario runs in well under
a second of waiting, yet stay generous enough for a loaded two-core CI machine.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable

import pytest

from conftest import quick_config
from s2kit import S2
from s2kit.client import AppendRetryPolicy, Endpoints, Retry, Timeout
from s2kit.server import Lite
from s2kit.testing.faults import FaultProxy

TOKEN = "faults-token"
_names = itertools.count()

NSE = AppendRetryPolicy.NO_SIDE_EFFECTS
ALL = AppendRetryPolicy.ALL
POLICIES = [pytest.param(NSE, id="nse"), pytest.param(ALL, id="all")]


def unique(prefix: str) -> str:
    """A name not used before in this process."""
    return f"{prefix}-{next(_names):06d}"


@pytest.fixture
async def lite() -> AsyncIterator[Lite]:
    """Lite with quick background jobs and 0.2–0.4 s read heartbeats."""
    async with Lite(quick_config(heartbeat_min=0.2, heartbeat_max=0.4)) as server:
        yield server


@pytest.fixture
async def proxy(lite: Lite) -> AsyncIterator[FaultProxy]:
    """The fault proxy in front of lite, recording a trace, managing stream windows."""
    async with FaultProxy(lite.url, record=True, manage_windows=True) as p:
        yield p


@pytest.fixture
async def direct(lite: Lite) -> AsyncIterator[S2]:
    """A client that bypasses the proxy (setup and verification)."""
    async with S2(TOKEN, endpoints=Endpoints.for_url(lite.url)) as s2:
        yield s2


@pytest.fixture
async def names(direct: S2) -> tuple[str, str]:
    """A fresh basin and stream (created directly on lite): ``(basin, stream)``."""
    basin = unique("faults")
    await direct.create_basin(basin)
    stream = unique("s")
    await direct.basin(basin).create_stream(stream)
    return basin, stream


ClientFactory = Callable[..., S2]


@pytest.fixture
async def make_client(proxy: FaultProxy) -> AsyncIterator[ClientFactory]:
    """Build SDK clients that talk to the proxy; all are closed after the test."""
    made: list[S2] = []

    def make(
        policy: AppendRetryPolicy = NSE,
        *,
        max_attempts: int = 3,
        request: float = 2.0,
        connect: float = 1.0,
        min_delay: float = 0.01,
        max_delay: float = 0.05,
        url: str | None = None,
    ) -> S2:
        client = S2(
            TOKEN,
            endpoints=Endpoints.for_url(url or proxy.url),
            timeout=Timeout(connect=connect, request=request),
            retry=Retry(
                max_attempts=max_attempts,
                min_base_delay=min_delay,
                max_base_delay=max_delay,
                append_retry_policy=policy,
            ),
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()
