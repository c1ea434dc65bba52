"""``s2kit lite`` as a command: it serves what the other commands talk to, and reports bad
flags and busy ports on one line."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from s2kit import S2
from s2kit.errors import ConnectError
from s2kit.testing import LiteProcess

if TYPE_CHECKING:
    from .conftest import Cli


def test_lite_serves_the_cli(cli: Cli) -> None:
    proc = LiteProcess()
    endpoint = proc.start()
    try:
        assert cli.ok("create-basin", "served-by-lite", "--endpoint", endpoint.url).code == 0
        listed = cli.ok("--json", "list-basins", "--endpoint", endpoint.url).json
        assert [b["name"] for b in listed] == ["served-by-lite"]
    finally:
        assert proc.stop() == 0  # SIGTERM drains and exits cleanly


def test_lite_bad_flags(cli: Cli) -> None:
    r = cli("lite", "--tls-cert", "cert.pem")
    assert (r.code, r.err) == (2, "s2kit lite: --tls-cert and --tls-key go together\n")
    r = cli("lite", "--port", "http")
    assert r.code == 2
    assert "argument --port: invalid int value: 'http'" in r.err
    r = cli("lite", "--tls-self", "--tls-cert", "c.pem")
    assert r.code == 2
    assert "not allowed with argument" in r.err


def test_lite_port_in_use(cli: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = cli("lite", "--port", str(port))
    assert r.code == 1
    assert r.err.startswith(f"s2kit lite: cannot listen on 127.0.0.1:{port}: ")
    assert r.err.count("\n") == 1


def _exports(proc: LiteProcess) -> dict[str, str]:
    """The ``export NAME=VALUE`` lines lite printed after its URL."""
    assert proc.proc is not None
    assert proc.proc.stdout is not None
    exports = {}
    for line in proc.proc.stdout:
        if line.startswith("Data is kept"):
            return exports
        if line.startswith("  export "):
            name, _, value = line.split("#")[0].strip().removeprefix("export ").partition("=")
            exports[name] = value
    raise AssertionError("lite stopped printing before its data line")


async def _official_sdk_lists_basins(url: str) -> list[str]:
    import s2_sdk

    endpoints = s2_sdk.Endpoints(account=url, basin=url)
    async with s2_sdk.S2("ignored", endpoints=endpoints) as s2:
        return [b.name for b in (await s2.list_basins()).items]


async def _s2kit_sdk_lists_basins(url: str | None = None, *, http1: bool = False) -> list[str]:
    """With ``url``, a client for it; without, ``S2.from_env()``."""
    s2 = S2("ignored", endpoints=url, http1=http1) if url else S2.from_env()
    async with s2:
        return [b.name async for b in s2.list_all_basins()]


def test_tls_self_writes_its_certificate_for_other_clients(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    proc = LiteProcess("--tls-self")
    endpoint = proc.start()
    try:
        exports = _exports(proc)
        assert endpoint.url.startswith("https://127.0.0.1:")
        cert = Path(exports["SSL_CERT_FILE"])
        assert exports["NODE_EXTRA_CA_CERTS"] == str(cert)
        assert cert == tmp_path / "cache" / "s2kit" / f"lite-{endpoint.port}-cert.pem"
        assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        assert "PRIVATE KEY" not in cert.read_text()

        # Unverifiable without the file: the SDK (both transports) and the CLI say what to do
        # about it, at once (no retry fixes a certificate)...
        hint = (
            "(the server's certificate is not trusted: for `s2kit lite --tls-self`, export the "
            "SSL_CERT_FILE line lite printed; or skip verification: S2_SSL_NO_VERIFY=1 for "
            "S2.from_env() and the s2kit CLI, --insecure on the CLI)"
        )
        cli.ok("create-basin", "tls-self-basin", "--endpoint", endpoint.url, "--insecure")
        for http1 in (False, True):
            with pytest.raises(ConnectError) as failed:
                asyncio.run(_s2kit_sdk_lists_basins(endpoint.url, http1=http1))
            assert "CERTIFICATE_VERIFY_FAILED" in str(failed.value)
            assert str(failed.value).endswith(hint)
            assert not failed.value.is_retryable
        r = cli("ls", "--endpoint", endpoint.url)
        assert r.code == 1
        assert "CERTIFICATE_VERIFY_FAILED" in r.err
        assert r.err.endswith(f"{hint}\n")
        assert r.err.count("not trusted") == 1  # the SDK's hint, not a second one of the CLI's
        import s2_sdk

        with pytest.raises(s2_sdk.S2ClientError, match="CERTIFICATE_VERIFY_FAILED"):
            asyncio.run(_official_sdk_lists_basins(endpoint.url))

        # ...and each way out the hint names works: S2_SSL_NO_VERIFY=1 with S2.from_env()...
        monkeypatch.setenv("S2_ACCESS_TOKEN", "ignored")
        monkeypatch.setenv("S2_ACCOUNT_ENDPOINT", endpoint.url)
        monkeypatch.setenv("S2_BASIN_ENDPOINT", endpoint.url)
        monkeypatch.setenv("S2_SSL_NO_VERIFY", "1")
        assert asyncio.run(_s2kit_sdk_lists_basins()) == ["tls-self-basin"]
        monkeypatch.delenv("S2_SSL_NO_VERIFY")
        # ...and the certificate file, with which both SDKs verify lite's certificate.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        assert asyncio.run(_s2kit_sdk_lists_basins(endpoint.url)) == ["tls-self-basin"]
        assert asyncio.run(_official_sdk_lists_basins(endpoint.url)) == ["tls-self-basin"]
        assert "tls-self-basin" in cli.ok("ls", "--endpoint", endpoint.url).out
    finally:
        assert proc.stop() == 0
