"""Strict input (lite under hostile clients): JSON nested too deep, lone surrogates, text that is
not UTF-8, names that only look valid, and integers in other scripts' digits.

Each is answered with the S2 error code of its place — ``bad_json`` for a body, ``bad_header``
for a header, ``bad_query`` for a query parameter, ``bad_path`` for a path segment — never a
500, and lite logs no traceback for any of them (``no_tracebacks``). ``guarded`` checks that the
server stays healthy and that the records accepted before are intact.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import pytest
from _client import BASIN, JSON, KEY, append, assert_error, guarded, read

if TYPE_CHECKING:
    from collections.abc import Iterator

    from s2kit.server import Lite

RECORDS = "/v1/streams/s/records"
DEEP = b"[" * 100_000
NESTED_129 = b'{"records":[{"body":"x"}],"pad":' + b"[" * 128 + b"]" * 128 + b"}"
NESTED_128 = b'{"records":[{"body":"x"}],"pad":' + b"[" * 127 + b"]" * 127 + b"}"


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Bad input is the client's problem: lite must not log an exception for it."""
    caplog.set_level(logging.DEBUG, logger="s2kit")
    yield
    failures = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not failures, [r.getMessage() for r in failures]


# --- JSON nested too deep ---------------------------------------------------------------------

JSON_BODIES = [
    ("POST", RECORDS),
    ("POST", "/v1/basins"),
    ("PUT", f"/v1/basins/{BASIN}"),
    ("PATCH", f"/v1/basins/{BASIN}"),
    ("POST", "/v1/streams"),
    ("PUT", "/v1/streams/s"),
    ("PATCH", "/v1/streams/s"),
]


@pytest.mark.parametrize(("method", "path"), JSON_BODIES)
@pytest.mark.parametrize("body", [DEEP, NESTED_129], ids=["100000", "129"])
async def test_json_body_nested_too_deep(lite: Lite, method: str, path: str, body: bytes) -> None:
    async with guarded(lite) as c:
        resp = await c.request(method, path, content=body, headers=JSON)
        msg = assert_error(resp, 400, "bad_json")["message"]
        assert "nested deeper than 128 levels" in msg


async def test_json_nested_128_deep_is_fine(lite: Lite) -> None:
    # The limit is serde_json's (s2-lite's parser): 128 levels pass, 129 do not.
    async with guarded(lite) as c:
        resp = await c.post(RECORDS, content=NESTED_128, headers=JSON)
        assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", RECORDS), ("GET", RECORDS), ("GET", f"{RECORDS}/tail")],
)
async def test_stream_config_header_nested_too_deep(lite: Lite, method: str, path: str) -> None:
    async with guarded(lite, basin_config={"create_stream_on_read": True}) as c:
        headers = {**JSON, "s2-stream-config": "[" * 7000}
        body = b'{"records":[{"body":"x"}]}' if method == "POST" else None
        resp = await c.request(method, path, content=body, headers=headers)
        body_ = assert_error(resp, 400, "bad_header")
        assert body_["message"].startswith("Invalid header `s2-stream-config`")


# --- lone surrogates and text that is not UTF-8 -----------------------------------------------

SURROGATE_BODIES = [
    (RECORDS, {}, b'{"records":[{"body":"\\ud800"}]}'),
    (RECORDS, {}, b'{"records":[{"body":"ok \\udfff"}]}'),
    (RECORDS, {}, b'{"records":[{"headers":[["\\ud800","v"]],"body":"x"}]}'),
    (RECORDS, {}, b'{"records":[{"headers":[["n","\\uDBFF"]],"body":"x"}]}'),
    (RECORDS, {}, b'{"records":[{"body":"x"}],"fencing_token":"\\ud800"}'),
    (RECORDS, {"s2-format": "base64"}, b'{"records":[{"body":"\\ud800AAA"}]}'),
    (RECORDS, {}, b'{"records":[{"body":"x"}],"\\ud800":1}'),
    ("/v1/streams", {}, b'{"stream":"\\ud800"}'),
    ("/v1/streams", {}, b'{"stream":"a\\udc80b"}'),
    ("/v1/basins", {}, b'{"basin":"\\ud800aaaaaaaaa"}'),
    # The same surrogate as raw (CESU-8) bytes, which json.loads of bytes lets through.
    (RECORDS, {}, b'{"records":[{"body":"\xed\xa0\x80"}]}'),
    ("/v1/streams", {}, b'{"stream":"\xed\xb2\x80"}'),
]


