"""The blocking API (``s2kit.sync``) against lite: every method, from plain test functions.

The blocking client runs the asyncio core on a shared background loop; lite runs in another
thread. Nothing here may be ``async``: a blocking call inside a running loop would stall it.
"""

from __future__ import annotations

import base64
import concurrent.futures
from collections.abc import Iterator

import pytest

import s2kit
import s2kit.sync
from conftest import TOKEN, Endpoint, unique
from s2kit import (
    AppendInput,
    BasinConfig,
    BasinReconfiguration,
    Batching,
    CommandRecord,
    EncryptionAlgorithm,
    ProvisionResult,
    ReadLimit,
    Record,
    RecordAck,
    SeqNum,
    StorageClass,
    StreamConfig,
    StreamPosition,
    StreamReconfiguration,
    TailOffset,
    Timestamp,
)
from s2kit.errors import (
    ClosedError,
    FencingTokenMismatch,
    ReadUnwritten,
    SeqNumMismatch,
    ServerError,
    UsageError,
)

WAIT = 20.0


@pytest.fixture
def lite_overrides() -> dict[str, object]:
    return {"deletion_grace": 30.0, "heartbeat_min": 0.02, "heartbeat_max": 0.05}


@pytest.fixture
def sync_s2(endpoint: Endpoint) -> Iterator[s2kit.sync.S2]:
    with endpoint.sync_client() as s2:
        yield s2


def one(body: bytes, **kwargs: object) -> AppendInput:
    return AppendInput(records=(Record(body=body),), **kwargs)  # type: ignore[arg-type]


def test_basin_methods(sync_s2: s2kit.sync.S2) -> None:
    s2 = sync_s2
    name = unique("sync")
    info = s2.create_basin(name, BasinConfig(create_stream_on_read=True))
    assert info.name == name
    with pytest.raises(ServerError) as exc:
        s2.create_basin(name)
    assert exc.value.code == "resource_already_exists"
    assert s2.get_basin_config(name) == BasinConfig(create_stream_on_read=True)
    new = s2.reconfigure_basin(name, BasinReconfiguration(create_stream_on_append=True))
    assert (new.create_stream_on_append, new.create_stream_on_read) == (True, True)
    _, result = s2.ensure_basin(name, BasinConfig())
    assert result is ProvisionResult.UPDATED
    _, result = s2.ensure_basin(name, BasinConfig())
    assert result is ProvisionResult.NOOP
    assert s2.ensure_basin(unique("sync"))[1] is ProvisionResult.CREATED

    page = s2.list_basins(prefix="sync-", limit=1)
    assert [b.name for b in page.items] == [name]
    assert page.has_more
    s2.delete_basin(name)
    assert s2.list_basins(prefix=name).items[0].deleted_at is not None
    with pytest.raises(ServerError) as exc:
        s2.delete_basin(unique("missing"))
    assert (exc.value.status, exc.value.code) == (404, "basin_not_found")
    s2.delete_basin(unique("missing"), ignore_not_found=True)
    assert s2.basin(name).name == name


def test_iter_basins_crosses_pages(sync_s2: s2kit.sync.S2) -> None:
    names = [f"many-{i:05d}" for i in range(1001)]
    # The blocking client may be shared by threads.
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(sync_s2.create_basin, names))
    assert [b.name for b in sync_s2.iter_basins(prefix="many-")] == names


def test_stream_control_methods(sync_s2: s2kit.sync.S2) -> None:
    name = unique("sync")
    sync_s2.create_basin(name)
    basin = sync_s2.basin(name)
    assert basin.create_stream("a").name == "a"
    basin.create_stream("b", StreamConfig(storage_class=StorageClass.STANDARD))
    assert basin.get_stream_config("b").storage_class is StorageClass.STANDARD
    changed = basin.reconfigure_stream("b", StreamReconfiguration(retention_policy="infinite"))
    assert changed.retention_policy == "infinite"
    assert basin.ensure_stream("c")[1] is ProvisionResult.CREATED
    assert basin.ensure_stream("c")[1] is ProvisionResult.NOOP

    page = basin.list_streams(limit=2)
    assert ([s.name for s in page.items], page.has_more) == (["a", "b"], True)
    assert [s.name for s in basin.iter_streams()] == ["a", "b", "c"]
    assert [s.name for s in basin.iter_streams(prefix="c")] == ["c"]

    basin.delete_stream("a")
    with pytest.raises(ServerError) as exc:
        basin.get_stream_config("a")
    assert exc.value.code == "stream_deletion_pending"
    with pytest.raises(ServerError) as exc:
        basin.delete_stream("zzz")
    assert exc.value.code == "stream_not_found"
    basin.delete_stream("zzz", ignore_not_found=True)


def test_iter_streams_crosses_pages(sync_s2: s2kit.sync.S2) -> None:
    name = unique("sync")
    sync_s2.create_basin(name)
    basin = sync_s2.basin(name)
    names = [f"s{i:05d}" for i in range(1001)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(basin.create_stream, names))
    assert [s.name for s in basin.iter_streams()] == names


