"""Caller chaos: random faults from the proxy *and* random actions of the caller, at random
moments, then every outcome held to the contract of docs/outcomes.md against the streams
read back directly.

Writers (each on its own stream, all at once): append sessions and producers under
NO_SIDE_EFFECTS and ALL, producers with ``match_seq_num`` under ALL, unary appends under
both policies, and a blocking producer and append session in threads. Each runs episodes:
a new session or producer, a random number of inputs, and along the way the caller's chaos:

* a submit cancelled before or while it waits for room;
* a wait on a ticket (or a flush) with a short timeout;
* an ending drawn at random: ``close()``, ``close()`` under a short deadline, ``abort()``,
  the client closed under it, or the whole episode's task cancelled (``__aexit__`` aborts);
* unary appends cancelled at a random moment.

Asserted, per input (``Op``) once its owner has ended:

* it resolved within ``BOUND`` seconds (no hang);
* acked: its records are on the stream, at the ack's positions;
* failed with ``has_no_side_effects``, or refused (the submit raised or was cancelled, so it
  was never queued): none of its records are on the stream;
* under NO_SIDE_EFFECTS, and under ALL with ``match_seq_num``: no record twice, whatever the
  outcome.

The CI-sized run is ``test_caller_chaos``; ``-m slow`` runs at least 50,000 operations. With
``S2KIT_CALLER_CHAOS_REPORT=path`` the figures go there as JSON (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import random
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from faults._harness import read_stream
from faults.conftest import ALL, NSE, TOKEN
from s2kit import S2, sync
from s2kit.client import Batching, Endpoints, Retry, Timeout
from s2kit.errors import S2Error
from s2kit.testing.faults import Chaos, FaultProxy
from s2kit.types import AppendInput, Record

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from s2kit.client import AppendRetryPolicy
    from s2kit.server import Lite
    from s2kit.types import SequencedRecord

SEED = int(os.environ.get("S2KIT_CALLER_CHAOS_SEED", "20261205"))
BOUND = 20.0  # seconds for every ticket to resolve once its owner was closed or aborted
BASIN = "caller-chaos"
ENDINGS = ("close", "close-deadline", "abort", "client-close", "cancel-owner")


@dataclass
class Op:
    """One input (or record, or unary append) and what the caller was told."""

    writer: str
    bodies: tuple[bytes, ...]
    exact: bool  # NO_SIDE_EFFECTS, or ALL with match_seq_num: never more than once
    outcome: str = "pending"  # acked | failed | refused | abandoned
    error: S2Error | None = None
    seqs: tuple[int, ...] = ()


@dataclass
class Report:
    """What a caller-chaos run did and found."""

    seed: int
    seconds: float = 0.0
    operations: int = 0
    acked: int = 0
    failed_definite: int = 0
    failed_indefinite: int = 0
    indefinite_landed: int = 0
    refused: int = 0
    abandoned: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    faults_injected: int = 0
    violations: list[str] = field(default_factory=list)


class Writer:
    """One writer: its stream, its client, its random draws and its ledger."""

    def __init__(self, name: str, url: str, policy: AppendRetryPolicy, seed: int) -> None:
        self.name = name
        self.url = url
        self.policy = policy
        self.rng = random.Random(seed)
        self.ops: list[Op] = []
        self.actions: Counter[str] = Counter()
        self.hangs: list[str] = []
        self.client = self.new_client()

    def new_client(self) -> S2:
        return S2(TOKEN, endpoints=Endpoints.for_url(self.url), **_client_options(self.policy))

    def op(self, count: int = 1, exact: bool | None = None) -> Op:
        n = len(self.ops)
        bodies = tuple(f"{self.name}/{n}/{j}".encode() for j in range(count))
        op = Op(self.name, bodies, self.policy is NSE if exact is None else exact)
        self.ops.append(op)
        return op

    def draw(self, action: str, chance: float) -> bool:
        if self.rng.random() < chance:
            self.actions[action] += 1
            return True
        return False

    async def short_wait(self, awaitable: Awaitable[Any]) -> None:
        """Wait a moment, then give up waiting (the operation itself must carry on)."""
        with contextlib.suppress(TimeoutError, S2Error):
            await asyncio.wait_for(awaitable, self.rng.uniform(0, 0.02))

    async def end(
        self,
        ending: str,
        close: Callable[[], Awaitable[None]],
        abort: Callable[[], Awaitable[None]],
    ) -> None:
        """End an episode the drawn way (a failed close is an outcome, not a test error)."""
        self.actions[ending] += 1
        with contextlib.suppress(S2Error):
            if ending == "close":
                async with asyncio.timeout(BOUND):
                    await close()
            elif ending == "close-deadline":
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.rng.uniform(0.001, 0.3)):
                        await close()
            elif ending == "abort":
                await abort()
            elif ending == "client-close":
                await self.client.aclose()
                self.client = self.new_client()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(BOUND):
                        await close()


def _client_options(policy: AppendRetryPolicy) -> dict[str, Any]:
    return {
        "timeout": Timeout(connect=0.3, request=0.5),
        "retry": Retry(
            max_attempts=4, min_base_delay=0.005, max_base_delay=0.05, append_retry_policy=policy
        ),
    }


async def resolve(op: Op, ticket: Awaitable[Any]) -> None:
    """The ticket's outcome, which must come within BOUND (else the op stays pending)."""
    try:
        async with asyncio.timeout(BOUND):
            ack = await ticket
    except TimeoutError:
        return
    except S2Error as exc:
        op.outcome, op.error = "failed", exc
        return
    op.outcome = "acked"
    if hasattr(ack, "seq_num"):  # a RecordAck
        op.seqs = (ack.seq_num,)
    else:
        op.seqs = tuple(range(ack.start.seq_num, ack.end.seq_num))