@pytest.mark.parametrize(("path", "headers", "body"), SURROGATE_BODIES)
async def test_lone_surrogate_in_json(
    lite: Lite, path: str, headers: dict[str, str], body: bytes
) -> None:
    async with guarded(lite) as c:
        resp = await c.post(path, content=body, headers={**JSON, **headers})
        assert_error(resp, 400, "bad_json")


async def test_surrogate_pairs_are_fine(lite: Lite) -> None:
    # An escaped pair is one code point (U+1F600): valid, stored as its UTF-8 bytes.
    async with guarded(lite) as c:
        resp = await append(c, "s", [{"body": "\U0001f600"}])
        assert resp.status_code == 200, resp.text
        raw = b'{"records":[{"body":"\\ud83d\\ude00"}]}'
        assert (await c.post(RECORDS, content=raw, headers=JSON)).status_code == 200
        got = await read(c, "s", seq_num=2)
        assert [r["body"] for r in got.json()["records"]] == ["\U0001f600"] * 2


@pytest.mark.parametrize(
    "body",
    [
        '{"records":[{"body":"x"}]}'.encode("utf-16"),
        '{"records":[{"body":"x"}]}'.encode("utf-32-le"),
        b'\xef\xbb\xbf{"records":[{"body":"x"}]}',  # a BOM
        b'{"records":[{"body":"x"}],"match_seq_num":NaN}',
        b'{"records":[{"body":"x"}],"pad":Infinity}',
        b'{"records":[{"body":"x"}],"pad":-Infinity}',
    ],
)
async def test_json_that_is_not_strict_json(lite: Lite, body: bytes) -> None:
    async with guarded(lite) as c:
        assert_error(await c.post(RECORDS, content=body, headers=JSON), 400, "bad_json")


@pytest.mark.parametrize(
    "value",
    ['{"storage_class":"\\ud800"}', '{"storage_class":"express","\\udfff":1}', '{"x":NaN}'],
)
async def test_stream_config_header_not_strict_json(lite: Lite, value: str) -> None:
    async with guarded(lite, basin_config={"create_stream_on_append": True}) as c:
        resp = await append(c, "fresh", [{"body": "x"}], headers={"s2-stream-config": value})
        assert_error(resp, 400, "bad_header")


# --- names: patterns match the whole name -----------------------------------------------------


@pytest.mark.parametrize("name", ["abcdefgh\n", "abcdefgh\r", "abcdefgh\n\n", "\nabcdefgh"])
async def test_basin_name_with_a_newline(lite: Lite, name: str) -> None:
    async with guarded(lite) as c:
        assert_error(await c.post("/v1/basins", json={"basin": name}), 400, "bad_json")
        path = "/v1/basins/" + name.replace("\n", "%0A").replace("\r", "%0D")
        assert_error(await c.put(path), 400, "bad_path")
        assert_error(await c.get(path), 400, "bad_path")
        names = [b["name"] for b in (await c.get("/v1/basins")).json()["basins"]]
        assert names == [BASIN]


@pytest.mark.parametrize("param", ["prefix", "start_after"])
@pytest.mark.parametrize("value", ["test%0A", "test-basin-1%0A", "%0A"])
async def test_basin_listing_prefix_with_a_newline(lite: Lite, param: str, value: str) -> None:
    async with guarded(lite) as c:
        assert_error(await c.get(f"/v1/basins?{param}={value}"), 400, "bad_query")


