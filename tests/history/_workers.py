"""Workers: concurrent clients driving lite with a random mix of operations, each recording
every operation it invokes (``_history.Recorder``).

Every worker owns its client (HTTP/2, or HTTP/1.1 with ``S2(..., http1=True)``), its random
generator (seeded from the run's seed and its name) and its loop; workers of one stream
share only what a real application would learn: the fencing token they believe in force and
a recent tail (``Shared``). Stale beliefs are the point: they make fenced appends and
``match_seq_num`` appends fail, and the checker then proves each failure changed nothing.

Writers (on the shared streams):

* ``UnaryWriter``: unary appends of 1-5 records, some with ``match_seq_num`` (the believed
  tail), some with the believed fencing token, some both; fence commands (a marker record
  and ``CommandRecord.fence`` with a new unique token, usually sent with the old one) and trim
  commands (a marker and ``CommandRecord.trim``: mostly a little behind the tail, sometimes
  anywhere, rarely far beyond the tail so the trim can only trim up to itself).
* ``SessionWriter`` (HTTP/2): append sessions of 5-60 inputs under NO_SIDE_EFFECTS or ALL,
  some carrying the fencing token, ended by ``close()`` or (sometimes) ``abort()``.
* ``ProducerWriter`` (HTTP/2): producers (record tickets) under either policy, some fenced.

On an exclusive stream, ``ExclusiveWriter`` is the only writer: producers under ALL with
``match_seq_num`` (exactly once, so every record's seq_num is known in advance) and, between
them, unary trims with ``match_seq_num``.

On a bulk stream, ``BulkWriter`` appends 1000 records at a time and now and then trims nearly
all of them at once, so that lite's background removal runs long enough for a SIGKILL to land
in the middle of it (a trim some read saw must stay visible after the restart).

Readers:

* ``UnaryReader``: unary reads (of every stream) from a seq_num (anywhere up to the tail, so
  often below a trim), from a timestamp seen earlier, from a tail offset, with count and
  bytes limits; reads beyond the tail (416); check_tail.
* ``FollowReader``: read sessions following a stream from seq_num 0 (S2S over HTTP/2, SSE
  over HTTP/1.1), each bounded by a count so they end and start again often; a session
  that stops with an error is recorded and replaced by one starting where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from s2kit import S2
from s2kit.client import (
    AppendRetryPolicy,
    Batching,
    Endpoints,
    ReadSessionRetryPolicy,
    Retry,
    Timeout,
)
from s2kit.errors import FencingTokenMismatch, S2Error, SeqNumMismatch
from s2kit.types import (
    AppendInput,
    CommandRecord,
    ReadLimit,
    Record,
    SeqNum,
    TailOffset,
    Timestamp,
)

from ._history import (
    ALL,
    MAX_RECORD_METERED,
    NSE,
    PRODUCER,
    SESSION,
    UNARY,
    Append,
    Recorder,
    record_key,
)

if TYPE_CHECKING:
    from s2kit.client import Stream
    from s2kit.types import AppendAck, ReadStart

POLICIES = {NSE: AppendRetryPolicy.NO_SIDE_EFFECTS, ALL: AppendRetryPolicy.ALL}
TOKEN = "history"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Timeouts and retries of the workers' clients."""

    connect: float = 1.0
    request: float = 2.0
    attempts: int = 4
    min_delay: float = 0.01
    max_delay: float = 0.2
    heartbeat_timeout: float = 3.0


def make_client(url: str, proto: str, policy: str, settings: ClientSettings) -> S2:
    """A client of the workers: HTTP/2 (``h2``) or HTTP/1.1 (``h1``)."""
    return S2(
        TOKEN,
        endpoints=Endpoints.for_url(url),
        timeout=Timeout(connect=settings.connect, request=settings.request),
        retry=Retry(
            max_attempts=settings.attempts,
            min_base_delay=settings.min_delay,
            max_base_delay=settings.max_delay,
            append_retry_policy=POLICIES[policy],
            read_session_policy=ReadSessionRetryPolicy.INDEFINITE,
        ),
        http1=proto == "h1",
    )


