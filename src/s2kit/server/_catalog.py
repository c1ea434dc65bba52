"""Lite's catalog of basins and streams: names, configs, idempotent creation, deletion state.

Pure bookkeeping, synchronous and without I/O; the backend layers records and background work
on top. Stream configs are stored fully resolved against the basin defaults current at the
time (docs/protocol.md#how-configs-are-stored), basin configs exactly as given.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

from s2kit.errors import ErrorCode, ServerError
from s2kit.types import (
    UNSET,
    BasinConfig,
    BasinInfo,
    BasinReconfiguration,
    EncryptionAlgorithm,
    Page,
    ProvisionResult,
    StorageClass,
    StreamConfig,
    StreamInfo,
    StreamReconfiguration,
    Timestamping,
    TimestampingMode,
)
from s2kit.wire._json import basin_config_obj, dumps, stream_config_obj

T = TypeVar("T")

SYSTEM_DEFAULT_RETENTION = 7 * 24 * 3600
# Matched with ``fullmatch``: ``$`` also matches before a final newline, so ``match`` with
# ``^...$`` let "abcdefgh\n" through.
_BASIN_RE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_BASIN_PREFIX_RE = re.compile(r"([a-z0-9][a-z0-9-]*)?")


def err(code: ErrorCode, message: str) -> ServerError:
    """The server-side error for ``code``."""
    return ServerError.for_code(code, message)


# --- names ------------------------------------------------------------------------------------


def utf8_size(text: str) -> int | None:
    """Length of ``text`` in UTF-8, or None if it has no UTF-8 form (a lone surrogate)."""
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        return None


def basin_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid basin name, or None."""
    size = utf8_size(name)
    if size is not None and not 8 <= size <= 48:
        return "basin name must be between 8 and 48 bytes in length"
    if size is None or not _BASIN_RE.fullmatch(name):
        return (
            "basin name must comprise lowercase letters, numbers, and hyphens, "
            "and must start and end with a letter or number"
        )
    return None


