"""Control plane, basins (docs/protocol.md#account), over HTTP/1.1 (and h2c where parametrized)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from _client import BASIN, assert_error, client, create_basin, create_stream, eventually

if TYPE_CHECKING:
    import httpx

    from s2kit.server import Lite

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
DEFAULT_BASIN_CONFIG = (
    b'{"default_stream_config":null,"stream_cipher":null,'
    b'"create_stream_on_append":false,"create_stream_on_read":false}'
)


def _check_info(info: dict[str, Any], name: str, *, deleting: bool = False) -> None:
    # BasinInfo key order and shapes (docs/protocol.md#resources).
    assert list(info) == ["name", "location", "created_at", "deleted_at", "state"]
    assert info["name"] == name
    assert info["location"] is None
    assert RFC3339.fullmatch(info["created_at"])
    if deleting:
        assert RFC3339.fullmatch(info["deleted_at"])
        assert info["state"] == "deleting"
    else:
        assert info["deleted_at"] is None
        assert info["state"] == "active"


async def _config(c: httpx.AsyncClient, name: str = BASIN) -> dict[str, Any]:
    resp = await c.get(f"/v1/basins/{name}")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def _post(
    c: httpx.AsyncClient, config: dict[str, Any] | None, token: str | None
) -> httpx.Response:
    body: dict[str, Any] = {"basin": BASIN}
    if config is not None:
        body["config"] = config
    headers = {} if token is None else {"s2-request-token": token}
    return await c.post("/v1/basins", json=body, headers=headers)


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2c"])
async def test_create_basin_idempotency_with_request_token(lite: Lite, http2: bool) -> None:
    cfg = {"create_stream_on_append": True}
    async with client(lite, http2=http2) as c:
        first = await _post(c, cfg, "tok-1")
        assert first.status_code == 201
        assert first.headers["s2-provision-result"] == "created"
        assert first.headers["content-type"] == "application/json"
        _check_info(first.json(), BASIN)

        again = await _post(c, cfg, "tok-1")
        assert again.status_code == 201
        assert again.headers["s2-provision-result"] == "noop"
        assert again.json()["created_at"] == first.json()["created_at"]

        other_token = await _post(c, cfg, "tok-2")
        assert_error(other_token, 409, "resource_already_exists", f"basin `{BASIN}` already exists")
        other_config = await _post(c, {"create_stream_on_read": True}, "tok-1")
        assert_error(other_config, 409, "resource_already_exists")
        no_token = await _post(c, cfg, None)
        assert_error(no_token, 409, "resource_already_exists")


async def test_idempotent_replay_survives_ensure(lite: Lite) -> None:
    cfg = {"default_stream_config": {"storage_class": "standard"}}
    async with client(lite) as c:
        assert (await _post(c, cfg, "tok")).headers["s2-provision-result"] == "created"
        ensured = await c.put(
            f"/v1/basins/{BASIN}", json={"config": {"create_stream_on_read": True}}
        )
        assert ensured.status_code == 200
        assert ensured.headers["s2-provision-result"] == "updated"
        replay = await _post(c, cfg, "tok")
        assert replay.status_code == 201
        assert replay.headers["s2-provision-result"] == "noop"
        # The replay does not undo the ensure.
        assert (await _config(c))["create_stream_on_read"] is True


async def test_ensure_updates_existing_basin(lite: Lite) -> None:
    async with client(lite) as c:
        await create_basin(c)
        cfg = {
            "create_stream_on_append": True,
            "create_stream_on_read": True,
            "default_stream_config": {"storage_class": "standard"},
        }
        resp = await c.put(f"/v1/basins/{BASIN}", json={"config": cfg})
        assert resp.status_code == 200
        assert resp.headers["s2-provision-result"] == "updated"
        _check_info(resp.json(), BASIN)
        got = await _config(c)
        assert got["create_stream_on_append"] is True
        assert got["create_stream_on_read"] is True
        assert got["default_stream_config"]["storage_class"] == "standard"
        assert_error(await _post(c, None, None), 409, "resource_already_exists")


async def test_ensure_creates_then_resets_unspecified_fields(lite: Lite) -> None:
    # Also PUT creating a missing basin (201 created) and PUT without a body.
    full = {
        "create_stream_on_append": True,
        "default_stream_config": {"storage_class": "standard", "retention_policy": {"age": 3600}},
    }
    async with client(lite) as c:
        created = await c.put(f"/v1/basins/{BASIN}", json={"config": full})
        assert created.status_code == 201
        assert created.headers["s2-provision-result"] == "created"
        _check_info(created.json(), BASIN)
        resp = await c.put(f"/v1/basins/{BASIN}", json={"config": {"create_stream_on_read": True}})
        assert resp.headers["s2-provision-result"] == "updated"
        got = await _config(c)
        assert got["create_stream_on_append"] is False
        assert got["create_stream_on_read"] is True
        assert got["default_stream_config"] is None
        # No body at all = default config.
        bare = await c.put(f"/v1/basins/{BASIN}")
        assert bare.status_code == 200
        assert bare.headers["s2-provision-result"] == "updated"
        raw = await c.get(f"/v1/basins/{BASIN}")
        assert raw.content == DEFAULT_BASIN_CONFIG


async def test_ensure_identical_config_is_noop_and_keeps_explicit_zero(lite: Lite) -> None:
    cfg = {"default_stream_config": {"delete_on_empty": {"min_age_secs": 0}}}
    async with client(lite) as c:
        first = await c.put(f"/v1/basins/{BASIN}", json={"config": cfg})
        assert first.headers["s2-provision-result"] == "created"
        again = await c.put(f"/v1/basins/{BASIN}", json={"config": cfg})
        assert again.status_code == 200
        assert again.headers["s2-provision-result"] == "noop"
        raw = await c.get(f"/v1/basins/{BASIN}")
        assert raw.content == (
            b'{"default_stream_config":{"storage_class":null,"retention_policy":null,'
            b'"timestamping":null,"delete_on_empty":{"min_age_secs":0}},"stream_cipher":null,'
            b'"create_stream_on_append":false,"create_stream_on_read":false}'
        )


async def test_reconfigure_basin_nested_defaults_and_flags(lite: Lite) -> None:
    async with client(lite) as c:
        await create_basin(c, config={"default_stream_config": {"retention_policy": {"age": 60}}})
        patch = {
            "default_stream_config": {
                "storage_class": "standard",
                "retention_policy": {"infinite": {}},
                "timestamping": {"mode": "client-require"},
            },
            "create_stream_on_append": True,
            "create_stream_on_read": True,
        }
        resp = await c.patch(f"/v1/basins/{BASIN}", json=patch)
        assert resp.status_code == 200
        expected = {
            "default_stream_config": {
                "storage_class": "standard",
                "retention_policy": {"infinite": {}},
                "timestamping": {"mode": "client-require", "uncapped": None},
                "delete_on_empty": None,
            },
            "stream_cipher": None,
            "create_stream_on_append": True,
            "create_stream_on_read": True,
        }
        assert resp.json() == expected
        assert await _config(c) == expected
        # Absent fields are kept; null resets.
        resp = await c.patch(
            f"/v1/basins/{BASIN}", json={"default_stream_config": {"storage_class": None}}
        )
        assert resp.json()["default_stream_config"]["storage_class"] is None
        assert resp.json()["default_stream_config"]["retention_policy"] == {"infinite": {}}
        assert resp.json()["create_stream_on_append"] is True
        resp = await c.patch(f"/v1/basins/{BASIN}", json={"default_stream_config": None})
        assert resp.json()["default_stream_config"] is None


async def _listed(c: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    resp = await c.get("/v1/basins", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert list(body) == ["basins", "has_more"]
    return body  # type: ignore[no-any-return]


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2c"])
async def test_delete_basin_lifecycle(lite: Lite, http2: bool) -> None:
    # Then the background job finishes and the name is reusable.
    async with client(lite, http2=http2) as c:
        await create_basin(c)
        await create_stream(c, "s")
        resp = await c.delete(f"/v1/basins/{BASIN}")
        assert resp.status_code == 202
        assert resp.content == b""
        (info,) = (await _listed(c))["basins"]
        _check_info(info, BASIN, deleting=True)
        # GET config still answers while deleting.
        assert (await c.get(f"/v1/basins/{BASIN}")).status_code == 200
        msg = f"basin `{BASIN}` is being deleted"
        patch = await c.patch(f"/v1/basins/{BASIN}", json={"create_stream_on_read": True})
        assert_error(patch, 409, "basin_deletion_pending", msg)
        assert_error(await _post(c, None, None), 409, "basin_deletion_pending", msg)
        put = await c.put(f"/v1/basins/{BASIN}")
        assert_error(put, 409, "basin_deletion_pending", msg)
        assert (await c.delete(f"/v1/basins/{BASIN}")).status_code == 202

        async def gone() -> bool:
            return (await _listed(c))["basins"] == []

        await eventually(gone, what="basin deletion")
        assert_error(await c.get(f"/v1/basins/{BASIN}"), 404, "basin_not_found")
        await create_basin(c)
        # Its streams went with it.
        listed = await c.get("/v1/streams", headers={"s2-basin": BASIN})
        assert listed.json() == {"streams": [], "has_more": False}


async def test_unknown_basin_get_and_delete(lite: Lite) -> None:
    async with client(lite) as c:
        msg = "basin `no-such-basin` not found"
        assert_error(await c.get("/v1/basins/no-such-basin"), 404, "basin_not_found", msg)
        assert_error(await c.delete("/v1/basins/no-such-basin"), 404, "basin_not_found", msg)
        patch = await c.patch("/v1/basins/no-such-basin", json={})
        assert_error(patch, 404, "basin_not_found", msg)


async def test_list_basins_sorted_paged_and_filtered(lite: Lite) -> None:
    async with client(lite) as c:
        assert await _listed(c) == {"basins": [], "has_more": False}
        names = [f"basin-{i:02d}" for i in range(15)]
        for name in reversed(names):
            await create_basin(c, name)
        await create_basin(c, "other-basin")
        page = await _listed(c, limit=5)
        assert [b["name"] for b in page["basins"]] == names[:5]
        for b in page["basins"]:
            _check_info(b, b["name"])

        seen: list[str] = []
        flags: list[bool] = []
        cursor = ""
        while True:
            page = await _listed(c, prefix="basin-", start_after=cursor, limit=5)
            seen += [b["name"] for b in page["basins"]]
            flags.append(page["has_more"])
            if not page["has_more"]:
                break
            cursor = seen[-1]
        assert seen == names
        assert flags == [True, True, False]

        everything = await _listed(c)
        assert [b["name"] for b in everything["basins"]] == [*names, "other-basin"]
        assert everything["has_more"] is False
        assert [b["name"] for b in (await _listed(c, prefix="other"))["basins"]] == ["other-basin"]
        assert [b["name"] for b in (await _listed(c, prefix="basin-1"))["basins"]] == names[10:]
        tail_page = await _listed(c, prefix="basin-", start_after="basin-12", limit=2)
        assert [b["name"] for b in tail_page["basins"]] == ["basin-13", "basin-14"]
        assert tail_page["has_more"] is False
        # limit=0 is treated as the maximum.
        assert len((await _listed(c, limit=0))["basins"]) == 16
