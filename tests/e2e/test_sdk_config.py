"""Client configuration against lite: validation, ``S2.from_env``, TLS trust, connect
failures, and that closing a client releases every task even with sessions still open."""

from __future__ import annotations

import socket
import ssl

import pytest

import s2kit
from conftest import TOKEN, Endpoint, assert_no_tasks_left, unique
from s2kit import (
    AppendInput,
    AppendRetryPolicy,
    Batching,
    Endpoints,
    Record,
    Retry,
    SeqNum,
    Timeout,
)
from s2kit.errors import ConnectError, S2Error, UsageError

# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "basin"),
    [
        ("ftp://example.com", "ftp://example.com"),
        ("http://example.com/v1", "http://example.com"),
        ("http://example.com", "http://example.com?x=1"),
        ("http://example.com", "https://example.com"),
        ("http://", "http://"),
    ],
)
def test_bad_endpoints_are_usage_errors(account: str, basin: str) -> None:
    with pytest.raises(UsageError):
        Endpoints(account=account, basin=basin)


def test_local_endpoints_without_a_scheme_are_refused_with_both_spellings() -> None:
    # Lite serves plain HTTP unless told otherwise, so the official "https if omitted" rule
    # would make 127.0.0.1:8080 fail later as an opaque TLS error.
    for hostport in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "10.1.2.3"):
        with pytest.raises(UsageError) as exc:
            Endpoints.for_url(hostport)
        assert str(exc.value) == (
            f"account endpoint {hostport!r} has no scheme: write http://{hostport} (lite "
            f"without TLS) or https://{hostport}"
        )
    # Names keep the official rule: no scheme means https.
    assert Endpoints.for_url("s2.example.com:8443").account == "https://s2.example.com:8443"


def test_one_endpoint_derives_the_other() -> None:
    lite = "http://127.0.0.1:8080"
    assert Endpoints.derive(lite) == Endpoints.for_url(lite)
    assert Endpoints.derive(basin=lite) == Endpoints.for_url(lite)
    assert Endpoints.derive() == Endpoints() == Endpoints.default()
    # The cloud's own endpoints keep the cloud's other one.
    assert Endpoints.derive("https://aws.s2.dev").basin == "https://{basin}.b.s2.dev"
    assert Endpoints.derive(basin="{basin}.zone.example").account == "https://a.s2.dev"
    with pytest.raises(UsageError) as exc:
        Endpoints.derive(basin="http://{basin}.localhost:8080")
    assert str(exc.value) == (
        "the basin endpoint is set but the account endpoint is not, and the S2 cloud default "
        "for it, https://a.s2.dev, uses another scheme: set the account endpoint too (for "
        "lite: the same URL)"
    )
    with pytest.raises(UsageError) as exc:
        Endpoints(account=lite, basin="https://{basin}.b.s2.dev")
    assert str(exc.value) == (
        "account endpoint http://127.0.0.1:8080 and basin endpoint https://{basin}.b.s2.dev "
        "must use the same scheme"
    )


async def test_a_url_string_is_accepted_as_endpoints(endpoint: Endpoint) -> None:
    async with s2kit.S2(TOKEN, endpoints=endpoint.url, ssl_context=endpoint.ssl_context()) as s2:
        assert s2.endpoints == Endpoints.for_url(endpoint.url)
        name = unique("url-str")
        await s2.create_basin(name)
        assert [b.name async for b in s2.iter_basins(prefix=name)] == [name]
    with pytest.raises(TypeError, match="endpoints must be an Endpoints or a URL string"):
        s2kit.S2(TOKEN, endpoints=("http://127.0.0.1:8080",))  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        s2kit.S2(TOKEN, endpoints="127.0.0.1:8080")


def test_endpoints_normalise_and_route() -> None:
    direct = Endpoints.for_url("http://127.0.0.1:8080/")
    assert (direct.account, direct.basin) == ("http://127.0.0.1:8080", "http://127.0.0.1:8080")
    assert direct.is_direct
    assert direct.basin_url("any-basin") == "http://127.0.0.1:8080"

    zoned = Endpoints()
    assert (zoned.account, zoned.basin) == ("https://a.s2.dev", "https://{basin}.b.s2.dev")
    assert not zoned.is_direct
    assert zoned.basin_url("my-basin") == "https://my-basin.b.s2.dev"
    assert Endpoints(account="a.example", basin="b.example").account == "https://a.example"


@pytest.mark.parametrize(
    "make",
    [
        lambda: Retry(max_attempts=0),
        lambda: Retry(min_base_delay=2.0, max_base_delay=1.0),
        lambda: Retry(min_base_delay=-0.1),
        lambda: Timeout(connect=0),
        lambda: Timeout(request=-1.0),
        lambda: Batching(max_records=0),
        lambda: Batching(max_records=1001),
        lambda: Batching(max_bytes=7),
        lambda: Batching(max_bytes=1024 * 1024 + 1),
        lambda: Batching(linger=-0.001),
    ],
)
def test_bad_settings_are_usage_errors(make: object) -> None:
    with pytest.raises(UsageError) as exc:
        make()  # type: ignore[operator]
    assert isinstance(exc.value, ValueError)  # usable where a ValueError is expected
    assert isinstance(exc.value, S2Error)


