"""Lite's route table: every (method, path shape) lite serves, the S2 operation it performs and
the resources it names.

One table serves three readers: the app dispatches on it (``_app.py``), access control checks
a token against it (``_auth.py``: the operation, the basin, the stream, the token id), and
request metrics label with it.

How to use it::

    found = classify(request.method, request.path)
    if isinstance(found, Miss):            # 404 (no such path) or 405 (path, not method)
        ...
    found.route.name                       # "append": the OpenAPI operation id, for labels
    found.route.op                         # Operation.APPEND: the S2 operation (None outside
                                           # the API: /health, /metrics)
    found.params["stream"]                 # the raw path segment (still percent-encoded)

The app records the match of the request being served on ``reply.route`` (``_http.Reply``),
so anything holding the ``Reply`` (handlers, timing hooks) can read it once routing is done;
it stays None for requests that matched nothing (404/405), CORS preflights and requests
refused before routing (Host check, draining).

Routing looks at the raw path, split on ``/`` before percent-decoding, so a stream name
holding ``/`` (sent as ``%2F``) stays one segment (docs/auth.md, "Routes").

Trim and fence are no routes of their own: they are command records inside an append
(``POST /v1/streams/{stream}/records``). The append route therefore admits a token holding
any of ``append``, ``trim`` or ``fence`` (:attr:`Route.needs`); which of them a batch really
needs is known only once it is decoded, and ``_auth.Guard.check_batch`` decides that per
batch. Metrics count such requests under ``append``.

Adding a route is one :class:`Route` line in :data:`ROUTES`; the app dispatches by
:attr:`Route.name`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from s2kit.types import Operation as Op

__all__ = ["ROUTES", "STUB_PREFIXES", "Match", "Miss", "Route", "classify"]


class Where(enum.Enum):
    """Where a request names a resource."""

    PATH = "path"
    """A path parameter (``{basin}``, ``{stream}``, ``{id}``)."""
    HEADER = "header"
    """The basin of basin-scoped routes: ``s2-basin`` or a ``{basin}.`` Host."""
    BODY = "body"
    """The JSON body (creates and token issue): checked by the handler once parsed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One line of the route table."""

    method: str
    """HTTP method (GET routes of the API do not answer HEAD, as in s2-lite)."""
    path: str
    """Path shape; ``{name}`` segments are parameters."""
    name: str
    """The OpenAPI operation id (``list_basins``, ``ensure_stream``, ``health``)."""
    op: Op | None
    """The S2 operation; None for paths outside the API (no token scope applies)."""
    basin: Where | None = None
    """Where the basin is named, if the operation acts on one."""
    stream: Where | None = None
    """Where the stream is named, if the operation acts on one."""
    token: Where | None = None
    """Where the access token id is named, if the operation acts on one."""
    needs: tuple[frozenset[Op], ...] = ()
    """What a token must hold: one operation of every set. Defaults to ``{op}``."""
    segments: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.path.split("/")[1:]))
        if not self.needs and self.op is not None:
            object.__setattr__(self, "needs", (frozenset({self.op}),))


_P, _H, _B = Where.PATH, Where.HEADER, Where.BODY

ROUTES: tuple[Route, ...] = (
    Route(method="GET", path="/health", name="health", op=None),
    Route(method="HEAD", path="/health", name="health", op=None),
    Route(method="GET", path="/ping", name="health", op=None),
    Route(method="HEAD", path="/ping", name="health", op=None),
    # Prometheus scrapes (``_prom.py``), as s2-lite serves them.
    # With --auth, scraping needs a token allowed `account-metrics` (docs/auth.md).
    Route(
        method="GET",
        path="/metrics",
        name="prometheus",
        op=None,
        needs=(frozenset({Op.ACCOUNT_METRICS}),),
    ),
    # --- account ---
    Route(method="GET", path="/v1/basins", name="list_basins", op=Op.LIST_BASINS),
    Route(method="POST", path="/v1/basins", name="create_basin", op=Op.CREATE_BASIN, basin=_B),
    Route(
        method="GET",
        path="/v1/basins/{basin}",
        name="get_basin_config",
        op=Op.GET_BASIN_CONFIG,
        basin=_P,
    ),
    # Ensure may create or replace: it needs both rights (least privilege, docs/auth.md).
    Route(
        method="PUT",
        path="/v1/basins/{basin}",
        name="ensure_basin",
        op=Op.CREATE_BASIN,
        basin=_P,
        needs=(frozenset({Op.CREATE_BASIN}), frozenset({Op.RECONFIGURE_BASIN})),
    ),
    Route(
        method="PATCH",
        path="/v1/basins/{basin}",
        name="reconfigure_basin",
        op=Op.RECONFIGURE_BASIN,
        basin=_P,
    ),
    Route(
        method="DELETE",
        path="/v1/basins/{basin}",
        name="delete_basin",
        op=Op.DELETE_BASIN,
        basin=_P,
    ),
    Route(
        method="GET",
        path="/v1/access-tokens",
        name="list_access_tokens",
        op=Op.LIST_ACCESS_TOKENS,
    ),
    Route(
        method="POST",
        path="/v1/access-tokens",
        name="issue_access_token",
        op=Op.ISSUE_ACCESS_TOKEN,
        token=_B,
    ),
    Route(
        method="DELETE",
        path="/v1/access-tokens/{id}",
        name="revoke_access_token",
        op=Op.REVOKE_ACCESS_TOKEN,
        token=_P,
    ),
    Route(method="GET", path="/v1/metrics", name="account_metrics", op=Op.ACCOUNT_METRICS),
    Route(
        method="GET",
        path="/v1/metrics/{basin}",
        name="basin_metrics",
        op=Op.BASIN_METRICS,
        basin=_P,
    ),
    Route(
        method="GET",
        path="/v1/metrics/{basin}/{stream}",
        name="stream_metrics",
        op=Op.STREAM_METRICS,
        basin=_P,
        stream=_P,
    ),
    Route(method="GET", path="/v1/locations", name="list_locations", op=Op.LIST_LOCATIONS),
    Route(
        method="GET",
        path="/v1/locations/default",
        name="get_default_location",
        op=Op.GET_DEFAULT_LOCATION,
    ),
    Route(
        method="PUT",
        path="/v1/locations/default",
        name="set_default_location",
        op=Op.SET_DEFAULT_LOCATION,
    ),
    # --- basin ---
    Route(method="GET", path="/v1/streams", name="list_streams", op=Op.LIST_STREAMS, basin=_H),
    Route(
        method="POST",
        path="/v1/streams",
        name="create_stream",
        op=Op.CREATE_STREAM,
        basin=_H,
        stream=_B,
    ),
    Route(
        method="GET",
        path="/v1/streams/{stream}",
        name="get_stream_config",
        op=Op.GET_STREAM_CONFIG,
        basin=_H,
        stream=_P,
    ),
    Route(
        method="PUT",
        path="/v1/streams/{stream}",
        name="ensure_stream",
        op=Op.CREATE_STREAM,
        basin=_H,
        stream=_P,
        needs=(frozenset({Op.CREATE_STREAM}), frozenset({Op.RECONFIGURE_STREAM})),
    ),
    Route(
        method="PATCH",
        path="/v1/streams/{stream}",
        name="reconfigure_stream",
        op=Op.RECONFIGURE_STREAM,
        basin=_H,
        stream=_P,
    ),
    Route(
        method="DELETE",
        path="/v1/streams/{stream}",
        name="delete_stream",
        op=Op.DELETE_STREAM,
        basin=_H,
        stream=_P,
    ),
    # --- stream ---
    Route(
        method="GET",
        path="/v1/streams/{stream}/records",
        name="read",
        op=Op.READ,
        basin=_H,
        stream=_P,
    ),
    Route(
        method="POST",
        path="/v1/streams/{stream}/records",
        name="append",
        op=Op.APPEND,
        basin=_H,
        stream=_P,
        needs=(frozenset({Op.APPEND, Op.TRIM, Op.FENCE}),),
    ),
    Route(
        method="GET",
        path="/v1/streams/{stream}/records/tail",
        name="check_tail",
        op=Op.CHECK_TAIL,
        basin=_H,
        stream=_P,
    ),
)
"""Every route lite serves."""

STUB_PREFIXES = ("/v1/access-tokens", "/v1/metrics", "/v1/locations")
"""Path prefixes lite answers ``not_implemented`` for when nothing else serves them (as
s2-lite does, after validating the request)."""

STUB = Route(method="*", path="/v1/*", name="not_implemented", op=None)
"""What a request under :data:`STUB_PREFIXES` matching no route of :data:`ROUTES` is."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """A request's route and its path parameters."""

    route: Route
    """The matched route."""
    params: Mapping[str, str] = field(default_factory=dict)
    """Path parameters by name, raw (still percent-encoded)."""


