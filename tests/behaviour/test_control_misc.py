"""Control plane odds and ends: lite's 501 stubs, /health, routing (404/405), Host-based basin
routing and CORS (docs/protocol.md#transport)."""

from __future__ import annotations

import pytest
from _client import BASIN, JSON, append, assert_error, client, create_basin, create_stream, tail

from conftest import quick_config
from s2kit.server import Lite, LiteConfig

HTTP = [pytest.param(False, id="h1"), pytest.param(True, id="h2c")]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/access-tokens", None),
        ("GET", "/v1/access-tokens?prefix=a&limit=5", None),
        ("POST", "/v1/access-tokens", b'{"id":"t","scope":{"ops":["read"]}}'),
        ("DELETE", "/v1/access-tokens/some-token", None),
        ("GET", "/v1/locations", None),
        ("GET", "/v1/locations/default", None),
        ("PUT", "/v1/locations/default", b'"aws:us-east-1"'),
    ],
)
@pytest.mark.parametrize("http2", HTTP)
async def test_not_implemented_endpoints(
    lite: Lite, http2: bool, method: str, path: str, body: bytes | None
) -> None:
    async with client(lite, http2=http2) as c:
        headers = JSON if body is not None else {}
        resp = await c.request(method, path, content=body, headers=headers)
        assert_error(resp, 501, "not_implemented", "Not implemented")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/metrics?set=account-ops&start=0&end=60",
        f"/v1/metrics/{BASIN}?set=storage&start=0&end=3600",
        f"/v1/metrics/{BASIN}/some-stream?set=storage&start=0&end=60",
    ],
)
@pytest.mark.parametrize("http2", HTTP)
async def test_metrics_endpoints_are_served(lite: Lite, http2: bool, path: str) -> None:
    # The S2 metrics API is lite's own (tests/metrics has the figures); both HTTP versions.
    async with client(lite, http2=http2) as c:
        resp = await c.get(path)
        assert resp.status_code == 200, resp.text
        assert isinstance(resp.json()["values"], list)


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("POST", "/v1/access-tokens", b'{"id":', "bad_json"),
        ("PUT", "/v1/locations/default", b"{not json", "bad_json"),
        ("GET", "/v1/metrics", None, "bad_query"),
        ("GET", "/v1/metrics/BAD_BASIN?set=storage", None, "bad_path"),
    ],
)
async def test_not_implemented_endpoints_still_validate(
    lite: Lite, method: str, path: str, body: bytes | None, code: str
) -> None:
    # Lite parses the request before answering 501, so bad requests get 400s.
    async with client(lite) as c:
        headers = JSON if body is not None else {}
        resp = await c.request(method, path, content=body, headers=headers)
        assert_error(resp, 400, code)
        await c.get("/health")


@pytest.mark.parametrize("http2", HTTP)
@pytest.mark.parametrize("path", ["/health", "/ping"])
async def test_health(lite: Lite, http2: bool, path: str) -> None:
    async with client(lite, http2=http2) as c:
        resp = await c.get(path)
        assert resp.status_code == 200
        assert resp.text == "OK"
        head = await c.head(path)
        assert head.status_code == 200
        assert head.content == b""


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/nope"),
        ("GET", "/v2/basins"),
        ("GET", "/v1"),
        ("GET", "/v1/nothing"),
        ("GET", f"/v1/basins/{BASIN}/extra"),
        ("GET", "/v1/streams/s/records/other"),
        ("GET", "/v1/streams/s/other"),
    ],
)
@pytest.mark.parametrize("http2", HTTP)
async def test_unknown_path_is_404(lite: Lite, http2: bool, method: str, path: str) -> None:
    async with client(lite, http2=http2, basin=BASIN) as c:
        resp = await c.request(method, path)
        assert resp.status_code == 404
        assert resp.content == b""


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/v1/basins"),
        ("PUT", "/v1/basins"),
        ("POST", f"/v1/basins/{BASIN}"),
        ("PATCH", "/v1/streams"),
        ("POST", "/v1/streams/s"),
        ("PUT", "/v1/streams/s/records"),
        ("DELETE", "/v1/streams/s/records"),
        ("POST", "/v1/streams/s/records/tail"),
        ("POST", "/health"),
        ("DELETE", "/ping"),
    ],
)
async def test_wrong_method_is_405(lite: Lite, method: str, path: str) -> None:
    async with client(lite, basin=BASIN) as c:
        resp = await c.request(method, path)
        assert resp.status_code == 405
        assert resp.content == b""


@pytest.mark.parametrize("http2", HTTP)
async def test_host_subdomain_routing(lite: Lite, http2: bool) -> None:
    # `{basin}.zone` as the Host selects the basin when `s2-basin` is absent.
    async with client(lite, http2=http2) as c:
        await create_basin(c)
        host = {"host": f"{BASIN}.localhost:{lite.port}"}
        created = await c.post("/v1/streams", json={"stream": "via-host"}, headers=host)
        assert created.status_code == 201, created.text
        listed = await c.get("/v1/streams", headers=host)
        assert [s["name"] for s in listed.json()["streams"]] == ["via-host"]
        ack = await c.post(
            "/v1/streams/via-host/records",
            json={"records": [{"body": "hi"}]},
            headers=host,
        )
        assert ack.status_code == 200, ack.text
        got = await c.get("/v1/streams/via-host/records", params={"seq_num": 0}, headers=host)
        assert [r["body"] for r in got.json()["records"]] == ["hi"]
        # The header wins over the Host.
        await create_basin(c, "other-basin")
        both = await c.get("/v1/streams", headers={**host, "s2-basin": "other-basin"})
        assert both.json()["streams"] == []
        # Same data through `s2-basin`.
        assert await tail(c, "via-host") == {
            "seq_num": 1,
            "timestamp": ack.json()["end"]["timestamp"],
        }


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "[::1]", "ab.localhost", "bad_basin_name.localhost"],
)
async def test_host_without_basin_needs_header(lite: Lite, host: str) -> None:
    async with client(lite) as c:
        resp = await c.get("/v1/streams", headers={"host": f"{host}:{lite.port}"})
        assert_error(resp, 400, "bad_header", "Missing header `s2-basin`")


