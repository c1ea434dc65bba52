"""Payload and body compression: round trips, limits, and every way compressed data can be bad."""

from __future__ import annotations

import gzip
import os
import tracemalloc
import zlib
from typing import cast

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from s2kit.wire._compress import (
    Compression,
    DecompressionError,
    UnsupportedEncodingError,
    compress,
    compress_body,
    decompress,
    decompress_body,
)

ZSTD, GZIP, NONE = Compression.ZSTD, Compression.GZIP, Compression.NONE
TEXT = b"the quick brown fox jumps over the lazy dog " * 100
MAGIC = b"\x28\xb5\x2f\xfd"


def unsized_zstd(data: bytes) -> bytes:
    """A zstd frame without a content size, as streaming encoders write it."""
    packed: bytes = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    return packed


def block_frame(block_type: int, size: int, content: bytes, *, declared: int | None) -> bytes:
    """A hand-made one-block zstd frame (RFC 8878 §3.1.1), single segment."""
    # With a size: single segment and a 1-byte content size. Without: a window descriptor
    # (exponent 3, a 2**13-byte window).
    head = MAGIC + (bytes([0x00, 0x18]) if declared is None else bytes([0x20, declared]))
    block = (1 | block_type << 1 | size << 3).to_bytes(3, "little")
    return head + block + content


def first_block_type(frame: bytes) -> int:
    start = zstandard.frame_header_size(frame)
    return (int.from_bytes(frame[start : start + 3], "little") >> 1) & 3


def skippable(payload: bytes) -> bytes:
    return (0x184D2A53).to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload


# --- round trips ------------------------------------------------------------------------------


@settings(deadline=None)
@given(data=st.binary(max_size=5000), compression=st.sampled_from(list(Compression)))
def test_round_trip(data: bytes, compression: Compression) -> None:
    packed = compress(data, compression)
    assert decompress(packed, compression, max_size=len(data)) == data


@pytest.mark.parametrize("compression", list(Compression))
def test_accepts_any_buffer(compression: Compression) -> None:
    packed = compress(bytearray(TEXT), compression)
    assert type(packed) is bytes
    out = decompress(memoryview(packed), compression, max_size=len(TEXT))
    assert type(out) is bytes
    assert out == TEXT


def test_none_is_identity_and_unchecked() -> None:
    assert compress(TEXT, NONE) == TEXT
    assert decompress(TEXT, NONE, max_size=0) == TEXT


def test_standard_containers() -> None:
    # gzip = an RFC 1952 member (magic 1f 8b, deflate), readable by the stdlib.
    packed = compress(TEXT, GZIP)
    assert packed[:3] == b"\x1f\x8b\x08"
    assert gzip.decompress(packed) == TEXT
    # zstd = a standard frame that declares its content size.
    packed = compress(TEXT, ZSTD)
    assert packed[:4] == MAGIC
    assert zstandard.frame_content_size(packed) == len(TEXT)


def test_unknown_algorithm() -> None:
    bogus = cast("Compression", 3)
    with pytest.raises(ValueError, match="unknown compression"):
        compress(b"x", bogus)
    with pytest.raises(ValueError, match="unknown compression"):
        decompress(b"x", bogus, max_size=10)


# --- size limit -------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [ZSTD, GZIP])
def test_exact_limit(compression: Compression) -> None:
    packed = compress(TEXT, compression)
    assert decompress(packed, compression, max_size=len(TEXT)) == TEXT
    with pytest.raises(DecompressionError, match=f"more than {len(TEXT) - 1} bytes"):
        decompress(packed, compression, max_size=len(TEXT) - 1)


def test_unsized_zstd_limit() -> None:
    packed = unsized_zstd(TEXT)
    assert decompress(packed, ZSTD, max_size=len(TEXT)) == TEXT
    # One byte over fits the budget + 1 output buffer: reported precisely.
    with pytest.raises(DecompressionError, match="decompresses to more than"):
        decompress(packed, ZSTD, max_size=len(TEXT) - 1)
    # Far over: zstd only says the buffer was too small.
    with pytest.raises(DecompressionError, match="corrupt or decompresses to more than 100"):
        decompress(packed, ZSTD, max_size=100)


