"""The account client :class:`S2` and the basin handle :class:`Basin`."""

from __future__ import annotations

import base64
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from s2kit.client._account import AccountOps
from s2kit.client._api import Api, quote_segment
from s2kit.client._config import Compression, Endpoints, Retry, Timeout
from s2kit.client._transport import ConnectionPool
from s2kit.errors import RemoteProtocolError, ServerError, UsageError
from s2kit.types import (
    BasinConfig,
    BasinInfo,
    BasinReconfiguration,
    Page,
    ProvisionResult,
    StreamConfig,
    StreamInfo,
    StreamReconfiguration,
)
from s2kit.wire import _json

if TYPE_CHECKING:
    from s2kit.client._api import Pool
    from s2kit.client._stream import Stream

JSON = ("content-type", "application/json")
Named = TypeVar("Named", BasinInfo, StreamInfo)


async def all_pages(
    list_page: Callable[..., Awaitable[Page[Named]]],
    prefix: str,
    page_size: int | None,
    *,
    start_after: str = "",
    include_deleted: bool = True,
) -> AsyncIterator[Named]:
    """Every item of a listing, following ``start_after`` from page to page.

    As docs/protocol.md#listing describes.
    """
    while True:
        page = await list_page(prefix=prefix, start_after=start_after, limit=page_size)
        for item in page.items:
            if include_deleted or item.deleted_at is None:
                yield item
        if not page.has_more or not page.items:
            return
        start_after = page.items[-1].name


MAX_STREAM_NAME_BYTES = 512


def check_stream_name(name: str) -> None:
    """Raise :class:`UsageError` unless ``name`` can be a stream name (1-512 bytes of UTF-8).

    The server would refuse it too, but only with a generic message about the request.
    """
    try:
        size = len(name.encode())
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form
        raise UsageError(f"stream name {name!r} is not valid UTF-8") from None
    if not 1 <= size <= MAX_STREAM_NAME_BYTES:
        raise UsageError(
            f"stream name must be 1-{MAX_STREAM_NAME_BYTES} bytes of UTF-8, got {size} bytes"
        )
    if name in (".", ".."):
        raise UsageError(f"stream name must not be {name!r}")


def _loads(body: bytes) -> Any:
    try:
        return _json.loads(body)
    except _json.JsonShapeError as exc:
        raise RemoteProtocolError(f"response is not JSON: {exc}") from exc


def _decode(conv: Any, value: Any) -> Any:
    try:
        return conv(value)
    except (_json.JsonShapeError, _json.JsonInvalid, KeyError, TypeError) as exc:
        raise RemoteProtocolError(f"unexpected response shape: {exc}") from exc


def _provision(headers: list[tuple[str, str]], status: int) -> ProvisionResult:
    for k, v in headers:
        if k == "s2-provision-result":
            try:
                return ProvisionResult(v)
            except ValueError:
                break
    return ProvisionResult.CREATED if status == 201 else ProvisionResult.UPDATED


def _list_query(prefix: str, start_after: str, limit: int | None) -> dict[str, str | int]:
    q: dict[str, str | int] = {}
    if prefix:
        q["prefix"] = prefix
    if start_after:
        q["start_after"] = start_after
    if limit is not None:
        q["limit"] = limit
    return q


