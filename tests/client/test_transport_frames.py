"""The sans-IO GOAWAY filter: bytes in, pass-through segments and GOAWAY events out."""

from __future__ import annotations

import itertools
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s2kit.client._transport._frames import GoAwayFilter, GoAwayReceived
from s2kit.errors import RemoteProtocolError

MAX = 1 << 20


def frame(frame_type: int, payload: bytes = b"", *, stream_id: int = 0, flags: int = 0) -> bytes:
    header = len(payload).to_bytes(3, "big") + bytes([frame_type, flags])
    return header + stream_id.to_bytes(4, "big") + payload


def goaway(last_stream_id: int, error_code: int = 0, debug: bytes = b"") -> bytes:
    return frame(7, last_stream_id.to_bytes(4, "big") + error_code.to_bytes(4, "big") + debug)


def feed(chunks: list[bytes], *, reused: bool = False) -> list[bytes | GoAwayReceived]:
    """Feed the chunks; merge adjacent pass-through segments so splits do not show.

    ``reused``: as the connection does, pass each chunk as a view of one read buffer that
    the next read overwrites (the filter must copy whatever it keeps).
    """
    splitter = GoAwayFilter(max_frame_size=MAX)
    merged: list[bytes | GoAwayReceived] = []
    buffer = bytearray(max((len(c) for c in chunks), default=0))
    for chunk in chunks:
        data: bytes | memoryview = chunk
        if reused:
            buffer[:] = b"\xee" * len(buffer)  # the previous read is gone
            buffer[: len(chunk)] = chunk
            data = memoryview(buffer)[: len(chunk)]
        for item in splitter.receive(data):
            if isinstance(item, GoAwayReceived):
                merged.append(item)
            elif merged and isinstance(merged[-1], bytes):
                merged[-1] += bytes(item)
            else:
                merged.append(bytes(item))
    return merged


SETTINGS = frame(4, b"\x00\x03\x00\x00\x00\x64")
DATA = frame(0, b"hello", stream_id=1, flags=1)
PING = frame(6, b"12345678")


def test_whole_frames_without_goaway_pass_through_uncopied() -> None:
    data = SETTINGS + DATA + PING
    out = GoAwayFilter(max_frame_size=MAX).receive(data)
    assert len(out) == 1
    assert out[0] is data


def test_goaway_is_taken_out_and_decoded_in_stream_order() -> None:
    data = SETTINGS + goaway(3, 0x2, b"bye") + DATA
    assert feed([data]) == [
        SETTINGS,
        GoAwayReceived(last_stream_id=3, error_code=0x2, debug_data=b"bye"),
        DATA,
    ]


def test_goaway_reserved_bit_is_ignored() -> None:
    payload = (0x8000_0005).to_bytes(4, "big") + bytes(4)
    assert feed([frame(7, payload)]) == [
        GoAwayReceived(last_stream_id=5, error_code=0, debug_data=b"")
    ]


def test_byte_by_byte_gives_the_same_result() -> None:
    data = DATA + goaway(1) + PING + goaway(0, 0xB, b"x" * 40) + SETTINGS
    expected = feed([data])
    assert feed([data[i : i + 1] for i in range(len(data))]) == expected
    assert feed([data[i : i + 1] for i in range(len(data))], reused=True) == expected
    assert expected == [
        DATA,
        GoAwayReceived(last_stream_id=1, error_code=0, debug_data=b""),
        PING,
        GoAwayReceived(last_stream_id=0, error_code=0xB, debug_data=b"x" * 40),
        SETTINGS,
    ]


def segments(items: list[bytes | memoryview | GoAwayReceived]) -> list[bytes]:
    assert not any(isinstance(item, GoAwayReceived) for item in items)
    return [bytes(item) for item in items if not isinstance(item, GoAwayReceived)]


def test_split_header_is_held_back_until_its_type_is_known() -> None:
    splitter = GoAwayFilter(max_frame_size=MAX)
    assert segments(splitter.receive(DATA + goaway(1)[:4])) == [DATA]
    assert splitter.receive(goaway(1)[4:]) == [
        GoAwayReceived(last_stream_id=1, error_code=0, debug_data=b"")
    ]
    assert splitter.receive(PING[:3]) == []
    assert segments(splitter.receive(PING[3:])) == [PING[:9], PING[9:]]


def test_large_frame_split_over_reads_passes_each_read_uncopied() -> None:
    big = frame(0, bytes(range(256)) * 64, stream_id=1)
    head, rest = big[:100], big[100:]
    splitter = GoAwayFilter(max_frame_size=MAX)
    first = splitter.receive(head)
    second = splitter.receive(rest)
    assert first == [head]
    assert first[0] is head
    assert second == [rest]
    assert second[0] is rest


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (frame(7, bytes(8), stream_id=1), "stream 1"),
        (frame(7, bytes(4)), "bad length 4"),
        (frame(7, bytes(MAX + 1)), f"bad length {MAX + 1}"),
    ],
)
def test_malformed_goaway_is_a_remote_protocol_error(raw: bytes, match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        GoAwayFilter(max_frame_size=MAX).receive(raw)


def test_module_is_sans_io() -> None:
    module = sys.modules[GoAwayFilter.__module__]
    assert "asyncio" not in vars(module)
    assert "h2" not in vars(module)


_frames = st.one_of(
    st.builds(
        lambda t, p, s: frame(t, p, stream_id=s),
        st.sampled_from([0, 1, 3, 4, 6, 8, 0x20]),
        st.binary(max_size=40),
        st.integers(0, 2**31 - 1),
    ),
    st.builds(goaway, st.integers(0, 2**31 - 1), st.integers(0, 2**32 - 1), st.binary(max_size=20)),
)


@given(
    frames=st.lists(_frames, max_size=12),
    cuts=st.lists(st.integers(0, 2000), max_size=8),
    reused=st.booleans(),
)
def test_any_split_yields_the_frames_in_order(
    frames: list[bytes], cuts: list[int], reused: bool
) -> None:
    data = b"".join(frames)
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    expected: list[bytes | GoAwayReceived] = []
    for raw in frames:
        if raw[3] == 7:
            expected.append(
                GoAwayReceived(
                    last_stream_id=int.from_bytes(raw[9:13], "big") & 0x7FFF_FFFF,
                    error_code=int.from_bytes(raw[13:17], "big"),
                    debug_data=raw[17:],
                )
            )
        elif expected and isinstance(expected[-1], bytes):
            expected[-1] += raw
        else:
            expected.append(raw)
    assert feed(chunks, reused=reused) == expected
