"""LeanFrameBuffer yields exactly what h2's FrameBuffer yields, in any chunking, and fails the
same way on bad frames (only earlier for an oversized one)."""

from __future__ import annotations

import itertools

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from h2.exceptions import FrameTooLargeError
from h2.frame_buffer import FrameBuffer
from hyperframe import frame as hf
from hypothesis import given
from hypothesis import strategies as st

from s2kit._h2fast import LeanFrameBuffer, new_connection

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX = 1 << 14


def _data(stream: int, body: bytes, pad: int, end: bool) -> bytes:
    f = hf.DataFrame(stream, body)
    if pad:
        f.flags.add("PADDED")
        f.pad_length = pad
    if end:
        f.flags.add("END_STREAM")
    return f.serialize()


def _header_block(stream: int, block: bytes, pieces: int) -> bytes:
    size = max(1, len(block) // pieces)
    parts = [block[i : i + size] for i in range(0, len(block), size)] or [b""]
    first = hf.HeadersFrame(stream, parts[0])
    out = []
    if len(parts) == 1:
        first.flags.add("END_HEADERS")
    out.append(first.serialize())
    for i, part in enumerate(parts[1:], 1):
        cont = hf.ContinuationFrame(stream, part)
        if i == len(parts) - 1:
            cont.flags.add("END_HEADERS")
        out.append(cont.serialize())
    return b"".join(out)


streams = st.integers(1, 2**31 - 1)
frames = st.one_of(
    st.builds(_data, streams, st.binary(max_size=3000), st.integers(0, 255), st.booleans()).filter(
        lambda b: len(b) - 9 <= MAX
    ),
    st.builds(_header_block, streams, st.binary(min_size=1, max_size=400), st.integers(1, 4)),
    st.builds(lambda v: hf.PingFrame(0, v).serialize(), st.binary(min_size=8, max_size=8)),
    st.builds(lambda n: hf.WindowUpdateFrame(0, n).serialize(), st.integers(1, 2**31 - 1)),
    st.builds(
        lambda s: hf.SettingsFrame(0, {hf.SettingsFrame.MAX_FRAME_SIZE: s}).serialize(),
        st.integers(MAX, 2**24 - 1),
    ),
    st.builds(lambda d: hf.GoAwayFrame(0, 5, 0, d).serialize(), st.binary(max_size=50)),
    st.builds(
        lambda t, b: b"".join([len(b).to_bytes(3, "big"), bytes([t, 0]), b"\0\0\0\1", b]),
        st.integers(0x20, 0xFF),
        st.binary(max_size=40),
    ),  # extension frames of unknown types
)


def _describe(f: hf.Frame) -> tuple[object, ...]:
    body = getattr(f, "data", None) or getattr(f, "body", None) or getattr(f, "opaque_data", None)
    return (type(f).__name__, f.stream_id, sorted(f.flags), body, f.serialize())


def _feed(buf: FrameBuffer, chunks: list[bytes], reuse: bool = False) -> list[tuple[object, ...]]:
    """Frames of ``chunks`` fed in turn; with ``reuse``, each is passed as a view of one
    buffer overwritten after it was parsed (the client's reads land in one reused buffer)."""
    buf.max_frame_size = MAX
    out = []
    shared = bytearray(max(map(len, chunks), default=0))
    for chunk in chunks:
        if reuse:
            shared[: len(chunk)] = chunk
            buf.add_data(memoryview(shared)[: len(chunk)])
        else:
            buf.add_data(chunk)
        out.extend(_describe(f) for f in buf)
        shared[:] = b"\xaa" * len(shared)
    return out


@given(
    st.lists(frames, max_size=12),
    st.lists(st.integers(0, 40_000), max_size=8),
    st.booleans(),
    st.booleans(),
)
def test_same_frames_as_h2_in_any_chunking(
    encoded: list[bytes], cuts: list[int], server: bool, reuse: bool
) -> None:
    stream = (PREFACE if server else b"") + b"".join(encoded)
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
    ours = _feed(LeanFrameBuffer(server=server), chunks, reuse)
    assert ours == _feed(FrameBuffer(server=server), chunks)
    assert len(ours) == len(encoded)


def test_an_oversized_frame_is_refused_at_its_header() -> None:
    buf = LeanFrameBuffer()
    buf.max_frame_size = MAX
    buf.add_data((MAX + 1).to_bytes(3, "big") + b"\0\0")  # DATA, no flags
    buf.add_data(b"\0\0\0\1")  # stream 1: the header is whole, and none of the body came
    with pytest.raises(FrameTooLargeError):
        next(buf)


@pytest.mark.parametrize(
    "data",
    [
        hf.DataFrame(1, b"x").serialize()[:5] + b"\0\0\0\0",  # DATA on stream 0
        b"\0\0\1\0\x08\0\0\0\1\x05",  # padding longer than the frame
        hf.HeadersFrame(1, b"a").serialize() + hf.PingFrame(0, b"12345678").serialize(),
    ],
    ids=["data on stream 0", "bad padding", "header block interrupted"],
)
def test_bad_frames_fail_as_in_h2(data: bytes) -> None:
    errors = []
    for buf in (LeanFrameBuffer(), FrameBuffer()):
        buf.max_frame_size = MAX
        buf.add_data(data)
        with pytest.raises(Exception) as info:  # noqa: PT011 (compared below)
            list(buf)
        errors.append(type(info.value))
    assert errors[0] is errors[1]


def test_new_connection_reads_through_the_lean_buffer() -> None:
    conn = new_connection(client_side=True)
    assert isinstance(conn.incoming_buffer, LeanFrameBuffer)
    conn.initiate_connection()
    events = conn.receive_data(hf.SettingsFrame(0).serialize())
    assert [type(e).__name__ for e in events] == ["RemoteSettingsChanged"]


def test_frame_repr_skips_the_body() -> None:
    # h2 builds a frame's repr for every frame it receives (a trace log line): the installed
    # repr names the frame and its stream and never renders the payload.
    new_connection(client_side=False)  # importing s2kit._h2fast installs the reprs

    class Loud(bytes):
        def hex(self, *args: object) -> str:
            raise AssertionError("the payload was rendered")

    frame = hf.HeadersFrame(3, Loud(b"\x82" * 4096))
    frame.flags.add("END_HEADERS")
    assert repr(frame) == "HeadersFrame(stream_id=3)"
    assert repr(hf.DataFrame(5, b"x" * (1 << 20))) == "DataFrame(stream_id=5)"


# --- outbound: DATA payloads queued, not copied -------------------------------------------------

sends = st.lists(
    st.tuples(
        st.sampled_from(["data", "view", "padded", "ping", "end"]),
        st.binary(max_size=2000),
        st.booleans(),  # drain in the middle (data_to_send), or keep queueing
    ),
    max_size=12,
)


def _pair_output(conn: h2.connection.H2Connection, steps: list[tuple[str, bytes, bool]]) -> bytes:
    """Everything ``conn`` writes for the same requests, in the same places."""
    out = bytearray()
    conn.initiate_connection()
    conn.send_headers(
        1, [(b":method", b"POST"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"x")]
    )
    ended = False
    for kind, payload, drain in steps:
        if ended:
            break
        if kind == "ping":
            conn.ping(payload[:8].ljust(8, b"\0"))
        elif kind == "end":
            conn.end_stream(1)
            ended = True
        else:
            source = bytearray(payload)  # mutated right after: a queued view must not see it
            data: bytes | memoryview = memoryview(source) if kind == "view" else bytes(payload)
            conn.send_data(1, data, pad_length=7 if kind == "padded" else None)
            source[:] = b"\xff" * len(source)
        if drain:
            out += conn.data_to_send()
    out += conn.data_to_send()
    return bytes(out)


@given(sends)
def test_outbound_bytes_are_h2s_own(steps: list[tuple[str, bytes, bool]]) -> None:
    def stock() -> h2.connection.H2Connection:
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        conn = h2.connection.H2Connection(config=config)
        conn.encoder = new_connection(client_side=True).encoder
        return conn

    assert _pair_output(new_connection(client_side=True), steps) == _pair_output(stock(), steps)


def test_queued_output_is_cleared_and_drained_by_amount() -> None:
    conn = new_connection(client_side=True)
    conn.initiate_connection()
    conn.send_headers(
        1, [(b":method", b"POST"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"x")]
    )
    conn.send_data(1, b"a" * 100)
    whole = conn.data_to_send()
    conn.send_data(1, b"a" * 100)
    assert conn.data_to_send(10) + conn.data_to_send() == whole[-109:]
    conn.send_data(1, b"b" * 100)
    conn.clear_outbound_data_buffer()
    assert conn.data_to_send() == b""


def test_a_larger_frame_right_behind_the_settings_ack_is_taken() -> None:
    """The server raised its frame size; the client acked and sent a 60,000-byte DATA frame
    in the same write, which the server reads in one piece (a busy lite does)."""
    server = new_connection(client_side=False)
    server.initiate_connection()
    server.update_settings({h2.settings.SettingCodes.MAX_FRAME_SIZE: 1 << 20})
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())  # the client applies 1 MiB and queues its ACKs
    headers = [(":method", "POST"), (":scheme", "http"), (":authority", "a"), (":path", "/")]
    client.send_headers(1, headers)
    client.send_data(1, b"x" * 60_000, end_stream=True)
    at_once = client.data_to_send()
    assert at_once.count(b"\x00\xea\x60\x00") == 1  # one DATA frame of 60,000 bytes
    events = server.receive_data(at_once)
    got = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert got == b"x" * 60_000
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)
