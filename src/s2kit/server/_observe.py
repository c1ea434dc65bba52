"""What lite records about each request it serves, once it ends: the Prometheus request
histogram (``_prom.py``), the operation in the usage accounting behind the S2 metrics API
(``_accounting.py``), and the request's log line.

Log lines (logger ``s2kit.server.requests``): every request gets exactly one. A request that
ended with an S2 error is logged at INFO with its code and message when it is a 4xx (the
client's mistake: no traceback), at WARNING with its code when it is a 5xx (the part that
failed logs the cause, once; the message goes in the ``error`` field); every other request
at DEBUG. Lines carry the method, the path (never the query, never a header: no secret is
ever logged), the status, the duration and the route name, also as fields for the JSON format
(``_logging.py``). A handler that fails unexpectedly is logged by the HTTP front with its
traceback; its line here stays at DEBUG.

The work per request is a few dict and list operations (no clock read beyond the two
``perf_counter`` calls, nothing per record): the hot paths are appends and reads at hundreds
of thousands of records a second, and a batch costs them about 1.5 µs more
(docs/observability.md, "What it costs").
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import TYPE_CHECKING

from s2kit.errors import ServerError
from s2kit.server._accounting import MINUTE
from s2kit.server._routes import Where
from s2kit.wire import _negotiate

if TYPE_CHECKING:
    from s2kit.server._backend import Backend
    from s2kit.server._http import Reply
    from s2kit.server._routes import Match

log = logging.getLogger("s2kit.server.requests")

SESSION_KINDS = ("append", "read_s2s", "read_sse")
_AUTH_CODES = frozenset({"authn", "permission_denied"})
"""Codes of requests access control refused (``_tokens_gate.py``, ``_auth.py``)."""
_OWN_SETS = frozenset({"append", "read"})
"""Routes counted by their own metric sets rather than in ``basin-ops``."""


def session_kind(reply: Reply) -> str | None:
    """The kind of streaming session a request is (an S2S append or read, an SSE read), or
    None for a unary request."""
    found = reply.route
    if found is None:
        return None
    name = found.route.name
    if name not in ("append", "read"):
        return None
    request = reply.request
    if _negotiate.is_s2s(request.header("content-type")):
        return "append" if name == "append" else "read_s2s"
    if name == "read" and _negotiate.is_sse(request.header("accept")):
        return "read_sse"
    return None


def _status(reply: Reply, error: ServerError | None) -> int:
    """The status the request was answered with (sessions: 200, whatever ended them)."""
    if reply.status:
        return reply.status
    if reply.responder.started:
        return 200
    if error is not None:
        return error.status
    from s2kit.server._front import ClientDisconnected

    # Called from a ``finally``: an exception on its way up ended the request.
    exc = sys.exc_info()[1]
    if isinstance(exc, asyncio.CancelledError | ClientDisconnected):
        return 499  # the client went away first
    return 500  # the front answers a handler that failed (or never answered) with a 500


class ReadTally:
    """Counts what one read hands its client, a batch at a time (``_reads.read_session``):
    records and bytes read for the operator, bytes and operations for the basin's metrics.

    Operations are counted as S2 defines them: a unary read is one; a streaming read (S2S or
    SSE) is one for each minute it is open, counted when it starts, when a batch goes out in a
    later minute, and at :meth:`close` for the minutes it sat idle.
    """

    __slots__ = ("_basin", "_minute", "_streaming", "_telemetry", "_usage")

    def __init__(self, backend: Backend, basin: str, *, streaming: bool) -> None:
        self._telemetry = backend.telemetry
        self._usage = backend.usage
        self._basin = basin
        self._streaming = streaming
        self._minute = self._usage.minute()
        self._usage.count(basin, "read-ops:streaming" if streaming else "read-ops:unary")

    def add(self, records: int, nbytes: int) -> None:
        """A batch of ``records`` records, ``nbytes`` metered bytes."""
        self._telemetry.read(records, nbytes)
        usage = self._usage
        usage.count(self._basin, "read-bytes", nbytes)
        if self._streaming and usage.minute() != self._minute:
            self.close()

    def close(self) -> None:
        """The read ended (or a batch went out): count the minutes opened since the last."""
        if not self._streaming:
            return
        now = self._usage.minute()
        if (more := (now - self._minute) // MINUTE) > 0:
            self._usage.count(self._basin, "read-ops:streaming", more)
            self._minute = now


class AppendTally:
    """Counts the appends of one request for the basin's metrics: bytes per batch, and
    operations as S2 defines them, one for each minute of appends to one stream over one
    connection (lite counts per request: a unary append is one, an append session one for
    each minute in which it appends)."""

    __slots__ = ("_basin", "_minute", "_op", "_usage")

    def __init__(self, backend: Backend, basin: str, storage_class: str) -> None:
        self._usage = backend.usage
        self._basin = basin
        self._op = "append-ops:" + storage_class
        self._minute = -1

    def add(self, nbytes: int) -> None:
        """An append batch of ``nbytes`` metered bytes was sequenced."""
        usage = self._usage
        if (now := usage.minute()) != self._minute:
            self._minute = now
            usage.count(self._basin, self._op)
        usage.count(self._basin, "append-bytes", nbytes)


class RequestObserver:
    """Records each request of an app (see the module)."""

    def __init__(self, backend: Backend) -> None:
        self._telemetry = backend.telemetry
        self._usage = backend.usage
        self._catalog = backend.catalog
        self._inflight: set[Reply] = set()

    def begin(self, reply: Reply) -> float:
        """A request starts; returns its start time for :meth:`end`."""
        self._inflight.add(reply)
        return time.perf_counter()

    def sessions(self) -> dict[str, int]:
        """Streaming sessions in progress by kind (for the scrape)."""
        counts = dict.fromkeys(SESSION_KINDS, 0)
        for reply in self._inflight:
            kind = session_kind(reply)
            if kind is not None:
                counts[kind] += 1
        return counts

    def end(self, reply: Reply, started: float, error: ServerError | None) -> None:
        """A request ended (``error``: the S2 error it was answered with, if any)."""
        self._inflight.discard(reply)
        seconds = time.perf_counter() - started
        status = _status(reply, error)
        found = reply.route
        name = found.route.name if found is not None else "unrouted"
        self._telemetry.request(name, status, seconds)
        if error is not None and error.code in _AUTH_CODES:
            # Refused by access control: not an operation of the account (nor of a basin).
            self._telemetry.auth_failed(error.code)
        elif found is not None and found.route.op is not None:
            self._count(reply, found)
        request = reply.request
        fields = {
            "method": request.method,
            "path": request.path,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "op": name,
        }
        if error is not None and not reply.responder.disconnected:
            if status < 500:
                if log.isEnabledFor(logging.INFO):
                    fields["code"] = error.code
                    log.info(
                        "%s %s -> %d %s: %s",
                        request.method,
                        request.path,
                        status,
                        error.code,
                        error.message,
                        extra=fields,
                    )
            elif log.isEnabledFor(logging.WARNING):
                # The failing part logged the cause once (storage: once per outage or damaged
                # stream); each request it fails gets its line, the message as a field only.
                fields["code"], fields["error"] = error.code, error.message
                log.warning(
                    "%s %s -> %d %s",
                    request.method,
                    request.path,
                    status,
                    error.code,
                    extra=fields,
                )
        elif log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s -> %d in %.1f ms (%s)",
                request.method,
                request.path,
                status,
                seconds * 1000,
                name,
                extra=fields,
            )

    def _count(self, reply: Reply, found: Match) -> None:
        """Count the request's operation in the usage accounting: every request of the
        account's routes in ``account-ops``; those of the basin's routes in its ``basin-ops``
        (when that basin exists), but appends and reads, which have sets of their own
        (:class:`AppendTally`, :class:`ReadTally`)."""
        route = found.route
        assert route.op is not None
        op = "op:" + route.op.value
        if not route.path.startswith("/v1/streams"):
            self._usage.count("", op)
        elif route.name not in _OWN_SETS and (basin := self._basin(reply, found)) is not None:
            self._usage.count(basin, op)

    def _basin(self, reply: Reply, found: Match) -> str | None:
        where = found.route.basin
        name: str | None = None
        if where is Where.PATH:
            from s2kit.server._http import path_segment

            try:
                name = path_segment(found.params["basin"])
            except ServerError:
                return None
        elif where is Where.HEADER:
            from s2kit.server._app import _basin_from_host as basin_from_host

            request = reply.request
            header = request.header("s2-basin")
            name = header.strip() if header is not None else basin_from_host(request.authority)
        # Only basins that exist are counted: the accounting never grows with names requests
        # make up.
        return name if name is not None and name in self._catalog.basins else None
