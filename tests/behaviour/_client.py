"""Helpers shared by the control-plane, HTTP/1.1 and bad-input behaviour tests.

Everything talks to a real lite over a real socket with ``httpx``: these helpers only shorten
the requests and the checks that every test repeats (S2 error bodies, health, polling for
background work with a deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from s2kit.server import Lite

TIMEOUT = 10.0
"""Per-request timeout: generous, for a loaded CI machine."""
DEADLINE = 10.0
"""How long background work (deletions) may take before a poll gives up."""
JSON = {"content-type": "application/json"}
PROTO = "application/protobuf"
BASIN = "test-basin-1"
KEY = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
"""A valid ``s2-encryption-key``: base64 of 32 bytes."""
OTHER_KEY = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="


@contextlib.asynccontextmanager
async def client(
    lite: Lite, *, http2: bool = False, basin: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client for ``lite``: HTTP/1.1, or h2c with prior knowledge when ``http2``.

    With ``basin``, every request carries ``s2-basin``.
    """
    headers = {"s2-basin": basin} if basin is not None else {}
    async with httpx.AsyncClient(
        base_url=lite.url,
        http1=not http2,
        http2=http2,
        headers=headers,
        timeout=TIMEOUT,
    ) as c:
        yield c


def assert_error(
    resp: httpx.Response, status: int, code: str, message: str | None = None
) -> dict[str, Any]:
    """Check an S2 error response: status, JSON content type, exactly ``code`` and ``message``."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert list(body) == ["code", "message"], body
    assert body["code"] == code, body
    assert isinstance(body["message"], str)
    assert body["message"], body
    if message is not None:
        assert body["message"] == message, body
    return body  # type: ignore[no-any-return]


async def assert_healthy(c: httpx.AsyncClient) -> None:
    """The server still answers ``/health``."""
    resp = await c.get("/health")
    assert resp.status_code == 200
    assert resp.text == "OK"


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


async def create_basin(
    c: httpx.AsyncClient, name: str = BASIN, config: dict[str, Any] | None = None
) -> httpx.Response:
    """POST /v1/basins; asserts 201."""
    body: dict[str, Any] = {"basin": name}
    if config is not None:
        body["config"] = config
    resp = await c.post("/v1/basins", json=body)
    assert resp.status_code == 201, resp.text
    return resp


async def create_stream(
    c: httpx.AsyncClient,
    name: str,
    config: dict[str, Any] | None = None,
    *,
    basin: str = BASIN,
) -> httpx.Response:
    """POST /v1/streams in ``basin``; asserts 201."""
    body: dict[str, Any] = {"stream": name}
    if config is not None:
        body["config"] = config
    resp = await c.post("/v1/streams", json=body, headers={"s2-basin": basin})
    assert resp.status_code == 201, resp.text
    return resp


async def append(
    c: httpx.AsyncClient,
    stream: str,
    records: list[dict[str, Any]],
    *,
    basin: str = BASIN,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    """JSON unary append (not checked)."""
    return await c.post(
        f"/v1/streams/{stream}/records",
        content=json.dumps({"records": records, **fields}),
        headers={**JSON, "s2-basin": basin, **(headers or {})},
    )


async def read(
    c: httpx.AsyncClient,
    stream: str,
    *,
    basin: str = BASIN,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> httpx.Response:
    """JSON unary read (not checked)."""
    return await c.get(
        f"/v1/streams/{stream}/records",
        params=params,
        headers={"s2-basin": basin, **(headers or {})},
    )


async def bodies(c: httpx.AsyncClient, stream: str, *, basin: str = BASIN) -> list[str]:
    """Every record body of a plain stream, read from seq 0 (asserts 200)."""
    resp = await read(c, stream, basin=basin, seq_num=0)
    assert resp.status_code == 200, resp.text
    return [r.get("body", "") for r in resp.json()["records"]]


async def tail(c: httpx.AsyncClient, stream: str, *, basin: str = BASIN) -> dict[str, int]:
    """The stream's tail position (asserts 200)."""
    resp = await c.get(f"/v1/streams/{stream}/records/tail", headers={"s2-basin": basin})
    assert resp.status_code == 200, resp.text
    return resp.json()["tail"]  # type: ignore[no-any-return]


KEPT = ["keep-0", "keep-1"]
"""Bodies :func:`guarded` appends before a bad request, and checks are still there after."""


@contextlib.asynccontextmanager
async def guarded(
    lite: Lite, *, http2: bool = False, basin_config: dict[str, Any] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with basin ``BASIN`` and stream ``s`` holding :data:`KEPT`.

    On exit, checks that the server is healthy and that nothing accepted before was lost.
    """
    async with client(lite, http2=http2, basin=BASIN) as c:
        await create_basin(c, config=basin_config)
        await create_stream(c, "s")
        headers = {"s2-encryption-key": KEY}
        resp = await append(c, "s", [{"body": b} for b in KEPT], headers=headers)
        assert resp.status_code == 200, resp.text
        yield c
        await assert_healthy(c)
        listed = await c.get("/v1/basins")
        assert BASIN in [b["name"] for b in listed.json()["basins"]]
        got = await read(c, "s", seq_num=0, count=len(KEPT), headers=headers)
        assert got.status_code == 200, got.text
        assert [r["body"] for r in got.json()["records"]] == KEPT
