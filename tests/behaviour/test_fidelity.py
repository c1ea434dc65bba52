"""Where lite used to differ from s2-lite (review findings 4–8), each pinned to s2-lite's
behaviour (docs/lite-behaviour.md): delete-on-empty deadlines, ``delete_on_empty: {}`` in a
PATCH, error precedence around basins, basin deletion reaching streams in the background, and
the AES-256-GCM bound exempting command records.

Timing-sensitive tests either run lite's background pass by hand (a one-hour pass interval
turns the automatic one off) or leave several seconds between "still there" and the deadline.
"""

from __future__ import annotations

import base64
import contextlib
import struct
import time
from typing import TYPE_CHECKING, Any

import pytest
from _client import (
    BASIN,
    JSON,
    KEY,
    append,
    assert_error,
    client,
    create_basin,
    create_stream,
    eventually,
    read,
)

from conftest import quick_config
from s2kit import S2, Endpoints, Retry
from s2kit.server import Lite
from s2kit.types import UNSET, StreamPosition, StreamReconfiguration, TimestampingReconfiguration

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import httpx

NO_JOBS: dict[str, Any] = {"background_interval": 3600.0}
"""Background passes only when a test calls ``tick``."""


@contextlib.asynccontextmanager
async def running(**overrides: Any) -> AsyncIterator[Lite]:
    """Lite with the shared quick settings and ``overrides``."""
    async with Lite(quick_config(**overrides)) as lite:
        yield lite


async def _config(c: httpx.AsyncClient, stream: str) -> dict[str, Any]:
    resp = await c.get(f"/v1/streams/{stream}")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def _exists(c: httpx.AsyncClient, stream: str) -> bool:
    resp = await c.get(f"/v1/streams/{stream}")
    return resp.status_code == 200


def _trim_all() -> dict[str, Any]:
    body = base64.b64encode(struct.pack(">Q", 2**64 - 1)).decode()
    return {"headers": [["", base64.b64encode(b"trim").decode()]], "body": body}


# --- finding 4: delete-on-empty deadlines -----------------------------------------------------
#
# ``tick(now)`` runs one background pass as if the monotonic clock read ``now``: the tests
# move time forward instead of sleeping through deadlines.


async def test_delete_on_empty_waits_past_min_age(lite: Lite) -> None:
    # s2-lite's first check comes retention age + min_age + 600 s after creation, so a stream
    # created with a 3 s min age is still there, and writable, 5 s later.
    async with client(lite, basin=BASIN) as c:
        await create_basin(c)
        await create_stream(c, "s", {"delete_on_empty": {"min_age_secs": 3}})
        lite.backend.tick(time.monotonic() + 5)
        resp = await append(c, "s", [{"body": "late"}])
        assert resp.status_code == 200, resp.text
        assert (await _config(c, "s"))["delete_on_empty"] == {"min_age_secs": 3}
        # The record expires after the default 7 days; the checks come 3 + 600 s after that.
        lite.backend.tick(time.monotonic() + 604_800 + 3 + 599)
        assert await _exists(c, "s")
        lite.backend.tick(time.monotonic() + 604_800 + 3 + 601)
        assert_error(await c.get("/v1/streams/s"), 409, "stream_deletion_pending")


async def test_delete_on_empty_deadline_counts_retention_min_age_and_grace() -> None:
    async with (
        running(delete_on_empty_grace=2.0, **NO_JOBS) as lite,
        client(lite, basin=BASIN) as c,
    ):
        await create_basin(c)
        cfg = {"retention_policy": {"age": 2}, "delete_on_empty": {"min_age_secs": 1}}
        await create_stream(c, "idle", cfg)
        await create_stream(c, "written", cfg)
        created = time.monotonic()
        assert (await append(c, "written", [{"body": "x"}])).status_code == 200
        # Creation and the write each armed a check due 2 (age) + 1 (min age) + 2 (grace) on.
        timers = lite.backend.catalog.existing_stream(BASIN, "written").doe_timers
        assert [(t.delay, t.min_age) for t in timers] == [(3, 1), (3, 1)]
        # A second write within the refresh period (the grace) arms nothing more.
        assert (await append(c, "written", [{"body": "y"}])).status_code == 200
        assert len(timers) == 2
        lite.backend.tick(created + 4.5)
        assert await _exists(c, "idle")
        assert await _exists(c, "written")
        lite.backend.tick(time.monotonic() + 5.5)
        assert_error(await c.get("/v1/streams/idle"), 409, "stream_deletion_pending")
        assert_error(await c.get("/v1/streams/written"), 409, "stream_deletion_pending")


