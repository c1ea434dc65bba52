"""`make demo`: start lite on a free port, drive it with s2kit's SDK, stop it.

Shows a basin and a stream being created, records appended and read back, and a reader
following the tail while a producer appends.
"""

from __future__ import annotations

import asyncio

import s2kit
from s2kit.testing import LiteProcess


async def follow(stream: s2kit.Stream, want: int) -> list[str]:
    """Read from seq 0 and keep following the tail until `want` records were seen."""
    seen: list[str] = []
    async with stream.read_session(start=s2kit.SeqNum(0)) as session:
        async for batch in session:
            seen.extend(r.body.decode() for r in batch.records)
            if len(seen) >= want:
                break
    return seen


async def main(url: str) -> None:
    async with s2kit.S2("ignored", endpoints=s2kit.Endpoints.for_url(url)) as client:
        info = await client.create_basin("demo-basin")
        print(f"created basin {info.name}")
        basin = client.basin("demo-basin")
        await basin.create_stream("events")
        print("created stream events")
        stream = basin.stream("events")

        ack = await stream.append(
            s2kit.AppendInput(records=[s2kit.Record(body=f"hello {i}") for i in range(3)])
        )
        print(f"appended 3 records: seq_nums {ack.start.seq_num}..{ack.end.seq_num - 1}")

        batch = await stream.read(start=s2kit.SeqNum(0))
        for r in batch.records:
            print(f"  read back #{r.seq_num}: {r.body.decode()}")

        async with asyncio.TaskGroup() as tg:
            reader = tg.create_task(follow(stream, want=8))
            async with stream.producer() as producer:
                for i in range(5):
                    ticket = await producer.submit(s2kit.Record(body=f"live {i}"))
                    print(f"produced live {i}: seq_num {(await ticket).seq_num}")
                    await asyncio.sleep(0.05)
        seen = reader.result()
        print(f"the follower saw {len(seen)} records: {', '.join(seen)}")
        tail = await stream.check_tail()
        print(f"tail is now {tail.seq_num}")


if __name__ == "__main__":
    with LiteProcess() as lite:
        print(f"lite is serving on {lite.url}")
        asyncio.run(main(lite.url))
    print("lite stopped")
