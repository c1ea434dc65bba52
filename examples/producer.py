"""A producer: append records to a stream, batched, one ticket per record.

    S2_ACCOUNT_ENDPOINT=... S2_BASIN_ENDPOINT=... S2_ACCESS_TOKEN=... \\
        python examples/producer.py my-basin events --count 100

The producer collects records into batches (5 ms linger, up to 1000 records or 1 MiB) and
keeps several batches in flight; each ``submit`` returns a ticket that resolves to the
record's ack once it is durable. ``submit`` waits when too many bytes are unacknowledged
(``max_unacked_bytes``), so a fast loop cannot run away with memory.
"""

from __future__ import annotations

import argparse
import asyncio

import s2kit


async def produce(basin_name: str, stream_name: str, count: int) -> None:
    async with s2kit.S2.from_env() as s2:
        await s2.ensure_basin(basin_name)
        basin = s2.basin(basin_name)
        await basin.ensure_stream(stream_name)
        stream = basin.stream(stream_name)

        async with stream.producer() as producer:
            tickets = []
            for i in range(count):
                record = s2kit.Record(body=f"event {i}", headers=[("source", "producer.py")])
                tickets.append(await producer.submit(record))
            # Leaving the block flushes and waits for every ack (and raises if one failed).
        acks = [await ticket for ticket in tickets]
        batches = len({ack.batch.start.seq_num for ack in acks})
        print(f"appended {count} records at seq_nums {acks[0].seq_num}..{acks[-1].seq_num}")
        print(f"in {batches} batches")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("basin")
    parser.add_argument("stream")
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(produce(args.basin, args.stream, args.count))


if __name__ == "__main__":
    main()
