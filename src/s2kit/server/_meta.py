"""The catalog's persistence: catalog rows, and the log of changes waiting to become durable.

The catalog (``_catalog.py``) stays pure in-memory bookkeeping. When storage is durable, the
catalog's ``on_change`` hook feeds a :class:`MetaLog`: each change marks a basin or stream
dirty. The committer takes the dirty rows with the records of the same round, so metadata and
records land in one durable transaction (an auto-created stream and its first records are one
commit). Handlers whose outcome asserts existence await :meth:`MetaLog.durable` before they
answer (docs/protocol.md#write-path-and-durability); when nothing is pending that returns at once.

A failed commit fails the waiters of that round with ``storage`` and puts the rows back, so
the store converges on the in-memory catalog once writes succeed again.

Rows are JSON with exact encodings of every field (not the API's, which folds an empty default
stream config to ``null``), so a restart restores configs that compare equal.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from s2kit.errors import ErrorCode, ServerError
from s2kit.server._catalog import BasinMeta, DoeTimer, StreamMeta, doe_timer
from s2kit.server._datadir import DataDirError
from s2kit.types import (
    BasinConfig,
    EncryptionAlgorithm,
    StorageClass,
    StreamConfig,
    Timestamping,
    TimestampingMode,
)

if TYPE_CHECKING:
    from s2kit.server._catalog import Catalog
    from s2kit.server._storage import MetaRow, Storage

log = logging.getLogger("s2kit.server")

MetaKey = tuple[str, str | None]
"""(basin, None) for a basin row, (basin, stream) for a stream row."""

RETRY_AFTER_FAILURE = 1.0
USAGE_KIND = b"u"
"""First byte of the keys of usage accounting's rows (``_accounting.py``), kept with the
catalog's and put through :meth:`MetaLog.put_row`."""
TOKEN_KIND = b"t"
"""First byte of the keys of access tokens' rows (``_tokens.py``), kept with the catalog's
and put through :meth:`MetaLog.put_awaited`."""


class CorruptCatalog(DataDirError):
    """A persisted catalog row that cannot be read."""


# --- rows ---------------------------------------------------------------------------------------


def row_key(key: MetaKey) -> bytes:
    """The storage key of a catalog row (short: stream names may be 512 bytes long)."""
    basin, stream = key
    if stream is None:
        return b"b" + basin.encode()
    name = basin.encode() + b"\0" + stream.encode()
    return b"s" + hashlib.blake2b(name, digest_size=16).digest()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(t: datetime | None) -> int | None:
    return None if t is None else (t - _EPOCH) // _MICROSECOND


