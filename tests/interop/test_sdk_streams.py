"""The official Python SDK manages streams on lite: CRUD, ensure, pagination and typed errors.

Runs over h2c and TLS (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import s2_sdk
from s2_sdk import (
    AppendInput,
    BasinConfig,
    EnsureStatus,
    Record,
    S2ServerError,
    SeqNum,
    StreamConfig,
    Timestamping,
    TimestampingMode,
)

from .conftest import unique_basin

DEFAULT_RESOLVED = StreamConfig(
    storage_class="express",
    retention_policy=7 * 24 * 3600,
    timestamping=Timestamping(mode=TimestampingMode.CLIENT_PREFER, uncapped=False),
    delete_on_empty_min_age=0,
)


async def create_many(basin: s2_sdk.S2Basin, names: list[str]) -> None:
    limit = asyncio.Semaphore(50)

    async def one(name: str) -> None:
        async with limit:
            await basin.create_stream(name)

    await asyncio.gather(*(one(name) for name in names))


async def test_create_get_reconfigure_delete(basin: s2_sdk.S2Basin) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    info = await basin.create_stream(
        "orders",
        config=StreamConfig(
            storage_class="standard",
            timestamping=Timestamping(mode=TimestampingMode.ARRIVAL),
        ),
    )

    assert (info.name, info.deleted_at, info.cipher) == ("orders", None, None)
    assert before <= info.created_at <= datetime.now(UTC) + timedelta(seconds=5)
    # The stored config is fully resolved against the system defaults.
    assert await basin.get_stream_config("orders") == StreamConfig(
        storage_class="standard",
        retention_policy=7 * 24 * 3600,
        timestamping=Timestamping(mode=TimestampingMode.ARRIVAL, uncapped=False),
        delete_on_empty_min_age=0,
    )

    updated = await basin.reconfigure_stream(
        "orders",
        config=StreamConfig(
            retention_policy="infinite",
            timestamping=Timestamping(uncapped=True),
            delete_on_empty_min_age=120,
        ),
    )
    assert updated == StreamConfig(
        storage_class="standard",
        retention_policy="infinite",
        timestamping=Timestamping(mode=TimestampingMode.ARRIVAL, uncapped=True),
        delete_on_empty_min_age=120,
    )
    assert await basin.get_stream_config("orders") == updated

    await basin.delete_stream("orders")

    page = await basin.list_streams(prefix="orders")
    assert [s.name for s in page.items] == ["orders"]
    assert page.items[0].deleted_at is not None
    assert [s.name async for s in basin.list_all_streams()] == []
    assert [s.name async for s in basin.list_all_streams(include_deleted=True)] == ["orders"]


async def test_new_stream_inherits_basin_defaults(s2: s2_sdk.S2) -> None:
    name = unique_basin()
    await s2.create_basin(
        name,
        config=BasinConfig(
            default_stream_config=StreamConfig(
                storage_class="standard",
                retention_policy=3600,
                timestamping=Timestamping(mode=TimestampingMode.CLIENT_REQUIRE),
            )
        ),
    )
    basin = s2.basin(name)
    await basin.create_stream("inherits")
    await basin.create_stream("overrides", config=StreamConfig(retention_policy="infinite"))

    assert await basin.get_stream_config("inherits") == StreamConfig(
        storage_class="standard",
        retention_policy=3600,
        timestamping=Timestamping(mode=TimestampingMode.CLIENT_REQUIRE, uncapped=False),
        delete_on_empty_min_age=0,
    )
    overrides = await basin.get_stream_config("overrides")
    assert (overrides.retention_policy, overrides.storage_class) == ("infinite", "standard")


async def test_names_needing_percent_encoding_round_trip(basin: s2_sdk.S2Basin) -> None:
    names = ["a/b/c", "with space", "ünïcødé ✓", "q?x=1&y#frag", "%41", "..."]
    for name in names:
        await basin.create_stream(name)
        await basin.stream(name).append(AppendInput(records=[Record(body=name.encode())]))

    listed = [s.name async for s in basin.list_all_streams()]
    assert listed == sorted(names, key=lambda n: n.encode())
    for name in names:
        batch = await basin.stream(name).read(start=SeqNum(0))
        assert [r.body for r in batch.records] == [name.encode()]
        assert await basin.get_stream_config(name) == DEFAULT_RESOLVED


async def test_create_existing_stream_is_resource_already_exists(basin: s2_sdk.S2Basin) -> None:
    await basin.create_stream("dup")

    with pytest.raises(S2ServerError) as caught:
        await basin.create_stream("dup")

    assert (caught.value.status_code, caught.value.code) == (409, "resource_already_exists")
    assert "dup" in caught.value.message


async def test_unknown_stream_is_stream_not_found(basin: s2_sdk.S2Basin) -> None:
    stream = basin.stream("nope")
    calls = [
        basin.get_stream_config("nope"),
        basin.delete_stream("nope"),
        basin.reconfigure_stream("nope", config=StreamConfig(storage_class="standard")),
        stream.check_tail(),
        stream.append(AppendInput(records=[Record(body=b"x")])),
        stream.read(start=SeqNum(0)),
    ]
    for call in calls:
        with pytest.raises(S2ServerError) as caught:
            await call
        assert (caught.value.status_code, caught.value.code) == (404, "stream_not_found")

    await basin.delete_stream("nope", ignore_not_found=True)
    assert (await basin.list_streams()).items == []


async def test_stream_in_unknown_basin(s2: s2_sdk.S2) -> None:
    basin = s2.basin(unique_basin("missing"))

    stream = basin.stream("s")
    calls = [
        basin.create_stream("s"),
        stream.append(AppendInput(records=[Record(body=b"x")])),
        stream.read(start=SeqNum(0)),
        stream.check_tail(),
    ]
    for call in calls:
        with pytest.raises(S2ServerError) as caught:
            await call
        assert (caught.value.status_code, caught.value.code) == (404, "basin_not_found")
    assert (await basin.list_streams()).items == []  # lite: an empty page, not a 404


async def test_deleted_stream_is_deletion_pending(basin: s2_sdk.S2Basin) -> None:
    await basin.create_stream("doomed")
    stream = basin.stream("doomed")
    await stream.append(AppendInput(records=[Record(body=b"x")]))
    await basin.delete_stream("doomed")

    calls = [
        basin.create_stream("doomed"),
        basin.get_stream_config("doomed"),
        basin.reconfigure_stream("doomed", config=StreamConfig(storage_class="standard")),
        basin.ensure_stream("doomed"),
        stream.check_tail(),
        stream.append(AppendInput(records=[Record(body=b"y")])),
        stream.read(start=SeqNum(0)),
    ]
    for call in calls:
        with pytest.raises(S2ServerError) as caught:
            await call
        assert (caught.value.status_code, caught.value.code) == (409, "stream_deletion_pending")

    await basin.delete_stream("doomed")  # a repeated delete is accepted


async def test_ensure_reports_provision_result(basin: s2_sdk.S2Basin) -> None:
    config = StreamConfig(storage_class="standard", retention_policy=600)

    first = await basin.ensure_stream("e", config=config)
    again = await basin.ensure_stream("e", config=config)
    changed = await basin.ensure_stream(
        "e", config=StreamConfig(timestamping=Timestamping(mode=TimestampingMode.ARRIVAL))
    )
    defaults = await basin.ensure_stream("e")
    same_as_defaults = await basin.ensure_stream("e", config=DEFAULT_RESOLVED)

    assert first.status is EnsureStatus.CREATED
    assert again.status is EnsureStatus.CONFIG_UNCHANGED
    assert changed.status is EnsureStatus.CONFIG_UPDATED
    assert defaults.status is EnsureStatus.CONFIG_UPDATED
    assert same_as_defaults.status is EnsureStatus.CONFIG_UNCHANGED
    for ensured in (first, again, changed, defaults, same_as_defaults):
        assert (ensured.stream.name, ensured.stream.deleted_at) == ("e", None)
        assert ensured.stream.created_at == first.stream.created_at
    assert await basin.get_stream_config("e") == DEFAULT_RESOLVED


async def test_ensure_replaces_the_whole_config(basin: s2_sdk.S2Basin) -> None:
    await basin.create_stream("r", config=StreamConfig(storage_class="standard"))

    ensured = await basin.ensure_stream(
        "r", config=StreamConfig(timestamping=Timestamping(mode=TimestampingMode.ARRIVAL))
    )

    assert ensured.status is EnsureStatus.CONFIG_UPDATED
    got = await basin.get_stream_config("r")
    assert got.storage_class == "express"
    assert got.timestamping == Timestamping(mode=TimestampingMode.ARRIVAL, uncapped=False)


async def test_list_pages_with_prefix_start_after_and_limit(basin: s2_sdk.S2Basin) -> None:
    names = [f"logs/{i:02d}" for i in range(17)]
    await create_many(basin, [*reversed(names), "logs", "logz/0", "metrics/0"])

    pages: list[list[str]] = []
    more: list[bool] = []
    cursor = ""
    while True:
        page = await basin.list_streams(prefix="logs/", start_after=cursor, limit=5)
        pages.append([s.name for s in page.items])
        more.append(page.has_more)
        if not page.has_more:
            break
        cursor = page.items[-1].name

    assert pages == [names[0:5], names[5:10], names[10:15], names[15:]]
    assert more == [True, True, True, False]
    everything = [s.name for s in (await basin.list_streams()).items]
    assert everything == ["logs", *names, "logz/0", "metrics/0"]
    after = await basin.list_streams(prefix="log", start_after="logs/16", limit=1)
    assert ([s.name for s in after.items], after.has_more) == (["logz/0"], False)
    none = await basin.list_streams(prefix="zzz")
    assert (none.items, none.has_more) == ([], False)


async def test_list_all_streams_crosses_the_1000_item_page(basin: s2_sdk.S2Basin) -> None:
    names = [f"s-{i:04d}" for i in range(1004)]
    await create_many(basin, names)
    await basin.delete_stream(names[500])

    first = await basin.list_streams()
    listed = [s.name async for s in basin.list_all_streams()]
    with_deleted = [s.name async for s in basin.list_all_streams(include_deleted=True)]
    after = [s.name async for s in basin.list_all_streams(start_after=names[998])]

    assert (len(first.items), first.has_more) == (1000, True)
    assert listed == names[:500] + names[501:]
    assert with_deleted == names
    assert after == names[999:]


async def test_auto_create_on_append_and_read(s2: s2_sdk.S2) -> None:
    name = unique_basin("auto")
    config = BasinConfig(create_stream_on_append=True, create_stream_on_read=True)
    await s2.create_basin(name, config=config)
    basin = s2.basin(name)

    ack = await basin.stream("by-append").append(AppendInput(records=[Record(body=b"x")]))
    async with basin.stream("by-session").append_session() as session:
        session_ack = await (await session.submit(AppendInput(records=[Record(body=b"y")])))
    tail = await basin.stream("by-check-tail").check_tail()
    with pytest.raises(s2_sdk.ReadUnwrittenError):
        await basin.stream("by-read").read(start=SeqNum(0))  # created, then empty: 416

    assert (ack.end.seq_num, session_ack.end.seq_num) == (1, 1)
    assert (tail.seq_num, tail.timestamp) == (0, 0)
    listed = [s.name async for s in basin.list_all_streams()]
    assert listed == ["by-append", "by-check-tail", "by-read", "by-session"]
    assert await basin.get_stream_config("by-append") == DEFAULT_RESOLVED


async def test_no_auto_create_without_the_flags(basin: s2_sdk.S2Basin) -> None:
    with pytest.raises(S2ServerError) as caught:
        async with basin.stream("ghost").append_session() as session:
            await (await session.submit(AppendInput(records=[Record(body=b"x")])))

    assert (caught.value.status_code, caught.value.code) == (404, "stream_not_found")
    assert (await basin.list_streams()).items == []


async def test_stream_config_header_applies_to_auto_created_streams(s2: s2_sdk.S2) -> None:
    name = unique_basin("autocfg")
    await s2.create_basin(name, config=BasinConfig(create_stream_on_append=True))
    basin = s2.basin(name)

    await basin.stream("configured").append(
        AppendInput(records=[Record(body=b"x")], stream_config=StreamConfig(retention_policy=3600))
    )

    assert (await basin.get_stream_config("configured")).retention_policy == 3600