@dataclass
class Shared:
    """What the workers of one stream believe about it."""

    name: str
    token: str = ""
    tail: int = 0
    stamps: deque[int] = field(default_factory=lambda: deque(maxlen=64))

    def saw_tail(self, tail: int) -> None:
        self.tail = max(self.tail, tail)

    def learn(self, exc: BaseException) -> None:
        if isinstance(exc, FencingTokenMismatch):
            self.token = exc.expected
        elif isinstance(exc, SeqNumMismatch):
            self.tail = exc.expected


@dataclass
class Ctx:
    """What every worker of a run shares."""

    rec: Recorder
    basin: str
    url: str
    settings: ClientSettings
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ops: Counter[str] = field(default_factory=Counter)
    """Operations invoked so far, by kind (for the run's progress and report)."""


class Worker:
    """One concurrent client: a name, a stream, a protocol, a random generator."""

    def __init__(
        self, ctx: Ctx, name: str, shared: Shared, proto: str, policy: str, seed: int
    ) -> None:
        self.ctx = ctx
        self.rec = ctx.rec
        self.name = name
        self.shared = shared
        self.proto = proto
        self.policy = policy
        self.rng = random.Random(f"{seed}/{name}")
        self.client = make_client(ctx.url, proto, policy, ctx.settings)
        self.episodes = 0  # sessions or producers made so far

    def stream(self, name: str | None = None) -> Stream:
        return self.client.basin(self.ctx.basin).stream(name or self.shared.name)

    async def run(self) -> None:
        try:
            while not self.ctx.stop.is_set():
                await self.step()
        finally:
            await self.client.aclose()

    async def step(self) -> None:
        raise NotImplementedError

    def records(self, op_id: int, n: int) -> list[Record]:
        return [Record(body=self.rec.body(op_id, i, self.rng.randint(0, 60))) for i in range(n)]

    def register(self, op_id: int, records: list[Record], via: str, **kw: Any) -> Append:
        keys = tuple(record_key(r.headers, r.body) for r in records)
        kw.setdefault("proto", self.proto)
        kw.setdefault("policy", self.policy)
        return self.rec.append(op_id, self.shared.name, self.name, keys, via=via, **kw)

    async def check_tail(self, shared: Shared) -> None:
        """One recorded check_tail."""
        r = self.rec.read(shared.name, self.name, self.proto, "check_tail")
        self.ctx.ops["check_tail"] += 1
        try:
            tail = await self.stream(shared.name).check_tail()
        except S2Error as exc:
            self.rec.read_failed(r, exc)
            return
        self.rec.tail_ok(r, tail.seq_num)
        shared.saw_tail(tail.seq_num)

    async def unary(
        self, command: Record | None, kind: str, *, match: int | None, token: str | None
    ) -> AppendAck | None:
        """One recorded unary append: 1-5 records, or a marker record and ``command``."""
        op_id = self.rec.new_id()
        if command is not None:
            recs = [*self.records(op_id, 1), command]
        else:
            recs = self.records(op_id, self.rng.randint(1, 5))
        op = self.register(op_id, recs, UNARY, match_seq_num=match, fencing_token=token)
        self.ctx.ops[kind] += 1
        try:
            ack = await self.stream().append(
                AppendInput(records=recs, match_seq_num=match, fencing_token=token)
            )
        except S2Error as exc:
            self.rec.failed(op, exc)
            self.shared.learn(exc)
            return None
        except asyncio.CancelledError:
            self.rec.abandoned(op, "cancelled")
            raise
        self.rec.acked(op, ack)
        self.shared.saw_tail(ack.end.seq_num)
        self.shared.stamps.append(ack.start.timestamp)
        return ack


# --- writers ---------------------------------------------------------------------------------


