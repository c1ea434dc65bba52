"""Control plane, streams, over HTTP/1.1 (and h2c where parametrized).

The endpoints are in docs/protocol.md#streams-control-plane.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from _client import (
    BASIN,
    KEY,
    append,
    assert_error,
    client,
    create_basin,
    create_stream,
    eventually,
    read,
)

if TYPE_CHECKING:
    import httpx

    from s2kit.server import Lite

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
SYSTEM_DEFAULT = (
    b'{"storage_class":"express","retention_policy":{"age":604800},'
    b'"timestamping":{"mode":"client-prefer","uncapped":false},'
    b'"delete_on_empty":{"min_age_secs":0}}'
)
PENDING = "stream deletion pending"


async def _config(c: httpx.AsyncClient, name: str) -> dict[str, Any]:
    resp = await c.get(f"/v1/streams/{name}")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def _post(
    c: httpx.AsyncClient, name: str, config: dict[str, Any] | None, token: str | None
) -> httpx.Response:
    body: dict[str, Any] = {"stream": name}
    if config is not None:
        body["config"] = config
    headers = {} if token is None else {"s2-request-token": token}
    return await c.post("/v1/streams", json=body, headers=headers)


async def _patch_basin(c: httpx.AsyncClient, patch: dict[str, Any]) -> None:
    resp = await c.patch(f"/v1/basins/{BASIN}", json=patch)
    assert resp.status_code == 200, resp.text


def _check_info(info: dict[str, Any], name: str, cipher: str | None = None) -> None:
    assert list(info) == ["name", "created_at", "deleted_at", "cipher"]
    assert info["name"] == name
    assert RFC3339.fullmatch(info["created_at"])
    assert info["deleted_at"] is None
    assert info["cipher"] == cipher


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2c"])
async def test_new_stream_config_is_fully_resolved(lite: Lite, http2: bool) -> None:
    # All four fields populated, in order, compact (docs/protocol.md#how-configs-are-stored).
    async with client(lite, http2=http2, basin=BASIN) as c:
        await create_basin(c)
        resp = await _post(c, "plain", None, None)
        assert resp.status_code == 201
        assert resp.headers["s2-provision-result"] == "created"
        _check_info(resp.json(), "plain")
        raw = await c.get("/v1/streams/plain")
        assert raw.headers["content-type"] == "application/json"
        assert raw.content == SYSTEM_DEFAULT


async def test_new_stream_inherits_basin_defaults(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        defaults = {
            "storage_class": "standard",
            "retention_policy": {"age": 3600},
            "timestamping": {"mode": "arrival"},
        }
        await create_basin(c, config={"default_stream_config": defaults})
        await create_stream(c, "s")
        raw = await c.get("/v1/streams/s")
        assert raw.content == (
            b'{"storage_class":"standard","retention_policy":{"age":3600},'
            b'"timestamping":{"mode":"arrival","uncapped":false},'
            b'"delete_on_empty":{"min_age_secs":0}}'
        )
        # A stream-level value beats the basin default.
        await create_stream(c, "t", {"storage_class": "express"})
        cfg = await _config(c, "t")
        assert cfg["storage_class"] == "express"
        assert cfg["retention_policy"] == {"age": 3600}


async def test_stream_cipher_copied_from_basin_at_creation(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await create_basin(c)
        _check_info((await _post(c, "none", None, None)).json(), "none", None)
        await _patch_basin(c, {"stream_cipher": "aegis-256"})
        _check_info((await _post(c, "aegis", None, None)).json(), "aegis", "aegis-256")
        await _patch_basin(c, {"stream_cipher": "aes-256-gcm"})
        _check_info((await _post(c, "gcm", None, None)).json(), "gcm", "aes-256-gcm")
        listed = (await c.get("/v1/streams")).json()["streams"]
        assert {s["name"]: s["cipher"] for s in listed} == {
            "aegis": "aegis-256",
            "gcm": "aes-256-gcm",
            "none": None,
        }


async def test_unknown_stream_config(lite: Lite) -> None:
    # Lite does not check the basin for this one.
    async with client(lite, basin=BASIN) as c:
        await create_basin(c)
        resp = await c.get("/v1/streams/nope")
        assert_error(resp, 404, "stream_not_found", f"stream `nope` in basin `{BASIN}` not found")
        other = await c.get("/v1/streams/nope", headers={"s2-basin": "missing-basin"})
        assert_error(other, 404, "stream_not_found")


async def test_create_stream_idempotency_with_request_token(lite: Lite) -> None:
    cfg = {"storage_class": "standard", "retention_policy": {"infinite": {}}}
    async with client(lite, basin=BASIN) as c:
        await create_basin(c)
        first = await _post(c, "s", cfg, "tok")
        assert first.headers["s2-provision-result"] == "created"
        again = await _post(c, "s", cfg, "tok")
        assert again.status_code == 201
        assert again.headers["s2-provision-result"] == "noop"
        assert again.json() == first.json()
        msg = f"stream `s` in basin `{BASIN}` already exists"
        assert_error(await _post(c, "s", cfg, "other"), 409, "resource_already_exists", msg)
        changed = await _post(c, "s", {"storage_class": "express"}, "tok")
        assert_error(changed, 409, "resource_already_exists", msg)
        assert_error(await _post(c, "s", cfg, None), 409, "resource_already_exists", msg)
        got = await _config(c, "s")
        assert got["storage_class"] == "standard"
        assert got["retention_policy"] == {"infinite": {}}


async def test_stream_idempotency_survives_ensure_which_resets_fields(lite: Lite) -> None:
    cfg = {"storage_class": "standard"}
    async with client(lite, basin=BASIN) as c:
        await create_basin(c)
        await _post(c, "s", cfg, "tok")
        ensured = await c.put("/v1/streams/s", json={"timestamping": {"mode": "arrival"}})
        assert ensured.status_code == 200
        assert ensured.headers["s2-provision-result"] == "updated"
        _check_info(ensured.json(), "s")
        got = await _config(c, "s")
        assert got["storage_class"] == "express"
        assert got["timestamping"] == {"mode": "arrival", "uncapped": False}
        replay = await _post(c, "s", cfg, "tok")
        assert replay.status_code == 201
        assert replay.headers["s2-provision-result"] == "noop"


async def test_ensure_stream_create_and_noop_on_merged_config(lite: Lite) -> None:
    # Also PUT creating a stream (201 created).
    async with client(lite, basin=BASIN) as c:
        await create_basin(c, config={"default_stream_config": {"storage_class": "standard"}})
        created = await c.put("/v1/streams/s")
        assert created.status_code == 201
        assert created.headers["s2-provision-result"] == "created"
        _check_info(created.json(), "s")
        for body in (None, {"storage_class": "standard"}, {"retention_policy": {"age": 604800}}):
            resp = await c.put("/v1/streams/s", json=body) if body else await c.put("/v1/streams/s")
            assert resp.status_code == 200
            assert resp.headers["s2-provision-result"] == "noop", body
        resp = await c.put("/v1/streams/s", json={"storage_class": "express"})
        assert resp.headers["s2-provision-result"] == "updated"


async def test_explicit_zero_delete_on_empty_overrides_basin_default(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await create_basin(
            c, config={"default_stream_config": {"delete_on_empty": {"min_age_secs": 3600}}}
        )
        await create_stream(c, "inherits")
        assert (await _config(c, "inherits"))["delete_on_empty"] == {"min_age_secs": 3600}
        cfg = {"delete_on_empty": {"min_age_secs": 0}}
        await create_stream(c, "s", cfg)
        assert (await _config(c, "s"))["delete_on_empty"] == {"min_age_secs": 0}
        again = await c.put("/v1/streams/s", json=cfg)
        assert again.headers["s2-provision-result"] == "noop"


async def test_idempotent_create_after_basin_defaults_changed(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await create_basin(c)
        assert (await _post(c, "s", None, "tok")).headers["s2-provision-result"] == "created"
        await _patch_basin(c, {"default_stream_config": {"storage_class": "standard"}})
        replay = await _post(c, "s", None, "tok")
        assert replay.status_code == 201
        assert replay.headers["s2-provision-result"] == "noop"
        assert (await _config(c, "s"))["storage_class"] == "express"


async def test_reconfigure_stream_selected_fields(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await create_basin(c)
        await create_stream(c, "s")
        patch = {
            "storage_class": "standard",
            "retention_policy": {"age": 99},
            "timestamping": {"mode": "client-require", "uncapped": True},
        }
        resp = await c.patch("/v1/streams/s", json=patch)
        assert resp.status_code == 200
        assert resp.content == (
            b'{"storage_class":"standard","retention_policy":{"age":99},'
            b'"timestamping":{"mode":"client-require","uncapped":true},'
            b'"delete_on_empty":{"min_age_secs":0}}'
        )
        assert (await c.get("/v1/streams/s")).content == resp.content
        # Nested: only mode is reset, uncapped stays.
        resp = await c.patch("/v1/streams/s", json={"timestamping": {"mode": None}})
        assert resp.json()["timestamping"] == {"mode": "client-prefer", "uncapped": True}


async def test_reconfigure_nulls_reset_to_basin_defaults(lite: Lite) -> None:
    defaults = {
        "storage_class": "standard",
        "retention_policy": {"age": 7200},
        "timestamping": {"mode": "arrival", "uncapped": True},
        "delete_on_empty": {"min_age_secs": 30},
    }
    async with client(lite, basin=BASIN) as c:
        await create_basin(c, config={"default_stream_config": defaults})
        own = {
            "storage_class": "express",
            "retention_policy": {"infinite": {}},
            "timestamping": {"mode": "client-require", "uncapped": False},
            "delete_on_empty": {"min_age_secs": 5},
        }
        await create_stream(c, "s", own)
        assert await _config(c, "s") == own
        nulls = {
            "storage_class": None,
            "retention_policy": None,
            "timestamping": {"mode": None, "uncapped": None},
            "delete_on_empty": {"min_age_secs": None},
        }
        resp = await c.patch("/v1/streams/s", json=nulls)
        assert resp.status_code == 200
        assert resp.json() == defaults
        assert await _config(c, "s") == defaults


@pytest.mark.parametrize("how", ["reconfigure", "ensure"])
async def test_config_change_takes_effect_on_active_stream(lite: Lite, how: str) -> None:
    async with client(lite, basin=BASIN) as c:
        await create_basin(c)
        await create_stream(c, "s")
        assert (await append(c, "s", [{"body": "a"}])).status_code == 200
        change = {"timestamping": {"mode": "client-require"}}
        if how == "reconfigure":
            resp = await c.patch("/v1/streams/s", json=change)
        else:
            resp = await c.put("/v1/streams/s", json=change)
        assert resp.status_code == 200
        missing = await append(c, "s", [{"body": "b"}])
        assert_error(missing, 422, "invalid", "record timestamp was required but was missing")
        ok = await append(c, "s", [{"body": "c", "timestamp": 123}])
        assert ok.status_code == 200
        assert ok.json()["start"]["seq_num"] == 1


async def test_create_stream_in_deleting_basin(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await create_basin(c)
        assert (await c.delete(f"/v1/basins/{BASIN}")).status_code == 202
        resp = await _post(c, "s", None, None)
        assert_error(resp, 409, "basin_deletion_pending", f"basin `{BASIN}` is being deleted")
        assert_error(await c.put("/v1/streams/s"), 409, "basin_deletion_pending")


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2c"])
async def test_delete_stream_lifecycle(lite: Lite, http2: bool) -> None:
    # Then completion in the background and reuse of the name.
    async with client(lite, http2=http2, basin=BASIN) as c:
        await create_basin(c)
        await create_stream(c, "s")
        assert (await append(c, "s", [{"body": "x"}])).status_code == 200
        resp = await c.delete("/v1/streams/s")
        assert resp.status_code == 202
        assert resp.content == b""
        (info,) = (await c.get("/v1/streams")).json()["streams"]
        assert info["name"] == "s"
        assert RFC3339.fullmatch(info["deleted_at"])
        assert_error(await _post(c, "s", None, None), 409, "stream_deletion_pending", PENDING)
        patch = await c.patch("/v1/streams/s", json={"storage_class": "standard"})
        assert_error(patch, 409, "stream_deletion_pending", PENDING)
        assert_error(await c.put("/v1/streams/s"), 409, "stream_deletion_pending", PENDING)
        assert_error(await c.get("/v1/streams/s"), 409, "stream_deletion_pending", PENDING)
        check = await c.get("/v1/streams/s/records/tail")
        assert_error(check, 409, "stream_deletion_pending", PENDING)
        assert_error(await append(c, "s", [{"body": "y"}]), 409, "stream_deletion_pending")
        assert_error(await read(c, "s", seq_num=0), 409, "stream_deletion_pending")
        assert (await c.delete("/v1/streams/s")).status_code == 202

        async def gone() -> bool:
            return (await c.get("/v1/streams")).json()["streams"] == []

        await eventually(gone, what="stream deletion")
        assert_error(await c.get("/v1/streams/s"), 404, "stream_not_found")
        await create_stream(c, "s")
        tail = await c.get("/v1/streams/s/records/tail")
        assert tail.json() == {"tail": {"seq_num": 0, "timestamp": 0}}


async def test_delete_encrypted_stream(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await create_basin(c, config={"stream_cipher": "aegis-256"})
        await create_stream(c, "enc")
        ok = await append(c, "enc", [{"body": "secret"}], headers={"s2-encryption-key": KEY})
        assert ok.status_code == 200
        assert (await c.delete("/v1/streams/enc")).status_code == 202

        async def gone() -> bool:
            return (await c.get("/v1/streams/enc")).status_code == 404

        await eventually(gone, what="encrypted stream deletion")
        assert (await c.get("/v1/streams")).json() == {"streams": [], "has_more": False}


async def test_delete_unknown_stream(lite: Lite) -> None:
    async with client(lite, basin=BASIN) as c:
        await create_basin(c)
        resp = await c.delete("/v1/streams/nope")
        assert_error(resp, 404, "stream_not_found", f"stream `nope` in basin `{BASIN}` not found")


async def _names(c: httpx.AsyncClient, **params: Any) -> tuple[list[str], bool]:
    resp = await c.get("/v1/streams", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert list(body) == ["streams", "has_more"]
    return [s["name"] for s in body["streams"]], body["has_more"]


async def test_list_streams_sorted_paged_and_filtered(lite: Lite) -> None:
    # Names sort byte-wise, stream names may hold `/` (percent-encoded in paths).
    async with client(lite, basin=BASIN) as c:
        assert await _names(c) == ([], False)  # unknown basin lists nothing
        await create_basin(c)
        assert await _names(c) == ([], False)
        names = [f"log/{i:02d}" for i in range(12)]
        for name in reversed(names):
            await create_stream(c, name)
        await create_stream(c, "Zeta")
        await create_stream(c, "alpha")
        assert await _names(c, limit=5) == (["Zeta", "alpha", *names[:3]], True)
        pages: list[tuple[list[str], bool]] = []
        cursor = ""
        while True:
            page = await _names(c, prefix="log/", start_after=cursor, limit=5)
            pages.append(page)
            if not page[1]:
                break
            cursor = page[0][-1]
        assert pages == [(names[:5], True), (names[5:10], True), (names[10:], False)]
        assert await _names(c, prefix="log/1") == (names[10:], False)
        assert await _names(c, prefix="al") == (["alpha"], False)
        cfg = await c.get("/v1/streams/log%2F03")
        assert cfg.status_code == 200
