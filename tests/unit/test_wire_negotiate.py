"""Content negotiation: media types, Accept-Encoding, s2-format and Last-Event-ID."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s2kit.wire._compress import Compression
from s2kit.wire._negotiate import (
    http_encoding_from_accept_encoding,
    is_json,
    is_protobuf,
    is_s2s,
    is_sse,
    parse_last_event_id,
    parse_media_type,
    parse_s2_format,
    s2s_compression_from_accept_encoding,
)
from s2kit.wire._sse import format_event_id

U64_MAX = 2**64 - 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ("", "")),
        ("", ("", "")),
        ("application/json", ("application", "json")),
        ("Application/JSON; charset=utf-8", ("application", "json")),
        (" text/event-stream , application/json", ("text", "event-stream")),
        ("s2s/proto;q=0.5", ("s2s", "proto")),
        ("*/*", ("*", "*")),
        ("garbage", ("", "")),
        (";charset=utf-8", ("", "")),
    ],
)
def test_parse_media_type(header: str | None, expected: tuple[str, str]) -> None:
    assert parse_media_type(header) == expected


@pytest.mark.parametrize(
    ("header", "json", "protobuf", "s2s", "sse"),
    [
        ("application/json", True, False, False, False),
        ("application/vnd.s2+json; v=1", True, False, False, False),
        ("application/jsonx", False, False, False, False),
        ("text/json", False, False, False, False),
        ("application/protobuf", False, True, False, False),
        ("APPLICATION/X-PROTOBUF", False, True, False, False),
        ("application/x-protobuf-lite", False, False, False, False),
        ("s2s/proto", False, False, True, False),
        ("S2S/Proto", False, False, True, False),
        ("s2s/json", False, False, False, False),
        ("text/event-stream", False, False, False, True),
        ("text/plain, text/event-stream", False, False, False, False),  # first entry only
        ("application/protobuf, application/json", False, True, False, False),
        (None, False, False, False, False),
    ],
)
def test_media_type_predicates(
    header: str | None, json: bool, protobuf: bool, s2s: bool, sse: bool
) -> None:
    assert is_json(header) is json
    assert is_protobuf(header) is protobuf
    assert is_s2s(header) is s2s
    assert is_sse(header) is sse


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], Compression.NONE),
        ([""], Compression.NONE),
        (["identity"], Compression.NONE),
        (["br, deflate"], Compression.NONE),
        (["gzip"], Compression.GZIP),
        (["gzip, zstd"], Compression.ZSTD),
        (["GZIP;q=1.0"], Compression.GZIP),
        (["zstd;q=0"], Compression.ZSTD),  # parameters are ignored, even q=0
        (["gzip;q=0, br"], Compression.GZIP),
        (["gzip", "ZStd ; q=0.1"], Compression.ZSTD),  # every header line counts
        (["x-gzip"], Compression.NONE),
    ],
)
def test_s2s_compression(values: list[str], expected: Compression) -> None:
    assert s2s_compression_from_accept_encoding(values) is expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        (["identity, br"], None),
        (["gzip"], "gzip"),
        (["gzip;q=0.5, zstd;q=0.1"], "zstd"),  # zstd preferred whatever the q-values
        (["zstd;q=0, gzip"], "gzip"),
        (["zstd;q=0.000", "gzip;q=0.0"], None),
        (["zstd;Q=0."], None),
        (["zstd;q=1", "zstd;q=0"], None),  # refused anywhere = refused
        (["ZSTD ;level=3; q=1.000"], "zstd"),
        (["zstd;q=0.001"], "zstd"),
        (["zstd;q=1.5"], None),  # malformed q: treated as a refusal
        (["zstd;q=0.0001"], None),
        (["zstd;q=abc"], None),
        (["zstd;q="], None),
        (["gzip;foo=bar"], "gzip"),
        (["*"], None),  # a wildcard is not expanded: identity is always safe
    ],
)
def test_http_encoding(values: list[str], expected: str | None) -> None:
    assert http_encoding_from_accept_encoding(values) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "raw"),
        ("raw", "raw"),
        ("json", "raw"),
        (" base64 ", "base64"),
        ("json-binsafe", "base64"),
    ],
)
def test_parse_s2_format(value: str | None, expected: str) -> None:
    assert parse_s2_format(value) == expected


@pytest.mark.parametrize("value", ["", "RAW", "Base64", "hex", "raw,base64"])
def test_parse_s2_format_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="invalid s2-format"):
        parse_s2_format(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0,0,0", (0, 0, 0)),
        ("41,7,1024", (41, 7, 1024)),
        (" 1,2,3 ", (1, 2, 3)),
        (f"{U64_MAX},{U64_MAX},{U64_MAX}", (U64_MAX, U64_MAX, U64_MAX)),
    ],
)
def test_parse_last_event_id(value: str, expected: tuple[int, int, int]) -> None:
    assert parse_last_event_id(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "expected seq_num,count,bytes"),
        ("1,2", "expected seq_num,count,bytes"),
        ("1,2,3,4", "expected seq_num,count,bytes"),
        ("1,,3", "is not a number"),
        ("1,-2,3", "is not a number"),
        ("1,+2,3", "is not a number"),
        ("1, 2,3", "is not a number"),
        ("1_0,2,3", "is not a number"),
        ("1,2,\uff13", "is not a number"),  # fullwidth digit three
        ("1,2,0x3", "is not a number"),
        (f"1,2,{U64_MAX + 1}", "does not fit in 64 bits"),
    ],
)
def test_parse_last_event_id_rejects(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_last_event_id(value)


@given(st.tuples(*[st.integers(0, U64_MAX)] * 3))
def test_event_id_round_trip(numbers: tuple[int, int, int]) -> None:
    assert parse_last_event_id(format_event_id(*numbers)) == numbers
