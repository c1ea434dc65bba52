"""Outcomes the caller can believe in every ending (issue 10; docs/outcomes.md).

One named test per finding. Each ends by reading the stream back and holding every ticket to
the contract: an ack's records are on the stream; an error with ``has_no_side_effects`` has
none of its records on the stream; nothing stays unresolved.

* F1: ``AppendSession.close()`` under a deadline raises, and the tickets tell the truth.
* F2: ``Producer.abort()`` settles every ticket truthfully (also during a settle, and in the
  blocking API).
* F3: a timed-out wait on a ticket does not cancel the outcome it waits for.
* F4: error precedence: once an attempt was ambiguous, the outcome stays indefinite.
* F5: ``close()`` fails when inputs were not acked, whatever error ended the session.
* F6: a clean end of an idle session's response leaves no open stream behind.
* F7: ``Producer.close()`` under a deadline raises.
* The blocking API: ``close(timeout=...)`` aborts, resolves every ticket, then raises.
* The suspected ones: ``close()`` is bounded against a server that never ends its response;
  a producer re-sending after a settle meets its own late copy; acks are checked against
  ``match_seq_num`` and the previous ack.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest

from faults._harness import (
    Ledger,
    parse,
    pool_stats,
    read_stream,
    records_of,
    stream_of,
    until,
    wait_done,
)
from faults.conftest import ALL, NSE, POLICIES, TOKEN, ClientFactory
from s2kit import sync
from s2kit.client import Batching, Endpoints, Timeout
from s2kit.errors import ClosedError, RemoteProtocolError, S2Error, SeqNumMismatch
from s2kit.testing.faults import (
    Cut,
    EndStream,
    FaultProxy,
    Inject,
    Match,
    Reset,
    Respond,
    StreamFault,
    ack_frame,
)
from s2kit.types import AppendInput, SequencedRecord

if TYPE_CHECKING:
    from s2kit import S2
    from s2kit.client import AppendRetryPolicy, Producer, RecordTicket, Stream

pytestmark = pytest.mark.timeout(60)

SESSION = Match(method="POST", s2s=True)
UNARY = Match(method="POST", s2s=False, path="/records")
READ = Match(method="GET", path="/records")
APPLIED_THEN_CUT = StreamFault(match=SESSION, pass_down=0, when_down=1, action=Cut())


def copies(records: list[SequencedRecord], tag: str) -> dict[int, int]:
    """How often each input of ``tag`` is on the stream (by its first record)."""
    out: dict[int, int] = {}
    for r in records:
        p = parse(r.body)
        if p is not None and p[0] == tag and p[2] == 0:
            out[p[1]] = out.get(p[1], 0) + 1
    return out


def assert_truthful(ledger: Ledger, records: list[SequencedRecord]) -> dict[int, int]:
    """Every input resolved; acks present; side-effect-free errors absent."""
    landed = copies(records, ledger.tag)
    for item in ledger.items:
        assert item.ack is not None or item.error is not None, f"input {item.index} unresolved"
        if item.ack is not None:
            assert landed.get(item.index, 0) >= 1, f"acked input {item.index} is missing"
        elif item.error is not None and item.error.has_no_side_effects:
            assert landed.get(item.index, 0) == 0, (
                f"input {item.index} failed with a side-effect-free {item.error!r}, and landed"
            )
    return landed


async def produced(producer: Producer, tag: str, n: int) -> tuple[Ledger, list[RecordTicket]]:
    ledger = Ledger(tag)
    tickets = []
    for _ in range(n):
        item = ledger.next_input()
        tickets.append(await producer.submit(item.input.records[0]))
    return ledger, tickets


async def settle_records(ledger: Ledger, tickets: list[RecordTicket], within: float) -> None:
    """Wait (bounded) for every record ticket; record its outcome in the ledger."""
    async with asyncio.timeout(within):
        for item, ticket in zip(ledger.items, tickets, strict=True):
            try:
                item.ack = (await ticket).batch  # type: ignore[assignment]
            except S2Error as exc:
                item.error = exc


# --- F1: close() under a deadline -------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_f1_close_under_a_deadline_raises_and_tickets_stay_truthful(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.add(StreamFault(match=SESSION, pass_down=0))  # applied, acks withheld
    session = stream_of(make_client(policy, request=5.0), names).append_session()
    ledger = Ledger("f1")
    for _ in range(3):
        await ledger.submit(session)
    await proxy.wait_for(lambda: proxy.stats.messages_down >= 3)  # all three applied
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await session.close()
    assert loop.time() - started < 1.5
    await wait_done(ledger, within=2.0)
    landed = assert_truthful(ledger, await read_stream(direct, *names))
    assert landed == {0: 1, 1: 1, 2: 1}
    assert all(i.error is not None and i.error.is_indefinite for i in ledger.items)
    with pytest.raises(ClosedError):  # the inputs were not acked: close can never succeed
        await session.close()


# --- F2: abort ---------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_f2_producer_abort_settles_every_ticket_truthfully(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.add(StreamFault(match=SESSION, pass_down=0))  # applied, acks withheld
    producer = stream_of(make_client(policy, request=5.0), names).producer(
        batching=Batching(max_records=1)
    )
    ledger, tickets = await produced(producer, "f2", 6)
    await proxy.wait_for(lambda: proxy.stats.messages_down >= 6)
    await producer.abort()
    await settle_records(ledger, tickets, within=2.0)
    landed = assert_truthful(ledger, await read_stream(direct, *names))
    assert sum(landed.values()) == 6
    assert all(i.error is not None and i.error.is_indefinite for i in ledger.items)


async def test_f2_producer_abort_while_settling_an_ambiguous_412(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str]
) -> None:
    # The first input lands and the connection is cut before its ack; the re-send meets it
    # (412), and the producer reads the stream back, a read the proxy never answers.
    proxy.add(APPLIED_THEN_CUT, StreamFault(match=READ, hide=True))
    producer = stream_of(make_client(ALL, request=5.0), names).producer(
        batching=Batching(max_records=1), match_seq_num=0
    )
    ledger, tickets = await produced(producer, "f2r", 3)
    await proxy.wait_for(lambda: any(READ.matches(r) for r in proxy.requests))
    await producer.abort()
    await settle_records(ledger, tickets, within=2.0)
    landed = assert_truthful(ledger, await read_stream(direct, *names))
    assert landed.get(0) == 1


async def test_f2_blocking_producer_abort_settles_every_ticket_truthfully(
    proxy: FaultProxy, direct: S2, names: tuple[str, str]
) -> None:
    proxy.add(StreamFault(match=SESSION, pass_down=0))
    client = sync.S2(TOKEN, endpoints=Endpoints.for_url(proxy.url), timeout=Timeout(request=5.0))
    producer = client.basin(names[0]).stream(names[1]).producer(batching=Batching(max_records=1))
    ledger = Ledger("f2b")
    tickets = [producer.submit(ledger.next_input().input.records[0]) for _ in range(4)]
    await proxy.wait_for(lambda: proxy.stats.messages_down >= 4)
    await asyncio.to_thread(producer.abort)

    def results() -> None:
        for item, ticket in zip(ledger.items, tickets, strict=True):
            try:
                item.ack = ticket.result(timeout=2.0).batch
            except S2Error as exc:
                item.error = exc

    await asyncio.to_thread(results)  # a TimeoutError here is a hang
    await asyncio.to_thread(client.close)
    landed = assert_truthful(ledger, await read_stream(direct, *names))
    assert sum(landed.values()) == 4


# --- F3: waiting with a timeout ----------------------------------------------------------------


async def test_f3_a_timed_out_wait_leaves_the_append_ticket_alone(
    proxy: FaultProxy, make_client: ClientFactory, names: tuple[str, str]
) -> None:
    proxy.add(StreamFault(match=SESSION, delay_down=0.4))
    async with stream_of(make_client(NSE), names).append_session() as session:
        ticket = await session.submit(AppendInput(records=records_of("f3", 0)))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ticket, 0.05)
        ack = await ticket
        assert ack.end.seq_num - ack.start.seq_num == 1


async def test_f3_a_timed_out_wait_leaves_the_producer_alone(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str]
) -> None:
    proxy.add(StreamFault(match=SESSION, delay_down=0.4))
    producer = stream_of(make_client(NSE), names).producer()
    ledger, tickets = await produced(producer, "f3p", 3)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(tickets[1], 0.05)
    async with asyncio.timeout(5):
        await producer.flush()
        await producer.close()
    await settle_records(ledger, tickets, within=1.0)
    assert [i.ack is not None for i in ledger.items] == [True] * 3
    assert assert_truthful(ledger, await read_stream(direct, *names)) == {0: 1, 1: 1, 2: 1}


# --- F4: error precedence ----------------------------------------------------------------------


async def applied_then_unreachable(
    proxy: FaultProxy, make_client: ClientFactory, names: tuple[str, str], fault: StreamFault
) -> Stream:
    """A stream handle under ALL whose next append is applied, then cut before its ack, and
    whose retries then cannot connect (every new connection is reset at accept)."""
    stream = stream_of(make_client(ALL), names)
    await stream.check_tail()  # the connection the append will use, before the faults
    proxy.add(fault)
    proxy.next_connections(Reset(), Reset(), Reset(), Reset())
    return stream


async def test_f4_unary_append_stays_indefinite_when_the_retries_cannot_connect(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str]
) -> None:
    fault = StreamFault(match=UNARY, pass_down=0, when_down=1, action=Cut())
    stream = await applied_then_unreachable(proxy, make_client, names, fault)
    ledger = Ledger("f4u")
    item = ledger.next_input()
    with pytest.raises(S2Error) as error:
        await stream.append(item.input)
    item.error = error.value
    assert assert_truthful(ledger, await read_stream(direct, *names)) == {0: 1}
    assert error.value.is_indefinite
    assert error.value.earlier_indefinite is not None  # the cut, not the last ConnectError


async def test_f4_session_stays_indefinite_when_the_retries_cannot_connect(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str]
) -> None:
    stream = await applied_then_unreachable(proxy, make_client, names, APPLIED_THEN_CUT)
    session = stream.append_session()
    ledger = Ledger("f4s")
    await ledger.submit(session)
    await wait_done(ledger)
    assert assert_truthful(ledger, await read_stream(direct, *names)) == {0: 1}
    with pytest.raises(S2Error) as error:
        await session.close()
    assert error.value.is_indefinite


async def test_f4_producer_with_match_seq_num_stays_indefinite_when_retries_run_out(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str]
) -> None:
    stream = await applied_then_unreachable(proxy, make_client, names, APPLIED_THEN_CUT)
    producer = stream.producer(match_seq_num=0)
    ledger, tickets = await produced(producer, "f4p", 1)
    await settle_records(ledger, tickets, within=10.0)
    assert assert_truthful(ledger, await read_stream(direct, *names)) == {0: 1}
    with pytest.raises(S2Error) as error:
        await producer.close()
    assert error.value.is_indefinite


async def test_f4_session_stays_indefinite_after_a_definite_error_on_the_retry(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str]
) -> None:
    proxy.add(
        APPLIED_THEN_CUT,
        StreamFault(match=SESSION, hide=True, action=Respond(status=403, code="permission_denied")),
    )
    session = stream_of(make_client(ALL), names).append_session()
    ledger = Ledger("f4d")
    await ledger.submit(session)
    await wait_done(ledger)
    assert assert_truthful(ledger, await read_stream(direct, *names)) == {0: 1}
    assert ledger.items[0].error is not None
    assert ledger.items[0].error.is_indefinite


async def test_f4_session_stays_indefinite_when_the_client_closes_during_the_backoff(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str]
) -> None:
    client = make_client(ALL, min_delay=0.5, max_delay=0.5)
    proxy.add(APPLIED_THEN_CUT)
    session = stream_of(client, names).append_session()
    ledger = Ledger("f4c")
    await ledger.submit(session)
    await proxy.wait_for(lambda: proxy.stats.total_faults() == 1)
    await until(lambda: session.statistics().inflight == 0)  # re-queued, waiting to retry
    await client.aclose()
    await wait_done(ledger)
    assert assert_truthful(ledger, await read_stream(direct, *names)) == {0: 1}
    assert ledger.items[0].error is not None
    assert ledger.items[0].error.is_indefinite


# --- F5: close after a ClosedError ending ------------------------------------------------------


async def test_f5_close_fails_when_the_client_closed_under_the_session(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str]
) -> None:
    proxy.add(StreamFault(match=SESSION, pass_down=0))
    client = make_client(NSE)
    session = stream_of(client, names).append_session()
    ledger = Ledger("f5")
    for _ in range(2):
        await ledger.submit(session)
    await proxy.wait_for(lambda: proxy.stats.messages_down >= 2)
    await client.aclose()
    with pytest.raises(ClosedError) as error:
        await session.close()
    assert error.value.is_indefinite
    await wait_done(ledger)
    assert assert_truthful(ledger, await read_stream(direct, *names)) == {0: 1, 1: 1}


# --- F6: a clean end of an idle session --------------------------------------------------------


async def test_f6_a_clean_end_of_an_idle_session_leaves_no_stream_open(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str]
) -> None:
    proxy.add(StreamFault(match=SESSION, when_down=1, action=EndStream(), times=3))
    client = make_client(NSE)
    ledger = Ledger("f6")
    async with stream_of(client, names).append_session() as session:
        for round_ in range(3):
            await ledger.submit(session)
            await wait_done(ledger)
            await proxy.wait_for(lambda n=round_: proxy.stats.total_faults() == n + 1)
            await until(lambda: pool_stats(client).open_streams == 0, within=2.0)
    assert [i.ack is not None for i in ledger.items] == [True] * 3
    assert assert_truthful(ledger, await read_stream(direct, *names)) == {0: 1, 1: 1, 2: 1}


# --- F7: Producer.close() under a deadline ------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_f7_producer_close_under_a_deadline_raises(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.add(StreamFault(match=SESSION, pass_down=0))
    producer = stream_of(make_client(policy, request=5.0), names).producer()
    ledger, tickets = await produced(producer, "f7", 3)
    await proxy.wait_for(lambda: proxy.stats.messages_down >= 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await producer.close()
    assert loop.time() - started < 1.5
    await settle_records(ledger, tickets, within=2.0)
    landed = assert_truthful(ledger, await read_stream(direct, *names))
    assert landed == {0: 1, 1: 1, 2: 1}


# --- suspected: settle meets its own late copy; acks checked ------------------------------------


async def test_producer_resend_after_a_settle_meets_its_own_late_copy(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str]
) -> None:
    # Session 1, attempt 1: both inputs handed off, only the first reaches the server and is
    # applied, then the cut. Attempt 2 re-sends: 412, settled by reading back (delayed by the
    # proxy): the first landed, the second goes to a new session. Meanwhile the second's old
    # copy "arrives late" (appended here, as a delayed frame of attempt 1 would be), so the
    # new session's first attempt meets it: a 412 that is the producer's own record.
    proxy.add(
        StreamFault(match=SESSION, pass_up=1, pass_down=0, when_down=1, action=Cut()),
        StreamFault(match=READ, delay_down=0.5),
    )
    producer = stream_of(make_client(ALL), names).producer(
        batching=Batching(max_records=1, linger=0.05), match_seq_num=0
    )
    ledger = Ledger("own")
    first, second = ledger.next_input(), ledger.next_input()
    tickets = [await producer.submit(first.input.records[0])]
    tickets.append(await producer.submit(second.input.records[0]))
    await proxy.wait_for(lambda: any(READ.matches(r) for r in proxy.requests))
    await (
        direct.basin(names[0])
        .stream(names[1])
        .append(AppendInput(records=second.input.records, match_seq_num=1))
    )
    await settle_records(ledger, tickets, within=10.0)
    landed = assert_truthful(ledger, await read_stream(direct, *names))
    assert landed == {0: 1, 1: 1}
    for item in ledger.items:
        assert (
            item.ack is not None
            or not isinstance(item.error, SeqNumMismatch)
            or (item.error.is_indefinite)
        )


async def test_an_ack_at_the_wrong_position_for_match_seq_num_is_refused(
    proxy: FaultProxy, make_client: ClientFactory, names: tuple[str, str]
) -> None:
    # The real ack is withheld; a forged one with the right count but the wrong start arrives.
    proxy.add(
        StreamFault(match=SESSION, pass_down=0, when_down=1, action=Inject(data=ack_frame(5, 6)))
    )
    session = stream_of(make_client(NSE), names).append_session()
    ticket = await session.submit(AppendInput(records=records_of("pos", 0), match_seq_num=0))
    with pytest.raises(RemoteProtocolError):
        await ticket
    await session.abort()


async def test_an_ack_overlapping_the_previous_one_is_refused(
    proxy: FaultProxy, make_client: ClientFactory, names: tuple[str, str]
) -> None:
    # Acks [0, 2) (real), then a forged [1, 3) for the next two records: its end moves on, but
    # it starts inside the batch acked before.
    proxy.add(
        StreamFault(match=SESSION, pass_down=1, when_down=2, action=Inject(data=ack_frame(1, 3)))
    )
    session = stream_of(make_client(NSE), names).append_session()
    first = await session.submit(AppendInput(records=records_of("ovl", 0, 2)))
    second = await session.submit(AppendInput(records=records_of("ovl", 1, 2)))
    assert (await first).end.seq_num == 2
    with pytest.raises(RemoteProtocolError):
        await second
    await session.abort()


# --- the blocking API: close() with a timeout --------------------------------------------------


def _blocking_close_times_out(owner: sync.AppendSession | sync.Producer) -> float:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        owner.close(timeout=0.3)
    return time.monotonic() - started


def _outcomes(ledger: Ledger, tickets: list[sync.Ticket], seqs: bool) -> None:
    for item, ticket in zip(ledger.items, tickets, strict=True):
        assert ticket.done()  # resolved before close() returned
        try:
            ack = ticket.result(timeout=0)
            item.ack = ack.batch if seqs else ack
        except S2Error as exc:
            item.error = exc


@pytest.mark.parametrize("kind", ["session", "producer"])
async def test_f1_f7_blocking_close_with_a_timeout_aborts_then_raises(
    proxy: FaultProxy, direct: S2, names: tuple[str, str], kind: str
) -> None:
    proxy.add(StreamFault(match=SESSION, pass_down=0))  # applied, acks withheld
    client = sync.S2(TOKEN, endpoints=Endpoints.for_url(proxy.url), timeout=Timeout(request=5.0))
    stream = client.basin(names[0]).stream(names[1])
    ledger = Ledger(f"f1b-{kind}")
    owner: sync.AppendSession | sync.Producer
    if kind == "session":
        owner = await asyncio.to_thread(stream.append_session)
        session = owner
        tickets = [
            await asyncio.to_thread(session.submit, ledger.next_input().input) for _ in range(3)
        ]
    else:
        owner = await asyncio.to_thread(stream.producer, batching=Batching(max_records=1))
        producer = owner
        tickets = [producer.submit(ledger.next_input().input.records[0]) for _ in range(3)]
    await proxy.wait_for(lambda: proxy.stats.messages_down >= 3)
    elapsed = await asyncio.to_thread(_blocking_close_times_out, owner)
    assert elapsed < 1.5
    _outcomes(ledger, tickets, seqs=kind == "producer")
    await asyncio.to_thread(client.close)
    assert assert_truthful(ledger, await read_stream(direct, *names)) == {0: 1, 1: 1, 2: 1}
    assert all(i.error is not None and i.error.is_indefinite for i in ledger.items)
