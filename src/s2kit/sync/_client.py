"""The blocking client classes: :class:`S2`, :class:`Basin`, :class:`Stream` and sessions.

Each wraps its asyncio twin and runs every call on the background loop of ``_core``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from s2kit.client import S2 as AsyncS2
from s2kit.client import AppendSession as AsyncAppendSession
from s2kit.client import Basin as AsyncBasin
from s2kit.client import ReadSession as AsyncReadSession
from s2kit.client import Stream as AsyncStream
from s2kit.sync._core import Ticket
from s2kit.sync._core import call as _call
from s2kit.sync._core import run as _run
from s2kit.sync._producer import Producer
from s2kit.types import SeqNum

if TYPE_CHECKING:
    from datetime import datetime

    from s2kit.client import AppendRetryPolicy, AppendSessionStatistics, Batching
    from s2kit.types import (
        AccessTokenInfo,
        AccessTokenScope,
        AppendAck,
        AppendInput,
        BasinConfig,
        BasinInfo,
        BasinReconfiguration,
        Metric,
        Page,
        ProvisionResult,
        ReadBatch,
        ReadLimit,
        ReadStart,
        StreamConfig,
        StreamInfo,
        StreamPosition,
        StreamReconfiguration,
        TimeseriesInterval,
    )

_FROM_START = SeqNum(0)

Named = TypeVar("Named", "BasinInfo", "StreamInfo")


def _all_pages(
    list_page: Callable[..., Page[Named]], prefix: str, page_size: int | None
) -> Iterator[Named]:
    # The blocking twin of s2kit.client._client.all_pages.
    start_after = ""
    while True:
        page = list_page(prefix=prefix, start_after=start_after, limit=page_size)
        yield from page.items
        if not page.has_more or not page.items:
            return
        start_after = page.items[-1].name


class S2:
    """Blocking :class:`s2kit.S2`; the same arguments."""

    def __init__(self, access_token: str, **kwargs: Any) -> None:
        self._s2: AsyncS2 = _run(_call(AsyncS2, access_token, **kwargs))

    @classmethod
    def from_env(cls, **kwargs: Any) -> S2:
        """As :meth:`s2kit.S2.from_env`."""
        obj = cls.__new__(cls)
        obj._s2 = _run(_call(AsyncS2.from_env, **kwargs))
        return obj

    def __enter__(self) -> S2:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection."""
        _run(self._s2.aclose())

    def basin(self, name: str) -> Basin:
        """A basin handle."""
        return Basin(self._s2.basin(name))

    def list_basins(
        self, *, prefix: str = "", start_after: str = "", limit: int | None = None
    ) -> Page[BasinInfo]:
        """One page of basins."""
        return _run(self._s2.list_basins(prefix=prefix, start_after=start_after, limit=limit))

    def iter_basins(self, *, prefix: str = "", page_size: int | None = None) -> Iterator[BasinInfo]:
        """Every basin with ``prefix`` (``page_size``: up to 1000 per request)."""
        return _all_pages(self.list_basins, prefix, page_size)

    def create_basin(self, name: str, config: BasinConfig | None = None) -> BasinInfo:
        """Create a basin."""
        return _run(self._s2.create_basin(name, config))

    def ensure_basin(
        self, name: str, config: BasinConfig | None = None
    ) -> tuple[BasinInfo, ProvisionResult]:
        """Create or replace a basin's config."""
        return _run(self._s2.ensure_basin(name, config))

    def get_basin_config(self, name: str) -> BasinConfig:
        """A basin's config."""
        return _run(self._s2.get_basin_config(name))

    def reconfigure_basin(self, name: str, changes: BasinReconfiguration) -> BasinConfig:
        """Change a basin's config."""
        return _run(self._s2.reconfigure_basin(name, changes))

    def delete_basin(self, name: str, *, ignore_not_found: bool = False) -> None:
        """Start deleting a basin."""
        _run(self._s2.delete_basin(name, ignore_not_found=ignore_not_found))

    def issue_access_token(
        self,
        token_id: str,
        scope: AccessTokenScope,
        *,
        expires_at: datetime | None = None,
        auto_prefix_streams: bool = False,
    ) -> str:
        """Issue an access token; returns its secret."""
        return _run(
            self._s2.issue_access_token(
                token_id, scope, expires_at=expires_at, auto_prefix_streams=auto_prefix_streams
            )
        )

    def list_access_tokens(
        self, *, prefix: str = "", start_after: str = "", limit: int | None = None
    ) -> Page[AccessTokenInfo]:
        """One page of access tokens."""
        return _run(
            self._s2.list_access_tokens(prefix=prefix, start_after=start_after, limit=limit)
        )

    def revoke_access_token(self, token_id: str) -> None:
        """Revoke an access token."""
        _run(self._s2.revoke_access_token(token_id))

    def account_metrics(
        self,
        metric_set: str,
        *,
        start: int | None = None,
        end: int | None = None,
        interval: TimeseriesInterval | None = None,
    ) -> list[Metric]:
        """Account metrics."""
        return _run(self._s2.account_metrics(metric_set, start=start, end=end, interval=interval))

    def basin_metrics(
        self,
        basin: str,
        metric_set: str,
        *,
        start: int | None = None,
        end: int | None = None,
        interval: TimeseriesInterval | None = None,
    ) -> list[Metric]:
        """Basin metrics."""
        return _run(
            self._s2.basin_metrics(basin, metric_set, start=start, end=end, interval=interval)
        )

    def stream_metrics(
        self,
        basin: str,
        stream: str,
        metric_set: str = "storage",
        *,
        start: int | None = None,
        end: int | None = None,
        interval: TimeseriesInterval | None = None,
    ) -> list[Metric]:
        """Stream metrics."""
        return _run(
            self._s2.stream_metrics(
                basin, stream, metric_set, start=start, end=end, interval=interval
            )
        )