def test_empty_payloads() -> None:
    for compression in (ZSTD, GZIP):
        assert decompress(compress(b"", compression), compression, max_size=0) == b""
    assert decompress(unsized_zstd(b""), ZSTD, max_size=0) == b""


@pytest.mark.parametrize(
    "bomb",
    [
        pytest.param(lambda d: compress(d, ZSTD), id="zstd-sized"),
        pytest.param(unsized_zstd, id="zstd-unsized"),
        pytest.param(lambda d: compress(d, GZIP), id="gzip"),
    ],
)
def test_bomb_is_refused_without_big_allocations(bomb: object) -> None:
    zeros = bytes(32 * 1024 * 1024)
    packed = bomb(zeros)  # type: ignore[operator]
    assert len(packed) < 64 * 1024
    compression = GZIP if packed[:2] == b"\x1f\x8b" else ZSTD
    del zeros
    tracemalloc.start()
    try:
        with pytest.raises(DecompressionError, match="more than"):
            decompress(packed, compression, max_size=1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


# --- exactly one frame or member -------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "compression"),
    [
        (compress(TEXT, ZSTD) + compress(b"tail", ZSTD), ZSTD),
        (unsized_zstd(TEXT) + unsized_zstd(b"tail"), ZSTD),
        (compress(b"", ZSTD) + compress(b"tail", ZSTD), ZSTD),
        (compress(TEXT, GZIP) + compress(b"tail", GZIP), GZIP),
    ],
)
def test_concatenation_is_refused(data: bytes, compression: Compression) -> None:
    with pytest.raises(DecompressionError, match=r"trailing bytes|unused data"):
        decompress(data, compression, max_size=10 * len(TEXT))


def test_checksummed_frame() -> None:
    checked = zstandard.ZstdCompressor(write_checksum=True).compress(TEXT)
    assert decompress(checked, ZSTD, max_size=len(TEXT)) == TEXT
    broken = bytearray(checked)
    broken[-1] ^= 0xFF
    with pytest.raises(DecompressionError, match="corrupt zstd"):
        decompress(bytes(broken), ZSTD, max_size=len(TEXT))


def test_block_kinds() -> None:
    raw = os.urandom(3000)
    assert first_block_type(compress(raw, ZSTD)) == 0  # incompressible: a raw block
    assert first_block_type(compress(TEXT, ZSTD)) == 2
    rle = block_frame(1, 200, b"x", declared=200)
    assert first_block_type(rle) == 1
    assert decompress(rle, ZSTD, max_size=200) == b"x" * 200
    assert decompress(block_frame(0, 3, b"abc", declared=None), ZSTD, max_size=3) == b"abc"


# --- corrupt and truncated data ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "corrupt or truncated zstd frame header"),
        (b"\x28\xb5", "corrupt or truncated zstd frame header"),
        (b"not zstd at all", "corrupt or truncated zstd frame header"),
        (MAGIC, "corrupt or truncated zstd frame header"),
        (MAGIC + b"\x20", "corrupt or truncated zstd frame header"),  # size byte missing
        (block_frame(0, 3, b"abc", declared=3)[:-1], "corrupt zstd"),  # block content cut
        (block_frame(0, 3, b"abc", declared=None)[:-1], "corrupt or decompresses"),
        (block_frame(3, 3, b"abc", declared=3), "corrupt zstd"),  # reserved block type
        (block_frame(0, 3, b"abc", declared=9), "corrupt zstd"),  # declared size is a lie
        (block_frame(0, 5, b"abcde", declared=0), "corrupt zstd"),  # declares 0, holds 5
        (block_frame(0, 0, b"", declared=0)[:-1], "truncated zstd"),  # declares 0, block cut
        (block_frame(0, 0, b"", declared=0) + b"j", "trailing bytes after the zstd frame"),
        (skippable(b"abcd"), "corrupt or decompresses"),  # no data frame at all
        (MAGIC + b"\x05\x00\x07\x01\x00\x00" + bytes(4), "corrupt"),  # needs dictionary 7
    ],
)
def test_bad_zstd(data: bytes, message: str) -> None:
    with pytest.raises(DecompressionError, match=message):
        decompress(data, ZSTD, max_size=1000)


