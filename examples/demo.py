"""`make demo`: start lite on a free port, drive it with an S2 client, stop it.

Shows a basin and a stream being created, records appended and read back, and a reader
following the tail while a writer appends. The client here is the official `s2-sdk`
(interoperability is the point of lite); s2kit's own SDK takes over once it lands.
"""

from __future__ import annotations

import asyncio

import s2_sdk as s2

from s2kit.testing import LiteProcess


async def follow(stream: s2.S2Stream, want: int) -> list[str]:
    """Read from seq 0 and keep following the tail until `want` records were seen."""
    seen: list[str] = []
    async for batch in stream.read_session(start=s2.SeqNum(0)):
        seen.extend(r.body.decode() for r in batch.records)
        if len(seen) >= want:
            break
    return seen


async def main(url: str) -> None:
    endpoints = s2.Endpoints(account=url, basin=url)
    async with s2.S2("ignored", endpoints=endpoints) as client:
        basin = await client.create_basin("demo-basin")
        print(f"created basin {basin.name}")
        b = client.basin("demo-basin")
        await b.create_stream("events")
        print("created stream events")
        stream = b.stream("events")

        ack = await stream.append(
            s2.AppendInput(records=[s2.Record(body=f"hello {i}".encode()) for i in range(3)])
        )
        print(f"appended 3 records: seq_nums {ack.start.seq_num}..{ack.end.seq_num - 1}")

        batch = await stream.read(start=s2.SeqNum(0))
        for r in batch.records:
            print(f"  read back #{r.seq_num}: {r.body.decode()}")

        reader = asyncio.create_task(follow(stream, want=8))
        async with stream.append_session() as session:
            for i in range(5):
                ticket = await session.submit(
                    s2.AppendInput(records=[s2.Record(body=f"live {i}".encode())])
                )
                ack = await ticket
                print(f"appended live {i} at seq_num {ack.start.seq_num}")
                await asyncio.sleep(0.05)
        seen = await asyncio.wait_for(reader, timeout=10)
        print(f"the follower saw {len(seen)} records: {', '.join(seen)}")
        tail = await stream.check_tail()
        print(f"tail is now {tail.seq_num}")


if __name__ == "__main__":
    with LiteProcess() as lite:
        print(f"lite is serving on {lite.url}")
        asyncio.run(main(lite.url))
    print("lite stopped")
