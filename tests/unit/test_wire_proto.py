"""Protobuf codecs: the hand-written encoders produce exactly upb's bytes, and decoding inverts
them (docs/protocol.md#protobuf-messages)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s2kit.types import AppendAck, AppendInput, ReadBatch, Record, SequencedRecord, StreamPosition
from s2kit.wire import _pbdec, _pbenc, _proto

u64 = st.integers(min_value=0, max_value=2**64 - 1)
small_bytes = st.binary(max_size=40)
headers = st.lists(st.tuples(small_bytes, small_bytes), max_size=3).map(tuple)
records = st.builds(
    Record, body=st.binary(max_size=300), headers=headers, timestamp=st.none() | u64
)
inputs = st.builds(
    AppendInput,
    records=st.lists(records, min_size=0, max_size=8).map(tuple),
    match_seq_num=st.none() | u64,
    fencing_token=st.none() | st.text(max_size=36),
)
positions = st.builds(StreamPosition, u64, u64)
sequenced = st.builds(
    SequencedRecord, seq_num=u64, timestamp=u64, headers=headers, body=st.binary(max_size=300)
)


def _upb_input(inp: AppendInput) -> bytes:
    msg: Any = _proto.PbAppendInput()
    for r in inp.records:
        rec = msg.records.add(body=r.body)
        if r.timestamp is not None:
            rec.timestamp = r.timestamp
        for n, v in r.headers:
            rec.headers.add(name=n, value=v)
    if inp.match_seq_num is not None:
        msg.match_seq_num = inp.match_seq_num
    if inp.fencing_token is not None:
        msg.fencing_token = inp.fencing_token
    data: bytes = msg.SerializeToString()
    return data


def _set(pb: Any, pos: StreamPosition) -> None:
    pb.seq_num, pb.timestamp = pos.seq_num, pos.timestamp


@given(inputs)
def test_append_input_matches_upb_and_round_trips(inp: AppendInput) -> None:
    data = _proto.encode_append_input(inp)
    assert data == _upb_input(inp)
    assert _proto.decode_append_input(data) == inp


@given(inputs)
def test_every_input_decodes_as_upb_decodes_it(inp: AppendInput) -> None:
    data = _upb_input(inp)
    assert _proto.decode_append_input(data) == inp  # bytes: the plain decoder first
    assert _proto.decode_append_input(bytearray(data)) == inp  # upb alone
    batch = _proto.decode_append_batch(data)
    assert (batch if isinstance(batch, AppendInput) else batch.as_input()) == inp


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x00",  # an empty record
        b"\x0a\x00\x0a\x03\x1a\x01x",  # empty, then a body
        b"\x0a\x04\x1a\x01x\x08",  # truncated varint inside a record
        b"\x0a\x05\x1a\x09xy",  # body longer than its record
        b"\x0a\x03\x22\x01x",  # an unknown field: upb keeps or rejects it, not us
        b"\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # match_seq_num overflow
        b"\x1a\x02\xff\xfe",  # fencing token that is not UTF-8
        b"\xff",
        b"\x0a\x02\x08\x80\x0a\x00",  # a timestamp varint running into the next record
        b"\x0a\x80\x01",  # a two-byte record length, and no record
        b"\x0a\x83\x00\x1a\x01x",  # a record length in a needlessly long varint
    ],
)
def test_fast_decoder_agrees_with_upb_or_defers(data: bytes) -> None:
    _assert_agrees_with_upb_or_defers(data)


def _assert_agrees_with_upb_or_defers(data: bytes) -> None:
    plain = _pbdec.decode_plain_input(data)
    try:
        upb = _proto.decode_append_input(bytearray(data))  # bytearray: the upb path
    except _proto.ProtoDecodeError:
        assert plain is None
    else:
        assert plain is None or plain.as_input() == upb


plain_inputs = st.builds(
    AppendInput,
    records=st.lists(st.builds(Record, body=st.binary(max_size=300)), max_size=8).map(tuple),
    match_seq_num=st.none() | u64,
    fencing_token=st.none() | st.text(max_size=36),
)


@given(plain_inputs)
def test_bodies_alone_decode_as_a_plain_input(inp: AppendInput) -> None:
    data = _upb_input(inp)
    plain = _pbdec.decode_plain_input(data)
    # upb writes a record with an empty body as an empty message, which the general path takes.
    if all(r.body for r in inp.records):
        assert plain is not None
        assert plain.bodies == [r.body for r in inp.records]
        assert (plain.match_seq_num, plain.fencing_token) == (inp.match_seq_num, inp.fencing_token)
    assert plain is None or plain.as_input() == inp
    assert _proto.decode_append_batch(data) in (inp, plain)


@given(inputs)
def test_a_record_with_headers_or_a_timestamp_is_never_plain(inp: AppendInput) -> None:
    data = _upb_input(inp)
    plain = _pbdec.decode_plain_input(data)
    if any(r.headers or r.timestamp is not None for r in inp.records):
        assert plain is None
        assert _proto.decode_append_batch(data) == inp
    assert plain is None or plain.as_input() == inp


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x03\x1a\x01x\x0a\x05\x1a\x01y\x1a\x00",  # a second body in one record
        b"\x0a\x04\x1a\x01xy",  # a record longer than its body
        b"\x0a\x03\x1a\x02x",  # a body longer than its record
    ],
)
def test_plain_decoder_defers_on_anything_but_a_body_alone(data: bytes) -> None:
    assert _pbdec.decode_plain_input(data) is None
    _assert_agrees_with_upb_or_defers(data)


@given(inputs, st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4))
def test_fast_decoder_on_damaged_inputs_agrees_with_upb_or_defers(
    inp: AppendInput, damage: list[tuple[int, int]]
) -> None:
    data = bytearray(_upb_input(inp))
    for at, value in damage:
        if data:
            data[at % len(data)] = value
    _assert_agrees_with_upb_or_defers(bytes(data))


@given(positions, positions, positions)
def test_append_ack_matches_upb_and_round_trips(
    start: StreamPosition, end: StreamPosition, tail: StreamPosition
) -> None:
    ack = AppendAck(start=start, end=end, tail=tail)
    msg: Any = _proto.PbAppendAck()
    _set(msg.start, start)
    _set(msg.end, end)
    _set(msg.tail, tail)
    data = _proto.encode_append_ack(ack)
    assert data == msg.SerializeToString()
    assert _proto.decode_append_ack(data) == ack


@st.composite
def sequenced_runs(draw: st.DrawFn) -> list[SequencedRecord]:
    """Consecutive seq_nums across varint boundaries, with repeating timestamps and body
    lengths: the shape of a real batch, which the encoder's caches are built for."""
    seq = draw(st.sampled_from([0, 1, 100, 127, 16_250, 2_097_100, 2**35 - 60, 2**63]))
    out = []
    bodies = st.sampled_from([b"", b"x", b"y" * 200, b"z" * 16_380, b"w" * 20_000])
    for _ in range(draw(st.integers(1, 6))):  # runs
        ts = draw(st.sampled_from([0, 1, 1_700_000_000_000]) | u64)
        body = draw(bodies)
        vary = draw(st.booleans())  # a body length of its own for every record
        for _ in range(draw(st.integers(1, 150))):
            hs = draw(st.just(()) | headers) if draw(st.integers(0, 30)) == 0 else ()
            if vary:
                body = draw(bodies)
            out.append(SequencedRecord(seq_num=seq, timestamp=ts, headers=hs, body=body))
            seq += 1
    return out


