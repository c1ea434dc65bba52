"""Lite at scale, CI-sized (issue 14): 100 streams, each with a writer appending a record
every 0.1 s and 10 read sessions tailing it (1,000 sessions), for 10 s. Every append must be
acked (none times out) and every reader must get every record of its stream, in order.

Lite runs as a child process (``s2kit lite``), so the test's clients and lite share the
machine's cores as they would in use. The full-size case (1,000 streams x 10,000 readers)
is ``bench/scale.py``; docs/benchmarks.md has its figures.
"""

from __future__ import annotations

import asyncio

import pytest

import s2kit
from s2kit.testing import LiteProcess

pytestmark = pytest.mark.timeout(180)

STREAMS, READERS, RATE, SECONDS = 100, 10, 10.0, 10.0
BASIN = "scale-test"


async def test_hundred_streams_thousand_readers() -> None:
    with LiteProcess() as lite:
        endpoints = s2kit.Endpoints.for_url(lite.url)
        async with s2kit.S2("t", endpoints=endpoints) as setup:
            await setup.create_basin(BASIN)
            names = [f"s{i:03d}" for i in range(STREAMS)]
            await asyncio.gather(*(setup.basin(BASIN).create_stream(n) for n in names))
        async with (
            s2kit.S2("t", endpoints=endpoints) as readers_client,
            s2kit.S2("t", endpoints=endpoints) as writer_client,
        ):
            written: dict[str, int] = {}
            got: dict[tuple[str, int], list[int]] = {}

            async def read(name: str, k: int) -> None:
                seqs = got.setdefault((name, k), [])
                session = readers_client.basin(BASIN).stream(name).read_session(s2kit.SeqNum(0))
                async with session:
                    async for batch in session:
                        seqs.extend(r.seq_num for r in batch.records)

            async def write(i: int, name: str) -> None:
                stream = writer_client.basin(BASIN).stream(name)
                loop = asyncio.get_running_loop()
                due = loop.time() + i / (STREAMS * RATE)
                end = loop.time() + SECONDS
                n = 0
                while due < end:
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    ack = await stream.append(
                        s2kit.AppendInput(records=[s2kit.Record(body=b"r" * 1016)])
                    )
                    assert ack.start.seq_num == n
                    n += 1
                    due += 1 / RATE
                written[name] = n

            readers = [asyncio.create_task(read(name, k)) for name in names for k in range(READERS)]
            await asyncio.sleep(1)  # every session open and following
            await asyncio.gather(*(write(i, name) for i, name in enumerate(names)))

            def caught_up() -> bool:
                return all(len(seqs) >= written[name] for (name, _), seqs in got.items())

            async with asyncio.timeout(60):
                while not caught_up():  # noqa: ASYNC110 (the readers' progress has no event)
                    await asyncio.sleep(0.1)
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    assert sum(written.values()) >= STREAMS * RATE * SECONDS * 0.9
    for (name, _), seqs in got.items():
        assert seqs == list(range(written[name])), f"{name}: {len(seqs)} of {written[name]}"
