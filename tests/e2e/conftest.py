"""Fixtures for driving s2kit's own SDK (async and blocking) against lite, over h2c and TLS.

Every test that uses ``endpoint`` (or a fixture built on it) runs twice: over cleartext HTTP/2
with prior knowledge (``http://``) and over TLS with ALPN ``h2`` (``https://``), the server
certificate coming from a throwaway trustme CA that the client's ``ssl.SSLContext`` trusts.

Lite runs in a background thread (:class:`~s2kit.server.LiteThread`), not in the test's event
loop, so that after a client's ``aclose()`` the test loop must hold no task but the running
one: the ``s2`` fixture asserts exactly that, which catches any task the SDK leaks. The
blocking API (``s2kit.sync``) needs the thread anyway: it is called from plain test functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import pathlib
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import trustme

import s2kit
import s2kit.sync
from s2kit.server import LiteConfig, LiteThread


def _root_conftest() -> Any:
    # pytest imports every conftest.py outside a package under the module name "conftest", so
    # this file replaces tests/conftest.py in sys.modules; modules collected later that do
    # ``from conftest import quick_config`` then land here. Load the root file by path and
    # re-export its helper, so there stays one definition of the quick settings.
    path = pathlib.Path(__file__).resolve().parent.parent / "conftest.py"
    spec = importlib.util.spec_from_file_location("_s2kit_tests_root_conftest", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


quick_config: Callable[..., LiteConfig] = _root_conftest().quick_config

TRANSPORTS = ["h2c", "tls"]
TOKEN = "e2e-token-ignored-by-lite"

_names = itertools.count()


def unique(prefix: str = "e2e") -> str:
    """A basin name (8–48 chars of [a-z0-9-]) not used before in this process."""
    return f"{prefix}-{next(_names):06d}"


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    """Server TLS for localhost and 127.0.0.1, offering ALPN h2 and http/1.1."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.set_alpn_protocols(["h2", "http/1.1"])
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """Client TLS that trusts only ``ca``."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A running lite and how to reach it."""

    transport: str
    """``h2c`` or ``tls``."""
    url: str
    """``http://127.0.0.1:PORT`` or ``https://...``."""
    port: int
    """The bound port (TLS and cleartext share it)."""
    ca: trustme.CA
    """The CA that signed the server certificate (TLS)."""

    @property
    def tls(self) -> bool:
        """Whether clients must speak TLS."""
        return self.transport == "tls"

    def ssl_context(self) -> ssl.SSLContext | None:
        """A fresh client context trusting the test CA (None for h2c)."""
        return client_context(self.ca) if self.tls else None

    def client(self, url: str | None = None, **options: Any) -> s2kit.S2:
        """An async client for this server (or for ``url``, a relay in front of it)."""
        options.setdefault("ssl_context", self.ssl_context())
        return s2kit.S2(TOKEN, endpoints=s2kit.Endpoints.for_url(url or self.url), **options)

    def sync_client(self, **options: Any) -> s2kit.sync.S2:
        """A blocking client for this server."""
        options.setdefault("ssl_context", self.ssl_context())
        return s2kit.sync.S2(TOKEN, endpoints=s2kit.Endpoints.for_url(self.url), **options)


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _start(
    stack: contextlib.ExitStack, transport: str, ca: trustme.CA, **overrides: object
) -> Endpoint:
    context = server_context(ca) if transport == "tls" else None
    lite = stack.enter_context(LiteThread(quick_config(ssl_context=context, **overrides)))
    assert lite.url.startswith("https://" if context else "http://")
    return Endpoint(transport=transport, url=lite.url, port=lite.port, ca=ca)


@pytest.fixture
def serve(transport: str, tls_ca: trustme.CA) -> Iterator[Callable[..., Endpoint]]:
    """Factory: start a lite (``LiteConfig`` overrides as keywords) for this test's transport."""
    with contextlib.ExitStack() as stack:
        yield lambda **overrides: _start(stack, transport, tls_ca, **overrides)


@pytest.fixture
def tls_endpoint(tls_ca: trustme.CA) -> Iterator[Endpoint]:
    """A lite serving TLS only, for tests about certificates."""
    with contextlib.ExitStack() as stack:
        yield _start(stack, "tls", tls_ca)


@pytest.fixture
def lite_overrides() -> dict[str, object]:
    """``LiteConfig`` fields for ``endpoint``; override in a module to tune the server."""
    return {}


@pytest.fixture
def endpoint(serve: Callable[..., Endpoint], lite_overrides: dict[str, object]) -> Endpoint:
    """A lite with the quick test settings (plus ``lite_overrides``)."""
    return serve(**lite_overrides)


def assert_no_tasks_left() -> None:
    """Nothing but the running task may remain in the loop (the SDK leaked nothing)."""
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current]
    assert not left, f"tasks left behind: {left}"


@pytest.fixture
async def s2(endpoint: Endpoint) -> AsyncIterator[s2kit.S2]:
    """An async client; closing it must leave no task behind."""
    assert_no_tasks_left()
    client = endpoint.client()
    yield client
    await client.aclose()
    assert_no_tasks_left()


@pytest.fixture
async def basin(s2: s2kit.S2) -> s2kit.Basin:
    """A fresh basin."""
    name = unique("basin")
    await s2.create_basin(name)
    return s2.basin(name)


@pytest.fixture
async def stream(basin: s2kit.Basin) -> s2kit.Stream:
    """A fresh, empty stream."""
    await basin.create_stream("events")
    return basin.stream("events")


class ByteTap:
    """A TCP relay in front of lite that counts the bytes each way (TLS records or h2 frames).

    It measures what the wire carries, so compressed bodies and frames shrink it.
    """

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.upstream = 0
        """Bytes from clients to lite."""
        self.downstream = 0
        """Bytes from lite to clients."""

    def url(self, scheme: str) -> str:
        assert self._server is not None
        return f"{scheme}://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> ByteTap:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()
        await asyncio.sleep(0)  # let the aborted transports release their sockets

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.create_task(self._relay(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
            self._writers.add(up_writer)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pump(reader, up_writer, upstream=True))
                tg.create_task(self._pump(up_reader, writer, upstream=False))
        except* (OSError, asyncio.IncompleteReadError):
            pass

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        while chunk := await reader.read(65536):
            if upstream:
                self.upstream += len(chunk)
            else:
                self.downstream += len(chunk)
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
