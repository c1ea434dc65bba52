"""Access tokens as lite keeps them: the store, its rows beside the catalog, and the JSON of
the access-token API (docs/protocol.md#access-tokens, docs/auth.md).

The store is in memory; with durable storage every change also becomes a row of the
catalog's sub-database (key ``t`` + the token id, ``_meta.TOKEN_KIND``), committed with the
next group commit and sealed with a CRC-32C like every catalog row (``_lmdb_keys.seal``).
Issue and revoke answer only once their row is durable, so an issued token survives a crash
and a revoked one stays revoked. A row holds the SHA-256 digest of the secret, never the
secret.

Requests are parsed strictly (lite reports any JSON extraction failure as ``bad_json``, as
for every body of the API): wrong types, unknown operations and invalid names in resource sets
are refused rather than read leniently. Unknown fields are ignored, as everywhere in the API.
"""

from __future__ import annotations

import bisect
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from s2kit.errors import ErrorCode
from s2kit.server._auth import Grant
from s2kit.server._catalog import (
    basin_name_problem,
    basin_prefix_problem,
    err,
    paginate,
    stream_name_problem,
)
from s2kit.server._meta import TOKEN_KIND, CorruptCatalog
from s2kit.types import (
    AccessTokenInfo,
    AccessTokenScope,
    ExactMatch,
    Operation,
    Page,
    PermittedOperationGroups,
    PrefixMatch,
    ReadWritePermissions,
    ResourceSet,
)
from s2kit.wire._json import JsonShapeError, format_time, parse_time
from s2kit.wire._json_account import scope_obj, token_info_obj

if TYPE_CHECKING:
    from s2kit.server._meta import MetaLog

TOKEN_ID_MAX = 96
"""Longest token id, and longest id prefix / cursor, in bytes
(docs/protocol.md#names-and-limits)."""
SECRET_PREFIX = "s2kit_"


def token_id_problem(token_id: str) -> str | None:
    """Why ``token_id`` is not a valid access token id, or None."""
    try:
        size = len(token_id.encode())
    except UnicodeEncodeError:
        return "access token id must be valid UTF-8"
    if not 1 <= size <= TOKEN_ID_MAX:
        return f"access token id must be between 1 and {TOKEN_ID_MAX} bytes in length"
    if token_id in (".", ".."):
        return "access token id must not be `.` or `..`"
    return None