class UnaryWriter(Worker):
    """Unary appends with and without conditions, fence and trim commands."""

    async def step(self) -> None:
        rng, shared = self.rng, self.shared
        x = rng.random()
        if x < 0.07:
            await self.fence()
        elif x < 0.12:
            await self.trim()
        else:
            match = None
            if rng.random() < 0.3:
                if rng.random() < 0.5:
                    await self.check_tail(shared)  # a fresh tail: the match may well hold
                match = shared.tail
            token = shared.token if rng.random() < 0.3 else None
            kind = "append" + ("+match" if match is not None else "")
            kind += "+token" if token is not None else ""
            await self.unary(None, kind, match=match, token=token)

    async def fence(self) -> None:
        rng, shared = self.rng, self.shared
        new = f"t{self.rec.new_id()}-{self.name}"[:36]
        token = shared.token if rng.random() < 0.8 else None
        match = shared.tail if rng.random() < 0.2 else None
        ack = await self.unary(CommandRecord.fence(new), "fence", match=match, token=token)
        if ack is not None:
            shared.token = new

    async def trim(self) -> None:
        rng, shared = self.rng, self.shared
        x = rng.random()
        if x < 0.85:
            point = max(0, shared.tail - rng.randint(20, 400))
        elif x < 0.97:
            point = rng.randint(0, shared.tail)
        else:
            point = shared.tail + 100_000  # can only trim up to the trim record itself
        token = shared.token if rng.random() < 0.3 else None
        await self.unary(CommandRecord.trim(point), "trim", match=None, token=token)


def _settle(rec: Recorder, op: Append, future: asyncio.Future[AppendAck]) -> None:
    if future.cancelled():
        rec.abandoned(op, "the outcome was cancelled")
    elif (exc := future.exception()) is not None:
        rec.failed(op, exc)
    else:
        rec.acked(op, future.result())


def _settle_record(rec: Recorder, op: Append, index: int, future: asyncio.Future[Any]) -> None:
    if future.cancelled():
        rec.abandoned(op, "the outcome was cancelled")
    elif (exc := future.exception()) is not None:
        rec.failed(op, exc)
    else:
        batch = future.result()
        rec.record_acked(op, batch.start.seq_num + index, batch)


class SessionWriter(Worker):
    """Append sessions (HTTP/2)."""

    async def step(self) -> None:
        rng, shared = self.rng, self.shared
        policy = rng.choice([NSE, ALL])
        token = shared.token if rng.random() < 0.25 else None
        self.episodes += 1
        group = f"{self.name}/session{self.episodes}"
        session = self.stream().append_session(
            retry_policy=POLICIES[policy], max_unacked_batches=rng.choice([1, 4, 16, 64])
        )
        tickets: deque[Any] = deque()
        try:
            for index in range(rng.randint(5, 60)):
                if self.ctx.stop.is_set():
                    break
                op_id = self.rec.new_id()
                records = self.records(op_id, rng.randint(1, 4))
                op = self.register(
                    op_id,
                    records,
                    SESSION,
                    policy=policy,
                    fencing_token=token,
                    group=group,
                    index=index,
                )
                self.ctx.ops["session input"] += 1
                try:
                    ticket = await session.submit(AppendInput(records=records, fencing_token=token))
                except S2Error as exc:
                    self.rec.refused(op, exc)
                    break
                ticket.outcome().add_done_callback(functools.partial(_settle, self.rec, op))
                tickets.append(ticket)
                if len(tickets) > 32:
                    with contextlib.suppress(S2Error):
                        await tickets.popleft()
                if rng.random() < 0.2:
                    await asyncio.sleep(rng.uniform(0, 0.003))
        finally:
            with contextlib.suppress(S2Error, TimeoutError):
                if rng.random() < 0.1:
                    await session.abort()
                else:
                    async with asyncio.timeout(60):
                        await session.close()


class ProducerWriter(Worker):
    """Producers (HTTP/2), one record per operation."""

    async def step(self) -> None:
        rng, shared = self.rng, self.shared
        policy = rng.choice([NSE, ALL])
        token = shared.token if rng.random() < 0.3 else None
        self.episodes += 1
        group = f"{self.name}/producer{self.episodes}"
        batching = Batching(
            linger=rng.choice([0.0, 0.001, 0.004]), max_records=rng.choice([1, 3, 20, 200])
        )
        producer = self.stream().producer(
            batching=batching, fencing_token=token, retry_policy=POLICIES[policy]
        )
        window: deque[Any] = deque()
        try:
            for index in range(rng.randint(10, 150)):
                if self.ctx.stop.is_set():
                    break
                op_id = self.rec.new_id()
                record = self.records(op_id, 1)
                op = self.register(
                    op_id,
                    record,
                    PRODUCER,
                    policy=policy,
                    fencing_token=token,
                    group=group,
                    index=index,
                )
                self.ctx.ops["producer record"] += 1
                try:
                    ticket = await producer.submit(record[0])
                except S2Error as exc:
                    self.rec.refused(op, exc)
                    break
                future, i = ticket.batch_outcome()
                future.add_done_callback(functools.partial(_settle_record, self.rec, op, i))
                window.append(ticket)
                if len(window) > 24:
                    with contextlib.suppress(S2Error):
                        await window.popleft()
                elif rng.random() < 0.3:
                    await asyncio.sleep(0)
        finally:
            with contextlib.suppress(S2Error, TimeoutError):
                if rng.random() < 0.08:
                    await producer.abort()
                else:
                    async with asyncio.timeout(60):
                        await producer.close()


