"""The public vocabulary of s2kit: records, positions, read bounds and resource configuration.

Shared by the SDK and by lite, so that both speak exactly one model of S2
(docs/protocol.md#json-bodies).
Every type is a frozen value; ``None`` in a configuration means "not specified".
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Generic, Literal, NamedTuple, TypeAlias, TypeVar

__all__ = [
    "AccessTokenInfo",
    "AccessTokenScope",
    "AccumulationMetric",
    "AppendAck",
    "AppendInput",
    "BasinConfig",
    "BasinInfo",
    "BasinReconfiguration",
    "BasinState",
    "CommandRecord",
    "EncryptionAlgorithm",
    "ExactMatch",
    "GaugeMetric",
    "Header",
    "LabelMetric",
    "Metric",
    "MetricUnit",
    "Operation",
    "Page",
    "PermittedOperationGroups",
    "PrefixMatch",
    "ProvisionResult",
    "ReadBatch",
    "ReadLimit",
    "ReadStart",
    "ReadWritePermissions",
    "Record",
    "ResourceSet",
    "Retention",
    "ScalarMetric",
    "SeqNum",
    "SequencedRecord",
    "StorageClass",
    "StreamConfig",
    "StreamInfo",
    "StreamPosition",
    "StreamReconfiguration",
    "TailOffset",
    "TimeseriesInterval",
    "Timestamp",
    "Timestamping",
    "TimestampingMode",
    "TimestampingReconfiguration",
    "UNSET",
    "metered_bytes",
]


T = TypeVar("T")

Header: TypeAlias = tuple[bytes, bytes]
"""A record header: (name, value). Names may repeat; order is kept."""


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _as_headers(headers: Iterable[tuple[bytes | str, bytes | str]] | None) -> tuple[Header, ...]:
    if not headers:
        return ()
    return tuple((_as_bytes(n), _as_bytes(v)) for n, v in headers)


@dataclass(frozen=True, slots=True, init=False)
class Record:
    """A record to append.

    ``body`` and header names/values may be given as ``str`` (stored as UTF-8), and headers as
    any iterable of pairs; the fields always hold ``bytes`` and a tuple.
    """

    body: bytes
    """The payload."""
    headers: tuple[Header, ...]
    """Headers, in order."""
    timestamp: int | None
    """Client timestamp (ms since the epoch by convention); ``None`` lets the server decide."""

    def __init__(
        self,
        *,
        body: bytes | str = b"",
        headers: Iterable[tuple[bytes | str, bytes | str]] = (),
        timestamp: int | None = None,
    ) -> None:
        # The common case (bytes body, no headers) costs two type checks and three stores.
        setter = RECORD_SETTERS
        setter[0](self, body if type(body) is bytes else _as_bytes(body))
        if headers is _NO_HEADERS:  # the default (CPython has one empty tuple)
            setter[1](self, ())
        elif type(headers) is tuple and all(
            type(n) is bytes and type(v) is bytes for n, v in headers
        ):
            setter[1](self, headers)
        else:
            setter[1](self, _as_headers(headers))
        setter[2](self, timestamp)

    @property
    def metered_bytes(self) -> int:
        """The record's metered size (docs/protocol.md#metered-bytes)."""
        return metered_bytes(self.headers, self.body)


_NO_HEADERS: tuple[Header, ...] = ()

# Slot setters of Record, for its __init__ and for decoders that build records directly.
RECORD_SETTERS = tuple(Record.__dict__[f].__set__ for f in ("body", "headers", "timestamp"))


def metered_bytes(headers: tuple[Header, ...], body: bytes) -> int:
    """Metered size: 8 + 2 per header + header name and value lengths + body length."""
    size = 8 + len(body)
    for name, value in headers:
        size += 2 + len(name) + len(value)
    return size


class CommandRecord:
    """Builders of command records: a single header with an empty name, the op as value."""

    FENCE = b"fence"
    TRIM = b"trim"

    @staticmethod
    def fence(token: str, *, timestamp: int | None = None) -> Record:
        """A record that sets the stream's fencing token (UTF-8, at most 36 bytes)."""
        return Record(body=token.encode(), headers=((b"", b"fence"),), timestamp=timestamp)

    @staticmethod
    def trim(seq_num: int, *, timestamp: int | None = None) -> Record:
        """A record that trims the stream: records before ``seq_num`` are deleted."""
        return Record(
            body=struct.pack(">Q", seq_num), headers=((b"", b"trim"),), timestamp=timestamp
        )


