"""Unary data operations over HTTP/1.1 (a subset also over h2c): JSON and protobuf appends and
reads, check-tail, and HTTP compression both ways (docs/protocol.md#records)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
import zstandard
from _client import (
    BASIN,
    JSON,
    PROTO,
    append,
    assert_error,
    client,
    create_basin,
    create_stream,
    eventually,
    read,
    tail,
)

from s2kit.types import AppendInput, Record
from s2kit.wire._proto import decode_append_ack, decode_read_batch, encode_append_input

if TYPE_CHECKING:
    import httpx

    from s2kit.server import Lite

HTTP = [pytest.param(False, id="h1"), pytest.param(True, id="h2c")]
RECORDS = "/v1/streams/s/records"


async def _setup(c: httpx.AsyncClient, config: dict[str, object] | None = None) -> None:
    await create_basin(c)
    await create_stream(c, "s", config)


@pytest.mark.parametrize("http2", HTTP)
async def test_json_append_and_read_exact_bytes(lite: Lite, http2: bool) -> None:
    # A past client timestamp is raised to the running maximum; empty headers and body
    # are omitted on output; compact JSON with keys in order.
    async with client(lite, http2=http2, basin=BASIN) as c:
        await _setup(c)
        body = (
            '{"records":[{"body":"hello","timestamp":1000},'
            '{"headers":[["k","v"],["k","w"]],"body":"x","timestamp":500},'
            '{"timestamp":1001}],"match_seq_num":0}'
        )
        resp = await c.post(RECORDS, content=body, headers=JSON)
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/json"
        assert resp.content == (
            b'{"start":{"seq_num":0,"timestamp":1000},"end":{"seq_num":3,"timestamp":1001},'
            b'"tail":{"seq_num":3,"timestamp":1001}}'
        )
        got = await read(c, "s", seq_num=0)
        assert got.status_code == 200
        assert got.headers["content-type"] == "application/json"
        assert got.content == (
            b'{"records":[{"seq_num":0,"timestamp":1000,"body":"hello"},'
            b'{"seq_num":1,"timestamp":1000,"headers":[["k","v"],["k","w"]],"body":"x"},'
            b'{"seq_num":2,"timestamp":1001}]}'
        )
        assert await tail(c, "s") == {"seq_num": 3, "timestamp": 1001}


async def test_json_append_unicode_and_arrival_timestamps(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await _setup(c)
        before = time.time_ns() // 1_000_000
        future = before + 3_600_000
        resp = await append(c, "s", [{"body": "héllo ☃"}, {"body": "later", "timestamp": future}])
        after = time.time_ns() // 1_000_000
        ack = resp.json()
        # No timestamp = arrival time; a future one is capped to now.
        assert before <= ack["start"]["timestamp"] <= after
        assert ack["start"]["timestamp"] <= ack["end"]["timestamp"] <= after
        records = (await read(c, "s", seq_num=0)).json()["records"]
        assert [r["body"] for r in records] == ["héllo ☃", "later"]
        # Metered size counts UTF-8 bytes: 8 + 10 for the first record.
        assert len((await read(c, "s", seq_num=0, bytes=8 + 10)).json()["records"]) == 1
        assert (await read(c, "s", seq_num=0, bytes=8 + 9)).json()["records"] == []


async def test_uncapped_keeps_future_timestamps(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await _setup(c, {"timestamping": {"uncapped": True}})
        future = time.time_ns() // 1_000_000 + 3_600_000
        ack = (await append(c, "s", [{"body": "a", "timestamp": future}])).json()
        assert ack["start"]["timestamp"] == future


@pytest.mark.parametrize("fmt", ["base64", "json-binsafe"])
async def test_json_base64_format_round_trip(lite: Lite, fmt: str) -> None:
    # Base64 is binary-safe; raw output of the same bytes is lossy UTF-8.
    b64 = base64.b64encode
    name, value, data = b"h\x00", b"\xff\xfe", bytes(range(256))
    async with client(lite, basin=BASIN) as c:
        await _setup(c)
        record = {
            "headers": [[b64(name).decode(), b64(value).decode()]],
            "body": b64(data).decode(),
        }
        resp = await append(c, "s", [record, {"body": ""}], headers={"s2-format": fmt})
        assert resp.status_code == 200, resp.text
        got = (await read(c, "s", seq_num=0, headers={"s2-format": fmt})).json()["records"]
        assert got[0]["headers"] == [[b64(name).decode(), b64(value).decode()]]
        assert base64.b64decode(got[0]["body"]) == data
        assert "body" not in got[1]
        raw = (await read(c, "s", seq_num=0, headers={"s2-format": "raw"})).json()["records"]
        assert raw[0]["headers"] == [["h\x00", "\ufffd\ufffd"]]
        assert raw[0]["body"] == data.decode("utf-8", "replace")
        alias = (await read(c, "s", seq_num=0, headers={"s2-format": "json"})).json()["records"]
        assert alias == raw


async def test_command_records_in_json(lite: Lite) -> None:
    # Fence and trim rendered as records; base64 of the empty name is "".
    async with client(lite, basin=BASIN) as c:
        await _setup(c)
        fence = {"headers": [["", "fence"]], "body": "my-token"}
        assert (await append(c, "s", [fence])).status_code == 200
        trim = {"headers": [["", "dHJpbQ=="]], "body": "AAAAAAAAAAA="}
        resp = await append(c, "s", [trim], headers={"s2-format": "base64"})
        assert resp.status_code == 200, resp.text
        stale = await append(c, "s", [{"body": "x"}], fencing_token="")
        assert stale.status_code == 412
        assert stale.content == b'{"fencing_token_mismatch":"my-token"}'
        ok = await append(c, "s", [{"body": "x"}], fencing_token="my-token", match_seq_num=2)
        assert ok.status_code == 200
        late = await append(c, "s", [{"body": "y"}], match_seq_num=0)
        assert late.status_code == 412
        assert late.content == b'{"seq_num_mismatch":3}'
        got = (await read(c, "s", seq_num=0, headers={"s2-format": "base64"})).json()["records"]
        assert got[0]["headers"] == [["", "ZmVuY2U="]]
        assert got[1] == {
            "seq_num": 1,
            "timestamp": got[1]["timestamp"],
            "headers": [["", "dHJpbQ=="]],
            "body": "AAAAAAAAAAA=",
        }


@pytest.mark.parametrize("http2", HTTP)
@pytest.mark.parametrize("content_type", ["application/protobuf", "application/x-protobuf"])
async def test_protobuf_append(lite: Lite, http2: bool, content_type: str) -> None:
    inp = AppendInput(
        records=(
            Record(body=b"\x00\x01binary", headers=((b"a", b"\xff"),), timestamp=7),
            Record(body=b"two"),
        ),
        match_seq_num=0,
    )
    async with client(lite, http2=http2, basin=BASIN) as c:
        await _setup(c)
        body = encode_append_input(inp)
        as_json = await c.post(RECORDS, content=body, headers={"content-type": content_type})
        assert as_json.status_code == 200, as_json.text
        assert as_json.headers["content-type"] == "application/json"
        assert as_json.json()["start"] == {"seq_num": 0, "timestamp": 7}
        again = AppendInput(records=(Record(body=b"three"),), match_seq_num=2)
        as_proto = await c.post(
            RECORDS,
            content=encode_append_input(again),
            headers={"content-type": content_type, "accept": content_type},
        )
        assert as_proto.status_code == 200
        assert as_proto.headers["content-type"] == PROTO
        ack = decode_append_ack(as_proto.content)
        assert (ack.start.seq_num, ack.end.seq_num) == (2, 3)
        assert ack.tail.seq_num == 3

        got = await read(c, "s", seq_num=0, headers={"accept": content_type})
        assert got.status_code == 200
        assert got.headers["content-type"] == PROTO
        batch = decode_read_batch(got.content)
        assert batch.tail is None  # catch-up batches carry no tail
        assert [(r.seq_num, r.headers, r.body) for r in batch.records] == [
            (0, ((b"a", b"\xff"),), b"\x00\x01binary"),
            (1, (), b"two"),
            (2, (), b"three"),
        ]
        assert batch.records[0].timestamp == 7


@pytest.mark.parametrize("http2", HTTP)
async def test_stream_names_are_percent_decoded(lite: Lite, http2: bool) -> None:
    # One path segment, percent-decoded after routing; `/` and spaces are fine.
    name = "logs/2024 é?#"
    path = f"/v1/streams/{quote(name, safe='')}"
    async with client(lite, http2=http2, basin=BASIN) as c:
        await create_basin(c)
        await create_stream(c, name)
        resp = await c.post(f"{path}/records", json={"records": [{"body": "one"}]})
        assert resp.status_code == 200, resp.text
        got = await c.get(f"{path}/records", params={"seq_num": 0})
        assert [r["body"] for r in got.json()["records"]] == ["one"]
        assert (await c.get(f"{path}/records/tail")).json()["tail"]["seq_num"] == 1
        assert [s["name"] for s in (await c.get("/v1/streams")).json()["streams"]] == [name]
        assert (await c.delete(path)).status_code == 202


@pytest.mark.parametrize("http2", HTTP)
async def test_check_tail(lite: Lite, http2: bool) -> None:
    async with client(lite, http2=http2, basin=BASIN) as c:
        await _setup(c)
        raw = await c.get(f"{RECORDS}/tail")
        assert raw.status_code == 200
        assert raw.headers["content-type"] == "application/json"
        assert raw.content == b'{"tail":{"seq_num":0,"timestamp":0}}'
        ack = (await append(c, "s", [{"body": "a"}, {"body": "b"}])).json()
        assert await tail(c, "s") == ack["end"]
        missing = await c.get("/v1/streams/nope/records/tail")
        assert_error(
            missing, 404, "stream_not_found", f"stream `nope` in basin `{BASIN}` not found"
        )
        no_basin = await c.get(f"{RECORDS}/tail", headers={"s2-basin": "missing-basin"})
        assert_error(no_basin, 404, "basin_not_found", "basin `missing-basin` not found")


async def test_unary_read_bounds_and_unwritten(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await _setup(c)
        # No start = the tail (docs/protocol.md#known-quirks), which a unary read cannot wait at.
        empty = await read(c, "s")
        assert empty.status_code == 416
        assert empty.content == b'{"tail":{"seq_num":0,"timestamp":0}}'
        records = [{"body": f"r{i}", "timestamp": 10 * i} for i in range(10)]
        await append(c, "s", records)
        assert [r["body"] for r in (await read(c, "s", seq_num=0, count=3)).json()["records"]] == [
            "r0",
            "r1",
            "r2",
        ]
        by_bytes = (await read(c, "s", seq_num=4, bytes=2 * 10)).json()["records"]
        assert [r["seq_num"] for r in by_bytes] == [4, 5]
        offset = (await read(c, "s", tail_offset=2)).json()["records"]
        assert [r["seq_num"] for r in offset] == [8, 9]
        ranged = (await read(c, "s", timestamp=25, until=60)).json()["records"]
        assert [r["seq_num"] for r in ranged] == [3, 4, 5]
        beyond = await read(c, "s", seq_num=100)
        assert beyond.status_code == 416
        assert beyond.json() == {"tail": {"seq_num": 10, "timestamp": 90}}
        clamped = await read(c, "s", seq_num=100, clamp="true", wait=0)
        assert clamped.status_code == 416  # clamped to the tail, which it cannot wait at
        at_tail_ts = await read(c, "s", timestamp=90, count=5)
        assert [r["seq_num"] for r in at_tail_ts.json()["records"]] == [9]


async def test_unary_long_poll_gets_live_batch_with_tail(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await _setup(c)
        poll = asyncio.create_task(read(c, "s", seq_num=0, wait=30))

        async def following() -> bool:
            # The only way to know the poll waits at the tail: nothing answers before data.
            owner = lite.backend.owners.get((BASIN, "s"))
            return owner is not None and bool(owner.followers)

        await eventually(following, what="the long poll to wait at the tail")
        assert not poll.done()
        await append(c, "s", [{"body": "live", "timestamp": 5}])
        resp = await poll
        assert resp.status_code == 200
        assert resp.json() == {
            "records": [{"seq_num": 0, "timestamp": 5, "body": "live"}],
            "tail": {"seq_num": 1, "timestamp": 5},
        }


# --- compression ------------------------------------------------------------------------------


def _decode(encoding: str, data: bytes) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(data)
    return zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 24)


@pytest.mark.parametrize("http2", HTTP)
@pytest.mark.parametrize("encoding", ["zstd", "gzip"])
async def test_response_compression(lite: Lite, http2: bool, encoding: str) -> None:
    async with client(lite, http2=http2, basin=BASIN) as c:
        await _setup(c)
        await append(c, "s", [{"body": "z" * 2000, "timestamp": 1}])
        headers = {"s2-basin": BASIN, "accept-encoding": encoding}
        async with c.stream("GET", RECORDS, params={"seq_num": 0}, headers=headers) as resp:
            raw = b"".join([chunk async for chunk in resp.aiter_raw()])
        assert resp.status_code == 200
        assert resp.headers["content-encoding"] == encoding
        assert len(raw) < 2000
        assert json.loads(_decode(encoding, raw)) == {
            "records": [{"seq_num": 0, "timestamp": 1, "body": "z" * 2000}]
        }
        # zstd wins when both are offered; small bodies and identity-only stay plain.
        both = await c.get(
            RECORDS, params={"seq_num": 0}, headers={"accept-encoding": "gzip, zstd"}
        )
        assert both.headers["content-encoding"] == "zstd"
        small = await c.get(f"{RECORDS}/tail", headers={"accept-encoding": encoding})
        assert "content-encoding" not in small.headers
        plain = await c.get(RECORDS, params={"seq_num": 0}, headers={"accept-encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.json()["records"][0]["body"] == "z" * 2000


@pytest.mark.parametrize("encoding", ["zstd", "gzip"])
@pytest.mark.parametrize("kind", ["json", "protobuf"])
async def test_compressed_request_bodies(lite: Lite, encoding: str, kind: str) -> None:
    # SDKs compress every unary request body when compression is configured.
    async with client(lite, basin=BASIN) as c:
        await _setup(c)
        if kind == "json":
            body = json.dumps({"records": [{"body": "q" * 3000}, {"body": "small"}]}).encode()
            ctype = "application/json"
        else:
            inp = AppendInput(records=(Record(body=b"q" * 3000), Record(body=b"small")))
            body = encode_append_input(inp)
            ctype = PROTO
        packed = gzip.compress(body) if encoding == "gzip" else zstandard.compress(body)
        resp = await c.post(
            RECORDS,
            content=packed,
            headers={"content-type": ctype, "content-encoding": encoding},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["end"]["seq_num"] == 2
        got = (await read(c, "s", seq_num=0)).json()["records"]
        assert [r["body"] for r in got] == ["q" * 3000, "small"]
        # A compressed control-plane body is accepted too.
        packed_cfg = gzip.compress(b'{"storage_class":"standard"}')
        patched = await c.patch(
            "/v1/streams/s",
            content=packed_cfg,
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["storage_class"] == "standard"