def test_zstd_reserved_descriptor_bit() -> None:
    frame = bytearray(compress(TEXT, ZSTD))
    frame[4] |= 0x08  # RFC 8878 §3.1.1.1.1: reserved bit, must be zero
    with pytest.raises(DecompressionError, match="corrupt or truncated zstd frame header"):
        decompress(bytes(frame), ZSTD, max_size=len(TEXT))


def test_zstd_corrupt_block_content() -> None:
    frame = bytearray(compress(TEXT, ZSTD))
    start = zstandard.frame_header_size(frame) + 3
    frame[start : start + 8] = b"\xff" * 8
    with pytest.raises(DecompressionError, match="corrupt zstd"):
        decompress(bytes(frame), ZSTD, max_size=len(TEXT))


@pytest.mark.parametrize("packed", [compress(TEXT, ZSTD), unsized_zstd(TEXT)])
def test_zstd_truncation_and_trailing_bytes(packed: bytes) -> None:
    for cut in (1, 2, len(packed) // 2, len(packed) - 1):
        with pytest.raises(DecompressionError):
            decompress(packed[:cut], ZSTD, max_size=len(TEXT))
    for junk in (b"j", b"junk", b"junkjunk"):
        with pytest.raises(DecompressionError):
            decompress(packed + junk, ZSTD, max_size=len(TEXT))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated gzip"),
        (b"\x1f\x8b", "truncated gzip"),
        (compress(TEXT, GZIP)[:-1], "truncated gzip"),
        (b"definitely not gzip", "corrupt gzip"),
        (zlib.compress(TEXT), "corrupt gzip"),  # a zlib stream is not a gzip member
        (compress(TEXT, GZIP) + b"junk", "trailing bytes after the gzip member"),
    ],
)
def test_bad_gzip(data: bytes, message: str) -> None:
    with pytest.raises(DecompressionError, match=message):
        decompress(data, GZIP, max_size=len(TEXT))


def test_gzip_bad_crc() -> None:
    packed = bytearray(compress(TEXT, GZIP))
    packed[-8] ^= 0xFF  # RFC 1952 §2.3: CRC32 precedes ISIZE
    with pytest.raises(DecompressionError, match="corrupt gzip"):
        decompress(bytes(packed), GZIP, max_size=len(TEXT))


def test_errors_are_value_errors() -> None:
    assert issubclass(DecompressionError, ValueError)
    assert issubclass(UnsupportedEncodingError, ValueError)


# --- HTTP bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("coding", "compression"),
    [
        ("gzip", GZIP),
        (" GZip ", GZIP),
        ("x-gzip", GZIP),
        ("zstd", ZSTD),
        ("ZSTD", ZSTD),
        ("identity", NONE),
        ("", NONE),
    ],
)
def test_body_codings(coding: str, compression: Compression) -> None:
    body = compress_body(TEXT, coding)
    assert decompress(body, compression, max_size=len(TEXT)) == TEXT
    assert decompress_body(body, coding, len(TEXT)) == TEXT


def test_body_limit() -> None:
    with pytest.raises(DecompressionError):
        decompress_body(compress_body(TEXT, "zstd"), "zstd", len(TEXT) - 1)


@pytest.mark.parametrize("coding", ["br", "deflate", "gzip, zstd", "compress"])
def test_unsupported_body_codings(coding: str) -> None:
    with pytest.raises(UnsupportedEncodingError, match="unsupported content-encoding"):
        compress_body(TEXT, coding)
    with pytest.raises(UnsupportedEncodingError):
        decompress_body(TEXT, coding, 10**6)