@dataclass(frozen=True, slots=True, init=False)
class AppendInput:
    """One batch to append atomically: 1–1000 records, at most 1 MiB metered.

    ``records`` may be any iterable; it is stored as a tuple.
    """

    records: tuple[Record, ...]
    """The records, in order."""
    match_seq_num: int | None
    """Append only if the stream's next seq_num equals this."""
    fencing_token: str | None
    """Append only if the stream's fencing token equals this."""

    def __init__(
        self,
        *,
        records: Iterable[Record],
        match_seq_num: int | None = None,
        fencing_token: str | None = None,
    ) -> None:
        object.__setattr__(self, "records", records if type(records) is tuple else tuple(records))
        object.__setattr__(self, "match_seq_num", match_seq_num)
        object.__setattr__(self, "fencing_token", fencing_token)

    @property
    def metered_bytes(self) -> int:
        """Sum of the records' metered sizes."""
        return sum(metered_bytes(r.headers, r.body) for r in self.records)


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """A position in a stream: a seq_num and the timestamp of the record there."""

    seq_num: int
    """Sequence number."""
    timestamp: int
    """Timestamp (ms by convention)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendAck:
    """Acknowledgement of a durable append: ``[start, end)`` and the tail at ack time."""

    start: StreamPosition
    """First appended record."""
    end: StreamPosition
    """One past the last appended record (seq_num), last record's timestamp."""
    tail: StreamPosition
    """The stream's durable tail when the ack was sent (``>= end``)."""


class SequencedRecord(NamedTuple):
    """A stored record as read back.

    A named tuple rather than a frozen dataclass: reads build one per record, and a tuple is
    built in one C call (``tuple.__new__(SequencedRecord, fields)``) where slots need one call
    per field.
    """

    seq_num: int
    """Sequence number."""
    timestamp: int
    """Timestamp."""
    headers: tuple[Header, ...] = ()
    """Headers, in order."""
    body: bytes = b""
    """Payload."""

    @property
    def metered_bytes(self) -> int:
        """The record's metered size."""
        return metered_bytes(self.headers, self.body)

    @property
    def is_command(self) -> bool:
        """Whether this is a command record (fence or trim)."""
        return len(self.headers) == 1 and self.headers[0][0] == b""


RecordFields: TypeAlias = tuple[int, int, tuple[Header, ...], bytes]
"""A stored record's ``(seq_num, timestamp, headers, body)`` as a plain tuple (internal).

Lite keeps records so, and its encoders take any such tuple, a :class:`SequencedRecord`
included. The reason is the cyclic GC: it stops tracking a plain tuple of atomic values once it
has seen it, but tracks a named tuple for as long as it lives, so millions of stored records
made every full collection walk millions of objects.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadBatch:
    """A batch of records read; ``tail`` is set only on batches from the live tail."""

    records: tuple[SequencedRecord, ...] = ()
    """Records, in seq_num order."""
    tail: StreamPosition | None = None
    """The stream's tail, when the batch came from following it (heartbeats have no records)."""


@dataclass(frozen=True, slots=True)
class SeqNum:
    """Read start: at this sequence number."""

    value: int


@dataclass(frozen=True, slots=True)
class Timestamp:
    """Read start: at the first record with a timestamp at or after this."""

    value: int


@dataclass(frozen=True, slots=True)
class TailOffset:
    """Read start: this many records before the tail."""

    value: int


ReadStart: TypeAlias = SeqNum | Timestamp | TailOffset


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadLimit:
    """Read bounds; ``None`` means no bound (unary reads cap at 1000 records and 1 MiB)."""

    count: int | None = None
    """Maximum number of records."""
    bytes: int | None = None
    """Maximum metered bytes."""


# --- configuration ----------------------------------------------------------------------------


class StorageClass(enum.StrEnum):
    """Storage class of a stream."""

    STANDARD = "standard"
    EXPRESS = "express"


