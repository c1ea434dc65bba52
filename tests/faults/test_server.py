"""The server side, P1–P5 of docs/retry-safety.md#the-server-side, through the SDK and the proxy.

The frame-level checks of the same rules live in ``tests/behaviour/test_data_sessions.py``;
here the SDK drives lite and the proxy either arranges the timing (holding a terminal frame
so later inputs reach the server after its decision) or watches the wire order of one
connection's frames.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING

from faults._harness import (
    Ledger,
    check,
    check_contiguous,
    read_stream,
    stream_of,
    wait_done,
)
from faults.conftest import ALL, NSE
from s2kit.errors import ClosedError, SeqNumMismatch, ServerError
from s2kit.testing.faults import Direction, FaultProxy, Match, Release, Step, StreamFault
from s2kit.types import AppendInput, ReadBatch, Record, SeqNum, SequencedRecord, TailOffset
from s2kit.wire import _proto

if TYPE_CHECKING:
    from faults.conftest import ClientFactory
    from s2kit import S2
    from s2kit.server import Lite
    from s2kit.testing.faults import TraceEvent

SESSION = Match(method="POST", s2s=True)
READ = Match(method="GET", s2s=True)


def down_messages(proxy: FaultProxy, match: Match) -> list[TraceEvent]:
    """Messages and terminal frames the server sent on streams of matching requests."""
    assert proxy.trace is not None
    streams = {(r.conn, r.stream_id) for r in proxy.requests if match.matches(r)}
    return [
        e
        for e in proxy.trace
        if e.direction is Direction.DOWN
        and e.kind in ("message", "terminal")
        and (e.conn, e.stream_id) in streams
    ]


# --- P1: poisoning --------------------------------------------------------------------------


async def test_p1_inputs_arriving_after_the_412_are_never_applied(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    # The terminal 412 is held at the proxy until two more inputs reached the server.
    proxy.add(StreamFault(match=SESSION, pass_down=3, then=(Step(when_up=6, action=Release()),)))
    session = stream_of(make_client(NSE), names).append_session()
    ledger = Ledger("p1")
    for i in range(4):
        await ledger.submit(session, match_seq_num=i if i != 3 else 42)
    await proxy.wait_for(
        lambda: [e.kind for e in down_messages(proxy, SESSION)][-1:] == ["terminal"]
    )
    for i in (4, 5):
        await ledger.submit(session, match_seq_num=i - 1)  # would fit after the 412'd input
    await wait_done(ledger)
    assert [i.index for i in ledger.acked] == [0, 1, 2]  # all acks came before the terminal
    assert all(isinstance(i.error, SeqNumMismatch) for i in ledger.items[3:])
    kinds = [e.kind for e in down_messages(proxy, SESSION)]
    assert kinds == ["message"] * 3 + ["terminal"]
    landed = check(ledger, await read_stream(direct, *names), NSE)
    assert [landed.of(i) for i in range(6)] == [1, 1, 1, 0, 0, 0]
    assert proxy.stats.messages_up == 6  # inputs 4 and 5 did reach the server


# --- P2: a client reset -----------------------------------------------------------------------


async def test_p2_abort_applies_only_what_was_admitted(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    # The server sees three inputs (the rest never leave the proxy), acks them, but the acks
    # are withheld; then the client aborts: RST_STREAM on the session.
    proxy.add(StreamFault(match=SESSION, pass_up=3, pass_down=0))
    session = stream_of(make_client(ALL), names).append_session()
    ledger = Ledger("p2")
    for _ in range(6):
        await ledger.submit(session)
    await proxy.wait_for(lambda: proxy.stats.messages_down >= 3)
    await session.abort()
    await ledger.settle()
    assert all(isinstance(i.error, ClosedError) for i in ledger.items)
    await direct.basin(names[0]).stream(names[1]).append(AppendInput(records=(Record(body=b"m"),)))
    records = await read_stream(direct, *names)
    landed = check(ledger, records, ALL)
    assert [landed.of(i) for i in range(6)] == [1, 1, 1, 0, 0, 0]
    assert records[-1].body == b"m"  # nothing of the session lands after the reset


# --- P3: acks mean durable, and come first ------------------------------------------------------


async def test_p3_ack_precedes_delivery_to_followers_on_the_wire(
    proxy: FaultProxy, make_client: ClientFactory, names: tuple[str, str],
) -> None:  # fmt: skip
    client = make_client(NSE)
    stream = stream_of(client, names)
    reader = stream.read_session(SeqNum(0))
    session = stream.append_session()
    ledger = Ledger("p3")
    seen: list[ReadBatch] = []

    async def follow() -> None:
        async for batch in reader:
            seen.append(batch)
            if sum(len(b.records) for b in seen) >= 20:
                return

    async with asyncio.TaskGroup() as tg:
        follower = tg.create_task(follow())
        await proxy.wait_for(lambda: len(down_messages(proxy, READ)) >= 1)  # following
        for _ in range(20):
            await ledger.submit(session)
            await asyncio.sleep(0.002)
        await wait_done(ledger)
        await follower
    await session.close()
    await reader.aclose()
    assert [r.conn for r in proxy.requests] == [1, 1]  # one connection: one wire order
    check_contiguous(seen)
    acked_at: dict[int, int] = {}  # seq_num -> position of its ack on the wire
    delivered_at: dict[int, int] = {}
    wire = [e for e in proxy.trace or [] if e.kind == "message"]
    reads = {(r.conn, r.stream_id) for r in proxy.requests if READ.matches(r)}
    for pos, event in enumerate(wire):
        if (event.conn, event.stream_id) in reads:
            for record in _proto.decode_read_batch(event.data).records:
                delivered_at[record.seq_num] = pos
        else:
            ack = _proto.decode_append_ack(event.data)
            assert ack.tail.seq_num >= ack.end.seq_num  # the tail is at least durable past it
            for seq in range(ack.start.seq_num, ack.end.seq_num):
                acked_at[seq] = pos
    assert sorted(delivered_at) == sorted(acked_at) == list(range(20))
    late = [s for s in range(20) if delivered_at[s] < acked_at[s]]
    assert not late, f"records reached a follower before their ack was sent: {late}"
    tail = (await stream.check_tail()).seq_num
    assert tail == ledger.items[-1].ack.end.seq_num == 20  # type: ignore[union-attr]


# --- P4: heartbeats and lagging followers ----------------------------------------------------


async def test_p4_immediate_heartbeat_with_the_tail_then_regular_ones(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    await stream_of(direct, names).append(AppendInput(records=(Record(body=b"x"),) * 3))
    reader = stream_of(make_client(), names).read_session(TailOffset(0))
    task = asyncio.create_task(anext(reader))
    await proxy.wait_for(lambda: len(down_messages(proxy, READ)) >= 6, within=10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await reader.aclose()
    beats = down_messages(proxy, READ)
    requested = next(r.time for r in proxy.requests if READ.matches(r))
    first = _proto.decode_read_batch(beats[0].data)
    assert (first.records, first.tail.seq_num if first.tail else None) == ((), 3)
    assert beats[0].time - requested < 0.2  # at once, not after the first interval
    gaps = [b.time - a.time for a, b in itertools.pairwise(beats[1:])]
    assert all(0.15 <= g <= 0.4 + 0.3 for g in gaps), gaps  # lite here: every 0.2–0.4 s


async def test_p4_a_lagging_follower_catches_up_from_storage(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    # The reader stops reading while 40 batches of 200 KB land: more than its 4 MiB stream
    # window and the 25-batch broadcast buffer, so lite must fall back to a storage scan.
    reader = stream_of(make_client(), names).read_session(SeqNum(0))
    writer = stream_of(direct, names)

    async def append(i: int) -> None:
        await writer.append(AppendInput(records=(Record(body=b"%04d" % i + b"." * 200_000),)))

    first = asyncio.create_task(anext(reader))
    await proxy.wait_for(lambda: len(down_messages(proxy, READ)) >= 1)  # following
    await append(0)
    seen = [await first]
    for i in range(1, 40):  # the application does not read meanwhile
        await append(i)
    async with asyncio.timeout(20):
        async for batch in reader:
            seen.append(batch)
            if sum(len(b.records) for b in seen) >= 40:
                break
    await reader.aclose()
    assert check_contiguous(seen) == list(range(40))
    assert [r.body[:4] for b in seen for r in b.records] == [b"%04d" % i for i in range(40)]


# --- P5: drain --------------------------------------------------------------------------------


async def test_p5_drain_acks_everything_accepted_then_terminates(
    lite: Lite, proxy: FaultProxy, make_client: ClientFactory, names: tuple[str, str],
) -> None:  # fmt: skip
    session = stream_of(make_client(NSE), names).append_session()
    ledger = Ledger("p5")

    async def write() -> None:
        for _ in range(20_000):
            item = await ledger.submit(session)
            if item.error is not None:
                return
            await asyncio.sleep(0.001)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(write())
        await proxy.wait_for(lambda: proxy.stats.messages_down >= 50)
        await lite.app.drain(5.0)
    await wait_done(ledger)
    assert ledger.acked, "nothing was acked before the drain"
    failed = ledger.failed
    assert failed, "the drain did not stop the session"
    assert all(isinstance(i.error, ServerError) for i in failed)
    assert all(i.error.has_no_side_effects for i in failed)  # type: ignore[union-attr]
    # Every input the server accepted was acked before its terminal server_draining ...
    events = down_messages(proxy, SESSION)
    first_session = [e for e in events if e.stream_id == events[0].stream_id]
    assert [e.kind for e in first_session[-1:]] == ["terminal"]
    assert b"server_draining" in first_session[-1].data
    # ... so the stream holds exactly the acked inputs (read from storage: the API is closed).
    key = (names[0], names[1])
    stored, _ = lite.backend.storage.read(key, 0, 1_000_000, 1 << 62)
    landed = check(ledger, [SequencedRecord._make(r) for r in stored], NSE)
    assert landed.total == len(ledger.acked)
    # And only then, GOAWAY.
    await lite.aclose()
    await proxy.wait_for(lambda: any(e.kind == "goaway" for e in proxy.trace or []))
    trace = proxy.trace or []
    terminal_at = trace.index(first_session[-1])
    assert all(trace.index(e) > terminal_at for e in trace if e.kind == "goaway")