def new_secret() -> str:
    """A fresh token secret: 256 random bits, URL-safe."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


# --- JSON in ----------------------------------------------------------------------------------


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise JsonShapeError(f"{what}: expected a boolean")
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JsonShapeError(f"{what}: expected an object")
    return value


def _exact_ok(problem_of: Callable[[str], str | None]) -> Callable[[str], str | None]:
    # `{"exact": ""}` is valid and matches nothing (docs/protocol.md#access-tokens).
    return lambda name: None if name == "" else problem_of(name)


def _prefix_ok(max_bytes: int) -> Callable[[str], str | None]:
    def problem(prefix: str) -> str | None:
        if len(prefix.encode()) > max_bytes:
            return f"must not exceed {max_bytes} bytes in length"
        return None

    return problem


_SETS: dict[str, tuple[Callable[[str], str | None], Callable[[str], str | None]]] = {
    "basins": (_exact_ok(basin_name_problem), basin_prefix_problem),
    "streams": (_exact_ok(stream_name_problem), _prefix_ok(512)),
    "access_tokens": (_exact_ok(token_id_problem), _prefix_ok(TOKEN_ID_MAX)),
}


def _resource_set(value: Any, what: str) -> ResourceSet | None:
    if value is None:
        return None
    obj = _object(value, what)
    kinds = [k for k in ("exact", "prefix") if k in obj]
    if len(kinds) != 1 or not isinstance(obj[kinds[0]], str):
        raise JsonShapeError(f"{what}: expected exactly one of `exact` or `prefix`, a string")
    kind, name = kinds[0], obj[kinds[0]]
    exact_problem, prefix_problem = _SETS[what]
    problem = (exact_problem if kind == "exact" else prefix_problem)(name)
    if problem:
        raise JsonShapeError(f"{what}.{kind}: {problem}")
    return ExactMatch(name) if kind == "exact" else PrefixMatch(name)


def _permissions(value: Any, what: str) -> ReadWritePermissions | None:
    if value is None:
        return None
    obj = _object(value, what)
    return ReadWritePermissions(
        read=_bool(obj.get("read", False), f"{what}.read"),
        write=_bool(obj.get("write", False), f"{what}.write"),
    )


def _ops(value: Any) -> tuple[Operation, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise JsonShapeError("ops: expected an array")
    ops = []
    for op in value:
        try:
            ops.append(Operation(op))
        except ValueError:
            raise JsonShapeError(f"ops: unknown operation {op!r}") from None
    return tuple(ops)


def scope_from_obj(value: Any) -> AccessTokenScope:
    """Parse an ``AccessTokenScope`` strictly."""
    obj = _object(value, "scope")
    groups = obj.get("op_groups")
    g = None if groups is None else _object(groups, "op_groups")
    return AccessTokenScope(
        basins=_resource_set(obj.get("basins"), "basins"),
        streams=_resource_set(obj.get("streams"), "streams"),
        access_tokens=_resource_set(obj.get("access_tokens"), "access_tokens"),
        op_groups=None
        if g is None
        else PermittedOperationGroups(
            account=_permissions(g.get("account"), "op_groups.account"),
            basin=_permissions(g.get("basin"), "op_groups.basin"),
            stream=_permissions(g.get("stream"), "op_groups.stream"),
        ),
        ops=_ops(obj.get("ops")),
    )


def issue_request_from_obj(value: Any) -> AccessTokenInfo:
    """Parse an ``IssueAccessTokenRequest`` (``expires_at`` None when absent or null)."""
    obj = _object(value, "request")
    token_id = obj.get("id")
    if not isinstance(token_id, str):
        raise JsonShapeError("id: expected a string")
    if problem := token_id_problem(token_id):
        raise JsonShapeError(f"id: {problem}")
    if "scope" not in obj:
        raise JsonShapeError("missing field `scope`")
    expires = obj.get("expires_at")
    return AccessTokenInfo(
        id=token_id,
        scope=scope_from_obj(obj["scope"]),
        expires_at=None if expires is None else parse_time(expires, "expires_at"),
        auto_prefix_streams=_bool(obj.get("auto_prefix_streams", False), "auto_prefix_streams"),
    )


def normalized(scope: AccessTokenScope) -> AccessTokenScope:
    """The scope as stored and echoed: every group materialized as ``{read, write}``, ``ops``
    a list without repeats in the API's order (docs/auth.md#the-api)."""
    groups = scope.op_groups or PermittedOperationGroups()
    none = ReadWritePermissions()
    given = set(scope.ops or ())
    return AccessTokenScope(
        basins=scope.basins,
        streams=scope.streams,
        access_tokens=scope.access_tokens,
        op_groups=PermittedOperationGroups(
            account=groups.account or none,
            basin=groups.basin or none,
            stream=groups.stream or none,
        ),
        ops=tuple(op for op in Operation if op in given),
    )


# --- JSON out ---------------------------------------------------------------------------------


def info_obj(grant: Grant) -> dict[str, Any]:
    """A token as listed (``AccessTokenInfo``)."""
    return token_info_obj(
        AccessTokenInfo(
            id=grant.id,
            scope=grant.scope,
            expires_at=grant.expires_at,
            auto_prefix_streams=grant.auto_prefix_streams,
        )
    )


# --- rows -------------------------------------------------------------------------------------


def row_key(token_id: str) -> bytes:
    """The catalog key of a token's row."""
    return TOKEN_KIND + token_id.encode()


def row(grant: Grant) -> bytes:
    """A token's persisted row (JSON; the scope as the API writes it)."""
    return json.dumps(
        {
            "id": grant.id,
            "digest": grant.digest.hex(),
            "expires_at": None if grant.expires_at is None else format_time(grant.expires_at),
            "auto_prefix_streams": grant.auto_prefix_streams,
            "scope": scope_obj(grant.scope),
        },
        separators=(",", ":"),
    ).encode()