class ExclusiveWriter(Worker):
    """The only writer of its stream: producers with ``match_seq_num`` under ALL (exactly
    once), and trims with ``match_seq_num`` between them."""

    def __init__(self, ctx: Ctx, name: str, shared: Shared, proto: str, seed: int) -> None:
        super().__init__(ctx, name, shared, proto, ALL, seed)
        self.exact = True

    async def resync(self) -> None:
        r = self.rec.read(self.shared.name, self.name, self.proto, "check_tail")
        self.ctx.ops["check_tail"] += 1
        try:
            tail = await self.stream().check_tail()
        except S2Error as exc:
            self.rec.read_failed(r, exc)
            await asyncio.sleep(0.05)
            return
        self.rec.tail_ok(r, tail.seq_num)
        self.shared.tail = tail.seq_num
        self.exact = True

    async def step(self) -> None:
        rng, shared = self.rng, self.shared
        if not self.exact:
            await self.resync()
            return
        if rng.random() < 0.15 and shared.tail > 10:
            point = shared.tail - rng.randint(5, 300)
            ack = await self.unary(
                CommandRecord.trim(max(0, point)), "trim", match=shared.tail, token=None
            )
            if ack is None:
                self.exact = False
            return
        self.episodes += 1
        group = f"{self.name}/producer{self.episodes}"
        start = shared.tail
        batching = Batching(linger=rng.choice([0.0, 0.002]), max_records=rng.choice([2, 10, 100]))
        producer = self.stream().producer(
            batching=batching, match_seq_num=start, retry_policy=AppendRetryPolicy.ALL
        )
        window: deque[Any] = deque()
        n = 0
        try:
            for index in range(rng.randint(20, 200)):
                if self.ctx.stop.is_set():
                    break
                op_id = self.rec.new_id()
                record = self.records(op_id, 1)
                op = self.register(
                    op_id,
                    record,
                    PRODUCER,
                    policy=ALL,
                    match_seq_num=start + index,
                    group=group,
                    index=index,
                )
                self.ctx.ops["producer record (match)"] += 1
                try:
                    ticket = await producer.submit(record[0])
                except S2Error as exc:
                    self.rec.refused(op, exc)
                    break
                n += 1
                future, i = ticket.batch_outcome()
                future.add_done_callback(functools.partial(_settle_record, self.rec, op, i))
                window.append(ticket)
                if len(window) > 24:
                    with contextlib.suppress(S2Error):
                        await window.popleft()
        finally:
            try:
                async with asyncio.timeout(60):
                    await producer.close()
            except (S2Error, TimeoutError):
                self.exact = False
            else:
                shared.tail = start + n


class BulkWriter(Worker):
    """Big appends (1000 small records) and, every ``trim_every`` records, one trim of
    nearly all of them, on a stream of its own: lite's background removal of that many
    records takes long enough (many write transactions) for a kill to land in it."""

    def __init__(
        self,
        ctx: Ctx,
        name: str,
        shared: Shared,
        proto: str,
        seed: int,
        *,
        trim_every: int,
        pause: float,
    ) -> None:
        super().__init__(ctx, name, shared, proto, NSE, seed)
        self.trim_every = trim_every
        self.pause = pause
        self.trimmed = 0

    async def step(self) -> None:
        shared = self.shared
        if shared.tail - self.trimmed >= self.trim_every:
            point = shared.tail - self.rng.randint(0, 50)
            if await self.unary(CommandRecord.trim(point), "trim", match=None, token=None):
                self.trimmed = point
            return
        op_id = self.rec.new_id()
        records = [Record(body=self.rec.body(op_id, i, 0)) for i in range(1000)]
        op = self.register(op_id, records, UNARY)
        self.ctx.ops["bulk append"] += 1
        try:
            ack = await self.stream().append(AppendInput(records=records))
        except S2Error as exc:
            self.rec.failed(op, exc)
            await asyncio.sleep(0.05)
            return
        self.rec.acked(op, ack)
        shared.saw_tail(ack.end.seq_num)
        await asyncio.sleep(self.pause)