@pytest.mark.parametrize("http2", HTTP)
async def test_cors_mirrors_a_loopback_origin(lite: Lite, http2: bool) -> None:
    origin = "http://localhost:5173"  # a dev server on this machine
    async with client(lite, http2=http2, basin=BASIN) as c:
        await create_basin(c)
        await create_stream(c, "s")
        for resp in (
            await c.get("/v1/basins", headers={"origin": origin}),
            await append(c, "s", [{"body": "x"}], headers={"origin": origin}),
            await c.get("/v1/streams/missing", headers={"origin": origin}),  # errors too
        ):
            assert resp.headers["access-control-allow-origin"] == origin
            assert "access-control-allow-credentials" not in resp.headers
        plain = await c.get("/v1/basins")
        assert "access-control-allow-origin" not in plain.headers


@pytest.mark.parametrize("http2", HTTP)
async def test_cors_refuses_other_origins_unless_allowed(http2: bool) -> None:
    # Browser safety: any web page could otherwise drive lite on this machine.
    page = "https://evil.example"
    async with Lite(quick_config()) as lite, client(lite, http2=http2) as c:
        resp = await c.get("/v1/basins", headers={"origin": page})
        assert resp.status_code == 200  # the answer is there; the browser will not show it
        assert "access-control-allow-origin" not in resp.headers
    allowed = quick_config(cors_origins=("https://app.example",))
    async with Lite(allowed) as lite, client(lite, http2=http2) as c:
        resp = await c.get("/v1/basins", headers={"origin": "https://app.example"})
        assert resp.headers["access-control-allow-origin"] == "https://app.example"
        resp = await c.get("/v1/basins", headers={"origin": page})
        assert "access-control-allow-origin" not in resp.headers
    anyone = quick_config(cors_origins=("*",))
    async with Lite(anyone) as lite, client(lite, http2=http2) as c:
        resp = await c.get("/v1/basins", headers={"origin": page})
        assert resp.headers["access-control-allow-origin"] == page


@pytest.mark.parametrize("http2", HTTP)
async def test_cors_preflight(lite: Lite, http2: bool) -> None:
    origin = "http://localhost:5173"
    async with client(lite, http2=http2) as c:
        resp = await c.options(
            "/v1/streams/s/records",
            headers={
                "origin": origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": "s2-basin, content-type",
            },
        )
        assert resp.status_code in (200, 204)
        assert resp.headers["access-control-allow-origin"] == origin
        methods = {m.strip() for m in resp.headers["access-control-allow-methods"].split(",")}
        assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= methods
        allowed = resp.headers["access-control-allow-headers"].lower()
        assert "s2-basin" in allowed
        assert "content-type" in allowed


@pytest.mark.parametrize("host", ["evil.example", "rebind.attacker.test", "10.0.0.5"])
async def test_a_foreign_host_name_is_refused_on_loopback(lite: Lite, host: str) -> None:
    # DNS rebinding: a page whose name now resolves to 127.0.0.1 sends its own Host.
    async with client(lite) as c:
        resp = await c.get("/v1/basins", headers={"host": f"{host}:{lite.port}"})
        body = assert_error(resp, 400, "bad_header")
        assert body["message"].startswith(f"Invalid header `host`: {host!r} is not a local name")


async def test_allowed_host_names_are_accepted() -> None:
    async with Lite(quick_config(allowed_hosts=("lite.internal",))) as lite, client(lite) as c:
        resp = await c.get("/v1/basins", headers={"host": f"lite.internal:{lite.port}"})
        assert resp.status_code == 200


async def test_cors_disabled() -> None:
    # `--no-cors`: no CORS headers, and OPTIONS is just another unsupported method.
    config = LiteConfig(cors=False, shutdown_grace=2.0)
    async with Lite(config) as lite, client(lite) as c:
        resp = await c.get("/v1/basins", headers={"origin": "https://app.example"})
        assert resp.status_code == 200
        assert "access-control-allow-origin" not in resp.headers
        pre = await c.options(
            "/v1/basins",
            headers={"origin": "https://app.example", "access-control-request-method": "GET"},
        )
        assert pre.status_code == 405
        assert "access-control-allow-origin" not in pre.headers


async def test_unknown_json_fields_are_ignored(lite: Lite) -> None:
    # No strict mode, so old clients sending `scope` still work.
    async with client(lite, basin=BASIN) as c:
        resp = await c.post(
            "/v1/basins",
            json={"basin": BASIN, "scope": "aws:us-east-1", "config": {"future_flag": True}},
        )
        assert resp.status_code == 201, resp.text
        resp = await c.post("/v1/streams", json={"stream": "s", "extra": [1, 2]})
        assert resp.status_code == 201, resp.text
        ack = await append(c, "s", [{"body": "x", "color": "red"}], note="hi")
        assert ack.status_code == 200, ack.text
