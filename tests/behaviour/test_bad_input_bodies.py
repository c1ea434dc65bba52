"""Robustness against bad request bodies: one case per class of bad input, each answered with
its documented 4xx and S2 error code, never a 500, leaving the server healthy and every record
accepted before intact (``guarded`` checks the last two) (docs/protocol.md#append-validation)."""

from __future__ import annotations

import base64
import gzip
import json
from typing import TYPE_CHECKING, Any

import pytest
from _client import BASIN, JSON, PROTO, append, assert_error, guarded, tail

from s2kit.types import AppendInput, Record
from s2kit.wire._proto import encode_append_input

if TYPE_CHECKING:
    from s2kit.server import Lite

HTTP = [pytest.param(False, id="h1"), pytest.param(True, id="h2c")]
RECORDS = "/v1/streams/s/records"
MIB = 1024 * 1024
CONTENT_TYPE_MSG = "Expected request with `Content-Type: application/json`"


# --- malformed JSON ---------------------------------------------------------------------------

MALFORMED: list[tuple[str, str, bytes]] = [
    ("POST", RECORDS, b'{"records": ['),
    ("POST", RECORDS, b"not json"),
    ("POST", RECORDS, b""),
    ("POST", RECORDS, b"\xff\xfe"),
    ("POST", RECORDS, b'{"records": "nope"}'),
    ("POST", RECORDS, b'{"records": [{"body": 5}]}'),
    ("POST", RECORDS, b'{"records": [{"headers": [["only-name"]]}]}'),
    ("POST", RECORDS, b'{"records": [{"timestamp": -1}]}'),
    ("POST", RECORDS, b'{"records": [{"timestamp": 18446744073709551616}]}'),
    ("POST", RECORDS, b'{"records": [{"timestamp": 1.5}]}'),
    ("POST", RECORDS, b"{}"),
    ("POST", RECORDS, b'{"records": [{"body": "x"}], "match_seq_num": "0"}'),
    ("POST", RECORDS, b"[]"),
    ("POST", "/v1/basins", b'{"basin": '),
    ("POST", "/v1/basins", b'{"basin": "test-basin-2", "config": {"stream_cipher": "rot13"}}'),
    ("POST", "/v1/streams", b'{"stream": 7}'),
    ("POST", "/v1/streams", b"null"),
    ("PUT", "/v1/streams/s", b'{"storage_class": "fast"}'),
    ("PUT", f"/v1/basins/{BASIN}", b"{oops"),
    ("PATCH", "/v1/streams/s", b'{"retention_policy": {"age": 1, "infinite": {}}}'),
    ("PATCH", "/v1/streams/s", b""),
    ("PATCH", f"/v1/basins/{BASIN}", b'{"create_stream_on_read": null}'),
    ("PATCH", f"/v1/basins/{BASIN}", b'{"create_stream_on_append": "yes"}'),
]


@pytest.mark.parametrize(("method", "path", "body"), MALFORMED)
async def test_malformed_json(lite: Lite, method: str, path: str, body: bytes) -> None:
    async with guarded(lite) as c:
        resp = await c.request(method, path, content=body, headers=JSON)
        assert_error(resp, 400, "bad_json")


@pytest.mark.parametrize("http2", HTTP)
async def test_malformed_json_h2c(lite: Lite, http2: bool) -> None:
    async with guarded(lite, http2=http2) as c:
        resp = await c.post(RECORDS, content=b'{"records": [{"body": "x"}', headers=JSON)
        assert_error(resp, 400, "bad_json")


async def test_long_fencing_token_in_json_is_bad_json(lite: Lite) -> None:
    # The JSON extractor rejects it, so it is bad_json rather than invalid
    # (docs/protocol.md#known-quirks).
    async with guarded(lite) as c:
        resp = await append(c, "s", [{"body": "x"}], fencing_token="f" * 37)
        assert_error(resp, 400, "bad_json")


async def test_zero_retention_age_is_invalid(lite: Lite) -> None:
    async with guarded(lite) as c:
        resp = await c.patch("/v1/streams/s", json={"retention_policy": {"age": 0}})
        assert_error(resp, 422, "invalid", "age must be greater than 0 seconds")
        assert (await c.get("/v1/streams/s")).json()["retention_policy"] == {"age": 604800}
        cfg = {"default_stream_config": {"retention_policy": {"age": 0}}}
        created = await c.post("/v1/basins", json={"basin": "test-basin-2", "config": cfg})
        assert_error(created, 422, "invalid", "age must be greater than 0 seconds")
        assert (await c.get("/v1/basins/test-basin-2")).status_code == 404


