"""Unary appends under faults, U1–U15 of docs/retry-safety.md#unary-appends, under both policies."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from faults._harness import Ledger, check, read_stream, stream_of
from faults.conftest import ALL, NSE, POLICIES, ClientFactory
from s2kit.errors import (
    ConnectionLost,
    FencingTokenMismatch,
    RequestTimeout,
    S2Error,
    SeqNumMismatch,
    ServerError,
)
from s2kit.testing.faults import Cut, FaultProxy, Match, Respond, StreamFault
from s2kit.types import AppendInput, CommandRecord

if TYPE_CHECKING:
    from s2kit import S2
    from s2kit.client import AppendRetryPolicy

UNARY = Match(method="POST", s2s=False, path="/records")


async def append_one(
    client: S2, names: tuple[str, str], tag: str, **kwargs: object
) -> tuple[Ledger, S2Error | None]:
    ledger = Ledger(tag)
    item = ledger.next_input(**kwargs)  # type: ignore[arg-type]
    try:
        item.ack = await stream_of(client, names).append(item.input)
    except S2Error as exc:
        item.error = exc
    return ledger, item.error


def attempts(proxy: FaultProxy) -> int:
    return sum(1 for r in proxy.requests if UNARY.matches(r))


async def copies(
    direct: S2, names: tuple[str, str], ledger: Ledger, policy: AppendRetryPolicy, **kw: bool
) -> int:
    return check(ledger, await read_stream(direct, *names), policy, **kw).of(0)


# --- U1–U5: the connection fails around the request -------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "fault",
    [
        StreamFault(match=UNARY, hide=True, action=Cut()),  # U1: not even the headers
        StreamFault(match=UNARY, pass_up_bytes=10, when_up=1, action=Cut()),  # U2: part body
        StreamFault(match=UNARY, pass_up_bytes=1 << 20, when_up=1, action=Cut(reset=False)),  # U3
    ],
    ids=["u1-headers", "u2-mid-body", "u3-body-not-applied"],
)
async def test_u1_u3_closed_before_anything_was_applied(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy, fault: StreamFault,
) -> None:  # fmt: skip
    proxy.add(fault)
    ledger, error = await append_one(make_client(policy), names, "u1")
    if policy is ALL:
        assert error is None
        assert await copies(direct, names, ledger, policy) == 1
        assert attempts(proxy) == 2
    else:
        # The body was handed off before the failure: the client cannot know it did not land.
        assert isinstance(error, ConnectionLost)
        assert error.is_indefinite
        assert await copies(direct, names, ledger, policy) == 0
        assert attempts(proxy) == 1


@pytest.mark.parametrize("policy", [*POLICIES, pytest.param("match", id="all-match")])
async def test_u4_applied_then_closed_before_the_response(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy | str,
) -> None:  # fmt: skip
    proxy.add(StreamFault(match=UNARY, pass_down=0, when_down=1, action=Cut()))
    client = make_client(ALL if policy == "match" else policy)
    match = 0 if policy == "match" else None
    ledger, error = await append_one(client, names, "u4", match_seq_num=match)
    if policy is ALL:
        assert error is None
        assert await copies(direct, names, ledger, ALL) == 2  # A5: at least once
    elif policy == "match":
        # The retry meets its own copy: 412 instead of a duplicate.
        assert isinstance(error, SeqNumMismatch)
        assert error.expected == 1
        assert await copies(direct, names, ledger, ALL, match_seq_num=True) == 1
    else:
        assert isinstance(error, ConnectionLost)
        assert await copies(direct, names, ledger, NSE) == 1
    assert attempts(proxy) == (1 if policy is NSE else 2)


@pytest.mark.parametrize("policy", POLICIES)
async def test_u5_response_delayed_past_the_request_timeout(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.add(StreamFault(match=UNARY, delay_down=3.0))
    ledger, error = await append_one(make_client(policy, request=0.5), names, "u5")
    if policy is ALL:
        assert error is None
        assert await copies(direct, names, ledger, policy) == 2
    else:
        assert isinstance(error, RequestTimeout)
        assert await copies(direct, names, ledger, policy) == 1


# --- U6–U15: error responses ------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_u6_rate_limited_honours_retry_after(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(match=UNARY, hide=True, when_up=1,
                    action=Respond(status=429, code="rate_limited", retry_after_ms=300))
    )  # fmt: skip
    ledger, error = await append_one(make_client(policy), names, "u6")
    assert error is None
    assert await copies(direct, names, ledger, policy) == 1
    first, second = (r.time for r in proxy.requests if UNARY.matches(r))
    assert second - first >= 0.3


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    ("status", "code"),
    [(502, "hot_server"), (409, "transaction_conflict"), (503, "server_draining")],
    ids=["u7-hot-server", "u8-transaction-conflict", "u9-server-draining"],
)
async def test_u7_u9_definite_errors_are_retried(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy, status: int, code: str,
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(match=UNARY, hide=True, when_up=1, action=Respond(status=status, code=code))
    )
    ledger, error = await append_one(make_client(policy), names, "u7")
    assert error is None
    assert await copies(direct, names, ledger, policy) == 1
    assert attempts(proxy) == 2


@pytest.mark.parametrize("policy", POLICIES)
async def test_u10_unavailable_after_a_partial_body(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(match=UNARY, pass_up_bytes=10, when_up=1,
                    action=Respond(status=503, code="unavailable"))
    )  # fmt: skip
    ledger, error = await append_one(make_client(policy), names, "u10")
    if policy is ALL:
        assert error is None
        assert await copies(direct, names, ledger, policy) == 1
    else:
        assert isinstance(error, ServerError)
        assert (error.status, error.code, error.is_retryable) == (503, "unavailable", True)
        assert await copies(direct, names, ledger, policy) == 0


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    ("status", "code"), [(500, "storage"), (500, "other"), (504, "upstream_timeout"),
                         (408, "request_timeout")]
)  # fmt: skip
async def test_u11_indefinite_errors_after_the_append_was_applied(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy, status: int, code: str,
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(match=UNARY, pass_down=0, when_down=1, action=Respond(status=status, code=code))
    )
    ledger, error = await append_one(make_client(policy), names, "u11")
    if policy is ALL:
        assert error is None
        assert await copies(direct, names, ledger, policy) == 2
    else:
        assert isinstance(error, ServerError)
        assert error.code == code
        assert await copies(direct, names, ledger, policy) == 1


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "response",
    [
        Respond(status=503, body=b"<html>Service Unavailable</html>", content_type="text/html"),
        Respond(status=503, code="no_such_code"),
    ],
    ids=["not-json", "unknown-code"],
)
async def test_u12_503_without_a_known_code(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy, response: Respond,
) -> None:  # fmt: skip
    proxy.add(StreamFault(match=UNARY, hide=True, when_up=1, action=response))
    ledger, error = await append_one(make_client(policy), names, "u12")
    if policy is ALL:
        assert error is None  # retried (the status says it may be)
        assert await copies(direct, names, ledger, policy) == 1
    else:
        assert isinstance(error, ServerError)
        assert error.is_retryable
        assert not error.has_no_side_effects
        assert await copies(direct, names, ledger, policy) == 0


@pytest.mark.parametrize("policy", POLICIES)
async def test_u13_known_code_with_the_wrong_status_fails_closed(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(
            match=UNARY, hide=True, when_up=1, action=Respond(status=503, code="rate_limited")
        )
    )
    ledger, error = await append_one(make_client(policy), names, "u13")
    assert isinstance(error, ServerError)
    assert not error.is_retryable
    assert attempts(proxy) == 1
    assert await copies(direct, names, ledger, policy) == 0


@pytest.mark.parametrize("policy", POLICIES)
async def test_u14_condition_failures_stop(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    client = make_client(policy)
    ledger, error = await append_one(client, names, "u14", match_seq_num=5)
    assert isinstance(error, SeqNumMismatch)
    assert error.expected == 0
    await stream_of(direct, names).append(AppendInput(records=(CommandRecord.fence("fence-1"),)))
    fenced = AppendInput(records=ledger.items[0].input.records, fencing_token="wrong")
    with pytest.raises(FencingTokenMismatch) as excinfo:
        await stream_of(client, names).append(fenced)
    assert excinfo.value.expected == "fence-1"
    assert attempts(proxy) == 2  # one each, no retry
    assert await copies(direct, names, ledger, policy) == 0


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "bad_proto"), (404, "stream_not_found"), (403, "permission_denied"), (422, "invalid")],
)
async def test_u15_client_errors_stop(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy, status: int, code: str,
) -> None:  # fmt: skip
    proxy.add(
        StreamFault(match=UNARY, hide=True, when_up=1, action=Respond(status=status, code=code))
    )
    ledger, error = await append_one(make_client(policy), names, "u15")
    assert isinstance(error, ServerError)
    assert (error.status, error.code) == (status, code)
    assert not error.is_retryable
    assert error.has_no_side_effects
    assert attempts(proxy) == 1
    assert await copies(direct, names, ledger, policy) == 0
