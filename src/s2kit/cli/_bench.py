"""``s2kit bench BASIN``: the official ``s2 bench``, defined the same way (docs/bench-method.md).

A temporary ``bench/<uuid>`` stream (retention 1 h, delete-on-empty after 60 s, ClientRequire +
uncapped timestamps) gets one paced producer and, from the same moment, a live reader from
seq_num 0; after ``--catchup-delay`` a second reader reads it from the start to the tail. The
report goes to stderr in the official layout (and as JSON on stdout with ``--json``). The stream
is deleted when the run succeeds (Ctrl+C included) and kept after a failure, for inspection.

``--sdk official`` runs the same workload through the official ``s2-sdk`` package, so both SDKs
can be compared against one server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
from typing import TYPE_CHECKING, Any

import s2kit
from s2kit import Record, SeqNum, StorageClass, StreamConfig, Timestamping, TimestampingMode
from s2kit.cli._bench_report import (
    LiveView,
    debug_duration,
    human_duration,
    latency_json,
    latency_table,
    tables,
)
from s2kit.cli._bench_workload import (
    MAX_RECORD_SIZE,
    MIN_RECORD_SIZE,
    Driver,
    Reader,
    ReadRecord,
    VerificationError,
    Workload,
    Writer,
    now_ns,
    recent,
)
from s2kit.cli._config import (
    Settings,
    basin_arg,
    choice_of,
    make_client,
    parse_duration,
    positive_int,
)
from s2kit.cli._output import describe_error, missing_extra, note
from s2kit.errors import S2Error

if TYPE_CHECKING:
    from collections.abc import Callable

    from s2kit import Producer
    from s2kit.cli._commands import Commands

CATCHUP_TIMEOUT = 300.0
EXIT_VERIFICATION = 3


class BenchError(Exception):
    """The benchmark could not complete (exit code 1)."""


class _S2kitProducer:
    def __init__(self, producer: Producer) -> None:
        self._p = producer

    async def submit(self, body: bytes, hash_value: bytes, timestamp: int) -> Awaitable[Any]:
        return await self._p.submit(
            Record(body=body, headers=((b"hash", hash_value),), timestamp=timestamp)
        )


class S2kitDriver:
    """The workload over s2kit's SDK (append retry policy NO_SIDE_EFFECTS, as ``s2 bench``)."""

    errors: tuple[type[BaseException], ...] = (S2Error,)

    def __init__(self, settings: Settings, basin: str) -> None:
        self.label = f"s2kit {s2kit.__version__}"
        self._s2 = make_client(settings, no_side_effects=True)
        self._basin = self._s2.basin(basin)

    async def create_stream(self, stream: str, storage_class: str | None) -> None:
        config = StreamConfig(
            storage_class=None if storage_class is None else StorageClass(storage_class),
            retention_policy=3600,
            timestamping=Timestamping(mode=TimestampingMode.CLIENT_REQUIRE, uncapped=True),
            delete_on_empty_min_age_secs=60,
        )
        await self._basin.create_stream(stream, config)

    async def delete_stream(self, stream: str) -> None:
        await self._basin.delete_stream(stream)

    @contextlib.asynccontextmanager
    async def producer(self, stream: str) -> AsyncIterator[_S2kitProducer]:
        async with self._basin.stream(stream).producer() as p:
            yield _S2kitProducer(p)

    async def read(self, stream: str, *, follow: bool) -> AsyncGenerator[Sequence[ReadRecord]]:
        session = self._basin.stream(stream).read_session(SeqNum(0), wait=None if follow else 0)
        async with session:
            async for batch in session:
                yield batch.records

    async def aclose(self) -> None:
        await self._s2.aclose()


class _Sources:
    """What the live view shows."""

    def __init__(self, writer: Writer, reader: Reader) -> None:
        self.writer, self.reader = writer, reader

    def elapsed(self) -> float:
        started = self.writer.meter.started
        return (now_ns() - started) / 1e9 if started else 0.0

    def rows(self) -> list[tuple[str, Any, list[int], str]]:
        w, r = self.writer, self.reader
        return [
            ("Write", w.meter.rate(), recent(w.ack_ns), "ack"),
            ("Read", r.meter.rate(), recent(r.e2e_ns), "e2e"),
        ]


