"""Lite's application: routes each request to its handler and turns errors into S2 responses.

Routing works on the raw (still percent-encoded) path so that stream names containing ``/``
stay one segment; the basin comes from ``s2-basin`` or a ``{basin}.`` Host subdomain
(docs/protocol.md#endpoints-and-basin-routing).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from s2kit.errors import ErrorCode, ServerError
from s2kit.server import _h_metrics as metrics
from s2kit.server import _h_records as records
from s2kit.server import _h_resources as resources
from s2kit.server import _h_tokens as tokens
from s2kit.server._auth import OPEN, Guard
from s2kit.server._catalog import basin_name_problem
from s2kit.server._http import (
    Query,
    Reply,
    err,
    json_body,
    path_segment,
    read_body,
    require_json_content_type,
)
from s2kit.server._memory import MemoryBudget
from s2kit.server._observe import RequestObserver
from s2kit.server._routes import Match, Miss, Where, classify
from s2kit.server._tokens import token_id_problem

if TYPE_CHECKING:
    from s2kit.server._backend import Backend
    from s2kit.server._front import Request, Responder
    from s2kit.server._tokens_gate import Gate

log = logging.getLogger("s2kit.server")

_ACCOUNT: dict[str, Callable[[Backend, Reply], Awaitable[None]]] = {
    "list_basins": resources.list_basins,
    "create_basin": resources.create_basin,
    "account_metrics": metrics.account_metrics,
    "prometheus": metrics.prometheus,
}
_BASIN: dict[str, Callable[[Backend, Reply, str], Awaitable[None]]] = {
    "get_basin_config": resources.get_basin_config,
    "ensure_basin": resources.ensure_basin,
    "reconfigure_basin": resources.reconfigure_basin,
    "delete_basin": resources.delete_basin,
    "list_streams": resources.list_streams,
    "create_stream": resources.create_stream,
    "basin_metrics": metrics.basin_metrics,
}
_STREAM: dict[str, Callable[[Backend, Reply, str, str], Awaitable[None]]] = {
    "get_stream_config": resources.get_stream_config,
    "ensure_stream": resources.ensure_stream,
    "reconfigure_stream": resources.reconfigure_stream,
    "delete_stream": resources.delete_stream,
    "read": records.read,
    "append": records.append,
    "check_tail": records.check_tail,
    "stream_metrics": metrics.stream_metrics,
}
"""Handlers by route name (``_routes.ROUTES``), by the resources they take."""
_TOKENS: dict[str, Callable[[Gate, Reply, str | None], Awaitable[None]]] = {
    "list_access_tokens": tokens.list_access_tokens,
    "issue_access_token": tokens.issue_access_token,
    "revoke_access_token": tokens.revoke_access_token,
}
"""The access-token API, served with ``--auth`` (a stub without, as in s2-lite)."""
_STUBS = frozenset(
    {
        "not_implemented",
        "list_locations",
        "get_default_location",
        "set_default_location",
    }
)
"""Routes lite answers ``not_implemented``, after validating the request.