@pytest.fixture
def stream(sync_s2: s2kit.sync.S2) -> s2kit.sync.Stream:
    name = unique("sync")
    sync_s2.create_basin(name)
    sync_s2.basin(name).create_stream("s")
    return sync_s2.basin(name).stream("s")


def test_check_tail_append_and_read(stream: s2kit.sync.Stream) -> None:
    assert stream.check_tail() == StreamPosition(0, 0)
    ack = stream.append(
        AppendInput(
            records=tuple(
                Record(body=b"%d" % i, headers=((b"i", b"%d" % i),), timestamp=(i + 1) * 100)
                for i in range(5)
            )
        )
    )
    assert (ack.start.seq_num, ack.end) == (0, StreamPosition(5, 500))
    assert stream.check_tail() == ack.end
    assert [r.body for r in stream.read(SeqNum(3)).records] == [b"3", b"4"]
    assert [r.body for r in stream.read(Timestamp(200), until=400).records] == [b"1", b"2"]
    assert [r.body for r in stream.read(TailOffset(1)).records] == [b"4"]
    got = stream.read(SeqNum(0), limit=ReadLimit(count=2)).records
    assert [(r.seq_num, r.headers) for r in got] == [(0, ((b"i", b"0"),)), (1, ((b"i", b"1"),))]
    with pytest.raises(ReadUnwritten) as exc:
        stream.read(SeqNum(10))
    assert exc.value.tail == ack.end
    assert stream.read(SeqNum(10), clamp=True, wait=1).records == ()

    with pytest.raises(UsageError):
        stream.append(AppendInput(records=()))
    stream.append(AppendInput(records=(CommandRecord.fence("t"),)))
    with pytest.raises(FencingTokenMismatch) as fexc:
        stream.append(one(b"x", fencing_token="u"))
    assert fexc.value.expected == "t"
    with pytest.raises(SeqNumMismatch) as sexc:
        stream.append(one(b"x", match_seq_num=0))
    assert sexc.value.expected == 6


def test_encryption_key(sync_s2: s2kit.sync.S2) -> None:
    name = unique("sync")
    sync_s2.create_basin(name, BasinConfig(stream_cipher=EncryptionAlgorithm.AEGIS_256))
    sync_s2.basin(name).create_stream("s")
    plain = sync_s2.basin(name).stream("s")
    keyed = plain.with_encryption_key(base64.b64encode(b"k" * 32).decode())
    keyed.append(one(b"secret"))
    assert [r.body for r in keyed.read().records] == [b"secret"]
    with pytest.raises(ServerError) as exc:
        plain.read()
    assert exc.value.code == "bad_header"


def test_append_session(stream: s2kit.sync.Stream) -> None:
    with stream.append_session() as session:
        tickets = [session.submit(one(b"%d" % i)) for i in range(500)]
    assert all(t.done() for t in tickets)
    stats = session.statistics()
    assert (stats.acked_batches, stats.queued, stats.inflight, stats.unacked_bytes) == (
        500,
        0,
        0,
        0,
    )
    assert [t.result().start.seq_num for t in tickets] == list(range(500))
    with pytest.raises(ClosedError):
        session.submit(one(b"late"))

    session = stream.append_session(max_unacked_batches=4)
    good = session.submit(one(b"ok", match_seq_num=500))
    bad = session.submit(one(b"stale", match_seq_num=0))
    assert good.result(WAIT).end.seq_num == 501
    with pytest.raises(SeqNumMismatch) as exc:
        bad.result(WAIT)
    assert exc.value.expected == 501
    # The session runs on another thread: the failure is in, so later submits raise it.
    with pytest.raises(SeqNumMismatch):
        session.submit(one(b"later"))
    with pytest.raises(SeqNumMismatch):
        session.close()

    aborted_tickets: list[s2kit.sync.Ticket] = []
    sessions: list[s2kit.sync.AppendSession] = []

    def fail_inside() -> None:
        with stream.append_session() as aborted:
            sessions.append(aborted)
            aborted_tickets.append(aborted.submit(one(b"maybe")))
            raise RuntimeError("leave")

    with pytest.raises(RuntimeError):
        fail_inside()
    # Acked before the abort, or failed by it (an input in flight may still have landed).
    assert aborted_tickets[0].done()
    with pytest.raises(ClosedError):
        sessions[0].submit(one(b"after the abort"))

    explicit = stream.append_session()
    explicit.abort()
    with pytest.raises(ClosedError):
        explicit.submit(one(b"after abort()"))


