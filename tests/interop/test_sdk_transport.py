"""How the official Python SDK reaches lite: HTTP/2 over TLS (ALPN h2) with real certificate
verification, and HTTP/2 with prior knowledge (h2c) — including on the TLS port itself.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import s2_sdk
from s2_sdk import AppendInput, Record, Retry, S2ClientError, SeqNum

from .conftest import unique_basin

if TYPE_CHECKING:
    from s2kit.server import Lite


async def round_trip(client: s2_sdk.S2) -> list[bytes]:
    name = unique_basin("wire")
    await client.create_basin(name)
    basin = client.basin(name)
    await basin.create_stream("s")
    await basin.stream("s").append(AppendInput(records=[Record(body=b"over the wire")]))
    return [r.body for r in (await basin.stream("s").read(start=SeqNum(0))).records]


async def test_both_transports_round_trip(
    connect: Callable[..., s2_sdk.S2], server: Lite, transport: str
) -> None:
    assert server.url.startswith({"h2c": "http://", "tls": "https://"}[transport])
    async with connect() as client:
        assert await round_trip(client) == [b"over the wire"]


@pytest.mark.parametrize("transport", ["tls"])
async def test_tls_by_host_name(connect: Callable[..., s2_sdk.S2], server: Lite) -> None:
    # The certificate names both localhost and 127.0.0.1; verification checks the name used.
    async with connect(f"https://localhost:{server.port}") as client:
        assert await round_trip(client) == [b"over the wire"]


@pytest.mark.parametrize("transport", ["tls"])
async def test_tls_is_really_verified(
    connect: Callable[..., s2_sdk.S2], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the test CA in its trust store the SDK must refuse the server's certificate:
    # proof that the TLS runs of this suite use verified TLS, not a plaintext fallback.
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    async with connect(retry=Retry(max_attempts=1)) as client:
        with pytest.raises(S2ClientError) as caught:
            await client.list_basins()

    cause: BaseException | None = caught.value
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__
    assert isinstance(cause, ssl.SSLCertVerificationError)


@pytest.mark.parametrize("transport", ["tls"])
async def test_h2c_on_the_tls_port(connect: Callable[..., s2_sdk.S2], server: Lite) -> None:
    async with connect() as tls_client, connect(server.plain_url) as plain_client:
        name = unique_basin("shared")
        await tls_client.create_basin(name)
        plain_pages, tls_pages = await asyncio.gather(
            plain_client.list_basins(prefix=name), tls_client.list_basins(prefix=name)
        )

    assert server.plain_url.startswith("http://")
    assert [b.name for b in plain_pages.items] == [b.name for b in tls_pages.items] == [name]