async def test_a_check_spares_a_stream_written_within_min_age() -> None:
    # Each check runs once when due and deletes only a stream whose last write is at least
    # min_age before the check's deadline. Checks are set directly: a write that late would
    # otherwise take real waiting.
    from s2kit.server._catalog import DoeTimer

    async with (
        running(delete_on_empty_grace=1.0, **NO_JOBS) as lite,
        client(lite, basin=BASIN) as c,
    ):
        await create_basin(c)
        await create_stream(c, "s", {"delete_on_empty": {"min_age_secs": 50}})
        meta = lite.backend.catalog.existing_stream(BASIN, "s")
        past = time.time() - 100
        # Due 98 s ago, but the stream was created (its first write) since: not deleted.
        meta.doe_timers = [DoeTimer(past, 1, 50)]
        lite.backend.tick(time.monotonic())
        assert meta.doe_timers == []
        assert await _exists(c, "s")
        # Due in 61 s, when the stream was last written more than min_age before: deleted.
        meta.doe_timers = [DoeTimer(time.time(), 60, 50)]
        lite.backend.tick(time.monotonic() + 62)
        assert_error(await c.get("/v1/streams/s"), 409, "stream_deletion_pending")


async def test_delete_on_empty_after_a_trim_empties_an_infinite_stream() -> None:
    # Writes to an infinite-retention stream arm nothing; the creation check finds records,
    # and only the trim that empties the stream arms the check that deletes it.
    async with (
        running(delete_on_empty_grace=1.0, **NO_JOBS) as lite,
        client(lite, basin=BASIN) as c,
    ):
        await create_basin(c)
        cfg = {"retention_policy": {"infinite": {}}, "delete_on_empty": {"min_age_secs": 1}}
        await create_stream(c, "s", cfg)
        assert (await append(c, "s", [{"body": "kept"}])).status_code == 200
        lite.backend.tick(time.monotonic() + 2.5)  # the creation check finds a record
        assert await _exists(c, "s")
        assert lite.backend.catalog.existing_stream(BASIN, "s").doe_timers == []
        trimmed = await c.post(
            "/v1/streams/s/records",
            json={"records": [_trim_all()]},
            headers={**JSON, "s2-format": "base64"},
        )
        assert trimmed.status_code == 200, trimmed.text
        emptied = time.monotonic()
        lite.backend.tick(emptied)  # trims, sees the stream empty, arms min_age + grace
        lite.backend.tick(emptied + 1.5)
        assert await _exists(c, "s")
        lite.backend.tick(time.monotonic() + 2.5)
        assert_error(await c.get("/v1/streams/s"), 409, "stream_deletion_pending")


async def test_turning_delete_on_empty_off_drops_armed_checks() -> None:
    async with (
        running(delete_on_empty_grace=1.0, **NO_JOBS) as lite,
        client(lite, basin=BASIN) as c,
    ):
        await create_basin(c)
        await create_stream(c, "s", {"delete_on_empty": {"min_age_secs": 1}})
        off = await c.patch("/v1/streams/s", json={"delete_on_empty": {"min_age_secs": 0}})
        assert off.status_code == 200, off.text
        assert lite.backend.catalog.existing_stream(BASIN, "s").doe_timers == []
        other = await c.patch("/v1/streams/s", json={"retention_policy": {"infinite": {}}})
        assert other.status_code == 200, other.text
        lite.backend.tick(time.monotonic() + 10**7)
        assert await _exists(c, "s")
        # Turning it on again arms a check from now: min age + grace (infinite retention).
        on = await c.patch("/v1/streams/s", json={"delete_on_empty": {"min_age_secs": 1}})
        assert on.status_code == 200, on.text
        lite.backend.tick(time.monotonic() + 2.5)
        assert_error(await c.get("/v1/streams/s"), 409, "stream_deletion_pending")