def test_producer(stream: s2kit.sync.Stream) -> None:
    with stream.producer(batching=Batching(max_records=10, linger=60.0)) as producer:
        tickets = [producer.submit(Record(body=b"%d" % i)) for i in range(25)]
        producer.flush()
        assert all(t.done() for t in tickets)
        acks: list[RecordAck] = [t.result() for t in tickets]
    assert [a.seq_num for a in acks] == list(range(25))
    assert sorted({(a.batch.start.seq_num, a.batch.end.seq_num) for a in acks}) == [
        (0, 10),
        (10, 20),
        (20, 25),
    ]
    producer.close()  # idempotent
    with pytest.raises(ClosedError):
        producer.submit(Record(body=b"late"))

    lingering = stream.producer(batching=Batching(linger=60.0))
    never_sent = lingering.submit(Record(body=b"never sent"))
    lingering.abort()
    with pytest.raises(ClosedError):
        never_sent.result(WAIT)
    assert stream.check_tail().seq_num == 25

    fenced = stream.producer(fencing_token="nobody", match_seq_num=25)
    ticket = fenced.submit(Record(body=b"x"))
    with pytest.raises(FencingTokenMismatch):
        ticket.result(WAIT)
    with pytest.raises(FencingTokenMismatch):
        fenced.close()


def test_producer_from_threads_under_backpressure(stream: s2kit.sync.Stream) -> None:
    # Two threads share one producer whose cap holds only a few records: submit blocks and
    # resumes, every record lands once, and each thread's records keep their order.
    per_thread, pad = 150, b"." * (64 << 10)
    with stream.producer(max_unacked_bytes=1 << 20) as producer:

        def produce(tag: bytes) -> list[s2kit.sync.Ticket]:
            return [
                producer.submit(Record(body=tag + b"%04d" % i + pad)) for i in range(per_thread)
            ]

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            work = [pool.submit(produce, tag) for tag in (b"a", b"b")]
            tickets = {tag: w.result(WAIT) for tag, w in zip((b"a", b"b"), work, strict=True)}
    landed = {
        r.seq_num: r.body
        for batch in stream.read_session(SeqNum(0), limit=ReadLimit(count=2 * per_thread))
        for r in batch.records
    }
    assert len(landed) == 2 * per_thread
    for tag, mine in tickets.items():
        seqs = [t.result(WAIT).seq_num for t in mine]
        assert seqs == sorted(seqs)
        assert [landed[s] for s in seqs] == [tag + b"%04d" % i + pad for i in range(per_thread)]


def test_producer_reports_errors_at_submit(stream: s2kit.sync.Stream) -> None:
    with stream.producer() as producer:
        with pytest.raises(UsageError):
            producer.submit(Record(body=b"x" * (1 << 20)))  # over the 1 MiB batch limit
        assert producer.submit(Record(body=b"fine")).result(WAIT).seq_num == 0
    fenced = stream.producer(fencing_token="nobody")
    first = fenced.submit(Record(body=b"x"))
    with pytest.raises(FencingTokenMismatch):
        first.result(WAIT)
    with pytest.raises(FencingTokenMismatch):  # the producer failed: later submits say why
        fenced.submit(Record(body=b"y"))
    fenced.abort()


def test_read_session(stream: s2kit.sync.Stream) -> None:
    stream.append(AppendInput(records=tuple(Record(body=b"%d" % i) for i in range(3))))
    with stream.read_session(SeqNum(0), limit=ReadLimit(count=2)) as bounded:
        assert [r.body for b in bounded for r in b.records] == [b"0", b"1"]

    got: list[bytes] = []
    with stream.read_session(SeqNum(1)) as following:
        assert following.tail is None
        for batch in following:
            got += [r.body for r in batch.records]
            if len(got) >= 6:
                break
            stream.append(one(b"live"))  # the session follows the tail
    assert got[:2] == [b"1", b"2"]
    assert got[2:] == [b"live"] * (len(got) - 2)
    assert len(got) == 6
    assert following.tail is not None
    assert following.tail.seq_num >= 6
    with pytest.raises(StopIteration):
        next(following)

    with stream.read_session(SeqNum(0), wait=1) as idle:  # heartbeats only, then the end
        assert len([r for b in idle for r in b.records]) == 7  # 3 + 4 appended above


def test_from_env(endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S2_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("S2_ACCOUNT_ENDPOINT", endpoint.url)
    monkeypatch.setenv("S2_BASIN_ENDPOINT", endpoint.url)
    with s2kit.sync.S2.from_env(ssl_context=endpoint.ssl_context()) as s2:
        assert s2.list_basins().items == ()
    monkeypatch.delenv("S2_ACCESS_TOKEN")
    with pytest.raises(UsageError):
        s2kit.sync.S2.from_env()


def test_sync_access_token_calls_reach_lite(sync_s2: s2kit.sync.S2) -> None:
    # Lite without --auth answers these with 501 `not_implemented`; the blocking calls surface
    # it typed (tests/auth runs them against lite with --auth).
    scope = s2kit.AccessTokenScope(basins=s2kit.PrefixMatch(""))
    calls = [
        lambda: sync_s2.issue_access_token("tok", scope),
        lambda: sync_s2.list_access_tokens(),
        lambda: sync_s2.revoke_access_token("tok"),
    ]
    for call in calls:
        with pytest.raises(ServerError) as info:
            call()
        assert (info.value.status, info.value.code) == (501, "not_implemented")
