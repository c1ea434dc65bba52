"""SSE read sessions over HTTP/1.1 (and h2c for resumption): batches, pings, ``[DONE]``, error
events and ``Last-Event-ID`` resumption with count/bytes limits (docs/protocol.md#sse)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections import deque
from typing import TYPE_CHECKING, Any

import pytest
from _client import BASIN, append, assert_error, client, create_basin, create_stream

from s2kit.server import Lite, LiteConfig
from s2kit.wire._sse import SseDecoder, SseEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx

HTTP = [pytest.param(False, id="h1"), pytest.param(True, id="h2c")]
RECORDS = "/v1/streams/s/records"
SSE = {"accept": "text/event-stream"}
EVENT_TIMEOUT = 10.0


class Events:
    """The events of one open SSE response, read one at a time."""

    def __init__(self, resp: httpx.Response, raw: AsyncIterator[bytes]) -> None:
        self.resp = resp
        self._raw = raw
        self._decoder = SseDecoder()
        self._ready: deque[SseEvent] = deque()

    async def next(self) -> SseEvent | None:
        """The next event, or None when the body ends."""
        async with asyncio.timeout(EVENT_TIMEOUT):
            while not self._ready:
                chunk = await anext(self._raw, None)
                if chunk is None:
                    return None
                self._decoder.receive_data(chunk)
                self._ready.extend(self._decoder)
        return self._ready.popleft()

    async def rest(self) -> list[SseEvent]:
        """Every remaining event, up to the end of the body."""
        out = []
        while (ev := await self.next()) is not None:
            out.append(ev)
        return out


@contextlib.asynccontextmanager
async def sse(
    c: httpx.AsyncClient, params: dict[str, Any], headers: dict[str, str] | None = None
) -> AsyncIterator[Events]:
    """Open an SSE read of stream ``s``; leaving the block disconnects."""
    async with c.stream("GET", RECORDS, params=params, headers={**SSE, **(headers or {})}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/event-stream"
        assert resp.headers["cache-control"] == "no-cache, no-transform"
        assert resp.headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in resp.headers
        async with contextlib.aclosing(resp.aiter_raw()) as raw:
            yield Events(resp, raw)


def _batch(ev: SseEvent | None) -> tuple[list[str], str]:
    assert ev is not None
    assert ev.event == "batch", ev
    assert ev.id is not None
    return [r["body"] for r in json.loads(ev.data)["records"]], ev.id


def _ping(ev: SseEvent | None) -> dict[str, Any]:
    assert ev is not None
    assert ev.event == "ping", ev
    data: dict[str, Any] = json.loads(ev.data)
    assert list(data) == ["timestamp", "tail"]
    return data


def _is_done(ev: SseEvent | None) -> bool:
    return ev is not None and ev.event == "message" and ev.data == "[DONE]"


async def _setup(c: httpx.AsyncClient) -> None:
    await create_basin(c)
    await create_stream(c, "s")


def _recs(*bodies: str) -> list[dict[str, Any]]:
    return [{"body": b} for b in bodies]


async def _append(c: httpx.AsyncClient, *bodies: str) -> None:
    resp = await append(c, "s", _recs(*bodies))
    assert resp.status_code == 200, resp.text


async def test_bounded_read_ends_with_done(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await _setup(c)
        await _append(c, "a", "bb", "ccc")
        # Accept-Encoding is ignored for SSE (checked in `sse`).
        async with sse(c, {"seq_num": 0, "count": 2}, {"accept-encoding": "zstd"}) as events:
            first = await events.next()
            assert _batch(first) == (["a", "bb"], f"1,2,{9 + 10}")
            assert first is not None
            assert "tail" not in json.loads(first.data)
            assert _is_done(await events.next())
            assert await events.next() is None
        # Unbounded with wait=0: to the tail, then done, no ping.
        async with sse(c, {"seq_num": 1, "wait": 0}) as events:
            rest = await events.rest()
        assert _batch(rest[0]) == (["bb", "ccc"], f"2,2,{10 + 11}")
        assert len(rest) == 2
        assert _is_done(rest[1])


async def test_base64_format_in_events(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await _setup(c)
        data = base64.b64encode(b"\x00\xff").decode()
        resp = await append(c, "s", [{"body": data}], headers={"s2-format": "base64"})
        assert resp.status_code == 200
        async with sse(c, {"seq_num": 0, "count": 1}, {"s2-format": "base64"}) as events:
            ev = await events.next()
            assert _batch(ev) == ([data], "0,1,10")


@pytest.mark.parametrize("http2", HTTP)
async def test_resume_with_last_event_id_honours_count(lite: Lite, http2: bool) -> None:
    params = {"seq_num": 0, "count": 8, "wait": 30}
    async with client(lite, http2=http2, basin=BASIN) as c:
        await _setup(c)
        await _append(c, "r0", "r1", "r2")
        async with sse(c, params) as events:
            assert _batch(await events.next()) == (["r0", "r1", "r2"], "2,3,30")
            # Entering follow mode: a ping carrying the tail.
            assert _ping(await events.next())["tail"]["seq_num"] == 3
            await _append(c, "r3", "r4")
            live = await events.next()
            assert _batch(live) == (["r3", "r4"], "4,5,50")
            assert live is not None
            assert json.loads(live.data)["tail"]["seq_num"] == 5  # live batches carry the tail
        # Disconnected; five more records arrive meanwhile.
        await _append(c, "r5", "r6", "r7", "r8", "r9")
        async with sse(c, params, {"last-event-id": "4,5,50"}) as events:
            rest = await events.rest()
        # 8 - 5 = 3 more records, then done; counters continue from the resume token.
        assert [ev.event for ev in rest] == ["batch", "message"]
        assert _batch(rest[0]) == (["r5", "r6", "r7"], "7,8,80")
        assert _is_done(rest[1])
        # Resuming once more with nothing left ends at once.
        async with sse(c, params, {"last-event-id": "7,8,80"}) as events:
            rest = await events.rest()
        assert len(rest) == 1
        assert _is_done(rest[0])


async def test_resume_with_last_event_id_honours_bytes(lite: Lite) -> None:
    # Every record is 8 + 2 = 10 metered bytes; the limit allows 5 in all.
    params = {"seq_num": 0, "bytes": 50, "wait": 30}
    async with client(lite, basin=BASIN) as c:
        await _setup(c)
        await _append(c, "b0", "b1")
        async with sse(c, params) as events:
            assert _batch(await events.next()) == (["b0", "b1"], "1,2,20")
            _ping(await events.next())
        await _append(c, "b2", "b3", "b4", "b5", "b6")
        async with sse(c, params, {"last-event-id": "1,2,20"}) as events:
            rest = await events.rest()
        assert _batch(rest[0]) == (["b2", "b3", "b4"], "4,5,50")
        assert len(rest) == 2
        assert _is_done(rest[1])
        # The resume token's seq_num wins over the URL's start position.
        async with sse(c, {"seq_num": 0, "count": 2}, {"last-event-id": "5,0,0"}) as events:
            rest = await events.rest()
        assert _batch(rest[0]) == (["b6"], "6,1,10")


async def test_pings_while_following() -> None:
    config = LiteConfig(heartbeat_min=0.05, heartbeat_max=0.1, shutdown_grace=2.0)
    async with Lite(config) as lite, client(lite, basin=BASIN) as c:
        await _setup(c)
        await _append(c, "x")
        async with sse(c, {"seq_num": 1}) as events:
            pings = [_ping(await events.next()) for _ in range(3)]
            assert all(p["tail"]["seq_num"] == 1 for p in pings)
            stamps = [p["timestamp"] for p in pings]
            assert stamps == sorted(stamps)
            await _append(c, "y")
            # Pings may come first; then the live record.
            ev = await events.next()
            while ev is not None and ev.event == "ping":
                ev = await events.next()
            assert _batch(ev) == (["y"], "1,1,9")
            after = _ping(await events.next())
            assert after["tail"]["seq_num"] == 2


async def test_wait_expiry_ends_follow_with_done(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await _setup(c)
        async with sse(c, {"seq_num": 0, "wait": 1}) as events:
            rest = await events.rest()
        assert [ev.event for ev in rest] == ["ping", "message"]
        assert _is_done(rest[1])


async def test_error_event_when_stream_deleted_mid_follow(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await _setup(c)
        async with sse(c, {"seq_num": 0}) as events:
            _ping(await events.next())
            assert (await c.delete("/v1/streams/s")).status_code == 202
            rest = await events.rest()
        assert len(rest) == 1
        assert rest[0].event == "error"
        assert json.loads(rest[0].data) == {
            "code": "stream_deletion_pending",
            "message": "stream deletion pending",
        }


async def test_errors_before_streaming_are_plain_http(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await _setup(c)
        beyond = await c.get(RECORDS, params={"seq_num": 5}, headers=SSE)
        assert beyond.status_code == 416
        assert beyond.json() == {"tail": {"seq_num": 0, "timestamp": 0}}
        missing = await c.get("/v1/streams/nope/records", params={"seq_num": 0}, headers=SSE)
        assert_error(missing, 404, "stream_not_found")
