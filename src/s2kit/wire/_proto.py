"""Protobuf messages of the S2 data plane (package ``s2.v1``, docs/protocol.md#protobuf-messages).

The message classes are built at import time from a descriptor written out below, rather than
from protoc output, so the field numbers sit next to the code that relies on them and nothing
is generated. The upb runtime then does the byte-level work in C.

Decoding to :mod:`s2kit.types` lives here; it is on the hot path of every read (see
:func:`decode_read_batch` for how a batch is read by columns). Encoding is written out by hand
in :mod:`s2kit.wire._pbenc` (six times cheaper than filling upb messages) and re-exported here.
"""

from __future__ import annotations

from itertools import islice, repeat
from operator import attrgetter, le, lt
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from s2kit.types import (
    RECORD_SETTERS,
    AppendAck,
    AppendInput,
    ReadBatch,
    Record,
    SequencedRecord,
    StreamPosition,
)
from s2kit.wire import _pbdec
from s2kit.wire._pbenc import append_input_chunks as append_input_chunks
from s2kit.wire._pbenc import encode_append_ack as encode_append_ack
from s2kit.wire._pbenc import encode_append_input as encode_append_input
from s2kit.wire._pbenc import encode_read_batch_parts as encode_read_batch_parts
from s2kit.wire._pbenc import read_batch_chunks as read_batch_chunks

if TYPE_CHECKING:
    from s2kit.wire._pbdec import PlainInput

__all__ = [
    "ProtoDecodeError",
    "append_input_chunks",
    "decode_append_ack",
    "decode_append_batch",
    "decode_append_input",
    "decode_read_batch",
    "encode_append_ack",
    "encode_append_input",
    "encode_read_batch",
    "encode_read_batch_parts",
    "read_batch_chunks",
]

_F = descriptor_pb2.FieldDescriptorProto
_U64, _BYTES, _STR, _MSG = _F.TYPE_UINT64, _F.TYPE_BYTES, _F.TYPE_STRING, _F.TYPE_MESSAGE
_ONE, _MANY = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# (message, [(field, number, type, label, message type, explicit presence)])
_SCHEMA: list[tuple[str, list[tuple[str, int, int, int, str, bool]]]] = [
    (
        "StreamPosition",
        [("seq_num", 1, _U64, _ONE, "", False), ("timestamp", 2, _U64, _ONE, "", False)],
    ),
    ("Header", [("name", 1, _BYTES, _ONE, "", False), ("value", 2, _BYTES, _ONE, "", False)]),
    (
        "AppendRecord",
        [
            ("timestamp", 1, _U64, _ONE, "", True),
            ("headers", 2, _MSG, _MANY, "Header", False),
            ("body", 3, _BYTES, _ONE, "", False),
        ],
    ),
    (
        "AppendInput",
        [
            ("records", 1, _MSG, _MANY, "AppendRecord", False),
            ("match_seq_num", 2, _U64, _ONE, "", True),
            ("fencing_token", 3, _STR, _ONE, "", True),
        ],
    ),
    (
        "AppendAck",
        [
            ("start", 1, _MSG, _ONE, "StreamPosition", False),
            ("end", 2, _MSG, _ONE, "StreamPosition", False),
            ("tail", 3, _MSG, _ONE, "StreamPosition", False),
        ],
    ),
    (
        "SequencedRecord",
        [
            ("seq_num", 1, _U64, _ONE, "", False),
            ("timestamp", 2, _U64, _ONE, "", False),
            ("headers", 3, _MSG, _MANY, "Header", False),
            ("body", 4, _BYTES, _ONE, "", False),
        ],
    ),
    (
        "ReadBatch",
        [
            ("records", 1, _MSG, _MANY, "SequencedRecord", False),
            ("tail", 2, _MSG, _ONE, "StreamPosition", True),
        ],
    ),
    # Not protocol messages: a second view of ReadBatch's bytes for decode_read_batch. With
    # `records` singular, a parser merges every record into one message, and merging
    # concatenates repeated fields: one column per SequencedRecord field.
    (
        "RecordColumns",
        [
            ("seq_num", 1, _U64, _MANY, "", False),
            ("timestamp", 2, _U64, _MANY, "", False),
            ("headers", 3, _MSG, _MANY, "Header", False),
            ("body", 4, _BYTES, _MANY, "", False),
        ],
    ),
    (
        "ColumnarReadBatch",
        [
            ("records", 1, _MSG, _ONE, "RecordColumns", False),
            ("tail", 2, _MSG, _ONE, "StreamPosition", True),
        ],
    ),
]


def _build() -> dict[str, Any]:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="s2kit/s2/v1/s2.proto", package="s2.v1", syntax="proto3"
    )
    for msg_name, fields in _SCHEMA:
        msg = fdp.message_type.add(name=msg_name)
        for name, number, type_, label, type_name, presence in fields:
            fld = msg.field.add(name=name, number=number, type=type_, label=label)
            if type_name:
                fld.type_name = f".s2.v1.{type_name}"
            if presence and type_ != _MSG:
                # proto3 `optional`: a synthetic oneof gives the scalar explicit presence.
                fld.proto3_optional = True
                fld.oneof_index = len(msg.oneof_decl)
                msg.oneof_decl.add(name=f"_{name}")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"s2.v1.{name}"))
        for name, _ in _SCHEMA
    }


_M = _build()
PbStreamPosition = _M["StreamPosition"]
PbHeader = _M["Header"]
PbAppendRecord = _M["AppendRecord"]
PbAppendInput = _M["AppendInput"]
PbAppendAck = _M["AppendAck"]
PbSequencedRecord = _M["SequencedRecord"]
PbReadBatch = _M["ReadBatch"]
_PbColumnarReadBatch = _M["ColumnarReadBatch"]