class S2(AccountOps):
    """An S2 client: the account API, and handles for basins and streams.

    Use as an async context manager (``async with S2(token) as s2:``) or call :meth:`aclose`.
    ``s2["my-basin"]`` is ``s2.basin("my-basin")``.

    Args:
        access_token: the bearer token (lite ignores it).
        endpoints: where the account and basin APIs live; defaults to S2 cloud. A URL string
            (``"http://127.0.0.1:8080"``) means :meth:`Endpoints.for_url`: one origin for both.
        timeout: connect and request timeouts.
        retry: retry budget, backoff and append retry policy.
        compression: compress request bodies and session frames of 1 KiB or more.
        ssl_context: TLS settings for https endpoints (ALPN h2 is added).
        http1: use HTTP/1.1 for unary requests and SSE for read sessions, for networks that
            do not pass HTTP/2 (append sessions and producers then raise UsageError).

    Raises:
        TypeError: ``endpoints`` is neither :class:`Endpoints`, a URL string nor None.
        UsageError: ``endpoints`` is a string that is not an http(s) origin.
    """

    def __init__(
        self,
        access_token: str,
        *,
        endpoints: Endpoints | str | None = None,
        timeout: Timeout | None = None,
        retry: Retry | None = None,
        compression: Compression = Compression.NONE,
        ssl_context: ssl.SSLContext | None = None,
        http1: bool = False,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = Endpoints.for_url(endpoints)
        elif endpoints is not None and not isinstance(endpoints, Endpoints):
            raise TypeError(
                "endpoints must be an Endpoints or a URL string such as 'http://127.0.0.1:8080', "
                f"not {type(endpoints).__name__}"
            )
        self.endpoints = endpoints or Endpoints()
        self.timeout = timeout or Timeout()
        self.retry = retry or Retry()
        pool: Pool
        if http1:
            from s2kit.client._h1 import H1Pool

            pool = H1Pool(connect_timeout=self.timeout.connect, ssl_context=ssl_context)
        else:
            pool = ConnectionPool(connect_timeout=self.timeout.connect, ssl_context=ssl_context)
        self._api = Api(
            pool=pool,
            http1=http1,
            endpoints=self.endpoints,
            access_token=access_token,
            timeout=self.timeout,
            retry=self.retry,
            compression=compression,
        )

    @classmethod
    def from_env(cls, **kwargs: Any) -> S2:
        """A client from ``S2_ACCESS_TOKEN``, ``S2_ACCOUNT_ENDPOINT``, ``S2_BASIN_ENDPOINT``
        and ``S2_SSL_NO_VERIFY=1`` (skip TLS verification, for self-signed lite)."""
        import os

        token = os.environ.get("S2_ACCESS_TOKEN")
        if token is None:
            raise UsageError("S2_ACCESS_TOKEN is not set")
        if (
            os.environ.get("S2_SSL_NO_VERIFY") in ("1", "true", "yes")
            and "ssl_context" not in kwargs
        ):
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            kwargs["ssl_context"] = ctx
        return cls(token, endpoints=kwargs.pop("endpoints", None) or Endpoints.from_env(), **kwargs)

    async def __aenter__(self) -> S2:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection. Idempotent."""
        await self._api.aclose()

    async def close(self) -> None:
        """:meth:`aclose`, under the official SDK's name."""
        await self._api.aclose()

    def basin(self, name: str) -> Basin:
        """A handle for basin ``name`` (no request is made)."""
        return Basin(self._api, name)

    def __getitem__(self, name: str) -> Basin:
        return Basin(self._api, name)

    # --- basins -------------------------------------------------------------------------------

    async def list_basins(
        self, *, prefix: str = "", start_after: str = "", limit: int | None = None
    ) -> Page[BasinInfo]:
        """One page of basins, sorted by name."""
        resp = await self._api.request(
            "GET", "/v1/basins", query=_list_query(prefix, start_after, limit)
        )
        obj = _loads(resp.body)
        items = tuple(_decode(_json.basin_info_from_obj, b) for b in obj.get("basins", []))
        return Page(items=items, has_more=bool(obj.get("has_more")))

    def iter_basins(
        self, *, prefix: str = "", page_size: int | None = None
    ) -> AsyncIterator[BasinInfo]:
        """Every basin with ``prefix``, page after page (``page_size``: up to 1000 per request)."""
        return all_pages(self.list_basins, prefix, page_size)

    def list_all_basins(
        self, *, prefix: str = "", start_after: str = "", include_deleted: bool = False
    ) -> AsyncIterator[BasinInfo]:
        """The official SDK's :meth:`iter_basins`: basins after ``start_after``, leaving out
        those being deleted unless ``include_deleted``."""
        return all_pages(
            self.list_basins,
            prefix,
            None,
            start_after=start_after,
            include_deleted=include_deleted,
        )

    async def create_basin(self, name: str, config: BasinConfig | None = None) -> BasinInfo:
        """Create a basin (idempotent across this call's retries).

        Raises:
            ServerError: ``resource_already_exists``, ``basin_deletion_pending``, ``invalid``...
        """
        body: dict[str, Any] = {"basin": name}
        if config is not None:
            body["config"] = _json.basin_config_obj(config)
        resp = await self._api.request(
            "POST",
            "/v1/basins",
            headers=[JSON, ("s2-request-token", uuid.uuid4().hex)],
            body=_json.dumps(body).encode(),
        )
        info: BasinInfo = _decode(_json.basin_info_from_obj, _loads(resp.body))
        return info

    async def ensure_basin(
        self, name: str, config: BasinConfig | None = None
    ) -> tuple[BasinInfo, ProvisionResult]:
        """Create the basin or replace its whole config; tells which happened."""
        body = None if config is None else _json.dumps({"config": _json.basin_config_obj(config)})
        resp = await self._api.request(
            "PUT",
            f"/v1/basins/{quote_segment(name)}",
            headers=[JSON] if body else [],
            body=None if body is None else body.encode(),
        )
        info: BasinInfo = _decode(_json.basin_info_from_obj, _loads(resp.body))
        return info, _provision(resp.headers, resp.status)

    async def get_basin_config(self, name: str) -> BasinConfig:
        """A basin's configuration."""
        resp = await self._api.request("GET", f"/v1/basins/{quote_segment(name)}")
        cfg: BasinConfig = _decode(_json.basin_config_from_obj, _loads(resp.body))
        return cfg

    async def reconfigure_basin(self, name: str, changes: BasinReconfiguration) -> BasinConfig:
        """Change some fields of a basin's configuration; returns the new one."""
        resp = await self._api.request(
            "PATCH",
            f"/v1/basins/{quote_segment(name)}",
            headers=[JSON],
            body=_json.dumps(_json.basin_reconfiguration_obj(changes)).encode(),
        )
        cfg: BasinConfig = _decode(_json.basin_config_from_obj, _loads(resp.body))
        return cfg

    async def delete_basin(self, name: str, *, ignore_not_found: bool = False) -> None:
        """Start deleting a basin (it stays listed until done)."""
        try:
            await self._api.request("DELETE", f"/v1/basins/{quote_segment(name)}")
        except ServerError as exc:
            if not (ignore_not_found and exc.code == "basin_not_found"):
                raise


class Basin:
    """Operations on one basin's streams; get one from :meth:`S2.basin`."""

    def __init__(self, api: Api, name: str) -> None:
        self._api = api
        self.name = name

    def __repr__(self) -> str:
        return f"Basin({self.name!r})"

    def stream(self, name: str, *, encryption_key: str | bytes | None = None) -> Stream:
        """A handle for stream ``name`` (no request is made).

        Args:
            name: the stream name (1-512 bytes of UTF-8).
            encryption_key: as :meth:`Stream.with_encryption_key` (base64 text); raw key
                bytes are base64-encoded, as the official SDK does.

        Raises:
            UsageError: the name is empty or longer than 512 bytes.
        """
        from s2kit.client._stream import Stream

        check_stream_name(name)
        if isinstance(encryption_key, bytes):
            encryption_key = base64.b64encode(encryption_key).decode("ascii")
        return Stream(self._api, self.name, name, encryption_key=encryption_key)

    def __getitem__(self, name: str) -> Stream:
        return self.stream(name)

    async def list_streams(
        self, *, prefix: str = "", start_after: str = "", limit: int | None = None
    ) -> Page[StreamInfo]:
        """One page of streams, sorted by name."""
        resp = await self._api.request(
            "GET", "/v1/streams", basin=self.name, query=_list_query(prefix, start_after, limit)
        )
        obj = _loads(resp.body)
        items = tuple(_decode(_json.stream_info_from_obj, s) for s in obj.get("streams", []))
        return Page(items=items, has_more=bool(obj.get("has_more")))

    def iter_streams(
        self, *, prefix: str = "", page_size: int | None = None
    ) -> AsyncIterator[StreamInfo]:
        """Every stream with ``prefix``, page after page (``page_size``: up to 1000 per request)."""
        return all_pages(self.list_streams, prefix, page_size)

    def list_all_streams(
        self, *, prefix: str = "", start_after: str = "", include_deleted: bool = False
    ) -> AsyncIterator[StreamInfo]:
        """The official SDK's :meth:`iter_streams`: streams after ``start_after``, leaving out
        those being deleted unless ``include_deleted``."""
        return all_pages(
            self.list_streams,
            prefix,
            None,
            start_after=start_after,
            include_deleted=include_deleted,
        )

    async def create_stream(self, name: str, config: StreamConfig | None = None) -> StreamInfo:
        """Create a stream (idempotent across this call's retries)."""
        check_stream_name(name)
        body: dict[str, Any] = {"stream": name}
        if config is not None:
            body["config"] = _json.stream_config_obj(config)
        resp = await self._api.request(
            "POST",
            "/v1/streams",
            basin=self.name,
            headers=[JSON, ("s2-request-token", uuid.uuid4().hex)],
            body=_json.dumps(body).encode(),
        )
        info: StreamInfo = _decode(_json.stream_info_from_obj, _loads(resp.body))
        return info

    async def ensure_stream(
        self, name: str, config: StreamConfig | None = None
    ) -> tuple[StreamInfo, ProvisionResult]:
        """Create the stream or replace its whole config."""
        check_stream_name(name)
        body = None if config is None else _json.dumps(_json.stream_config_obj(config))
        resp = await self._api.request(
            "PUT",
            f"/v1/streams/{quote_segment(name)}",
            basin=self.name,
            headers=[JSON] if body else [],
            body=None if body is None else body.encode(),
        )
        info: StreamInfo = _decode(_json.stream_info_from_obj, _loads(resp.body))
        return info, _provision(resp.headers, resp.status)

    async def get_stream_config(self, name: str) -> StreamConfig:
        """A stream's (resolved) configuration."""
        check_stream_name(name)
        resp = await self._api.request("GET", f"/v1/streams/{quote_segment(name)}", basin=self.name)
        cfg: StreamConfig = _decode(_json.stream_config_from_obj, _loads(resp.body))
        return cfg

    async def reconfigure_stream(self, name: str, changes: StreamReconfiguration) -> StreamConfig:
        """Change some fields of a stream's configuration; returns the new one."""
        check_stream_name(name)
        resp = await self._api.request(
            "PATCH",
            f"/v1/streams/{quote_segment(name)}",
            basin=self.name,
            headers=[JSON],
            body=_json.dumps(_json.stream_reconfiguration_obj(changes)).encode(),
        )
        cfg: StreamConfig = _decode(_json.stream_config_from_obj, _loads(resp.body))
        return cfg

    async def delete_stream(self, name: str, *, ignore_not_found: bool = False) -> None:
        """Start deleting a stream."""
        check_stream_name(name)
        try:
            await self._api.request("DELETE", f"/v1/streams/{quote_segment(name)}", basin=self.name)
        except ServerError as exc:
            if not (ignore_not_found and exc.code == "stream_not_found"):
                raise
