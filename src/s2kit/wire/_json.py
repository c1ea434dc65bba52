"""JSON bodies of the S2 API (docs/protocol.md#json-bodies), both directions, as pure functions.

Decoders are strict about shape: anything that is not the documented type raises
:class:`JsonShapeError` (lite answers ``bad_json`` 400 for every extraction failure,
docs/protocol.md#known-quirks); meaningful-but-invalid values raise :class:`JsonInvalid`
(``invalid`` 422). Encoders produce compact output with keys in the documented order, as lite
does.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias, TypeVar

from s2kit.types import (
    UNSET,
    AppendAck,
    AppendInput,
    BasinConfig,
    BasinInfo,
    BasinReconfiguration,
    EncryptionAlgorithm,
    Header,
    ReadBatch,
    Record,
    RecordFields,
    Retention,
    SequencedRecord,
    StorageClass,
    StreamConfig,
    StreamInfo,
    StreamPosition,
    StreamReconfiguration,
    Timestamping,
    TimestampingMode,
    TimestampingReconfiguration,
)
from s2kit.wire import _strict_json

Format: TypeAlias = Literal["raw", "base64"]
T = TypeVar("T")

MAX_FENCING_TOKEN_BYTES = 36


class JsonShapeError(ValueError):
    """The body is not JSON, or not of the documented shape."""


class JsonInvalid(ValueError):
    """The body has the right shape but a value S2 rejects."""


dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def loads(data: bytes | str) -> Any:
    """Parse JSON strictly (``_strict_json``: UTF-8, size, depth, no lone surrogates), raising
    :class:`JsonShapeError` with a one-line message."""
    try:
        return _strict_json.parse(data)
    except ValueError as exc:
        raise JsonShapeError(f"invalid JSON: {exc}") from None


# --- small typed accessors --------------------------------------------------------------------


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JsonShapeError(f"{what}: expected an object")
    return value


def _u64(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value < 2**64:
        raise JsonShapeError(f"{what}: expected an unsigned 64-bit integer")
    return value


def _opt(obj: dict[str, Any], key: str, conv: Callable[[Any, str], T]) -> T | None:
    value = obj.get(key)
    return None if value is None else conv(value, key)


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise JsonShapeError(f"{what}: expected a string")
    return value


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise JsonShapeError(f"{what}: expected a boolean")
    return value


def _enum(cls: type[Any]) -> Callable[[Any, str], Any]:
    def conv(value: Any, what: str) -> Any:
        try:
            return cls(_str(value, what))
        except ValueError:
            raise JsonShapeError(f"{what}: unknown variant {value!r}") from None

    return conv


# --- bytes in JSON strings (s2-format) --------------------------------------------------------


def _decode_bytes(value: Any, what: str, fmt: Format) -> bytes:
    text = _str(value, what)
    if fmt == "raw":
        return text.encode()
    # Strict means canonical (docs/protocol.md#json-encoding-of-bytes). binascii's strict mode
    # still takes excess padding ("YWJj=") and non-zero trailing bits ("YR=="), which the
    # reference decoder rejects; only the last 4-character group can hold either, so that is the
    # one re-encoded and compared. (Re-encoding everything, after base64's regex check, was half
    # of an SSE read's CPU.)
    if len(text) % 4:
        raise JsonInvalid("invalid Base64 encoding")
    try:
        data = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise JsonInvalid("invalid Base64 encoding") from None
    if text.endswith("="):
        last = data[-(len(data) % 3) :]
        if binascii.b2a_base64(last, newline=False) != text[-4:].encode():
            raise JsonInvalid("invalid Base64 encoding")
    return data


def _encode_bytes(data: bytes, fmt: Format) -> str:
    if fmt == "raw":
        return data.decode("utf-8", "replace")
    return base64.b64encode(data).decode("ascii")


# --- records ----------------------------------------------------------------------------------


def _headers_in(value: Any, fmt: Format) -> tuple[Header, ...]:
    if not isinstance(value, list):
        raise JsonShapeError("headers: expected an array")
    out = []
    for h in value:
        if not isinstance(h, list) or len(h) != 2:
            raise JsonShapeError("header: expected a [name, value] pair")
        out.append(
            (_decode_bytes(h[0], "header name", fmt), _decode_bytes(h[1], "header value", fmt))
        )
    return tuple(out)


def decode_append_input(data: bytes, fmt: Format) -> AppendInput:
    """Parse a JSON ``AppendInput`` body."""
    return append_input_from_obj(loads(data), fmt)


def append_input_from_obj(value: Any, fmt: Format) -> AppendInput:
    """An ``AppendInput`` from a parsed body (for a caller that has parsed it already)."""
    obj = _obj(value, "append input")
    raw_records = obj.get("records")
    if not isinstance(raw_records, list):
        raise JsonShapeError("records: expected an array")
    records = []
    for raw in raw_records:
        rec = _obj(raw, "record")
        headers = rec.get("headers")
        body = rec.get("body")
        records.append(
            Record(
                body=b"" if body is None else _decode_bytes(body, "body", fmt),
                headers=() if headers is None else _headers_in(headers, fmt),
                timestamp=_opt(rec, "timestamp", _u64),
            )
        )
    token = _opt(obj, "fencing_token", _str)
    if token is not None and len(token.encode()) > MAX_FENCING_TOKEN_BYTES:
        raise JsonShapeError("fencing_token: must not exceed 36 bytes in length")
    return AppendInput(
        records=tuple(records),
        match_seq_num=_opt(obj, "match_seq_num", _u64),
        fencing_token=token,
    )


def encode_append_input(inp: AppendInput, fmt: Format) -> str:
    """Serialize an :class:`AppendInput` to JSON."""
    records = []
    for r in inp.records:
        rec: dict[str, Any] = {}
        if r.timestamp is not None:
            rec["timestamp"] = r.timestamp
        if r.headers:
            rec["headers"] = [[_encode_bytes(n, fmt), _encode_bytes(v, fmt)] for n, v in r.headers]
        rec["body"] = _encode_bytes(r.body, fmt)
        records.append(rec)
    obj: dict[str, Any] = {"records": records}
    if inp.match_seq_num is not None:
        obj["match_seq_num"] = inp.match_seq_num
    if inp.fencing_token is not None:
        obj["fencing_token"] = inp.fencing_token
    return dumps(obj)


def _position_out(pos: StreamPosition) -> dict[str, int]:
    return {"seq_num": pos.seq_num, "timestamp": pos.timestamp}


def _position_in(value: Any, what: str) -> StreamPosition:
    obj = _obj(value, what)
    return StreamPosition(
        _u64(obj.get("seq_num"), "seq_num"), _u64(obj.get("timestamp"), "timestamp")
    )


def encode_append_ack(ack: AppendAck) -> str:
    """``AppendAck`` JSON."""
    return dumps(
        {
            "start": _position_out(ack.start),
            "end": _position_out(ack.end),
            "tail": _position_out(ack.tail),
        }
    )


def decode_append_ack(data: bytes | str) -> AppendAck:
    """Parse ``AppendAck`` JSON."""
    obj = _obj(loads(data), "ack")
    return AppendAck(
        start=_position_in(obj.get("start"), "start"),
        end=_position_in(obj.get("end"), "end"),
        tail=_position_in(obj.get("tail"), "tail"),
    )


def encode_tail(tail: StreamPosition) -> str:
    """``TailResponse`` JSON (also the 416 body)."""
    return dumps({"tail": _position_out(tail)})


def decode_tail(data: bytes | str) -> StreamPosition:
    """Parse ``TailResponse`` JSON."""
    return _position_in(_obj(loads(data), "tail response").get("tail"), "tail")


def read_batch_obj(
    records: Iterable[RecordFields], tail: StreamPosition | None, fmt: Format
) -> dict[str, Any]:
    """The ``ReadBatch`` object: ``headers``/``body`` omitted when empty, ``tail`` when absent."""
    out = []
    for seq_num, timestamp, headers, body in records:
        rec: dict[str, Any] = {"seq_num": seq_num, "timestamp": timestamp}
        if headers:
            rec["headers"] = [[_encode_bytes(n, fmt), _encode_bytes(v, fmt)] for n, v in headers]
        if body:
            rec["body"] = _encode_bytes(body, fmt)
        out.append(rec)
    obj: dict[str, Any] = {"records": out}
    if tail is not None:
        obj["tail"] = _position_out(tail)
    return obj


def encode_read_batch(
    records: Iterable[RecordFields], tail: StreamPosition | None, fmt: Format
) -> str:
    """``ReadBatch`` JSON."""
    return dumps(read_batch_obj(records, tail, fmt))


def decode_read_batch(data: bytes | str, fmt: Format) -> ReadBatch:
    """Parse ``ReadBatch`` JSON."""
    obj = _obj(loads(data), "read batch")
    raw_records = obj.get("records")
    if not isinstance(raw_records, list):
        raise JsonShapeError("records: expected an array")
    records = []
    for raw in raw_records:
        rec = _obj(raw, "record")
        headers = rec.get("headers")
        body = rec.get("body")
        records.append(
            SequencedRecord(
                seq_num=_u64(rec.get("seq_num"), "seq_num"),
                timestamp=_u64(rec.get("timestamp"), "timestamp"),
                headers=() if headers is None else _headers_in(headers, fmt),
                body=b"" if body is None else _decode_bytes(body, "body", fmt),
            )
        )
    tail = obj.get("tail")
    return ReadBatch(
        records=tuple(records), tail=None if tail is None else _position_in(tail, "tail")
    )


def encode_error(code: str, message: str) -> str:
    """``ErrorInfo`` JSON."""
    return dumps({"code": code, "message": message})


# --- configs ----------------------------------------------------------------------------------


def _retention_in(value: Any, what: str) -> Retention:
    obj = _obj(value, what)
    if len(obj) != 1:
        raise JsonShapeError(f"{what}: expected exactly one of `age` or `infinite`")
    if "age" in obj:
        age = _u64(obj["age"], "age")
        if age == 0:
            raise JsonInvalid("age must be greater than 0 seconds")
        return age
    if "infinite" in obj:
        if obj["infinite"] != {}:
            raise JsonShapeError("infinite: expected an empty object")
        return "infinite"
    raise JsonShapeError(f"{what}: expected exactly one of `age` or `infinite`")


def _retention_out(value: Retention | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"infinite": {}} if value == "infinite" else {"age": value}


def _timestamping_in(value: Any, what: str) -> Timestamping:
    obj = _obj(value, what)
    return Timestamping(
        mode=_opt(obj, "mode", _enum(TimestampingMode)), uncapped=_opt(obj, "uncapped", _bool)
    )


def _doe_in(value: Any, what: str) -> int:
    return _u64(_obj(value, what).get("min_age_secs", 0), "min_age_secs")


def stream_config_from_obj(value: Any, what: str = "config") -> StreamConfig:
    """A ``StreamConfig`` object (``null`` fields unspecified)."""
    obj = _obj(value, what)
    return StreamConfig(
        storage_class=_opt(obj, "storage_class", _enum(StorageClass)),
        retention_policy=_opt(obj, "retention_policy", _retention_in),
        timestamping=_opt(obj, "timestamping", _timestamping_in),
        delete_on_empty_min_age_secs=_opt(obj, "delete_on_empty", _doe_in),
    )


def stream_config_obj(cfg: StreamConfig) -> dict[str, Any]:
    """``StreamConfig`` as a JSON object; unset fields are ``null``."""
    ts = cfg.timestamping
    return {
        "storage_class": cfg.storage_class,
        "retention_policy": _retention_out(cfg.retention_policy),
        "timestamping": None
        if ts is None or (ts.mode is None and ts.uncapped is None)
        else {"mode": ts.mode, "uncapped": ts.uncapped},
        "delete_on_empty": None
        if cfg.delete_on_empty_min_age_secs is None
        else {"min_age_secs": cfg.delete_on_empty_min_age_secs},
    }


def basin_config_from_obj(value: Any, what: str = "config") -> BasinConfig:
    """A ``BasinConfig`` object."""
    obj = _obj(value, what)
    return BasinConfig(
        default_stream_config=_opt(obj, "default_stream_config", stream_config_from_obj),
        stream_cipher=_opt(obj, "stream_cipher", _enum(EncryptionAlgorithm)),
        create_stream_on_append=_opt(obj, "create_stream_on_append", _bool) or False,
        create_stream_on_read=_opt(obj, "create_stream_on_read", _bool) or False,
    )


def basin_config_obj(cfg: BasinConfig) -> dict[str, Any]:
    """``BasinConfig`` as a JSON object (``default_stream_config`` null when nothing is set)."""
    dsc = cfg.default_stream_config
    return {
        "default_stream_config": None
        if dsc is None or dsc == StreamConfig()
        else stream_config_obj(dsc),
        "stream_cipher": cfg.stream_cipher,
        "create_stream_on_append": cfg.create_stream_on_append,
        "create_stream_on_read": cfg.create_stream_on_read,
    }


def _maybe(obj: dict[str, Any], key: str, conv: Callable[[Any, str], Any]) -> Any:
    # Absent keeps the field (UNSET); null resets it (None).
    if key not in obj:
        return UNSET
    value = obj[key]
    return None if value is None else conv(value, key)


def _timestamping_reconf_in(value: Any, what: str) -> TimestampingReconfiguration:
    obj = _obj(value, what)
    return TimestampingReconfiguration(
        mode=_maybe(obj, "mode", _enum(TimestampingMode)), uncapped=_maybe(obj, "uncapped", _bool)
    )


def _doe_reconf_in(value: Any, what: str) -> Any:
    # A present object with ``min_age_secs`` absent changes nothing
    # (docs/protocol.md#configuration): only ``null`` (here or for the whole object) resets, so
    # ``{}`` must not read as a reset.
    return _maybe(_obj(value, what), "min_age_secs", _u64)


def stream_reconfiguration_from_obj(
    value: Any, what: str = "reconfiguration"
) -> StreamReconfiguration:
    """A ``StreamReconfiguration`` object (absent = keep, ``null`` = reset)."""
    obj = _obj(value, what)
    return StreamReconfiguration(
        storage_class=_maybe(obj, "storage_class", _enum(StorageClass)),
        retention_policy=_maybe(obj, "retention_policy", _retention_in),
        timestamping=_maybe(obj, "timestamping", _timestamping_reconf_in),
        delete_on_empty_min_age_secs=_maybe(obj, "delete_on_empty", _doe_reconf_in),
    )


def basin_reconfiguration_from_obj(value: Any) -> BasinReconfiguration:
    """A ``BasinReconfiguration`` object; the create-on flags must be booleans when present."""
    obj = _obj(value, "reconfiguration")
    return BasinReconfiguration(
        default_stream_config=_maybe(obj, "default_stream_config", stream_reconfiguration_from_obj),
        stream_cipher=_maybe(obj, "stream_cipher", _enum(EncryptionAlgorithm)),
        create_stream_on_append=_bool(obj["create_stream_on_append"], "create_stream_on_append")
        if "create_stream_on_append" in obj
        else UNSET,
        create_stream_on_read=_bool(obj["create_stream_on_read"], "create_stream_on_read")
        if "create_stream_on_read" in obj
        else UNSET,
    )


def _reconf_obj(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not UNSET}


def stream_reconfiguration_obj(rc: StreamReconfiguration) -> dict[str, Any]:
    """Serialize a reconfiguration, omitting unchanged fields."""
    ts = rc.timestamping
    return _reconf_obj(
        {
            "storage_class": rc.storage_class,
            "retention_policy": rc.retention_policy
            if rc.retention_policy is UNSET
            else _retention_out(rc.retention_policy),
            "timestamping": ts
            if ts is UNSET or ts is None
            else _reconf_obj({"mode": ts.mode, "uncapped": ts.uncapped}),
            "delete_on_empty": rc.delete_on_empty_min_age_secs
            if rc.delete_on_empty_min_age_secs is UNSET
            else {"min_age_secs": rc.delete_on_empty_min_age_secs},
        }
    )


def basin_reconfiguration_obj(rc: BasinReconfiguration) -> dict[str, Any]:
    """Serialize a basin reconfiguration, omitting unchanged fields."""
    dsc = rc.default_stream_config
    return _reconf_obj(
        {
            "default_stream_config": dsc
            if dsc is UNSET or dsc is None
            else stream_reconfiguration_obj(dsc),
            "stream_cipher": rc.stream_cipher,
            "create_stream_on_append": rc.create_stream_on_append,
            "create_stream_on_read": rc.create_stream_on_read,
        }
    )


# --- resources --------------------------------------------------------------------------------


def format_time(t: datetime) -> str:
    """RFC 3339 in UTC with ``Z``; fractional seconds only when non-zero."""
    t = t.astimezone(UTC)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        base += f".{t.microsecond:06d}".rstrip("0")
    return base + "Z"


def parse_time(value: Any, what: str) -> datetime:
    """Parse RFC 3339 (up to nanoseconds; digits past microseconds are dropped)."""
    text = _str(value, what)
    head, dot, frac = text.partition(".")
    if dot:
        # The leading run of ASCII digits (str.isdigit would take other scripts' digits too).
        n = len(frac) - len(frac.lstrip("0123456789"))
        text = f"{head}.{frac[: min(n, 6)]}{frac[n:]}"
    try:
        t = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise JsonShapeError(f"{what}: invalid RFC 3339 time {value!r}") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def basin_info_obj(info: BasinInfo) -> dict[str, Any]:
    """``BasinInfo`` JSON object."""
    return {
        "name": info.name,
        "location": info.location,
        "created_at": format_time(info.created_at),
        "deleted_at": None if info.deleted_at is None else format_time(info.deleted_at),
        "state": info.state,
    }


def basin_info_from_obj(value: Any) -> BasinInfo:
    """Parse a ``BasinInfo`` object."""
    obj = _obj(value, "basin info")
    return BasinInfo(
        name=_str(obj.get("name"), "name"),
        created_at=parse_time(obj.get("created_at"), "created_at"),
        deleted_at=_opt(obj, "deleted_at", parse_time),
        location=_opt(obj, "location", _str),
    )


def stream_info_obj(info: StreamInfo) -> dict[str, Any]:
    """``StreamInfo`` JSON object."""
    return {
        "name": info.name,
        "created_at": format_time(info.created_at),
        "deleted_at": None if info.deleted_at is None else format_time(info.deleted_at),
        "cipher": info.cipher,
    }


def stream_info_from_obj(value: Any) -> StreamInfo:
    """Parse a ``StreamInfo`` object."""
    obj = _obj(value, "stream info")
    return StreamInfo(
        name=_str(obj.get("name"), "name"),
        created_at=parse_time(obj.get("created_at"), "created_at"),
        deleted_at=_opt(obj, "deleted_at", parse_time),
        cipher=_opt(obj, "cipher", _enum(EncryptionAlgorithm)),
    )
