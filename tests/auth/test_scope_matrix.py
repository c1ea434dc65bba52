"""The scope matrix: every operation (so every operation group and permission) against every
kind of resource set (exact, prefix), allowed and denied, over plain HTTP against one lite
with ``--auth`` (docs/auth.md, "Operation groups").

For each operation, a fresh target (basin, stream, token id) is prepared with the root token,
then a token is issued for the case and the operation is sent with it:

* ``group``: the operation's group and permission, the target in scope -> it succeeds;
* ``op``: the operation by name in ``ops``, the target in scope -> it succeeds;
* ``other``: the same group with the other permission (read for write, write for read),
  target in scope -> 403 ``permission_denied``;
* ``outside``: the right group, the resource set missing the target -> 403, or, for a
  listing, a 200 that leaves the target out.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from s2kit.types import Operation as Op

from .conftest import ROOT, error_of, http, unique

if TYPE_CHECKING:
    import httpx

    from s2kit.server import LiteThread

GROUP_OF = {
    **dict.fromkeys(
        (Op.LIST_BASINS, Op.GET_BASIN_CONFIG, Op.LIST_ACCESS_TOKENS, Op.ACCOUNT_METRICS),
        ("account", "read"),
    ),
    **dict.fromkeys(
        (
            Op.CREATE_BASIN,
            Op.DELETE_BASIN,
            Op.RECONFIGURE_BASIN,
            Op.ISSUE_ACCESS_TOKEN,
            Op.REVOKE_ACCESS_TOKEN,
        ),
        ("account", "write"),
    ),
    **dict.fromkeys((Op.LIST_STREAMS, Op.GET_STREAM_CONFIG, Op.BASIN_METRICS), ("basin", "read")),
    **dict.fromkeys(
        (Op.CREATE_STREAM, Op.DELETE_STREAM, Op.RECONFIGURE_STREAM), ("basin", "write")
    ),
    **dict.fromkeys((Op.CHECK_TAIL, Op.READ, Op.STREAM_METRICS), ("stream", "read")),
    **dict.fromkeys((Op.APPEND, Op.TRIM, Op.FENCE), ("stream", "write")),
}
"""Lite's grouping (docs/auth.md), written out again so a change to it shows up here."""


@dataclass(frozen=True)
class Target:
    """The resources of one case."""

    basin: str
    stream: str
    token: str

    @property
    def stream_path(self) -> str:
        return "/v1/streams/" + quote(self.stream, safe="")


Request = tuple[str, str, dict[str, Any]]


@dataclass(frozen=True)
class Case:
    """How to exercise one operation."""

    kind: str | None
    """The resource set the operation is checked against (None: none)."""
    request: Callable[[Target], Request]
    ok: int | None
    """Status when allowed; None: anything but 401/403 (metrics, owned by ``_h_metrics``)."""
    needs: tuple[str, ...] = ()
    """What the root token prepares: ``basin``, ``stream``, ``token``."""
    listing: bool = False
    """A list: out of scope is filtered out, not refused."""


def _basin_h(t: Target) -> dict[str, str]:
    return {"s2-basin": t.basin}


def _records(t: Target, body: dict[str, Any], fmt: str = "raw") -> Request:
    headers = {**_basin_h(t), "s2-format": fmt}
    return "POST", t.stream_path + "/records", {"json": body, "headers": headers}


_TRIM = {"headers": [["", base64.b64encode(b"trim").decode()]], "body": "AAAAAAAAAAA="}
_FENCE = {"headers": [["", "fence"]], "body": "f"}

_B, _BS, _T = ("basin",), ("basin", "stream"), ("token",)


def _get(path: Callable[[Target], str], **kw: Any) -> Callable[[Target], Request]:
    return lambda t: ("GET", path(t), {k: v(t) if callable(v) else v for k, v in kw.items()})