async def test_delete_on_empty_checks_survive_a_restart(tmp_path: Path) -> None:
    data_dir = str(tmp_path)
    cfg = {"retention_policy": {"age": 1}, "delete_on_empty": {"min_age_secs": 1}}
    async with (
        running(data_dir=data_dir, delete_on_empty_grace=1.0, **NO_JOBS) as lite,
        client(lite, basin=BASIN) as c,
    ):
        await create_basin(c)
        await create_stream(c, "empties", cfg)
        await create_stream(c, "stays")
        assert (await append(c, "empties", [{"body": "x"}])).status_code == 200
        armed = list(lite.backend.catalog.existing_stream(BASIN, "empties").doe_timers)
        assert len(armed) == 2  # creation and the write
    async with (
        running(data_dir=data_dir, delete_on_empty_grace=1.0, **NO_JOBS) as lite,
        client(lite, basin=BASIN) as c,
    ):
        assert lite.backend.catalog.existing_stream(BASIN, "empties").doe_timers == armed
        lite.backend.tick(time.monotonic() + 3.5)
        listed = (await c.get("/v1/streams")).json()["streams"]
        assert [(s["name"], s["deleted_at"] is None) for s in listed] == [
            ("empties", False),
            ("stays", True),
        ]


# --- finding 5: `delete_on_empty: {}` in a PATCH ----------------------------------------------


