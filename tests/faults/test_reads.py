"""Read sessions under faults, R1–R9 of docs/retry-safety.md#read-sessions: reads have no side
effects, so they reconnect, and A6 must hold: contiguous seq_nums, no gap, no repeat, limits
honoured.

A writer appends one record at a time straight to lite while the reader follows the tail
through the proxy, so each record reaches the reader as its own S2S message and a fault can
land between any two of them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest

from faults._harness import check_contiguous, stream_of
from s2kit.errors import ReadUnwritten, ServerError
from s2kit.testing.faults import (
    Cut,
    FaultProxy,
    GoAway,
    H2ErrorCode,
    Hold,
    Match,
    ResetStream,
    StreamFault,
    Terminal,
)
from s2kit.types import AppendInput, ReadBatch, ReadLimit, Record, SeqNum, TailOffset
from s2kit.wire import _proto

if TYPE_CHECKING:
    from faults.conftest import ClientFactory
    from s2kit import S2
    from s2kit.client import ReadSession
    from s2kit.testing.faults import Action

READ = Match(method="GET", s2s=True)
COUNT = 12


async def feed(direct: S2, names: tuple[str, str], n: int, start: int = 0) -> None:
    """Append ``n`` records, one input each, waiting for each ack."""
    stream = stream_of(direct, names)
    for i in range(start, start + n):
        await stream.append(AppendInput(records=(Record(body=b"r%d" % i),)))
        await asyncio.sleep(0.005)  # let each reach the follower as its own batch


async def collect(session: ReadSession, count: int) -> list[ReadBatch]:
    batches: list[ReadBatch] = []
    got = 0
    async for batch in session:
        batches.append(batch)
        got += len(batch.records)
        if got >= count:
            break
    return batches


async def follow_while_feeding(
    client: S2, direct: S2, names: tuple[str, str], *, count: int = COUNT, **kwargs: object
) -> tuple[ReadSession, list[ReadBatch]]:
    session = stream_of(client, names).read_session(SeqNum(0), **kwargs)  # type: ignore[arg-type]
    async with asyncio.timeout(20), asyncio.TaskGroup() as tg:
        reader = tg.create_task(collect(session, count))
        tg.create_task(feed(direct, names, count))
    await session.aclose()
    return session, reader.result()


def queries(proxy: FaultProxy) -> list[dict[str, str]]:
    """The query of every read-session request, in order."""
    return [
        {k: v[0] for k, v in parse_qs(urlsplit(r.path).query).items()}
        for r in proxy.requests
        if READ.matches(r)
    ]


# --- R1, R5, R9: the session breaks mid-stream, in every way -----------------------------------

BREAKS: dict[str, Action] = {
    "r1-cut-rst": Cut(reset=True),
    "r1-cut-fin": Cut(reset=False),
    "r5-storage": Terminal(status=500, code="storage"),
    "r5-unavailable": Terminal(status=503, code="unavailable"),
    "r9-rst-cancel": ResetStream(code=H2ErrorCode.CANCEL),
    "r9-rst-internal": ResetStream(code=H2ErrorCode.INTERNAL_ERROR),
    "r9-rst-refused": ResetStream(code=H2ErrorCode.REFUSED_STREAM),
    "r9-goaway-internal-cut": GoAway(code=H2ErrorCode.INTERNAL_ERROR, then_cut=True),
    "r9-goaway-unprocessed": GoAway(code=H2ErrorCode.NO_ERROR, last_stream_id=0),
}


@pytest.mark.parametrize("action", BREAKS.values(), ids=BREAKS.keys())
async def test_r1_r5_r9_reconnect_from_the_next_record(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    action: Action,
) -> None:  # fmt: skip
    proxy.add(StreamFault(match=READ, pass_down=5, when_down=5, action=action))
    # A count limit alone reads to the tail and stops: wait to follow.
    session, batches = await follow_while_feeding(
        make_client(), direct, names, limit=ReadLimit(count=COUNT), wait=30
    )
    seqs = check_contiguous(batches)
    assert len(seqs) == COUNT
    assert session.reconnects == 1
    first, second = queries(proxy)
    delivered = int(second["seq_num"])
    assert delivered > 0  # the resume point is where the first session stopped ...
    assert int(second["count"]) == COUNT - delivered  # ... with the remaining count
    assert first["count"] == str(COUNT)


async def test_r5_stream_not_found_stops(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    await feed(direct, names, 5)
    # The catch-up batch and the first heartbeat get through, then the stream is "gone".
    proxy.add(
        StreamFault(match=READ, pass_down=2, when_down=2,
                    action=Terminal(status=404, code="stream_not_found"))
    )  # fmt: skip
    session = stream_of(make_client(), names).read_session(SeqNum(0))
    delivered: list[ReadBatch] = []

    async def read_all() -> None:
        async for batch in session:
            delivered.append(batch)

    with pytest.raises(ServerError, match="stream_not_found"):
        await read_all()
    assert check_contiguous(delivered) == list(range(5))
    assert len(queries(proxy)) == 1


# --- R2, R3: heartbeats -----------------------------------------------------------------------


async def test_r2_silence_past_the_heartbeat_timeout_reconnects(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    proxy.add(StreamFault(match=READ, pass_down=4))  # then nothing, not even heartbeats
    session, batches = await follow_while_feeding(
        make_client(), direct, names, heartbeat_timeout=0.8
    )
    assert len(check_contiguous(batches)) >= COUNT
    assert session.reconnects == 1


async def test_r3_heartbeats_keep_an_idle_session_alive(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    # Lite here sends a heartbeat every 0.2–0.4 s; the client allows 0.8 s of silence.
    session = stream_of(make_client(), names).read_session(SeqNum(0), heartbeat_timeout=0.8)
    async with asyncio.TaskGroup() as tg:
        reader = tg.create_task(collect(session, 1))
        await proxy.wait_for(lambda: heartbeats(proxy) >= 5)  # about 1.5 s of idling
        tg.create_task(feed(direct, names, 1))
    await session.aclose()
    assert check_contiguous(reader.result()) == [0]
    assert session.reconnects == 0


def heartbeats(proxy: FaultProxy) -> int:
    """Empty read batches (heartbeats) the server sent on read sessions."""
    assert proxy.trace is not None
    reads = {(r.conn, r.stream_id) for r in proxy.requests if READ.matches(r)}
    return sum(
        1
        for e in proxy.trace
        if e.kind == "message"
        and (e.conn, e.stream_id) in reads
        and not _proto.decode_read_batch(e.data).records
    )


# --- R4: 416 ----------------------------------------------------------------------------------


async def test_r4_start_beyond_the_tail_stops_with_the_tail(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    await feed(direct, names, 3)
    session = stream_of(make_client(), names).read_session(SeqNum(10))
    with pytest.raises(ReadUnwritten) as excinfo:
        await collect(session, 1)
    assert excinfo.value.tail.seq_num == 3
    assert len(queries(proxy)) == 1  # not retried


# --- R6, R7: resuming ---------------------------------------------------------------------------


async def test_r6_resume_from_the_heartbeat_tail(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    await feed(direct, names, 10)
    release = asyncio.Event()
    # The session sees one heartbeat (tail 10), is cut; its reconnect is held until five more
    # records have landed. A start re-evaluated as "the tail" would skip them.
    proxy.add(StreamFault(match=READ, pass_down=1, when_down=1, action=Cut()))
    proxy.next_connections(None, Hold(release=release))
    session = stream_of(make_client(connect=5.0), names).read_session(TailOffset(0))
    async with asyncio.TaskGroup() as tg:
        reader = tg.create_task(collect(session, 5))
        await proxy.wait_for(
            lambda: proxy.stats.faults["cut-rst"] == 1 and proxy.stats.connections == 2
        )
        await feed(direct, names, 5, start=10)
        release.set()
    await session.aclose()
    assert check_contiguous(reader.result(), start=10) == list(range(10, 15))
    assert [q.get("seq_num") for q in queries(proxy)] == [None, "10"]


async def test_r7_wait_is_reduced_by_the_whole_seconds_since_the_last_tail(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    # One heartbeat (with the tail) gets through, then silence: the heartbeat timeout fires
    # 1.2 s later and the reconnect asks for what is left of the wait.
    proxy.add(StreamFault(match=READ, pass_down=1))
    session = stream_of(make_client(), names).read_session(
        SeqNum(0), wait=10, heartbeat_timeout=1.2
    )
    async with asyncio.TaskGroup() as tg:
        reader = tg.create_task(collect(session, 1))
        await proxy.wait_for(lambda: len(queries(proxy)) == 2, within=10)
        tg.create_task(feed(direct, names, 1))
    await session.aclose()
    assert check_contiguous(reader.result()) == [0]
    first, second = queries(proxy)
    assert first["wait"] == "10"
    assert int(second["wait"]) in (8, 9)  # 10 minus 1.2 s and the backoff, floored


# --- R8: draining ---------------------------------------------------------------------------


async def test_r8_draining_reconnects_without_spending_the_budget(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    # A single attempt allowed, yet five drains in a row are survived: each delivered a
    # record (progress) before the terminal server_draining.
    proxy.add(
        StreamFault(match=READ, times=5, pass_down=2, when_down=2,
                    action=Terminal(status=503, code="server_draining"))
    )  # fmt: skip
    session, batches = await follow_while_feeding(make_client(max_attempts=1), direct, names)
    assert len(check_contiguous(batches)) >= COUNT
    assert session.reconnects == 5


async def test_r8_draining_without_progress_is_bounded(
    proxy: FaultProxy, make_client: ClientFactory, names: tuple[str, str],
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(match=READ, times=10, pass_down=1, when_down=1,
                    action=Terminal(status=503, code="server_draining"))
    )  # fmt: skip
    session = stream_of(make_client(max_attempts=2), names).read_session(SeqNum(0))
    with pytest.raises(ServerError, match="server_draining"):
        await collect(session, 1)
    # Two free reconnects (max_attempts), then the budget's one retry: four requests.
    assert len(queries(proxy)) == 4
