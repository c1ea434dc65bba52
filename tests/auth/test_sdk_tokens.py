"""s2kit's SDK against lite with ``--auth``: issue a scoped token, use it, meet 403 outside its
scope, revoke it and meet 401; expiry; ``auto_prefix_streams``; listing; issuing without
escalation; trim and fence as operations; sessions ended by revocation (docs/auth.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from s2kit import (
    AccessTokenScope,
    AppendInput,
    AppendSession,
    CommandRecord,
    ExactMatch,
    Operation,
    PermittedOperationGroups,
    PrefixMatch,
    ReadWritePermissions,
    Record,
    SeqNum,
)
from s2kit.errors import ServerError

from .conftest import ROOT, sdk, unique

RW = ReadWritePermissions(read=True, write=True)
WAIT = 10.0


def code_of(exc: pytest.ExceptionInfo[ServerError]) -> tuple[int, str]:
    return exc.value.status, exc.value.code


async def error_ending(session: AsyncIterator[object]) -> tuple[int, str]:
    """(status, code) of the error a session ends with (within :data:`WAIT`)."""
    try:
        async with asyncio.timeout(WAIT):
            async for _ in session:
                pass
    except ServerError as exc:
        return exc.status, exc.code
    raise AssertionError("the session ended without an error")


async def error_appending(session: AppendSession) -> tuple[int, str]:
    """(status, code) of the error appending through ``session`` meets."""
    try:
        async with asyncio.timeout(WAIT):
            ticket = await session.submit(AppendInput(records=[Record(body=b"late")]))
            await ticket
    except ServerError as exc:
        return exc.status, exc.code
    raise AssertionError("the append succeeded")


async def test_issue_use_deny_revoke(url: str) -> None:
    basin, other = unique("basin"), unique("basin")
    async with sdk(url, ROOT) as root:
        for name in (basin, other):
            await root.create_basin(name)
        await root.basin(basin).create_stream("logs/a")
        await root.basin(basin).create_stream("metrics/a")
        scope = AccessTokenScope(
            basins=ExactMatch(basin),
            streams=PrefixMatch("logs/"),
            op_groups=PermittedOperationGroups(basin=ReadWritePermissions(read=True), stream=RW),
        )
        token_id = unique("tok")
        secret = await root.issue_access_token(token_id, scope)
        assert secret.startswith("s2kit_")
        assert len(secret) > 40
        async with sdk(url, secret) as client:
            b = client.basin(basin)
            stream = b.stream("logs/a")
            ack = await stream.append(AppendInput(records=[Record(body=b"hi")]))
            assert ack.end.seq_num == 1
            assert [r.body for r in (await stream.read(SeqNum(0))).records] == [b"hi"]
            # Listing shows only what the scope covers.
            assert [s.name for s in (await b.list_streams()).items] == ["logs/a"]
            with pytest.raises(ServerError) as denied:
                await b.stream("metrics/a").append(AppendInput(records=[Record(body=b"x")]))
            assert code_of(denied) == (403, "permission_denied")
            assert "stream `metrics/a`" in denied.value.message
            with pytest.raises(ServerError) as denied:
                await client.basin(other).list_streams()
            assert code_of(denied) == (403, "permission_denied")
            with pytest.raises(ServerError) as denied:
                await b.create_stream("logs/b")  # basin write is not granted
            assert code_of(denied) == (403, "permission_denied")
            assert "create-stream" in denied.value.message
            with pytest.raises(ServerError) as denied:
                await client.list_basins()
            assert code_of(denied) == (403, "permission_denied")

            await root.revoke_access_token(token_id)
            with pytest.raises(ServerError) as gone:
                await stream.check_tail()
            assert code_of(gone) == (401, "authn")
        with pytest.raises(ServerError) as again:
            await root.revoke_access_token(token_id)
        assert code_of(again) == (404, "access_token_not_found")


async def test_wrong_or_missing_tokens_are_authn(url: str) -> None:
    for token in ("not-a-token", ROOT + "x", "s2kit_" + "A" * 43):
        async with sdk(url, token) as client:
            with pytest.raises(ServerError) as exc:
                await client.list_basins()
            assert code_of(exc) == (401, "authn")


@pytest.mark.parametrize("http1", [False, True])
async def test_a_token_read_with_its_newline_still_works(url: str, http1: bool) -> None:
    # A token pasted or read from a file keeps its line end: the value sent is the token.
    async with sdk(url, f"  {ROOT}\n", http1=http1) as client:
        await client.list_basins()


async def test_expiry_ends_requests_and_sessions(url: str) -> None:
    basin = unique("basin")
    async with sdk(url, ROOT) as root:
        await root.create_basin(basin)
        await root.basin(basin).create_stream("s")
        expires = datetime.now(UTC) + timedelta(seconds=2)
        token_id = unique("tok")
        scope = AccessTokenScope(
            basins=ExactMatch(basin),
            streams=PrefixMatch(""),
            op_groups=PermittedOperationGroups(stream=RW),
        )
        secret = await root.issue_access_token(token_id, scope, expires_at=expires)
        listed = (await root.list_access_tokens(prefix=token_id)).items
        assert [t.expires_at for t in listed] == [expires]
        async with sdk(url, secret) as client:
            stream = client.basin(basin).stream("s")
            await stream.append(AppendInput(records=[Record(body=b"a")]))
            # A following read session of the token ends when the token expires.
            async with stream.read_session(SeqNum(0)) as session:
                first = await asyncio.wait_for(anext(session), WAIT)
                assert [r.body for r in first.records] == [b"a"]
                assert await error_ending(session) == (401, "authn")
            assert datetime.now(UTC) >= expires
            with pytest.raises(ServerError) as late:
                await stream.check_tail()
            assert code_of(late) == (401, "authn")
            assert "expired" in late.value.message


async def test_revocation_ends_open_sessions(url: str) -> None:
    basin = unique("basin")
    async with sdk(url, ROOT) as root:
        await root.create_basin(basin)
        await root.basin(basin).create_stream("s")
        token_id = unique("tok")
        scope = AccessTokenScope(
            basins=ExactMatch(basin),
            streams=PrefixMatch(""),
            op_groups=PermittedOperationGroups(stream=RW),
        )
        secret = await root.issue_access_token(token_id, scope)
        async with sdk(url, secret) as client:
            stream = client.basin(basin).stream("s")
            appends = stream.append_session()
            reads = stream.read_session(SeqNum(0))
            ticket = await appends.submit(AppendInput(records=[Record(body=b"one")]))
            assert (await asyncio.wait_for(ticket, WAIT)).end.seq_num == 1
            first = await asyncio.wait_for(anext(reads), WAIT)
            assert [r.body for r in first.records] == [b"one"]

            await root.revoke_access_token(token_id)

            assert await error_ending(reads) == (401, "authn")
            assert await error_appending(appends) == (401, "authn")
            with pytest.raises(ServerError):  # the session's error sticks (docs/outcomes.md)
                await appends.close()
            await reads.aclose()
        # Nothing of the revoked token's was appended after the revocation.
        tail = await root.basin(basin).stream("s").check_tail()
        assert tail.seq_num == 1


async def test_auto_prefix_streams(url: str) -> None:
    basin = unique("basin")
    async with sdk(url, ROOT) as root:
        await root.create_basin(basin)
        await root.basin(basin).create_stream("tenant-b/y")
        token_id = unique("tok")
        scope = AccessTokenScope(
            basins=ExactMatch(basin),
            streams=PrefixMatch("tenant-a/"),
            op_groups=PermittedOperationGroups(basin=RW, stream=RW),
        )
        secret = await root.issue_access_token(token_id, scope, auto_prefix_streams=True)
        (info,) = (await root.list_access_tokens(prefix=token_id)).items
        assert info.auto_prefix_streams
        async with sdk(url, secret) as client:
            b = client.basin(basin)
            created = await b.create_stream("x")
            assert created.name == "x"  # the client's name, not the stored one
            for name in ("y", "z"):
                await b.create_stream(name)
            await b.stream("x").append(AppendInput(records=[Record(body=b"in x")]))
            page = await b.list_streams()
            assert [s.name for s in page.items] == ["x", "y", "z"]
            page = await b.list_streams(prefix="y")
            assert [s.name for s in page.items] == ["y"]
            page = await b.list_streams(start_after="x", limit=1)
            assert ([s.name for s in page.items], page.has_more) == (["y"], True)
            assert [r.body for r in (await b.stream("x").read(SeqNum(0))).records] == [b"in x"]
            # Another tenant's stream is out of reach: its name resolves under the prefix.
            with pytest.raises(ServerError) as missing:
                await b.stream("tenant-b/y").check_tail()
            assert code_of(missing) == (404, "stream_not_found")
        stored = [s.name for s in (await root.basin(basin).list_streams()).items]
        assert stored == ["tenant-a/x", "tenant-a/y", "tenant-a/z", "tenant-b/y"]
        tail = await root.basin(basin).stream("tenant-a/x").check_tail()
        assert tail.seq_num == 1


async def test_listing_pages_within_scope(url: str) -> None:
    group = unique("pg")
    async with sdk(url, ROOT) as root:
        one_op = AccessTokenScope(ops=(Operation.LIST_BASINS,))
        ids = [f"{group}-{c}" for c in "abcde"]
        for token_id in ids:
            await root.issue_access_token(token_id, one_op)
        page = await root.list_access_tokens(prefix=f"{group}-", limit=2)
        assert ([t.id for t in page.items], page.has_more) == (ids[:2], True)
        page = await root.list_access_tokens(prefix=f"{group}-", start_after=ids[1], limit=2)
        assert ([t.id for t in page.items], page.has_more) == (ids[2:4], True)
        page = await root.list_access_tokens(prefix=f"{group}-", start_after=ids[3])
        assert ([t.id for t in page.items], page.has_more) == (ids[4:], False)
        (info,) = (await root.list_access_tokens(prefix=ids[0])).items
        assert info.scope.ops == (Operation.LIST_BASINS,)
        assert info.expires_at is None  # issued by the root token, which never expires

        lister = AccessTokenScope(
            access_tokens=PrefixMatch(f"{group}-b"), ops=(Operation.LIST_ACCESS_TOKENS,)
        )
        secret = await root.issue_access_token(f"{group}-b-lister", lister)
        async with sdk(url, secret) as client:
            page = await client.list_access_tokens(prefix=f"{group}-")
            assert [t.id for t in page.items] == [f"{group}-b", f"{group}-b-lister"]
            page = await client.list_access_tokens(prefix=f"{group}-d")
            assert page.items == ()


async def test_issuing_never_escalates(url: str) -> None:
    group = unique("esc")
    expires = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    async with sdk(url, ROOT) as root:
        issuer_scope = AccessTokenScope(
            basins=PrefixMatch(f"{group}-"),
            streams=PrefixMatch("app/"),
            access_tokens=PrefixMatch(f"{group}-kid"),
            op_groups=PermittedOperationGroups(
                account=ReadWritePermissions(write=True), stream=ReadWritePermissions(read=True)
            ),
        )
        secret = await root.issue_access_token(f"{group}-issuer", issuer_scope, expires_at=expires)
    read_only = PermittedOperationGroups(stream=ReadWritePermissions(read=True))
    async with sdk(url, secret) as issuer:
        cases = {
            "operations": AccessTokenScope(op_groups=PermittedOperationGroups(stream=RW)),
            "`basins`": AccessTokenScope(basins=PrefixMatch(""), op_groups=read_only),
            "`streams`": AccessTokenScope(streams=PrefixMatch("ap"), op_groups=read_only),
        }
        for word, scope in cases.items():
            with pytest.raises(ServerError) as exc:
                await issuer.issue_access_token(f"{group}-kid-x", scope)
            assert code_of(exc) == (422, "invalid")
            assert word in exc.value.message
        narrow = AccessTokenScope(
            basins=ExactMatch(f"{group}-one"), streams=PrefixMatch("app/x/"), op_groups=read_only
        )
        later = expires + timedelta(hours=1)
        with pytest.raises(ServerError) as exc:
            await issuer.issue_access_token(f"{group}-kid-x", narrow, expires_at=later)
        assert code_of(exc) == (422, "invalid")
        with pytest.raises(ServerError) as exc:
            await issuer.issue_access_token(f"{group}-other", narrow)
        assert code_of(exc) == (403, "permission_denied")
        await issuer.issue_access_token(f"{group}-kid-1", narrow)
    async with sdk(url, ROOT) as root:
        (kid,) = (await root.list_access_tokens(prefix=f"{group}-kid-1")).items
        assert kid.expires_at == expires  # the issuer's, when none is given
        assert kid.scope.basins == ExactMatch(f"{group}-one")


async def test_trim_and_fence_are_their_own_operations(url: str) -> None:
    basin = unique("basin")
    async with sdk(url, ROOT) as root:
        await root.create_basin(basin)
        await root.basin(basin).create_stream("s")

        async def token(*ops: Operation) -> str:
            scope = AccessTokenScope(basins=ExactMatch(basin), streams=PrefixMatch(""), ops=ops)
            return await root.issue_access_token(unique("tok"), scope)

        appender, trimmer, fencer = (
            await token(Operation.APPEND),
            await token(Operation.TRIM),
            await token(Operation.FENCE, Operation.APPEND),
        )
    batches = {
        "append": AppendInput(records=[Record(body=b"r")]),
        "trim": AppendInput(records=[CommandRecord.trim(0)]),
        "fence": AppendInput(records=[CommandRecord.fence("f1")]),
        "mixed": AppendInput(records=[Record(body=b"r"), CommandRecord.trim(0)]),
    }
    allowed = {
        appender: {"append"},
        trimmer: {"trim"},
        fencer: {"append", "fence"},
    }
    for secret, ok in allowed.items():
        async with sdk(url, secret) as client:
            stream = client.basin(basin).stream("s")
            for name, batch in batches.items():
                if name in ok:
                    await stream.append(batch)
                    continue
                with pytest.raises(ServerError) as exc:
                    await stream.append(batch)
                assert code_of(exc) == (403, "permission_denied"), (name, ok)


async def test_revoking_its_own_token_answers_then_stops_it(url: str) -> None:
    async with sdk(url, ROOT) as root:
        token_id = unique("self")
        scope = AccessTokenScope(
            access_tokens=ExactMatch(token_id), ops=(Operation.REVOKE_ACCESS_TOKEN,)
        )
        secret = await root.issue_access_token(token_id, scope)
    async with sdk(url, secret) as client:
        await client.revoke_access_token(token_id)
        with pytest.raises(ServerError) as exc:
            await client.revoke_access_token(token_id)
        assert code_of(exc) == (401, "authn")


async def test_secrets_never_reach_the_log(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    basin = unique("basin")
    async with sdk(url, ROOT) as root:
        await root.create_basin(basin)
        scope = AccessTokenScope(basins=ExactMatch(basin), ops=(Operation.GET_BASIN_CONFIG,))
        secret = await root.issue_access_token(unique("tok"), scope)
        async with sdk(url, secret) as client:
            await client.get_basin_config(basin)
            with pytest.raises(ServerError):
                await client.list_basins()
    # s2kit's own loggers (what `s2kit lite --log-level debug` prints): hpack's debug lines
    # quote decoded headers, but lite's log configuration never routes them anywhere.
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("s2kit"))
    assert text  # s2kit's debug lines were captured
    assert secret not in text
    assert ROOT not in text
    assert secret[6:20] not in text


def test_lite_without_auth_has_no_token_api() -> None:
    # Without --auth the token API stays a 501 stub and tokens are ignored (as s2-lite).
    from s2kit.testing import run_lite

    async def check(url: str) -> None:
        async with sdk(url, "anything") as client:
            await client.list_basins()
            with pytest.raises(ServerError) as exc:
                await client.list_access_tokens()
            assert code_of(exc) == (501, "not_implemented")

    with run_lite() as endpoint:
        assert endpoint.env["S2_ACCESS_TOKEN"] == "ignored"
        asyncio.run(check(endpoint.url))
    with run_lite(auth=True, root_token=ROOT) as endpoint:
        assert endpoint.env["S2_ACCESS_TOKEN"] == ROOT


def test_generated_root_token() -> None:
    from s2kit.testing import run_lite

    with run_lite(auth=True) as first, run_lite(auth=True) as second:
        tokens = first.env["S2_ACCESS_TOKEN"], second.env["S2_ACCESS_TOKEN"]
        assert tokens[0] != tokens[1]
        assert all(t.startswith("s2kit_") for t in tokens)

        async def check() -> None:
            async with sdk(first.url, tokens[0]) as ok, sdk(first.url, tokens[1]) as wrong:
                await ok.list_basins()
                with pytest.raises(ServerError) as exc:
                    await wrong.list_basins()
                assert code_of(exc) == (401, "authn")

        asyncio.run(check())


def test_root_token_must_be_strong() -> None:
    from s2kit.server import Lite, LiteConfig

    for weak in ("short", "has spaces in it, long enough", "ünïcode-but-long-enough"):
        with pytest.raises(ValueError, match="root token"):
            Lite(LiteConfig(auth=True, root_token=weak))