async def episode_owner(w: Writer, run: Callable[[str], Awaitable[None]]) -> None:
    """Run one episode with a drawn ending; ``cancel-owner`` cancels its task midway.

    An episode that does not end within a bound (a close, abort or submit that hangs) is a
    violation, recorded rather than left to stall the whole run."""
    ending = w.rng.choice(ENDINGS)
    try:
        async with asyncio.timeout(3 * BOUND):
            if ending != "cancel-owner":
                with contextlib.suppress(S2Error):  # __aexit__'s close() reports what was lost
                    await run(ending)
                return
            w.actions[ending] += 1
            task = asyncio.create_task(run("close"))
            await asyncio.sleep(w.rng.uniform(0, 0.05))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, S2Error):
                await task
    except TimeoutError:
        w.hangs.append(f"{w.name}: an episode ({ending}) did not end within {3 * BOUND} s")


async def submitted(
    w: Writer, op: Op, submit: asyncio.Task[Any], tickets: list[tuple[Op, Any]], chance: float
) -> None:
    """Await a submit (cancelled first, at random): record its ticket, or ``refused`` when it
    raised or was cancelled (never queued). The episode's own cancellation propagates."""
    try:
        if w.draw("cancel-submit", chance):
            await asyncio.sleep(w.rng.choice([0, 0.001]))
            submit.cancel()
        await asyncio.wait([submit])
    finally:
        if not submit.done():  # the episode was cancelled before the submit finished
            submit.cancel()
            await asyncio.wait([submit])
        if submit.cancelled() or submit.exception() is not None:
            op.outcome = "refused"
        else:
            tickets.append((op, submit.result()))


# --- the writers ------------------------------------------------------------------------------


async def session_episode(w: Writer, tickets: list[tuple[Op, Any]], ending: str) -> None:
    stream = w.client.basin(BASIN).stream(w.name)
    async with stream.append_session(max_unacked_batches=w.rng.choice([1, 4, 32])) as s:
        for _ in range(w.rng.randint(3, 40)):
            op = w.op(count=w.rng.randint(1, 3))
            inp = AppendInput(records=tuple(Record(body=b) for b in op.bodies))
            await submitted(w, op, asyncio.create_task(s.submit(inp)), tickets, 0.1)
            if tickets and w.draw("short-wait", 0.1):
                await w.short_wait(w.rng.choice(tickets)[1])
        await w.end(ending, s.close, s.abort)


async def session_writer(w: Writer, target: int) -> None:
    while len(w.ops) < target:
        tickets: list[tuple[Op, Any]] = []
        await episode_owner(w, functools.partial(session_episode, w, tickets))
        for op, ticket in tickets:
            await resolve(op, ticket)