# --- content types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", RECORDS),
        ("POST", "/v1/basins"),
        ("POST", "/v1/streams"),
        ("PATCH", "/v1/streams/s"),
        ("PATCH", f"/v1/basins/{BASIN}"),
        ("PUT", "/v1/streams/s"),
    ],
)
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/xml", "text/json"])
async def test_wrong_or_missing_content_type(
    lite: Lite, method: str, path: str, content_type: str | None
) -> None:
    body = b'{"records":[{"body":"x"}],"basin":"test-basin-9","stream":"t"}'
    headers = {} if content_type is None else {"content-type": content_type}
    async with guarded(lite) as c:
        resp = await c.request(method, path, content=body, headers=headers)
        assert_error(resp, 400, "bad_json", CONTENT_TYPE_MSG)


async def test_json_suffix_and_parameters_are_json(lite: Lite) -> None:
    # Any application/*+json counts, parameters are ignored.
    async with guarded(lite) as c:
        for ctype in ("application/vnd.s2+json", "application/json; charset=utf-8"):
            resp = await c.post(
                RECORDS, content=b'{"records":[{"body":"ok"}]}', headers={"content-type": ctype}
            )
            assert resp.status_code == 200, resp.text
        assert (await tail(c, "s"))["seq_num"] == 4


# --- oversize batches and records --------------------------------------------------------------


def _json_batch(records: list[dict[str, Any]]) -> bytes:
    return json.dumps({"records": records}).encode()


def _proto_batch(records: list[Record]) -> bytes:
    return encode_append_input(AppendInput(records=tuple(records)))


OVERSIZE = [
    pytest.param([{"body": "x"}] * 1001, "record batch must not exceed 1000 records", id="1001"),
    pytest.param([], "record batch must not be empty", id="empty"),
    pytest.param(
        [{"body": "a" * (600 * 1024)}, {"body": "b" * (600 * 1024)}],
        "record batch must not exceed a metered size of 1 MiB",
        id="batch-over-1mib",
    ),
    pytest.param(
        [{"body": "a" * (MIB - 8 - 7)}] * 2,
        "record batch must not exceed a metered size of 1 MiB",
        id="two-just-under",
    ),
    pytest.param(
        [{"body": "a" * (MIB - 8 + 1)}],
        "record must have metered size less than 1 MiB",
        id="record-over-1mib",
    ),
    pytest.param(
        [{"headers": [["h", "v" * MIB]]}],
        "record must have metered size less than 1 MiB",
        id="header-over-1mib",
    ),
]


@pytest.mark.parametrize(("records", "message"), OVERSIZE)
async def test_oversize_json(lite: Lite, records: list[dict[str, Any]], message: str) -> None:
    async with guarded(lite, basin_config={"create_stream_on_append": True}) as c:
        resp = await c.post(RECORDS, content=_json_batch(records), headers=JSON)
        assert_error(resp, 422, "invalid", message)
        # Validated before the stream is looked up, so nothing is auto-created.
        missing = await c.post(
            "/v1/streams/nope/records", content=_json_batch(records), headers=JSON
        )
        assert_error(missing, 422, "invalid", message)
        assert [s["name"] for s in (await c.get("/v1/streams")).json()["streams"]] == ["s"]


async def test_oversize_protobuf_and_exact_limits(lite: Lite) -> None:
    async with guarded(lite) as c:
        big = [Record(body=b"x")] * 1001
        resp = await c.post(RECORDS, content=_proto_batch(big), headers={"content-type": PROTO})
        assert_error(resp, 422, "invalid", "record batch must not exceed 1000 records")
        one = [Record(body=b"a" * MIB)]
        resp = await c.post(RECORDS, content=_proto_batch(one), headers={"content-type": PROTO})
        assert_error(resp, 422, "invalid", "record must have metered size less than 1 MiB")
        # Exactly at the limits is fine: 1000 records, and one record of exactly 1 MiB metered.
        stream = "/v1/streams/limits/records"
        await c.post("/v1/streams", json={"stream": "limits"})
        ok = await c.post(stream, content=_json_batch([{"body": "x"}] * 1000), headers=JSON)
        assert ok.status_code == 200, ok.text
        exact = [Record(body=b"a" * (MIB - 8))]
        ok = await c.post(stream, content=_proto_batch(exact), headers={"content-type": PROTO})
        assert ok.status_code == 200, ok.text
        assert (await tail(c, "limits"))["seq_num"] == 1001
        assert (await c.delete("/v1/streams/limits")).status_code == 202


async def test_request_body_far_too_large(lite: Lite) -> None:
    async with guarded(lite) as c:
        body = b'{"records":[{"body":"' + b"a" * (9 * MIB) + b'"}]}'
        resp = await c.post(RECORDS, content=body, headers=JSON)
        assert 400 <= resp.status_code < 500
        assert resp.json()["code"] in ("invalid", "bad_json")


# --- command records --------------------------------------------------------------------------

