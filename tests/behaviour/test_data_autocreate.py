"""Auto-creation of streams on append and read, and concurrent data-plane use
(docs/protocol.md#auto-creation)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from _s2s_client import KEY, Api, H2Client, create_basin, create_stream, http, open_read, records
from _s2s_client import open_append as open_append_session

if TYPE_CHECKING:
    from s2kit.server import Lite

BASIN = "data-create"


async def _streams(url: str) -> list[dict[str, Any]]:
    async with http(url, BASIN) as c:
        r = await c.get("/v1/streams")
        assert r.status_code == 200, r.text
        streams: list[dict[str, Any]] = r.json()["streams"]
        return streams


@pytest.mark.parametrize("cipher", [None, "aegis-256"])
async def test_create_on_append(lite: Lite, cipher: str | None) -> None:  # 40
    await create_basin(lite.url, BASIN, create_stream_on_append=True, stream_cipher=cipher)
    key = KEY if cipher else None
    async with Api(lite.url, BASIN) as api:
        r = await api.append("new", "hello", key=key)
        assert r.status_code == 200, r.text
        assert r.json()["end"]["seq_num"] == 1
        assert await api.tail_seq("new") == 1
        assert [(s["name"], s["cipher"]) for s in await _streams(lite.url)] == [("new", cipher)]
        assert await api.bodies("new", key) == [b"hello"]
        if cipher:
            r = await api.read("new", seq_num=0)
            assert r.status_code == 400
            assert r.json()["code"] == "bad_header"


async def test_no_create_on_append_without_flag(lite: Lite) -> None:  # 41
    await create_basin(lite.url, BASIN, create_stream_on_read=True)
    async with Api(lite.url, BASIN) as api:
        r = await api.append("new", "hello")
        assert r.status_code == 404
        assert r.json() == {
            "code": "stream_not_found",
            "message": f"stream `new` in basin `{BASIN}` not found",
        }
        # Nor does an append session create it: the error comes before the session starts.
        async with await H2Client.connect(lite.url) as h2c:
            session = await open_append_session(h2c, BASIN, "other")
            assert (session.status, session.error["code"]) == (404, "stream_not_found")
    assert await _streams(lite.url) == []


@pytest.mark.parametrize("cipher", [None, "aes-256-gcm"])
async def test_create_on_read(lite: Lite, cipher: str | None) -> None:  # 42
    await create_basin(lite.url, BASIN, create_stream_on_read=True, stream_cipher=cipher)
    key = KEY if cipher else None
    async with Api(lite.url, BASIN) as api:
        r = await api.read("by-read", key, seq_num=0)
        assert (r.status_code, r.json()) == (416, {"tail": {"seq_num": 0, "timestamp": 0}})
        r = await api.tail("by-tail")  # check-tail needs no key, even with a cipher
        assert (r.status_code, r.json()) == (200, {"tail": {"seq_num": 0, "timestamp": 0}})
        async with await H2Client.connect(lite.url) as h2c:
            headers = {"s2-encryption-key": KEY} if cipher else None
            session = await open_read(h2c, BASIN, "by-session", {"seq_num": 0, "wait": 0}, headers)
            assert session.status == 200
            assert await session.collect() == ([], None)
    names = [(s["name"], s["cipher"]) for s in await _streams(lite.url)]
    assert names == [("by-read", cipher), ("by-session", cipher), ("by-tail", cipher)]


async def test_no_create_on_read_without_flag(lite: Lite) -> None:  # 42
    await create_basin(lite.url, BASIN, create_stream_on_append=True)
    async with Api(lite.url, BASIN) as api:
        for r in (await api.read("x", seq_num=0), await api.tail("x")):
            assert r.status_code == 404
            assert r.json()["code"] == "stream_not_found"
    assert await _streams(lite.url) == []


async def test_concurrent_auto_create(lite: Lite) -> None:  # 43
    await create_basin(lite.url, BASIN, create_stream_on_append=True, create_stream_on_read=True)
    async with Api(lite.url, BASIN) as api:

        async def append(i: int) -> None:
            for _ in range(5):  # retry what the spec calls retryable races
                r = await api.append("s", f"r{i}")
                if r.status_code == 200:
                    return
                assert (r.status_code, r.json()["code"]) in (
                    (409, "transaction_conflict"),
                    (404, "stream_not_found"),
                )
            raise AssertionError("append never succeeded")

        async def read(i: int) -> None:
            r = await api.read("empty", seq_num=0)
            assert r.status_code in (416, 409), r.text

        await asyncio.gather(*(append(i) for i in range(10)), *(read(i) for i in range(10)))
        assert sorted(await api.bodies("s")) == sorted(f"r{i}".encode() for i in range(10))
        assert await api.tail_seq("empty") == 0
    assert [s["name"] for s in await _streams(lite.url)] == ["empty", "s"]


async def test_unknown_basin(lite: Lite) -> None:  # 44
    async with Api(lite.url, "no-such-basin") as api:
        for r in (await api.read("s", seq_num=0), await api.append("s", "x"), await api.tail("s")):
            assert r.status_code == 404
            assert r.json() == {
                "code": "basin_not_found",
                "message": "basin `no-such-basin` not found",
            }


async def test_concurrent_appends(lite: Lite) -> None:  # 45
    await create_basin(lite.url, BASIN)
    await create_stream(lite.url, BASIN, "s")
    async with Api(lite.url, BASIN) as api:
        results = await asyncio.gather(*(api.append("s", f"r{i}") for i in range(20)))
        assert all(r.status_code == 200 for r in results)
        starts = sorted(r.json()["start"]["seq_num"] for r in results)
        assert starts == list(range(20))
        assert await api.tail_seq("s") == 20
        assert sorted(await api.bodies("s")) == sorted(f"r{i}".encode() for i in range(20))


async def test_reconfigure_during_appends(lite: Lite) -> None:  # 46
    await create_basin(lite.url, BASIN)
    await create_stream(lite.url, BASIN, "s")
    async with Api(lite.url, BASIN) as api, await H2Client.connect(lite.url) as h2c:
        session = await open_append_session(h2c, BASIN, "s")
        for i in range(10):
            await session.send(records(f"r{i}"))
            if i in (3, 6):
                patch = {"storage_class": "standard" if i == 3 else "express"}
                r = await api.client.patch("/v1/streams/s", json=patch)
                assert r.status_code == 200, r.text
        await session.close()
        acks, terminal = await session.results()
        assert terminal is None
        assert [a.start.seq_num for a in acks] == list(range(10))
        assert await api.bodies("s") == [f"r{i}".encode() for i in range(10)]


async def test_concurrent_readers(lite: Lite) -> None:  # 47
    await create_basin(lite.url, BASIN)
    await create_stream(lite.url, BASIN, "s")
    expected = [f"r{i}".encode() for i in range(20)]
    async with Api(lite.url, BASIN) as api, await H2Client.connect(lite.url) as h2c:
        for i in range(0, 20, 4):
            assert (await api.append("s", *expected[i : i + 4])).status_code == 200

        async def reader() -> list[bytes]:
            session = await open_read(h2c, BASIN, "s", {"seq_num": 0, "wait": 0})
            batches, terminal = await session.collect()
            assert terminal is None
            return [r.body for b in batches for r in b.records]

        assert await asyncio.gather(*(reader() for _ in range(10))) == [expected] * 10
