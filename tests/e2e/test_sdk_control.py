"""The SDK's control plane against lite: every method of ``S2`` and ``Basin``, async."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

import s2kit
from conftest import unique
from s2kit import (
    BasinConfig,
    BasinReconfiguration,
    EncryptionAlgorithm,
    ProvisionResult,
    StorageClass,
    StreamConfig,
    StreamReconfiguration,
    Timestamping,
    TimestampingMode,
    TimestampingReconfiguration,
)
from s2kit.errors import ServerError
from s2kit.types import (
    AccessTokenScope,
    BasinState,
    ExactMatch,
    Operation,
    PermittedOperationGroups,
    PrefixMatch,
    ReadWritePermissions,
)


@pytest.fixture
def lite_overrides() -> dict[str, object]:
    # Deleted resources stay visible long enough to assert "deletion pending" on a slow machine.
    return {"deletion_grace": 30.0}


RESOLVED_DEFAULTS = StreamConfig(
    storage_class=StorageClass.EXPRESS,
    retention_policy=7 * 24 * 3600,
    timestamping=Timestamping(mode=TimestampingMode.CLIENT_PREFER, uncapped=False),
    delete_on_empty_min_age_secs=0,
)


def assert_code(exc: pytest.ExceptionInfo[ServerError], status: int, code: str) -> None:
    assert (exc.value.status, exc.value.code) == (status, code), str(exc.value)


async def create_many(s2: s2kit.S2, names: list[str]) -> None:
    gate = asyncio.Semaphore(64)

    async def one(name: str) -> None:
        async with gate:
            await s2.create_basin(name)

    async with asyncio.TaskGroup() as tg:
        for name in names:
            tg.create_task(one(name))


# --- basins -----------------------------------------------------------------------------------


async def test_create_basin_returns_info_and_rejects_a_duplicate(s2: s2kit.S2) -> None:
    name = unique("create")
    before = datetime.now(UTC) - timedelta(seconds=5)
    info = await s2.create_basin(name)
    assert info.name == name
    assert before <= info.created_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert info.deleted_at is None
    assert info.state is BasinState.ACTIVE

    with pytest.raises(ServerError) as exc:
        await s2.create_basin(name)
    assert_code(exc, 409, "resource_already_exists")
    assert not exc.value.is_retryable
    assert exc.value.has_no_side_effects


async def test_create_basin_with_config_and_get_it_back(s2: s2kit.S2) -> None:
    name = unique("config")
    config = BasinConfig(
        default_stream_config=StreamConfig(
            storage_class=StorageClass.STANDARD,
            retention_policy="infinite",
            timestamping=Timestamping(mode=TimestampingMode.ARRIVAL),
        ),
        stream_cipher=EncryptionAlgorithm.AES_256_GCM,
        create_stream_on_append=True,
        create_stream_on_read=False,
    )
    await s2.create_basin(name, config)
    assert await s2.get_basin_config(name) == config
    # Streams inherit the defaults and the cipher.
    info = await s2.basin(name).create_stream("child")
    assert info.cipher is EncryptionAlgorithm.AES_256_GCM
    resolved = await s2.basin(name).get_stream_config("child")
    assert resolved.storage_class is StorageClass.STANDARD
    assert resolved.retention_policy == "infinite"
    assert resolved.timestamping == Timestamping(mode=TimestampingMode.ARRIVAL, uncapped=False)


async def test_invalid_basin_name_is_a_server_error(s2: s2kit.S2) -> None:
    with pytest.raises(ServerError) as exc:
        await s2.create_basin("Not_A_Valid_Name")
    assert exc.value.status in (400, 422)
    assert not exc.value.is_retryable


async def test_reconfigure_basin_changes_only_the_given_fields(s2: s2kit.S2) -> None:
    name = unique("reconf")
    await s2.create_basin(name, BasinConfig(create_stream_on_read=True))
    new = await s2.reconfigure_basin(
        name,
        BasinReconfiguration(
            create_stream_on_append=True,
            default_stream_config=StreamReconfiguration(retention_policy=3600),
        ),
    )
    assert new.create_stream_on_append is True
    assert new.create_stream_on_read is True  # untouched
    assert new.default_stream_config == StreamConfig(retention_policy=3600)
    assert await s2.get_basin_config(name) == new

    cleared = await s2.reconfigure_basin(name, BasinReconfiguration(default_stream_config=None))
    assert cleared.default_stream_config is None

    with pytest.raises(ServerError) as exc:
        await s2.reconfigure_basin(
            unique("missing"), BasinReconfiguration(create_stream_on_read=True)
        )
    assert_code(exc, 404, "basin_not_found")


async def test_ensure_basin_reports_created_updated_and_noop(s2: s2kit.S2) -> None:
    name = unique("ensure")
    info, result = await s2.ensure_basin(name)
    assert (info.name, result) == (name, ProvisionResult.CREATED)

    config = BasinConfig(create_stream_on_append=True)
    _, result = await s2.ensure_basin(name, config)
    assert result is ProvisionResult.UPDATED
    _, result = await s2.ensure_basin(name, config)
    assert result is ProvisionResult.NOOP
    assert await s2.get_basin_config(name) == config
    # Ensure replaces the whole config: anything not given reverts to the default.
    _, result = await s2.ensure_basin(name, BasinConfig())
    assert result is ProvisionResult.UPDATED
    assert await s2.get_basin_config(name) == BasinConfig()


async def test_delete_basin_and_its_typed_errors(s2: s2kit.S2) -> None:
    name = unique("delete")
    await s2.create_basin(name)
    await s2.delete_basin(name)
    await s2.delete_basin(name)  # repeating on a deleting basin is accepted

    page = await s2.list_basins(prefix=name)
    assert [b.name for b in page.items] == [name]
    assert page.items[0].state is BasinState.DELETING
    assert page.items[0].deleted_at is not None

    for call in (
        lambda: s2.create_basin(name),
        lambda: s2.ensure_basin(name),
        lambda: s2.reconfigure_basin(name, BasinReconfiguration(create_stream_on_read=True)),
        lambda: s2.basin(name).create_stream("s"),
    ):
        with pytest.raises(ServerError) as exc:
            await call()
        assert_code(exc, 409, "basin_deletion_pending")

    missing = unique("missing")
    with pytest.raises(ServerError) as exc:
        await s2.get_basin_config(missing)
    assert_code(exc, 404, "basin_not_found")
    with pytest.raises(ServerError) as exc:
        await s2.delete_basin(missing)
    assert_code(exc, 404, "basin_not_found")
    await s2.delete_basin(missing, ignore_not_found=True)
    # ignore_not_found swallows only "not found".
    with pytest.raises(ServerError) as exc:
        await s2.delete_basin("Invalid_Name", ignore_not_found=True)
    assert exc.value.code != "basin_not_found"


async def test_list_basins_pages_with_prefix_start_after_and_limit(s2: s2kit.S2) -> None:
    names = [f"listing-{i:03d}" for i in range(5)]
    for name in reversed(names):
        await s2.create_basin(name)
    await s2.create_basin("other-basin")

    first = await s2.list_basins(prefix="listing-", limit=2)
    assert [b.name for b in first.items] == names[:2]
    assert first.has_more
    second = await s2.list_basins(prefix="listing-", start_after=names[1], limit=2)
    assert [b.name for b in second.items] == names[2:4]
    assert second.has_more
    last = await s2.list_basins(prefix="listing-", start_after=names[3], limit=2)
    assert [b.name for b in last.items] == names[4:]
    assert not last.has_more

    everything = await s2.list_basins()
    assert [b.name for b in everything.items] == sorted([*names, "other-basin"])
    assert not everything.has_more


async def test_iter_basins_follows_pages_past_the_first_thousand(s2: s2kit.S2) -> None:
    names = [f"paged-{i:05d}" for i in range(1003)]
    await create_many(s2, names)
    await s2.create_basin("zzz-not-paged")
    assert len((await s2.list_basins(prefix="paged-")).items) == 1000  # one page is not all
    seen = [b.name async for b in s2.iter_basins(prefix="paged-")]
    assert seen == names
    assert [b.name async for b in s2.iter_basins(prefix="nothing-here")] == []


# --- streams ----------------------------------------------------------------------------------


async def test_create_stream_and_get_its_resolved_config(basin: s2kit.Basin) -> None:
    info = await basin.create_stream("plain")
    assert info.name == "plain"
    assert info.deleted_at is None
    assert info.cipher is None
    assert await basin.get_stream_config("plain") == RESOLVED_DEFAULTS

    config = StreamConfig(
        storage_class=StorageClass.STANDARD,
        retention_policy="infinite",
        timestamping=Timestamping(mode=TimestampingMode.CLIENT_REQUIRE, uncapped=True),
        delete_on_empty_min_age_secs=60,
    )
    await basin.create_stream("configured", config)
    assert await basin.get_stream_config("configured") == config

    with pytest.raises(ServerError) as exc:
        await basin.create_stream("plain")
    assert_code(exc, 409, "resource_already_exists")


async def test_stream_calls_on_a_missing_basin_or_stream(s2: s2kit.S2, basin: s2kit.Basin) -> None:
    with pytest.raises(ServerError) as exc:
        await s2.basin(unique("missing")).create_stream("s")
    assert_code(exc, 404, "basin_not_found")
    with pytest.raises(ServerError) as exc:
        await basin.get_stream_config("nope")
    assert_code(exc, 404, "stream_not_found")
    with pytest.raises(ServerError) as exc:
        await basin.reconfigure_stream("nope", StreamReconfiguration(retention_policy=10))
    assert_code(exc, 404, "stream_not_found")


async def test_reconfigure_stream_keeps_unset_and_resets_none(basin: s2kit.Basin) -> None:
    await basin.create_stream("s", StreamConfig(storage_class=StorageClass.STANDARD))
    new = await basin.reconfigure_stream(
        "s",
        StreamReconfiguration(
            retention_policy="infinite",
            timestamping=TimestampingReconfiguration(mode=TimestampingMode.ARRIVAL),
        ),
    )
    assert new.storage_class is StorageClass.STANDARD  # UNSET keeps it
    assert new.retention_policy == "infinite"
    assert new.timestamping == Timestamping(mode=TimestampingMode.ARRIVAL, uncapped=False)
    assert await basin.get_stream_config("s") == new

    reset = await basin.reconfigure_stream(
        "s", StreamReconfiguration(storage_class=None, timestamping=None)
    )
    assert reset.storage_class is StorageClass.EXPRESS
    assert reset.timestamping == RESOLVED_DEFAULTS.timestamping
    assert reset.retention_policy == "infinite"

    with pytest.raises(ServerError) as exc:
        await basin.reconfigure_stream("s", StreamReconfiguration(retention_policy=0))
    assert_code(exc, 422, "invalid")


async def test_ensure_stream_reports_created_updated_and_noop(basin: s2kit.Basin) -> None:
    info, result = await basin.ensure_stream("ensured")
    assert (info.name, result) == ("ensured", ProvisionResult.CREATED)
    config = StreamConfig(retention_policy=120)
    _, result = await basin.ensure_stream("ensured", config)
    assert result is ProvisionResult.UPDATED
    _, result = await basin.ensure_stream("ensured", config)
    assert result is ProvisionResult.NOOP
    assert (await basin.get_stream_config("ensured")).retention_policy == 120


async def test_delete_stream_and_its_typed_errors(basin: s2kit.Basin) -> None:
    await basin.create_stream("doomed")
    await basin.delete_stream("doomed")
    await basin.delete_stream("doomed")  # repeat: accepted while deleting

    page = await basin.list_streams(prefix="doomed")
    assert [s.name for s in page.items] == ["doomed"]
    assert page.items[0].deleted_at is not None

    for call in (
        lambda: basin.get_stream_config("doomed"),
        lambda: basin.create_stream("doomed"),
        lambda: basin.reconfigure_stream("doomed", StreamReconfiguration(retention_policy=5)),
        lambda: basin.stream("doomed").check_tail(),
    ):
        with pytest.raises(ServerError) as exc:
            await call()
        assert_code(exc, 409, "stream_deletion_pending")

    with pytest.raises(ServerError) as exc:
        await basin.delete_stream("never-was")
    assert_code(exc, 404, "stream_not_found")
    await basin.delete_stream("never-was", ignore_not_found=True)


async def test_stream_names_with_reserved_characters_round_trip(basin: s2kit.Basin) -> None:
    name = "dir/sub dir/ü?x=1#frag%2F"
    info = await basin.create_stream(name)
    assert info.name == name
    assert (await basin.get_stream_config(name)) == RESOLVED_DEFAULTS
    assert [s.name for s in (await basin.list_streams(prefix="dir/")).items] == [name]
    stream = basin.stream(name)
    await stream.append(s2kit.AppendInput(records=(s2kit.Record(body=b"x"),)))
    assert (await stream.check_tail()).seq_num == 1
    await basin.delete_stream(name)


async def test_list_streams_pages_and_iter_streams_crosses_pages(basin: s2kit.Basin) -> None:
    names = [f"s-{i:05d}" for i in range(1002)]
    gate = asyncio.Semaphore(64)

    async def one(name: str) -> None:
        async with gate:
            await basin.create_stream(name)

    async with asyncio.TaskGroup() as tg:
        for name in names:
            tg.create_task(one(name))
    await basin.create_stream("t-outside")

    page = await basin.list_streams(prefix="s-", start_after=names[9], limit=3)
    assert [s.name for s in page.items] == names[10:13]
    assert page.has_more
    tail = await basin.list_streams(prefix="s-", start_after=names[-2])
    assert [s.name for s in tail.items] == names[-1:]
    assert not tail.has_more

    assert [s.name async for s in basin.iter_streams(prefix="s-")] == names
    assert len([s async for s in basin.iter_streams()]) == len(names) + 1


def test_handles_make_no_requests_and_have_readable_reprs() -> None:
    client = s2kit.S2("token", endpoints=s2kit.Endpoints.for_url("http://127.0.0.1:9"))
    basin = client.basin("some-basin")
    stream = basin.stream("a/b")
    assert (basin.name, repr(basin)) == ("some-basin", "Basin('some-basin')")
    assert (stream.basin, stream.name) == ("some-basin", "a/b")
    assert repr(stream) == "Stream('some-basin', 'a/b')"
    asyncio.run(client.aclose())


# --- access tokens (lite without --auth validates, then answers 501; tests/auth has --auth) ----


async def test_access_token_calls_are_not_implemented_without_auth(s2: s2kit.S2) -> None:
    scope = AccessTokenScope(
        basins=PrefixMatch(""),
        streams=ExactMatch("s"),
        op_groups=PermittedOperationGroups(stream=ReadWritePermissions(read=True)),
        ops=(Operation.LIST_BASINS,),
    )
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: s2.issue_access_token("token-1", scope),
        lambda: s2.issue_access_token(
            "token-2", scope, expires_at=datetime.now(UTC) + timedelta(days=1)
        ),
        lambda: s2.list_access_tokens(prefix="tok", start_after="a", limit=5),
        lambda: s2.revoke_access_token("token-1"),
    ]
    for call in calls:
        with pytest.raises(ServerError) as exc:
            await call()
        assert_code(exc, 501, "not_implemented")
        assert not exc.value.is_retryable
