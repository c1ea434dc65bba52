"""The bench workload over the official Python SDK (``s2-sdk``), for ``--sdk official``.

It is configured as ``s2 bench`` configures the Rust SDK: the CLI's request timeout, the default
retry budget with the NO_SIDE_EFFECTS append policy, a default producer (5 ms linger, 1000
records / 1 MiB batches, 5 MiB unacknowledged). The official SDK has no switch to skip TLS
verification, so ``--insecure`` does not apply to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
from datetime import timedelta
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import s2_sdk

if TYPE_CHECKING:
    from s2kit.cli._bench_workload import ReadRecord
    from s2kit.cli._config import Settings


class _Producer:
    def __init__(self, producer: s2_sdk.Producer) -> None:
        self._p = producer

    async def submit(self, body: bytes, hash_value: bytes, timestamp: int) -> Awaitable[Any]:
        record = s2_sdk.Record(body=body, headers=[(b"hash", hash_value)], timestamp=timestamp)
        ticket: Awaitable[Any] = await self._p.submit(record)
        return ticket


class OfficialDriver:
    """The workload over ``s2_sdk``."""

    errors: tuple[type[BaseException], ...] = (s2_sdk.S2Error, OSError)

    def __init__(self, settings: Settings, basin: str) -> None:
        self.label = f"s2-sdk {version('s2-sdk')}"
        self._s2 = s2_sdk.S2(
            settings.access_token,
            endpoints=s2_sdk.Endpoints(
                account=settings.endpoints.account, basin=settings.endpoints.basin
            ),
            timeout=s2_sdk.Timeout(request=timedelta(seconds=settings.request_timeout)),
            retry=s2_sdk.Retry(append_retry_policy=s2_sdk.AppendRetryPolicy.NO_SIDE_EFFECTS),
        )
        self._basin = self._s2.basin(basin)

    async def create_stream(self, stream: str, storage_class: str | None) -> None:
        config = s2_sdk.StreamConfig(
            storage_class=storage_class,
            retention_policy=3600,
            timestamping=s2_sdk.Timestamping(
                mode=s2_sdk.TimestampingMode.CLIENT_REQUIRE, uncapped=True
            ),
            delete_on_empty_min_age=60,
        )
        await self._basin.create_stream(stream, config=config)

    async def delete_stream(self, stream: str) -> None:
        await self._basin.delete_stream(stream)

    @contextlib.asynccontextmanager
    async def producer(self, stream: str) -> AsyncIterator[_Producer]:
        async with self._basin.stream(stream).producer() as p:
            yield _Producer(p)

    async def read(self, stream: str, *, follow: bool) -> AsyncGenerator[Sequence[ReadRecord]]:
        session = self._basin.stream(stream).read_session(
            start=s2_sdk.SeqNum(0), wait=None if follow else 0
        )
        async with session:
            async for batch in session:
                yield batch.records

    async def aclose(self) -> None:
        await self._s2.close()
