"""The ``s2 bench`` workload, independent of the SDK that carries it.

Defined in docs/bench-method.md#workload.

Theory of operation
-------------------
Each record has exactly one header, ``hash``, whose value is the chained xxh3-64 of the
previous chain value (8 bytes big-endian) followed by the body, starting from 0. Header and
overhead take 8 + 2 + 4 + 8 = 22 bytes, so the body is ``record_size - 22`` bytes and the
metered size is exactly ``record_size``. The timestamp is microseconds since the benchmark
started, kept as sent by a ClientRequire + uncapped stream, so a reader on the same monotonic
clock measures end-to-end latency as arrival minus timestamp.

The writer paces open-loop: if the bytes submitted so far would take longer at the target rate
than the time elapsed, it sleeps the difference; otherwise it submits the next record. It is not
a token bucket, so it catches up after a stall. Ack latency runs from just after ``submit``
returned (the producer's permit is granted then; linger and batching are included) to the
record's ack, which a drain task awaits in order.

Readers verify the chain record by record: a wrong body length or hash header, a record whose
hash equals the previous chain value (a duplicate) or that does not extend the chain (a loss or
corruption) raises :class:`VerificationError`. At the end the readers' counts and final chain
values must equal the writer's.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from s2kit.cli._bench_report import MIB, Rate

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

OVERHEAD = 8 + 2 + len(b"hash") + 8
MIN_RECORD_SIZE = 128
MAX_RECORD_SIZE = 1024 * 1024  # exclusive
_POOL = 1 << 20
_RECENT = 256


class VerificationError(Exception):
    """The records read back are not the records written (exit code 3)."""


class ReadRecord(Protocol):
    """A record as either SDK returns it."""

    @property
    def seq_num(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def headers(self) -> Sequence[tuple[bytes, bytes]]: ...
    @property
    def body(self) -> bytes: ...


class BenchProducer(Protocol):
    """Submits one bench record; the awaitable resolves to something with ``seq_num``."""

    async def submit(self, body: bytes, hash_value: bytes, timestamp: int) -> Awaitable[Any]: ...


class Driver(Protocol):
    """What the workload needs from an SDK."""

    label: str
    errors: tuple[type[BaseException], ...]

    async def create_stream(self, stream: str, storage_class: str | None) -> None: ...
    async def delete_stream(self, stream: str) -> None: ...
    def producer(self, stream: str) -> contextlib.AbstractAsyncContextManager[BenchProducer]: ...
    def read(self, stream: str, *, follow: bool) -> AsyncGenerator[Sequence[ReadRecord]]: ...
    async def aclose(self) -> None: ...


def now_ns() -> int:
    """The benchmark's clock."""
    return time.monotonic_ns()


class Bodies:
    """Pseudo-random bodies of one length, cut from a pool filled by a generator seeded with 0."""

    def __init__(self, size: int) -> None:
        self._rng = random.Random(0)
        self._pool = self._rng.randbytes(_POOL + size)
        self._size = size

    def next(self) -> bytes:
        """A body."""
        off = self._rng.randrange(_POOL)
        return self._pool[off : off + self._size]


class ChainVerifier:
    """Checks records one by one against the chained hash."""

    def __init__(self, what: str, body_len: int, xxh3: Callable[[bytes], int]) -> None:
        self.what = what
        self.body_len = body_len
        self.chain = 0
        self.count = 0
        self._xxh3 = xxh3

    def feed(self, r: ReadRecord) -> None:
        """Verify the next record.

        Raises:
            VerificationError: it does not continue the chain.
        """
        if len(r.body) != self.body_len:
            self._fail(r, f"body is {len(r.body)} bytes, expected {self.body_len}")
        values = [v for n, v in r.headers if n == b"hash"]
        if len(r.headers) != 1 or len(values) != 1 or len(values[0]) != 8:
            self._fail(r, "expected exactly one 8-byte `hash` header")
        value = int.from_bytes(values[0], "big")
        if r.seq_num > 0 and value == self.chain:
            self._fail(r, "duplicate record hash (a record was appended twice)")
        if value != self._xxh3(self.chain.to_bytes(8, "big") + r.body):
            self._fail(r, "hash chain broken (a record was lost, reordered or corrupted)")
        self.chain = value
        self.count += 1

    def _fail(self, r: ReadRecord, why: str) -> None:
        raise VerificationError(f"{self.what}: seq_num {r.seq_num}: {why}")


@dataclass(slots=True)
class Meter:
    """Records counted over a running or finished interval."""

    record_size: int
    records: int = 0
    started: int = 0
    ended: int = 0

    def rate(self) -> Rate:
        """The cumulative rate so far (or final)."""
        end = self.ended or now_ns()
        secs = (end - self.started) / 1e9 if self.started else 0.0
        return Rate(records=self.records, record_size=self.record_size, seconds=secs)


