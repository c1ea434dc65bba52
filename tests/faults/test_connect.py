"""Connection establishment, C1–C5 of docs/retry-safety.md#connecting-no-request-byte-can-leave:
no request byte can have left, so every policy may retry (except a configuration error, which
stops at once)."""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

import pytest
import trustme

from conftest import quick_config
from faults._harness import Ledger, check, read_stream, stream_of, until, wait_done
from faults.conftest import POLICIES, TOKEN, ClientFactory
from s2kit import S2
from s2kit.client import Endpoints, Retry, Timeout
from s2kit.errors import ConnectError
from s2kit.server import Lite
from s2kit.testing.faults import Blackhole, FaultProxy, Reset
from s2kit.types import AppendInput, Record, SeqNum

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from s2kit.client import AppendRetryPolicy


def one(tag: str) -> AppendInput:
    return AppendInput(records=(Record(body=f"{tag}/0/0".encode()),))


# --- C1: refused --------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_c1_refused_everywhere_surfaces_connect_error_after_the_budget(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.stop_listening()
    stream = stream_of(make_client(policy, min_delay=0.05, max_delay=0.05), names)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectError) as unary:
        await stream.append(one("c1"))
    assert loop.time() - started >= 2 * 0.05  # two backoffs: it was retried
    assert isinstance(unary.value.__cause__, ConnectionRefusedError)
    assert unary.value.has_no_side_effects
    session = stream.append_session()
    ticket = await session.submit(one("c1s"))
    with pytest.raises(ConnectError):
        await ticket
    assert session.statistics().attempts == 3
    with pytest.raises(ConnectError):
        async for _ in stream.read_session(SeqNum(0)):
            pass
    assert await read_stream(direct, *names) == []


@pytest.mark.parametrize("policy", POLICIES)
async def test_c1_refused_then_accepted_session_retries_through(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.stop_listening()
    client = make_client(policy, max_attempts=6, min_delay=0.2, max_delay=0.2)
    session = stream_of(client, names).append_session()
    ledger = Ledger("c1")
    await ledger.submit(session)
    await until(lambda: session.statistics().attempts >= 2)  # refused at least twice
    await proxy.start_listening()
    await wait_done(ledger)
    await session.close()
    assert check(ledger, await read_stream(direct, *names), policy).of(0) == 1


# --- C2: DNS ------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_c2_dns_failure_is_retried_and_side_effect_free(
    make_client: ClientFactory, policy: AppendRetryPolicy
) -> None:
    client = make_client(policy, min_delay=0.05, max_delay=0.05, url="http://nxdomain.invalid:80")
    stream = client.basin("faults-dns").stream("s")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectError) as excinfo:
        await stream.append(one("c2"))
    assert loop.time() - started >= 2 * 0.05
    assert excinfo.value.is_retryable
    assert excinfo.value.has_no_side_effects


# --- C3: blackholed -----------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_c3_blackholed_connects_time_out_and_are_retried(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    proxy.next_connections(Blackhole(seconds=10), Blackhole(seconds=10))
    client = make_client(policy, connect=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    ledger = Ledger("c3")
    item = ledger.next_input()
    item.ack = await stream_of(client, names).append(item.input)
    assert loop.time() - started >= 2 * 0.3  # every attempt waited the connect timeout
    assert proxy.stats.connections == 3
    assert check(ledger, await read_stream(direct, *names), policy).of(0) == 1


# --- C4: TLS ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_lite(ca: trustme.CA) -> AsyncIterator[Lite]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.set_alpn_protocols(["h2", "http/1.1"])
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    async with Lite(quick_config(ssl_context=context)) as server:
        yield server


def tls_client(url: str, trust: trustme.CA | None, **retry: object) -> S2:
    context = ssl.create_default_context()
    if trust is not None:
        trust.configure_trust(context)
    return S2(
        TOKEN,
        endpoints=Endpoints.for_url(url),
        timeout=Timeout(connect=1.0, request=2.0),
        retry=Retry(min_base_delay=0.01, max_base_delay=0.05, **retry),  # type: ignore[arg-type]
        ssl_context=context,
    )


@pytest.mark.parametrize("policy", POLICIES)
async def test_c4a_untrusted_certificate_stops_at_once(
    tls_lite: Lite, policy: AppendRetryPolicy
) -> None:
    async with (
        FaultProxy(tls_lite.url) as proxy,
        tls_client(proxy.url, None, append_retry_policy=policy) as s2,
    ):
        with pytest.raises(ConnectError) as excinfo:
            await s2.basin("faults-tls").stream("s").append(one("c4a"))
        assert not excinfo.value.is_retryable
        assert isinstance(excinfo.value.__cause__, ssl.SSLCertVerificationError)
        assert proxy.stats.connections == 1  # no retry


@pytest.mark.parametrize("policy", POLICIES)
async def test_c4b_tls_handshake_reset_is_retried(
    tls_lite: Lite, ca: trustme.CA, policy: AppendRetryPolicy
) -> None:
    async with (
        FaultProxy(tls_lite.url) as proxy,
        tls_client(proxy.url, ca, append_retry_policy=policy) as s2,
    ):
        async with tls_client(tls_lite.url, ca) as setup:
            await setup.create_basin("faults-tls-c4b")
            await setup.basin("faults-tls-c4b").create_stream("s")
        proxy.next_connections(Reset())
        ack = await s2.basin("faults-tls-c4b").stream("s").append(one("c4b"))
        assert ack.end.seq_num == 1
        assert proxy.stats.connections == 2
        assert proxy.stats.faults["conn:reset"] == 1


async def test_c4c_server_without_h2_alpn_stops_at_once(ca: trustme.CA) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    context.set_alpn_protocols(["http/1.1"])
    accepted = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        async with tls_client(f"https://127.0.0.1:{port}", ca) as s2:
            with pytest.raises(ConnectError, match="HTTP/2") as excinfo:
                await s2.basin("faults-alpn").stream("s").check_tail()
            assert not excinfo.value.is_retryable
            assert accepted == 1
    finally:
        server.close()
        await server.wait_closed()


# --- C5: accepted, then reset before a byte ----------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_c5_reset_at_accept_is_retried_everywhere(
    proxy: FaultProxy, make_client: ClientFactory, direct: S2, names: tuple[str, str],
    policy: AppendRetryPolicy,
) -> None:  # fmt: skip
    client = make_client(policy)
    stream = stream_of(client, names)
    ledger = Ledger("c5")
    proxy.next_connections(Reset())
    item = ledger.next_input()
    item.ack = await stream.append(item.input)  # unary
    await until(lambda: proxy.open_connections == 1)
    proxy.cut_all(reset=True)
    await until(lambda: proxy.open_connections == 0)
    proxy.next_connections(Reset())
    session = stream.append_session()  # session
    await ledger.submit(session)
    await wait_done(ledger)
    await session.close()
    proxy.cut_all(reset=True)
    await until(lambda: proxy.open_connections == 0)
    proxy.next_connections(Reset())
    batches = [b async for b in stream.read_session(SeqNum(0), limit=None, wait=0)]  # read
    assert [r.body for b in batches for r in b.records] == [b"c5/0/0", b"c5/1/0"]
    landed = check(ledger, await read_stream(direct, *names), policy)
    assert (landed.of(0), landed.of(1)) == (1, 1)
    assert proxy.stats.faults["conn:reset"] == 3
