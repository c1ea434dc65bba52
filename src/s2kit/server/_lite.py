"""Running lite: the :class:`Lite` server object (in an event loop you own), and a thread-hosted
variant for synchronous code and test suites.

``Lite`` owns two tasks, the HTTP front's accept loop and the backend's jobs, and releases both
in :meth:`Lite.aclose`. Shutdown drains: no new inputs are admitted, every accepted input is
acked, then sessions end with ``server_draining`` (P5 in
docs/retry-safety.md#the-server-side).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from s2kit.server._app import App, is_loopback
from s2kit.server._backend import DELETE_ON_EMPTY_GRACE, Backend
from s2kit.server._front import HttpServer, Limits
from s2kit.server._memory import DEFAULT_APPEND_INFLIGHT, DEFAULT_BUDGET, MemoryBudget
from s2kit.server._prom import register as register_metrics
from s2kit.server._reads import ReadSettings
from s2kit.server._tokens import TokenStore, new_secret
from s2kit.server._tokens_gate import Gate

if TYPE_CHECKING:
    from s2kit.server._storage import Storage

log = logging.getLogger("s2kit.server")


@dataclass(frozen=True, slots=True, kw_only=True)
class LiteConfig:
    """Settings of a lite server."""

    host: str = "127.0.0.1"
    """Address to bind."""
    port: int = 0
    """Port to bind; 0 picks a free one."""
    flush_interval: float = 0.005
    """Group-commit interval in seconds."""
    ssl_context: ssl.SSLContext | None = None
    """TLS for https (plaintext h1/h2c stay available on the same port)."""
    tls_only: bool = False
    """With ``ssl_context``: refuse plaintext connections on the port."""
    cors: bool = True
    """Answer CORS requests from allowed origins (loopback ones, and ``cors_origins``)."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed cross-origin access besides loopback ones (``http://localhost:*``...);
    ``"*"`` allows any. Browsers can then drive lite from pages of those origins."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names accepted in ``Host``/``:authority`` besides local ones, when lite listens on
    a loopback address (a DNS-rebinding page otherwise reaches it under its own name)."""
    limits: Limits = field(default_factory=Limits)
    """Deadlines and the connection cap of the HTTP front."""
    memory_budget: int = DEFAULT_BUDGET
    """Bytes lite may buffer for clients in all: batches on their way out, bodies coming in."""
    append_inflight_bytes: int = DEFAULT_APPEND_INFLIGHT
    """Metered bytes of appends sequenced and not yet durable, in all; more wait (s2-lite's
    ``--append-inflight-bytes``)."""
    background_interval: float = 1.0
    """Seconds between background job passes."""
    deletion_grace: float = 1.0
    """Seconds a deleted basin or stream stays visible before it is removed."""
    delete_on_empty_grace: float = DELETE_ON_EMPTY_GRACE
    """Seconds added to every delete-on-empty deadline, and the least time between two
    deadlines armed by writes: 600 as in s2-lite (docs/protocol.md#background-jobs). Tests
    shorten it."""
    heartbeat_min: float = 5.0
    """Shortest gap between read-session heartbeats."""
    heartbeat_max: float = 15.0
    """Longest gap between read-session heartbeats."""
    shutdown_grace: float = 10.0
    """Seconds sessions get to drain on shutdown."""
    data_dir: str | None = None
    """Keep everything durably in this directory (lmdb); None = in memory."""
    check_pages: bool = True
    """With ``data_dir``: verify every lmdb page at start-up (about 2.7 s per GB), so a damaged
    file is refused instead of crashing lite later (``_lmdb_txn.refuse_damaged_pages``)."""
    auth: bool = False
    """Require an access token on every request but ``/health`` and serve the access-token
    API (docs/auth.md); without it lite ignores ``Authorization``, as s2-lite does."""
    root_token: str | None = field(default=None, repr=False)
    """With ``auth``: the root token (at least 16 printable ASCII characters); None
    generates one (:attr:`Lite.root_token`)."""


class Lite:
    """An S2-compatible server. Use as ``async with Lite() as lite: ... lite.url``."""

    def __init__(self, config: LiteConfig | None = None, *, storage: Storage | None = None):
        self.config = cfg = config or LiteConfig()
        if storage is None and cfg.data_dir is not None:
            from s2kit.server._lmdb import LmdbStorage

            storage = LmdbStorage(cfg.data_dir, check_pages=cfg.check_pages)
        try:
            self.backend = Backend(
                storage,
                flush_interval=cfg.flush_interval,
                background_interval=cfg.background_interval,
                deletion_grace=cfg.deletion_grace,
                delete_on_empty_grace=cfg.delete_on_empty_grace,
                read_settings=ReadSettings(cfg.heartbeat_min, cfg.heartbeat_max),
                append_inflight_bytes=cfg.append_inflight_bytes,
            )
        except BaseException:
            if storage is not None:
                storage.close()
            raise
        self.root_token: str | None = None
        """With ``auth``: the root token, for the operator to hand out (never logged)."""
        gate = None
        if cfg.auth:
            self.root_token = cfg.root_token or new_secret()
            try:
                gate = Gate(TokenStore(self.backend.meta), self.root_token)
            except BaseException:
                self.backend.storage.close()
                raise
        self.app = App(
            self.backend,
            gate=gate,
            cors=cfg.cors,
            cors_origins=cfg.cors_origins,
            allowed_hosts=cfg.allowed_hosts if is_loopback(cfg.host) else None,
            memory=MemoryBudget(cfg.memory_budget),
        )
        self.http = HttpServer(
            self.app,
            host=cfg.host,
            port=cfg.port,
            ssl_context=cfg.ssl_context,
            tls_only=cfg.tls_only,
            limits=cfg.limits,
        )
        register_metrics(self)  # into this lite's own registry (``/metrics``, ``_prom.py``)
        self._jobs: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def port(self) -> int:
        """The bound port."""
        return self.http.port

    @property
    def url(self) -> str:
        """``http://host:port`` (or https with TLS)."""
        scheme = "https" if self.config.ssl_context is not None else "http"
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

    @property
    def plain_url(self) -> str:
        """The cleartext (h2c / HTTP/1.1) URL, also served when TLS is on."""
        return self.url.replace("https://", "http://", 1)

    async def start(self) -> str:
        """Bind and serve; returns :attr:`url`."""
        self._jobs = asyncio.create_task(self.backend.run(), name="s2kit-lite-backend")
        try:
            await self.http.start()
        except BaseException:
            self._closed = True
            self._jobs.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._jobs
            self.backend.storage.close()
            raise
        log.info("s2kit lite listening on %s", self.url)
        return self.url

    async def aclose(self) -> None:
        """Drain and stop. Idempotent; always releases the tasks."""
        if self._closed:
            return
        self._closed = True
        grace = self.config.shutdown_grace
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            await self.app.drain(grace)
            await self.http.shutdown(max(0.0, grace - (loop.time() - started)))
        finally:
            try:
                # The minute in progress goes to storage before the committer stops
                # (cancelling a commit in progress would lose its rows).
                with contextlib.suppress(Exception):
                    self.backend.usage.close()
                    async with asyncio.timeout(grace):
                        await self.backend.meta_durable()
            finally:
                if self._jobs is not None:
                    self._jobs.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._jobs
                self.backend.storage.close()

    async def __aenter__(self) -> Lite:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class LiteThread:
    """Lite in a background thread with its own event loop, for synchronous callers and tests.

    ``with LiteThread() as lite: lite.url`` — the server stops (draining) on exit.
    """

    def __init__(self, config: LiteConfig | None = None) -> None:
        self.config = config or LiteConfig()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.url = ""
        self.port = 0
        self.root_token: str | None = None
        """With ``auth``: the root token (:attr:`Lite.root_token`)."""

    def start(self) -> str:
        """Start the thread and wait until lite listens; returns its URL."""
        self._thread = threading.Thread(target=self._run, name="s2kit-lite", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self.url

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with Lite(self.config) as lite:
                self.url, self.port = lite.url, lite.port
                self.root_token = lite.root_token
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise

    def stop(self) -> None:
        """Stop lite and join the thread."""
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> LiteThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