def grant_from_row(key: bytes, value: bytes) -> Grant:
    """A token from its row.

    Raises:
        CorruptCatalog: the row does not parse or does not belong under its key.
    """
    try:
        doc = _object(json.loads(value), "row")
        token_id = doc["id"]
        if not isinstance(token_id, str) or row_key(token_id) != key:
            raise ValueError("the id does not match the key")
        expires = doc["expires_at"]
        digest = bytes.fromhex(doc["digest"])
        if len(digest) != 32:
            raise ValueError("the digest is not 32 bytes")
        return Grant(
            id=token_id,
            scope=normalized(scope_from_obj(doc["scope"])),
            expires_at=None if expires is None else parse_time(expires, "expires_at"),
            auto_prefix_streams=_bool(doc["auto_prefix_streams"], "auto_prefix_streams"),
            digest=digest,
        )
    except (ValueError, KeyError, TypeError, JsonShapeError) as exc:
        raise CorruptCatalog(f"corrupt access token row {key!r}: {exc}") from None


# --- the store --------------------------------------------------------------------------------


def _utf8(name: str) -> bytes:
    return name.encode()


class TokenStore:
    """Every issued access token, by id and by digest of its secret."""

    def __init__(self, meta: MetaLog | None = None) -> None:
        self._meta = meta
        self._by_id: dict[str, Grant] = {}
        self._by_digest: dict[bytes, Grant] = {}
        self._ids: list[str] = []
        """Ids in byte-wise order, for listing (docs/protocol.md#listing)."""
        if meta is not None:
            for key, value in meta.rows_of(TOKEN_KIND):
                self._insert(grant_from_row(key, value))

    def __len__(self) -> int:
        return len(self._by_id)

    def find(self, secret_digest: bytes) -> Grant | None:
        """The token whose secret has this digest."""
        return self._by_digest.get(secret_digest)

    def get(self, token_id: str) -> Grant | None:
        """The token with this id."""
        return self._by_id.get(token_id)

    def _insert(self, grant: Grant) -> None:
        self._by_id[grant.id] = grant
        self._by_digest[grant.digest] = grant
        bisect.insort(self._ids, grant.id, key=_utf8)

    def add(self, grant: Grant) -> None:
        """Add a token (durable once :meth:`durable` returns).

        Raises:
            ServerError: ``resource_already_exists`` when the id is taken.
        """
        if grant.id in self._by_id:
            raise err(
                ErrorCode.RESOURCE_ALREADY_EXISTS, f"access token `{grant.id}` already exists"
            )
        self._insert(grant)
        if self._meta is not None:
            self._meta.put_awaited(row_key(grant.id), row(grant))

    def remove(self, token_id: str) -> Grant:
        """Remove a token; it stops working at once (durably once :meth:`durable` returns).

        Raises:
            ServerError: ``access_token_not_found``.
        """
        grant = self._by_id.pop(token_id, None)
        if grant is None:
            raise err(ErrorCode.ACCESS_TOKEN_NOT_FOUND, f"access token `{token_id}` not found")
        del self._by_digest[grant.digest]
        del self._ids[bisect.bisect_left(self._ids, _utf8(token_id), key=_utf8)]
        if self._meta is not None:
            self._meta.put_awaited(row_key(token_id), None)
        return grant

    async def durable(self) -> None:
        """Wait until every change so far is durable (at once in memory).

        Raises:
            ServerError: ``storage`` if persisting them failed.
        """
        if self._meta is not None:
            await self._meta.durable()

    def page(
        self, prefix: str, start_after: str, limit: int, keep: Callable[[str], bool] | None
    ) -> Page[Grant]:
        """One page of tokens by id (docs/protocol.md#listing)."""
        return paginate(self._ids, prefix, start_after, limit, self._by_id.__getitem__, keep)


def expired(grant: Grant, now: datetime | None = None) -> bool:
    """Whether the token's expiry has passed."""
    if grant.expires_at is None:
        return False
    return grant.expires_at <= (now or datetime.now(UTC))