class Basin:
    """Blocking :class:`s2kit.Basin`."""

    def __init__(self, basin: AsyncBasin) -> None:
        self._b = basin
        self.name = basin.name

    def stream(self, name: str) -> Stream:
        """A stream handle."""
        return Stream(self._b.stream(name))

    def list_streams(
        self, *, prefix: str = "", start_after: str = "", limit: int | None = None
    ) -> Page[StreamInfo]:
        """One page of streams."""
        return _run(self._b.list_streams(prefix=prefix, start_after=start_after, limit=limit))

    def iter_streams(
        self, *, prefix: str = "", page_size: int | None = None
    ) -> Iterator[StreamInfo]:
        """Every stream with ``prefix`` (``page_size``: up to 1000 per request)."""
        return _all_pages(self.list_streams, prefix, page_size)

    def create_stream(self, name: str, config: StreamConfig | None = None) -> StreamInfo:
        """Create a stream."""
        return _run(self._b.create_stream(name, config))

    def ensure_stream(
        self, name: str, config: StreamConfig | None = None
    ) -> tuple[StreamInfo, ProvisionResult]:
        """Create or replace a stream's config."""
        return _run(self._b.ensure_stream(name, config))

    def get_stream_config(self, name: str) -> StreamConfig:
        """A stream's config."""
        return _run(self._b.get_stream_config(name))

    def reconfigure_stream(self, name: str, changes: StreamReconfiguration) -> StreamConfig:
        """Change a stream's config."""
        return _run(self._b.reconfigure_stream(name, changes))

    def delete_stream(self, name: str, *, ignore_not_found: bool = False) -> None:
        """Start deleting a stream."""
        _run(self._b.delete_stream(name, ignore_not_found=ignore_not_found))


