"""Lite's backend: the catalog, the stream engine and storage behind one object, plus the
background jobs (deletion, trimming, retention, delete-on-empty, dormancy).

Handlers call it and never touch storage or owners directly, so the HTTP layer stays thin.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from s2kit.errors import ErrorCode
from s2kit.server._accounting import attach_usage
from s2kit.server._catalog import Catalog, StreamMeta, err
from s2kit.server._crypto import RecordCipher, parse_encryption_key
from s2kit.server._engine import FOLLOW_TICK, Committer, StreamOwner, wake_due
from s2kit.server._memory import DEFAULT_APPEND_INFLIGHT, Admission
from s2kit.server._meta import attach
from s2kit.server._prom import Telemetry
from s2kit.server._reads import ReadSettings
from s2kit.server._render import Renderings
from s2kit.server._storage import MemoryStorage, Reported, Storage, StreamKey

if TYPE_CHECKING:
    from s2kit.types import AppendAck, AppendInput, StreamConfig, StreamPosition
    from s2kit.wire._pbdec import PlainInput

log = logging.getLogger("s2kit.server")

DORMANT_AFTER = 60.0
DELETE_ON_EMPTY_GRACE = 600.0
"""s2-lite's delete-on-empty refresh period, which also pads every deadline
(docs/protocol.md#background-jobs)."""


class Backend:
    """Everything lite knows, and the jobs that keep it tidy."""

    def __init__(
        self,
        storage: Storage | None = None,
        *,
        flush_interval: float = 0.005,
        background_interval: float = 1.0,
        deletion_grace: float = 1.0,
        delete_on_empty_grace: float = DELETE_ON_EMPTY_GRACE,
        read_settings: ReadSettings | None = None,
        append_inflight_bytes: int = DEFAULT_APPEND_INFLIGHT,
    ) -> None:
        self.storage = storage or MemoryStorage()
        self.admission = Admission(append_inflight_bytes)
        """Appends sequenced and not yet durable, in all (``_memory.py``)."""
        self.renderings = Renderings()
        """Live batches rendered once for all their readers (``_render.py``)."""
        self.catalog = Catalog()
        # Durable storage restores the catalog and persists its changes with each commit.
        self.meta = attach(self.catalog, self.storage)
        self.committer = Committer(self.storage, flush_interval, self.meta)
        self.telemetry = Telemetry()
        """Operator counters (``/metrics``, ``_prom.py``)."""
        self.committer.on_commit = self.telemetry.committed
        self.usage = attach_usage(self.catalog, self.storage, self.meta)
        """Usage accounting behind the S2 metrics API (``_accounting.py``)."""
        self.read_settings = read_settings or ReadSettings()
        self.owners: dict[StreamKey, StreamOwner] = {}
        self.background_interval = background_interval
        self.deletion_grace = deletion_grace
        self.delete_on_empty_grace = delete_on_empty_grace
        self.draining = asyncio.Event()

    async def run(self) -> None:
        """Run the committer and the background jobs until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.committer.run())
            tg.create_task(self._background())
            tg.create_task(self._follow_ticker())
            tg.create_task(self.usage.run())

    async def _follow_ticker(self) -> None:
        """Wake followers whose heartbeat or read deadline is due (``_engine.wake_due``)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(FOLLOW_TICK)
            wake_due(self.owners.values(), loop.time())

    async def meta_durable(self) -> None:
        """Wait until every catalog change so far is durable (at once in memory).

        Raises:
            ServerError: ``storage`` if persisting them failed.
        """
        if self.meta is not None:
            await self.meta.durable()

    # --- streams ------------------------------------------------------------------------------

    async def append(
        self,
        basin: str,
        stream: str,
        config: StreamConfig | None,
        inp: AppendInput | PlainInput,
        sizes: list[int],
        cipher: RecordCipher | None,
    ) -> tuple[asyncio.Future[AppendAck], bool]:
        """Admit an append (waiting while too much is in flight), then sequence it.

        Returns the ack's future, and whether the batch's condition failed (the future then
        fails with the 412 once everything before it is durable; a session stops there).
        The condition is checked after admission, right before sequencing, so no other
        append can come between.

        Raises:
            ServerError: the stream is gone, the batch is invalid for it, or it is closing.
        """
        size = sum(sizes)
        arrived = time.perf_counter()
        await self.admission.admit(size)
        try:
            owner = self.owner(self.stream_for_append(basin, stream, config))
            if (failure := owner.condition_failure(inp)) is not None:
                self.admission.done(size)
                return owner.reject(failure), True
            future = owner.append(inp, sizes, cipher)
        except BaseException:
            self.admission.done(size)
            raise
        telemetry = self.telemetry
        telemetry.appended(len(sizes), size, time.perf_counter() - arrived)

        def settled(_: object) -> None:
            self.admission.done(size)
            telemetry.ack_seconds.observe(time.perf_counter() - arrived)

        future.add_done_callback(settled)
        return future, False

    def owner(self, meta: StreamMeta) -> StreamOwner:
        """The stream's owner, woken from storage if dormant."""
        key = (meta.basin, meta.name)
        owner = self.owners.get(key)
        if owner is None or owner.meta is not meta:
            state = self.storage.state(key)
            owner = StreamOwner(
                key=key,
                meta=meta,
                committer=self.committer,
                tail=state.tail,
                fencing_token=state.fencing_token,
                trim_point=state.trim_point,
                on_write=self._doe_write,
            )
            self.owners[key] = owner
        return owner

    def _resolve(
        self, basin: str, stream: str, *, auto_create: bool, config: StreamConfig | None
    ) -> StreamMeta:
        b = self.catalog.basin(basin)
        meta = b.streams.get(stream)
        if meta is None:
            if not auto_create:
                raise err(
                    ErrorCode.STREAM_NOT_FOUND, f"stream `{stream}` in basin `{basin}` not found"
                )
            # In a basin being deleted this is ``basin_deletion_pending``, as in s2-lite: the
            # create is what fails. (Existing streams keep working until the basin-deletion
            # job reaches them.)
            meta, _ = self.catalog.create_stream(basin, stream, config, None)
        if meta.deleted_at is not None:
            raise err(ErrorCode.STREAM_DELETION_PENDING, "stream deletion pending")
        return meta

    def stream_for_append(
        self, basin: str, stream: str, config: StreamConfig | None = None
    ) -> StreamMeta:
        """The stream to append to, created if the basin says so, with ``config`` (the
        ``s2-stream-config`` header) over the basin defaults."""
        auto = self.catalog.basin(basin).config.create_stream_on_append
        return self._resolve(basin, stream, auto_create=auto, config=config)

    def stream_for_read(
        self, basin: str, stream: str, config: StreamConfig | None = None
    ) -> StreamMeta:
        """The stream to read or check, created if the basin says so."""
        auto = self.catalog.basin(basin).config.create_stream_on_read
        return self._resolve(basin, stream, auto_create=auto, config=config)

    def cipher(self, meta: StreamMeta, key_header: str | None) -> RecordCipher | None:
        """The record cipher for an encrypted stream; None for a plain one."""
        if meta.cipher is None:
            return None
        if key_header is None:
            raise err(
                ErrorCode.BAD_HEADER, f"missing encryption key for stream cipher '{meta.cipher}'"
            )
        try:
            key = parse_encryption_key(key_header)
        except ValueError as exc:
            raise err(ErrorCode.BAD_HEADER, f"Invalid header `s2-encryption-key`: {exc}") from None
        aad = f"{meta.basin}\0{meta.name}\0{meta.created_at.timestamp()}".encode()
        return RecordCipher(meta.cipher, key, aad)

    def check_tail(
        self, basin: str, stream: str, config: StreamConfig | None = None
    ) -> StreamPosition:
        """The durable tail."""
        return self.owner(self.stream_for_read(basin, stream, config)).tail

    def delete_stream(self, basin: str, stream: str) -> None:
        """Start deleting a stream: refuse appends and reads now, drop records later."""
        meta = self.catalog.mark_stream_deleted(basin, stream)
        owner = self.owners.get((basin, stream))
        if owner is not None and owner.meta is meta:
            owner.close(err(ErrorCode.STREAM_DELETION_PENDING, "stream deletion pending"))

    def delete_basin(self, basin: str) -> None:
        """Start deleting a basin. Only the basin is marked now; the background job then
        deletes its streams and finally the basin, as s2-lite's does (docs/protocol.md#deletion)."""
        self.catalog.mark_basin_deleted(basin)

    # --- background ---------------------------------------------------------------------------

    async def _background(self) -> None:
        while True:
            await asyncio.sleep(self.background_interval)
            try:
                self.tick(time.monotonic())
            except Exception as exc:  # a bug in a job must not stop the others for good
                if not isinstance(exc, Reported):
                    log.exception("background jobs failed")

    def tick(self, now: float) -> None:
        """One pass of every background job (``now``: monotonic seconds)."""
        grace = self.deletion_grace
        for bname, b in list(self.catalog.basins.items()):
            deleted = b.deleted_at
            for sname, s in list(b.streams.items()):
                key = (bname, sname)
                if deleted is not None and s.deleted_at is None:
                    # The basin-deletion job reaching this stream: from here on it answers
                    # ``stream_deletion_pending``, and it goes after the grace like any other.
                    self.delete_stream(bname, sname)
                if s.deleted_at is not None:
                    if time.time() - s.deleted_at.timestamp() >= grace:
                        self._drop_stream(key)
                    continue
                try:
                    self.storage.collect(key, now)
                    self._delete_if_empty(s, key, now)
                except Exception as exc:  # one stream's trouble must not stop the others'
                    if not isinstance(exc, Reported):  # damaged data is logged by storage
                        log.exception("background jobs of %s/%s failed", *key)
            if deleted is not None and not b.streams and time.time() - deleted.timestamp() >= grace:
                self.catalog.remove_basin(bname)
        for key, owner in list(self.owners.items()):
            if not owner.busy and now - owner.last_active > DORMANT_AFTER:
                del self.owners[key]

    def _drop_stream(self, key: StreamKey) -> None:
        owner = self.owners.pop(key, None)
        if owner is not None and owner.busy and owner.closed is None:
            return
        self.storage.delete_stream(key)
        self.catalog.remove_stream(*key)

    def _doe_write(self, owner: StreamOwner) -> None:
        # s2-lite arms a check on writes only when records expire: on an infinite-retention
        # stream nothing but a trim can empty it, and the trim arms its own. Writes arm at
        # most once per refresh period; the deadline's padding by that period covers the
        # writes in between.
        meta = owner.meta
        if not isinstance(meta.config.retention_policy, int):
            return
        now = time.monotonic()
        last = owner.doe_refreshed
        if last is not None and now - last < self.delete_on_empty_grace:
            return
        owner.doe_refreshed = now
        self.catalog.arm_delete_on_empty(meta, time.time())

    def _delete_if_empty(self, meta: StreamMeta, key: StreamKey, now: float) -> None:
        """The delete-on-empty job for one stream, as s2-lite runs it: each armed
        check, once due, deletes the stream if it holds no records, has no append in flight,
        and was last written at least its ``min_age`` before the check's deadline."""
        if not meta.config.delete_on_empty_min_age_secs:
            return
        state = self.storage.state(key)
        empty = self.storage.first_seq_num(key) >= state.tail.seq_num
        to_wall = time.time() - time.monotonic()
        wall = now + to_wall
        if state.trim_point > meta.doe_trim_seen:
            meta.doe_trim_seen = state.trim_point
            self.catalog.stream_changed(meta)
            if empty:
                self.catalog.arm_delete_on_empty(meta, wall, after_trim=True)
        grace = self.delete_on_empty_grace
        due = [t for t in meta.doe_timers if t.armed_at + t.delay + grace <= wall]
        if not due:
            return
        # Each check runs once, eligible or not; later writes and trims arm new ones.
        meta.doe_timers = [t for t in meta.doe_timers if t.armed_at + t.delay + grace > wall]
        self.catalog.stream_changed(meta)
        if not empty:
            return
        owner = self.owners.get(key)
        if owner is not None and (owner.unflushed or owner.inflight):
            return
        last = state.last_write + to_wall if state.last_write else meta.created_at.timestamp()
        if any(last + t.min_age <= t.armed_at + t.delay + grace for t in due):
            log.info("deleting empty stream %s/%s", *key)
            self.delete_stream(*key)