def test_retry_backoff_stays_within_its_bounds() -> None:
    retry = Retry(min_base_delay=0.1, max_base_delay=0.4)
    for index, base in enumerate([0.1, 0.2, 0.4, 0.4]):
        for _ in range(20):
            assert base <= retry.backoff(index) <= 2 * base


# --- from_env ---------------------------------------------------------------------------------


async def test_from_env_reads_token_and_endpoints(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S2_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("S2_ACCOUNT_ENDPOINT", endpoint.url)
    monkeypatch.setenv("S2_BASIN_ENDPOINT", endpoint.url)
    monkeypatch.delenv("S2_SSL_NO_VERIFY", raising=False)
    async with s2kit.S2.from_env(ssl_context=endpoint.ssl_context()) as s2:
        assert s2.endpoints == Endpoints.for_url(endpoint.url)
        name = unique("env")
        await s2.create_basin(name)
        assert [b.name async for b in s2.iter_basins(prefix=name)] == [name]
    assert_no_tasks_left()


async def test_from_env_without_verification_trusts_a_self_signed_lite(
    tls_endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = tls_endpoint
    monkeypatch.setenv("S2_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("S2_ACCOUNT_ENDPOINT", endpoint.url)
    monkeypatch.setenv("S2_BASIN_ENDPOINT", endpoint.url)
    monkeypatch.delenv("S2_SSL_NO_VERIFY", raising=False)
    # Verified against the system store, the test CA is unknown: a connect error.
    async with s2kit.S2.from_env(retry=Retry(max_attempts=1)) as s2:
        with pytest.raises(ConnectError):
            await s2.list_basins()
    monkeypatch.setenv("S2_SSL_NO_VERIFY", "1")
    async with s2kit.S2.from_env() as s2:
        assert (await s2.list_basins()).items == ()
    assert_no_tasks_left()


def test_from_env_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S2_ACCESS_TOKEN", raising=False)
    with pytest.raises(UsageError):
        s2kit.S2.from_env()


def test_endpoints_from_env_fall_back_to_the_cloud(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S2_ACCOUNT_ENDPOINT", raising=False)
    monkeypatch.setenv("S2_BASIN_ENDPOINT", "{basin}.zone.example")
    endpoints = Endpoints.from_env()
    assert endpoints.account == Endpoints().account
    assert endpoints.basin_url("b-123456") == "https://b-123456.zone.example"


async def test_from_env_with_only_the_account_endpoint_reaches_lite(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S2_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("S2_ACCOUNT_ENDPOINT", endpoint.url)
    monkeypatch.delenv("S2_BASIN_ENDPOINT", raising=False)
    async with s2kit.S2.from_env(ssl_context=endpoint.ssl_context()) as s2:
        assert s2.endpoints == Endpoints.for_url(endpoint.url)
        name = unique("one-env")
        await s2.create_basin(name)
        await s2.basin(name).create_stream("s")  # a basin request: the derived endpoint


# --- connecting -------------------------------------------------------------------------------


async def test_nothing_listening_is_a_side_effect_free_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        client = s2kit.S2(
            TOKEN,
            endpoints=Endpoints.for_url(f"http://127.0.0.1:{port}"),
            retry=Retry(max_attempts=2, min_base_delay=0.01, max_base_delay=0.01),
        )
        async with client as s2:
            with pytest.raises(ConnectError) as exc:
                await s2.list_basins()
            assert exc.value.has_no_side_effects
            assert exc.value.is_retryable
    assert_no_tasks_left()


async def test_tls_with_an_untrusted_certificate_fails_to_connect(tls_endpoint: Endpoint) -> None:
    endpoint = tls_endpoint
    untrusting = ssl.create_default_context()  # does not know the test CA
    async with endpoint.client(ssl_context=untrusting, retry=Retry(max_attempts=1)) as s2:
        with pytest.raises(ConnectError):
            await s2.list_basins()


async def test_closing_the_client_releases_every_task(endpoint: Endpoint) -> None:
    assert_no_tasks_left()
    s2 = endpoint.client(retry=Retry(max_attempts=1))
    name = unique("leaks")
    await s2.create_basin(name)
    await s2.basin(name).create_stream("s")
    stream = s2.basin(name).stream("s")

    # A finished append session and producer, and a read session left following the tail.
    async with stream.append_session() as session:
        await session.submit(AppendInput(records=(Record(body=b"a"),)))
    async with stream.producer(retry_policy=AppendRetryPolicy.NO_SIDE_EFFECTS) as producer:
        await producer.submit(Record(body=b"b"))
    following = stream.read_session(SeqNum(0))
    assert len((await anext(following)).records) == 2
    # An append session with acks still owed when the client goes away.
    pending = stream.append_session()
    ticket = await pending.submit(AppendInput(records=(Record(body=b"c"),)))

    await s2.aclose()
    await s2.aclose()  # idempotent
    assert_no_tasks_left()
    assert ticket.done()  # acked, or failed because the connections went away
    await following.aclose()
    await pending.abort()
    assert_no_tasks_left()