async def producer_episode(
    w: Writer, tickets: list[tuple[Op, Any]], direct: S2, match: bool, ending: str
) -> None:
    stream = w.client.basin(BASIN).stream(w.name)
    start = (await direct.basin(BASIN).stream(w.name).check_tail()).seq_num if match else None
    batching = Batching(max_records=w.rng.choice([1, 3, 50]), linger=0.002)
    async with stream.producer(
        batching=batching, match_seq_num=start, max_unacked_bytes=1 << 20
    ) as p:
        for _ in range(w.rng.randint(3, 80)):
            op = w.op(exact=match or w.policy is NSE)
            submit = asyncio.create_task(p.submit(Record(body=op.bodies[0])))
            await submitted(w, op, submit, tickets, 0.05)
            if tickets and w.draw("short-wait", 0.05):
                await w.short_wait(w.rng.choice(tickets)[1])
            if w.draw("short-flush", 0.02):
                await w.short_wait(p.flush())
        await w.end(ending, p.close, p.abort)


async def producer_writer(w: Writer, target: int, direct: S2, match: bool) -> None:
    while len(w.ops) < target:
        tickets: list[tuple[Op, Any]] = []
        await episode_owner(w, functools.partial(producer_episode, w, tickets, direct, match))
        for op, ticket in tickets:
            await resolve(op, ticket)


async def unary_writer(w: Writer, target: int) -> None:
    while len(w.ops) < target:
        op = w.op()
        stream = w.client.basin(BASIN).stream(w.name)
        call = asyncio.create_task(stream.append(AppendInput(records=(Record(body=op.bodies[0]),))))
        if w.draw("cancel-call", 0.1):
            await asyncio.sleep(w.rng.choice([0, 0.001, 0.005]))
            call.cancel()
        try:
            await resolve(op, call)
        except asyncio.CancelledError:
            op.outcome = "abandoned"  # the caller gave up the call: its outcome is unknown


def blocking_writer(w: Writer, target: int, producer: bool) -> None:
    """A blocking producer or append session, in a thread of its own."""
    client = sync.S2(TOKEN, endpoints=Endpoints.for_url(w.url), **_client_options(w.policy))
    try:
        while len(w.ops) < target:
            stream = client.basin(BASIN).stream(w.name)
            owner: Any = (
                stream.producer(batching=Batching(max_records=w.rng.choice([1, 10])))
                if producer
                else stream.append_session(max_unacked_batches=w.rng.choice([1, 8]))
            )
            tickets: list[tuple[Op, Any]] = []
            for _ in range(w.rng.randint(3, 40)):
                op = w.op()
                try:
                    if producer:
                        ticket = owner.submit(Record(body=op.bodies[0]))
                    else:
                        ticket = owner.submit(AppendInput(records=(Record(body=op.bodies[0]),)))
                except S2Error:
                    op.outcome = "refused"
                    continue
                tickets.append((op, ticket))
                if w.draw("short-wait", 0.1):
                    with contextlib.suppress(TimeoutError, S2Error):
                        w.rng.choice(tickets)[1].result(timeout=w.rng.uniform(0, 0.02))
            ending = w.rng.choice(("close", "close-deadline", "abort"))
            w.actions[ending] += 1
            with contextlib.suppress(S2Error, TimeoutError):
                if ending == "abort":
                    owner.abort()
                else:
                    owner.close(timeout=BOUND if ending == "close" else w.rng.uniform(0.001, 0.3))
            for op, ticket in tickets:
                try:
                    ack = ticket.result(timeout=BOUND)
                except TimeoutError:
                    continue  # stays pending: a hang
                except S2Error as exc:
                    op.outcome, op.error = "failed", exc
                    continue
                op.outcome = "acked"
                op.seqs = (
                    (ack.seq_num,) if producer else tuple(range(ack.start.seq_num, ack.end.seq_num))
                )
    finally:
        client.close()


# --- the check --------------------------------------------------------------------------------


