"""Read sessions that follow the live tail: heartbeats, ``wait``, limits on live batches, and
falling behind the broadcast (docs/protocol.md#follow-and-wait; P4 in
docs/retry-safety.md#the-server-side).

``wait`` is whole seconds on the wire, so timing checks use ``wait=1`` and tolerate a loaded
machine: a session must not close before its deadline, and must close within 1.5 s after it.
Heartbeats are made fast (50–100 ms) where a test needs several.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any

import pytest
from _s2s_client import (
    KEY,
    Api,
    H2Client,
    ReadSession,
    create_basin,
    create_stream,
    eventually,
    open_read,
)

from conftest import quick_config
from s2kit.server import Lite, _backend
from s2kit.types import ReadBatch, StreamPosition
from s2kit.wire._s2s import Terminal

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

BASIN = "data-follow"
SLACK = 1.5
"""How late a session may close after its deadline on a loaded machine."""


@pytest.fixture
async def server() -> AsyncIterator[Lite]:
    async with Lite(quick_config(heartbeat_min=0.05, heartbeat_max=0.1)) as lite:
        yield lite


@pytest.fixture
async def api(server: Lite) -> AsyncIterator[Api]:
    await create_basin(server.url, BASIN, stream_cipher="aegis-256")
    await create_basin(server.url, "data-follow-plain")
    for basin in (BASIN, "data-follow-plain"):
        await create_stream(server.url, basin, "s")
    async with Api(server.url, "data-follow-plain") as a:
        yield a


@pytest.fixture
async def h2c(server: Lite) -> AsyncIterator[H2Client]:
    async with await H2Client.connect(server.url) as client:
        yield client


@pytest.fixture
async def h2c_default(lite: Lite) -> AsyncIterator[H2Client]:
    async with await H2Client.connect(lite.url) as client:
        yield client


def now() -> float:
    return asyncio.get_running_loop().time()


async def _next(session: ReadSession) -> ReadBatch:
    item = await session.batch()
    assert isinstance(item, ReadBatch), item
    return item


async def _next_data(session: ReadSession) -> ReadBatch:
    """The next batch with records, skipping heartbeats (which keep coming, so bound it all)."""
    async with asyncio.timeout(10):
        while not (batch := await _next(session)).records:
            assert batch.tail is not None, "an empty batch must carry the tail"
    return batch


async def _rest(session: ReadSession) -> tuple[list[ReadBatch], float]:
    """Every remaining batch, and when the session ended (normally)."""
    batches, terminal = await session.collect()
    assert terminal is None, terminal
    return batches, now()


def _seqs(batches: list[ReadBatch]) -> list[int]:
    return [r.seq_num for b in batches for r in b.records]


async def test_first_heartbeat_is_immediate(lite: Lite, h2c_default: H2Client) -> None:
    # Default heartbeat gaps are 5-15 s; the heartbeat on entering follow mode comes at once.
    await create_basin(lite.url, BASIN)
    await create_stream(lite.url, BASIN, "s")
    started = now()
    session = await open_read(h2c_default, BASIN, "s", {"seq_num": 0})
    assert await _next(session) == ReadBatch(records=(), tail=StreamPosition(0, 0))
    assert now() - started < 2.0
    session.stream.reset()


async def test_wait_with_no_data(api: Api, h2c: H2Client) -> None:  # 55
    started = now()
    session = await open_read(h2c, "data-follow-plain", "s", {"seq_num": 0, "wait": 1})
    batches, ended = await _rest(session)
    assert 1.0 <= ended - started < 1.0 + SLACK  # heartbeats do not extend the wait
    assert len(batches) >= 3
    assert all(b == ReadBatch(records=(), tail=StreamPosition(0, 0)) for b in batches)


async def test_live_batch_resets_wait(api: Api, h2c: H2Client) -> None:  # 56
    started = now()
    session = await open_read(h2c, "data-follow-plain", "s", {"seq_num": 0, "wait": 1})
    await _next(session)  # following
    await asyncio.sleep(0.6)
    assert (await api.append("s", "late")).status_code == 200
    batch = await _next_data(session)
    delivered = now()
    assert batch.tail == StreamPosition(1, batch.records[0].timestamp)
    rest, ended = await _rest(session)
    assert _seqs(rest) == []
    assert ended - started >= 1.5
    assert 0.9 <= ended - delivered < 1.0 + SLACK


@pytest.mark.parametrize("encrypted", [False, True])
async def test_follow_initial_and_live(api: Api, h2c: H2Client, encrypted: bool) -> None:  # 62
    basin = BASIN if encrypted else "data-follow-plain"
    key = KEY if encrypted else None
    async with Api(str(api.client.base_url), basin) as writer:
        assert (await writer.append("s", "stored", key=key)).status_code == 200
        headers = {"s2-encryption-key": KEY} if encrypted else None
        session = await open_read(h2c, basin, "s", {"seq_num": 0, "wait": 1}, headers)
        first = await _next(session)
        assert ([r.body for r in first.records], first.tail) == ([b"stored"], None)
        for body in ("live1", "live2"):
            assert (await writer.append("s", body, key=key)).status_code == 200
            batch = await _next_data(session)
            assert [r.body for r in batch.records] == [body.encode()]
            assert batch.tail is not None
            delivered = now()
        rest, ended = await _rest(session)
        assert _seqs(rest) == []
        assert 0.9 <= ended - delivered < 1.0 + SLACK


async def test_catch_up_then_live(api: Api, h2c: H2Client) -> None:  # 64, P4
    assert (await api.append("s", "a", "b", "c")).status_code == 200
    session = await open_read(h2c, "data-follow-plain", "s", {"seq_num": 0})
    catch_up = await _next(session)
    assert (_seqs([catch_up]), catch_up.tail) == ([0, 1, 2], None)
    heartbeat = await _next(session)
    assert heartbeat.records == ()
    assert heartbeat.tail is not None
    assert heartbeat.tail.seq_num == 3
    for body in ("d", "e"):
        assert (await api.append("s", body)).status_code == 200
    live = [await _next_data(session), await _next_data(session)]
    assert [r.body for b in live for r in b.records] == [b"d", b"e"]
    assert [b.tail.seq_num for b in live if b.tail] == [4, 5]
    session.stream.reset()


async def test_heartbeat_gaps(api: Api, h2c: H2Client) -> None:  # P4
    session = await open_read(h2c, "data-follow-plain", "s", {"seq_num": 0, "wait": 1})
    batches, times = [], []
    while (item := await session.batch()) is not None:
        assert isinstance(item, ReadBatch)
        batches.append(item)
        times.append(now())
    gaps = [b - a for a, b in itertools.pairwise(times[1:])]  # after the first
    assert gaps
    assert all(0.04 <= g < 1.0 for g in gaps), gaps


BIG = b"x" * 100_000  # bigger than the client's 64 KiB window: the server blocks sending it


async def _lagging(
    api: Api, h2c: H2Client, query: dict[str, Any], stamps: bool = False
) -> ReadSession:
    """A follower whose transport is stalled while 50 batches are committed one by one."""
    session = await open_read(h2c, "data-follow-plain", "s", query)
    assert await _next(session) == ReadBatch(records=(), tail=StreamPosition(0, 0))
    # The client reads nothing from now on, so the server stalls mid-send of BIG while the
    # follower's broadcast buffer (25 batches) overflows.
    assert (await api.append("s", BIG, timestamps=[1000])).status_code == 200
    for i in range(1, 51):
        ts = [1000 + i] if stamps else None
        assert (await api.append("s", f"{i:04d}", timestamps=ts)).status_code == 200
    return session


async def test_lagging_follower_catches_up_from_storage(api: Api, h2c: H2Client) -> None:  # 63
    session = await _lagging(api, h2c, {"seq_num": 0, "wait": 1})
    live = await _next(session)
    assert (_seqs([live]), live.tail) == ([0], StreamPosition(1, 1000))  # sent before the lag
    catch_up = await _next(session)
    delivered = now()
    assert (_seqs([catch_up]), catch_up.tail) == (list(range(1, 51)), None)  # one scan batch
    heartbeat = await _next(session)
    assert heartbeat.records == ()
    assert heartbeat.tail is not None
    assert heartbeat.tail.seq_num == 51
    rest, ended = await _rest(session)
    assert _seqs(rest) == []
    assert 0.9 <= ended - delivered < 1.0 + SLACK  # the catch-up batch reset the wait


async def test_live_resumes_after_lag(api: Api, h2c: H2Client) -> None:  # 63
    session = await _lagging(api, h2c, {"seq_num": 0})
    assert _seqs([await _next(session), await _next_data(session)]) == list(range(51))
    assert (await api.append("s", "again")).status_code == 200
    live = await _next_data(session)
    assert _seqs([live]) == [51]
    assert live.tail is not None
    session.stream.reset()


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ({"count": 20}, 20),
        ({"bytes": len(BIG) + 8 + 12 * 10}, 11),
        ({"until": 1030}, 30),
    ],
)
async def test_limits_during_lag(
    api: Api, h2c: H2Client, limit: dict[str, int], expected: int
) -> None:  # 63
    session = await _lagging(api, h2c, {"seq_num": 0, "wait": 5, **limit}, stamps=True)
    stalled_until = now()
    batches, ended = await _rest(session)
    assert _seqs(batches) == list(range(expected))
    assert ended - stalled_until < SLACK  # closes at the limit, not after the 5 s wait


async def test_follow_survives_dormancy_after_catch_up(
    server: Lite, api: Api, h2c: H2Client, monkeypatch: pytest.MonkeyPatch
) -> None:  # 65
    monkeypatch.setattr(_backend, "DORMANT_AFTER", 0.1)
    assert (await api.append("s", BIG)).status_code == 200
    session = await open_read(h2c, "data-follow-plain", "s", {"seq_num": 0})
    # The session is stalled sending its catch-up batch: no appends, no follower. Once a stream
    # written after "s" has gone dormant, "s" has been idle long enough to go dormant too.
    await create_stream(server.url, "data-follow-plain", "idle")
    assert (await api.append("idle", "x")).status_code == 200
    await eventually(lambda: ("data-follow-plain", "idle") not in server.backend.owners)
    assert (await api.append("s", "after dormancy")).status_code == 200
    assert _seqs([await _next(session)]) == [0]
    assert _seqs([await _next_data(session)]) == [1]
    heartbeat = await _next(session)
    assert heartbeat.records == ()
    assert heartbeat.tail is not None
    assert heartbeat.tail.seq_num == 2
    assert (await api.append("s", "live")).status_code == 200
    live = await _next_data(session)
    assert (_seqs([live]), live.tail is not None) == ([2], True)
    session.stream.reset()


async def test_count_over_live_batches(api: Api, h2c: H2Client) -> None:  # 66
    assert (await api.append("s", "stored")).status_code == 200
    session = await open_read(h2c, "data-follow-plain", "s", {"seq_num": 0, "count": 3, "wait": 5})
    assert _seqs([await _next(session)]) == [0]
    await _next(session)  # the heartbeat: following now
    assert (await api.append("s", "l1", "l2", "l3")).status_code == 200
    appended = now()
    batches, ended = await _rest(session)
    assert [r.body for b in batches for r in b.records] == [b"l1", b"l2"]
    assert ended - appended < SLACK


async def test_count_on_empty_stream(api: Api, h2c: H2Client) -> None:  # 66
    session = await open_read(h2c, "data-follow-plain", "s", {"seq_num": 0, "count": 2, "wait": 5})
    await _next(session)
    for body in ("l1", "l2", "l3"):
        assert (await api.append("s", body)).status_code == 200
    batches, _ = await _rest(session)
    assert [r.body for b in batches for r in b.records] == [b"l1", b"l2"]


@pytest.mark.parametrize(("nbytes", "expected"), [(29, [b"l1", b"l2"]), (9, [])])
async def test_bytes_over_live_batches(
    api: Api, h2c: H2Client, nbytes: int, expected: list[bytes]
) -> None:  # 67
    query = {"seq_num": 0, "bytes": nbytes, "wait": 5}
    session = await open_read(h2c, "data-follow-plain", "s", query)
    await _next(session)
    assert (await api.append("s", "l1", "l2", "l3")).status_code == 200  # 10 bytes each
    appended = now()
    batches, ended = await _rest(session)
    assert [r.body for b in batches for r in b.records] == expected
    assert all(b.tail is not None for b in batches)  # live batches and heartbeats only
    assert ended - appended < SLACK


async def test_until_over_live_batches(api: Api, h2c: H2Client) -> None:  # 68
    query = {"seq_num": 0, "until": 1002, "wait": 5}
    session = await open_read(h2c, "data-follow-plain", "s", query)
    await _next(session)
    r = await api.append("s", "a", "b", "c", "d", timestamps=[1000, 1001, 1002, 1003])
    assert r.status_code == 200
    batches, _ = await _rest(session)
    assert [r.body for b in batches for r in b.records] == [b"a", b"b"]


async def test_session_read_error_is_terminal(server: Lite, api: Api, h2c: H2Client) -> None:
    # Deleting a followed stream ends the session with a terminal frame, not a silent end.
    session = await open_read(h2c, "data-follow-plain", "s", {"seq_num": 0})
    await _next(session)
    r = await api.client.delete("/v1/streams/s")
    assert r.status_code == 202
    async with asyncio.timeout(10):  # heartbeats keep coming until the terminal
        item = await session.batch()
        while isinstance(item, ReadBatch):
            item = await session.batch()
    assert isinstance(item, Terminal)
    assert item.status == 409
    assert '"stream_deletion_pending"' in item.body


async def test_a_heartbeat_never_runs_ahead_of_the_records_sent() -> None:  # P4
    # Clients resume from a heartbeat's tail, so a heartbeat may only report a tail this
    # session has delivered up to. With a heartbeat due every millisecond or two, one is
    # often due just as a commit hands the follower new records.
    async with Lite(quick_config(heartbeat_min=0.001, heartbeat_max=0.002)) as lite:
        await create_basin(lite.url, "follow-hb")
        await create_stream(lite.url, "follow-hb", "s")
        async with Api(lite.url, "follow-hb") as api, await H2Client.connect(lite.url) as h2:
            session = await open_read(h2, "follow-hb", "s", {"seq_num": 0, "wait": 5})
            delivered = 0
            async with asyncio.TaskGroup() as tg:
                writer = tg.create_task(_append_each(api, 200))
                async with asyncio.timeout(20):
                    while delivered < 200:
                        batch = await _next(session)
                        if batch.records:
                            assert batch.records[0].seq_num == delivered
                            delivered = batch.records[-1].seq_num + 1
                        else:
                            assert batch.tail is not None
                            assert batch.tail.seq_num <= delivered, (batch.tail, delivered)
            await writer
            session.stream.reset()


async def _append_each(api: Api, n: int) -> None:
    for i in range(n):
        assert (await api.append("s", f"{i:04d}")).status_code == 200