def _time(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + us * _MICROSECOND


def _stream_config_doc(c: StreamConfig | None) -> dict[str, Any] | None:
    if c is None:
        return None
    ts = c.timestamping
    return {
        "storage_class": c.storage_class,
        "retention": c.retention_policy,
        "timestamping": None if ts is None else {"mode": ts.mode, "uncapped": ts.uncapped},
        "delete_on_empty": c.delete_on_empty_min_age_secs,
    }


def _stream_config(d: dict[str, Any] | None) -> StreamConfig | None:
    if d is None:
        return None
    ts = d["timestamping"]
    sc, mode = d["storage_class"], None if ts is None else ts["mode"]
    return StreamConfig(
        storage_class=None if sc is None else StorageClass(sc),
        retention_policy=d["retention"],
        timestamping=None
        if ts is None
        else Timestamping(
            mode=None if mode is None else TimestampingMode(mode), uncapped=ts["uncapped"]
        ),
        delete_on_empty_min_age_secs=d["delete_on_empty"],
    )


def _cipher(value: str | None) -> EncryptionAlgorithm | None:
    return None if value is None else EncryptionAlgorithm(value)


def basin_row(b: BasinMeta) -> bytes:
    """A basin's persisted row."""
    c = b.config
    return json.dumps(
        {
            "config": {
                "default_stream_config": _stream_config_doc(c.default_stream_config),
                "stream_cipher": c.stream_cipher,
                "create_stream_on_append": c.create_stream_on_append,
                "create_stream_on_read": c.create_stream_on_read,
            },
            "created_at": _micros(b.created_at),
            "deleted_at": _micros(b.deleted_at),
            "creation_key": b.creation_key,
        },
        separators=(",", ":"),
    ).encode()


def stream_row(s: StreamMeta) -> bytes:
    """A stream's persisted row."""
    return json.dumps(
        {
            "basin": s.basin,
            "name": s.name,
            "config": _stream_config_doc(s.config),
            "cipher": s.cipher,
            "created_at": _micros(s.created_at),
            "deleted_at": _micros(s.deleted_at),
            "creation_key": s.creation_key,
            "doe": [list(t) for t in s.doe_timers],
            "doe_trim": s.doe_trim_seen,
        },
        separators=(",", ":"),
    ).encode()


def _doe_timers(d: dict[str, Any], config: StreamConfig) -> list[DoeTimer]:
    raw = d.get("doe")
    if raw is None:
        # A row from before delete-on-empty checks were persisted: arm one now, as a create
        # would, rather than never deleting the stream.
        timer = doe_timer(config, time.time())
        return [] if timer is None else [timer]
    return [DoeTimer(float(at), int(delay), int(min_age)) for at, delay, min_age in raw]


def _basin_from_row(name: str, d: dict[str, Any]) -> BasinMeta:
    c = d["config"]
    created = _time(d["created_at"])
    if created is None:
        raise ValueError("no created_at")
    return BasinMeta(
        name=name,
        config=BasinConfig(
            default_stream_config=_stream_config(c["default_stream_config"]),
            stream_cipher=_cipher(c["stream_cipher"]),
            create_stream_on_append=bool(c["create_stream_on_append"]),
            create_stream_on_read=bool(c["create_stream_on_read"]),
        ),
        created_at=created,
        deleted_at=_time(d["deleted_at"]),
        creation_key=d["creation_key"],
    )


def _stream_from_row(basin: str, name: str, d: dict[str, Any]) -> StreamMeta:
    created = _time(d["created_at"])
    config = _stream_config(d["config"])
    if created is None or config is None:
        raise ValueError("no created_at or config")
    return StreamMeta(
        basin=basin,
        name=name,
        config=config,
        cipher=_cipher(d["cipher"]),
        created_at=created,
        deleted_at=_time(d["deleted_at"]),
        creation_key=d["creation_key"],
        doe_timers=_doe_timers(d, config),
        doe_trim_seen=int(d.get("doe_trim", 0)),
    )


def basins_from_rows(rows: Iterable[tuple[bytes, bytes]]) -> list[BasinMeta]:
    """Rebuild basins (with their streams) from persisted rows.

    Raises:
        CorruptCatalog: a row that does not parse, or a stream whose basin is missing.
    """
    basins: dict[str, BasinMeta] = {}
    streams: list[tuple[str, str, dict[str, Any]]] = []
    for key, value in rows:
        try:
            doc = json.loads(value)
            kind = key[:1]
            if kind == b"b":
                name = key[1:].decode()
                basins[name] = _basin_from_row(name, doc)
            elif kind == b"s":
                streams.append((doc["basin"], doc["name"], doc))
            elif kind == USAGE_KIND:
                continue  # usage accounting's rows (``_accounting.py``)
            elif kind == TOKEN_KIND:
                continue  # access tokens' rows (``_tokens.py``)
            else:
                raise ValueError("unknown row kind")
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptCatalog(f"corrupt catalog row {key!r}: {exc}") from None
    for basin, stream, doc in streams:
        b = basins.get(basin)
        if b is None:
            raise CorruptCatalog(f"corrupt catalog: stream {stream!r} of missing basin {basin!r}")
        try:
            b.streams[stream] = _stream_from_row(basin, stream, doc)
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptCatalog(f"corrupt catalog row of stream {basin}/{stream}: {exc}") from None
    return list(basins.values())


# --- the change log -------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class MetaBatch:
    """Catalog rows taken into one commit."""

    keys: list[MetaKey]
    rows: list[MetaRow]
    generation: int
    extra: dict[bytes, bytes | None] = field(default_factory=dict)
    """Rows put with :meth:`MetaLog.put_row`, taken into this commit."""


class MetaLog:
    """Catalog changes not yet durable, and the requests waiting for them."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.wake: Callable[[], None] = lambda: None
        """Set by the committer: schedules a commit."""
        self._dirty: dict[MetaKey, None] = {}
        self._changes = 0
        self._durable = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._extra: dict[bytes, bytes | None] = {}
        self.restored: list[tuple[bytes, bytes]] = []
        """Rows at start-up that are not the catalog's (see :meth:`rows_of`)."""

    def put_row(self, key: bytes, value: bytes | None) -> None:
        """Persist a row that is not the catalog's (usage accounting) with the next commit;
        a later put of the same key replaces it, None deletes the row. It counts as a change
        (:meth:`durable` covers it): lite's shutdown waits for the last usage rows."""
        self._extra[key] = value
        self._changes += 1
        self.wake()

    def put_awaited(self, key: bytes, value: bytes | None) -> None:
        """:meth:`put_row` for a writer that then awaits :meth:`durable` (an issued or revoked
        access token is answered for only once durable)."""
        self.put_row(key, value)

    def rows_of(self, kind: bytes) -> list[tuple[bytes, bytes]]:
        """The rows of ``kind`` (a first key byte) found at start-up, for their owner."""
        return [(key, value) for key, value in self.restored if key[:1] == kind]

    def changed(self, basin: str, stream: str | None) -> None:
        """The catalog hook: a basin (``stream`` None) or a stream changed."""
        self._dirty[(basin, stream)] = None
        self._changes += 1
        self.wake()

    def _row(self, key: MetaKey) -> MetaRow:
        basin, stream = key
        b = self.catalog.basins.get(basin)
        if stream is None:
            return row_key(key), None if b is None else basin_row(b)
        s = None if b is None else b.streams.get(stream)
        return row_key(key), None if s is None else stream_row(s)

    def take(self) -> MetaBatch | None:
        """Every dirty row, as it is now, for the commit about to run."""
        if not self._dirty and not self._extra:
            return None
        keys, self._dirty = list(self._dirty), {}
        extra, self._extra = self._extra, {}
        rows = [self._row(k) for k in keys]
        rows.extend(extra.items())
        return MetaBatch(keys=keys, rows=rows, generation=self._changes, extra=extra)

    def done(self, batch: MetaBatch) -> None:
        """The batch is durable: release everyone waiting for it."""
        self._durable = max(self._durable, batch.generation)
        still = []
        for gen, fut in self._waiters:
            if gen <= self._durable:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((gen, fut))
        self._waiters = still

    def failed(self, batch: MetaBatch, error: BaseException) -> None:
        """The batch's commit failed: fail its waiters, keep its rows dirty, retry later."""
        for key in batch.keys:
            self._dirty.setdefault(key, None)
        for row, value in batch.extra.items():
            self._extra.setdefault(row, value)  # unless put again since
        failure = ServerError.for_code(ErrorCode.STORAGE, f"storage error: {error}")
        still = []
        for gen, fut in self._waiters:
            if gen <= batch.generation:
                if not fut.done():
                    fut.set_exception(failure)
            else:
                still.append((gen, fut))
        self._waiters = still
        asyncio.get_running_loop().call_later(RETRY_AFTER_FAILURE, self.wake)

    async def durable(self) -> None:
        """Wait until every change made so far is durable.

        Raises:
            ServerError: ``storage`` when the commit carrying them failed.
        """
        target = self._changes
        if self._durable >= target:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, fut))
        await fut


def attach(catalog: Catalog, storage: Storage) -> MetaLog | None:
    """Restore the catalog from durable ``storage`` and hook it up; None for in-memory storage.

    Raises:
        CorruptCatalog: a persisted row cannot be read.
    """
    rows = storage.load_catalog()
    if rows is None:
        return None
    catalog.restore(basins_from_rows(rows))
    meta = MetaLog(catalog)
    meta.restored = [(key, value) for key, value in rows if key[:1] not in (b"b", b"s")]
    catalog.on_change = meta.changed
    return meta
