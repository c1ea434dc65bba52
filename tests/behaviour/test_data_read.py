"""Bounded reads: start positions, limits, ``until``, 416, check-tail and encryption at the
HTTP level (docs/protocol.md#reads)."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import pytest
from _s2s_client import (
    KEY,
    OTHER_KEY,
    Api,
    H2Client,
    b64,
    create_basin,
    create_stream,
    eventually,
    open_read,
)

from s2kit.server import _backend
from s2kit.types import AppendInput, Record
from s2kit.wire import _proto

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from s2kit.server import Lite

BASIN = "data-read"
U64_MAX = 2**64 - 1


@pytest.fixture
async def api(lite: Lite) -> AsyncIterator[Api]:
    await create_basin(lite.url, BASIN)
    await create_stream(lite.url, BASIN, "s")
    async with Api(lite.url, BASIN) as a:
        yield a


@pytest.fixture
async def h2c(lite: Lite) -> AsyncIterator[H2Client]:
    async with await H2Client.connect(lite.url) as client:
        yield client


async def _fill(api: Api, timestamps: list[int]) -> dict[str, int]:
    """One record per timestamp, bodies ``r0``, ``r1``...; returns the ack's end."""
    bodies = [f"r{i}" for i in range(len(timestamps))]
    r = await api.append("s", *bodies, timestamps=list(timestamps))
    assert r.status_code == 200, r.text
    end: dict[str, int] = r.json()["end"]
    return end


async def _seqs(api: Api, **params: object) -> list[int]:
    return [rec["seq_num"] for rec in await api.records("s", **params)]


