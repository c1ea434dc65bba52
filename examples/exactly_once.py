"""An exactly-once writer: every entry lands on the stream once, across retries and crashes.

    python examples/exactly_once.py my-basin ledger --entries 100
    python examples/exactly_once.py my-basin ledger --entries 100 --crash-after 40  # then again

Three pieces (docs/retries.md explains each):

1. **A fencing token claims the stream.** At start the writer appends a ``fence`` command with
   a token of its own; from then on the server refuses appends without that token. A previous
   incarnation of this writer (a "zombie" that is slow to die) can no longer land anything,
   so once the fence is acked the stream's content is settled.
2. **The stream says where to resume.** Each record carries its entry number in a header; the
   writer reads the last records back and continues after the last entry found.
3. **The producer with ``match_seq_num``** numbers its batches, so a retried batch can never
   land twice; an ambiguous retry (the first copy may have landed) is settled by reading the
   stream back. With the default ``ALL`` retry policy every entry is then written exactly
   once, in order. (Under ``NO_SIDE_EFFECTS`` nothing is ever duplicated either, but a
   failure whose outcome is unknown stops the writer instead of being settled.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid

import s2kit

ENTRY = b"entry"


def entry_of(record: s2kit.SequencedRecord) -> int | None:
    """The entry number a record carries; None for other records (fences, for example)."""
    for name, value in record.headers:
        if name == ENTRY:
            return int(value)
    return None


async def claim(stream: s2kit.Stream) -> tuple[str, int]:
    """Fence the stream with a new token; return it and the seq_num after the fence."""
    token = uuid.uuid4().hex[:16]
    ack = await stream.append(s2kit.AppendInput(records=[s2kit.CommandRecord.fence(token)]))
    return token, ack.end.seq_num


async def next_entry(stream: s2kit.Stream, tail: int) -> int:
    """The entry after the last one on the stream (0 on a stream without entries).

    Only the newest records are read: fences (one per start) are the only other records, so
    the last entry is near the tail; the window widens until it is found or covers the stream.
    """
    window = 16
    while True:
        batch = await stream.read(
            start=s2kit.TailOffset(window), limit=s2kit.ReadLimit(count=window)
        )
        entries = [e for r in batch.records if (e := entry_of(r)) is not None]
        if entries:
            return entries[-1] + 1
        if window >= tail:
            return 0
        window *= 16


async def write(basin_name: str, stream_name: str, entries: int, crash_after: int | None) -> None:
    async with s2kit.S2.from_env() as s2:  # the default retry policy, ALL
        await s2.ensure_basin(basin_name)
        basin = s2.basin(basin_name)
        await basin.ensure_stream(stream_name)
        stream = basin.stream(stream_name)

        token, tail = await claim(stream)
        first = await next_entry(stream, tail)
        print(f"claimed the stream at seq_num {tail}; resuming at entry {first}")

        producer = stream.producer(fencing_token=token, match_seq_num=tail)
        async with producer:
            for i in range(first, entries):
                record = s2kit.Record(body=f"entry {i}", headers=[(ENTRY, str(i).encode())])
                ticket = await producer.submit(record)
                if crash_after is not None and i + 1 - first == crash_after:
                    await ticket
                    print(f"crashing after entry {i}")
                    os._exit(3)  # no cleanup at all, as a crash; the next run resumes
        written = entries - first
        print(f"wrote entries {first}..{entries - 1} ({written} records)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("basin")
    parser.add_argument("stream")
    parser.add_argument("--entries", type=int, default=10, help="entries 0..N-1 to write")
    parser.add_argument("--crash-after", type=int, help="exit abruptly after this many entries")
    args = parser.parse_args()
    asyncio.run(write(args.basin, args.stream, args.entries, args.crash_after))


if __name__ == "__main__":
    main()
