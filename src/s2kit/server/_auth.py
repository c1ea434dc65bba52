"""Access control for lite (``--auth``): what an access token may do, asked per request.

Theory of operation
-------------------
A token's scope names three resource sets (basins, streams, access token ids), each exact or
a prefix, and the operations it permits: the union of the explicit ``ops`` and the operations
of its ``op_groups`` (:data:`GROUPS`; docs/auth.md explains the grouping). Lite holds a token
as a :class:`Grant`: the scope with its permitted operations worked out once, and the SHA-256
digest of its secret, never the secret.

``_app.py`` authenticates each request (``_tokens_gate.Gate``), then wraps the
request's grant in a :class:`Guard` on ``reply.guard``. The app asks the guard about what the
route names in its path or headers (``_routes.Route``: the operation, the basin, the stream,
the token id); handlers ask it about what only the body names (a created basin or stream, an
issued token id, the command records of an append batch) and filter listings through it.
Without ``--auth`` every guard is :data:`OPEN`, which allows everything and rewrites nothing,
so the handlers read the same either way.

``auto_prefix_streams`` tokens see streams relative to their scope's stream prefix: the guard
adds the prefix to every stream name coming in (path, body, list ``prefix``/``start_after``)
and strips it from names going out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from s2kit.errors import ErrorCode, ServerError
from s2kit.server._catalog import err
from s2kit.types import (
    AccessTokenScope,
    AppendInput,
    ExactMatch,
    PermittedOperationGroups,
    PrefixMatch,
    ReadWritePermissions,
    ResourceSet,
)
from s2kit.types import Operation as Op
from s2kit.wire._pbdec import PlainInput
from s2kit.wire._validate import command_of

__all__ = [
    "GROUPS",
    "OPEN",
    "ROOT_SCOPE",
    "Grant",
    "Guard",
    "Listing",
    "covers",
    "digest",
    "matches",
    "permitted_ops",
]

GROUPS: dict[tuple[str, str], frozenset[Op]] = {
    ("account", "read"): frozenset(
        {Op.LIST_BASINS, Op.GET_BASIN_CONFIG, Op.LIST_ACCESS_TOKENS, Op.ACCOUNT_METRICS}
    ),
    ("account", "write"): frozenset(
        {
            Op.CREATE_BASIN,
            Op.DELETE_BASIN,
            Op.RECONFIGURE_BASIN,
            Op.ISSUE_ACCESS_TOKEN,
            Op.REVOKE_ACCESS_TOKEN,
        }
    ),
    ("basin", "read"): frozenset({Op.LIST_STREAMS, Op.GET_STREAM_CONFIG, Op.BASIN_METRICS}),
    ("basin", "write"): frozenset({Op.CREATE_STREAM, Op.DELETE_STREAM, Op.RECONFIGURE_STREAM}),
    ("stream", "read"): frozenset({Op.CHECK_TAIL, Op.READ, Op.STREAM_METRICS}),
    ("stream", "write"): frozenset({Op.APPEND, Op.TRIM, Op.FENCE}),
}
"""The operations each (group, permission) grants. The location operations are in no group:
nothing documents one for them, so they are granted only by name (least privilege)."""

_ALL_RW = ReadWritePermissions(read=True, write=True)
ROOT_SCOPE = AccessTokenScope(
    basins=PrefixMatch(""),
    streams=PrefixMatch(""),
    access_tokens=PrefixMatch(""),
    op_groups=PermittedOperationGroups(account=_ALL_RW, basin=_ALL_RW, stream=_ALL_RW),
    ops=tuple(Op),
)
"""The root token's scope: every resource, every operation."""


def digest(secret: str) -> bytes:
    """What lite keeps of a secret: its SHA-256 (secrets are 256-bit random, docs/auth.md)."""
    return hashlib.sha256(secret.encode("latin-1")).digest()


def permitted_ops(scope: AccessTokenScope) -> frozenset[Op]:
    """The operations a scope permits: its ``ops`` and those of its ``op_groups``."""
    ops = set(scope.ops or ())
    groups = scope.op_groups
    if groups is not None:
        for name, rw in (("account", groups.account), ("basin", groups.basin)):
            ops |= _granted(name, rw)
        ops |= _granted("stream", groups.stream)
    return frozenset(ops)


def _granted(group: str, rw: ReadWritePermissions | None) -> frozenset[Op]:
    if rw is None:
        return frozenset()
    read = GROUPS[(group, "read")] if rw.read else frozenset()
    write = GROUPS[(group, "write")] if rw.write else frozenset()
    return read | write


def matches(rs: ResourceSet | None, name: str) -> bool:
    """Whether ``name`` is in the resource set (absent and ``{"exact": ""}`` hold nothing)."""
    if rs is None:
        return False
    if isinstance(rs, ExactMatch):
        return bool(rs.name) and name == rs.name
    return name.startswith(rs.prefix)


