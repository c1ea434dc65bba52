"""The official Python SDK manages basins on lite: CRUD, ensure, pagination and typed errors.

Runs over h2c and TLS (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import s2_sdk
from s2_sdk import (
    BasinConfig,
    EnsureStatus,
    S2ServerError,
    StreamConfig,
    Timestamping,
    TimestampingMode,
)

from .conftest import unique_basin


async def create_many(s2: s2_sdk.S2, names: list[str]) -> None:
    limit = asyncio.Semaphore(50)  # stay well under the server's concurrent-stream limit

    async def one(name: str) -> None:
        async with limit:
            await s2.create_basin(name)

    await asyncio.gather(*(one(name) for name in names))


async def test_create_get_reconfigure_delete(s2: s2_sdk.S2) -> None:
    name = unique_basin()
    config = BasinConfig(
        default_stream_config=StreamConfig(
            storage_class="standard",
            retention_policy=3600,
            timestamping=Timestamping(mode=TimestampingMode.CLIENT_REQUIRE, uncapped=True),
        ),
        create_stream_on_append=True,
        create_stream_on_read=False,
    )
    before = datetime.now(UTC) - timedelta(seconds=5)

    info = await s2.create_basin(name, config=config)

    assert info.name == name
    assert info.deleted_at is None
    assert info.location is None
    assert before <= info.created_at <= datetime.now(UTC) + timedelta(seconds=5)
    got = await s2.get_basin_config(name)
    assert got.default_stream_config == StreamConfig(
        storage_class="standard",
        retention_policy=3600,
        timestamping=Timestamping(mode=TimestampingMode.CLIENT_REQUIRE, uncapped=True),
        delete_on_empty_min_age=None,
    )
    assert got.stream_cipher is None
    assert (got.create_stream_on_append, got.create_stream_on_read) == (True, False)

    # PATCH changes only what it names; nested default stream config merges field by field.
    updated = await s2.reconfigure_basin(
        name,
        config=BasinConfig(
            default_stream_config=StreamConfig(retention_policy="infinite"),
            create_stream_on_read=True,
        ),
    )
    assert updated.default_stream_config is not None
    assert updated.default_stream_config.retention_policy == "infinite"
    assert updated.default_stream_config.storage_class == "standard"
    assert updated.default_stream_config.timestamping == Timestamping(
        mode=TimestampingMode.CLIENT_REQUIRE, uncapped=True
    )
    assert (updated.create_stream_on_append, updated.create_stream_on_read) == (True, True)
    assert await s2.get_basin_config(name) == updated

    await s2.delete_basin(name)

    page = await s2.list_basins(prefix=name)
    assert [b.name for b in page.items] == [name]
    deleted_at = page.items[0].deleted_at
    assert deleted_at is not None
    assert deleted_at >= info.created_at
    assert [b.name async for b in s2.list_all_basins(prefix=name)] == []
    listed = [b async for b in s2.list_all_basins(prefix=name, include_deleted=True)]
    assert [(b.name, b.deleted_at) for b in listed] == [(name, deleted_at)]


async def test_create_existing_basin_is_resource_already_exists(s2: s2_sdk.S2) -> None:
    name = unique_basin()
    await s2.create_basin(name)

    with pytest.raises(S2ServerError) as caught:
        await s2.create_basin(name)

    assert (caught.value.status_code, caught.value.code) == (409, "resource_already_exists")
    assert name in caught.value.message


async def test_unknown_basin_is_basin_not_found(s2: s2_sdk.S2) -> None:
    name = unique_basin("missing")
    calls = [
        s2.get_basin_config(name),
        s2.delete_basin(name),
        s2.reconfigure_basin(name, config=BasinConfig(create_stream_on_append=True)),
    ]
    for call in calls:
        with pytest.raises(S2ServerError) as caught:
            await call
        assert (caught.value.status_code, caught.value.code) == (404, "basin_not_found")

    await s2.delete_basin(name, ignore_not_found=True)  # the SDK swallows exactly the 404
    assert (await s2.list_basins(prefix=name)).items == []


async def test_deleting_basin_rejects_changes_with_deletion_pending(s2: s2_sdk.S2) -> None:
    name = unique_basin()
    await s2.create_basin(name)
    await s2.basin(name).create_stream("inside")
    await s2.delete_basin(name)

    calls = [
        s2.create_basin(name),
        s2.ensure_basin(name),
        s2.reconfigure_basin(name, config=BasinConfig(create_stream_on_read=True)),
        s2.basin(name).create_stream("another"),
    ]
    for call in calls:
        with pytest.raises(S2ServerError) as caught:
            await call
        assert (caught.value.status_code, caught.value.code) == (409, "basin_deletion_pending")

    await s2.delete_basin(name)  # deleting again is accepted
    assert (await s2.get_basin_config(name)) == BasinConfig(
        create_stream_on_append=False, create_stream_on_read=False
    )


async def test_ensure_reports_provision_result(s2: s2_sdk.S2) -> None:
    name = unique_basin()
    config = BasinConfig(
        default_stream_config=StreamConfig(storage_class="standard"),
        create_stream_on_append=True,
    )

    first = await s2.ensure_basin(name, config=config)
    again = await s2.ensure_basin(name, config=config)
    changed = await s2.ensure_basin(name, config=BasinConfig(create_stream_on_read=True))
    bare = await s2.ensure_basin(name)  # no body at all: resets to the defaults

    assert first.status is EnsureStatus.CREATED
    assert again.status is EnsureStatus.CONFIG_UNCHANGED
    assert changed.status is EnsureStatus.CONFIG_UPDATED
    assert bare.status is EnsureStatus.CONFIG_UPDATED
    for ensured in (first, again, changed, bare):
        assert ensured.basin.name == name
        assert ensured.basin.created_at == first.basin.created_at
        assert ensured.basin.deleted_at is None
    assert await s2.get_basin_config(name) == BasinConfig(
        create_stream_on_append=False, create_stream_on_read=False
    )
    assert (await s2.ensure_basin(name)).status is EnsureStatus.CONFIG_UNCHANGED


async def test_ensure_replaces_the_whole_config(s2: s2_sdk.S2) -> None:
    name = unique_basin()
    await s2.create_basin(
        name,
        config=BasinConfig(
            default_stream_config=StreamConfig(storage_class="standard", retention_policy=60),
            create_stream_on_append=True,
        ),
    )

    ensured = await s2.ensure_basin(name, config=BasinConfig(create_stream_on_read=True))

    assert ensured.status is EnsureStatus.CONFIG_UPDATED
    assert await s2.get_basin_config(name) == BasinConfig(
        default_stream_config=None, create_stream_on_append=False, create_stream_on_read=True
    )


async def test_list_pages_with_prefix_start_after_and_limit(s2: s2_sdk.S2) -> None:
    prefix = unique_basin("pages")
    names = [f"{prefix}-{i:02d}" for i in range(23)]
    await create_many(s2, [*reversed(names), unique_basin("pagez"), unique_basin("other")])

    pages: list[list[str]] = []
    more: list[bool] = []
    cursor = ""
    while True:
        page = await s2.list_basins(prefix=prefix, start_after=cursor, limit=10)
        pages.append([b.name for b in page.items])
        more.append(page.has_more)
        if not page.has_more:
            break
        cursor = page.items[-1].name

    assert pages == [names[:10], names[10:20], names[20:]]
    assert more == [True, True, False]
    mid = await s2.list_basins(prefix=prefix, start_after=names[4], limit=3)
    assert ([b.name for b in mid.items], mid.has_more) == (names[5:8], True)
    tail = await s2.list_basins(prefix=prefix, start_after=names[-1])
    assert (tail.items, tail.has_more) == ([], False)
    exact = await s2.list_basins(prefix=prefix, limit=23)
    assert ([b.name for b in exact.items], exact.has_more) == (names, False)


async def test_list_all_basins_crosses_the_1000_item_page(s2: s2_sdk.S2) -> None:
    prefix = unique_basin("many")
    names = [f"{prefix}-{i:04d}" for i in range(1003)]
    await create_many(s2, names)

    first = await s2.list_basins(prefix=prefix)
    listed = [b.name async for b in s2.list_all_basins(prefix=prefix)]
    after = [b.name async for b in s2.list_all_basins(prefix=prefix, start_after=names[996])]

    assert (len(first.items), first.has_more) == (1000, True)
    assert listed == names
    assert after == names[997:]
    everything = [b.name async for b in s2.list_all_basins()]
    assert everything == sorted(everything)
    assert set(names) <= set(everything)


async def test_endpoints_lite_does_not_implement(s2: s2_sdk.S2) -> None:
    calls = [
        s2.list_locations(),
        s2.get_default_location(),
        s2.list_access_tokens(),
        s2.revoke_access_token("some-token"),
    ]  # metrics are served: tests/metrics/test_clients.py reads them with this SDK
    for call in calls:
        with pytest.raises(S2ServerError) as caught:
            await call
        assert (caught.value.status_code, caught.value.code) == (501, "not_implemented")
