"""A full-speed writer, alone and with thousands of readers that never read.

Command: ``.venv/bin/python bench/slow_readers.py [--readers 2000] [--seconds 10]``

Two runs against the same kind of lite (a fresh ``s2kit lite`` process each, in memory):

1. **alone**: one writer appends 1 MiB batches (32 records of 32 KiB) through an append
   session with up to 8 batches in flight, for ``--seconds``; MiB/s acked, and the ack latency
   of every batch (p50, p99);
2. **with silent readers**: the same, after ``--readers`` SSE readers of the stream's live
   tail have connected (each its own HTTP/1.1 socket with a 4 KiB receive buffer, never read).

Reported side by side: throughput and ack latency as a ratio of run 2 to run 1 (the targets:
throughput >= 0.8x, ack p99 <= 2x), and lite's peak anonymous memory (``RssAnon``) growth
beyond the data written (kept in memory), which the memory budget bounds
(docs/lite-limits.md). The readers run in a child process,
so their sockets do not share this process's file-descriptor limit or event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time

import s2kit
from _harness import MIB, Server, markdown_table, nearest_rank, proc_memory_bytes

BASIN, STREAM = "slow-readers", "s"
BATCH = s2kit.AppendInput(records=[s2kit.Record(body=b"x" * (32 * 1024 - 8))] * 32)


async def write(url: str, seconds: float, pid: int) -> tuple[float, list[float], int]:
    """MiB/s acked, ack latencies, and lite's peak RssAnon growth beyond the data written."""
    async with s2kit.S2("bench", endpoints=s2kit.Endpoints.for_url(url)) as s2:
        stream = s2.basin(BASIN).stream(STREAM)
        latencies: list[float] = []
        base = peak = proc_memory_bytes(pid, "RssAnon")
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with stream.append_session(max_unacked_batches=8) as session:
            pending: list[tuple[float, s2kit.client.AppendTicket]] = []
            while loop.time() - started < seconds:
                pending.append((loop.time(), await session.submit(BATCH)))
                while len(pending) >= 8 or (pending and pending[0][1].done()):
                    sent, ticket = pending.pop(0)
                    await ticket
                    latencies.append(loop.time() - sent)
                if len(latencies) % 16 == 0:
                    peak = max(peak, proc_memory_bytes(pid, "RssAnon"))
            for sent, ticket in pending:
                await ticket
                latencies.append(loop.time() - sent)
        elapsed = loop.time() - started
        # The records are kept in memory: what lite holds beyond them is the growth less the
        # data written (one MiB per batch acked).
        beyond = max(peak, proc_memory_bytes(pid, "RssAnon")) - base - len(latencies) * MIB
        return len(latencies) / elapsed, sorted(latencies), beyond


def silent_readers(port: int, count: int) -> None:
    """Child process: ``count`` SSE readers that never read; says ``ready`` when they are in."""
    request = (
        f"GET /v1/streams/{STREAM}/records HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"s2-basin: {BASIN}\r\naccept: text/event-stream\r\n\r\n"
    ).encode()
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(request)
        socks.append(sock)
    print("ready", flush=True)
    time.sleep(3600)


async def run(readers: int, seconds: float) -> tuple[float, list[float], int]:
    with Server() as server:
        async with s2kit.S2("bench", endpoints=s2kit.Endpoints.for_url(server.url)) as s2:
            await s2.create_basin(BASIN)
            await s2.basin(BASIN).create_stream(STREAM)
        child = None
        if readers:
            port = int(server.url.rsplit(":", 1)[1])
            child = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--child", str(port), str(readers),
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert child.stdout is not None
            await child.stdout.readline()  # "ready"
            await asyncio.sleep(1)
        try:
            return await write(server.url, seconds, server.pid)
        finally:
            if child is not None:
                child.kill()
                await child.wait()


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        silent_readers(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    alone = asyncio.run(run(0, args.seconds))
    crowded = asyncio.run(run(args.readers, args.seconds))
    rows = []
    for name, i, pct in (("ack p50", 1, 0.5), ("ack p99", 1, 0.99)):
        a, c = nearest_rank(alone[i], pct), nearest_rank(crowded[i], pct)
        rows.append((name, f"{a * 1000:.1f} ms", f"{c * 1000:.1f} ms", f"{c / a:.2f}x"))
    rows.insert(0, ("MiB/s acked", f"{alone[0]:.0f}", f"{crowded[0]:.0f}",
                    f"{crowded[0] / alone[0]:.2f}x"))  # fmt: skip
    growth = [f"{run[2] / MIB:.0f} MiB" for run in (alone, crowded)]
    rows.append(("lite RssAnon growth beyond the data", *growth, ""))
    print(markdown_table(["figure", "alone", f"{args.readers} silent readers", "ratio"], rows))


if __name__ == "__main__":
    main()