async def test_check_tail(lite: Lite, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:  # 48
    monkeypatch.setattr(_backend, "DORMANT_AFTER", 0.1)
    r = await api.tail("s")
    assert (r.status_code, r.json()) == (200, {"tail": {"seq_num": 0, "timestamp": 0}})
    end = await _fill(api, [10, 20])
    assert (await api.tail("s")).json() == {"tail": end}
    await eventually(lambda: (BASIN, "s") not in lite.backend.owners)  # the stream goes dormant
    assert (await api.tail("s")).json() == {"tail": end}
    r = await api.append("s", "after")
    assert r.json()["start"]["seq_num"] == 2
    async with Api(lite.url, "no-such-basin") as other:
        r = await other.tail("s")
        assert (r.status_code, r.json()["code"]) == (404, "basin_not_found")


@pytest.mark.parametrize("cipher", [None, "aegis-256", "aes-256-gcm"])
async def test_read_all(lite: Lite, cipher: str | None) -> None:  # 49
    await create_basin(lite.url, BASIN, stream_cipher=cipher)
    await create_stream(lite.url, BASIN, "s")
    key = KEY if cipher else None
    binary = bytes(range(256))
    async with Api(lite.url, BASIN) as api:
        hdr = [[b64("h"), b64(b"\x00\xff")]]
        recs = [{"body": b64(binary), "headers": hdr}, {"body": b64("two")}, {}]
        assert (await api.append("s", key=key, records=recs)).status_code == 200
        got = await api.records("s", key)
    assert [(r["seq_num"], r["body"]) for r in got] == [(0, binary), (1, b"two"), (2, b"")]
    assert got[0]["headers"] == hdr
    assert "headers" not in got[1]


async def test_count(api: Api) -> None:  # 50
    await _fill(api, [1] * 10)
    assert await _seqs(api, count=5) == [0, 1, 2, 3, 4]


async def test_start_beyond_tail(api: Api, h2c: H2Client) -> None:  # 51
    end = await _fill(api, [1, 2])
    r = await api.read("s", seq_num=100)
    assert (r.status_code, r.json()) == (416, {"tail": end})
    # A unary read is bounded, so a clamped start at the tail cannot follow: still 416.
    r = await api.read("s", seq_num=100, clamp=True)
    assert (r.status_code, r.json()) == (416, {"tail": end})
    session = await open_read(h2c, BASIN, "s", {"seq_num": 100})
    assert (session.status, session.error) == (416, {"tail": end})
    session = await open_read(h2c, BASIN, "s", {"seq_num": 100, "clamp": "true", "wait": 0})
    assert session.status == 200
    assert await session.collect() == ([], None)


@pytest.mark.parametrize(
    "query",
    [
        {"tail_offset": 0, "count": 5},
        {"seq_num": 2, "count": 5, "wait": 0},
        {"timestamp": 30, "until": U64_MAX},
        {"timestamp": 30, "clamp": "true", "count": 5},
    ],
)
async def test_unwritten(api: Api, h2c: H2Client, query: dict[str, object]) -> None:  # 52
    end = await _fill(api, [10, 20])
    session = await open_read(h2c, BASIN, "s", query)
    assert (session.status, session.error) == (416, {"tail": end})
    r = await api.read("s", **query)
    assert (r.status_code, r.json()) == (416, {"tail": end})


async def test_tail_offset(api: Api) -> None:  # 53
    await _fill(api, [1] * 5)
    assert await _seqs(api, seq_num=None, tail_offset=2) == [3, 4]


async def test_timestamp_start_includes_equal(api: Api) -> None:  # 54
    await _fill(api, [10, 20, 20, 20, 30])
    got = await api.records("s", seq_num=None, timestamp=20)
    assert [(r["seq_num"], r["timestamp"]) for r in got] == [(1, 20), (2, 20), (3, 20), (4, 30)]


async def test_bytes_limit(api: Api) -> None:  # 57
    await _fill(api, [1] * 4)  # each "rN" record meters 8 + 2 = 10 bytes
    assert await _seqs(api, bytes=20) == [0, 1]
    assert await _seqs(api, bytes=29) == [0, 1]
    assert await _seqs(api, bytes=9) == []


async def test_count_and_bytes(api: Api) -> None:  # 58
    await _fill(api, [1] * 10)
    assert await _seqs(api, count=5, bytes=1000) == [0, 1, 2, 3, 4]
    assert await _seqs(api, count=5, bytes=30) == [0, 1, 2]


async def test_until(api: Api) -> None:  # 59
    await _fill(api, [10, 20, 20, 30])
    assert await _seqs(api, until=5) == []
    assert await _seqs(api, until=10) == []
    assert await _seqs(api, until=20) == [0]
    assert await _seqs(api, until=21) == [0, 1, 2]
    assert await _seqs(api, until=100) == [0, 1, 2, 3]
    got = await api.records("s", until=30)
    assert [r["timestamp"] for r in got] == [10, 20, 20]


async def test_until_with_limits(api: Api) -> None:  # 60
    await _fill(api, [10, 20, 20, 30])
    assert await _seqs(api, until=30, count=2) == [0, 1]
    assert await _seqs(api, until=20, count=3) == [0]
    assert await _seqs(api, until=30, bytes=20) == [0, 1]
    assert await _seqs(api, until=20, bytes=1000) == [0]


async def test_timestamp_range(api: Api) -> None:  # 61
    await _fill(api, [10, 20, 20, 30, 40])
    assert await _seqs(api, seq_num=None, timestamp=20, until=40) == [1, 2, 3]
    assert await _seqs(api, seq_num=None, timestamp=15, until=21) == [1, 2]


async def test_timestamp_index_is_per_stream(lite: Lite, api: Api) -> None:
    await create_stream(lite.url, BASIN, "other")
    assert (await api.append("other", "o", timestamps=[50])).status_code == 200
    await _fill(api, [10, 100])
    assert await _seqs(api, seq_num=None, timestamp=40) == [1]
    # On "other" nothing is at or after 60: the timestamp starts at the tail, so empty.
    r = await api.read("other", timestamp=50, count=10)
    assert [rec["seq_num"] for rec in r.json()["records"]] == [0]
    r = await api.read("other", timestamp=40, until=45)
    assert (r.status_code, r.json()) == (200, {"records": []})


async def test_read_skips_trimmed_records(lite: Lite, api: Api, h2c: H2Client) -> None:
    await _fill(api, [1] * 5)
    trim = {"headers": [["", b64("trim")]], "body": b64(struct.pack(">Q", 3))}
    assert (await api.append("s", records=[trim])).status_code == 200
    storage = lite.backend.storage
    await eventually(lambda: storage.first_seq_num((BASIN, "s")) == 3)  # deleted underneath
    assert await _seqs(api) == [3, 4, 5]
    session = await open_read(h2c, BASIN, "s", {"seq_num": 0, "wait": 0})
    batches, terminal = await session.collect()
    assert terminal is None
    assert [r.seq_num for b in batches for r in b.records] == [3, 4, 5]


async def test_protobuf_append_encrypted(lite: Lite) -> None:  # 69
    await create_basin(lite.url, BASIN, stream_cipher="aegis-256")
    await create_stream(lite.url, BASIN, "s")
    proto = "application/protobuf"
    body = _proto.encode_append_input(AppendInput(records=(Record(body=b"secret"),)))
    async with Api(lite.url, BASIN) as api:
        r = await api.client.post(
            "/v1/streams/s/records",
            content=body,
            headers={"content-type": proto, "accept": proto, "s2-encryption-key": KEY},
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == proto
        assert _proto.decode_append_ack(r.content).end.seq_num == 1
        stored, _ = lite.backend.storage.read((BASIN, "s"), 0, 10, 1 << 30)
        assert b"secret" not in stored[0][3]
        r = await api.client.get(
            "/v1/streams/s/records?seq_num=0",
            headers={"accept": proto, "s2-encryption-key": KEY},
        )
        assert r.status_code == 200, r.text
        assert [x.body for x in _proto.decode_read_batch(r.content).records] == [b"secret"]


async def test_bad_read_bounds_do_not_create(lite: Lite) -> None:  # 70
    await create_basin(lite.url, BASIN, create_stream_on_read=True)
    async with Api(lite.url, BASIN) as api:
        r = await api.read("s", timestamp=5, until=5)
        assert (r.status_code, r.json()) == (
            422,
            {"code": "invalid", "message": "start `timestamp` exceeds or equal to `until`"},
        )
        assert (await api.client.get("/v1/streams")).json()["streams"] == []


async def test_wrong_key(lite: Lite) -> None:  # 71
    await create_basin(lite.url, BASIN, stream_cipher="aes-256-gcm")
    await create_stream(lite.url, BASIN, "s")
    async with Api(lite.url, BASIN) as api:
        assert (await api.append("s", "x", key=KEY)).status_code == 200
        r = await api.read("s", OTHER_KEY, seq_num=0)
        assert (r.status_code, r.json()) == (
            400,
            {"code": "decryption_failed", "message": "record decryption failed"},
        )


async def test_streaming_reads_need_the_key(lite: Lite, h2c: H2Client) -> None:  # 72
    await create_basin(lite.url, BASIN, stream_cipher="aegis-256")
    await create_stream(lite.url, BASIN, "s")
    error = {
        "code": "bad_header",
        "message": "missing encryption key for stream cipher 'aegis-256'",
    }
    async with Api(lite.url, BASIN) as api:
        assert (await api.append("s", "x", key=KEY)).status_code == 200
        r = await api.client.get(
            "/v1/streams/s/records?seq_num=0", headers={"accept": "text/event-stream"}
        )
        assert (r.status_code, r.headers["content-type"], r.json()) == (
            400,
            "application/json",
            error,
        )
    session = await open_read(h2c, BASIN, "s", {"seq_num": 0})
    assert (session.status, session.headers["content-type"]) == (400, "application/json")
    assert session.error == error


async def test_s2s_read_decrypts(lite: Lite, h2c: H2Client) -> None:  # 73
    await create_basin(lite.url, BASIN, stream_cipher="aegis-256")
    await create_stream(lite.url, BASIN, "s")
    async with Api(lite.url, BASIN) as api:
        assert (await api.append("s", "plain text", key=KEY)).status_code == 200
    headers = {"s2-encryption-key": KEY}
    session = await open_read(h2c, BASIN, "s", {"seq_num": 0, "wait": 0}, headers)
    batches, terminal = await session.collect()
    assert terminal is None
    assert len(batches) == 1
    assert [(r.seq_num, r.body) for r in batches[0].records] == [(0, b"plain text")]
    assert batches[0].tail is None  # a catch-up batch