async def _first(*aws: Awaitable[Any]) -> None:
    """Wait until the first of ``aws`` is done (the others are cancelled unless tasks)."""
    tasks = [a if isinstance(a, asyncio.Task) else asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for a, t in zip(aws, tasks, strict=True):
            if t is not a and not t.done():
                t.cancel()


async def _cancel(*tasks: asyncio.Task[Any]) -> None:
    for t in tasks:
        if not t.done():
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t


class Bench:
    """One run: write and live-read, report, catch up, verify."""

    def __init__(self, driver: Driver, args: argparse.Namespace, xxh3: Callable[[bytes], int]):
        self.driver = driver
        self.args = args
        self.xxh3 = xxh3
        self.stop = asyncio.Event()
        self.stream = f"bench/{uuid.uuid4()}"
        self.w = Workload(
            record_size=args.record_size,
            target_mibps=args.target_mibps,
            duration=args.duration,
            bench_start=0,
        )

    async def run(self) -> dict[str, Any]:
        """The whole benchmark; returns the JSON report."""
        a, d = self.args, self.driver
        sc = {None: "<default>", "standard": "Standard", "express": "Express"}[a.storage_class]
        note(f"Creating temporary stream s2://{a.basin}/{self.stream} (storage class: {sc})")
        await d.create_stream(self.stream, a.storage_class)
        note(
            f"Running for {human_duration(a.duration)} targeting {a.target_mibps} MiB/s with "
            f"{a.record_size} byte records, Ctrl+C to end early"
        )
        self.w.bench_start = now_ns()
        writer = Writer(self.w, self.xxh3)
        live = Reader("live read", self.w, self.xxh3)
        view: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if LiveView.wanted():
            view = LiveView(f"s2kit bench ({d.label})", a.duration, _Sources(writer, live))
        with view:
            await self._write_and_follow(writer, live)
        interrupted = self.stop.is_set()
        if interrupted:
            note("Interrupted by Ctrl+C; showing partial results.")
        note(writer.meter.rate().line("Write"))
        note(live.meter.rate().line("Read"))
        note("")
        ack = latency_table("Ack Latency Statistics", writer.ack_ns)
        e2e = latency_table("End-to-End Latency Statistics", live.e2e_ns)
        for line in tables(ack, e2e):
            note(line)
        report: dict[str, Any] = {
            "sdk": d.label,
            "basin": a.basin,
            "stream": self.stream,
            "storage_class": a.storage_class,
            "record_size": a.record_size,
            "target_mibps": a.target_mibps,
            "duration_s": a.duration,
            "catchup_delay_s": a.catchup_delay,
            "interrupted": interrupted,
            "write": writer.meter.rate().as_json(),
            "read": live.meter.rate().as_json(),
            "ack_latency_us": latency_json(writer.ack_ns),
            "e2e_latency_us": latency_json(live.e2e_ns),
            "catchup": None,
            "verified": False,
        }
        if not interrupted:
            live.check_against(writer, "live read")
            report["catchup"] = await self._catchup(writer)
            report["verified"] = report["catchup"] is not None
        await d.delete_stream(self.stream)
        return report

    async def _write_and_follow(self, writer: Writer, live: Reader) -> None:
        async def write() -> None:
            async with self.driver.producer(self.stream) as producer:
                await writer.run(producer, self.stop)

        reader = asyncio.create_task(live.run(self.driver.read(self.stream, follow=True)))
        writing = asyncio.create_task(write())
        try:
            await _first(writing, reader)
            if not writing.done():
                reader.result()  # the live read failed (raises) or ended early
                raise BenchError("the live read session ended before the writer finished")
            await writing
            live.set_target(writer.next_seq_num)
            if not live.reached.is_set() and not self.stop.is_set():
                await _first(reader, live.reached.wait(), self.stop.wait())
                if reader.done() and not live.reached.is_set():
                    reader.result()
                    raise BenchError("the live read session ended before reading every record")
        finally:
            await _cancel(writing, reader)

    async def _catchup(self, writer: Writer) -> dict[str, Any] | None:
        if self.args.catchup_delay > 0:
            note(f"Waiting {debug_duration(self.args.catchup_delay)} before catchup read...")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.args.catchup_delay)
        else:
            note("Starting catchup read (no delay)...")
        if self.stop.is_set():
            note("Interrupted by Ctrl+C; skipping the catchup read.")
            return None
        catchup = Reader("catchup read", self.w, self.xxh3)
        try:
            async with asyncio.timeout(CATCHUP_TIMEOUT):
                await catchup.run(self.driver.read(self.stream, follow=False))
        except TimeoutError:
            raise BenchError(f"catchup read timed out after {CATCHUP_TIMEOUT:.0f}s") from None
        note(catchup.meter.rate().line("Catchup"))
        catchup.check_against(writer, "catchup read")
        return catchup.meter.rate().as_json()


