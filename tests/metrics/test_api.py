"""The S2 metrics API against lite: every set's figures after known work, over real sockets."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import TYPE_CHECKING

import httpx

from .conftest import BASIN, MetricsClient, last_point, metered, minute_now, totals, window

if TYPE_CHECKING:
    from s2kit.server import Lite


async def test_account_sets(http: MetricsClient) -> None:
    c = http.http
    assert (await c.post("/v1/basins", json={"basin": "idle-basin"})).status_code == 201
    assert (await c.get("/v1/basins")).status_code == 200
    assert (await c.get(f"/v1/basins/{BASIN}")).status_code == 200
    r = await http.stream_op("POST", "/v1/streams", json={"stream": "s"})
    assert r.status_code == 201
    active = await http.get("/v1/metrics", "active-basins")
    # Only basins holding a stream are active; the idle one has none.
    assert active == {"values": [{"label": {"name": "active-basins", "values": [BASIN]}}]}
    ops = await http.get("/v1/metrics", "account-ops")
    # Account operations only (create-stream is the basin's); a request counts once it ended,
    # so the account-ops request itself is not in its own answer.
    assert totals(ops) == {
        "account-metrics": 1,
        "create-basin": 2,
        "get-basin-config": 1,
        "list-basins": 1,
    }
    assert {m["accumulation"]["interval"] for m in ops["values"]} == {"hour"}  # the default
    for interval, size in (("minute", 60), ("hour", 3600), ("day", 86400)):
        got = await http.get("/v1/metrics", "account-ops", interval=interval)
        for metric in got["values"]:
            acc = metric["accumulation"]
            assert acc["interval"] == interval
            assert all(t % size == 0 for t, _ in acc["values"])


async def test_data_plane_sets(http: MetricsClient) -> None:
    c = http.http
    for stream, storage_class in (("fast", None), ("slow", "standard")):
        config = {} if storage_class is None else {"config": {"storage_class": storage_class}}
        r = await http.stream_op("POST", "/v1/streams", json={"stream": stream, **config})
        assert r.status_code == 201, r.text
    await http.append("fast", "a", "bb")
    await http.append("fast", "ccc")
    await http.append("fast", "dddd")
    await http.append("slow", "0123456789")
    fast_bytes = metered("a") + metered("bb") + metered("ccc") + metered("dddd")
    slow_bytes = metered("0123456789")

    # A unary read of all of "fast", and an SSE read of its first two records.
    r = await http.stream_op("GET", "/v1/streams/fast/records", params={"seq_num": 0})
    assert [x["body"] for x in r.json()["records"]] == ["a", "bb", "ccc", "dddd"]
    sse_headers = {"s2-basin": BASIN, "accept": "text/event-stream"}
    params = {"seq_num": 0, "count": 2}
    opened = minute_now()
    async with c.stream(
        "GET", "/v1/streams/fast/records", params=params, headers=sse_headers
    ) as resp:
        assert resp.status_code == 200
        text = "".join([chunk async for chunk in resp.aiter_text()])
    assert "[DONE]" in text
    # A streaming read is an operation per minute it is open in: one, or two if it happened
    # to span the turn of a minute.
    streaming_ops = 1 + (minute_now() - opened) // 60
    read_bytes = fast_bytes + metered("a") + metered("bb")

    path = f"/v1/metrics/{BASIN}"
    assert totals(await http.get(path, "append-ops")) == {"standard": 1, "express": 3}
    append = await http.get(path, "append-throughput")
    assert totals(append) == {"append-throughput": fast_bytes + slow_bytes}
    assert totals(await http.get(path, "read-ops")) == {"unary": 1, "streaming": streaming_ops}
    assert totals(await http.get(path, "read-throughput")) == {"read-throughput": read_bytes}
    # Appends and reads have sets of their own; metrics requests are the account's.
    assert (await c.get("/v1/streams/fast/records/tail", headers={"s2-basin": BASIN})).is_success
    assert totals(await http.get(path, "basin-ops")) == {"check-tail": 1, "create-stream": 2}
    # Default intervals: minute for the data plane, hour for operations by type.
    assert (await http.get(path, "append-ops"))["values"][0]["accumulation"]["interval"] == (
        "minute"
    )
    assert (await http.get(path, "basin-ops"))["values"][0]["accumulation"]["interval"] == "hour"


async def test_storage_sets_follow_appends_trims_and_deletes(
    lite: Lite, http: MetricsClient
) -> None:
    for stream in ("one", "two"):
        assert (await http.stream_op("POST", "/v1/streams", json={"stream": stream})).is_success
    await http.append("one", "x" * 100, "y" * 50, "z" * 10)
    await http.append("two", "w" * 1000)
    one = metered("x" * 100) + metered("y" * 50) + metered("z" * 10)
    two = metered("w" * 1000)
    stream_path = f"/v1/metrics/{BASIN}/one"
    assert last_point(await http.get(stream_path, "storage")) == one
    basin = await http.get(f"/v1/metrics/{BASIN}", "storage")
    assert basin["values"][0]["gauge"]["unit"] == "bytes"
    assert last_point(basin) == one + two

    # Trim "one" to its last record: the trim command record is stored too (22 bytes).
    trim = {
        "records": [{"headers": [["", "dHJpbQ=="]], "body": base64.b64encode(b"\0" * 7 + b"\2")}]
    }
    trim["records"][0]["body"] = trim["records"][0]["body"].decode()  # type: ignore[index]
    r = await http.stream_op(
        "POST", "/v1/streams/one/records", json=trim, headers={"s2-format": "base64"}
    )
    assert r.status_code == 200, r.text
    left = metered("z" * 10) + 22
    deadline = time.monotonic() + 10
    while last_point(await http.get(stream_path, "storage")) != left:
        assert time.monotonic() < deadline, "the trim never showed in the stored bytes"
        await asyncio.sleep(0.05)

    # A deleted stream has no points from when it is gone.
    assert (await http.stream_op("DELETE", "/v1/streams/two")).status_code == 202
    deadline = time.monotonic() + 10
    while (await http.get(f"/v1/metrics/{BASIN}/two", "storage"))["values"][0]["gauge"]["values"]:
        assert time.monotonic() < deadline, "the deleted stream kept its storage"
        await asyncio.sleep(0.05)
    assert last_point(await http.get(f"/v1/metrics/{BASIN}", "storage")) == left


async def test_unknown_basins_and_streams_have_empty_figures(http: MetricsClient) -> None:
    got = await http.get("/v1/metrics/no-such-basin", "append-ops")
    assert totals(got) == {"standard": 0, "express": 0}
    got = await http.get(f"/v1/metrics/{BASIN}/no-such-stream", "storage")
    assert got == {"values": [{"gauge": {"name": "storage", "unit": "bytes", "values": []}}]}
    # A range long past is valid and empty.
    got = await http.get("/v1/metrics", "active-basins", start=0, end=3600)
    assert got == {"values": [{"label": {"name": "active-basins", "values": []}}]}
    got = await http.get(f"/v1/metrics/{BASIN}", "storage", start=0, end=3600)
    assert got["values"][0]["gauge"]["values"] == []


BAD = [
    ({}, 400, "bad_query"),  # no set
    ({"set": "storage"}, 400, "bad_query"),  # not an account set
    ({"set": "nope"}, 400, "bad_query"),
    ({"set": "account-ops", "interval": "week"}, 400, "bad_query"),
    ({"set": "account-ops", "start": "soon", "end": "1"}, 400, "bad_query"),
    ({"set": "account-ops", "start": str(1 << 32), "end": "1"}, 400, "bad_query"),
    ({"set": "account-ops", "start": "-1", "end": "1"}, 400, "bad_query"),
    ({"set": "account-ops"}, 422, "invalid"),  # start and end are required
    ({"set": "account-ops", "start": "1"}, 422, "invalid"),
    ({"set": "active-basins", "end": "1"}, 422, "invalid"),
]


async def test_bad_queries(http: MetricsClient) -> None:
    c = http.http
    for params, status, code in BAD:
        r = await c.get("/v1/metrics", params=params)
        assert (r.status_code, r.json()["code"]) == (status, code), (params, r.text)
    now = int(time.time())
    for start, end in ((now, now - 3600), (now - 3600, now + 600), (now - 40 * 86400, now)):
        for path, set_ in (
            ("/v1/metrics", "active-basins"),
            (f"/v1/metrics/{BASIN}", "storage"),
            (f"/v1/metrics/{BASIN}/s", "storage"),
        ):
            r = await c.get(path, params={"set": set_, "start": start, "end": end})
            assert (r.status_code, r.json()["code"]) == (422, "invalid"), (path, start, end)
    r = await c.get(
        f"/v1/metrics/{BASIN}", params={"set": "storage", "interval": "minute", **window()}
    )
    assert (r.status_code, r.json()["code"]) == (422, "invalid")
    r = await c.get(
        f"/v1/metrics/{BASIN}/s", params={"set": "storage", "interval": "hour", **window()}
    )
    assert (r.status_code, r.json()["code"]) == (422, "invalid")
    r = await c.get("/v1/metrics/Not_A_Basin", params={"set": "storage", **window()})
    assert (r.status_code, r.json()["code"]) == (400, "bad_path")
    # The edges that are allowed: an empty range, 30 days exactly, end a minute ahead.
    for start, end in ((now, now), (now - 30 * 86400, now), (now - 60, now + 60)):
        r = await c.get("/v1/metrics", params={"set": "account-ops", "start": start, "end": end})
        assert r.status_code == 200, r.text
    r = await c.post("/v1/metrics", params={"set": "account-ops", **window()})
    assert r.status_code == 405


async def test_an_append_session_is_an_operation_per_minute(lite: Lite) -> None:
    from s2kit import S2, AppendInput, Endpoints, Record

    async with S2("ignored", endpoints=Endpoints.for_url(lite.url)) as s2:
        await s2.create_basin(BASIN)
        stream = s2.basin(BASIN).stream("sess")
        await s2.basin(BASIN).create_stream("sess")
        opened = minute_now()
        async with stream.append_session() as session:
            tickets = [
                await session.submit(AppendInput(records=[Record(body=b"r" * n)]))
                for n in (1, 2, 3)
            ]
            for ticket in tickets:
                await ticket
        minutes = 1 + (minute_now() - opened) // 60
    async with httpx.AsyncClient(base_url=lite.url) as c:
        r = await c.get(f"/v1/metrics/{BASIN}", params={"set": "append-ops", **window()})
        # Three batches of one session: one operation (two if a minute turned meanwhile).
        assert totals(r.json())["standard"] == 0
        assert 1 <= totals(r.json())["express"] <= minutes
        r = await c.get(f"/v1/metrics/{BASIN}", params={"set": "append-throughput", **window()})
        assert totals(r.json()) == {
            "append-throughput": metered("r") + metered("rr") + metered("rrr")
        }
