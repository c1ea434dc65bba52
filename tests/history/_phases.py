"""The runs: lite (in process, or durable in a child process that is SIGKILLed and
restarted), optionally behind the fault proxy, driven by the workers, then read back and
checked.

Phases (every one mixes HTTP/2 and HTTP/1.1 clients on the same streams):

* ``plain``: lite in this process, in memory, quick background passes and heartbeats.
* ``proxy``: the same lite behind ``FaultProxy`` with ``Chaos`` drawing random truthful
  faults (HTTP/1.1 connections are relayed raw, so only connection faults reach them).
* ``durable``: ``python -m s2kit lite --data-dir`` as a child process, killed with SIGKILL
  at random moments and restarted on the same port and data directory (its background
  pass and heartbeats are the CLI's defaults: trims apply within a second, heartbeats every
  5-15 s).
* ``proxy-durable``: both.

Streams: two shared by every kind of writer, one with a single exactly-once writer, one bulk
stream (``_workers.py``). Every stream is followed by an HTTP/2 and an SSE reader (the bulk
stream only by the unary readers).

A run lasts until its time (CI) or its operation count (the large run) is reached and it has
killed lite often enough. Then the writers stop (their sessions closed, every ticket
settled), durable lite is killed and restarted once more, every stream's tail is read, the
readers are waited for until they reach it, and every stream is read back from seq_num 0 (the
read-back is recorded like any other read). The checker gets the whole history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from durable._proc import LiteChild, free_port
from s2kit.errors import S2Error
from s2kit.server import Lite, LiteConfig
from s2kit.testing.faults import Chaos, FaultProxy
from s2kit.types import ReadLimit, SeqNum

from ._checker import Result, check
from ._history import ALL, FAIL, INFO, NSE, OK, PRODUCER, SESSION, Append, History, Recorder
from ._workers import (
    BulkWriter,
    ClientSettings,
    Ctx,
    ExclusiveWriter,
    FollowReader,
    ProducerWriter,
    SessionWriter,
    Shared,
    UnaryReader,
    UnaryWriter,
    Worker,
    make_client,
)

if TYPE_CHECKING:
    from pathlib import Path

    from s2kit import S2
    from s2kit.testing.faults import RequestInfo

BASIN = "history-basin"
WIND_DOWN = 120.0
CATCH_UP = 90.0


QUICK = LiteConfig(
    background_interval=0.05,
    deletion_grace=0.2,
    shutdown_grace=2.0,
    heartbeat_min=0.2,
    heartbeat_max=0.4,
)
"""In-process lite: trims apply within 50 ms, heartbeats every 0.2-0.4 s."""


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    proxy: bool
    durable: bool


PHASES = {
    "plain": Phase("plain", proxy=False, durable=False),
    "proxy": Phase("proxy", proxy=True, durable=False),
    "durable": Phase("durable", proxy=False, durable=True),
    "proxy-durable": Phase("proxy-durable", proxy=True, durable=True),
}


@dataclass(frozen=True, slots=True)
class Plan:
    """How long a run lasts and how hard it pushes."""

    seed: int
    seconds: float | None = None
    """Run the workload this long (the CI runs)."""
    operations: int | None = None
    """Or until this many operations were invoked (the large run)."""
    kills: int = 0
    """Durable phases: kill lite at least this often before stopping."""
    kill_gap: tuple[float, float] = (0.3, 1.5)
    """Seconds between a restart and the next kill (uniform)."""
    shared_streams: int = 2
    bulk_trim_every: int = 30_000
    """Records between the bulk stream's big trims."""
    bulk_pause: float = 0.01
    """Seconds between the bulk stream's appends (of 1000 records each)."""


# --- durable lite in a child process (tests/durable/_proc.py) --------------------------------


async def killer(child: LiteChild, plan: Plan, stop: asyncio.Event, rng: random.Random) -> None:
    """Kill lite at random moments and restart it, until ``stop``."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(rng.uniform(*plan.kill_gap)):
                await stop.wait()
        if stop.is_set():
            return
        child.kill()
        await child.start()


# --- the run ---------------------------------------------------------------------------------


def _allow(request: RequestInfo, fault: str) -> bool:
    # An ended-while-unacked session and a forged ack stop a session with a protocol error by
    # design (S10, S11 in tests/faults); every other fault must be survived or reported
    # truthfully, so a protocol error is then a finding.
    return fault not in ("end-stream", "bad-ack")


@dataclass
class Run:
    """A finished run: its history, the checker's result and the figures."""

    phase: str
    history: History
    result: Result
    report: dict[str, Any] = field(default_factory=dict)


async def _setup(direct: S2, streams: list[Shared]) -> None:
    await direct.create_basin(BASIN)
    for s in streams:
        await direct.basin(BASIN).create_stream(s.name)