class ProtoDecodeError(ValueError):
    """The bytes are not a valid protobuf message of the expected type."""


def _parse(cls: Any, data: bytes | memoryview) -> Any:
    try:
        return cls.FromString(data)
    except DecodeError as exc:
        raise ProtoDecodeError(f"failed to decode Protobuf message: {exc}") from exc


def _position(pb: Any) -> StreamPosition:
    return StreamPosition(pb.seq_num, pb.timestamp)


# --- AppendInput ------------------------------------------------------------------------------


def decode_append_batch(data: bytes | memoryview) -> AppendInput | PlainInput:
    """Lite's decoding of an ``AppendInput``: a batch of bodies alone comes back as a
    :class:`~s2kit.wire._pbdec.PlainInput`, anything else as :func:`decode_append_input`
    gives it. Raises :class:`ProtoDecodeError`."""
    if type(data) is bytes and (plain := _pbdec.decode_plain_input(data)) is not None:
        return plain
    return _decode_append_input(data)


def decode_append_input(data: bytes | memoryview) -> AppendInput:
    """Parse an :class:`AppendInput`; raises :class:`ProtoDecodeError`."""
    if type(data) is bytes and (plain := _pbdec.decode_plain_input(data)) is not None:
        return plain.as_input()
    return _decode_append_input(data)


def _decode_append_input(data: bytes | memoryview) -> AppendInput:
    msg = _parse(PbAppendInput, data)
    out: list[Record] = []
    add = out.append
    new = object.__new__
    s_body, s_headers, s_ts = RECORD_SETTERS
    for r in msg.records:
        # Inlined `_record`: this loop runs once per appended record on the server.
        rec = new(Record)
        s_body(rec, r.body)
        hs = r.headers
        s_headers(rec, tuple([(h.name, h.value) for h in hs]) if hs else ())
        s_ts(rec, r.timestamp if r.HasField("timestamp") else None)
        add(rec)
    records = tuple(out)
    return AppendInput(
        records=records,
        match_seq_num=msg.match_seq_num if msg.HasField("match_seq_num") else None,
        fencing_token=msg.fencing_token if msg.HasField("fencing_token") else None,
    )


# --- AppendAck --------------------------------------------------------------------------------


def decode_append_ack(data: bytes | memoryview) -> AppendAck:
    """Parse an :class:`AppendAck`; raises :class:`ProtoDecodeError`."""
    msg = _parse(PbAppendAck, data)
    return AppendAck(start=_position(msg.start), end=_position(msg.end), tail=_position(msg.tail))


# --- ReadBatch --------------------------------------------------------------------------------


def encode_read_batch(batch: ReadBatch) -> bytes:
    """Serialize a :class:`ReadBatch`."""
    return encode_read_batch_parts(batch.records, batch.tail)


def decode_read_batch(data: bytes | memoryview) -> ReadBatch:
    """Parse a :class:`ReadBatch`; raises :class:`ProtoDecodeError`.

    A batch is read by columns when it can be: upb parses it once as ``ColumnarReadBatch``
    and hands over each field of every record as one list, so no per-record message wrapper
    is built (those wrappers were half the cost of a catch-up read). Columns lose record
    boundaries, so they are used only when they cannot be misaligned:

    * no record has headers, and the seq_num, timestamp and body columns have one entry per
      seq_num;
    * the seq_nums are consecutive and the first is at least 2, and timestamps do not
      decrease — as in every S2 read. proto3 leaves zero fields out, so a record with empty
      body or timestamp 0 shortens its column (and the batch is decoded record by record),
      and a record without seq_num is seq_num 0, which such a batch cannot hold.

    This relies on each field appearing at most once per record, as every protobuf encoder
    writes it (prost, upb, ours). Anything else is decoded by :func:`_decode_by_record`.
    """
    try:
        msg = _PbColumnarReadBatch.FromString(data)
    except DecodeError:
        return _decode_by_record(data)  # which reports the error
    cols = msg.records
    seqs = list(cols.seq_num)
    n = len(seqs)
    if not n or seqs[0] < 2 or seqs[-1] - seqs[0] != n - 1 or cols.headers:
        return _decode_by_record(data)
    tss = list(cols.timestamp)
    bodies = list(cols.body)
    if (
        len(tss) != n
        or len(bodies) != n
        or not all(map(lt, seqs, islice(seqs, 1, None)))
        or not all(map(le, tss, islice(tss, 1, None)))
    ):
        return _decode_by_record(data)
    records = tuple(map(tuple.__new__, repeat(SequencedRecord), zip(seqs, tss, repeat(()), bodies)))
    tail = _position(msg.tail) if msg.HasField("tail") else None
    return ReadBatch(records=records, tail=tail)


_RECORD_FIELDS = attrgetter("seq_num", "timestamp", "headers", "body")


def _decode_by_record(data: bytes | memoryview) -> ReadBatch:
    """:func:`decode_read_batch` for any batch, one record message at a time."""
    msg = _parse(PbReadBatch, data)
    new = tuple.__new__
    sr = SequencedRecord
    # One C-level attribute fetch per record; the common no-headers case costs a truth test.
    records = tuple(
        [
            new(sr, (seq, ts, tuple([(h.name, h.value) for h in hs]) if hs else (), body))
            for seq, ts, hs, body in map(_RECORD_FIELDS, msg.records)
        ]
    )
    tail = _position(msg.tail) if msg.HasField("tail") else None
    return ReadBatch(records=records, tail=tail)