def verify(ops: list[Op], stored: dict[bytes, list[int]], report: Report) -> None:
    for op in ops:
        report.operations += 1
        counts = [len(stored.get(b, ())) for b in op.bodies]
        where = f"{op.bodies[0].decode()}"
        if op.outcome == "pending":
            report.violations.append(f"{where}: unresolved after {BOUND} s")
        elif op.outcome == "acked":
            report.acked += 1
            if not all(s in stored.get(b, ()) for b, s in zip(op.bodies, op.seqs, strict=True)):
                report.violations.append(f"{where}: acked at {op.seqs}, found at {counts}")
        elif op.outcome == "refused":
            report.refused += 1
            if any(counts):
                report.violations.append(f"{where}: never queued, yet on the stream")
        elif op.outcome == "abandoned":
            report.abandoned += 1
        else:
            assert op.error is not None
            if op.error.has_no_side_effects:
                report.failed_definite += 1
                if any(counts):
                    report.violations.append(f"{where}: {op.error!r} said no side effects")
            else:
                report.failed_indefinite += 1
                report.indefinite_landed += 1 if any(counts) else 0
        if op.exact and any(c > 1 for c in counts):
            report.violations.append(f"{where}: on the stream {counts} times")


async def stable_records(direct: S2, name: str) -> list[SequencedRecord]:
    """The stream's records once its tail stopped moving: inputs lite admitted before their
    session was reset or aborted still commit, a moment after the writers are done."""
    handle = direct.basin(BASIN).stream(name)
    tail = -1
    while (now := (await handle.check_tail()).seq_num) != tail:
        tail = now
        await asyncio.sleep(0.3)
    return await read_stream(direct, BASIN, name)


async def caller_chaos(lite: Lite, direct: S2, *, target: int, seed: int) -> Report:
    report = Report(seed=seed)
    rng = random.Random(seed)
    started = time.monotonic()
    await direct.create_basin(BASIN)
    async with FaultProxy(lite.url, manage_windows=True) as proxy:
        proxy.chaos = Chaos(seed=seed, stream_rate=0.3, connection_rate=0.05, blackhole_seconds=1.0)
        kinds = [
            ("session-nse", NSE), ("session-all", ALL), ("producer-nse", NSE),
            ("producer-all", ALL), ("producer-match", ALL), ("producer-match-2", ALL),
            ("unary-nse", NSE), ("unary-all", ALL), ("blocking-producer", NSE),
            ("blocking-session", NSE),
        ]  # fmt: skip
        writers = [Writer(n, proxy.url, p, rng.randrange(1 << 30)) for n, p in kinds]
        for w in writers:
            await direct.basin(BASIN).create_stream(w.name)
        per = target // len(writers)
        try:
            async with asyncio.timeout(1200), asyncio.TaskGroup() as tg:
                for w in writers:
                    if w.name.startswith("session"):
                        tg.create_task(session_writer(w, per))
                    elif w.name.startswith("producer"):
                        tg.create_task(producer_writer(w, per, direct, "match" in w.name))
                    elif w.name.startswith("unary"):
                        tg.create_task(unary_writer(w, per // 4))  # one round trip each
                    else:
                        producer = w.name == "blocking-producer"
                        tg.create_task(asyncio.to_thread(blocking_writer, w, per // 2, producer))
        finally:
            for w in writers:
                await w.client.aclose()
        report.faults_injected = proxy.stats.total_faults()
    for w in writers:
        stored: dict[bytes, list[int]] = defaultdict(list)
        for r in await stable_records(direct, w.name):
            stored[r.body].append(r.seq_num)
        verify(w.ops, stored, report)
        report.violations += w.hangs
        for action, n in w.actions.items():
            report.actions[action] = report.actions.get(action, 0) + n
    report.actions = dict(sorted(report.actions.items()))
    report.seconds = round(time.monotonic() - started, 1)
    return report


def check_report(report: Report, target: int) -> None:
    text = json.dumps(asdict(report), indent=2)
    path = os.environ.get("S2KIT_CALLER_CHAOS_REPORT")
    if path:
        with open(path, "w") as f:
            f.write(text + "\n")
    print(text)
    assert not report.violations, "\n".join(report.violations[:20])
    assert report.operations >= target * 0.5
    assert report.acked > 0
    assert report.failed_indefinite > 0
    assert report.faults_injected > 0


@pytest.mark.timeout(300)
async def test_caller_chaos(lite: Lite, direct: S2) -> None:
    report = await caller_chaos(lite, direct, target=20_000, seed=SEED)
    check_report(report, 20_000)


@pytest.mark.slow
@pytest.mark.timeout(3600)
async def test_caller_chaos_large(lite: Lite, direct: S2) -> None:
    report = await caller_chaos(lite, direct, target=80_000, seed=SEED + 1)
    check_report(report, 80_000)