As s2-lite does (docs/protocol.md#account).
"""


class App:
    """The request handler plugged into the HTTP front."""

    def __init__(
        self,
        backend: Backend,
        *,
        cors: bool = True,
        cors_origins: tuple[str, ...] = (),
        allowed_hosts: tuple[str, ...] | None = None,
        memory: MemoryBudget | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.backend = backend
        self.gate = gate
        """With ``--auth``: every request but /health needs a token (``_tokens_gate.py``)."""
        self.cors = cors
        self.cors_origins = frozenset(o.rstrip("/").lower() for o in cors_origins)
        self.allowed_hosts = (
            None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
        )
        """Host names accepted besides local ones; None: any (lite is not on loopback)."""
        self.memory = memory or MemoryBudget()
        """What requests may buffer for their clients, in all (``_memory.py``)."""
        self.active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.observer = RequestObserver(backend)
        """Metrics and the log line of each request (``_observe.py``)."""

    async def drain(self, grace: float) -> None:
        """Refuse new requests and wait (at most ``grace`` seconds) for those in progress.

        Sessions see ``backend.draining`` and end themselves with ``server_draining`` once
        every accepted input is acked. This runs before the HTTP front sends GOAWAY, because
        h2-based clients fail their open streams as soon as a GOAWAY arrives.
        """
        self.backend.draining.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._idle.wait()

    def _cors_headers(self, request: Request) -> list[tuple[str, str]]:
        # Browser safety: a page of any other origin gets no CORS headers, so its script
        # cannot read lite's answers (nor, for anything but simple requests, send them).
        origin = request.header("origin")
        if not self.cors or origin is None or not self._origin_allowed(origin):
            return []
        return [
            ("access-control-allow-origin", origin),
            ("access-control-expose-headers", "*"),
            ("vary", "origin"),
        ]

    def _origin_allowed(self, origin: str) -> bool:
        normal = origin.rstrip("/").lower()
        if "*" in self.cors_origins or normal in self.cors_origins:
            return True
        scheme, _, rest = normal.partition("://")
        return scheme in ("http", "https") and _local_name(_host_of(rest))

    def _host_problem(self, request: Request) -> str | None:
        """Why the request's Host is refused (DNS rebinding), or None."""
        if self.allowed_hosts is None or request.authority is None:
            return None
        host = _host_of(request.authority.lower())
        if _local_name(host) or host in self.allowed_hosts:
            return None
        return (
            f"Invalid header `host`: {host!r} is not a local name; lite on a loopback address "
            "answers only those (add names with --allow-host)"
        )

    async def __call__(self, request: Request, responder: Responder) -> None:
        reply = Reply(request, responder, self._cors_headers(request), self.memory.share())
        self.active += 1
        self._idle.clear()
        started = self.observer.begin(reply)
        error: ServerError | None = None
        try:
            if problem := self._host_problem(request):
                raise err(ErrorCode.BAD_HEADER, problem)
            if self.backend.draining.is_set() and request.path.startswith("/v1/"):
                raise err(ErrorCode.SERVER_DRAINING, "server is shutting down")
            await self._route(reply)
        except ServerError as exc:
            error = exc
            if responder.started:
                log.debug("error after response started: %s", exc)
                return
            await reply.error(exc)
        finally:
            assert reply.share is not None
            reply.share.close()
            self.observer.end(reply, started, error)
            self.active -= 1
            if not self.active:
                self._idle.set()

    async def _route(self, reply: Reply) -> None:
        request = reply.request
        if request.method == "OPTIONS" and self.cors:
            await self._preflight(reply)
            return
        found = classify(request.method, request.path)
        if isinstance(found, Miss):  # framework-style empty 404/405
            await reply.empty(found.value)
            return
        reply.route = found
        name = found.route.name
        if name == "health":
            await reply.send(200, b"OK", [("content-type", "text/plain")])
            return
        if self.gate is None:
            await self._dispatch(reply, found, OPEN)
            return
        grant = self.gate.authenticate(reply.request)
        async with self.gate.hold(grant, reply.responder):
            await self._dispatch(reply, found, Guard(grant))

    async def _dispatch(self, reply: Reply, found: Match, guard: Guard) -> None:
        """Check the token against the route (403s) as the resources it names resolve (400s),
        then run its handler."""
        route, backend, name = found.route, self.backend, found.route.name
        guard.require(route.needs)
        basin = stream = token_id = None
        if route.basin is Where.PATH:
            basin = resources.checked_basin(path_segment(found.params["basin"]))
        elif route.basin is Where.HEADER:
            basin = self._basin(reply.request)
        if route.stream is Where.PATH:
            stream = resources.checked_stream(path_segment(found.params["stream"]))
        if route.token is Where.PATH:
            token_id = _checked_token_id(path_segment(found.params["id"]))
        if basin is not None:
            guard.basin(basin)
        if stream is not None and guard.grant is not None:
            stream = resources.checked_stream(guard.stream(stream))
        if token_id is not None:
            guard.token(token_id)
        reply.guard = guard
        if name in _TOKENS and self.gate is not None:
            await _TOKENS[name](self.gate, reply, token_id)
            return
        if name in _STUBS or name in _TOKENS:
            await _check_stub_request(reply.request)
            raise err(ErrorCode.NOT_IMPLEMENTED, "Not implemented")
        if basin is None:
            await _ACCOUNT[name](backend, reply)
        elif route.stream is not Where.PATH:
            await _BASIN[name](backend, reply, basin)
        else:
            assert stream is not None
            await _STREAM[name](backend, reply, basin, stream)

    def _basin(self, request: Request) -> str:
        basin = request.header("s2-basin")
        if basin is None:
            basin = _basin_from_host(request.authority)
            if basin is None:
                raise err(ErrorCode.BAD_HEADER, "Missing header `s2-basin`")
        basin = basin.strip()
        problem = basin_name_problem(basin)
        if problem:
            raise err(ErrorCode.BAD_HEADER, f"Invalid header `s2-basin`: {problem}")
        return basin

    async def _preflight(self, reply: Reply) -> None:
        request = reply.request
        headers = [
            ("access-control-allow-methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS"),
            (
                "access-control-allow-headers",
                request.header("access-control-request-headers") or "*",
            ),
            ("access-control-max-age", "86400"),
        ]
        await reply.responder.respond(200, headers + reply.extra, b"")


async def _check_stub_request(request: Request) -> None:
    """Lite parses a stubbed request before its 501: malformed ones still get 400s."""
    parts = request.path.split("/")[2:]
    query = Query(request.query)
    if parts[0] == "metrics":
        if not query.has("set"):
            raise err(ErrorCode.BAD_QUERY, "missing query parameter `set`")
        query.u64("start", bits=32)
        query.u64("end", bits=32)
    elif parts[0] == "access-tokens":
        query.u64("limit")
    if request.method in ("POST", "PUT"):
        require_json_content_type(request)
        json_body(await read_body(request))


def _checked_token_id(token_id: str) -> str:
    """An access token id from a path, or ``bad_path``."""
    if problem := token_id_problem(token_id):
        raise err(ErrorCode.BAD_PATH, problem)
    return token_id


def is_loopback(host: str) -> bool:
    """Whether a bind address (or host name) is a loopback one."""
    return _local_name(host.strip("[]").lower())


def _host_of(authority: str) -> str:
    """The host of ``host[:port]`` (IPv6 literals without their brackets)."""
    if authority.startswith("["):
        return authority[1:].partition("]")[0]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


@functools.lru_cache(maxsize=256)  # asked on every request with the same few Host values
def _local_name(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _basin_from_host(authority: str | None) -> str | None:
    """``{basin}.zone`` Host routing: the first label of a non-IP, multi-label host."""
    if not authority:
        return None
    host = authority.rsplit(":", 1)[0] if not authority.startswith("[") else authority
    try:
        ipaddress.ip_address(host.strip("[]"))
        return None
    except ValueError:
        pass
    label, dot, _ = host.partition(".")
    if not dot or basin_name_problem(label):
        return None
    return label
