"""Lite handlers for the access-token API: list, issue, revoke (docs/auth.md#the-api).

Served only with ``--auth`` (without it lite answers ``not_implemented``, as s2-lite does).
The app has already authenticated the request, checked its operation and, for revoke, the
token id in the path (``_app.py``); what the body names is checked here.

Issuing never escalates: the new token's operations, resource sets and expiry must lie within
the issuing token's (422 ``invalid`` otherwise); its expiry defaults to the issuer's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from s2kit.errors import ErrorCode, ServerError
from s2kit.server._auth import Grant, covers, digest, permitted_ops
from s2kit.server._http import (
    Query,
    Reply,
    err,
    from_json,
    json_body,
    read_body,
    require_json_content_type,
)
from s2kit.server._tokens import (
    TOKEN_ID_MAX,
    info_obj,
    issue_request_from_obj,
    new_secret,
    normalized,
)
from s2kit.types import AccessTokenScope, Page, PrefixMatch

if TYPE_CHECKING:
    from s2kit.server._tokens_gate import Gate


async def list_access_tokens(gate: Gate, reply: Reply, token_id: str | None) -> None:
    """GET /v1/access-tokens: the tokens within the requester's ``access_tokens`` scope."""
    q = Query(reply.request.query)
    prefix, start_after = q.text("prefix"), q.text("start_after")
    for name, value in (("prefix", prefix), ("start_after", start_after)):
        if len(value.encode()) > TOKEN_ID_MAX:
            raise err(
                ErrorCode.BAD_QUERY,
                f"invalid query parameter `{name}`: must not exceed {TOKEN_ID_MAX} bytes in length",
            )
    limit = q.u64("limit")
    if start_after and start_after.encode() < prefix.encode():
        # S2 refuses a cursor before the prefix for tokens (lite's basin and stream lists,
        # like s2-lite's, accept it).
        raise err(ErrorCode.INVALID, "`start_after` must not sort before `prefix`")
    limit = 1000 if not limit or limit > 1000 else limit  # as every list
    view = reply.guard.tokens(prefix, start_after)
    page: Page[Grant] = (
        Page() if view.nothing else gate.store.page(view.prefix, view.start_after, limit, view.keep)
    )
    await reply.json(
        200, {"access_tokens": [info_obj(g) for g in page.items], "has_more": page.has_more}
    )


def _escalation(issuer: Grant, scope: AccessTokenScope, expires_at: datetime | None) -> str | None:
    """Why a token with this scope and expiry would exceed its issuer's, or None."""
    if issuer.expires_at is not None and (expires_at is None or expires_at > issuer.expires_at):
        return "`expires_at` must not be later than the issuing access token's expiry"
    beyond = permitted_ops(scope) - issuer.ops
    if beyond:
        names = ", ".join(sorted(op.value for op in beyond))
        return f"the scope permits operations the issuing access token does not: {names}"
    for kind, outer, inner in (
        ("basins", issuer.scope.basins, scope.basins),
        ("streams", issuer.scope.streams, scope.streams),
        ("access_tokens", issuer.scope.access_tokens, scope.access_tokens),
    ):
        if not covers(outer, inner):
            return f"the scope's `{kind}` reach beyond the issuing access token's"
    return None


async def issue_access_token(gate: Gate, reply: Reply, token_id: str | None) -> None:
    """POST /v1/access-tokens: 201 with the secret, shown this once."""
    require_json_content_type(reply.request)
    info = from_json(issue_request_from_obj, json_body(await read_body(reply.request)))
    issuer = reply.guard.grant
    assert issuer is not None  # the app serves this route only with --auth
    reply.guard.token(info.id)
    scope = normalized(info.scope)
    if not permitted_ops(scope):
        raise err(ErrorCode.INVALID, "the access token's scope must permit at least one operation")
    if info.auto_prefix_streams and not isinstance(scope.streams, PrefixMatch):
        raise err(ErrorCode.INVALID, "`auto_prefix_streams` needs a `prefix` stream scope")
    # Absent: the issuer's expiry (docs/protocol.md#access-tokens).
    expires_at = info.expires_at if info.expires_at is not None else issuer.expires_at
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise err(ErrorCode.INVALID, "`expires_at` must be in the future")
    if problem := _escalation(issuer, scope, expires_at):
        raise err(ErrorCode.INVALID, problem)
    secret = new_secret()
    grant = Grant(
        id=info.id,
        scope=scope,
        expires_at=expires_at,
        auto_prefix_streams=info.auto_prefix_streams,
        digest=digest(secret),
    )
    gate.store.add(grant)
    try:
        await gate.store.durable()
    except ServerError:
        # Nobody will ever see this secret: take the token back rather than leave its id taken.
        if gate.store.get(grant.id) is grant:
            gate.store.remove(grant.id)
        raise
    await reply.json(201, {"access_token": secret})


async def revoke_access_token(gate: Gate, reply: Reply, token_id: str | None) -> None:
    """DELETE /v1/access-tokens/{id}: 204; the token stops working at once and its running
    requests (sessions included) end."""
    assert token_id is not None
    gate.store.remove(token_id)
    gate.end(token_id)
    await gate.store.durable()
    await reply.empty(204)