def covers(outer: ResourceSet | None, inner: ResourceSet | None) -> bool:
    """Whether every name in ``inner`` is in ``outer`` (for issuing without escalation)."""
    if inner is None or (isinstance(inner, ExactMatch) and not inner.name):
        return True
    if isinstance(inner, ExactMatch):
        return matches(outer, inner.name)
    # A prefix set is unbounded: only a prefix set around it holds all of it.
    return isinstance(outer, PrefixMatch) and inner.prefix.startswith(outer.prefix)


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """An access token as lite holds it: its scope and the digest of its secret."""

    id: str
    """The token id (the root token's is ``""``, which no issued token can have)."""
    scope: AccessTokenScope
    """The scope as issued, groups and ops materialized (``_tokens.normalized``)."""
    expires_at: datetime | None
    """When it stops working; None: never."""
    auto_prefix_streams: bool
    """Stream names are relative to the scope's stream prefix."""
    digest: bytes
    """SHA-256 of the secret."""
    ops: frozenset[Op] = field(init=False)
    """Every operation it permits."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", permitted_ops(self.scope))

    @property
    def root(self) -> bool:
        """Whether this is lite's root token (never stored, listed, revoked or expired)."""
        return self.id == ""

    @property
    def stream_prefix(self) -> str:
        """What ``auto_prefix_streams`` adds to stream names ("" without it)."""
        streams = self.scope.streams
        if self.auto_prefix_streams and isinstance(streams, PrefixMatch):
            return streams.prefix
        return ""


@dataclass(frozen=True, slots=True)
class Listing:
    """A list request narrowed to a token's scope."""

    prefix: str
    """The prefix to list (the request's, or the scope's when that is narrower)."""
    start_after: str
    """The cursor, in stored names."""
    keep: Callable[[str], bool] | None
    """A further filter (an exact resource set), or None."""
    nothing: bool = False
    """Nothing in scope can match: list nothing."""


def _narrowed(rs: ResourceSet | None, prefix: str, start_after: str) -> Listing:
    """Listing ``prefix`` within ``rs``."""
    if isinstance(rs, PrefixMatch):
        if prefix.startswith(rs.prefix):
            return Listing(prefix, start_after, None)
        if rs.prefix.startswith(prefix):
            return Listing(rs.prefix, start_after, None)
    elif isinstance(rs, ExactMatch) and rs.name and rs.name.startswith(prefix):
        return Listing(rs.name, start_after, rs.name.__eq__)
    return Listing(prefix, start_after, None, nothing=True)


def _denied(what: str) -> ServerError:
    return err(ErrorCode.PERMISSION_DENIED, f"the access token does not permit {what}")


class Guard:
    """What one request's token allows; the app and handlers ask it (module docstring).

    Every check raises ``permission_denied`` (403) when the token does not allow it.
    """

    __slots__ = ("grant",)

    def __init__(self, grant: Grant | None) -> None:
        self.grant = grant
        """The request's token; None without ``--auth`` (everything allowed)."""

    def require(self, needs: tuple[frozenset[Op], ...]) -> None:
        """The token holds one operation of every set in ``needs`` (``_routes.Route.needs``)."""
        if self.grant is None:
            return
        for ops in needs:
            if not ops & self.grant.ops:
                names = " or ".join(f"`{op.value}`" for op in sorted(ops))
                raise _denied(f"operation {names}")

    def basin(self, name: str) -> None:
        """The basin is in scope."""
        if self.grant is not None and not matches(self.grant.scope.basins, name):
            raise _denied(f"basin `{name}`")

    def stream(self, name: str) -> str:
        """The stored name of a stream named by the client, which must be in scope."""
        if self.grant is None:
            return name
        stored = self.grant.stream_prefix + name
        if len(stored.encode()) > 512:
            raise err(
                ErrorCode.INVALID,
                "stream name with the access token's prefix exceeds 512 bytes in length",
            )
        if not matches(self.grant.scope.streams, stored):
            raise _denied(f"stream `{name}`")
        return stored

    def stream_out(self, name: str) -> str:
        """A stored stream name as the client sees it."""
        if self.grant is None:
            return name
        return name.removeprefix(self.grant.stream_prefix)

    def token(self, token_id: str) -> None:
        """The access token id is in scope."""
        if self.grant is not None and not matches(self.grant.scope.access_tokens, token_id):
            raise _denied(f"access token `{token_id}`")

    def basins(self, prefix: str, start_after: str) -> Listing:
        """List basins within scope."""
        if self.grant is None:
            return Listing(prefix, start_after, None)
        return _narrowed(self.grant.scope.basins, prefix, start_after)

    def streams(self, prefix: str, start_after: str) -> Listing:
        """List streams within scope (names coming in get the ``auto_prefix_streams`` prefix)."""
        if self.grant is None:
            return Listing(prefix, start_after, None)
        auto = self.grant.stream_prefix
        cursor = auto + start_after if start_after else ""
        return _narrowed(self.grant.scope.streams, auto + prefix, cursor)

    def tokens(self, prefix: str, start_after: str) -> Listing:
        """List access tokens within scope."""
        if self.grant is None:
            return Listing(prefix, start_after, None)
        return _narrowed(self.grant.scope.access_tokens, prefix, start_after)

    def check_batch(self, inp: AppendInput | PlainInput) -> None:
        """An append batch needs ``append`` for its records, ``trim``/``fence`` for those
        commands (they are records of the batch, ``_routes.py``)."""
        if self.grant is None:
            return
        needs: set[Op] = set()
        if isinstance(inp, PlainInput):
            needs.add(Op.APPEND)  # bodies alone: no command records
        else:
            for record in inp.records:
                op = command_of(record)
                needs.add(Op.APPEND if op is None else Op.TRIM if op == b"trim" else Op.FENCE)
        missing = needs - self.grant.ops
        if missing:
            raise _denied(f"operation `{min(missing).value}`")


OPEN = Guard(None)
"""The guard of every request when lite runs without ``--auth``."""
