"""Server-sent events: lite's exact encoding, and a decoder that follows the WHATWG rules."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2kit.wire._sse import (
    SseDecoder,
    SseEvent,
    format_event_id,
    sse_batch,
    sse_done,
    sse_error,
    sse_ping,
)

BATCH = '{"records":[{"seq_num":5,"timestamp":17,"body":"hi"}]}'


def decode(data: bytes, *, chunk: int | None = None, **kwargs: int) -> list[SseEvent]:
    decoder = SseDecoder(**kwargs)
    events: list[SseEvent] = []
    step = chunk or max(len(data), 1)
    for start in range(0, len(data), step):
        decoder.receive_data(data[start : start + step])
        events.extend(decoder)
    return events


def event(data: str, kind: str = "message", id_: str | None = None) -> SseEvent:
    return SseEvent(event=kind, data=data, id=id_)


# --- encoders ---------------------------------------------------------------------------------


def test_encoders_write_what_lite_writes() -> None:
    assert sse_batch("5,1,10", BATCH) == f"event:batch\nid:5,1,10\ndata:{BATCH}\n\n".encode()
    assert sse_ping('{"timestamp":1}') == b'event:ping\ndata:{"timestamp":1}\n\n'
    assert sse_error('{"code":"other"}') == b'event:error\ndata:{"code":"other"}\n\n'
    assert sse_done() == b"data:[DONE]\n\n"


def test_encoders_write_utf8() -> None:
    assert sse_ping('{"x":"é"}') == 'event:ping\ndata:{"x":"é"}\n\n'.encode()


def test_line_breaks_in_data_become_data_lines() -> None:
    assert sse_ping("a\nb\r\nc\rd") == b"event:ping\ndata:a\ndata:b\ndata:c\ndata:d\n\n"
    assert decode(sse_error("a\r\nb\n")) == [event("a\nb\n", "error")]


def test_leading_space_survives() -> None:
    # The decoder drops one space after the colon, so the encoder adds one to protect it.
    assert sse_ping(" x") == b"event:ping\ndata:  x\n\n"
    assert sse_ping("a\n b") == b"event:ping\ndata:a\ndata:  b\n\n"
    assert decode(sse_ping(" x\n  y")) == [event(" x\n  y", "ping")]


@pytest.mark.parametrize("id_", ["a\nb", "a\rb", "a\0b"])
def test_batch_id_must_be_one_line(id_: str) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        sse_batch(id_, "{}")


def test_format_event_id() -> None:
    assert format_event_id(41, 7, 1024) == "41,7,1024"
    for bad in ((-1, 0, 0), (0, 2**64, 0), (0, 0, -5)):
        with pytest.raises(ValueError, match="not an unsigned 64-bit integer"):
            format_event_id(*bad)


# --- decoder: the event stream format ---------------------------------------------------------


def test_decode_a_lite_session() -> None:
    stream = (
        sse_batch("5,1,10", BATCH)
        + sse_ping('{"timestamp":1}')
        + sse_batch("6,2,20", "{}")
        + sse_done()
    )
    assert decode(stream) == [
        event(BATCH, "batch", "5,1,10"),
        event('{"timestamp":1}', "ping", "5,1,10"),  # the last id persists
        event("{}", "batch", "6,2,20"),
        event("[DONE]", "message", "6,2,20"),
    ]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_line_endings(eol: bytes) -> None:
    stream = eol.join([b"event:batch", b"id:1", b"data:a", b"data:b", b"", b"data:c", b"", b""])
    expected = [event("a\nb", "batch", "1"), event("c", "message", "1")]
    assert decode(stream) == expected
    assert decode(stream, chunk=1) == expected


def test_mixed_line_endings() -> None:
    assert decode(b"data:a\r\ndata:b\rdata:c\n\r\n") == [event("a\nb\nc")]


def test_cr_at_chunk_end_then_lf() -> None:
    decoder = SseDecoder()
    decoder.receive_data(b"data:x\r")
    assert decoder.next_event() is None
    assert decoder.next_event() is None  # still waiting to see what follows the CR
    decoder.receive_data(b"\n\r")
    assert decoder.next_event() == event("x")  # CRLF was one line end, CR the blank line
    decoder.receive_data(b"\ndata:y\n\n")  # the LF completes the CRLF, not another blank line
    assert list(decoder) == [event("y")]


def test_cr_then_other_byte() -> None:
    decoder = SseDecoder()
    decoder.receive_data(b"data:x\r")
    assert decoder.next_event() is None
    decoder.receive_data(b"\r")
    assert decoder.next_event() == event("x")


@pytest.mark.parametrize(
    ("line", "data"),
    [
        (b"data:x", "x"),
        (b"data: x", "x"),  # one space is dropped
        (b"data:  x", " x"),  # only one
        (b"data:x ", "x "),
        (b"data", ""),  # no colon: the whole line is the name, the value is empty
        (b"data:", ""),
        (b"data::x", ":x"),
    ],
)
def test_field_values(line: bytes, data: str) -> None:
    assert decode(line + b"\n\n") == [event(data)]


def test_comments_and_unknown_fields_are_ignored() -> None:
    stream = b": keep-alive\n:\nfoo:bar\nDATA:no\ndata :no\ndata:yes\n\n"
    assert decode(stream) == [event("yes")]


def test_event_type() -> None:
    assert decode(b"event:\ndata:x\n\n") == [event("x")]
    assert decode(b"event\ndata:x\n\n") == [event("x")]
    assert decode(b"event:a\nevent:b\ndata:x\n\ndata:y\n\n") == [event("x", "b"), event("y")]


def test_event_without_data_is_not_dispatched_but_its_id_counts() -> None:
    decoder = SseDecoder()
    decoder.receive_data(b"event:ping\nid:7\n\n\n\ndata:x\n\n")
    assert list(decoder) == [event("x", "message", "7")]
    assert decoder.last_event_id == "7"


def test_ids() -> None:
    decoder = SseDecoder()
    assert decoder.last_event_id is None
    decoder.receive_data(b"id:1\ndata:a\n\nid:2\0\ndata:b\n\nid\ndata:c\n\n")
    assert list(decoder) == [
        event("a", id_="1"),
        event("b", id_="1"),  # an id with NUL is ignored
        event("c"),  # an empty id resets it
    ]
    assert decoder.last_event_id is None


def test_retry() -> None:
    decoder = SseDecoder()
    assert decoder.retry is None
    decoder.receive_data(b"retry:1500\nretry:soon\nretry:\nretry:\xd9\xa3\n")
    assert decoder.next_event() is None
    assert decoder.retry == 1500  # non-digits (and Arabic-Indic digits) are ignored


def test_empty_data_line_is_dispatched() -> None:
    assert decode(b"data\n\ndata\ndata\n\n") == [event(""), event("\n")]


def test_bom() -> None:
    assert decode(b"\xef\xbb\xbfdata:x\n\n") == [event("x")]
    assert decode(b"\xef\xbb\xbfdata:x\n\n", chunk=1) == [event("x")]
    # Only one BOM, and only at the very start.
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata:x\n\ndata:y\n\n") == [event("y")]
    assert decode(b"data:x\n\n\xef\xbb\xbfdata:y\n\ndata:z\n\n") == [event("x"), event("z")]
    assert decode(b"\xef\xbb\xbf\n") == []


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert decode(b"data:a\xffb\n\n") == [event("a\ufffdb")]


def test_multibyte_characters_split_across_chunks() -> None:
    stream = "data:é€😀\n\n".encode()
    assert decode(stream, chunk=1) == [event("é€😀")]


def test_incomplete_event_waits() -> None:
    decoder = SseDecoder()
    decoder.receive_data(b"event:batch\ndata:x\n")
    assert decoder.next_event() is None
    decoder.receive_data(b"")
    decoder.receive_data(b"\n")
    assert decoder.next_event() == event("x", "batch")
    assert decoder.next_event() is None


def test_accepts_any_buffer() -> None:
    decoder = SseDecoder()
    decoder.receive_data(bytearray(b"data:a\n"))
    decoder.receive_data(memoryview(b"\n"))
    assert list(decoder) == [event("a")]


# --- decoder: limits --------------------------------------------------------------------------


def test_long_line_without_end() -> None:
    decoder = SseDecoder(max_event_size=10)
    decoder.receive_data(b"data:12345")
    assert decoder.next_event() is None  # 10 bytes: at the limit
    decoder.receive_data(b"6")
    with pytest.raises(ValueError, match="line longer than 10 bytes"):
        decoder.next_event()


def test_long_complete_line() -> None:
    assert decode(b"data:12345\n\n", max_event_size=10) == [event("12345")]
    with pytest.raises(ValueError, match="line longer than 10 bytes"):
        decode(b"data:123456\n\n", max_event_size=10)


def test_event_data_limit() -> None:
    # Per event, lines counted with their LF: 5 + 1 + 4 + 1 = 11 > 10.
    with pytest.raises(ValueError, match="event data longer than 10"):
        decode(b"data:12345\ndata:1234\n\n", chunk=4, max_event_size=10)
    assert decode(b"data:1234\ndata:1234\n\ndata:1234\n\n", chunk=4, max_event_size=10) == [
        event("1234\n1234"),
        event("1234"),
    ]


def test_buffer_limit() -> None:
    decoder = SseDecoder(max_event_size=10)
    decoder.receive_data(b":" * 20)
    with pytest.raises(ValueError, match="more than 20 undecoded SSE bytes"):
        decoder.receive_data(b":")


def test_consumed_lines_free_buffer_space() -> None:
    decoder = SseDecoder(max_event_size=10)
    for i in range(100):
        decoder.receive_data(b"data:%d\n\n" % (i % 10))
        assert list(decoder) == [event(str(i % 10))]


def test_broken_decoder_stays_broken() -> None:
    decoder = SseDecoder(max_event_size=10)
    decoder.receive_data(b"data:a\n\n")
    assert decoder.next_event() == event("a")
    decoder.receive_data(b"data:0123456789\n")
    with pytest.raises(ValueError, match="longer than") as first:
        decoder.next_event()
    for call in (decoder.next_event, lambda: decoder.receive_data(b"x")):
        with pytest.raises(ValueError, match="longer than") as again:
            call()
        assert again.value is first.value


def test_max_event_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SseDecoder(max_event_size=0)


# --- round trips ------------------------------------------------------------------------------

# Text the encoders can carry: anything, with line breaks turned into LF on the way.
text_st = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
event_st = st.one_of(
    st.tuples(st.just("batch"), st.tuples(*[st.integers(0, 2**64 - 1)] * 3), text_st),
    st.tuples(st.just("ping"), st.none(), text_st),
    st.tuples(st.just("error"), st.none(), text_st),
    st.tuples(st.just("message"), st.none(), st.just("[DONE]")),
)


@settings(deadline=None)
@given(
    events=st.lists(event_st, max_size=8),
    cuts=st.lists(st.integers(0, 10_000), max_size=10),
)
def test_round_trip_in_any_chunking(
    events: list[tuple[str, tuple[int, int, int] | None, str]], cuts: list[int]
) -> None:
    stream = b""
    expected: list[SseEvent] = []
    last_id: str | None = None
    for kind, numbers, data in events:
        if kind == "batch":
            assert numbers is not None
            last_id = format_event_id(*numbers)
            stream += sse_batch(last_id, data)
        elif kind == "ping":
            stream += sse_ping(data)
        elif kind == "error":
            stream += sse_error(data)
        else:
            stream += sse_done()
        normalized = data.replace("\r\n", "\n").replace("\r", "\n")
        expected.append(SseEvent(event=kind, data=normalized, id=last_id))
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    decoder = SseDecoder()
    got: list[SseEvent] = []
    for start, end in itertools.pairwise(points):
        decoder.receive_data(stream[start:end])
        got.extend(decoder)
    assert got == expected


@given(
    lines=st.lists(text_st.map(lambda t: t.replace("\r", "").replace("\n", "")), max_size=10),
    eols=st.lists(st.sampled_from([b"\n", b"\r\n", b"\r"]), min_size=10, max_size=10),
    chunk=st.integers(1, 16),
)
def test_any_line_ending_style(lines: list[str], eols: list[bytes], chunk: int) -> None:
    stream = b"".join(
        b"data:" + line.encode() + eol for line, eol in zip(lines, eols, strict=False)
    )
    # The blank line repeats the last line end: an LF after a CR would only complete a CRLF.
    stream += eols[len(lines) - 1] if lines else b"\n"
    expected = [event("\n".join(line.removeprefix(" ") for line in lines))] if lines else []
    assert decode(stream, chunk=chunk) == expected