# --- readers ---------------------------------------------------------------------------------


class UnaryReader(Worker):
    """Unary reads and check_tail on every stream."""

    def __init__(self, ctx: Ctx, name: str, streams: list[Shared], proto: str, seed: int):
        super().__init__(ctx, name, streams[0], proto, NSE, seed)
        self.streams = streams

    async def step(self) -> None:
        rng = self.rng
        shared = rng.choice(self.streams)
        x = rng.random()
        if x < 0.2:
            await self.check_tail(shared)
            return
        count: int | None = rng.randint(1, 60) if rng.random() < 0.9 else None
        nbytes = rng.randint(MAX_RECORD_METERED, 6000) if rng.random() < 0.2 else None
        start: ReadStart
        if x < 0.6:
            if rng.random() < 0.5:
                start = SeqNum(rng.randint(0, shared.tail))
            else:
                start = SeqNum(max(0, shared.tail - rng.randint(0, 60)))
        elif x < 0.75 and shared.stamps:
            start = Timestamp(rng.choice(shared.stamps) + rng.choice([-1, 0, 0, 1]))
        elif x < 0.95:
            start = TailOffset(rng.randint(0, 120))
        else:
            start = SeqNum(shared.tail + rng.randint(0, 500))
        await self.read(shared, start, count, nbytes)
        if rng.random() < 0.5:
            await asyncio.sleep(rng.uniform(0, 0.004))

    async def read(
        self, shared: Shared, start: ReadStart, count: int | None, nbytes: int | None
    ) -> None:
        if isinstance(start, SeqNum):
            spec, kind = ("seq", start.value), "read(seq_num)"
        elif isinstance(start, Timestamp):
            spec, kind = ("ts", start.value), "read(timestamp)"
        else:
            spec, kind = ("tail_offset", start.value), "read(tail_offset)"
        r = self.rec.read(
            shared.name, self.name, self.proto, "read", start=spec, count=count, max_bytes=nbytes
        )
        self.ctx.ops[kind] += 1
        limit = ReadLimit(count=count, bytes=nbytes)
        try:
            batch = await self.stream(shared.name).read(start, limit=limit)
        except S2Error as exc:
            self.rec.read_failed(r, exc)
            return
        self.rec.read_ok(r, batch)
        if batch.records:
            shared.saw_tail(batch.records[-1].seq_num + 1)
            shared.stamps.append(batch.records[self.rng.randrange(len(batch.records))].timestamp)


class FollowReader(Worker):
    """Follows one stream with read sessions, from seq_num 0, until cancelled."""

    def __init__(self, ctx: Ctx, name: str, shared: Shared, proto: str, seed: int) -> None:
        super().__init__(ctx, name, shared, proto, NSE, seed)
        self.next = 0
        self.restarts = 0

    async def run(self) -> None:
        follow = self.rec.follow(self.shared.name, self.name, self.proto, 0)
        try:
            while True:
                seg = self.rec.segment(follow, self.next)
                self.ctx.ops["read session"] += 1
                count = self.rng.randint(50, 800)
                session = self.stream().read_session(
                    SeqNum(self.next),
                    limit=ReadLimit(count=count),
                    wait=30,
                    heartbeat_timeout=self.ctx.settings.heartbeat_timeout,
                )
                try:
                    async for batch in session:
                        self.rec.batch(seg, batch)
                        if batch.records:
                            self.next = batch.records[-1].seq_num + 1
                            self.shared.saw_tail(self.next)
                except S2Error as exc:
                    self.rec.segment_end(seg, exc)
                    self.restarts += 1
                    await asyncio.sleep(0.05)
                except asyncio.CancelledError:
                    self.rec.segment_end(seg)
                    raise
                else:
                    self.rec.segment_end(seg)
                finally:
                    await session.aclose()
        finally:
            await self.client.aclose()