def _record_size(text: str) -> int:
    size = positive_int(text)
    if not MIN_RECORD_SIZE <= size < MAX_RECORD_SIZE:
        raise argparse.ArgumentTypeError(
            f"record size must be at least {MIN_RECORD_SIZE} and below {MAX_RECORD_SIZE} bytes"
        )
    return size


def _driver(name: str, settings: Settings, basin: str) -> Driver:
    if name == "official":
        from s2kit.cli._bench_official import OfficialDriver

        return OfficialDriver(settings, basin)
    return S2kitDriver(settings, basin)


def default_catchup_delay(duration: float) -> float:
    """A third of the run, at most the official 20 s: the defaults (60 s, 20 s) are the official
    ones, and a short run is not followed by a long wait."""
    return round(min(20.0, duration / 3), 1)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """``bench``."""
    if args.catchup_delay is None:
        args.catchup_delay = default_catchup_delay(args.duration)
    try:
        import xxhash

        if LiveView.wanted():
            import rich  # noqa: F401
    except ImportError as exc:
        return missing_extra("cli", exc)
    if args.sdk == "official":
        try:
            import s2_sdk  # noqa: F401
        except ImportError:
            note("s2kit bench: --sdk official needs the official S2 SDK: pip install s2-sdk")
            return 1
    driver = _driver(args.sdk, settings, args.basin)
    bench = Bench(driver, args, xxhash.xxh3_64_intdigest)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, _on_sigint, loop, bench.stop)
    kept = f"; the stream s2://{args.basin}/{bench.stream} is kept for inspection"
    errors: tuple[type[BaseException], ...] = (BenchError, *driver.errors)
    try:
        report = await bench.run()
    except VerificationError as exc:
        note(f"s2kit bench: verification failed: {exc}{kept}")
        return EXIT_VERIFICATION
    except errors as exc:
        why = describe_error(exc) if isinstance(exc, S2Error) else str(exc) or repr(exc)
        note(f"s2kit bench: error: {why}{kept if bench.w.bench_start else ''}")
        return 1
    finally:
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)
        await driver.aclose()
    if settings.json:
        sys.stdout.write(json.dumps(report) + "\n")
    return 0


def _on_sigint(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    stop.set()
    # A second Ctrl+C interrupts at once.
    loop.remove_signal_handler(signal.SIGINT)


def add_parser(cmds: Commands) -> None:
    """Register ``bench``."""
    p = cmds.add(
        "bench",
        run,
        "benchmark writes and reads on a temporary stream, like `s2 bench`",
        "s2kit bench my-basin --target-mibps 10 --duration 30s --catchup-delay 5s\n"
        "s2kit bench my-basin --sdk official --json > official.json",
        details=(
            "Records carry a chained xxh3-64 `hash` header; every record read back is verified "
            "(duplicates and losses fail the run with exit code 3). Ack latency includes the "
            "producer's 5 ms linger; end-to-end latency is from the client timestamp to the "
            "live reader. The report goes to stderr; --json also prints it on stdout."
        ),
    )
    p.add_argument("basin", type=basin_arg, metavar="BASIN")
    p.add_argument(
        "-c",
        "--storage-class",
        type=choice_of(["standard", "express"], "storage class"),
        help="storage class of the temporary stream (default: the basin's)",
    )
    p.add_argument(
        "-b",
        "--record-size",
        type=_record_size,
        default=8192,
        metavar="BYTES",
        help="metered size of each record (default 8192; 128 <= size < 1 MiB)",
    )
    p.add_argument(
        "-t",
        "--target-mibps",
        type=positive_int,
        default=1,
        metavar="MIBPS",
        help="target write rate in MiB/s (default 1)",
    )
    p.add_argument(
        "-d",
        "--duration",
        type=parse_duration,
        default=60.0,
        metavar="DURATION",
        help="how long to write (default 60s)",
    )
    p.add_argument(
        "-w",
        "--catchup-delay",
        type=parse_duration,
        default=None,
        metavar="DURATION",
        help="wait before the catch-up read (default: a third of --duration, at most 20s; "
        "20s is `s2 bench`'s default, so that reads come from storage rather than caches)",
    )
    p.add_argument(
        "--sdk",
        type=choice_of(["s2kit", "official"], "SDK"),
        default="s2kit",
        help="s2kit (default) or official (the s2-sdk package)",
    )
