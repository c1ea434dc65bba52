"""The blocking API, ``s2kit.sync``: the same client, for code without an event loop.

    python examples/blocking.py my-basin notes

Every call runs on one background event loop shared by the process, so retries, outcomes and
types are those of the async SDK. Sessions and producers are context managers, read sessions
are iterators, and tickets have ``result(timeout)`` (a timeout only stops the wait; the append
carries on).
"""

from __future__ import annotations

import argparse

import s2kit
from s2kit.sync import S2


def run(basin_name: str, stream_name: str) -> None:
    with S2.from_env() as s2:
        s2.ensure_basin(basin_name)
        s2.basin(basin_name).ensure_stream(stream_name)
        stream = s2.basin(basin_name).stream(stream_name)
        start = stream.check_tail().seq_num

        # One batch, appended atomically.
        ack = stream.append(
            s2kit.AppendInput(records=[s2kit.Record(body="first"), s2kit.Record(body="second")])
        )
        print(f"append: seq_nums {ack.start.seq_num}..{ack.end.seq_num - 1}")

        # A producer batches single records; each submit returns a ticket at once.
        with stream.producer() as producer:
            tickets = [producer.submit(s2kit.Record(body=f"note {i}")) for i in range(5)]
        print("producer:", [t.result(timeout=10).seq_num for t in tickets])

        # A read session from where this run started, up to the tail, then it ends (wait=0).
        with stream.read_session(start=s2kit.SeqNum(start), wait=0) as session:
            for batch in session:
                for record in batch.records:
                    print(f"read {record.seq_num}: {record.body.decode()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("basin")
    parser.add_argument("stream")
    args = parser.parse_args()
    run(args.basin, args.stream)


if __name__ == "__main__":
    main()