async def _read_back(rec: Recorder, direct: S2, name: str) -> int:
    """Read the whole stream from seq_num 0 (recorded); returns its tail."""
    stream = direct.basin(BASIN).stream(name)
    r = rec.read(name, "final", "h2", "final_tail")
    tail = await stream.check_tail()
    rec.tail_ok(r, tail.seq_num)
    p = 0
    while p < tail.seq_num:
        r = rec.read(name, "final", "h2", "final", start=("seq", p), count=1000)
        try:
            batch = await stream.read(SeqNum(p), limit=ReadLimit(count=1000))
        except S2Error as exc:
            rec.read_failed(r, exc)
            raise
        rec.read_ok(r, batch)
        if not batch.records:
            break  # everything from p on was trimmed
        p = batch.records[-1].seq_num + 1
    r = rec.read(name, "final", "h2", "final_tail")
    tail = await stream.check_tail()
    rec.tail_ok(r, tail.seq_num)
    return tail.seq_num


def make_workers(
    ctx: Ctx, plan: Plan, shared: list[Shared], exclusive: Shared, bulk: Shared
) -> tuple[list[Worker], list[FollowReader]]:
    seed = plan.seed
    workers: list[Worker] = []
    followers: list[FollowReader] = []
    for s in shared:
        n = s.name
        workers += [
            UnaryWriter(ctx, f"{n}-unary-h2-nse", s, "h2", NSE, seed),
            UnaryWriter(ctx, f"{n}-unary-h2-all", s, "h2", ALL, seed),
            UnaryWriter(ctx, f"{n}-unary-h1-nse", s, "h1", NSE, seed),
            UnaryWriter(ctx, f"{n}-unary-h1-all", s, "h1", ALL, seed),
            SessionWriter(ctx, f"{n}-sessions", s, "h2", NSE, seed),
            ProducerWriter(ctx, f"{n}-producers", s, "h2", ALL, seed),
        ]
    workers += [
        ExclusiveWriter(ctx, f"{exclusive.name}-producers", exclusive, "h2", seed),
        BulkWriter(
            ctx,
            f"{bulk.name}-writer",
            bulk,
            "h2",
            seed,
            trim_every=plan.bulk_trim_every,
            pause=plan.bulk_pause,
        ),
        UnaryReader(ctx, "reader-h2", [*shared, exclusive, bulk], "h2", seed),
        UnaryReader(ctx, "reader-h1", [*shared, exclusive, bulk], "h1", seed),
    ]
    for s in [*shared, exclusive]:
        followers += [
            FollowReader(ctx, f"{s.name}-follow-h2", s, "h2", seed),
            FollowReader(ctx, f"{s.name}-follow-sse", s, "h1", seed),
        ]
    return workers, followers


async def run_phase(phase: Phase, plan: Plan, tmp: Path) -> Run:
    """One run of ``phase`` under ``plan``: record, read back, check."""
    started = time.monotonic()
    rec = Recorder()
    rng = random.Random(f"{plan.seed}/{phase.name}/killer")
    shared = [Shared(f"shared-{i}") for i in range(plan.shared_streams)]
    exclusive = Shared("exclusive")
    bulk = Shared("bulk")
    streams = [*shared, exclusive, bulk]
    child: LiteChild | None = None
    proxy: FaultProxy | None = None
    kills = 0
    async with contextlib.AsyncExitStack() as stack:
        if phase.durable:
            child = LiteChild(tmp / "data", free_port(), tmp / "lite.log")
            stack.callback(child.kill)
            await child.start()
            upstream = child.url
            settings = ClientSettings(
                connect=1.0, request=3.0, attempts=6, max_delay=0.5, heartbeat_timeout=20.0
            )
        else:
            lite = Lite(QUICK)
            await stack.enter_async_context(lite)
            upstream = lite.url
            settings = ClientSettings(connect=1.0, request=3.0, attempts=4, heartbeat_timeout=5.0)
        url = upstream
        if phase.proxy:
            proxy = FaultProxy(upstream, manage_windows=True)
            await stack.enter_async_context(proxy)
            proxy.chaos = Chaos(
                seed=plan.seed,
                stream_rate=0.15,
                connection_rate=0.04,
                allow=_allow,
                blackhole_seconds=1.5,
            )
            url = proxy.url
        direct = make_client(upstream, "h2", NSE, ClientSettings(attempts=20, max_delay=0.5))
        stack.push_async_callback(direct.aclose)
        await _setup(direct, streams)
        ctx = Ctx(rec, BASIN, url, settings)
        workers, followers = make_workers(ctx, plan, shared, exclusive, bulk)
        try:
            async with asyncio.TaskGroup() as tg:
                follow_tasks = [tg.create_task(f.run(), name=f.name) for f in followers]
                work = [tg.create_task(w.run(), name=w.name) for w in workers]
                kill_task = None
                if child is not None:
                    kill_task = tg.create_task(killer(child, plan, ctx.stop, rng), name="killer")
                await _until(plan, ctx, child)
                ctx.stop.set()
                ending = [*work, *([kill_task] if kill_task else [])]
                _, pending = await asyncio.wait(ending, timeout=WIND_DOWN)
                assert not pending, f"workers did not wind down: {[t.get_name() for t in pending]}"
                if child is not None:
                    child.kill()
                    await child.start()
                tails = {s.name: await _tail(direct, s.name) for s in streams}
                await _catch_up(followers, tails)
                for t in follow_tasks:
                    t.cancel()
            for s in streams:
                await _read_back(rec, direct, s.name)
        except BaseException:
            if child is not None:
                print(child.output()[-4000:])
            raise
        if child is not None:
            kills = child.kills
        faults: dict[str, int] = {}
        connections = 0
        if proxy is not None:
            faults = dict(sorted(proxy.stats.faults.items()))
            connections = proxy.stats.connections
    result = check(rec.history)
    seconds = round(time.monotonic() - started, 1)
    report = summarize(phase.name, plan, rec.history, result)
    report.update(
        seconds=seconds,
        kills=kills,
        faults_injected=sum(faults.values()),
        faults=faults,
        proxy_connections=connections,
        read_session_restarts=sum(f.restarts for f in followers),
    )
    return Run(phase.name, rec.history, result, report)


