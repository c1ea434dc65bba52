"""Durable lite keeps no per-record state in memory (issue 5): the Python heap does not grow
with the data written. The same workload on in-memory lite shows the measure sees records."""

from __future__ import annotations

import gc
import tracemalloc
from typing import TYPE_CHECKING

from s2kit import S2, AppendInput, Endpoints, Record, SeqNum
from s2kit.server import Lite, LiteConfig

from ._util import BASIN, config

if TYPE_CHECKING:
    from pathlib import Path

    from s2kit import AppendTicket

MIB = 1 << 20
BATCHES = 100
BATCH = [Record(body=b"m" * 1000)] * 100  # ~100 KiB; 10 MiB in all


async def _heap_growth(lite: Lite) -> int:
    async with S2("x", endpoints=Endpoints.for_url(lite.url)) as c:
        await c.create_basin(BASIN)
        await c.basin(BASIN).create_stream("s")
        stream = c.basin(BASIN).stream("s")
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            async with stream.append_session() as session:
                tickets: list[AppendTicket] = [
                    await session.submit(AppendInput(records=BATCH)) for _ in range(BATCHES)
                ]
                assert (await tickets[-1]).end.seq_num == BATCHES * len(BATCH)
            del tickets
            # Reading everything back leaves nothing behind either.
            n = 0
            while n < BATCHES * len(BATCH):
                n += len((await stream.read(start=SeqNum(n))).records)
            gc.collect()
            return tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()


async def test_the_heap_does_not_grow_with_the_data(tmp_path: Path) -> None:
    async with Lite(LiteConfig()) as lite:
        in_memory = await _heap_growth(lite)
    async with Lite(config(tmp_path / "data")) as lite:
        durable = await _heap_growth(lite)
    assert in_memory > 8 * MIB, f"in-memory lite grew by only {in_memory / MIB:.1f} MiB"
    assert durable < 2 * MIB, f"durable lite grew by {durable / MIB:.1f} MiB for 10 MiB of data"
