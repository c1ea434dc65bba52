"""S2S framing: bytes in, events out; every malformed frame; round trips in any chunking."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s2kit.errors import FrameError, UsageError
from s2kit.wire._compress import Compression, DecompressionError, compress
from s2kit.wire._s2s import (
    COMPRESSION_THRESHOLD,
    MAX_FRAME_SIZE,
    MAX_MESSAGE_SIZE,
    FrameDecoder,
    FrameFlag,
    Message,
    Terminal,
    encode_message,
    encode_message_chunks,
    encode_messages,
    encode_terminal,
)

ZSTD, GZIP, NONE = Compression.ZSTD, Compression.GZIP, Compression.NONE
ERROR_BODY = b'{"code":"bad_frame","message":"nope"}'


def frame(payload: bytes = b"", flag: int = 0, *, length: int | None = None) -> bytes:
    """A frame built by hand: 3-byte length (flag + payload unless given), flag, payload."""
    size = len(payload) + 1 if length is None else length
    return size.to_bytes(3, "big") + bytes([flag]) + payload


def compressible(size: int) -> bytes:
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


def decode(data: bytes, *, chunk: int | None = None) -> list[Message | Terminal]:
    decoder = FrameDecoder()
    events: list[Message | Terminal] = []
    step = chunk or max(len(data), 1)
    for start in range(0, len(data), step):
        decoder.receive_data(data[start : start + step])
        events.extend(decoder)
    decoder.end_of_stream()
    return events


def decode_error(data: bytes) -> FrameError:
    with pytest.raises(FrameError) as info:
        decode(data)
    return info.value


# --- encoding ---------------------------------------------------------------------------------


def test_encode_small_message() -> None:
    assert encode_message(b"hi", ZSTD) == b"\x00\x00\x03\x00hi"
    assert encode_message(b"", NONE) == b"\x00\x00\x01\x00"


@pytest.mark.parametrize(("compression", "cc"), [(ZSTD, 0x20), (GZIP, 0x40)])
def test_compression_threshold(compression: Compression, cc: int) -> None:
    below = compressible(COMPRESSION_THRESHOLD - 1)
    assert encode_message(below, compression) == frame(below)
    at = compressible(COMPRESSION_THRESHOLD)
    encoded = encode_message(at, compression)
    assert encoded[3] == cc
    assert encoded[4:] == compress(at, compression)
    assert int.from_bytes(encoded[:3], "big") == len(encoded) - 3


def test_no_compression_never_compresses() -> None:
    payload = compressible(10_000)
    assert encode_message(payload, NONE) == frame(payload)


def test_incompressible_message_is_sent_plain() -> None:
    payload = os.urandom(4096)
    assert encode_message(payload, ZSTD) == frame(payload)


def test_reconnect_bit() -> None:
    assert encode_message(b"x", NONE, reconnect_advised=True)[3] == 0x10
    assert encode_message(compressible(2000), GZIP, reconnect_advised=True)[3] == 0x50


def test_message_size_limit() -> None:
    largest = bytes(MAX_MESSAGE_SIZE)
    encoded = encode_message(largest, NONE)
    assert int.from_bytes(encoded[:3], "big") == MAX_FRAME_SIZE
    assert decode(encoded) == [Message(payload=largest)]
    assert decode(encode_message(largest, ZSTD)) == [Message(payload=largest)]
    with pytest.raises(UsageError, match="exceeds"):
        encode_message(bytes(MAX_MESSAGE_SIZE + 1), ZSTD)
    with pytest.raises(UsageError):
        encode_messages([b"ok", bytes(MAX_MESSAGE_SIZE + 1)], NONE)


def test_encode_messages_coalesces() -> None:
    payloads: list[bytes | bytearray | memoryview] = [
        b"a",
        compressible(3000),
        bytearray(b"b"),
        memoryview(b"c"),
    ]
    expected = b"".join(encode_message(p, GZIP, reconnect_advised=True) for p in payloads)
    assert encode_messages(payloads, GZIP, reconnect_advised=True) == expected
    assert encode_messages([], ZSTD) == b""


def test_encode_terminal() -> None:
    assert encode_terminal(400, ERROR_BODY) == frame(b"\x01\x90" + ERROR_BODY, 0x80)
    assert encode_terminal(503, b"") == b"\x00\x00\x03\x80\x01\xf7"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (-1, b"{}", "16 bits"),
        (65536, b"{}", "16 bits"),
        (500, b"\xff", "not UTF-8"),
        (500, bytes(MAX_FRAME_SIZE - 2), "does not fit"),
    ],
)
def test_encode_terminal_rejects(status: int, body: bytes, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        encode_terminal(status, body)


def test_flag_constants() -> None:
    bits = {flag.name: int(flag) for flag in FrameFlag}
    assert bits == {
        "TERMINAL": 0x80,
        "COMPRESSION_MASK": 0x60,
        "RECONNECT_ADVISED": 0x10,
        "RESERVED_MASK": 0x0F,
    }


# --- decoding ---------------------------------------------------------------------------------


def test_decode_plain_and_flags() -> None:
    data = frame(b"one") + frame(b"two", 0x10) + frame(b"three", 0x0F) + frame(b"", 0x1F)
    assert decode(data) == [
        Message(payload=b"one"),
        Message(payload=b"two", reconnect_advised=True),
        Message(payload=b"three"),  # reserved bits are ignored
        Message(payload=b"", reconnect_advised=True),
    ]


@pytest.mark.parametrize(("compression", "cc"), [(ZSTD, 0x20), (GZIP, 0x40)])
def test_decode_compressed(compression: Compression, cc: int) -> None:
    payload = compressible(5000)
    # Receivers honour the flag whatever the size, so a tiny compressed message is fine too.
    data = frame(compress(payload, compression), cc | 0x1F) + frame(compress(b"x", compression), cc)
    assert decode(data) == [
        Message(payload=payload, reconnect_advised=True),
        Message(payload=b"x"),
    ]


def test_decode_terminal() -> None:
    events = decode(frame(b"x") + encode_terminal(412, b'{"seq_num_mismatch":5}'))
    assert events == [Message(payload=b"x"), Terminal(status=412, body='{"seq_num_mismatch":5}')]


@pytest.mark.parametrize("flag", [0x80, 0x81, 0x90, 0xE0, 0xFF])
def test_terminal_decided_by_bit_7_alone(flag: int) -> None:
    # CC = 11 would be an error on a regular frame; on a terminal it is not examined.
    assert decode(frame(b"\x01\xf4{}", flag)) == [Terminal(status=500, body="{}")]


def test_terminal_with_empty_body() -> None:
    assert decode(frame(b"\x01\xf4", 0x80)) == [Terminal(status=500, body="")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (frame(length=0), "empty frame"),
        (b"\x00\x00\x00", "empty frame"),  # judged as soon as the length is known
        (frame(b"x") + b"\x00\x00\x00\x00", "empty frame"),
        ((MAX_FRAME_SIZE + 1).to_bytes(3, "big"), "exceeds the limit"),
        (b"\xff\xff\xff\x00", "exceeds the limit"),
        (frame(b"x", 0x60), "invalid compression code"),
        (frame(b"x", 0x7F), "invalid compression code"),
        (frame(b"", 0x80), "0 payload bytes"),
        (frame(b"\x01", 0x80), "1 payload bytes"),
        (frame(b"\x01\x90\xff\xfe", 0x80), "not UTF-8"),
        (frame(b"not zstd", 0x20), "bad zstd frame payload"),
        (frame(b"not gzip", 0x40), "bad gzip frame payload"),
        (frame(b"", 0x20), "bad zstd frame payload"),
        (frame(compress(b"x" * 100, ZSTD)[:-2], 0x20), "bad zstd frame payload"),
        (frame(compress(b"x" * 100, GZIP)[:-2], 0x40), "bad gzip frame payload"),
        (frame(b"x")[:-1], "truncated frame"),
        (b"\x00", "truncated frame"),
        (b"\x00\x00", "truncated frame"),
        (b"\x00\x00\x05", "truncated frame"),
        (frame(b"x") + b"\x00\x00\x05\x00ab", "truncated frame: the body ended 6 bytes"),
        (encode_terminal(500, b"{}") + frame(b"x"), "data after the terminal frame"),
    ],
)
def test_malformed(data: bytes, message: str) -> None:
    assert message in str(decode_error(data))


def test_compressed_payload_errors_keep_their_cause() -> None:
    error = decode_error(frame(b"junk", 0x40))
    assert isinstance(error.__cause__, DecompressionError)
    error = decode_error(frame(b"\x01\x90\xff", 0x80))
    assert isinstance(error.__cause__, UnicodeDecodeError)


@pytest.mark.parametrize(("compression", "cc"), [(ZSTD, 0x20), (GZIP, 0x40)])
def test_decompression_limit(compression: Compression, cc: int) -> None:
    largest = bytes(MAX_MESSAGE_SIZE)
    assert decode(frame(compress(largest, compression), cc)) == [Message(payload=largest)]
    bomb = frame(compress(bytes(MAX_MESSAGE_SIZE + 1), compression), cc)
    assert "more than" in str(decode_error(bomb))


def test_oversize_frame_is_refused_before_its_payload_arrives() -> None:
    decoder = FrameDecoder(max_frame_size=100)
    decoder.receive_data(frame(bytes(99)))
    assert list(decoder) == [Message(payload=bytes(99))]
    decoder.receive_data(frame(length=101))
    with pytest.raises(FrameError, match="101 exceeds the limit of 100"):
        decoder.next_event()


def test_buffer_limit() -> None:
    decoder = FrameDecoder(max_frame_size=10, max_buffer_size=20)
    decoder.receive_data(bytes(5) + b"\x00" * 15)  # exactly the limit: fine (not drained)
    with pytest.raises(FrameError, match="21 undecoded bytes buffered, over the limit of 20"):
        decoder.receive_data(b"\x00")


def test_consumed_frames_free_buffer_space() -> None:
    decoder = FrameDecoder(max_frame_size=10, max_buffer_size=20)
    for _ in range(100):
        decoder.receive_data(frame(b"123456789") + frame(b"ab"))
        assert list(decoder) == [Message(payload=b"123456789"), Message(payload=b"ab")]
    decoder.end_of_stream()


@pytest.mark.parametrize(
    "kwargs",
    [{"max_frame_size": 0}, {"max_frame_size": MAX_FRAME_SIZE + 1}, {"max_buffer_size": 10}],
)
def test_decoder_limits_are_validated(kwargs: dict[str, int]) -> None:
    with pytest.raises(UsageError):
        FrameDecoder(**kwargs)


def test_partial_frames_wait_for_more() -> None:
    decoder = FrameDecoder()
    data = frame(b"hello")
    for byte in data[:-1]:
        decoder.receive_data(bytes([byte]))
        assert decoder.next_event() is None
    decoder.receive_data(data[-1:])
    assert decoder.next_event() == Message(payload=b"hello")
    assert decoder.next_event() is None


def test_empty_data_is_ignored_even_after_terminal() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(b"")
    decoder.receive_data(encode_terminal(500, b"{}"))
    assert list(decoder) == [Terminal(status=500, body="{}")]
    decoder.receive_data(b"")
    assert decoder.next_event() is None
    decoder.end_of_stream()
    with pytest.raises(FrameError, match="data after the terminal frame"):
        decoder.receive_data(b"\x00")


def test_accepts_any_buffer() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(bytearray(frame(b"a")))
    decoder.receive_data(memoryview(frame(b"b")))
    assert list(decoder) == [Message(payload=b"a"), Message(payload=b"b")]


def test_broken_decoder_stays_broken() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(frame(b"ok") + frame(length=0) + frame(b"never"))
    assert decoder.next_event() == Message(payload=b"ok")
    with pytest.raises(FrameError) as first:
        decoder.next_event()
    for call in (decoder.next_event, decoder.end_of_stream, lambda: decoder.receive_data(b"x")):
        with pytest.raises(FrameError) as again:
            call()
        assert again.value is first.value


def test_many_small_frames_in_one_chunk() -> None:
    payloads = [i.to_bytes(4, "big") for i in range(20_000)]
    assert decode(encode_messages(payloads, ZSTD)) == [Message(payload=p) for p in payloads]


# --- round trips ------------------------------------------------------------------------------

payload_st = st.one_of(
    st.binary(max_size=2048),
    # Repetitive payloads on both sides of the threshold, so compression really happens.
    st.builds(
        lambda unit, n: (unit * n)[: 64 * 1024],
        st.binary(min_size=1, max_size=8),
        st.integers(0, 800),
    ),
)
message_st = st.tuples(payload_st, st.sampled_from(list(Compression)), st.booleans())
terminal_st = st.none() | st.tuples(st.integers(0, 0xFFFF), st.text(max_size=200))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=st.lists(message_st, max_size=12),
    terminal=terminal_st,
    cuts=st.lists(st.integers(0, 200_000), max_size=10),
    drain_each=st.booleans(),
)
def test_round_trip_in_any_chunking(
    messages: list[tuple[bytes, Compression, bool]],
    terminal: tuple[int, str] | None,
    cuts: list[int],
    drain_each: bool,
) -> None:
    stream = b"".join(encode_message(p, c, reconnect_advised=r) for p, c, r in messages)
    expected: list[Message | Terminal] = [
        Message(payload=p, reconnect_advised=r) for p, _, r in messages
    ]
    if terminal is not None:
        stream += encode_terminal(terminal[0], terminal[1].encode())
        expected.append(Terminal(status=terminal[0], body=terminal[1]))
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    decoder = FrameDecoder()
    events: list[Message | Terminal] = []
    for start, end in itertools.pairwise(points):
        decoder.receive_data(stream[start:end])
        if drain_each:  # else frames span several buffered chunks when drained
            events.extend(decoder)
    events.extend(decoder)
    decoder.end_of_stream()
    assert events == expected


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 1000])
def test_byte_by_byte_and_small_chunks(chunk: int) -> None:
    payloads = [b"", b"a", b"bc" * 700, b"x" * 70_000]
    stream = b"".join(encode_message(p, NONE) for p in payloads) + encode_terminal(503, b"{}")
    expected = [*(Message(payload=p) for p in payloads), Terminal(status=503, body="{}")]
    assert decode(stream, chunk=chunk) == expected


@given(payloads=st.lists(payload_st, max_size=8), compression=st.sampled_from(list(Compression)))
@settings(deadline=None)
def test_encode_messages_round_trip(payloads: list[bytes], compression: Compression) -> None:
    assert decode(encode_messages(payloads, compression), chunk=7) == [
        Message(payload=p) for p in payloads
    ]


# --- sans-IO ----------------------------------------------------------------------------------


def test_wire_codecs_do_not_import_io_modules() -> None:
    # Style habit 3: wire/ is sans-IO. A fresh interpreter, so other tests' imports don't count.
    code = (
        "import sys\n"
        "import s2kit.wire._s2s, s2kit.wire._sse, s2kit.wire._compress, s2kit.wire._negotiate\n"
        "print(sorted({'asyncio', 'h2', 'selectors', 'socket', 'ssl'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


@given(chunks=st.lists(payload_st, max_size=6), compression=st.sampled_from(list(Compression)))
@settings(deadline=None)
def test_encode_message_chunks_is_encode_message_of_the_join(
    chunks: list[bytes], compression: Compression
) -> None:
    assert encode_message_chunks(list(chunks), compression) == encode_message(
        b"".join(chunks), compression
    )


def test_encode_message_chunks_refuses_an_oversized_message() -> None:
    with pytest.raises(UsageError):
        encode_message_chunks([b"x" * MAX_MESSAGE_SIZE, b"y"], NONE)
