"""Appends, unary and in S2S sessions (docs/protocol.md#appends).

Unary calls go through httpx in JSON ``base64`` format; sessions through the raw h2 client.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest
from _s2s_client import (
    KEY,
    Api,
    H2Client,
    create_basin,
    create_stream,
    eventually,
    open_append,
    records,
)

from s2kit.server import _backend
from s2kit.wire._s2s import Terminal

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from s2kit.server import Lite

BASIN = "data-append"
FENCE = {"headers": [["", "ZmVuY2U="]]}  # ("", "fence") in base64


@pytest.fixture
async def api(lite: Lite) -> AsyncIterator[Api]:
    await create_basin(lite.url, BASIN)
    async with Api(lite.url, BASIN) as a:
        yield a


@pytest.fixture
async def h2c(lite: Lite) -> AsyncIterator[H2Client]:
    async with await H2Client.connect(lite.url) as client:
        yield client


def _pos(ack: object) -> tuple[int, int]:
    assert not isinstance(ack, Terminal | None), ack
    return ack.start.seq_num, ack.end.seq_num  # type: ignore[attr-defined]


async def test_append_three_records(lite: Lite, api: Api) -> None:  # 27
    await create_stream(lite.url, BASIN, "s")
    r = await api.append("s", "a", "b", "c")
    assert r.status_code == 200, r.text
    ack = r.json()
    assert list(ack) == ["start", "end", "tail"]
    assert (ack["start"]["seq_num"], ack["end"]["seq_num"], ack["tail"]["seq_num"]) == (0, 3, 3)
    assert await api.bodies("s") == [b"a", b"b", b"c"]


@pytest.mark.parametrize("cipher", [None, "aegis-256", "aes-256-gcm"])
@pytest.mark.parametrize("fence_first", [False, True])
async def test_fencing(lite: Lite, cipher: str | None, fence_first: bool) -> None:  # 28
    await create_basin(lite.url, BASIN, stream_cipher=cipher)
    await create_stream(lite.url, BASIN, "s")
    key = KEY if cipher else None
    async with Api(lite.url, BASIN) as api:
        if not fence_first:
            r = await api.append("s", "plain", key=key, fencing_token="")
            assert r.status_code == 200, r.text
        seq = 0 if fence_first else 1
        fence = {**FENCE, "body": "dG9rMQ=="}  # "tok1"
        r = await api.append("s", key=key, records=[fence], match_seq_num=seq)
        assert r.status_code == 200, r.text
        r = await api.append("s", "stale", key=key, fencing_token="")
        assert (r.status_code, r.json()) == (412, {"fencing_token_mismatch": "tok1"})
        r = await api.append("s", "fenced", key=key, fencing_token="tok1")
        assert r.status_code == 200, r.text
        assert r.json()["end"]["seq_num"] == seq + 2
        got = await api.records("s", key)
        expected = [b"tok1", b"fenced"] if fence_first else [b"plain", b"tok1", b"fenced"]
        assert [rec["body"] for rec in got] == expected
        assert got[seq]["headers"] == [["", "ZmVuY2U="]]


async def test_client_require(lite: Lite, api: Api) -> None:  # 29
    await create_stream(lite.url, BASIN, "s", timestamping={"mode": "client-require"})
    r = await api.append("s", "x")
    assert r.status_code == 422
    assert r.json() == {
        "code": "invalid",
        "message": "record timestamp was required but was missing",
    }
    r = await api.append("s", "x", timestamps=[123])
    assert r.status_code == 200, r.text
    assert r.json()["start"] == {"seq_num": 0, "timestamp": 123}


async def test_match_seq_num(lite: Lite, api: Api) -> None:  # 30
    await create_stream(lite.url, BASIN, "s")
    assert (await api.append("s", "a", match_seq_num=0)).status_code == 200
    assert (await api.append("s", "b", match_seq_num=1)).status_code == 200
    r = await api.append("s", "c", match_seq_num=0)
    assert (r.status_code, r.json()) == (412, {"seq_num_mismatch": 2})
    assert await api.tail_seq("s") == 2


@pytest.mark.parametrize("cipher", [None, "aegis-256"])
async def test_session_round_trip(lite: Lite, h2c: H2Client, cipher: str | None) -> None:  # 31
    await create_basin(lite.url, BASIN, stream_cipher=cipher)
    await create_stream(lite.url, BASIN, "s")
    headers = {"s2-encryption-key": KEY} if cipher else None
    session = await open_append(h2c, BASIN, "s", headers)
    assert session.status == 200
    assert session.headers["content-type"] == "s2s/proto"
    await session.send(records("r0"), records("r1"), records("r2"), end=True)
    acks, terminal = await session.results()
    assert terminal is None
    assert [_pos(a) for a in acks] == [(0, 1), (1, 2), (2, 3)]
    assert acks[-1].tail.seq_num == 3
    async with Api(lite.url, BASIN) as api:
        assert await api.tail_seq("s") == 3
        assert await api.bodies("s", KEY if cipher else None) == [b"r0", b"r1", b"r2"]


async def test_session_survives_owner_dormancy(
    lite: Lite, api: Api, h2c: H2Client, monkeypatch: pytest.MonkeyPatch
) -> None:  # 32
    monkeypatch.setattr(_backend, "DORMANT_AFTER", 0.1)
    await create_stream(lite.url, BASIN, "s")
    session = await open_append(h2c, BASIN, "s")
    await session.send(records("before"))
    assert _pos(await session.ack()) == (0, 1)
    await eventually(lambda: (BASIN, "s") not in lite.backend.owners)  # dormant
    await session.send(records("after"), end=True)
    acks, terminal = await session.results()
    assert terminal is None
    assert [_pos(a) for a in acks] == [(1, 2)]
    assert await api.bodies("s") == [b"before", b"after"]


async def test_empty_session(lite: Lite, api: Api, h2c: H2Client) -> None:  # 33
    await create_stream(lite.url, BASIN, "s")
    session = await open_append(h2c, BASIN, "s")
    await session.close()
    assert await session.results() == ([], None)
    assert await api.tail_seq("s") == 0


async def test_session_multi_record_batches(lite: Lite, api: Api, h2c: H2Client) -> None:  # 34
    await create_stream(lite.url, BASIN, "s")
    session = await open_append(h2c, BASIN, "s")
    await session.send(records("a", "b"), records("c", "d", "e"), end=True)
    acks, terminal = await session.results()
    assert terminal is None
    assert [_pos(a) for a in acks] == [(0, 2), (2, 5)]
    assert await api.tail_seq("s") == 5
    assert await api.bodies("s") == [b"a", b"b", b"c", b"d", b"e"]


async def test_session_match_seq_num(lite: Lite, api: Api, h2c: H2Client) -> None:  # 35
    await create_stream(lite.url, BASIN, "s")
    session = await open_append(h2c, BASIN, "s")
    await session.send(records("a", match_seq_num=0), records("b", match_seq_num=1), end=True)
    acks, terminal = await session.results()
    assert terminal is None
    assert [_pos(a) for a in acks] == [(0, 1), (1, 2)]
    stale = await open_append(h2c, BASIN, "s")
    await stale.send(records("c", match_seq_num=1), end=True)
    acks, terminal = await stale.results()
    assert acks == []
    assert terminal is not None
    assert (terminal.status, terminal.body) == (412, '{"seq_num_mismatch":2}')
    assert await api.tail_seq("s") == 2


async def test_session_empty_fencing_token(lite: Lite, api: Api, h2c: H2Client) -> None:  # 37
    await create_stream(lite.url, BASIN, "s")
    session = await open_append(h2c, BASIN, "s")
    await session.send(*(records(f"r{i}", fencing_token="") for i in range(3)), end=True)
    acks, terminal = await session.results()
    assert terminal is None
    assert [_pos(a) for a in acks] == [(0, 1), (1, 2), (2, 3)]


async def test_session_large_inputs(lite: Lite, api: Api, h2c: H2Client) -> None:  # 38
    await create_stream(lite.url, BASIN, "s")
    session = await open_append(h2c, BASIN, "s")
    bodies = [bytes([i]) * 100_000 for i in range(50)]

    async def send_all() -> None:
        for body in bodies:
            await session.send(records(body))
        await session.close()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(send_all())  # full duplex: acks flow while inputs are still sent
        acks, terminal = await session.results()
    assert terminal is None
    assert [_pos(a) for a in acks] == [(i, i + 1) for i in range(50)]
    assert await api.tail_seq("s") == 50
    got = await api.records("s", count=50)
    assert [r["body"][0] for r in got] == list(range(len(got)))
    assert all(r["body"] == bodies[r["seq_num"]] for r in got)


async def test_session_pipelined_acks_in_order(lite: Lite, api: Api, h2c: H2Client) -> None:  # 39
    await create_stream(lite.url, BASIN, "s")
    session = await open_append(h2c, BASIN, "s")
    inputs = [records(*(f"{i}.{j}" for j in range(i % 3 + 1))) for i in range(32)]
    for inp in inputs:
        await session.send(inp)
    await session.close()
    acks, terminal = await session.results()
    assert terminal is None
    assert len(acks) == 32
    seq = 0
    for inp, ack in zip(inputs, acks, strict=True):
        assert _pos(ack) == (seq, seq + len(inp.records))
        assert ack.tail.seq_num >= ack.end.seq_num
        seq += len(inp.records)
    tails = [a.tail.seq_num for a in acks]
    assert tails == sorted(tails)
    expected = [r.body for inp in inputs for r in inp.records]
    assert await api.bodies("s") == expected


# --- timestamps -------------------------------------------------------------------------------


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_timestamps_client_prefer(lite: Lite, api: Api) -> None:
    await create_stream(lite.url, BASIN, "s")
    before = _now_ms()
    r = await api.append("s", "a", "b", timestamps=[1000, None])
    after = _now_ms()
    got = [rec["timestamp"] for rec in await api.records("s")]
    assert got[0] == 1000
    assert before <= got[1] <= after  # no client value: arrival time
    assert r.json()["start"]["timestamp"] == 1000


async def test_timestamps_arrival_mode(lite: Lite, api: Api) -> None:
    await create_stream(lite.url, BASIN, "s", timestamping={"mode": "arrival"})
    before = _now_ms()
    assert (await api.append("s", "a", "b", timestamps=[1000, None])).status_code == 200
    after = _now_ms()
    got = [rec["timestamp"] for rec in await api.records("s")]
    assert all(before <= t <= after for t in got), got


async def test_timestamps_never_go_backwards(lite: Lite, api: Api) -> None:
    await create_stream(lite.url, BASIN, "s")
    r = await api.append("s", "a", "b", "c", timestamps=[100, 50, 200])
    assert (r.json()["start"]["timestamp"], r.json()["end"]["timestamp"]) == (100, 200)
    assert (await api.append("s", "d", timestamps=[70])).json()["start"]["timestamp"] == 200
    got = [rec["timestamp"] for rec in await api.records("s")]
    assert got == [100, 100, 200, 200]  # raised to the running maximum, within and across


@pytest.mark.parametrize("uncapped", [False, True])
async def test_future_timestamps(lite: Lite, api: Api, uncapped: bool) -> None:
    await create_stream(lite.url, BASIN, "s", timestamping={"uncapped": uncapped})
    future = _now_ms() + 3_600_000
    assert (await api.append("s", "a", timestamps=[future])).status_code == 200
    after = _now_ms()
    (got,) = [rec["timestamp"] for rec in await api.records("s")]
    if uncapped:
        assert got == future
    else:
        assert got <= after  # capped to the arrival time
