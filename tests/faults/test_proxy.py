"""The fault proxy itself: its sans-IO pieces, faithful relaying, exact flow control, and the
fault primitives the scenario tests rely on."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

import s2kit.testing.faults as faults
from faults._harness import read_stream, stream_of
from s2kit.errors import ServerError
from s2kit.testing._faults._wire import (
    PREFACE,
    FrameReader,
    FrameType,
    MessageSplitter,
    frame,
    window_update,
)
from s2kit.testing.faults import (
    Chaos,
    CutAfter,
    Direction,
    FaultProxy,
    Match,
    RequestInfo,
    Respond,
    Step,
    StreamFault,
    Terminal,
)
from s2kit.types import AppendInput, Record, SeqNum
from s2kit.wire import _s2s
from s2kit.wire._compress import Compression

if TYPE_CHECKING:
    from faults.conftest import ClientFactory
    from s2kit import S2
    from s2kit.server import Lite

SESSION = Match(method="POST", s2s=True)
UNARY = Match(method="POST", s2s=False, path="/records")


def test_exports() -> None:
    assert faults.__all__ == [
        "APPEND_FAULTS",
        "Action",
        "Blackhole",
        "CONNECTION_FAULTS",
        "Chaos",
        "ConnFault",
        "Cut",
        "CutAfter",
        "Direction",
        "EndStream",
        "FaultProxy",
        "FaultStats",
        "GoAway",
        "H2ErrorCode",
        "Hold",
        "Inject",
        "Match",
        "READ_FAULTS",
        "Release",
        "RequestInfo",
        "Reset",
        "ResetStream",
        "Respond",
        "Stall",
        "Step",
        "StreamFault",
        "Terminal",
        "TraceEvent",
        "UNARY_FAULTS",
        "ack_frame",
    ]
    assert faults.FaultProxy.__module__ == "s2kit.testing.faults"
    for name in faults.__all__:
        assert getattr(faults, name) is not None


# --- sans-IO ----------------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=40), max_size=8), st.integers(1, 7))
def test_frame_reader_returns_whole_frames_in_order(payloads: list[bytes], step: int) -> None:
    wire = b"".join(frame(FrameType.DATA, 0, 1 + 2 * i, p) for i, p in enumerate(payloads))
    reader = FrameReader()
    got = []
    for i in range(0, len(wire), step):
        got += reader.receive(wire[i : i + step])
    assert [f.payload.tobytes() for f in got] == payloads
    assert [f.stream_id for f in got] == [1 + 2 * i for i in range(len(payloads))]
    assert reader.buffered == 0


@given(st.lists(st.binary(max_size=3000), max_size=6), st.integers(1, 5000))
def test_message_splitter_pieces_rebuild_the_messages(payloads: list[bytes], step: int) -> None:
    body = b"".join(_s2s.encode_message(p, Compression.NONE) for p in payloads)
    body += _s2s.encode_terminal(503, b'{"code":"x"}')
    splitter = MessageSplitter()
    pieces = []
    for i in range(0, len(body), step):
        pieces += splitter.feed(body[i : i + step])
    messages: dict[int, bytes] = {}
    for piece in pieces:
        messages[piece.index] = messages.get(piece.index, b"") + piece.data
        if piece.first:
            assert piece.data[3] == piece.flag
    assert b"".join(messages[i] for i in sorted(messages)) == body
    assert sorted(messages) == list(range(len(payloads) + 1))
    assert splitter.completed == len(payloads) + 1
    assert not splitter.partial
    assert pieces[-1].flag == 0x80


def test_window_update_and_preface() -> None:
    assert window_update(3, 70_000) == frame(FrameType.WINDOW_UPDATE, 0, 3, (70_000).to_bytes(4))
    assert window_update(1, 0) == b""  # an increment of 0 would be a protocol error
    assert PREFACE.startswith(b"PRI * HTTP/2.0")


def test_chaos_is_deterministic_per_seed() -> None:
    def draw(seed: int) -> list[str]:
        chaos = Chaos(seed=seed, stream_rate=0.7, connection_rate=0.5)
        out = []
        for i in range(200):
            request = RequestInfo(
                conn=1,
                stream_id=2 * i + 1,
                method=random.Random(i).choice(["GET", "POST"]),
                path="/v1/streams/s/records",
                headers=(("content-type", "s2s/proto" if i % 3 else "application/protobuf"),),
                time=0.0,
            )
            fault = chaos.stream_fault(request)
            conn = chaos.connection_fault(i)
            out.append(f"{fault.kind() if fault else '-'} {type(conn).__name__}")
        return out

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)


def test_stream_fault_labels() -> None:
    fault = StreamFault(hide=True, action=Respond(status=429, code="rate_limited"))
    assert fault.kind() == "respond:rate_limited"
    steps = StreamFault(pass_down=0, then=(Step(when_up=2, action=faults.Release()),))
    assert steps.kind() == "withhold"
    assert len(steps.steps()) == 1


# --- relaying --------------------------------------------------------------------------------


async def test_relays_sessions_reads_and_large_records_faithfully(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    stream = stream_of(make_client(), names)
    big = AppendInput(records=(Record(body=b"x" * 900_000),))
    async with stream.append_session() as session:
        tickets = [await session.submit(big) for _ in range(6)]  # more than a stream window
        tickets += [
            await session.submit(AppendInput(records=(Record(body=b"%d" % i),))) for i in range(500)
        ]
    assert [(await t).end.seq_num for t in tickets] == list(range(1, 507))
    records = [r async for b in stream.read_session(SeqNum(0), wait=0) for r in b.records]
    assert [len(r.body) for r in records[:6]] == [900_000] * 6
    assert records == await read_stream(direct, *names)
    assert proxy.stats.messages_up == 506
    assert proxy.stats.total_faults() == 0


async def test_dropped_bytes_are_credited_back(
    proxy: FaultProxy, make_client: ClientFactory, names: tuple[str, str],
) -> None:  # fmt: skip
    # 30 hidden requests of 700 KB: far more than the connection window (16 MiB). Without
    # the proxy's WINDOW_UPDATEs for what it swallowed, the client would stall.
    invalid = Respond(status=422, code="invalid")
    proxy.add(StreamFault(match=UNARY, times=30, hide=True, when_up=1, action=invalid))
    stream = stream_of(make_client(max_attempts=1), names)
    payload = AppendInput(records=(Record(body=b"y" * 700_000),))
    for _ in range(30):
        with pytest.raises(ServerError, match="invalid"):
            await stream.append(payload)
    ack = await stream.append(payload)
    assert ack.end.seq_num == 1
    assert proxy.stats.connections == 1


async def test_respond_after_the_head_becomes_a_terminal_frame(
    proxy: FaultProxy, make_client: ClientFactory, names: tuple[str, str],
) -> None:  # fmt: skip
    # The action lands between the two acks, even when they share a DATA frame.
    proxy.add(StreamFault(match=SESSION, when_down=1, action=Respond(status=400, code="bad_frame")))
    session = stream_of(make_client(), names).append_session()
    ticket = await session.submit(AppendInput(records=(Record(body=b"a"),)))
    second = await session.submit(AppendInput(records=(Record(body=b"b"),)))
    assert (await ticket).end.seq_num == 1
    with pytest.raises(ServerError, match="bad_frame"):
        await second
    with pytest.raises(ServerError):
        await session.close()


async def test_rewrite_terminal_and_trace(
    proxy: FaultProxy, make_client: ClientFactory, names: tuple[str, str],
) -> None:  # fmt: skip
    replacement = Terminal(status=503, code="unavailable")
    proxy.add(StreamFault(match=SESSION, rewrite_terminal=replacement))
    session = stream_of(make_client(max_attempts=1), names).append_session()
    ticket = await session.submit(AppendInput(records=(Record(body=b"a"),), match_seq_num=9))
    with pytest.raises(ServerError, match="unavailable"):  # lite said 412
        await ticket
    assert proxy.stats.faults["rewrite-terminal"] == 1
    assert proxy.trace is not None
    kinds = [e.kind for e in proxy.trace if e.direction is Direction.DOWN]
    assert "terminal" in kinds


async def test_cut_after_bytes_from_the_server(
    proxy: FaultProxy, make_client: ClientFactory, names: tuple[str, str],
) -> None:  # fmt: skip
    proxy.next_connections(CutAfter(nbytes=40, direction=Direction.DOWN))
    tail = await stream_of(make_client(), names).check_tail()  # retried on a new connection
    assert tail.seq_num == 0
    assert proxy.stats.connections == 2
    assert proxy.stats.faults["conn:cut-after-down"] == 1


async def test_http1_clients_are_relayed_raw(lite: Lite, names: tuple[str, str]) -> None:
    from s2kit import S2
    from s2kit.client import Endpoints

    async with FaultProxy(lite.url) as proxy, S2(
        "t", endpoints=Endpoints.for_url(proxy.url), http1=True
    ) as s2:  # fmt: skip
        assert (await stream_of(s2, names).check_tail()).seq_num == 0
        assert proxy.stats.bytes_up > 0
        assert proxy.stats.requests == 0  # not parsed as HTTP/2


async def test_aclose_leaves_no_task_behind(lite: Lite, make_client: ClientFactory) -> None:
    before = asyncio.all_tasks()
    proxy = FaultProxy(lite.url)
    await proxy.start()
    proxy.next_connections(faults.Blackhole(seconds=30))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    await proxy.wait_for(lambda: proxy.open_connections == 1)
    await proxy.aclose()
    try:
        assert await reader.read() == b""
    except ConnectionResetError:
        pass  # reset: as good as closed
    writer.close()
    assert asyncio.all_tasks() <= before | {asyncio.current_task()}
