"""Where a read session resumes after a failure, against a scripted server that can say
things lite never would: a heartbeat whose tail runs ahead of the records delivered."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from _scripted_server import ScriptedServer, ServerStream

import s2kit
from s2kit.types import ReadBatch, SequencedRecord, StreamPosition
from s2kit.wire import _proto, _s2s

INTERNAL_ERROR = 0x2
NONE = _s2s.Compression.NONE


def _batch(first: int, n: int, tail: int | None) -> bytes:
    records = tuple(
        SequencedRecord(seq_num=first + i, timestamp=1, body=b"r%d" % (first + i)) for i in range(n)
    )
    position = None if tail is None else StreamPosition(tail, 1)
    return _s2s.encode_message(
        _proto.encode_read_batch(ReadBatch(records=records, tail=position)), NONE
    )


def _start(stream: ServerStream) -> dict[str, list[str]]:
    return parse_qs(urlsplit(stream.path).query)


async def _serve(stream: ServerStream) -> None:
    await stream.wait_end()
    stream.respond(200, [("content-type", "s2s/proto")])
    if "seq_num" in _start(stream) and _start(stream)["seq_num"] == ["0"]:
        # Records 0-4, then a heartbeat claiming the tail is 10, then the stream breaks.
        await stream.send(_batch(0, 5, None) + _batch(0, 0, 10))
        stream.reset(INTERNAL_ERROR)
    else:
        await stream.send(_batch(5, 5, 10), end=True)


async def test_a_heartbeat_does_not_move_a_known_position_past_undelivered_records() -> None:
    async with ScriptedServer(_serve) as server:
        endpoints = s2kit.Endpoints.for_url(server.url)
        async with s2kit.S2("t", endpoints=endpoints) as s2:
            session = s2.basin("b").stream("s").read_session(s2kit.SeqNum(0), wait=0)
            seen: list[int] = []
            async with session:
                async for batch in session:
                    seen += [r.seq_num for r in batch.records]
                    if len(seen) == 10:
                        break
        assert seen == list(range(10))
        assert [_start(s)["seq_num"] for s in server.streams] == [["0"], ["5"]]