@dataclass(slots=True, kw_only=True)
class Workload:
    """The parameters of a run."""

    record_size: int
    target_mibps: int
    duration: float
    bench_start: int


class Writer:
    """One producer, paced open-loop, with per-record ack latency."""

    def __init__(self, w: Workload, xxh3: Callable[[bytes], int]) -> None:
        self.w = w
        self.meter = Meter(w.record_size)
        self.ack_ns: list[int] = []
        self.chain = 0
        self.submitted = 0
        self.next_seq_num = 0
        self._xxh3 = xxh3
        self._bodies = Bodies(w.record_size - OVERHEAD)

    async def run(self, producer: BenchProducer, stop: asyncio.Event) -> None:
        """Submit until the duration passes (or ``stop``), then wait for every ack."""
        acks: asyncio.Queue[tuple[Awaitable[Any], int] | None] = asyncio.Queue()
        drain = asyncio.create_task(self._drain(acks), name="s2kit-bench-acks")
        try:
            await self._submit_loop(producer, stop, acks, drain)
            acks.put_nowait(None)
            await drain
        finally:
            if not drain.done():
                drain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drain
            self.meter.ended = now_ns()

    async def _submit_loop(
        self,
        producer: BenchProducer,
        stop: asyncio.Event,
        acks: asyncio.Queue[tuple[Awaitable[Any], int] | None],
        drain: asyncio.Task[None],
    ) -> None:
        rate = self.w.target_mibps * MIB / 1e9  # bytes per nanosecond
        size = self.w.record_size
        t0 = self.meter.started = now_ns()
        end = t0 + round(self.w.duration * 1e9)
        chain_be = (0).to_bytes(8, "big")
        submitted_bytes = 0
        while not stop.is_set() and not drain.done():
            now = now_ns()
            if now >= end:
                return
            due = t0 + submitted_bytes / rate
            if due > now:
                # Capped so that Ctrl+C and the end of the run are noticed promptly.
                await asyncio.sleep(min(due - now, end - now, 100_000_000) / 1e9)
                continue
            body = self._bodies.next()
            self.chain = self._xxh3(chain_be + body)
            chain_be = self.chain.to_bytes(8, "big")
            ts = (now_ns() - self.w.bench_start) // 1000
            ticket = await producer.submit(body, chain_be, ts)
            acks.put_nowait((ticket, now_ns()))
            submitted_bytes += size
            self.submitted += 1

    async def _drain(self, acks: asyncio.Queue[tuple[Awaitable[Any], int] | None]) -> None:
        meter = self.meter
        while (item := await acks.get()) is not None:
            ticket, submitted_at = item
            ack = await ticket
            latency = now_ns() - submitted_at
            self.ack_ns.append(latency)
            meter.records += 1
            self.next_seq_num = ack.seq_num + 1


class Reader:
    """A read from seq_num 0 that verifies the chain and measures end-to-end latency."""

    def __init__(self, what: str, w: Workload, xxh3: Callable[[bytes], int]) -> None:
        self.w = w
        self.meter = Meter(w.record_size)
        self.e2e_ns: list[int] = []
        self.verifier = ChainVerifier(what, w.record_size - OVERHEAD, xxh3)
        self.target: int | None = None
        self.reached = asyncio.Event()

    def set_target(self, n: int) -> None:
        """Stop once ``n`` records have been read (the writer's ``next_seq_num``)."""
        self.target = n
        self._check()

    def _check(self) -> None:
        if self.target is not None and self.meter.records >= self.target:
            if not self.reached.is_set():
                self.meter.ended = now_ns()
            self.reached.set()

    async def run(self, batches: AsyncGenerator[Sequence[ReadRecord]]) -> None:
        """Consume ``batches`` until the target is reached or the session ends."""
        self.meter.started = now_ns()
        start = self.w.bench_start
        verify = self.verifier.feed
        lat = self.e2e_ns
        async with contextlib.aclosing(batches):
            async for batch in batches:
                arrival_us = (now_ns() - start) // 1000
                for r in batch:
                    verify(r)
                    lat.append((arrival_us - r.timestamp) * 1000)
                self.meter.records += len(batch)
                self._check()
                if self.reached.is_set():
                    return
        if not self.meter.ended:
            self.meter.ended = now_ns()

    def check_against(self, writer: Writer, what: str) -> None:
        """The read must have seen exactly the writer's records.

        Raises:
            VerificationError: the count or the final chain value differ.
        """
        v = self.verifier
        if v.count != writer.meter.records:
            raise VerificationError(
                f"{what}: read {v.count} records, the writer had {writer.meter.records} acked"
            )
        if v.chain != writer.chain:
            raise VerificationError(f"{what}: final chain value differs from the writer's")


def recent(samples: list[int]) -> list[int]:
    """The latest samples, for the live view."""
    return samples[-_RECENT:]
