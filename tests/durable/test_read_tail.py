"""A catch-up read never passes the tail its stream has published, even when the store moved
its start up to a read floor (a trim) and counted from there (found by the history checker's
review: the read returned records whose appends were durable but not yet acked)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from s2kit import AppendInput, CommandRecord, ReadLimit, Record, SeqNum
from s2kit.server._lmdb import LmdbStorage

from ._util import BASIN, eventually, running

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from s2kit.server._storage import MetaRow, StreamCommit


class _SlowToPublish(LmdbStorage):
    """Durable storage whose commits return a while after they are in the store: the window
    in which records are stored but their stream's tail not yet published (a busy loop)."""

    delay = 0.0

    async def commit_async(
        self, batch: Sequence[StreamCommit], meta: Sequence[MetaRow] = ()
    ) -> None:
        await super().commit_async(batch, meta)
        await asyncio.sleep(self.delay)


async def test_a_read_from_below_the_floor_stops_at_the_published_tail(tmp_path: Path) -> None:
    storage = _SlowToPublish(tmp_path)
    async with running(tmp_path, storage=storage) as (_, c):
        await c.create_basin(BASIN)
        await c.basin(BASIN).create_stream("s")
        stream = c.basin(BASIN).stream("s")
        await stream.append(AppendInput(records=[Record(body=b"%d" % i) for i in range(100)]))
        await stream.append(AppendInput(records=[CommandRecord.trim(50)]))

        async def trimmed() -> bool:
            batch = await stream.read(SeqNum(0), limit=ReadLimit(count=1))
            return batch.records[0].seq_num == 50

        await eventually(trimmed, what="the trim to take effect")
        storage.delay = 1.0
        pending = asyncio.create_task(stream.append(AppendInput(records=[Record(body=b"x")])))
        await asyncio.sleep(0.3)  # stored, not yet published
        batch = await stream.read(SeqNum(0), limit=ReadLimit(count=1000))
        assert [r.seq_num for r in batch.records] == list(range(50, 101))  # not 101
        assert not pending.done()
        await pending