class Miss(enum.IntEnum):
    """Why nothing matched, as the HTTP status lite answers with (an empty body)."""

    NOT_FOUND = 404
    METHOD_NOT_ALLOWED = 405


def _index(routes: tuple[Route, ...]) -> dict[int, list[Route]]:
    by_length: dict[int, list[Route]] = {}
    for route in routes:
        by_length.setdefault(len(route.segments), []).append(route)
    return by_length


_BY_LENGTH = _index(ROUTES)


def _params(route: Route, parts: list[str]) -> dict[str, str] | None:
    """The parameters if ``parts`` fits the route's shape, else None."""
    params: dict[str, str] = {}
    for shape, part in zip(route.segments, parts, strict=True):
        if shape.startswith("{"):
            if not part:
                return None
            params[shape[1:-1]] = part
        elif shape != part:
            return None
    return params


def classify(method: str, path: str) -> Match | Miss:
    """The route of a request (by its raw path), or why there is none.

    A path under :data:`STUB_PREFIXES` that fits no route still matches :data:`STUB`, with
    any method, so lite keeps answering those with ``not_implemented``.
    """
    parts = path.split("/")[1:]
    shaped = False
    for route in _BY_LENGTH.get(len(parts), ()):
        params = _params(route, parts)
        if params is None:
            continue
        if route.method == method:
            return Match(route=route, params=params)
        shaped = True
    if shaped:
        return Miss.METHOD_NOT_ALLOWED
    if path.startswith(STUB_PREFIXES):
        return Match(route=STUB)
    return Miss.NOT_FOUND
