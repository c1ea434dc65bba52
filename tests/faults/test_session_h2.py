"""Append sessions under HTTP/2-level faults and budget rules.

Scenarios S12–S19 of docs/retry-safety.md#append-sessions.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING

import pytest

from faults._harness import (
    Ledger,
    check,
    check_a4,
    client_connections,
    pool_stats,
    read_stream,
    stream_of,
    until,
    wait_done,
)
from faults.conftest import ALL, NSE, POLICIES, ClientFactory
from faults.test_session_faults import SESSION, K, N, finish, stopped, submit_n
from s2kit.errors import RequestTimeout, ServerError, StreamReset
from s2kit.testing.faults import (
    Cut,
    FaultProxy,
    GoAway,
    H2ErrorCode,
    ResetStream,
    Respond,
    Stall,
    StreamFault,
    Terminal,
)

if TYPE_CHECKING:
    from s2kit import S2
    from s2kit.client import AppendRetryPolicy

HOT = "hot_server"


def session_requests(proxy: FaultProxy) -> list[float]:
    """Arrival times of the append-session requests."""
    return [r.time for r in proxy.requests if r.s2s and r.method == "POST"]


# --- S12: GOAWAY ------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_s12a_goaway_covering_the_session_lets_it_finish(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    client = make_client(policy)
    session, ledger = await submit_n(client, names, "s12a", n=K)
    proxy.goaway_all(H2ErrorCode.NO_ERROR)  # last stream id: the session's
    await until(lambda: pool_stats(client).draining == 1)
    for _ in range(N - K):  # the session goes on over the draining connection...
        await ledger.submit(session)
    await wait_done(ledger)
    # ... while new requests go to a new connection.
    await stream_of(client, names).check_tail()
    assert [r.conn for r in proxy.requests] == [1, 2]
    await finish(session, ledger, direct, names, policy)
    assert session.statistics().attempts == 1
    await until(lambda: client_connections(client) == 1)  # the drained one closed


@pytest.mark.parametrize("policy", POLICIES)
async def test_s12b_goaway_below_the_session_is_retried(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    # The server never saw the session (hidden), and says so: RFC 9113 §6.8.
    proxy.add(StreamFault(match=SESSION, hide=True, when_up=N, action=GoAway(below=True)))
    session, ledger = await submit_n(make_client(policy), names, "s12b")
    await finish(session, ledger, direct, names, policy)
    assert session.statistics().attempts == 2
    assert [r.conn for r in proxy.requests] == [1, 2]  # the retry went to a new connection


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("code", [H2ErrorCode.INTERNAL_ERROR, H2ErrorCode.ENHANCE_YOUR_CALM])
async def test_s12c_goaway_with_error_then_close(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy, code: H2ErrorCode,
) -> None:  # fmt: skip
    # Every input applied, acks after the K-th withheld, GOAWAY covering the stream, close.
    proxy.add(
        StreamFault(match=SESSION, pass_down=K, when_up=N, when_down=N,
                    action=GoAway(code=code, then_cut=True))
    )  # fmt: skip
    session, ledger = await submit_n(make_client(policy), names, "s12c")
    if policy is ALL:
        await session.close()
        landed = check(ledger, await read_stream(direct, *names), policy)
        assert [landed.of(i) for i in range(N)] == [1] * K + [2] * (N - K)
        return
    _, copies = await stopped(session, ledger, direct, names, policy)
    assert copies == [1] * N


# --- S13, S14: RST_STREAM ---------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_s13_refused_stream_is_retried(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(match=SESSION, hide=True, when_up=N,
                    action=ResetStream(code=H2ErrorCode.REFUSED_STREAM))
    )  # fmt: skip
    session, ledger = await submit_n(make_client(policy), names, "s13")
    await finish(session, ledger, direct, names, policy)
    assert session.statistics().attempts == 2


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "code",
    [
        H2ErrorCode.CANCEL,
        H2ErrorCode.INTERNAL_ERROR,
        H2ErrorCode.PROTOCOL_ERROR,
        H2ErrorCode.FLOW_CONTROL_ERROR,
        H2ErrorCode.ENHANCE_YOUR_CALM,
    ],
)
async def test_s14_other_resets_after_hand_off(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy, code: H2ErrorCode,
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(
            match=SESSION, pass_down=K, when_up=N, when_down=N, action=ResetStream(code=code)
        )
    )
    session, ledger = await submit_n(make_client(policy), names, "s14")
    if policy is ALL:
        await session.close()
        landed = check(ledger, await read_stream(direct, *names), policy)
        assert [landed.of(i) for i in range(N)] == [1] * K + [2] * (N - K)
        return
    error, copies = await stopped(session, ledger, direct, names, policy)
    assert isinstance(error, StreamReset)
    assert error.error_code == code
    assert copies == [1] * N


# --- S15, S16: the hand-off signal ------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_s15_flow_control_stall_then_window_released_on_the_old_stream(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    # The first session stream gets no send window: nothing can leave, the ack deadline
    # passes with F clear, so even NO_SIDE_EFFECTS retries, on a new stream.
    proxy.add(StreamFault(match=SESSION, stall=True))
    session, ledger = await submit_n(make_client(policy, request=0.5), names, "s15")
    assert session.statistics().attempts == 2
    assert proxy.stats.messages_up == N
    # Now the old stream gets its window: it was reset, nothing buffered for it may go out.
    proxy.release_windows()
    await ledger.submit(session)  # one more round trip over the same connection
    await wait_done(ledger)
    await finish(session, ledger, direct, names, policy)
    assert proxy.stats.messages_up == N + 1


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("stall", [False, True], ids=["plain", "writer-blocked"])
async def test_s16_first_frame_applied_then_reset(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy, stall: bool,
) -> None:  # fmt: skip
    # The first input reaches the server and is applied; the connection is reset before its
    # ack. With ``stall`` the proxy stops reading from the client after that input, so the
    # client's writer is blocked with later inputs buffered when the reset comes.
    size = 200_000
    if stall:
        # Enough for the whole DATA frames carrying the first input (writes coalesce).
        proxy.next_connections(Stall(nbytes=3 * size, seconds=30))
    proxy.add(StreamFault(match=SESSION, pass_up=1, pass_down=0, when_down=1, action=Cut()))
    session = stream_of(make_client(policy), names).append_session()
    ledger = Ledger("s16")
    for _ in range(8):
        await ledger.submit(session, pad=size)
    await wait_done(ledger)
    if policy is ALL:
        await session.close()
        landed = check(ledger, await read_stream(direct, *names), policy)
        assert landed.of(0) == 2
        return
    _, copies = await stopped(session, ledger, direct, names, policy)
    assert copies[0] == 1
    assert sum(copies) == 1


# --- S17, S18: the retry budget ---------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_s17_three_failures_in_a_row_stop_with_backoff(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(match=SESSION, times=3, hide=True, when_up=N,
                    action=Respond(status=502, code=HOT))
    )  # fmt: skip
    client = make_client(policy, min_delay=0.05, max_delay=0.2)
    session, ledger = await submit_n(client, names, "s17")
    error, copies = await stopped(session, ledger, direct, names, policy)
    assert isinstance(error, ServerError)
    assert error.code == "hot_server"
    assert copies == [0] * N
    assert session.statistics().attempts == 3  # A3: max_attempts, no more
    times = session_requests(proxy)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 2
    # A3: delay n in [base, 2 base] with base = 0.05 * 2**n (slack for a loaded machine).
    for n, gap in enumerate(gaps):
        base = 0.05 * 2**n
        assert base <= gap <= 2 * base + 0.5, gaps


@pytest.mark.parametrize("policy", POLICIES)
async def test_s18_an_ack_restores_the_budget(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    # max_attempts=2: one retry per window without progress.
    proxy.add(
        StreamFault(match=SESSION, hide=True, when_up=1, action=Respond(status=502, code=HOT)),
        StreamFault(match=SESSION, pass_up=1, when_up=2, when_down=1,
                    action=Terminal(status=502, code=HOT)),
    )  # fmt: skip
    session, ledger = await submit_n(make_client(policy, max_attempts=2), names, "s18", n=3)
    await finish(session, ledger, direct, names, policy)
    assert session.statistics().attempts == 3


@pytest.mark.parametrize("policy", POLICIES)
async def test_s18_without_an_ack_the_budget_is_spent(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(match=SESSION, times=2, hide=True, when_up=1,
                    action=Respond(status=502, code=HOT))
    )  # fmt: skip
    session, ledger = await submit_n(make_client(policy, max_attempts=2), names, "s18n", n=3)
    error, copies = await stopped(session, ledger, direct, names, policy)
    assert isinstance(error, ServerError)
    assert copies == [0, 0, 0]
    assert session.statistics().attempts == 2


# --- S19: the reconnect-advice flag -----------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_s19_reconnect_flag_loses_nothing(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.add(StreamFault(match=SESSION, reconnect_flag=True))
    session, ledger = await submit_n(make_client(policy), names, "s19")
    await finish(session, ledger, direct, names, policy)
    assert proxy.stats.faults["reconnect-flag"] == 1


@pytest.mark.parametrize("policy", POLICIES)
async def test_s19_reconnect_flag_moves_an_idle_session_to_a_new_exchange(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    # The first exchange carries the flag; once everything is acked the session ends it
    # cleanly, and the next submit opens a second exchange, without a failure or a retry.
    proxy.add(StreamFault(match=SESSION, reconnect_flag=True, times=1))
    session, ledger = await submit_n(make_client(policy), names, "s19-move")
    assert session.statistics().attempts == 1
    for _ in range(3):
        await ledger.submit(session)
    await wait_done(ledger)
    assert session.statistics().attempts == 2
    await finish(session, ledger, direct, names, policy)
    assert sum(1 for r in proxy.requests if SESSION.matches(r)) == 2


async def test_s5_ack_timeout_is_measured_from_hand_off_of_the_oldest_input(
    proxy: FaultProxy, make_client: ClientFactory, names: tuple[str, str],
) -> None:  # fmt: skip
    # Withhold every ack: the session stops about one ack timeout after the first input was
    # handed off, not after the last.
    proxy.add(StreamFault(match=SESSION, pass_down=0))
    client = make_client(NSE, request=0.6)
    session = stream_of(client, names).append_session()
    ledger = Ledger("deadline")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await ledger.submit(session)
    for _ in range(3):
        await asyncio.sleep(0.1)  # later hand-offs must not push the deadline back
        await ledger.submit(session)
    await wait_done(ledger)
    elapsed = loop.time() - started
    assert 0.6 <= elapsed < 0.6 + 0.25 + 0.5
    error = await check_a4(session, ledger)
    assert isinstance(error, RequestTimeout)
