"""The official Python SDK (``s2_sdk`` 0.13.0) against lite with ``--auth``: it issues a scoped
token, lists it back with its scope as S2 echoes it, uses it, meets 403 outside its scope,
revokes it and meets 401 (docs/auth.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import s2_sdk
from s2_sdk import (
    AccessTokenScope,
    AppendInput,
    ExactMatch,
    Operation,
    OperationGroupPermissions,
    Permission,
    PrefixMatch,
    Record,
    S2ServerError,
    SeqNum,
)

from .conftest import ROOT, unique


def official(url: str, token: str) -> s2_sdk.S2:
    """The official client for ``url`` holding ``token``."""
    return s2_sdk.S2(token, endpoints=s2_sdk.Endpoints(account=url, basin=url))


def status_code(exc: pytest.ExceptionInfo[S2ServerError]) -> tuple[int, str]:
    return exc.value.status_code, exc.value.code


async def test_issue_list_use_deny_revoke(url: str) -> None:
    basin, other = unique("basin"), unique("basin")
    token_id = unique("official")
    expires = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    async with official(url, ROOT) as root:
        for name in (basin, other):
            await root.create_basin(name)
        await root.basin(basin).create_stream("jobs/a")
        await root.basin(basin).create_stream("private")
        scope = AccessTokenScope(
            basins=ExactMatch(basin),
            streams=PrefixMatch("jobs/"),
            op_groups=OperationGroupPermissions(stream=Permission.READ_WRITE),
            ops=[Operation.LIST_STREAMS],
        )
        secret = await root.issue_access_token(token_id, scope=scope, expires_at=expires)

        (info,) = (await root.list_access_tokens(prefix=token_id)).items
        assert info.id == token_id
        assert info.expires_at == expires
        assert info.auto_prefix_streams is False
        assert info.scope.basins == ExactMatch(basin)
        assert info.scope.streams == PrefixMatch("jobs/")
        assert info.scope.access_tokens is None
        assert info.scope.op_groups == OperationGroupPermissions(stream=Permission.READ_WRITE)
        assert info.scope.ops == [Operation.LIST_STREAMS]
        listed = [t.id async for t in root.list_all_access_tokens(prefix=token_id)]
        assert listed == [token_id]

        async with official(url, secret) as client:
            stream = client.basin(basin).stream("jobs/a")
            ack = await stream.append(AppendInput(records=[Record(body=b"job")]))
            assert ack.end.seq_num == 1
            batch = await stream.read(start=SeqNum(0))
            assert [r.body for r in batch.records] == [b"job"]
            listed = (await client.basin(basin).list_streams()).items
            assert [s.name for s in listed] == ["jobs/a"]
            for denied in (
                client.basin(basin).stream("private").check_tail(),
                client.basin(other).stream("jobs/a").check_tail(),
                client.list_basins(),
                client.basin(basin).create_stream("jobs/b"),
            ):
                with pytest.raises(S2ServerError) as exc:
                    await denied
                assert status_code(exc) == (403, "permission_denied")

            await root.revoke_access_token(token_id)
            with pytest.raises(S2ServerError) as exc:
                await stream.check_tail()
            assert status_code(exc) == (401, "authn")
        with pytest.raises(S2ServerError) as exc:
            await root.revoke_access_token(token_id)
        assert status_code(exc) == (404, "access_token_not_found")


async def test_auto_prefix_streams_and_errors(url: str) -> None:
    basin = unique("basin")
    async with official(url, ROOT) as root:
        await root.create_basin(basin)
        scope = AccessTokenScope(
            basins=ExactMatch(basin),
            streams=PrefixMatch("t1/"),
            op_groups=OperationGroupPermissions(
                basin=Permission.READ_WRITE, stream=Permission.READ_WRITE
            ),
        )
        token_id = unique("official")
        secret = await root.issue_access_token(token_id, scope=scope, auto_prefix_streams=True)
        (info,) = (await root.list_access_tokens(prefix=token_id)).items
        assert info.auto_prefix_streams is True
        with pytest.raises(S2ServerError) as exc:
            await root.issue_access_token(token_id, scope=scope)
        assert status_code(exc) == (409, "resource_already_exists")
        with pytest.raises(S2ServerError) as exc:
            await root.issue_access_token(unique("official"), scope=AccessTokenScope())
        assert status_code(exc) == (422, "invalid")
        async with official(url, secret) as client:
            b = client.basin(basin)
            await b.create_stream("s")
            await b.stream("s").append(AppendInput(records=[Record(body=b"x")]))
            assert [s.name for s in (await b.list_streams()).items] == ["s"]
        assert [s.name for s in (await root.basin(basin).list_streams()).items] == ["t1/s"]
