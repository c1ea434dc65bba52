"""With ``--data-dir`` the usage figures behind the S2 metrics API survive a restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from conftest import quick_config
from s2kit.server import Lite

from .conftest import BASIN, last_point, metered, schema_problems, totals, window


async def _get(c: httpx.AsyncClient, path: str, set_: str) -> dict[str, object]:
    r = await c.get(path, params={"set": set_, **window()})
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    assert not schema_problems(body)
    return body


async def test_a_restart_keeps_the_figures(tmp_path: Path) -> None:
    config = quick_config(data_dir=str(tmp_path))
    basin = {"s2-basin": BASIN}
    async with Lite(config) as lite, httpx.AsyncClient(base_url=lite.url, timeout=10) as c:
        assert (await c.post("/v1/basins", json={"basin": BASIN})).status_code == 201
        assert (await c.post("/v1/streams", json={"stream": "s"}, headers=basin)).is_success
        records = {"records": [{"body": "x" * 100}, {"body": "y"}]}
        r = await c.post("/v1/streams/s/records", json=records, headers=basin)
        assert r.status_code == 200, r.text
        r = await c.get("/v1/streams/s/records", params={"seq_num": 0}, headers=basin)
        assert r.status_code == 200, r.text
        before = {
            "account-ops": totals(await _get(c, "/v1/metrics", "account-ops")),
            "append": totals(await _get(c, f"/v1/metrics/{BASIN}", "append-throughput")),
            "read": totals(await _get(c, f"/v1/metrics/{BASIN}", "read-throughput")),
        }
    stored = metered("x" * 100) + metered("y")
    assert before["append"] == {"append-throughput": stored}
    assert before["read"] == {"read-throughput": stored}

    async with Lite(config) as lite, httpx.AsyncClient(base_url=lite.url, timeout=10) as c:
        ops = totals(await _get(c, "/v1/metrics", "account-ops"))
        # The three metrics requests above counted too (once each ended).
        assert ops == {**before["account-ops"], "account-metrics": 1, "basin-metrics": 2}
        assert (
            totals(await _get(c, f"/v1/metrics/{BASIN}", "append-throughput")) == before["append"]
        )
        assert totals(await _get(c, f"/v1/metrics/{BASIN}", "read-throughput")) == before["read"]
        assert totals(await _get(c, f"/v1/metrics/{BASIN}", "append-ops")) == {
            "standard": 0,
            "express": 1,
        }
        active = await _get(c, "/v1/metrics", "active-basins")
        assert active["values"] == [{"label": {"name": "active-basins", "values": [BASIN]}}]
        # The stored bytes are counted again in the background after a start.
        deadline = time.monotonic() + 15
        while last_point(await _get(c, f"/v1/metrics/{BASIN}/s", "storage")) != stored:
            assert time.monotonic() < deadline, "the stream's stored bytes never came back"
            await asyncio.sleep(0.05)