@given(st.lists(sequenced, max_size=8) | sequenced_runs(), st.none() | positions)
def test_read_batch_matches_upb_and_round_trips(
    recs: list[SequencedRecord], tail: StreamPosition | None
) -> None:
    msg: Any = _proto.PbReadBatch()
    for r in recs:
        rec = msg.records.add(seq_num=r.seq_num, timestamp=r.timestamp, body=r.body)
        for n, v in r.headers:
            rec.headers.add(name=n, value=v)
    if tail is not None:
        _set(msg.tail, tail)
    data = _proto.encode_read_batch_parts(recs, tail)
    assert data == msg.SerializeToString()
    batch = _proto.decode_read_batch(data)
    assert batch == ReadBatch(records=tuple(recs), tail=tail)
    assert _proto.encode_read_batch(batch) == data


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (16384, b"\x80\x80\x01")],
)
def test_varint(value: int, encoded: bytes) -> None:
    assert _pbenc.varint(value) == encoded


def test_command_record_header_with_empty_name() -> None:
    # A fence: one header whose name is empty; proto3 omits the empty name field.
    inp = AppendInput(records=(Record(body=b"tok", headers=((b"", b"fence"),)),))
    assert _proto.encode_append_input(inp) == _upb_input(inp)


@pytest.mark.parametrize("data", [b"\xff", b"\x0a\x05\x1a", b"\x0a\x02\x08"])
def test_invalid_protobuf_raises(data: bytes) -> None:
    with pytest.raises(_proto.ProtoDecodeError):
        _proto.decode_append_input(data)