CASES: dict[Op, Case] = {
    Op.LIST_BASINS: Case(
        "basins", _get(lambda t: "/v1/basins", params=lambda t: {"prefix": t.basin}), 200, _B,
        listing=True,
    ),
    Op.CREATE_BASIN: Case(
        "basins", lambda t: ("POST", "/v1/basins", {"json": {"basin": t.basin}}), 201
    ),
    Op.DELETE_BASIN: Case(
        "basins", lambda t: ("DELETE", f"/v1/basins/{t.basin}", {}), 202, _B
    ),
    Op.RECONFIGURE_BASIN: Case(
        "basins", lambda t: ("PATCH", f"/v1/basins/{t.basin}", {"json": {}}), 200, _B
    ),
    Op.GET_BASIN_CONFIG: Case("basins", _get(lambda t: f"/v1/basins/{t.basin}"), 200, _B),
    Op.ACCOUNT_METRICS: Case(
        None, _get(lambda t: "/v1/metrics", params={"set": "account-ops"}), None
    ),
    Op.BASIN_METRICS: Case(
        "basins", _get(lambda t: f"/v1/metrics/{t.basin}", params={"set": "storage"}), None, _B
    ),
    Op.STREAM_METRICS: Case(
        "streams",
        _get(
            lambda t: f"/v1/metrics/{t.basin}/{quote(t.stream, safe='')}",
            params={"set": "storage"},
        ),
        None, _BS,
    ),
    Op.LIST_ACCESS_TOKENS: Case(
        "access_tokens",
        _get(lambda t: "/v1/access-tokens", params=lambda t: {"prefix": t.token}),
        200, _T, listing=True,
    ),
    Op.ISSUE_ACCESS_TOKEN: Case(
        "access_tokens",
        lambda t: (
            "POST",
            "/v1/access-tokens",
            {"json": {"id": t.token, "scope": {"ops": ["issue-access-token"]}}},
        ),
        201,
    ),
    Op.REVOKE_ACCESS_TOKEN: Case(
        "access_tokens", lambda t: ("DELETE", f"/v1/access-tokens/{t.token}", {}), 204, _T
    ),
    Op.LIST_STREAMS: Case(
        "streams",
        _get(lambda t: "/v1/streams", params=lambda t: {"prefix": t.stream}, headers=_basin_h),
        200, _BS, listing=True,
    ),
    Op.CREATE_STREAM: Case(
        "streams",
        lambda t: ("POST", "/v1/streams", {"json": {"stream": t.stream}, "headers": _basin_h(t)}),
        201, _B,
    ),
    Op.DELETE_STREAM: Case(
        "streams", lambda t: ("DELETE", t.stream_path, {"headers": _basin_h(t)}), 202, _BS
    ),
    Op.GET_STREAM_CONFIG: Case(
        "streams", _get(lambda t: t.stream_path, headers=_basin_h), 200, _BS
    ),
    Op.RECONFIGURE_STREAM: Case(
        "streams",
        lambda t: ("PATCH", t.stream_path, {"json": {}, "headers": _basin_h(t)}),
        200, _BS,
    ),
    Op.CHECK_TAIL: Case(
        "streams", _get(lambda t: t.stream_path + "/records/tail", headers=_basin_h), 200, _BS
    ),
    Op.READ: Case(
        "streams",
        _get(lambda t: t.stream_path + "/records", params={"seq_num": 0}, headers=_basin_h),
        200, _BS,
    ),
    Op.APPEND: Case(
        "streams", lambda t: _records(t, {"records": [{"body": "x"}]}), 200, _BS
    ),
    Op.TRIM: Case(
        "streams", lambda t: _records(t, {"records": [_TRIM]}, "base64"), 200, _BS
    ),
    Op.FENCE: Case(
        "streams", lambda t: _records(t, {"records": [_FENCE]}), 200, _BS
    ),
}  # fmt: skip


def _params() -> Iterator[Any]:
    for op, case in CASES.items():
        sets = ("exact", "prefix") if case.kind else ("-",)
        for rs, variant in itertools.product(sets, ("group", "op", "other", "outside")):
            if variant == "outside" and case.kind is None:
                continue
            yield pytest.param(op, rs, variant, id=f"{op.value}-{rs}-{variant}")


