"""Append sessions under faults, S1–S11 of docs/retry-safety.md#append-sessions, both policies.

Each test submits ``N`` single-record inputs to one session through the proxy, lets the
scripted fault hit, and checks A1/A2/A5 against the stream read back directly, plus A4 when
the session must stop. ``K`` inputs are acked before the fault.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from faults._harness import (
    Ledger,
    check,
    check_a4,
    client_connections,
    read_stream,
    stream_of,
    until,
    wait_done,
)
from faults.conftest import ALL, NSE, POLICIES, ClientFactory
from s2kit.errors import RemoteProtocolError, RequestTimeout, SeqNumMismatch, ServerError
from s2kit.testing.faults import (
    Cut,
    EndStream,
    FaultProxy,
    Inject,
    Match,
    Respond,
    StreamFault,
    Terminal,
    ack_frame,
)

if TYPE_CHECKING:
    from s2kit import S2
    from s2kit.client import AppendRetryPolicy, AppendSession

N, K = 5, 2
SESSION = Match(method="POST", s2s=True)
DEFINITE = [(429, "rate_limited"), (502, "hot_server"), (503, "server_draining"),
            (409, "transaction_conflict")]  # fmt: skip
INDEFINITE = [(500, "other"), (500, "storage"), (503, "unavailable"), (504, "upstream_timeout"),
              (408, "request_timeout")]  # fmt: skip


async def submit_n(
    client: S2, names: tuple[str, str], tag: str, n: int = N
) -> tuple[AppendSession, Ledger]:
    session = stream_of(client, names).append_session()
    ledger = Ledger(tag)
    for _ in range(n):
        await ledger.submit(session)
    await wait_done(ledger)
    return session, ledger


async def finish(
    session: AppendSession,
    ledger: Ledger,
    direct: S2,
    names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:
    """The session must succeed: close it, every input once."""
    await session.close()
    landed = check(ledger, await read_stream(direct, *names), policy)
    assert [i.index for i in ledger.acked] == list(range(len(ledger.items)))
    assert all(landed.of(i) == 1 for i in range(len(ledger.items)))


async def stopped(
    session: AppendSession,
    ledger: Ledger,
    direct: S2,
    names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> tuple[Exception, list[int]]:
    """The session must stop: A4, then the copies of every input."""
    error = await check_a4(session, ledger)
    landed = check(ledger, await read_stream(direct, *names), policy)
    return error, [landed.of(i) for i in range(len(ledger.items))]


# --- S1: an HTTP error instead of the session ---------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("status", "code"), DEFINITE)
async def test_s1_definite_http_error_is_retried(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy, status: int, code: str,
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(match=SESSION, hide=True, when_up=N, action=Respond(status=status, code=code))
    )
    session, ledger = await submit_n(make_client(policy), names, "s1")
    await finish(session, ledger, direct, names, policy)
    assert session.statistics().attempts == 2


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("status", "code"), INDEFINITE)
async def test_s1_indefinite_http_error_after_hand_off(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy, status: int, code: str,
) -> None:  # fmt: skip
    # The inputs were written while the client waited for the response head (F set).
    proxy.add(
        StreamFault(match=SESSION, hide=True, when_up=N, action=Respond(status=status, code=code))
    )
    session, ledger = await submit_n(make_client(policy), names, "s1")
    if policy is ALL:
        await finish(session, ledger, direct, names, policy)
        return
    error, copies = await stopped(session, ledger, direct, names, policy)
    assert isinstance(error, ServerError)
    assert (error.status, error.code) == (status, code)
    assert copies == [0] * N


# --- S2, S3: a reset after k acks, the next input applied or not ------------------------------


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("reset", [True, False], ids=["rst", "fin"])
async def test_s2_cut_after_k_acks_nothing_else_applied(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy, reset: bool,
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(match=SESSION, pass_up=K, when_up=N, when_down=K, action=Cut(reset=reset))
    )
    session, ledger = await submit_n(make_client(policy), names, "s2")
    if policy is ALL:
        await finish(session, ledger, direct, names, policy)
        assert session.statistics().attempts == 2
        return
    _, copies = await stopped(session, ledger, direct, names, policy)
    assert [i.index for i in ledger.acked] == list(range(K))
    assert copies == [1] * K + [0] * (N - K)


@pytest.mark.parametrize("policy", POLICIES)
async def test_s3_input_applied_before_the_reset(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(
            match=SESSION, pass_up=K + 1, pass_down=K, when_up=N, when_down=K + 1, action=Cut()
        )
    )
    session, ledger = await submit_n(make_client(policy), names, "s3")
    if policy is ALL:
        await session.close()
        landed = check(ledger, await read_stream(direct, *names), policy)
        # A5: the input applied in the failed attempt is there twice, the others once.
        assert [landed.of(i) for i in range(N)] == [1] * K + [2] + [1] * (N - K - 1)
        return
    _, copies = await stopped(session, ledger, direct, names, policy)
    assert copies == [1] * (K + 1) + [0] * (N - K - 1)


async def test_s3_all_with_match_seq_num_ends_in_seq_num_mismatch(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(
            match=SESSION, pass_up=K + 1, pass_down=K, when_up=N, when_down=K + 1, action=Cut()
        )
    )
    session = stream_of(make_client(ALL), names).append_session()
    ledger = Ledger("s3m")
    for i in range(N):
        await ledger.submit(session, match_seq_num=i)
    await wait_done(ledger)
    error, copies = await stopped(session, ledger, direct, names, ALL)
    # The re-sent input K already landed: its re-send meets its own copy, no duplicate.
    assert isinstance(error, SeqNumMismatch)
    assert error.expected == K + 1
    assert copies == [1] * (K + 1) + [0] * (N - K - 1)


# --- S4: an idle session loses its connection -------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_s4_idle_reset_reconnects_transparently(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    client = make_client(policy)
    session, ledger = await submit_n(client, names, "s4", n=2)
    proxy.cut_all(reset=True)
    # Once the client saw the reset: a submit racing it would go out on the dead connection.
    await until(lambda: client_connections(client) == 0)
    for _ in range(2):
        await ledger.submit(session)
    await wait_done(ledger)
    await finish(session, ledger, direct, names, policy)
    assert proxy.stats.connections == 2


# --- S5, S6: acks withheld past the deadline ----------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_s5_acks_withheld_inputs_applied(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.add(StreamFault(match=SESSION, pass_down=K))
    session, ledger = await submit_n(make_client(policy, request=0.5), names, "s5")
    if policy is ALL:
        await session.close()
        landed = check(ledger, await read_stream(direct, *names), policy)
        assert [landed.of(i) for i in range(N)] == [1] * K + [2] * (N - K)  # A5: duplicates
        return
    error, copies = await stopped(session, ledger, direct, names, policy)
    assert isinstance(error, RequestTimeout)
    assert copies == [1] * N


@pytest.mark.parametrize("policy", POLICIES)
async def test_s6_acks_withheld_nothing_applied(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.add(StreamFault(match=SESSION, pass_up=K))
    session, ledger = await submit_n(make_client(policy, request=0.5), names, "s6")
    if policy is ALL:
        await finish(session, ledger, direct, names, policy)
        return
    error, copies = await stopped(session, ledger, direct, names, policy)
    assert isinstance(error, RequestTimeout)
    assert copies == [1] * K + [0] * (N - K)


# --- S7, S8, S9: terminal frames mid-session ----------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("status", "code"), DEFINITE)
async def test_s7_definite_terminal_resends_the_unacked(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy, status: int, code: str,
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(match=SESSION, pass_up=K, when_up=N, when_down=K,
                    action=Terminal(status=status, code=code))
    )  # fmt: skip
    # server_draining does not spend the budget: it is retried even with a single attempt.
    attempts = 1 if code == "server_draining" else 3
    session, ledger = await submit_n(make_client(policy, max_attempts=attempts), names, "s7")
    await finish(session, ledger, direct, names, policy)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("status", "code"), INDEFINITE)
async def test_s8_indefinite_terminal_with_inputs_in_flight(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy, status: int, code: str,
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(match=SESSION, pass_up=K, when_up=N, when_down=K,
                    action=Terminal(status=status, code=code))
    )  # fmt: skip
    session, ledger = await submit_n(make_client(policy), names, "s8")
    if policy is ALL:
        await finish(session, ledger, direct, names, policy)
        return
    error, copies = await stopped(session, ledger, direct, names, policy)
    assert isinstance(error, ServerError)
    assert error.code == code
    assert copies == [1] * K + [0] * (N - K)


@pytest.mark.parametrize(("status", "code"), INDEFINITE[:2])
async def test_s8_indefinite_terminal_with_nothing_in_flight_is_retried_under_nse(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    status: int, code: str,
) -> None:  # fmt: skip
    proxy.add(StreamFault(match=SESSION, when_down=K, action=Terminal(status=status, code=code)))
    session, ledger = await submit_n(make_client(NSE), names, "s8i", n=K)
    await proxy.wait_for(lambda: proxy.stats.faults.total() == 1)
    for _ in range(K):
        await ledger.submit(session)
    await wait_done(ledger)
    await finish(session, ledger, direct, names, NSE)
    assert session.statistics().attempts == 2


@pytest.mark.parametrize("policy", POLICIES)
async def test_s9_terminal_412_stops(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    session = stream_of(make_client(policy), names).append_session()
    ledger = Ledger("s9")
    for i in range(N):
        # Input K expects the wrong seq_num; lite acks the K before it, then sends 412.
        await ledger.submit(session, match_seq_num=i if i != K else 99)
    await wait_done(ledger)
    error, copies = await stopped(session, ledger, direct, names, policy)
    assert isinstance(error, SeqNumMismatch)
    assert error.expected == K
    assert copies == [1] * K + [0] * (N - K)
    assert session.statistics().attempts == 1


# --- S10, S11: the server breaks the session protocol -------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_s10_clean_end_with_inputs_unacked_stops(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.add(StreamFault(match=SESSION, pass_up=K, when_up=N, when_down=K, action=EndStream()))
    session, ledger = await submit_n(make_client(policy), names, "s10")
    error, copies = await stopped(session, ledger, direct, names, policy)
    assert isinstance(error, RemoteProtocolError)
    assert copies == [1] * K + [0] * (N - K)
    assert session.statistics().attempts == 1


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    ("start", "end"),
    [(K, K + 3), (K - 1, K), (0, 0)],
    ids=["wrong-count", "end-not-increasing", "end-before-start"],
)
async def test_s11_invalid_ack_stops(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy, start: int, end: int,
) -> None:  # fmt: skip
    # The server's ack for input K is withheld; a forged one arrives in its place.
    proxy.add(
        StreamFault(
            match=SESSION, pass_down=K, when_down=K, action=Inject(data=ack_frame(start, end))
        )
    )
    session, ledger = await submit_n(make_client(policy), names, "s11")
    error, _ = await stopped(session, ledger, direct, names, policy)
    assert isinstance(error, RemoteProtocolError)
    assert "ack" in str(error)
    assert session.statistics().attempts == 1


async def test_s11_ack_with_nothing_in_flight_stops(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
) -> None:  # fmt: skip
    proxy.add(StreamFault(match=SESSION, when_down=K, action=Inject(data=ack_frame(K, K + 1))))
    session, ledger = await submit_n(make_client(ALL), names, "s11n", n=K)
    await proxy.wait_for(lambda: proxy.stats.faults.total() == 1)
    with pytest.raises(RemoteProtocolError, match="nothing in flight"):
        await session.close()
    assert [i.index for i in ledger.acked] == list(range(K))
