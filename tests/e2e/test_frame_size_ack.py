"""Lite takes a frame as large as it advertised from the client's SETTINGS ACK on, also when
the ACK and that frame reach it in one read.

Lite raises SETTINGS_MAX_FRAME_SIZE to 1 MiB in a second SETTINGS. A client that acks it and
at once sends a larger DATA frame puts both in one write; lite used to read them together
only when busy (then h2 still applied the old 16 KiB limit and closed the connection: a
writer of 1 MiB batches next to 500 silent readers saw "connection reset", issue 14's CI
run). Here the client writes them together on purpose, over a real socket, so the read
holds both every time (``_h2fast.py``, item 8).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import hpack
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    SettingsFrame,
)

import s2kit

if TYPE_CHECKING:
    from s2kit.server import Lite

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


async def _frame(reader: asyncio.StreamReader) -> Frame:
    head = await reader.readexactly(9)
    frame, length = Frame.parse_frame_header(memoryview(head))
    frame.parse_body(memoryview(await reader.readexactly(length)))
    return frame


async def test_a_frame_larger_than_16_kib_right_behind_the_ack(lite: Lite) -> None:
    basin = "frame-size-ack"
    async with s2kit.S2("t", endpoints=s2kit.Endpoints.for_url(lite.url)) as s2:
        await s2.create_basin(basin)
        await s2.basin(basin).create_stream("s")
    reader, writer = await asyncio.open_connection("127.0.0.1", lite.port)
    try:
        async with asyncio.timeout(10):
            writer.write(PREFACE + SettingsFrame(0).serialize())
            # Lite's SETTINGS: the preface's, then the one raising the frame size.
            unacked, frame_size = 0, 16_384
            while frame_size == 16_384:
                frame = await _frame(reader)
                if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                    unacked += 1
                    frame_size = frame.settings.get(SettingsFrame.MAX_FRAME_SIZE, frame_size)
            assert frame_size >= 1 << 20

            block = hpack.Encoder().encode(
                [
                    (":method", "POST"),
                    (":scheme", "http"),
                    (":authority", "127.0.0.1"),
                    (":path", "/v1/streams/s/records"),
                    ("content-type", "application/json"),
                    ("s2-basin", basin),
                ]
            )
            # The ACKs and an append whose body is one 60,000-byte DATA frame (within the
            # default flow-control windows), in a single write.
            body = json.dumps({"records": [{"body": "x" * 59_950}]}).encode()
            assert 16_384 < len(body) < 65_535
            data = DataFrame(1, body)
            data.flags.add("END_STREAM")
            writer.write(
                SettingsFrame(0, flags=["ACK"]).serialize() * unacked
                + HeadersFrame(1, block, flags=["END_HEADERS"]).serialize()
                + data.serialize()
            )
            while True:
                frame = await _frame(reader)
                assert not isinstance(frame, GoAwayFrame), f"lite closed: {frame!r}"
                if isinstance(frame, HeadersFrame):
                    break
            headers = dict(hpack.Decoder().decode(frame.data))
            assert headers[":status"] == "200"
            response = b""
            while not (isinstance(frame, DataFrame) and "END_STREAM" in frame.flags):
                frame = await _frame(reader)
                if isinstance(frame, DataFrame):
                    response += frame.data
            assert json.loads(response)["end"]["seq_num"] == 1
    finally:
        writer.close()
        await writer.wait_closed()
