"""Lite's background jobs: retention by age, trim, delete-on-empty.

The jobs are described in docs/protocol.md#background-jobs.

Each test drives lite over HTTP and waits for the job's visible effect with a deadline.
"""

from __future__ import annotations

import base64
import struct
from typing import TYPE_CHECKING

from _client import BASIN, JSON, client, eventually

from conftest import quick_config
from s2kit.server import Lite

if TYPE_CHECKING:
    import httpx


async def _setup(c: httpx.AsyncClient, stream: str, config: dict[str, object]) -> None:
    r = await c.post("/v1/basins", json={"basin": BASIN}, headers=JSON)
    assert r.status_code in (201, 409)
    r = await c.post(
        "/v1/streams",
        json={"stream": stream, "config": config},
        headers={**JSON, "s2-basin": BASIN},
    )
    assert r.status_code == 201, r.text


async def _append(c: httpx.AsyncClient, stream: str, records: list[dict[str, object]]) -> None:
    r = await c.post(
        f"/v1/streams/{stream}/records",
        json={"records": records},
        headers={**JSON, "s2-basin": BASIN, "s2-format": "base64"},
    )
    assert r.status_code == 200, r.text


async def _read_seqs(c: httpx.AsyncClient, stream: str) -> list[int]:
    r = await c.get(
        f"/v1/streams/{stream}/records",
        params={"seq_num": 0, "clamp": "true"},
        headers={"s2-basin": BASIN},
    )
    if r.status_code == 416:
        return []
    assert r.status_code == 200, r.text
    return [rec["seq_num"] for rec in r.json()["records"]]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_retention_by_age_drops_old_records(lite: Lite) -> None:
    async with client(lite) as c:
        await _setup(c, "ttl", {"retention_policy": {"age": 1}})
        await _append(c, "ttl", [{"body": _b64(b"old")}] * 3)
        assert await _read_seqs(c, "ttl") == [0, 1, 2]

        async def expired() -> bool:
            return await _read_seqs(c, "ttl") == []

        await eventually(expired, deadline=10)
        # The tail is not affected by retention; new appends continue the sequence.
        await _append(c, "ttl", [{"body": _b64(b"new")}])
        assert await _read_seqs(c, "ttl") == [3]


async def test_infinite_retention_keeps_records(lite: Lite) -> None:
    async with client(lite) as c:
        await _setup(c, "forever", {"retention_policy": {"infinite": {}}})
        await _append(c, "forever", [{"body": _b64(b"x")}] * 2)
        for _ in range(3):  # several background passes
            await lite.backend.committer.commit_once()
            lite.backend.tick(1e12)
        assert await _read_seqs(c, "forever") == [0, 1]


async def test_trim_command_deletes_records_before_the_trim_point(lite: Lite) -> None:
    async with client(lite) as c:
        await _setup(c, "trimmed", {"retention_policy": {"infinite": {}}})
        await _append(c, "trimmed", [{"body": _b64(b"r%d" % i)} for i in range(5)])
        trim = {"headers": [["", _b64(b"trim")]], "body": _b64(struct.pack(">Q", 3))}
        await _append(c, "trimmed", [trim])

        async def trimmed() -> bool:
            return await _read_seqs(c, "trimmed") == [3, 4, 5]

        await eventually(trimmed, deadline=10)


async def test_trim_never_trims_past_itself(lite: Lite) -> None:
    async with client(lite) as c:
        await _setup(c, "overtrim", {"retention_policy": {"infinite": {}}})
        await _append(c, "overtrim", [{"body": _b64(b"a")}, {"body": _b64(b"b")}])
        trim = {"headers": [["", _b64(b"trim")]], "body": _b64(struct.pack(">Q", 1000))}
        await _append(c, "overtrim", [trim, {"body": _b64(b"after")}])

        async def trimmed() -> bool:
            # The trim record is seq 2: the trim point becomes 3, the record after it stays.
            return await _read_seqs(c, "overtrim") == [3]

        await eventually(trimmed, deadline=10)


async def test_delete_on_empty_removes_an_empty_stream() -> None:
    # The first check comes retention age + min age + the grace after the write (s2-lite's
    # 600 s grace, shortened here).
    async with Lite(quick_config(delete_on_empty_grace=0.5)) as lite, client(lite) as c:
        await _setup(
            c, "ephemeral", {"retention_policy": {"age": 1}, "delete_on_empty": {"min_age_secs": 1}}
        )
        await _setup(c, "kept", {"retention_policy": {"age": 1}})
        await _append(c, "ephemeral", [{"body": _b64(b"short-lived")}])
        await _append(c, "kept", [{"body": _b64(b"short-lived")}])

        async def gone() -> bool:
            r = await c.get("/v1/streams/ephemeral", headers={"s2-basin": BASIN})
            return r.status_code == 404

        await eventually(gone, deadline=15)
        r = await c.get("/v1/streams", headers={"s2-basin": BASIN})
        assert [s["name"] for s in r.json()["streams"]] == ["kept"]
