"""Unary requests: one place that picks the origin, adds headers, compresses, times out,
classifies failures and retries.

Every unary operation of the SDK goes through :meth:`Api.request`. Streaming sessions use
:meth:`Api.open` for the same headers and origin, and run their own retry loops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urlencode

from s2kit import __version__
from s2kit.client._config import AppendRetryPolicy, Compression, Endpoints, Retry, Timeout
from s2kit.client._retry import Budget, append_may_retry, server_error
from s2kit.client._transport import Origin
from s2kit.errors import (
    RemoteProtocolError,
    RequestTimeout,
    S2Error,
    StreamReset,
    indefinite_after,
)
from s2kit.wire import _compress

USER_AGENT = f"s2kit/{__version__}"


class Exchange(Protocol):
    """One request/response: what the HTTP/2 and HTTP/1.1 transports both offer."""

    data_sent: bool

    async def send(self, data: bytes, *, end_stream: bool = False) -> None: ...
    async def end(self) -> None: ...
    def reset(self, error_code: int = ...) -> None: ...
    async def response_headers(self) -> tuple[int, list[tuple[str, str]]]: ...
    def chunk_ready(self) -> bool: ...
    async def read_chunk(self) -> bytes | None: ...
    async def read_all(self, limit: int) -> bytes: ...


class Pool(Protocol):
    """A connection pool handing out exchanges."""

    async def open_stream(
        self,
        origin: Origin,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        *,
        end_stream: bool = False,
    ) -> Exchange: ...

    async def aclose(self) -> None: ...


MAX_RESPONSE = 64 * 1024 * 1024
COMPRESS_MIN = 1024


@dataclass(frozen=True, slots=True)
class Response:
    """A successful unary response."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """First value of ``name``."""
        for k, v in self.headers:
            if k == name:
                return v
        return None


def quote_segment(name: str) -> str:
    """Percent-encode one path segment (stream names may contain ``/``)."""
    return quote(name, safe="")


class Api:
    """The request layer shared by an :class:`~s2kit.S2` client and its basins and streams."""

    def __init__(
        self,
        *,
        pool: Pool,
        http1: bool = False,
        endpoints: Endpoints,
        access_token: str,
        timeout: Timeout,
        retry: Retry,
        compression: Compression,
    ) -> None:
        self.pool = pool
        self.http1 = http1
        self.endpoints = endpoints
        self.timeout = timeout
        self.retry = retry
        self.compression = compression
        # A token read from a file keeps its line end; a header value cannot (either transport).
        self._auth = f"Bearer {access_token.strip()}"

    def origin(self, basin: str | None) -> tuple[Origin, list[tuple[str, str]]]:
        """The origin for an account (``basin=None``) or basin request, and routing headers."""
        if basin is None:
            return Origin.parse(self.endpoints.account), []
        url = self.endpoints.basin_url(basin)
        headers = [("s2-basin", basin)] if self.endpoints.is_direct else []
        return Origin.parse(url), headers

    def headers(self, basin: str | None, extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Standard request headers."""
        hdrs = [("authorization", self._auth), ("user-agent", USER_AGENT)]
        if self.compression is not Compression.NONE:
            hdrs.append(("accept-encoding", self.compression.value))
        return hdrs + extra

    async def open(
        self,
        method: str,
        path: str,
        *,
        basin: str | None,
        headers: list[tuple[str, str]],
        end_stream: bool,
    ) -> Exchange:
        """Open a request stream with the standard headers (used by sessions)."""
        origin, routing = self.origin(basin)
        return await self.pool.open_stream(
            origin, method, path, self.headers(basin, routing + headers), end_stream=end_stream
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        basin: str | None = None,
        query: Mapping[str, str | int] | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        extra_time: float = 0.0,
        append_policy: AppendRetryPolicy | None = None,
    ) -> Response:
        """Send a unary request with retries; raises the last error when retries stop (for an
        append that an earlier attempt may have applied, made indefinite: ``earlier_indefinite``).

        Args:
            append_policy: set for appends: the policy decides retries, using whether the
                body was handed off in the failed attempt.
            extra_time: added to the request timeout (a read's ``wait``).
        """
        if query:
            path = f"{path}?{urlencode(query)}"
        hdrs = list(headers or [])
        if (
            body is not None
            and len(body) >= COMPRESS_MIN
            and self.compression is not Compression.NONE
        ):
            body = _compress.compress_body(body, self.compression.value)
            hdrs.append(("content-encoding", self.compression.value))
        if body is not None:
            # Lets the server take room for the whole body at once (lite's memory budget)
            # instead of growing it as the body arrives.
            hdrs.append(("content-length", str(len(body))))
        budget = Budget(self.retry)
        doubt: S2Error | None = None  # the first attempt that may have appended (appends)
        while True:
            sent = [False]
            try:
                return await self._once(method, path, basin, hdrs, body, extra_time, sent)
            except S2Error as exc:
                if append_policy is not None:
                    may = append_may_retry(exc, append_policy, handed_off=sent[0])
                    if doubt is None and sent[0] and not exc.has_no_side_effects:
                        doubt = exc
                else:
                    may = exc.is_retryable
                delay = budget.take(exc) if may else None
                if delay is None:
                    # Error precedence (docs/outcomes.md): once an attempt may have appended,
                    # the outcome stays indefinite whatever the last attempt failed with.
                    final = indefinite_after(exc, doubt)
                    if final is exc:
                        raise
                    raise final from exc
            await asyncio.sleep(delay)

    async def _once(
        self,
        method: str,
        path: str,
        basin: str | None,
        headers: list[tuple[str, str]],
        body: bytes | None,
        extra_time: float,
        sent: list[bool],
    ) -> Response:
        stream: Exchange | None = None
        try:
            async with asyncio.timeout(self.timeout.request + extra_time):
                stream = await self.open(
                    method, path, basin=basin, headers=headers, end_stream=body is None
                )
                if body is not None:
                    sent[0] = True  # before the bytes can reach h2 or the socket
                    try:
                        await stream.send(body, end_stream=True)
                    except StreamReset as exc:
                        # RFC 9113 §8.1: a complete early response, then RST_STREAM(NO_ERROR)
                        # to stop the body. The response is the outcome; read it.
                        if exc.error_code != 0:
                            raise
                status, resp_headers = await stream.response_headers()
                data = await stream.read_all(MAX_RESPONSE)
        except TimeoutError as exc:
            if stream is not None:
                stream.reset()
            raise RequestTimeout(
                f"{method} {path.split('?')[0]}: no response within "
                f"{self.timeout.request + extra_time:g} s"
            ) from exc
        except BaseException:
            if stream is not None:
                stream.reset()
            raise
        encoding = _header(resp_headers, "content-encoding")
        if encoding and encoding != "identity":
            try:
                data = _compress.decompress_body(data, encoding, MAX_RESPONSE)
            except ValueError as exc:
                raise RemoteProtocolError(f"undecodable response body: {exc}") from exc
        if status >= 400:
            retry_after = _header(resp_headers, "retry-after-ms")
            raise server_error(
                status, data, int(retry_after) if retry_after and retry_after.isdigit() else None
            )
        return Response(status, resp_headers, data)

    async def aclose(self) -> None:
        """Close the connection pool."""
        with contextlib.suppress(Exception):
            await self.pool.aclose()


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for k, v in headers:
        if k == name:
            return v
    return None
