"""A consumer that resumes where it stopped: it stores the next position after each batch.

    python examples/consumer.py my-basin events --position events.pos          # follows
    python examples/consumer.py my-basin events --position events.pos --once   # to the tail

The position file holds the seq_num of the next record to process. It is written after each
batch is processed, atomically (a temporary file renamed over it), so after a crash or a
Ctrl+C the consumer starts again at the first record it had not finished: every record is
processed at least once, and at most one batch again. Make ``process`` idempotent (or store
the position in the same transaction as its effects) for exactly once.

Within a run, the read session itself reconnects after network failures from the record after
the last one delivered, so nothing is skipped or repeated there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

import s2kit


def load_position(path: Path) -> int:
    try:
        return int(path.read_text())
    except FileNotFoundError:
        return 0


def store_position(path: Path, seq_num: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(str(seq_num))
    os.replace(tmp, path)  # atomic: the file always holds a whole position


def process(record: s2kit.SequencedRecord) -> None:
    print(f"{record.seq_num}: {record.body.decode(errors='replace')}")


async def consume(basin: str, stream_name: str, position: Path, once: bool) -> int:
    """Process records from the stored position; return how many were processed."""
    start = load_position(position)
    processed = 0
    async with s2kit.S2.from_env() as s2:
        stream = s2.basin(basin).stream(stream_name)
        # wait=0: read to the tail and stop. Without it the session follows the tail forever,
        # with heartbeats while the stream is idle.
        async with stream.read_session(
            start=s2kit.SeqNum(start), wait=0 if once else None
        ) as session:
            async for batch in session:
                for record in batch.records:
                    process(record)
                if batch.records:
                    store_position(position, batch.records[-1].seq_num + 1)
                    processed += len(batch.records)
    return processed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("basin")
    parser.add_argument("stream")
    parser.add_argument("--position", type=Path, required=True, help="file holding the position")
    parser.add_argument("--once", action="store_true", help="stop at the tail")
    args = parser.parse_args()
    try:
        count = asyncio.run(consume(args.basin, args.stream, args.position, args.once))
    except KeyboardInterrupt:
        return  # the position file already holds where to start next time
    print(f"processed {count} records; next position {load_position(args.position)}")


if __name__ == "__main__":
    main()