class TimestampingMode(enum.StrEnum):
    """How record timestamps are chosen."""

    CLIENT_PREFER = "client-prefer"
    CLIENT_REQUIRE = "client-require"
    ARRIVAL = "arrival"


class EncryptionAlgorithm(enum.StrEnum):
    """Cipher for client-supplied-key encryption at rest."""

    AEGIS_256 = "aegis-256"
    AES_256_GCM = "aes-256-gcm"


class ProvisionResult(enum.StrEnum):
    """Outcome of a create or ensure (``s2-provision-result``)."""

    CREATED = "created"
    UPDATED = "updated"
    NOOP = "noop"


class BasinState(enum.StrEnum):
    """Basin lifecycle state."""

    ACTIVE = "active"
    DELETING = "deleting"


Retention: TypeAlias = int | Literal["infinite"]
"""Retention policy: an age in seconds (> 0), or ``"infinite"``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Timestamping:
    """Timestamping configuration."""

    mode: TimestampingMode | None = None
    """How timestamps are chosen."""
    uncapped: bool | None = None
    """Allow client timestamps in the future."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamConfig:
    """Stream configuration; ``None`` fields are unspecified (inherit or keep)."""

    storage_class: StorageClass | None = None
    """Storage class."""
    retention_policy: Retention | None = None
    """Age in seconds or ``"infinite"``."""
    timestamping: Timestamping | None = None
    """Timestamping."""
    delete_on_empty_min_age_secs: int | None = None
    """Delete the stream once empty this long (0 disables)."""


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset.UNSET
"""In a reconfiguration: leave this field as it is (``None`` resets it to the default)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TimestampingReconfiguration:
    """Changes to timestamping: ``UNSET`` keeps a field, ``None`` resets it."""

    mode: TimestampingMode | _Unset | None = UNSET
    """New mode."""
    uncapped: bool | _Unset | None = UNSET
    """New uncapped flag."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamReconfiguration:
    """Changes to a stream config: ``UNSET`` keeps a field, ``None`` resets it to the default."""

    storage_class: StorageClass | _Unset | None = UNSET
    """New storage class."""
    retention_policy: Retention | _Unset | None = UNSET
    """New retention policy."""
    timestamping: TimestampingReconfiguration | _Unset | None = UNSET
    """Timestamping changes (``None`` resets both fields)."""
    delete_on_empty_min_age_secs: int | _Unset | None = UNSET
    """New delete-on-empty minimum age."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BasinReconfiguration:
    """Changes to a basin config: ``UNSET`` keeps a field, ``None`` resets it."""

    default_stream_config: StreamReconfiguration | _Unset | None = UNSET
    """Changes to the default stream config (``None`` clears all defaults)."""
    stream_cipher: EncryptionAlgorithm | _Unset | None = UNSET
    """New cipher for streams created from now on."""
    create_stream_on_append: bool | _Unset = UNSET
    """New create-on-append flag."""
    create_stream_on_read: bool | _Unset = UNSET
    """New create-on-read flag."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BasinConfig:
    """Basin configuration."""

    default_stream_config: StreamConfig | None = None
    """Defaults for streams created in the basin."""
    stream_cipher: EncryptionAlgorithm | None = None
    """Cipher given to streams created from now on."""
    create_stream_on_append: bool = False
    """Create a missing stream on append."""
    create_stream_on_read: bool = False
    """Create a missing stream on read or check-tail."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BasinInfo:
    """A basin as listed."""

    name: str
    """Basin name."""
    created_at: datetime
    """Creation time (UTC)."""
    deleted_at: datetime | None = None
    """Set once deletion has started."""
    location: str | None = None
    """Location (cloud)."""

    @property
    def state(self) -> BasinState:
        """``deleting`` once ``deleted_at`` is set."""
        return BasinState.ACTIVE if self.deleted_at is None else BasinState.DELETING


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamInfo:
    """A stream as listed."""

    name: str
    """Stream name."""
    created_at: datetime
    """Creation time (UTC)."""
    deleted_at: datetime | None = None
    """Set once deletion has started."""
    cipher: EncryptionAlgorithm | None = None
    """The stream's cipher, fixed at creation."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Page(Generic[T]):
    """One page of a listing."""

    items: tuple[T, ...] = field(default_factory=tuple)
    """The items."""
    has_more: bool = False
    """Whether more items follow the last one."""


