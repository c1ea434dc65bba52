"""Every access-token operation of S2's OpenAPI, over plain HTTP against lite with ``--auth``:
each request, good or bad, gets a status the operation documents (never a 5xx) and a body that
fits the operation's schema (``_schema.py``), with the error code that belongs to the status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from s2kit.errors import ErrorCode, ServerError

from ._schema import problems
from .conftest import ROOT, error_of, http, unique

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

    from s2kit.server import LiteThread

DOCUMENTED = {
    "issue": {201, 400, 401, 403, 409, 422},
    "list": {200, 400, 401, 403, 422},
    "revoke": {204, 400, 401, 403, 404},
}
"""Statuses each operation may answer with (S2 documents 408 too, which lite never sends)."""
SUCCESS_SCHEMA = {"issue": "IssueAccessTokenResponse", "list": "ListAccessTokensResponse"}

ONE_OP: dict[str, Any] = {"ops": ["list-basins"]}
LATER = (datetime.now(UTC) + timedelta(days=1)).isoformat()


def _issue(body: Any) -> tuple[str, str, dict[str, Any]]:
    if isinstance(body, bytes):
        return "POST", "/v1/access-tokens", {"content": body}
    return "POST", "/v1/access-tokens", {"json": body}


# (operation, request, expected status, expected code or None); {n} is a fresh name.
CASES: list[tuple[str, tuple[str, str, dict[str, Any]], int, str | None]] = [
    ("issue", _issue({"id": "{n}", "scope": ONE_OP}), 201, None),
    ("issue", _issue({"id": "a{n}" + "x" * 80, "scope": ONE_OP}), 201, None),
    ("issue", _issue({"id": "{n}", "scope": {"basins": {"exact": ""}, "ops": ["read"]}}), 201,
     None),
    (
        "issue",
        _issue({
            "id": "{n}",
            "scope": {
                "basins": {"prefix": ""},
                "streams": {"prefix": "ns/"},
                "access_tokens": {"exact": "kid"},
                "op_groups": {"account": {"read": True}, "basin": None, "stream": {"write": True}},
                "ops": ["read", "read"],
            },
            "auto_prefix_streams": True,
            "expires_at": LATER,
        }),
        201,
        None,
    ),
    ("issue", _issue({"id": "{n}", "scope": ONE_OP, "expires_at": None}), 201, None),
    ("issue", _issue({"id": "dup", "scope": ONE_OP}), 409, "resource_already_exists"),
    ("issue", _issue({"id": "{n}", "scope": {}}), 422, "invalid"),
    ("issue", _issue({"id": "{n}", "scope": {"op_groups": {"stream": {}}}}), 422, "invalid"),
    ("issue", _issue({"id": "{n}", "scope": ONE_OP, "expires_at": "2001-01-01T00:00:00Z"}), 422,
     "invalid"),
    ("issue", _issue({"id": "{n}", "scope": {"streams": {"exact": "s"}, "ops": ["read"]},
                      "auto_prefix_streams": True}), 422, "invalid"),
    ("issue", _issue({"id": "", "scope": ONE_OP}), 400, "bad_json"),
    ("issue", _issue({"id": "x" * 97, "scope": ONE_OP}), 400, "bad_json"),
    ("issue", _issue({"id": "..", "scope": ONE_OP}), 400, "bad_json"),
    ("issue", _issue({"id": "{n}"}), 400, "bad_json"),
    ("issue", _issue({"id": "{n}", "scope": {"ops": ["fly"]}}), 400, "bad_json"),
    ("issue", _issue({"id": "{n}", "scope": {"basins": {"exact": "a", "prefix": "b"}}}), 400,
     "bad_json"),
    ("issue", _issue({"id": "{n}", "scope": {"basins": {"exact": "NO"}, "ops": ["read"]}}), 400,
     "bad_json"),
    ("issue", _issue({"id": "{n}", "scope": ONE_OP, "expires_at": "soon"}), 400, "bad_json"),
    ("issue", _issue({"id": "{n}", "scope": ONE_OP, "auto_prefix_streams": "yes"}), 400,
     "bad_json"),
    ("issue", _issue(b'{"id": '), 400, "bad_json"),
    ("issue", _issue([1, 2]), 400, "bad_json"),
    ("list", ("GET", "/v1/access-tokens", {}), 200, None),
    ("list", ("GET", "/v1/access-tokens", {"params": {"limit": 0}}), 200, None),
    ("list", ("GET", "/v1/access-tokens", {"params": {"limit": 1001, "prefix": "d"}}), 200, None),
    ("list", ("GET", "/v1/access-tokens", {"params": {"prefix": "d", "start_after": "dup"}}), 200,
     None),
    ("list", ("GET", "/v1/access-tokens", {"params": {"limit": "x"}}), 400, "bad_query"),
    ("list", ("GET", "/v1/access-tokens", {"params": {"prefix": "p" * 97}}), 400, "bad_query"),
    ("list", ("GET", "/v1/access-tokens", {"params": {"prefix": "z", "start_after": "a"}}), 422,
     "invalid"),
    ("revoke", ("DELETE", "/v1/access-tokens/{n}", {}), 404, "access_token_not_found"),
    ("revoke", ("DELETE", "/v1/access-tokens/" + "x" * 97, {}), 400, "bad_path"),
]  # fmt: skip


@pytest.fixture(scope="module")
def root(auth_lite: LiteThread) -> Iterator[httpx.Client]:
    with http(auth_lite.url, ROOT) as client:
        issued = client.post("/v1/access-tokens", json={"id": "dup", "scope": ONE_OP})
        assert issued.status_code == 201
        yield client


def _fill(value: Any, name: str) -> Any:
    if isinstance(value, str):
        return value.replace("{n}", name)
    if isinstance(value, dict):
        return {k: _fill(v, name) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_fill(v, name) for v in value)
    return value


def check(op: str, resp: httpx.Response) -> None:
    """The status is one ``op`` documents, and the body fits its schema."""
    status = resp.status_code
    assert status in DOCUMENTED[op], (status, resp.text)
    if status == 204:
        assert resp.content == b""
        return
    assert resp.headers["content-type"] == "application/json"
    schema = SUCCESS_SCHEMA[op] if status < 300 else "ErrorInfo"
    assert not problems(resp.json(), schema), (problems(resp.json(), schema), resp.text)
    if status >= 400:
        code = resp.json()["code"]
        assert ServerError.for_code(ErrorCode(code), "").status == status


@pytest.mark.parametrize(("op", "request_", "status", "code"), CASES)
def test_answer_fits_the_spec(
    root: httpx.Client,
    op: str,
    request_: tuple[str, str, dict[str, Any]],
    status: int,
    code: str | None,
) -> None:
    method, path, kw = _fill(request_, unique("api"))
    resp = root.request(method, path, **kw)
    check(op, resp)
    assert resp.status_code == status, resp.text
    if code is not None:
        assert resp.json()["code"] == code


def test_listing_echoes_the_scope_materialized(root: httpx.Client) -> None:
    token_id = unique("echo")
    body = {
        "id": token_id,
        "scope": {
            "streams": {"prefix": "ns/"},
            "op_groups": {"stream": {"read": True}},
            "ops": ["trim", "append", "trim"],
        },
        "auto_prefix_streams": True,
    }
    assert root.post("/v1/access-tokens", json=body).status_code == 201
    resp = root.get("/v1/access-tokens", params={"prefix": token_id})
    check("list", resp)
    assert resp.json() == {
        "access_tokens": [
            {
                "id": token_id,
                "expires_at": None,
                "auto_prefix_streams": True,
                "scope": {
                    "basins": None,
                    "streams": {"prefix": "ns/"},
                    "access_tokens": None,
                    "op_groups": {
                        "account": {"read": False, "write": False},
                        "basin": {"read": False, "write": False},
                        "stream": {"read": True, "write": False},
                    },
                    "ops": ["append", "trim"],
                },
            }
        ],
        "has_more": False,
    }


def test_revoke_answers_204_without_a_body(root: httpx.Client) -> None:
    token_id = unique("gone")
    assert root.post("/v1/access-tokens", json={"id": token_id, "scope": ONE_OP}).status_code == 201
    resp = root.delete(f"/v1/access-tokens/{token_id}")
    check("revoke", resp)
    assert resp.status_code == 204
    assert root.get("/v1/access-tokens", params={"prefix": token_id}).json()["access_tokens"] == []


@pytest.mark.parametrize(
    ("op", "method", "path"),
    [
        ("issue", "POST", "/v1/access-tokens"),
        ("list", "GET", "/v1/access-tokens"),
        ("revoke", "DELETE", "/v1/access-tokens/dup"),
    ],
)
@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer wrong-token", f"Basic {ROOT}", f"bearer  {ROOT}x"]
)
def test_bad_credentials_are_401(
    auth_lite: LiteThread, op: str, method: str, path: str, header: str | None
) -> None:
    headers = {} if header is None else {"authorization": header}
    with http(auth_lite.url) as client:
        body = {"json": {"id": unique("x"), "scope": ONE_OP}} if method == "POST" else {}
        resp = client.request(method, path, headers=headers, **body)
    check(op, resp)
    assert error_of(resp) == (401, "authn")


def test_out_of_scope_is_403(auth_lite: LiteThread, root: httpx.Client) -> None:
    scope = {"access_tokens": {"prefix": "mine-"}, "op_groups": {"account": {"read": True}}}
    issued = root.post("/v1/access-tokens", json={"id": unique("mine-"), "scope": scope})
    assert issued.status_code == 201
    with http(auth_lite.url, issued.json()["access_token"]) as client:
        requests = {
            "issue": client.post("/v1/access-tokens", json={"id": "mine-kid", "scope": ONE_OP}),
            "revoke": client.delete("/v1/access-tokens/mine-kid"),
        }
        for op, resp in requests.items():
            check(op, resp)
            assert error_of(resp) == (403, "permission_denied"), op
        # Listing is allowed, and shows only ids within the scope.
        resp = client.get("/v1/access-tokens")
        check("list", resp)
        assert all(t["id"].startswith("mine-") for t in resp.json()["access_tokens"])


def test_health_needs_no_token_and_metrics_does(auth_lite: LiteThread) -> None:
    with http(auth_lite.url) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ping").status_code == 200
        assert error_of(client.get("/metrics")) == (401, "authn")
        assert error_of(client.get("/v1/basins")) == (401, "authn")
        assert client.get("/no/such/path").status_code == 404
