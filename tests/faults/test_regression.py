"""The official SDK's duplicate-append bug, as its own regression test, and the producer's
exactly-once mode (ALL + match_seq_num, settling ambiguous 412s by reading back).

The bug: a session-wide "sent" flag. A retry re-sends inputs; their acks arrive while fresh
inputs are already on the wire; the acks clear the flag; the connection then fails before the
fresh acks, and the session, believing nothing unacknowledged was sent, retries under
NO_SIDE_EFFECTS and appends the fresh inputs twice.

The script, per session attempt:

1. four inputs; the proxy forwards two, the server acks them, then a definite failure
   (``rate_limited``): every policy retries, the other two are re-sent;
2. the re-sent two and two fresh inputs all reach the server and are applied; the proxy holds
   the acks until the fresh inputs have arrived, then lets the re-sent inputs' acks through,
   and fails the attempt before the fresh acks: a terminal ``500 other``, a ``503
   unavailable``, a connection reset, or nothing (the ack deadline passes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from faults._harness import Ledger, check, check_a4, parse, read_stream, stream_of, wait_done
from faults.conftest import ALL, NSE, ClientFactory
from faults.test_session_h2 import session_requests
from s2kit.client import Batching
from s2kit.errors import BrokenError, S2Error, SeqNumMismatch
from s2kit.testing.faults import (
    Cut,
    FaultProxy,
    Match,
    Release,
    Respond,
    Step,
    StreamFault,
    Terminal,
)
from s2kit.types import AppendInput, Record

if TYPE_CHECKING:
    from s2kit import S2
    from s2kit.testing.faults import Action

SESSION = Match(method="POST", s2s=True)
FAILURES: dict[str, Action | None] = {
    "terminal-500-other": Terminal(status=500, code="other"),
    "terminal-503-unavailable": Terminal(status=503, code="unavailable"),
    "reset": Cut(reset=True),
    "ack-timeout": None,
}


def script(proxy: FaultProxy, failure: Action | None) -> None:
    proxy.add(
        StreamFault(match=SESSION, pass_up=2, when_up=4, when_down=2,
                    action=Terminal(status=429, code="rate_limited")),
        StreamFault(
            match=SESSION,
            pass_down=0,
            then=(
                Step(when_up=4, action=Release(pass_down=2)),  # the re-sent inputs' acks
                Step(when_down=4, action=failure),  # every input applied, fresh acks withheld
            ),
        ),
    )  # fmt: skip


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
async def test_original_bug_nse_never_duplicates_fresh_inputs(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    failure: Action | None,
) -> None:  # fmt: skip
    script(proxy, failure)
    session = stream_of(make_client(NSE, request=0.6), names).append_session()
    ledger = Ledger("bug")
    for _ in range(4):
        await ledger.submit(session)
    await proxy.wait_for(lambda: len(session_requests(proxy)) == 2)  # the retry has begun
    for _ in range(2):
        await ledger.submit(session)  # fresh: never sent in the first attempt
    await wait_done(ledger)
    error = await check_a4(session, ledger)
    assert error.is_indefinite
    assert [i.index for i in ledger.acked] == [0, 1, 2, 3]
    landed = check(ledger, await read_stream(direct, *names), NSE)
    assert [landed.of(i) for i in range(6)] == [1] * 6  # applied once, never re-sent
    assert session.statistics().attempts == 2


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
async def test_original_bug_all_with_producer_match_seq_num_is_exactly_once(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    failure: Action | None,
) -> None:  # fmt: skip
    script(proxy, failure)
    stream = stream_of(make_client(ALL, request=0.6), names)
    producer = stream.producer(match_seq_num=0, batching=Batching(max_records=1, linger=0))
    tickets = [await producer.submit(Record(body=b"bug/%d/0" % i)) for i in range(4)]
    await proxy.wait_for(lambda: len(session_requests(proxy)) == 2)
    tickets += [await producer.submit(Record(body=b"bug/%d/0" % i)) for i in (4, 5)]
    acks = [await t for t in tickets]
    # The third attempt re-sent the fresh inputs: 412, settled by reading back; the producer
    # goes on with a new session.
    tickets += [await producer.submit(Record(body=b"bug/%d/0" % i)) for i in (6, 7)]
    await producer.close()
    acks += [await t for t in tickets[6:]]
    assert [a.seq_num for a in acks] == list(range(8))
    records = await read_stream(direct, *names)
    assert [r.body for r in records] == [b"bug/%d/0" % i for i in range(8)]
    assert producer.statistics().settled == 1


async def test_producer_settles_an_ambiguous_412_and_continues(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    # S3 under ALL: input 3 is applied, the connection dies before its ack; its re-send
    # meets its own copy (412); the producer reads back, resolves it, re-submits the rest.
    proxy.add(
        StreamFault(match=SESSION, pass_up=3, pass_down=2, when_up=5, when_down=3, action=Cut())
    )
    stream = stream_of(make_client(ALL), names)
    producer = stream.producer(match_seq_num=0, batching=Batching(max_records=1, linger=0))
    tickets = [await producer.submit(Record(body=b"p/%d/0" % i)) for i in range(5)]
    await producer.close()
    assert [(await t).seq_num for t in tickets] == list(range(5))
    records = await read_stream(direct, *names)
    assert [parse(r.body) for r in records] == [("p", i, 0) for i in range(5)]
    assert producer.statistics().settled == 1


async def test_producer_reports_a_foreign_writer_as_a_definite_412(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    # The first attempt is cut with nothing applied; before the retry, another writer takes
    # the seq_nums the producer expected. The re-send's 412 is then not its own copy.
    proxy.add(StreamFault(match=SESSION, pass_up=0, when_up=2, action=Cut()))
    other = stream_of(direct, names)
    stream = stream_of(make_client(ALL, min_delay=0.3, max_delay=0.3), names)
    producer = stream.producer(match_seq_num=0, batching=Batching(max_records=1, linger=0))
    tickets = [await producer.submit(Record(body=b"mine/%d/0" % i)) for i in range(2)]
    await proxy.wait_for(lambda: proxy.stats.faults.total() == 1)
    await other.append(AppendInput(records=(Record(body=b"theirs"),)))
    for t in tickets:
        with pytest.raises(SeqNumMismatch) as excinfo:
            await t
        assert excinfo.value.has_no_side_effects
    with pytest.raises(S2Error):
        await producer.close()
    records = await read_stream(direct, *names)
    assert [r.body for r in records] == [b"theirs"]
    # The cut left the first attempt in doubt: the producer read back, found the other
    # writer's record in its place, and only then called the 412 definite.
    assert producer.statistics().settled == 1


async def test_producer_that_cannot_read_back_fails_indefinitely(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    # As above, but the read-back is refused: the outcome cannot be settled, so the tickets
    # fail with an indefinite error, not with the (definite-looking) 412.
    proxy.add(
        StreamFault(match=SESSION, pass_up=3, pass_down=2, when_up=5, when_down=3, action=Cut()),
        StreamFault(match=Match(method="GET", s2s=False), hide=True,
                    action=Respond(status=403, code="permission_denied")),
    )  # fmt: skip
    stream = stream_of(make_client(ALL), names)
    producer = stream.producer(match_seq_num=0, batching=Batching(max_records=1, linger=0))
    tickets = [await producer.submit(Record(body=b"q/%d/0" % i)) for i in range(5)]
    assert [(await t).seq_num for t in tickets[:2]] == [0, 1]
    for t in tickets[2:]:
        with pytest.raises(BrokenError, match="could not be settled") as excinfo:
            await t
        assert excinfo.value.is_indefinite
    with pytest.raises(BrokenError):
        await producer.close()
    records = await read_stream(direct, *names)
    # The third input landed (unacked): the read-back would have found it.
    assert [r.body for r in records] == [b"q/%d/0" % i for i in range(3)]
