"""Robustness against bad names, headers and query parameters: one case per class of bad input,
each answered with its documented 4xx and S2 error code, never a 500, leaving the server
healthy and every record accepted before intact (``guarded`` checks the last two)
(docs/protocol.md#error-codes)."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
from _client import (
    BASIN,
    JSON,
    KEY,
    OTHER_KEY,
    append,
    assert_error,
    guarded,
    read,
)

if TYPE_CHECKING:
    from s2kit.server import Lite

HTTP = [pytest.param(False, id="h1"), pytest.param(True, id="h2c")]
RECORDS = "/v1/streams/s/records"
LONG_STREAM = "x" * 513


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/basins/UPPERCASE-BASIN"),
        ("GET", "/v1/basins/short"),
        ("PUT", "/v1/basins/-leading-hyphen"),
        ("PUT", "/v1/basins/trailing-hyphen-"),
        ("DELETE", "/v1/basins/under_score_basin"),
        ("PATCH", f"/v1/basins/{'b' * 49}"),
        ("GET", "/v1/basins/%FF%FEbadutf8"),
        ("GET", "/v1/streams/%2E%2E"),
        ("PUT", "/v1/streams/%2E"),
        ("DELETE", f"/v1/streams/{LONG_STREAM}"),
        ("GET", f"/v1/streams/{LONG_STREAM}/records"),
        ("POST", f"/v1/streams/{LONG_STREAM}/records"),
        ("GET", "/v1/streams/%2E%2E/records/tail"),
        ("GET", "/v1/streams/%FF/records/tail"),
    ],
)
async def test_invalid_name_in_path(lite: Lite, method: str, path: str) -> None:
    async with guarded(lite) as c:
        body = b'{"records":[{"body":"x"}]}' if method in ("POST", "PATCH") else None
        resp = await c.request(method, path, content=body, headers=JSON)
        assert_error(resp, 400, "bad_path")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/basins", {"basin": "Bad_Basin_Name"}),
        ("/v1/basins", {"basin": "short"}),
        ("/v1/basins", {"basin": "b" * 49}),
        ("/v1/basins", {"basin": "ends-with-"}),
        ("/v1/basins", {"config": {}}),
        ("/v1/streams", {"stream": ".."}),
        ("/v1/streams", {"stream": ""}),
        ("/v1/streams", {"stream": LONG_STREAM}),
        ("/v1/streams", {"config": None}),
    ],
)
async def test_invalid_name_in_json_body(lite: Lite, path: str, body: dict[str, object]) -> None:
    # Lite reports every JSON extraction failure, bad names included, as bad_json
    # (docs/protocol.md#known-quirks).
    async with guarded(lite) as c:
        assert_error(await c.post(path, json=body), 400, "bad_json")


async def test_valid_odd_stream_names_work(lite: Lite) -> None:
    # Contrast with the cases above: `/`, spaces, `...` and 512 bytes are all fine.
    async with guarded(lite) as c:
        for name in ("a/b c", "...", "é" * 256):
            resp = await c.post("/v1/streams", json={"stream": name})
            assert resp.status_code == 201, resp.text
        got = await c.get(f"/v1/streams/{quote('a/b c', safe='')}")
        assert got.status_code == 200


# --- s2-basin ---------------------------------------------------------------------------------


@pytest.mark.parametrize("http2", HTTP)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/streams"),
        ("POST", "/v1/streams"),
        ("GET", "/v1/streams/s"),
        ("GET", RECORDS),
        ("POST", RECORDS),
        ("GET", f"{RECORDS}/tail"),
    ],
)
async def test_missing_basin_header(lite: Lite, http2: bool, method: str, path: str) -> None:
    async with guarded(lite, http2=http2) as c:
        c.headers.pop("s2-basin")
        resp = await c.request(method, path, content=b'{"stream":"t"}', headers=JSON)
        c.headers["s2-basin"] = BASIN
        assert_error(resp, 400, "bad_header", "Missing header `s2-basin`")


@pytest.mark.parametrize("basin", ["UPPER-CASE-BASIN", "short", "-hyphen-first", "b" * 49, ""])
async def test_invalid_basin_header(lite: Lite, basin: str) -> None:
    async with guarded(lite) as c:
        for resp in (
            await c.get("/v1/streams", headers={"s2-basin": basin}),
            await append(c, "s", [{"body": "x"}], basin=basin),
        ):
            body = assert_error(resp, 400, "bad_header")
            assert body["message"].startswith("Invalid header `s2-basin`")


# --- s2-format --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["binary", "BASE64", "raw,base64", "json binsafe"])
async def test_bad_s2_format(lite: Lite, fmt: str) -> None:
    async with guarded(lite) as c:
        for resp in (
            await append(c, "s", [{"body": "x"}], headers={"s2-format": fmt}),
            await read(c, "s", seq_num=0, headers={"s2-format": fmt}),
            await read(
                c, "s", seq_num=0, headers={"s2-format": fmt, "accept": "text/event-stream"}
            ),
        ):
            body = assert_error(resp, 400, "bad_header")
            assert body["message"].startswith("Invalid header `s2-format`")


# --- query parameters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"seq_num": "abc"},
        {"seq_num": "-1"},
        {"seq_num": "1.5"},
        {"seq_num": ""},
        {"seq_num": str(2**64)},
        {"timestamp": "yesterday"},
        {"tail_offset": "-2"},
        {"seq_num": "0", "count": "-5"},
        {"seq_num": "0", "count": "ten"},
        {"seq_num": "0", "bytes": "1e3"},
        {"seq_num": "0", "until": "-1"},
        {"seq_num": "0", "wait": str(2**32)},
        {"seq_num": "0", "wait": "-1"},
        {"seq_num": "0", "clamp": "yes"},
    ],
)
async def test_bad_read_query(lite: Lite, params: dict[str, str]) -> None:
    async with guarded(lite, basin_config={"create_stream_on_read": True}) as c:
        assert_error(await read(c, "s", **params), 400, "bad_query")
        sse = await read(c, "s", headers={"accept": "text/event-stream"}, **params)
        assert_error(sse, 400, "bad_query")
        # Rejected before auto-creation.
        assert_error(await read(c, "fresh", **params), 400, "bad_query")
        assert [s["name"] for s in (await c.get("/v1/streams")).json()["streams"]] == ["s"]


@pytest.mark.parametrize(
    "params",
    [
        {"seq_num": "0", "timestamp": "0"},
        {"seq_num": "0", "tail_offset": "1"},
        {"timestamp": "0", "tail_offset": "1"},
    ],
)
async def test_two_start_parameters(lite: Lite, params: dict[str, str]) -> None:
    msg = "only one of seq_num, timestamp, or tail_offset can be provided"
    async with guarded(lite) as c:
        assert_error(await read(c, "s", **params), 422, "invalid", msg)


@pytest.mark.parametrize(("timestamp", "until"), [(5, 5), (10, 3), (1, 0)])
async def test_until_not_after_timestamp(lite: Lite, timestamp: int, until: int) -> None:
    # Rejected before auto-creation (docs/protocol.md#read-start), so no stream appears.
    msg = "start `timestamp` exceeds or equal to `until`"
    async with guarded(lite, basin_config={"create_stream_on_read": True}) as c:
        resp = await read(c, "s", timestamp=timestamp, until=until)
        assert_error(resp, 422, "invalid", msg)
        auto = await read(c, "fresh", timestamp=timestamp, until=until)
        assert_error(auto, 422, "invalid", msg)
        assert [s["name"] for s in (await c.get("/v1/streams")).json()["streams"]] == ["s"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/basins", {"limit": "many"}),
        ("/v1/basins", {"limit": "-1"}),
        ("/v1/basins", {"prefix": "UPPER"}),
        ("/v1/basins", {"start_after": "b" * 49}),
        ("/v1/streams", {"limit": "x"}),
        ("/v1/streams", {"prefix": "p" * 513}),
    ],
)
async def test_bad_list_query(lite: Lite, path: str, params: dict[str, str]) -> None:
    async with guarded(lite) as c:
        assert_error(await c.get(path, params=params), 400, "bad_query")


# --- s2-request-token -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"), [("/v1/basins", {"basin": "test-basin-2"}), ("/v1/streams", {"stream": "t"})]
)
async def test_request_token_too_long(lite: Lite, path: str, body: dict[str, str]) -> None:
    async with guarded(lite) as c:
        resp = await c.post(path, json=body, headers={"s2-request-token": "t" * 37})
        assert_error(
            resp,
            400,
            "bad_header",
            "Invalid header `s2-request-token`: must not exceed 36 bytes in length",
        )
        # Nothing was created.
        assert (await c.get("/v1/streams/t")).status_code == 404
        assert (await c.get("/v1/basins/test-basin-2")).status_code == 404
        # 36 bytes is the limit, and it is fine.
        ok = await c.post(path, json=body, headers={"s2-request-token": "t" * 36})
        assert ok.status_code == 201


# --- last-event-id ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["abc", "1,2", "1,2,3,4", "1,2,x", "-1,0,0", "1,,3", "1, 2,3", str(2**64) + ",0,0"]
)
async def test_bad_last_event_id(lite: Lite, value: str) -> None:
    async with guarded(lite) as c:
        headers = {"accept": "text/event-stream", "last-event-id": value}
        resp = await read(c, "s", seq_num=0, headers=headers)
        body = assert_error(resp, 400, "bad_header")
        assert body["message"].startswith("Invalid header `last-event-id`")


# --- encryption keys --------------------------------------------------------------------------

ENCRYPTED = {"stream_cipher": "aegis-256"}


@pytest.mark.parametrize("cipher", ["aegis-256", "aes-256-gcm"])
async def test_missing_encryption_key(lite: Lite, cipher: str) -> None:
    msg = f"missing encryption key for stream cipher '{cipher}'"
    async with guarded(lite, basin_config={"stream_cipher": cipher}) as c:
        assert_error(await append(c, "s", [{"body": "x"}]), 400, "bad_header", msg)
        assert_error(await read(c, "s", seq_num=0), 400, "bad_header", msg)
        sse = await read(c, "s", seq_num=0, headers={"accept": "text/event-stream"})
        assert_error(sse, 400, "bad_header", msg)
        # Check-tail never needs the key.
        got = await c.get(f"{RECORDS}/tail")
        assert got.json()["tail"]["seq_num"] == 2


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("not base64!", id="not-base64"),
        pytest.param(base64.b64encode(b"k" * 16).decode(), id="16-bytes"),
        pytest.param(base64.b64encode(b"k" * 33).decode(), id="33-bytes"),
        pytest.param("A" * 45, id="too-long"),
        pytest.param(KEY.rstrip("="), id="unpadded"),
    ],
)
async def test_bad_encryption_key(lite: Lite, key: str) -> None:
    async with guarded(lite, basin_config=ENCRYPTED) as c:
        headers = {"s2-encryption-key": key}
        for resp in (
            await append(c, "s", [{"body": "x"}], headers=headers),
            await read(c, "s", seq_num=0, headers=headers),
        ):
            body = assert_error(resp, 400, "bad_header")
            assert body["message"].startswith("Invalid header `s2-encryption-key`")


async def test_wrong_encryption_key_on_read(lite: Lite) -> None:
    async with guarded(lite, basin_config=ENCRYPTED) as c:
        wrong = {"s2-encryption-key": OTHER_KEY}
        resp = await read(c, "s", seq_num=0, headers=wrong)
        assert_error(resp, 400, "decryption_failed", "record decryption failed")
        # Appending with another key is not refused; reading that record with the
        # original key then fails, but the earlier ones stay readable.
        assert (await append(c, "s", [{"body": "other"}], headers=wrong)).status_code == 200
        later = await read(c, "s", seq_num=2, headers={"s2-encryption-key": KEY})
        assert_error(later, 400, "decryption_failed", "record decryption failed")


async def test_encryption_key_ignored_on_plain_stream(lite: Lite) -> None:
    async with guarded(lite) as c:
        resp = await append(c, "s", [{"body": "x"}], headers={"s2-encryption-key": "junk!"})
        assert resp.status_code == 200
