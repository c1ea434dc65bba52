"""Access-token commands: issue, list and revoke (S2, and lite with ``--auth``: docs/auth.md)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from s2kit import (
    AccessTokenInfo,
    AccessTokenScope,
    ExactMatch,
    Operation,
    PermittedOperationGroups,
    PrefixMatch,
    ReadWritePermissions,
)
from s2kit.cli._config import Settings, make_client, positive_int
from s2kit.cli._output import print_json, print_line, print_table
from s2kit.wire._json_account import token_info_obj

if TYPE_CHECKING:
    from s2kit.cli._main import Commands

_GROUPS = ("account", "basin", "stream")


def resource_set(text: str) -> ExactMatch | PrefixMatch:
    """argparse type: ``exact:NAME`` or ``=NAME`` (exactly that name); ``prefix:P`` or ``P``
    (names starting with P; ``''`` is every name)."""
    if text.startswith("exact:"):
        return ExactMatch(text[6:])
    if text.startswith("="):
        return ExactMatch(text[1:])
    return PrefixMatch(text.removeprefix("prefix:"))


def op_groups(text: str) -> PermittedOperationGroups:
    """argparse type: ``account=rw,basin=r,stream=w``."""
    perms: dict[str, ReadWritePermissions] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        group, sep, rw = item.partition("=")
        if not sep or group not in _GROUPS or not rw or set(rw) - {"r", "w"}:
            raise argparse.ArgumentTypeError(
                f"invalid operation group {item!r}: use GROUP=r|w|rw with GROUP one of "
                + ", ".join(_GROUPS)
            )
        perms[group] = ReadWritePermissions(read="r" in rw, write="w" in rw)
    return PermittedOperationGroups(**perms)


def operations(text: str) -> tuple[Operation, ...]:
    """argparse type: comma-separated operation names (``append,read,check-tail``)."""
    ops = []
    for name in filter(None, (s.strip() for s in text.split(","))):
        try:
            ops.append(Operation(name))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"unknown operation {name!r}: one of {', '.join(o.value for o in Operation)}"
            ) from None
    return tuple(ops)


def timestamp(text: str) -> datetime:
    """argparse type: an ISO 8601 time (UTC when no offset is given)."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use ISO 8601, e.g. 2030-01-31T12:00:00Z"
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _scope_text(scope: AccessTokenScope) -> str:
    parts = []
    for name in ("basins", "streams", "access_tokens"):
        rs = getattr(scope, name)
        if isinstance(rs, ExactMatch):
            parts.append(f"{name}={rs.name}")
        elif isinstance(rs, PrefixMatch):
            parts.append(f"{name}={rs.prefix}*")
    groups = scope.op_groups
    if groups is not None:
        for g in _GROUPS:
            p = getattr(groups, g)
            if p is not None and (p.read or p.write):
                parts.append(f"{g}:{'r' if p.read else ''}{'w' if p.write else ''}")
    if scope.ops:
        parts.append("ops=" + "+".join(o.value for o in scope.ops))
    return " ".join(parts) or "-"


async def issue_access_token(args: argparse.Namespace, settings: Settings) -> int:
    """``issue-access-token``: prints the new token's secret."""
    scope = AccessTokenScope(
        basins=args.basins,
        streams=args.streams,
        access_tokens=args.access_tokens,
        op_groups=args.op_groups,
        ops=args.ops,
    )
    async with make_client(settings) as s2:
        secret = await s2.issue_access_token(
            args.id,
            scope,
            expires_at=args.expires_at,
            auto_prefix_streams=args.auto_prefix_streams,
        )
    if settings.json:
        print_json({"id": args.id, "access_token": secret})
    else:
        print_line(secret)
    return 0


def _row(t: AccessTokenInfo) -> list[str]:
    expires = "-" if t.expires_at is None else t.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [t.id, expires, "yes" if t.auto_prefix_streams else "no", _scope_text(t.scope)]


async def list_access_tokens(args: argparse.Namespace, settings: Settings) -> int:
    """``list-access-tokens``."""
    tokens: list[AccessTokenInfo] = []
    start_after = args.start_after
    async with make_client(settings) as s2:
        while args.limit is None or len(tokens) < args.limit:
            page = await s2.list_access_tokens(prefix=args.prefix, start_after=start_after)
            tokens.extend(page.items)
            if not page.has_more or not page.items:
                break
            start_after = page.items[-1].id
    if args.limit is not None:
        tokens = tokens[: args.limit]
    if settings.json:  # as the API writes them: `exact`/`prefix`, RFC 3339 times
        print_json([token_info_obj(t) for t in tokens])
    else:
        print_table(["ID", "EXPIRES", "AUTO-PREFIX", "SCOPE"], [_row(t) for t in tokens])
    return 0


async def revoke_access_token(args: argparse.Namespace, settings: Settings) -> int:
    """``revoke-access-token``."""
    async with make_client(settings) as s2:
        await s2.revoke_access_token(args.id)
    if settings.json:
        print_json({"id": args.id, "revoked": True})
    else:
        print_line(f"revoked access token {args.id}")
    return 0


def add_parsers(cmds: Commands) -> None:
    """Register the access-token commands."""
    p = cmds.add(
        "issue-access-token",
        issue_access_token,
        "issue an access token and print its secret",
        "s2kit issue-access-token ci-reader --basins =my-basin --op-groups stream=r "
        "--expires-at 2030-01-01T00:00:00Z",
        details="Resource sets: =NAME or exact:NAME is one name; PREFIX or prefix:PREFIX is every "
        "name starting with it ('' is all).",
    )
    p.add_argument("id", metavar="ID", help="the token's id")
    p.add_argument("--basins", type=resource_set, metavar="SET", help="basins in scope")
    p.add_argument("--streams", type=resource_set, metavar="SET", help="streams in scope")
    p.add_argument(
        "--access-tokens", type=resource_set, metavar="SET", help="access tokens in scope"
    )
    p.add_argument(
        "--op-groups", type=op_groups, metavar="GROUPS", help="e.g. account=r,basin=rw,stream=w"
    )
    p.add_argument("--ops", type=operations, metavar="OPS", help="e.g. append,read,check-tail")
    p.add_argument("--expires-at", type=timestamp, metavar="TIME", help="ISO 8601 expiry")
    p.add_argument(
        "--auto-prefix-streams", action="store_true", help="prefix stream names with the scope's"
    )

    p = cmds.add(
        "list-access-tokens",
        list_access_tokens,
        "list access tokens",
        "s2kit list-access-tokens --prefix ci-",
    )
    p.add_argument("--prefix", default="", help="only ids starting with this")
    p.add_argument("--start-after", default="", metavar="ID", help="only ids after this")
    p.add_argument("--limit", type=positive_int, metavar="N", help="at most N tokens")

    p = cmds.add(
        "revoke-access-token",
        revoke_access_token,
        "revoke an access token",
        "s2kit revoke-access-token ci-reader",
    )
    p.add_argument("id", metavar="ID")