class Stream:
    """Blocking :class:`s2kit.Stream`."""

    def __init__(self, stream: AsyncStream) -> None:
        self._s = stream
        self.basin = stream.basin
        self.name = stream.name

    def with_encryption_key(self, key: str) -> Stream:
        """The same stream with a client-supplied encryption key."""
        return Stream(self._s.with_encryption_key(key))

    def check_tail(self) -> StreamPosition:
        """The tail."""
        return _run(self._s.check_tail())

    def append(self, inp: AppendInput) -> AppendAck:
        """Append one batch."""
        return _run(self._s.append(inp))

    def read(
        self,
        start: ReadStart = _FROM_START,
        *,
        limit: ReadLimit | None = None,
        until: int | None = None,
        clamp: bool = False,
        wait: int | None = None,
    ) -> ReadBatch:
        """Read one batch (arguments as :meth:`s2kit.Stream.read`)."""
        return _run(self._s.read(start, limit=limit, until=until, clamp=clamp, wait=wait))

    def append_session(
        self,
        *,
        max_unacked_bytes: int = 5 * 1024 * 1024,
        max_unacked_batches: int | None = None,
        retry_policy: AppendRetryPolicy | None = None,
    ) -> AppendSession:
        """A blocking append session (``with``); arguments as the async one."""
        session = _run(
            _call(
                self._s.append_session,
                max_unacked_bytes=max_unacked_bytes,
                max_unacked_batches=max_unacked_batches,
                retry_policy=retry_policy,
            )
        )
        return AppendSession(session)

    def producer(
        self,
        *,
        batching: Batching | None = None,
        fencing_token: str | None = None,
        match_seq_num: int | None = None,
        max_unacked_bytes: int = 5 * 1024 * 1024,
        retry_policy: AppendRetryPolicy | None = None,
    ) -> Producer:
        """A blocking producer (``with``); arguments as the async one."""
        producer = _run(
            _call(
                self._s.producer,
                batching=batching,
                fencing_token=fencing_token,
                match_seq_num=match_seq_num,
                max_unacked_bytes=max_unacked_bytes,
                retry_policy=retry_policy,
            )
        )
        return Producer(producer)

    def read_session(
        self,
        start: ReadStart = _FROM_START,
        *,
        limit: ReadLimit | None = None,
        until: int | None = None,
        clamp: bool = False,
        wait: int | None = None,
        heartbeat_timeout: float = 20.0,
    ) -> ReadSession:
        """A blocking read session: iterate it for batches (arguments as the async one)."""
        session = _run(
            _call(
                self._s.read_session,
                start,
                limit=limit,
                until=until,
                clamp=clamp,
                wait=wait,
                heartbeat_timeout=heartbeat_timeout,
            )
        )
        return ReadSession(session)


class AppendSession:
    """Blocking :class:`s2kit.AppendSession`."""

    def __init__(self, session: AsyncAppendSession) -> None:
        self._session = session

    def __enter__(self) -> AppendSession:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.close()
        else:
            _run(self._session.abort())

    def submit(self, inp: AppendInput) -> Ticket:
        """Queue an input (blocks while at the unacked cap)."""
        ticket = Ticket(threading.Condition())
        _run(self._submit(inp, ticket))
        return ticket

    async def _submit(self, inp: AppendInput, ticket: Ticket) -> None:
        async_ticket = await self._session.submit(inp)
        ticket._ticket = async_ticket
        async_ticket.outcome().add_done_callback(ticket.settle)

    def close(self, timeout: float | None = None) -> None:
        """Wait for every ack and end the session.

        Raises:
            TimeoutError: not done within ``timeout`` seconds; the session was then aborted
                and every ticket is resolved (docs/outcomes.md).
            S2Error: the session failed with inputs unacknowledged.
        """
        _run(self._session.close(), timeout)

    def abort(self) -> None:
        """Stop now; unacknowledged tickets fail with :class:`~s2kit.errors.ClosedError`."""
        _run(self._session.abort())

    def statistics(self) -> AppendSessionStatistics:
        """Queued, in-flight and acknowledged counts (a snapshot taken on the session's loop)."""
        stats: AppendSessionStatistics = _run(_call(self._session.statistics))
        return stats


class ReadSession:
    """Blocking :class:`s2kit.ReadSession`: an iterator of batches."""

    def __init__(self, session: AsyncReadSession) -> None:
        self._session = session

    def __iter__(self) -> ReadSession:
        return self

    def __next__(self) -> ReadBatch:
        try:
            return _run(self._session.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def __enter__(self) -> ReadSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading."""
        _run(self._session.aclose())

    @property
    def tail(self) -> StreamPosition | None:
        """The latest tail the server reported (set once the session reached the live tail)."""
        return self._session.tail