@given(u64)
def test_varint_fast_paths_agree_with_the_loop(n: int) -> None:
    assert _pbenc.varint(n) == _pbenc._varint_slow(n)


@pytest.mark.parametrize("n", [2**14 - 1, 2**14, 2**21 - 1, 2**21, 2**28 - 1, 2**28, 2**64 - 1])
def test_varint_boundaries(n: int) -> None:
    assert _pbenc.varint(n) == _pbenc._varint_slow(n)


# --- decode_read_batch: columns, or record by record ------------------------------------------


@given(st.lists(sequenced, max_size=8) | sequenced_runs(), st.none() | positions)
def test_columnar_decode_agrees_with_the_record_decoder(
    recs: list[SequencedRecord], tail: StreamPosition | None
) -> None:
    data = _proto.encode_read_batch_parts(recs, tail)
    assert _proto.decode_read_batch(data) == _proto._decode_by_record(data)


def _batch(first: int, n: int, **kw: Any) -> list[SequencedRecord]:
    ts = kw.get("ts", 1_700_000_000_000)
    return [
        SequencedRecord(seq_num=first + i, timestamp=ts + i // 3, body=b"r%d" % i) for i in range(n)
    ]


def _by_record_forbidden(data: Any) -> Any:
    raise AssertionError("decoded record by record")


def test_plain_batches_are_read_by_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    recs = _batch(2, 300)
    data = _proto.encode_read_batch_parts(recs, StreamPosition(302, 9))
    monkeypatch.setattr(_proto, "_decode_by_record", _by_record_forbidden)
    assert _proto.decode_read_batch(data) == ReadBatch(
        records=tuple(recs), tail=StreamPosition(302, 9)
    )


_R = SequencedRecord


@pytest.mark.parametrize(
    "recs",
    [
        pytest.param([], id="no records"),
        pytest.param(_batch(0, 5), id="from seq_num 0 (its field is left out)"),
        pytest.param(_batch(1, 5), id="from seq_num 1"),
        pytest.param([*_batch(5, 2), _R(seq_num=7, timestamp=9, body=b"")], id="empty body"),
        pytest.param(_batch(5, 3, ts=0), id="timestamp 0"),
        pytest.param(
            [*_batch(5, 2), _R(seq_num=7, timestamp=2_000_000_000_000, headers=((b"h", b""),))],
            id="headers",
        ),
        pytest.param([*_batch(5, 2), _R(seq_num=9, timestamp=1, body=b"x")], id="gap, ts back"),
        pytest.param([_R(seq_num=8, timestamp=1, body=b"x"), *_batch(5, 2)], id="out of order"),
    ],
)
def test_batches_columns_cannot_describe_are_decoded_by_record(
    recs: list[SequencedRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _proto.encode_read_batch_parts(recs, None)
    calls = []
    by_record = _proto._decode_by_record
    monkeypatch.setattr(_proto, "_decode_by_record", lambda d: calls.append(d) or by_record(d))
    assert _proto.decode_read_batch(data) == ReadBatch(records=tuple(recs))
    assert calls == [data]


def test_a_repeated_field_is_decoded_as_upb_does() -> None:
    # Non-canonical but valid: the last body wins, and the columns would have two.
    rec = b"\x08\x05\x10\x09\x22\x01a\x22\x01b"
    data = b"\x0a" + bytes([len(rec)]) + rec + _proto.encode_read_batch_parts(_batch(6, 2), None)
    batch = _proto.decode_read_batch(data)
    assert batch.records[0] == SequencedRecord(seq_num=5, timestamp=9, body=b"b")
    assert batch == _proto._decode_by_record(data)


@pytest.mark.parametrize("data", [b"\x0a\x05\x08", b"\xff", b"\x0a\x02\x22\x05"])
def test_a_malformed_batch_raises(data: bytes) -> None:
    with pytest.raises(_proto.ProtoDecodeError):
        _proto.decode_read_batch(data)