COMMANDS = [
    pytest.param(
        [{"headers": [["", "trim"]], "body": "1234567"}],
        "invalid `trim` command: earliest sequence number to trim to was 7 bytes, must be 8",
        id="trim-7-bytes",
    ),
    pytest.param(
        [{"headers": [["", "trim"]]}],
        "invalid `trim` command: earliest sequence number to trim to was 0 bytes, must be 8",
        id="trim-empty",
    ),
    pytest.param(
        [{"headers": [["", "fence"]], "body": "f" * 37}],
        "invalid `fence` command: fencing token must not exceed 36 bytes in length",
        id="fence-37-bytes",
    ),
    pytest.param([{"headers": [["", "explode"]]}], "unknown command", id="unknown-command"),
    pytest.param([{"headers": [["", ""]]}], "unknown command", id="empty-op"),
    pytest.param(
        [{"headers": [["a", "1"], ["", "fence"]], "body": "t"}],
        "invalid header: empty name",
        id="empty-name-among-several",
    ),
    pytest.param(
        [{"body": "fine"}, {"headers": [["", "x"], ["", "y"]]}],
        "invalid header: empty name",
        id="two-empty-names-second-record",
    ),
]


@pytest.mark.parametrize(("records", "message"), COMMANDS)
async def test_invalid_command_records(
    lite: Lite, records: list[dict[str, Any]], message: str
) -> None:
    async with guarded(lite) as c:
        resp = await append(c, "s", records)
        assert_error(resp, 422, "invalid", message)
        # Nothing of the batch was applied: same tail, same fencing token.
        ok = await append(c, "s", [{"body": "probe"}], fencing_token="", match_seq_num=2)
        assert ok.status_code == 200


async def test_fence_with_invalid_utf8(lite: Lite) -> None:
    async with guarded(lite) as c:
        bad = base64.b64encode(b"\xff\xfe").decode()
        record = {"headers": [["", base64.b64encode(b"fence").decode()]], "body": bad}
        resp = await append(c, "s", [record], headers={"s2-format": "base64"})
        assert_error(resp, 422, "invalid", "invalid `fence` command: invalid UTF-8")
        proto = _proto_batch([Record(body=b"\xc3", headers=((b"", b"fence"),))])
        resp = await c.post(RECORDS, content=proto, headers={"content-type": PROTO})
        assert_error(resp, 422, "invalid", "invalid `fence` command: invalid UTF-8")


# --- base64 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        {"body": "not base64!"},
        {"body": "YWJj="},  # excess padding
        {"body": "YWJj=="},
        {"body": "YR=="},  # non-zero trailing bits
        {"body": "=YWJj"},
        {"body": "YWJ"},  # missing padding
        {"body": "YW Jj"},
        {"headers": [["@@", "YQ=="]]},
        {"headers": [["YQ==", "%%"]]},
    ],
)
async def test_invalid_base64(lite: Lite, record: dict[str, Any]) -> None:
    async with guarded(lite) as c:
        resp = await append(c, "s", [{"body": "YQ=="}, record], headers={"s2-format": "base64"})
        assert_error(resp, 422, "invalid", "invalid Base64 encoding")


# --- protobuf ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\xff\xff\xff", id="garbage"),
        pytest.param(b"\x0a\x05ab", id="truncated-record"),
        pytest.param(b"\x08", id="truncated-varint"),
        pytest.param(b"\x1a\x02\xff\xfe", id="fencing-token-not-utf8"),
        pytest.param(b"\x0f", id="bad-wire-type"),
    ],
)
@pytest.mark.parametrize("content_type", ["application/protobuf", "application/x-protobuf"])
async def test_invalid_protobuf(lite: Lite, body: bytes, content_type: str) -> None:
    async with guarded(lite) as c:
        # Errors are JSON even when protobuf is accepted.
        headers = {"content-type": content_type, "accept": content_type}
        resp = await c.post(RECORDS, content=body, headers=headers)
        assert_error(resp, 400, "bad_proto")


async def test_empty_protobuf_is_an_empty_batch(lite: Lite) -> None:
    async with guarded(lite) as c:
        resp = await c.post(RECORDS, content=b"", headers={"content-type": PROTO})
        assert_error(resp, 422, "invalid", "record batch must not be empty")


# --- compressed bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", b"definitely not gzip"),
        ("zstd", b"definitely not zstd"),
        ("gzip", gzip.compress(_json_batch([{"body": "x"}]))[:-4]),
        ("br", b"whatever"),
    ],
)
async def test_bad_content_encoding(lite: Lite, encoding: str, body: bytes) -> None:
    async with guarded(lite) as c:
        resp = await c.post(RECORDS, content=body, headers={**JSON, "content-encoding": encoding})
        assert_error(resp, 400, "bad_header")