def basin_prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` is not a valid basin prefix / start_after, or None."""
    size = utf8_size(prefix)
    if size is not None and size > 48:
        return "must not exceed 48 bytes in length"
    if size is None or not _BASIN_PREFIX_RE.fullmatch(prefix):
        return "must comprise lowercase letters, numbers, and hyphens"
    return None


def stream_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid stream name, or None."""
    size = utf8_size(name)
    if size is None:
        return "stream name must be valid UTF-8"
    if not 1 <= size <= 512:
        return "stream name must be between 1 and 512 bytes in length"
    if name in (".", ".."):
        return "stream name must not be `.` or `..`"
    return None


# --- config resolution ------------------------------------------------------------------------


def _pick(*values: T | None) -> T | None:
    for v in values:
        if v is not None:
            return v
    return None


def resolve_stream_config(cfg: StreamConfig | None, defaults: StreamConfig | None) -> StreamConfig:
    """Stream value, else basin default, else system default, for every field."""
    c = cfg or StreamConfig()
    d = defaults or StreamConfig()
    cts, dts = c.timestamping or Timestamping(), d.timestamping or Timestamping()
    return StreamConfig(
        storage_class=_pick(c.storage_class, d.storage_class) or StorageClass.EXPRESS,
        retention_policy=_pick(c.retention_policy, d.retention_policy) or SYSTEM_DEFAULT_RETENTION,
        timestamping=Timestamping(
            mode=_pick(cts.mode, dts.mode) or TimestampingMode.CLIENT_PREFER,
            uncapped=bool(_pick(cts.uncapped, dts.uncapped)),
        ),
        delete_on_empty_min_age_secs=_pick(
            c.delete_on_empty_min_age_secs, d.delete_on_empty_min_age_secs
        )
        or 0,
    )


def _patch(current: Any, change: Any, reset: Callable[[], Any]) -> Any:
    if change is UNSET:
        return current
    return reset() if change is None else change


def reconfigure_stream_config(
    stored: StreamConfig, rc: StreamReconfiguration, defaults: StreamConfig | None
) -> StreamConfig:
    """Apply a PATCH to a resolved config: absent keeps, null resets to the default."""
    base = resolve_stream_config(None, defaults)
    ts, base_ts = stored.timestamping or Timestamping(), base.timestamping or Timestamping()
    if rc.timestamping is UNSET:
        new_ts = ts
    elif rc.timestamping is None:
        new_ts = base_ts
    else:
        new_ts = Timestamping(
            mode=_patch(ts.mode, rc.timestamping.mode, lambda: base_ts.mode),
            uncapped=_patch(ts.uncapped, rc.timestamping.uncapped, lambda: base_ts.uncapped),
        )
    return StreamConfig(
        storage_class=_patch(stored.storage_class, rc.storage_class, lambda: base.storage_class),
        retention_policy=_patch(
            stored.retention_policy, rc.retention_policy, lambda: base.retention_policy
        ),
        timestamping=new_ts,
        delete_on_empty_min_age_secs=_patch(
            stored.delete_on_empty_min_age_secs,
            rc.delete_on_empty_min_age_secs,
            lambda: base.delete_on_empty_min_age_secs,
        ),
    )


def _patch_defaults(current: StreamConfig | None, rc: StreamReconfiguration) -> StreamConfig:
    c = current or StreamConfig()
    ts = c.timestamping or Timestamping()
    if rc.timestamping is UNSET:
        new_ts: Timestamping | None = c.timestamping
    elif rc.timestamping is None:
        new_ts = None
    else:
        new_ts = Timestamping(
            mode=_patch(ts.mode, rc.timestamping.mode, lambda: None),
            uncapped=_patch(ts.uncapped, rc.timestamping.uncapped, lambda: None),
        )
    return StreamConfig(
        storage_class=_patch(c.storage_class, rc.storage_class, lambda: None),
        retention_policy=_patch(c.retention_policy, rc.retention_policy, lambda: None),
        timestamping=new_ts,
        delete_on_empty_min_age_secs=_patch(
            c.delete_on_empty_min_age_secs, rc.delete_on_empty_min_age_secs, lambda: None
        ),
    )


def reconfigure_basin_config(cfg: BasinConfig, rc: BasinReconfiguration) -> BasinConfig:
    """Apply a basin PATCH (absent keeps, null resets)."""
    dsc = rc.default_stream_config
    new_dsc = (
        cfg.default_stream_config
        if dsc is UNSET
        else None
        if dsc is None
        else _patch_defaults(cfg.default_stream_config, dsc)
    )
    return BasinConfig(
        default_stream_config=new_dsc,
        stream_cipher=_patch(cfg.stream_cipher, rc.stream_cipher, lambda: None),
        create_stream_on_append=_patch(
            cfg.create_stream_on_append, rc.create_stream_on_append, lambda: False
        ),
        create_stream_on_read=_patch(
            cfg.create_stream_on_read, rc.create_stream_on_read, lambda: False
        ),
    )


class DoeTimer(NamedTuple):
    """One armed delete-on-empty check (docs/protocol.md#background-jobs).

    s2-lite arms one on create, on a reconfigure or ensure that turns delete-on-empty on, on
    writes (at most once per refresh period) and after a trim that empties the stream. Each is
    checked once, when due: at ``armed_at + delay`` plus the refresh period (lite's
    ``delete_on_empty_grace``, 600 s as in s2-lite), which pads the deadline so that writes
    skipped by the rate limit are still covered.
    """

    armed_at: float
    """Wall-clock seconds when armed."""
    delay: int
    """Retention age (0 when infinite, and after a trim) plus ``min_age``."""
    min_age: int
    """``min_age_secs`` in force when armed: the stream is deleted only if it was last written
    at least this long before the deadline."""


def doe_timer(config: StreamConfig, at: float, *, after_trim: bool = False) -> DoeTimer | None:
    """The check to arm for a (resolved) stream ``config`` at wall time ``at``; None when
    delete-on-empty is off."""
    min_age = config.delete_on_empty_min_age_secs or 0
    if min_age <= 0:
        return None
    retention = config.retention_policy
    # Records outlive their write by the retention age, so a check any earlier would find
    # them; after a trim emptied the stream there is nothing left to wait for.
    base = retention if isinstance(retention, int) and not after_trim else 0
    return DoeTimer(at, base + min_age, min_age)


def creation_key(token: str, config_json: str) -> str:
    """Idempotency key of a create: the token and the config exactly as given."""
    return hashlib.blake2b(f"{token}\0{config_json}".encode(), digest_size=16).hexdigest()


# --- records of the catalog -------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True, kw_only=True)
class StreamMeta:
    """A stream's catalog entry."""

    basin: str
    name: str
    config: StreamConfig
    cipher: EncryptionAlgorithm | None
    created_at: datetime = field(default_factory=_now)
    deleted_at: datetime | None = None
    creation_key: str | None = None
    doe_timers: list[DoeTimer] = field(default_factory=list)
    """Armed delete-on-empty checks, not yet due (persisted)."""
    doe_trim_seen: int = 0
    """The trim point the delete-on-empty job last looked at (persisted), so each trim that
    empties the stream arms one check."""

    def info(self) -> StreamInfo:
        """As listed."""
        return StreamInfo(
            name=self.name,
            created_at=self.created_at,
            deleted_at=self.deleted_at,
            cipher=self.cipher,
        )


@dataclass(slots=True, kw_only=True)
class BasinMeta:
    """A basin's catalog entry, with its streams kept sorted by name for listing."""

    name: str
    config: BasinConfig
    created_at: datetime = field(default_factory=_now)
    deleted_at: datetime | None = None
    creation_key: str | None = None
    streams: dict[str, StreamMeta] = field(default_factory=dict)
    stream_names: list[str] = field(default_factory=list)

    def info(self) -> BasinInfo:
        """As listed."""
        return BasinInfo(name=self.name, created_at=self.created_at, deleted_at=self.deleted_at)


def _utf8_key(name: str) -> bytes:
    return name.encode()


def paginate(
    names: list[str],
    prefix: str,
    start_after: str,
    limit: int,
    get: Callable[[str], T],
    keep: Callable[[str], bool] | None = None,
) -> Page[T]:
    """Byte-wise sorted listing with prefix, exclusive cursor and limit; ``keep``
    filters names before they count (an access token's scope, ``_auth.py``)."""
    lo_key = max(prefix.encode(), start_after.encode() + b"\0") if start_after else prefix.encode()
    i = bisect.bisect_left(names, lo_key, key=_utf8_key)
    out: list[T] = []
    while i < len(names) and names[i].startswith(prefix):
        if keep is None or keep(names[i]):
            if len(out) == limit:
                return Page(items=tuple(out), has_more=True)
            out.append(get(names[i]))
        i += 1
    return Page(items=tuple(out), has_more=False)


class Catalog:
    """Every basin and stream, with S2's provisioning rules."""

    def __init__(self) -> None:
        self.basins: dict[str, BasinMeta] = {}
        self._basin_names: list[str] = []
        self.on_change: Callable[[str, str | None], None] | None = None
        """Persistence hook: called with (basin, None) or (basin, stream) after each change."""

    def _changed(self, basin: str, stream: str | None = None) -> None:
        if self.on_change is not None:
            self.on_change(basin, stream)

    def stream_changed(self, s: StreamMeta) -> None:
        """Record a change the backend made to a stream's entry (persisted with the next
        commit, like every catalog change)."""
        self._changed(s.basin, s.name)

    def arm_delete_on_empty(self, s: StreamMeta, at: float, *, after_trim: bool = False) -> None:
        """Arm a delete-on-empty check for ``s`` at wall time ``at``, if it has one."""
        timer = doe_timer(s.config, at, after_trim=after_trim)
        if timer is not None:
            s.doe_timers.append(timer)
            self._changed(s.basin, s.name)

    def _doe_reconfigured(self, s: StreamMeta, before: StreamConfig) -> None:
        # As s2-lite: turning delete-on-empty on arms a check; turning it off drops the armed
        # ones (s2-lite would still run them with their old min age and delete the stream).
        if not s.config.delete_on_empty_min_age_secs:
            s.doe_timers.clear()
        elif not before.delete_on_empty_min_age_secs:
            self.arm_delete_on_empty(s, time.time())

    def restore(self, basins: list[BasinMeta]) -> None:
        """Load persisted basins and their streams (at start-up, before any request)."""
        for b in basins:
            b.stream_names = sorted(b.streams, key=_utf8_key)
            self.basins[b.name] = b
        self._basin_names = sorted(self.basins, key=_utf8_key)

    # basins

    def basin(self, name: str) -> BasinMeta:
        """The basin, or ``basin_not_found``."""
        b = self.basins.get(name)
        if b is None:
            raise err(ErrorCode.BASIN_NOT_FOUND, f"basin `{name}` not found")
        return b

    def active_basin(self, name: str) -> BasinMeta:
        """The basin unless it is being deleted."""
        b = self.basin(name)
        if b.deleted_at is not None:
            raise err(ErrorCode.BASIN_DELETION_PENDING, f"basin `{name}` is being deleted")
        return b

    def list_basins(
        self,
        prefix: str,
        start_after: str,
        limit: int,
        keep: Callable[[str], bool] | None = None,
    ) -> Page[BasinInfo]:
        """One page of basins (of those ``keep`` keeps)."""
        return paginate(
            self._basin_names, prefix, start_after, limit, lambda n: self.basins[n].info(), keep
        )

    def create_basin(
        self, name: str, config: BasinConfig, token: str | None
    ) -> tuple[BasinMeta, ProvisionResult]:
        """POST create; idempotent with a request token."""
        key = None if token is None else creation_key(token, dumps(basin_config_obj(config)))
        existing = self.basins.get(name)
        if existing is not None:
            if existing.deleted_at is not None:
                raise err(ErrorCode.BASIN_DELETION_PENDING, f"basin `{name}` is being deleted")
            if key is not None and existing.creation_key == key:
                return existing, ProvisionResult.NOOP
            raise err(ErrorCode.RESOURCE_ALREADY_EXISTS, f"basin `{name}` already exists")
        meta = BasinMeta(name=name, config=config, creation_key=key)
        self.basins[name] = meta
        bisect.insort(self._basin_names, name, key=_utf8_key)
        self._changed(name)
        return meta, ProvisionResult.CREATED

    def ensure_basin(self, name: str, config: BasinConfig) -> tuple[BasinMeta, ProvisionResult]:
        """PUT: create, or replace the whole config."""
        existing = self.basins.get(name)
        if existing is None:
            return self.create_basin(name, config, None)
        if existing.deleted_at is not None:
            raise err(ErrorCode.BASIN_DELETION_PENDING, f"basin `{name}` is being deleted")
        if existing.config == config:
            return existing, ProvisionResult.NOOP
        existing.config = config
        self._changed(name)
        return existing, ProvisionResult.UPDATED

    def reconfigure_basin(self, name: str, rc: BasinReconfiguration) -> BasinConfig:
        """PATCH a basin config."""
        b = self.active_basin(name)
        b.config = reconfigure_basin_config(b.config, rc)
        self._changed(name)
        return b.config

    def mark_basin_deleted(self, name: str) -> BasinMeta:
        """Start deleting a basin (idempotent)."""
        b = self.basin(name)
        if b.deleted_at is None:
            b.deleted_at = _now()
            self._changed(name)
        return b

    def remove_basin(self, name: str) -> None:
        """Forget a basin once its streams are gone."""
        if self.basins.pop(name, None) is not None:
            i = bisect.bisect_left(self._basin_names, name.encode(), key=_utf8_key)
            del self._basin_names[i]
            self._changed(name)

    # streams

    def stream(self, basin: str, name: str) -> StreamMeta | None:
        """The stream's entry, or None (``basin_not_found`` if the basin is unknown)."""
        return self.basin(basin).streams.get(name)

    def existing_stream(self, basin: str, name: str) -> StreamMeta:
        """The stream, or ``stream_not_found``."""
        b = self.basins.get(basin)
        s = None if b is None else b.streams.get(name)
        if s is None:
            raise err(ErrorCode.STREAM_NOT_FOUND, f"stream `{name}` in basin `{basin}` not found")
        return s

    def active_stream(self, basin: str, name: str) -> StreamMeta:
        """The stream unless it is being deleted."""
        s = self.existing_stream(basin, name)
        if s.deleted_at is not None:
            raise err(ErrorCode.STREAM_DELETION_PENDING, "stream deletion pending")
        return s

    def list_streams(
        self,
        basin: str,
        prefix: str,
        start_after: str,
        limit: int,
        keep: Callable[[str], bool] | None = None,
    ) -> Page[StreamInfo]:
        """One page of streams (of those ``keep`` keeps); an unknown basin lists nothing,
        as in s2-lite."""
        b = self.basins.get(basin)
        if b is None:
            return Page(items=(), has_more=False)
        return paginate(
            b.stream_names, prefix, start_after, limit, lambda n: b.streams[n].info(), keep
        )

    def create_stream(
        self, basin: str, name: str, config: StreamConfig | None, token: str | None
    ) -> tuple[StreamMeta, ProvisionResult]:
        """POST create; idempotent with a request token."""
        b = self.active_basin(basin)
        raw = dumps(stream_config_obj(config or StreamConfig()))
        key = None if token is None else creation_key(token, raw)
        existing = b.streams.get(name)
        if existing is not None:
            if existing.deleted_at is not None:
                raise err(ErrorCode.STREAM_DELETION_PENDING, "stream deletion pending")
            if key is not None and existing.creation_key == key:
                return existing, ProvisionResult.NOOP
            raise err(
                ErrorCode.RESOURCE_ALREADY_EXISTS,
                f"stream `{name}` in basin `{basin}` already exists",
            )
        meta = StreamMeta(
            basin=basin,
            name=name,
            config=resolve_stream_config(config, b.config.default_stream_config),
            cipher=b.config.stream_cipher,
            creation_key=key,
        )
        timer = doe_timer(meta.config, meta.created_at.timestamp())
        if timer is not None:
            meta.doe_timers.append(timer)
        b.streams[name] = meta
        bisect.insort(b.stream_names, name, key=_utf8_key)
        self._changed(basin, name)
        return meta, ProvisionResult.CREATED

    def ensure_stream(
        self, basin: str, name: str, config: StreamConfig | None
    ) -> tuple[StreamMeta, ProvisionResult]:
        """PUT: create, or replace the whole config."""
        b = self.active_basin(basin)
        existing = b.streams.get(name)
        if existing is None:
            return self.create_stream(basin, name, config, None)
        if existing.deleted_at is not None:
            raise err(ErrorCode.STREAM_DELETION_PENDING, "stream deletion pending")
        resolved = resolve_stream_config(config, b.config.default_stream_config)
        if existing.config == resolved:
            return existing, ProvisionResult.NOOP
        before, existing.config = existing.config, resolved
        self._doe_reconfigured(existing, before)
        self._changed(basin, name)
        return existing, ProvisionResult.UPDATED

    def reconfigure_stream(self, basin: str, name: str, rc: StreamReconfiguration) -> StreamMeta:
        """PATCH a stream config.

        The basin is checked first, as s2-lite does: an unknown basin is ``basin_not_found``
        and one being deleted ``basin_deletion_pending``, whatever its streams' state.
        """
        b = self.active_basin(basin)
        s = self.active_stream(basin, name)
        before = s.config
        s.config = reconfigure_stream_config(before, rc, b.config.default_stream_config)
        self._doe_reconfigured(s, before)
        self._changed(basin, name)
        return s

    def mark_stream_deleted(self, basin: str, name: str) -> StreamMeta:
        """Start deleting a stream (idempotent)."""
        s = self.existing_stream(basin, name)
        if s.deleted_at is None:
            s.deleted_at = _now()
            self._changed(basin, name)
        return s

    def remove_stream(self, basin: str, name: str) -> None:
        """Forget a stream once its records are gone."""
        b = self.basins.get(basin)
        if b is not None and b.streams.pop(name, None) is not None:
            i = bisect.bisect_left(b.stream_names, name.encode(), key=_utf8_key)
            del b.stream_names[i]
            self._changed(basin, name)
