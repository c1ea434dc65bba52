"""Fixtures for driving lite with the official Python SDK (``s2_sdk`` 0.13.0).

Every test that uses ``s2`` (or ``connect``) runs twice: once over cleartext HTTP/2 with prior
knowledge (``http://``, h2c) and once over HTTP/2 on TLS (``https://``, ALPN ``h2``). The TLS
server certificate comes from a throwaway trustme CA; the SDK builds its client context with
``ssl.create_default_context()``, which honours ``SSL_CERT_FILE`` when the connection pool is
created, so the CA is trusted by pointing that variable at its PEM before creating the client.

``TcpTap`` is a byte-counting relay for the tests that must see the wire itself (compression,
heartbeats on an idle session).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest
import s2_sdk
import trustme

from conftest import quick_config
from s2kit.server import Lite

if TYPE_CHECKING:
    import pathlib

TRANSPORTS = ["h2c", "tls"]

_names = itertools.count()


def unique_basin(prefix: str = "interop") -> str:
    """A basin name not used before in this process (names are 8–48 chars, [a-z0-9-])."""
    return f"{prefix}-{next(_names):06d}"


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server-side TLS context for 127.0.0.1 and localhost offering ALPN h2 and http/1.1."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.set_alpn_protocols(["h2", "http/1.1"])
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


class TcpTap:
    """A transparent TCP relay in front of a server that counts the bytes flowing each way.

    It sees TLS records or h2c frames, never decrypted data, so it measures what the wire
    carries: compressed bodies shrink it, heartbeats on an idle session grow ``downstream``.
    """

    def __init__(self, scheme: str, target_port: int) -> None:
        self._scheme = scheme
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()
        self.upstream = 0
        """Bytes relayed from clients to the server."""
        self.downstream = 0
        """Bytes relayed from the server to clients."""

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"{self._scheme}://127.0.0.1:{port}"

    async def __aenter__(self) -> TcpTap:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def wait_downstream(self, at_least: int) -> None:
        """Wait (up to a generous 20 s) until ``downstream`` reaches ``at_least`` bytes."""
        async with asyncio.timeout(20), self._changed:
            await self._changed.wait_for(lambda: self.downstream >= at_least)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._relay(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: writer.close())  # also when cancelled before starting

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers = [writer]
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
            writers.append(up_writer)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pump(reader, up_writer, upstream=True))
                tg.create_task(self._pump(up_reader, writer, upstream=False))
        except* (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in writers:
                w.close()
            for w in writers:
                with contextlib.suppress(OSError):
                    await w.wait_closed()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
            async with self._changed:
                if upstream:
                    self.upstream += len(chunk)
                else:
                    self.downstream += len(chunk)
                self._changed.notify_all()
        if writer.can_write_eof():
            writer.write_eof()


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_pem(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("interop-ca") / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def lite_overrides() -> dict[str, object]:
    """Extra ``LiteConfig`` fields; override in a module to tune the server."""
    # Deleted resources linger long enough for "deletion pending" assertions on a slow CI box.
    return {"deletion_grace": 30.0}


@pytest.fixture
async def server(
    transport: str, tls_ca: trustme.CA, lite_overrides: dict[str, object]
) -> AsyncIterator[Lite]:
    context = server_context(tls_ca) if transport == "tls" else None
    async with Lite(quick_config(ssl_context=context, **lite_overrides)) as lite:
        assert lite.url.startswith("https://" if context else "http://")
        yield lite


@pytest.fixture
def connect(
    server: Lite, transport: str, ca_pem: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., s2_sdk.S2]:
    """Factory of SDK clients pointed at ``server`` (close them, or use ``async with``)."""
    if transport == "tls":
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))

    def make(url: str | None = None, **options: Any) -> s2_sdk.S2:
        endpoint = url or server.url
        endpoints = s2_sdk.Endpoints(account=endpoint, basin=endpoint)
        return s2_sdk.S2("ignored-by-lite", endpoints=endpoints, **options)

    return make


@pytest.fixture
async def tap(server: Lite, transport: str) -> AsyncIterator[TcpTap]:
    """A byte-counting relay to ``server``; point a client at ``tap.url``."""
    async with TcpTap("https" if transport == "tls" else "http", server.port) as relay:
        yield relay


@pytest.fixture
async def s2(connect: Callable[..., s2_sdk.S2]) -> AsyncIterator[s2_sdk.S2]:
    async with connect() as client:
        yield client


@pytest.fixture
async def basin(s2: s2_sdk.S2) -> s2_sdk.S2Basin:
    """A fresh, empty basin."""
    name = unique_basin("basin")
    await s2.create_basin(name)
    return s2.basin(name)


async def drain(session: s2_sdk.ReadSession) -> list[s2_sdk.SequencedRecord]:
    """Every record a read session yields until it ends (and closes it)."""
    async with session:
        records = [record async for batch in session for record in batch.records]
    return records