async def _until(plan: Plan, ctx: Ctx, child: LiteChild | None) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        await asyncio.sleep(0.1)
        if child is not None and child.kills < plan.kills:
            continue
        if plan.seconds is not None and loop.time() - start >= plan.seconds:
            return
        if plan.operations is not None and sum(ctx.ops.values()) >= plan.operations:
            return


async def _tail(direct: S2, name: str) -> int:
    return (await direct.basin(BASIN).stream(name).check_tail()).seq_num


async def _catch_up(followers: list[FollowReader], tails: dict[str, int]) -> None:
    try:
        async with asyncio.timeout(CATCH_UP):
            while any(f.next < tails[f.shared.name] for f in followers):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        behind = {f.name: (f.next, tails[f.shared.name]) for f in followers}
        raise AssertionError(f"read sessions did not reach the tail: {behind}") from None


# --- figures ---------------------------------------------------------------------------------


def append_kind(a: Append) -> str:
    if a.worker.startswith("bulk"):
        return "bulk append (1000 records)"
    if any(k.startswith(b"!fence:") for k in a.keys):
        return "fence"
    if any(k.startswith(b"!trim:") for k in a.keys):
        return "trim"
    if a.via == SESSION:
        return "append session input"
    if a.via == PRODUCER:
        return "producer record" + (" (match_seq_num)" if a.match_seq_num is not None else "")
    kind = "unary append"
    if a.match_seq_num is not None:
        kind += " +match_seq_num"
    if a.fencing_token is not None:
        kind += " +fencing_token"
    return kind


def summarize(name: str, plan: Plan, h: History, result: Result) -> dict[str, Any]:
    """The run's figures: operations by kind and outcome, what the checker saw and found."""
    kinds: Counter[str] = Counter()
    outcomes: dict[str, Counter[str]] = {}
    for a in h.appends:
        k = f"{append_kind(a)} ({a.proto})"
        kinds[k] += 1
        outcomes.setdefault(k, Counter())[a.outcome] += 1
    for r in h.reads:
        if r.kind.startswith("final"):
            k = "final read-back" if r.kind == "final" else "final check_tail"
        elif r.kind == "check_tail":
            k = f"check_tail ({r.proto})"
        else:
            assert r.start is not None
            k = f"read by {r.start[0]} ({r.proto})"
        kinds[k] += 1
        outcomes.setdefault(k, Counter())[r.outcome] += 1
    segments = sum(len(f.segments) for f in h.follows)
    batches = sum(len(s.batches) for f in h.follows for s in f.segments)
    delivered = sum(len(b.seqs) for f in h.follows for s in f.segments for b in s.batches)
    kinds_total = sum(v for k, v in kinds.items() if not k.startswith("final"))
    return {
        "phase": name,
        "seed": plan.seed,
        "operations": kinds_total + segments,
        "operations_by_kind": dict(sorted(kinds.items())),
        "outcomes": {k: dict(v) for k, v in sorted(outcomes.items())},
        "appends": {
            "acked": sum(1 for a in h.appends if a.outcome == OK),
            "failed_without_side_effects": sum(1 for a in h.appends if a.outcome == FAIL),
            "indefinite": sum(1 for a in h.appends if a.outcome == INFO),
            "indefinite_landed": result.stats["indefinite appends landed"],
        },
        "read_sessions": {
            "sessions": segments,
            "batches": batches,
            "records_delivered": delivered,
            "stopped_with_error": sum(1 for f in h.follows for s in f.segments if s.error),
        },
        "checked": dict(sorted(result.stats.items())),
        "violations": dict(result.counts),
        "violation_messages": [str(v) for v in result.violations],
    }


def write_report(key: str, report: dict[str, Any]) -> None:
    """Merge ``report`` under ``key`` into the JSON file named by S2KIT_HISTORY_REPORT."""
    path = os.environ.get("S2KIT_HISTORY_REPORT")
    if not path:
        return
    data: dict[str, Any] = {}
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError), open(path) as f:
        data = json.load(f)
    data[key] = report
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