# --- integers: ASCII digits only; each parameter once; UTF-8 ----------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "seq_num=%EF%BC%91",  # FULLWIDTH DIGIT ONE: str.isdigit and int() take it
        "seq_num=%D9%A3",  # ARABIC-INDIC DIGIT THREE
        "seq_num=%C2%B2",  # SUPERSCRIPT TWO (isdigit, though int() refuses it)
        "seq_num=0&count=%EF%BC%91",
        "seq_num=0&wait=%F0%9D%9F%8F",  # MATHEMATICAL BOLD DIGIT ONE
        "tail_offset=%E0%A5%A7",  # DEVANAGARI DIGIT ONE
        "seq_num=1_0",
        "seq_num=+1",
        "seq_num=%201",
        "seq_num=0&seq_num=1",
        "seq_num=0&count=1&count=2",
        "seq_num=%FF",
        "seq_num=0&x=%C3%28",
    ],
)
async def test_read_query_strict(lite: Lite, query: str) -> None:
    async with guarded(lite) as c:
        assert_error(await c.get(f"{RECORDS}?{query}"), 400, "bad_query")
        sse = await c.get(f"{RECORDS}?{query}", headers={"accept": "text/event-stream"})
        assert_error(sse, 400, "bad_query")


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/basins", "limit=%EF%BC%95"),
        ("/v1/streams", "limit=%D9%A5"),
        ("/v1/basins", "limit=1&limit=2"),
        ("/v1/streams", "prefix=%FF"),
        ("/v1/streams", "prefix=a&prefix=b"),
    ],
)
async def test_list_query_strict(lite: Lite, path: str, query: str) -> None:
    async with guarded(lite) as c:
        assert_error(await c.get(f"{path}?{query}"), 400, "bad_query")


async def test_valid_queries_still_work(lite: Lite) -> None:
    async with guarded(lite) as c:
        got = await c.get(f"{RECORDS}?seq_num=00001&count=1&clamp=true&unknown=%C3%A9")
        assert [r["body"] for r in got.json()["records"]] == ["keep-1"]
        listed = await c.get("/v1/streams?prefix=s&limit=0010")
        assert [s["name"] for s in listed.json()["streams"]] == ["s"]


# --- path segments, headers -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/streams/%ED%A0%80",  # an encoded surrogate
        "/v1/streams/a%C3/records/tail",  # a truncated sequence
        "/v1/streams/%C0%AF",  # an overlong "/"
        "/v1/basins/%ED%A0%80aaaaaaa",
    ],
)
async def test_path_segment_not_utf8(lite: Lite, path: str) -> None:
    async with guarded(lite) as c:
        assert_error(await c.get(path), 400, "bad_path")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("last-event-id", "%EF%BC%91,1,1"),
        ("last-event-id", "1,1,１"),
        ("last-event-id", "1,1," + "9" * 5000),
    ],
)
async def test_bad_last_event_id(lite: Lite, name: str, value: str) -> None:
    async with guarded(lite) as c:
        headers = {"accept": "text/event-stream", name: value.encode()}
        assert_error(await c.get(f"{RECORDS}?seq_num=0", headers=headers), 400, "bad_header")


@pytest.mark.parametrize("key", [KEY[:-2] + "\u00e9=", "\uff11" * 44, KEY + "\u0085"])
async def test_bad_encryption_key(lite: Lite, key: str) -> None:
    async with guarded(lite, basin_config={"stream_cipher": "aegis-256"}) as c:
        headers = {"s2-encryption-key": key.encode()}
        assert_error(await c.get(f"{RECORDS}?seq_num=0", headers=headers), 400, "bad_header")


async def test_json_records_round_trip_unchanged(lite: Lite) -> None:
    # Strictness keeps valid input exactly as it was: escapes, control characters, brackets
    # inside strings, deep-looking text.
    bodies = ['[[[[{{{{"', 'a\\b\\\\c"d', "\u0000\u001f\u007f", "]" * 200 + "[" * 200, "é€😀"]
    async with guarded(lite) as c:
        resp = await append(c, "s", [{"body": b, "headers": [[b, b]]} for b in bodies])
        assert resp.status_code == 200, resp.text
        got = await read(c, "s", seq_num=2)
        records = got.json()["records"]
        assert [r["body"] for r in records] == bodies
        assert [r["headers"] for r in records] == [[[b, b]] for b in bodies]
        assert json.loads(got.content)["records"][0]["seq_num"] == 2
