"""Durable lite's background jobs, across restarts and down to the disk (issue 5, acceptance 2):
retention by age, trim commands, delete-on-empty, stream and basin deletion.

The first lite of each test runs with its jobs effectively off (a one-hour pass interval), so
whatever a job does after the restart is driven by state the restart recovered. Reclaimed
space is checked with the store's own counters (``LmdbStorage.statistics``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from s2kit import AppendInput, CommandRecord, Record, SeqNum, StreamConfig
from s2kit.errors import ReadUnwritten
from s2kit.server import _lmdb_txn

from ._util import BASIN, eventually, lmdb_of, running

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from s2kit import S2
    from s2kit.server import Lite

NO_JOBS = {"background_interval": 3600.0}


async def _stream_with(c: S2, name: str, config: StreamConfig | None, bodies: int) -> None:
    await c.ensure_basin(BASIN)
    await c.basin(BASIN).create_stream(name, config)
    records = [Record(body=f"r{i}".encode()) for i in range(bodies)]
    await c.basin(BASIN).stream(name).append(AppendInput(records=records))


async def _seqs(c: S2, name: str) -> list[int]:
    try:
        batch = await c.basin(BASIN).stream(name).read(start=SeqNum(0), clamp=True)
    except ReadUnwritten:
        return []
    return [r.seq_num for r in batch.records]


def _stored(lite: Lite) -> tuple[int, int]:
    stats = lmdb_of(lite).statistics()
    return stats.records, stats.index_entries


async def test_retention_expires_records_written_before_a_restart(tmp_path: Path) -> None:
    async with running(tmp_path, **NO_JOBS) as (lite, c):
        await _stream_with(c, "ttl", StreamConfig(retention_policy=1), 3)
        await _stream_with(c, "forever", StreamConfig(retention_policy="infinite"), 2)
        assert _stored(lite) == (5, 5)
    async with running(tmp_path) as (lite, c):

        async def expired() -> bool:
            return await _seqs(c, "ttl") == [] and _stored(lite) == (2, 2)

        await eventually(expired, what="retention to drop the records")
        assert await _seqs(c, "forever") == [0, 1]
        assert (await c.basin(BASIN).stream("ttl").check_tail()).seq_num == 3


async def test_a_trim_point_from_before_a_restart_is_applied(tmp_path: Path) -> None:
    async with running(tmp_path, **NO_JOBS) as (lite, c):
        await _stream_with(c, "t", None, 10)
        stream = c.basin(BASIN).stream("t")
        await stream.append(AppendInput(records=[CommandRecord.trim(6)]))
        assert _stored(lite) == (11, 11)
    async with running(tmp_path) as (lite, c):

        async def trimmed() -> bool:
            return await _seqs(c, "t") == [6, 7, 8, 9, 10] and _stored(lite) == (5, 5)

        await eventually(trimmed, what="the trim to apply")
        # A lower trim afterwards brings nothing back; the trim point only moves forward.
        await c.basin(BASIN).stream("t").append(AppendInput(records=[CommandRecord.trim(2)]))
        assert await _seqs(c, "t") == [6, 7, 8, 9, 10, 11]


async def test_delete_on_empty_after_a_restart(tmp_path: Path) -> None:
    config = StreamConfig(retention_policy=1, delete_on_empty_min_age_secs=1)
    async with running(tmp_path, **NO_JOBS) as (_, c):
        await _stream_with(c, "empties", config, 2)
        await _stream_with(c, "stays", None, 1)
    async with running(tmp_path) as (lite, c):

        async def deleted() -> bool:
            names = [s.name for s in (await c.basin(BASIN).list_streams()).items]
            return names == ["stays"] and lmdb_of(lite).statistics().streams == 1

        await eventually(deleted, what="the empty stream to be deleted")
        assert _stored(lite) == (1, 1)


async def test_stream_deletion_reclaims_space(tmp_path: Path) -> None:
    async with running(tmp_path) as (lite, c):
        await _stream_with(c, "big", None, 1000)
        await _stream_with(c, "small", None, 3)
        before = lmdb_of(lite).statistics()
        assert (before.streams, before.records) == (2, 1003)
        await c.basin(BASIN).delete_stream("big")

        async def reclaimed() -> bool:
            s = lmdb_of(lite).statistics()
            return (s.streams, s.records, s.index_entries, s.pending_deletions) == (1, 3, 3, 0)

        await eventually(reclaimed, what="the deleted stream's records to be removed")
        await c.basin(BASIN).create_stream("big")  # a new stream under the old name is empty
        assert await _seqs(c, "big") == []


async def test_basin_deletion_resumes_after_a_restart(tmp_path: Path) -> None:
    async with running(tmp_path, **NO_JOBS) as (_, c):
        await _stream_with(c, "a", None, 5)
        await _stream_with(c, "b", None, 5)
        await c.ensure_basin("kept-basin")
        await c.delete_basin(BASIN)
    async with running(tmp_path) as (lite, c):

        async def gone() -> bool:
            basins = [b.name for b in (await c.list_basins()).items]
            return basins == ["kept-basin"] and _stored(lite) == (0, 0)

        await eventually(gone, what="the basin deletion to finish")
        assert lmdb_of(lite).statistics().streams == 0
    async with running(tmp_path) as (_, c):  # and it stays finished
        assert [b.name for b in (await c.list_basins()).items] == ["kept-basin"]


async def test_an_interrupted_stream_removal_resumes_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small deletion chunks make the removal span many transactions, so closing lite
    # interrupts it; the durable gc row makes the next start finish the job.
    monkeypatch.setattr(_lmdb_txn, "CHUNK", 5)
    async with running(tmp_path) as (lite, c):
        await _stream_with(c, "big", None, 1000)
        await c.basin(BASIN).delete_stream("big")

        async def started() -> bool:
            return lmdb_of(lite).statistics().pending_deletions > 0

        await eventually(started, what="the removal to start")
        assert lmdb_of(lite).statistics().records > 0  # still going when lite stops
    async with running(tmp_path, **NO_JOBS) as (lite, c):

        async def finished() -> bool:
            s = lmdb_of(lite).statistics()
            return (s.records, s.index_entries, s.pending_deletions) == (0, 0, 0)

        await eventually(finished, what="the removal to finish")
        assert [s.name for s in (await c.basin(BASIN).list_streams()).items] == []