async def test_reconfigure_stream_empty_delete_on_empty_keeps_min_age(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await create_basin(
            c, config={"default_stream_config": {"delete_on_empty": {"min_age_secs": 60}}}
        )
        await create_stream(c, "s", {"delete_on_empty": {"min_age_secs": 30}})
        steps: list[tuple[dict[str, Any], int]] = [
            ({"delete_on_empty": {}}, 30),  # present, field absent: unchanged
            ({}, 30),
            ({"delete_on_empty": {"min_age_secs": None}}, 60),  # null: the basin default
            ({"delete_on_empty": {"min_age_secs": 5}}, 5),
            ({"delete_on_empty": {}, "storage_class": "standard"}, 5),
            ({"delete_on_empty": None}, 60),
        ]
        for body, expected in steps:
            resp = await c.patch("/v1/streams/s", json=body)
            assert resp.status_code == 200, (body, resp.text)
            assert resp.json()["delete_on_empty"] == {"min_age_secs": expected}, body
            assert (await _config(c, "s"))["delete_on_empty"] == {"min_age_secs": expected}


async def test_reconfigure_basin_empty_delete_on_empty_keeps_default(lite: Lite) -> None:
    async with client(lite) as c:
        await create_basin(
            c, config={"default_stream_config": {"delete_on_empty": {"min_age_secs": 30}}}
        )

        async def patch(dsc: Any) -> Any:
            resp = await c.patch(f"/v1/basins/{BASIN}", json={"default_stream_config": dsc})
            assert resp.status_code == 200, resp.text
            got = (await c.get(f"/v1/basins/{BASIN}")).json()
            assert got == resp.json()
            dsc_out = got["default_stream_config"]
            return None if dsc_out is None else dsc_out["delete_on_empty"]

        assert await patch({"delete_on_empty": {}}) == {"min_age_secs": 30}
        assert await patch({}) == {"min_age_secs": 30}
        assert await patch({"delete_on_empty": {"min_age_secs": None}}) is None
        assert await patch({"delete_on_empty": {"min_age_secs": 30}}) == {"min_age_secs": 30}
        assert await patch({"delete_on_empty": None}) is None


async def test_reconfigure_delete_on_empty_bad_min_age_is_bad_json(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await create_basin(c)
        await create_stream(c, "s")
        for bad in ("5", -1, 2**64, 1.5, [], True):
            resp = await c.patch("/v1/streams/s", json={"delete_on_empty": {"min_age_secs": bad}})
            assert_error(resp, 400, "bad_json")
        resp = await c.patch("/v1/streams/s", json={"delete_on_empty": []})
        assert_error(resp, 400, "bad_json")


async def test_sdk_reconfiguration_keeps_its_meaning(lite: Lite) -> None:
    # The SDK omits unchanged fields and sends {"min_age_secs": null} for a reset.
    async with S2(
        "ignored", endpoints=Endpoints.for_url(lite.url), retry=Retry(max_attempts=1)
    ) as s2:
        await s2.ensure_basin(BASIN)
        basin = s2.basin(BASIN)
        await basin.create_stream("s")
        cfg = await basin.reconfigure_stream(
            "s", StreamReconfiguration(delete_on_empty_min_age_secs=45)
        )
        assert cfg.delete_on_empty_min_age_secs == 45
        change = StreamReconfiguration(timestamping=TimestampingReconfiguration(uncapped=True))
        assert change.delete_on_empty_min_age_secs is UNSET
        cfg = await basin.reconfigure_stream("s", change)
        assert cfg.delete_on_empty_min_age_secs == 45
        cfg = await basin.reconfigure_stream(
            "s", StreamReconfiguration(delete_on_empty_min_age_secs=None)
        )
        assert cfg.delete_on_empty_min_age_secs == 0


# --- finding 6: error precedence around basins ------------------------------------------------


async def test_auto_create_in_a_deleting_basin_is_basin_deletion_pending() -> None:
    msg = f"basin `{BASIN}` is being deleted"
    flags = {"create_stream_on_append": True, "create_stream_on_read": True}
    async with running(deletion_grace=3600.0) as lite, client(lite, basin=BASIN) as c:
        await create_basin(c, config=flags)
        assert (await c.delete(f"/v1/basins/{BASIN}")).status_code == 202
        assert_error(await append(c, "new", [{"body": "x"}]), 409, "basin_deletion_pending", msg)
        assert_error(await read(c, "new", seq_num=0), 409, "basin_deletion_pending", msg)
        tail = await c.get("/v1/streams/new/records/tail")
        assert_error(tail, 409, "basin_deletion_pending", msg)
        listed = await c.get("/v1/streams")
        assert listed.json() == {"streams": [], "has_more": False}
        # Without the flag a missing stream is still just missing.
        other = "test-basin-2"
        await create_basin(c, other)
        assert (await c.delete(f"/v1/basins/{other}")).status_code == 202
        missing = await append(c, "new", [{"body": "x"}], basin=other)
        assert_error(missing, 404, "stream_not_found")


async def test_reconfigure_stream_checks_the_basin_first() -> None:
    msg = f"basin `{BASIN}` is being deleted"
    async with (
        running(deletion_grace=3600.0, **NO_JOBS) as lite,
        client(lite, basin=BASIN) as c,
    ):
        patch = {"storage_class": "standard"}
        resp = await c.patch("/v1/streams/s", json=patch, headers={"s2-basin": "no-such-basin"})
        assert_error(resp, 404, "basin_not_found", "basin `no-such-basin` not found")
        await create_basin(c)
        await create_stream(c, "s")
        await create_stream(c, "gone")
        assert (await c.delete("/v1/streams/gone")).status_code == 202
        assert_error(await c.patch("/v1/streams/gone", json=patch), 409, "stream_deletion_pending")
        assert_error(await c.patch("/v1/streams/missing", json=patch), 404, "stream_not_found")
        assert (await c.delete(f"/v1/basins/{BASIN}")).status_code == 202
        for name in ("s", "gone", "missing"):
            resp = await c.patch(f"/v1/streams/{name}", json=patch)
            assert_error(resp, 409, "basin_deletion_pending", msg)
        lite.backend.tick(time.monotonic())  # the job reaches the streams: same answer
        assert_error(await c.patch("/v1/streams/s", json=patch), 409, "basin_deletion_pending")


# --- finding 7: basin deletion reaches streams in the background ------------------------------


async def test_basin_deletion_reaches_streams_in_the_background() -> None:
    async with (
        running(deletion_grace=0.2, **NO_JOBS) as lite,
        client(lite, basin=BASIN) as c,
    ):
        await create_basin(c)
        await create_stream(c, "s")
        assert (await append(c, "s", [{"body": "a"}])).status_code == 200
        assert (await c.delete(f"/v1/basins/{BASIN}")).status_code == 202

        # Until the job runs, the basin is deleting but its streams are not.
        assert (await append(c, "s", [{"body": "b"}])).status_code == 200
        got = await read(c, "s", seq_num=0)
        assert [r["body"] for r in got.json()["records"]] == ["a", "b"]
        assert (await c.get("/v1/streams/s")).status_code == 200
        (info,) = (await c.get("/v1/streams")).json()["streams"]
        assert info["deleted_at"] is None
        assert_error(
            await c.post("/v1/streams", json={"stream": "t"}), 409, "basin_deletion_pending"
        )

        lite.backend.tick(time.monotonic())
        (info,) = (await c.get("/v1/streams")).json()["streams"]
        assert info["deleted_at"] is not None
        for resp in (
            await append(c, "s", [{"body": "c"}]),
            await read(c, "s", seq_num=0),
            await c.get("/v1/streams/s"),
            await c.get("/v1/streams/s/records/tail"),
        ):
            assert_error(resp, 409, "stream_deletion_pending")

        # Then the end state is as before: the streams and the basin are gone.
        async def gone() -> bool:
            lite.backend.tick(time.monotonic())
            return (await c.get("/v1/basins")).json()["basins"] == []

        await eventually(gone, what="the basin deletion to finish")
        assert_error(await c.get(f"/v1/basins/{BASIN}"), 404, "basin_not_found")
        await create_basin(c)
        assert (await c.get("/v1/streams")).json() == {"streams": [], "has_more": False}


# --- finding 8: the AES-256-GCM bound counts sealed records only ------------------------------


async def test_aes_gcm_limit_exempts_command_records(lite: Lite) -> None:
    limit = 2**32 - 1
    headers = {"s2-encryption-key": KEY}
    fence = {"headers": [["", "fence"]], "body": "t"}
    async with client(lite, basin=BASIN) as c:
        await create_basin(c, config={"stream_cipher": "aes-256-gcm"})
        await create_stream(c, "s")
        # Appending 2^32 records is out of reach: put the stream's owner at the bound instead.
        owner = lite.backend.owner(lite.backend.catalog.existing_stream(BASIN, "s"))
        owner.tail = StreamPosition(limit, 0)
        owner.next_seq = limit

        resp = await append(c, "s", [{"body": "last"}, fence], headers=headers)
        assert resp.status_code == 200, resp.text
        assert (resp.json()["start"]["seq_num"], resp.json()["end"]["seq_num"]) == (
            limit,
            limit + 2,
        )
        trim = {"headers": [["", "trim"]], "body": "\0" * 8}
        resp = await append(c, "s", [trim, fence], headers=headers)
        assert resp.status_code == 200, resp.text
        assert resp.json()["end"]["seq_num"] == limit + 4

        expected = f"max assignable sequence number is {limit}; attempted {limit + 4}"
        resp = await append(c, "s", [{"body": "over"}], headers=headers)
        assert_error(resp, 422, "invalid", expected)
        over = [fence, {"body": "over"}, {"body": "more"}]
        resp = await append(c, "s", over, headers=headers)  # names the first one past
        assert_error(
            resp,
            422,
            "invalid",
            f"max assignable sequence number is {limit}; attempted {limit + 5}",
        )
        assert (await c.get("/v1/streams/s/records/tail")).json()["tail"]["seq_num"] == limit + 4


@pytest.mark.parametrize("cipher", ["aegis-256", None])
async def test_other_streams_have_no_seq_num_bound(lite: Lite, cipher: str | None) -> None:
    async with client(lite, basin=BASIN) as c:
        await create_basin(c, config={"stream_cipher": cipher})
        await create_stream(c, "s")
        owner = lite.backend.owner(lite.backend.catalog.existing_stream(BASIN, "s"))
        owner.tail = StreamPosition(2**32, 0)
        owner.next_seq = 2**32
        resp = await append(c, "s", [{"body": "fine"}], headers={"s2-encryption-key": KEY})
        assert resp.status_code == 200, resp.text
