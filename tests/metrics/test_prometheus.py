"""``GET /metrics``: lite's operator metrics in the Prometheus text format, scraped and parsed
with ``prometheus_client.parser``, moving as appends, reads and sessions happen (``_prom.py``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conftest import quick_config
from s2kit import S2, AppendInput, Endpoints, Record, SeqNum
from s2kit.server import Lite

from .conftest import BASIN, metered, totals, window

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(c: httpx.AsyncClient, **headers: str) -> Samples:
    """Every sample of a scrape, by (name, sorted labels)."""
    r = await c.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    found: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@contextlib.asynccontextmanager
async def clients(lite: Lite) -> AsyncIterator[tuple[httpx.AsyncClient, S2]]:
    async with (
        httpx.AsyncClient(base_url=lite.url, timeout=10) as http,
        S2("ignored", endpoints=Endpoints.for_url(lite.url)) as s2,
    ):
        yield http, s2


async def test_scrape_moves_with_appends_reads_and_sessions(lite: Lite) -> None:
    async with clients(lite) as (http, s2):
        await s2.create_basin(BASIN)
        await s2.basin(BASIN).create_stream("s")
        stream = s2.basin(BASIN).stream("s")
        before = await scrape(http)
        bodies = [b"a" * 10, b"b" * 20, b"c" * 30]
        await stream.append(AppendInput(records=[Record(body=b) for b in bodies]))
        await stream.append(AppendInput(records=[Record(body=b"d")]))
        batch = await stream.read(start=SeqNum(0))
        assert len(batch.records) == 4
        after = await scrape(http)

        def moved(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        nbytes = sum(metered(b) for b in bodies) + metered(b"d")
        assert moved("s2kit_lite_appended_records_total") == 4
        assert moved("s2kit_lite_appended_bytes_total") == nbytes
        assert moved("s2kit_lite_read_records_total") == 4
        assert moved("s2kit_lite_read_bytes_total") == nbytes
        assert moved("s2_append_batch_records_count") == 2
        assert moved("s2_append_batch_records_sum") == 4
        assert moved("s2_append_batch_records_bucket", le="1") == 1
        assert moved("s2_append_batch_bytes_sum") == nbytes
        assert moved("s2_append_ack_latency_seconds_count") == 2
        assert moved("s2_append_permit_latency_seconds_count") == 2
        assert moved("s2kit_lite_commit_duration_seconds_count") >= 1
        assert moved("s2kit_lite_commit_records_sum") == 4
        assert moved("s2kit_lite_commit_bytes_sum") == nbytes
        # Requests by route and status: the appends and the read; the first scrape too.
        name = "s2kit_lite_request_duration_seconds_count"
        assert moved(name, op="append", status="200") == 2
        assert moved(name, op="read", status="200") == 1
        assert value(after, name, op="prometheus", status="200") >= 1
        assert value(after, "s2kit_lite_storage_bytes") == nbytes
        assert value(after, "s2kit_lite_basins") == 1
        assert value(after, "s2kit_lite_streams") == 1
        assert value(after, "s2kit_lite_memory_budget_bytes") > 0
        assert value(after, "s2kit_lite_open_connections") >= 2  # httpx's and the SDK's
        assert value(after, "process_resident_memory_bytes") > 0

        # A request that fails is counted under its status.
        r = await http.get("/v1/streams/nope/records", headers={"s2-basin": BASIN})
        assert r.status_code == 404
        failed = await scrape(http)
        assert value(failed, name, op="read", status="404") == 1

        # An open read session shows while it lasts.
        session = stream.read_session(start=SeqNum(4))
        reader = asyncio.ensure_future(anext(aiter(session)))
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                now = await scrape(http)
                if value(now, "s2kit_lite_open_sessions", kind="read_s2s") == 1:
                    break
                assert asyncio.get_running_loop().time() < deadline, "no session seen"
                await asyncio.sleep(0.05)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await reader
            await session.aclose()


async def test_auth_failures_are_counted() -> None:
    async with (
        Lite(quick_config(auth=True)) as lite,
        httpx.AsyncClient(base_url=lite.url, timeout=10) as http,
    ):
        assert lite.root_token is not None
        root = {"authorization": f"Bearer {lite.root_token}"}
        # Scraping needs a token too (one allowed account-metrics): no token, no figures.
        assert (await http.get("/metrics")).status_code == 401
        r = await http.get("/v1/basins", headers={"authorization": "Bearer not-a-token"})
        assert r.status_code == 401
        samples = await scrape(http, **root)
        assert value(samples, "s2kit_lite_auth_failures_total", code="authn") == 2
        assert value(samples, "s2kit_lite_auth_failures_total", code="permission_denied") == 0
        # Refused requests are no operations of the account.
        r = await http.get("/v1/metrics", params={"set": "account-ops", **window()}, headers=root)
        assert r.status_code == 200, r.text
        assert "list-basins" not in totals(r.json())