# --- access tokens ----------------------------------------------------------------------------


class Operation(enum.StrEnum):
    """API operations an access token may be allowed (docs/protocol.md#access-tokens)."""

    LIST_BASINS = "list-basins"
    CREATE_BASIN = "create-basin"
    DELETE_BASIN = "delete-basin"
    RECONFIGURE_BASIN = "reconfigure-basin"
    GET_BASIN_CONFIG = "get-basin-config"
    ISSUE_ACCESS_TOKEN = "issue-access-token"
    REVOKE_ACCESS_TOKEN = "revoke-access-token"
    LIST_ACCESS_TOKENS = "list-access-tokens"
    LIST_STREAMS = "list-streams"
    CREATE_STREAM = "create-stream"
    DELETE_STREAM = "delete-stream"
    GET_STREAM_CONFIG = "get-stream-config"
    RECONFIGURE_STREAM = "reconfigure-stream"
    CHECK_TAIL = "check-tail"
    APPEND = "append"
    READ = "read"
    TRIM = "trim"
    FENCE = "fence"
    ACCOUNT_METRICS = "account-metrics"
    BASIN_METRICS = "basin-metrics"
    STREAM_METRICS = "stream-metrics"
    LIST_LOCATIONS = "list-locations"
    GET_DEFAULT_LOCATION = "get-default-location"
    SET_DEFAULT_LOCATION = "set-default-location"


@dataclass(frozen=True, slots=True)
class ExactMatch:
    """A resource set of exactly one name (``""`` matches nothing)."""

    name: str


@dataclass(frozen=True, slots=True)
class PrefixMatch:
    """A resource set of every name with this prefix (``""`` matches all)."""

    prefix: str


ResourceSet: TypeAlias = ExactMatch | PrefixMatch


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadWritePermissions:
    """Read and write permission for an operation group."""

    read: bool = False
    """Read operations allowed."""
    write: bool = False
    """Write operations allowed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PermittedOperationGroups:
    """Operation groups a token may use."""

    account: ReadWritePermissions | None = None
    """Account-level operations."""
    basin: ReadWritePermissions | None = None
    """Basin-level operations."""
    stream: ReadWritePermissions | None = None
    """Stream-level operations."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessTokenScope:
    """What an access token may touch and do."""

    basins: ResourceSet | None = None
    """Basins in scope."""
    streams: ResourceSet | None = None
    """Streams in scope."""
    access_tokens: ResourceSet | None = None
    """Access tokens in scope."""
    op_groups: PermittedOperationGroups | None = None
    """Permitted operation groups."""
    ops: tuple[Operation, ...] | None = None
    """Explicitly permitted operations."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessTokenInfo:
    """An access token as listed."""

    id: str
    """Token id."""
    scope: AccessTokenScope
    """Its scope."""
    expires_at: datetime | None = None
    """Expiry (None: never)."""
    auto_prefix_streams: bool = False
    """Stream names are implicitly prefixed by the scope's stream prefix."""


# --- metrics ----------------------------------------------------------------------------------


class MetricUnit(enum.StrEnum):
    """Unit of a metric."""

    BYTES = "bytes"
    OPERATIONS = "operations"


class TimeseriesInterval(enum.StrEnum):
    """Bucket size of accumulated metrics."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalarMetric:
    """A single value."""

    name: str
    unit: MetricUnit
    value: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AccumulationMetric:
    """Values accumulated over ``[t, t + interval)`` buckets."""

    name: str
    unit: MetricUnit
    interval: TimeseriesInterval | None
    values: tuple[tuple[int, float], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class GaugeMetric:
    """Instantaneous values at times ``t``."""

    name: str
    unit: MetricUnit
    values: tuple[tuple[int, float], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelMetric:
    """A set of labels."""

    name: str
    values: tuple[str, ...]


Metric: TypeAlias = ScalarMetric | AccumulationMetric | GaugeMetric | LabelMetric