@pytest.fixture(scope="module")
def root(auth_lite: LiteThread) -> Iterator[httpx.Client]:
    with http(auth_lite.url, ROOT) as client:
        yield client


def _prepare(root: httpx.Client, case: Case) -> Target:
    n = unique("mx")
    target = Target(basin=f"{n}-b", stream=f"dir/{n}", token=f"{n}-t")
    if "basin" in case.needs:
        assert root.post("/v1/basins", json={"basin": target.basin}).status_code == 201
    if "stream" in case.needs:
        created = root.post("/v1/streams", json={"stream": target.stream}, headers=_basin_h(target))
        assert created.status_code == 201, created.text
        method, path, kw = _records(target, {"records": [{"body": "first"}]})
        assert root.request(method, path, **kw).status_code == 200
    if "token" in case.needs:
        scope = {"ops": ["list-basins"]}
        issued = root.post("/v1/access-tokens", json={"id": target.token, "scope": scope})
        assert issued.status_code == 201, issued.text
    return target


def _resource_set(case: Case, target: Target, rs: str, inside: bool) -> dict[str, str]:
    name = {"basins": target.basin, "streams": target.stream, "access_tokens": target.token}
    exact = name[str(case.kind)]
    if rs == "exact":
        return {"exact": exact if inside else exact[:-1] + "z"}
    prefix = exact[: exact.index("-") + 1] if case.kind != "streams" else "dir/"
    return {"prefix": prefix if inside else "zz"}


def _scope(op: Op, case: Case, target: Target, rs: str, variant: str) -> dict[str, Any]:
    group, perm = GROUP_OF[op]
    other = "write" if perm == "read" else "read"
    scope: dict[str, Any] = {}
    if variant == "op":
        scope["ops"] = [op.value]
    else:
        scope["op_groups"] = {group: {other if variant == "other" else perm: True}}
    if case.kind is not None:
        scope[case.kind] = _resource_set(case, target, rs, inside=variant != "outside")
        if case.kind == "streams":
            scope["basins"] = {"prefix": ""}
    return scope


@pytest.mark.parametrize(("op", "rs", "variant"), list(_params()))
def test_scope_matrix(
    auth_lite: LiteThread, root: httpx.Client, op: Op, rs: str, variant: str
) -> None:
    case = CASES[op]
    target = _prepare(root, case)
    scope = _scope(op, case, target, rs, variant)
    issued = root.post("/v1/access-tokens", json={"id": unique("case"), "scope": scope})
    assert issued.status_code == 201, issued.text
    with http(auth_lite.url, issued.json()["access_token"]) as client:
        method, path, kw = case.request(target)
        resp = client.request(method, path, **kw)
    if variant == "other" or (variant == "outside" and not case.listing):
        assert error_of(resp) == (403, "permission_denied"), resp.text
        return
    if case.ok is None:
        assert resp.status_code not in (401, 403), resp.text
        return
    assert resp.status_code == case.ok, resp.text
    if case.listing:
        key = {"basins": "basins", "streams": "streams", "access_tokens": "access_tokens"}
        items = resp.json()[key[str(case.kind)]]
        names = [i.get("name", i.get("id")) for i in items]
        wanted = {"basins": target.basin, "streams": target.stream, "access_tokens": target.token}
        assert (wanted[str(case.kind)] in names) == (variant != "outside"), names


def test_every_operation_is_in_the_matrix() -> None:
    from s2kit.server._auth import GROUPS

    assert set(CASES) == set(GROUP_OF)
    for (group, perm), ops in GROUPS.items():
        assert ops == {op for op, gp in GROUP_OF.items() if gp == (group, perm)}
    # The location operations belong to no group: only `ops` grants them.
    assert set(Op) - set(GROUP_OF) == {
        Op.LIST_LOCATIONS,
        Op.GET_DEFAULT_LOCATION,
        Op.SET_DEFAULT_LOCATION,
    }
