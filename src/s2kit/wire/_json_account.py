"""JSON of access tokens and metrics (docs/protocol.md#access-tokens, docs/protocol.md#metrics)."""

from __future__ import annotations

from typing import Any

from s2kit.types import (
    AccessTokenInfo,
    AccessTokenScope,
    AccumulationMetric,
    ExactMatch,
    GaugeMetric,
    LabelMetric,
    Metric,
    MetricUnit,
    Operation,
    PermittedOperationGroups,
    PrefixMatch,
    ReadWritePermissions,
    ResourceSet,
    ScalarMetric,
    TimeseriesInterval,
)
from s2kit.wire._json import JsonShapeError, format_time, parse_time


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JsonShapeError(f"{what}: expected an object")
    return value


def _resource_set_obj(rs: ResourceSet | None) -> dict[str, str] | None:
    if rs is None:
        return None
    return {"exact": rs.name} if isinstance(rs, ExactMatch) else {"prefix": rs.prefix}


def _resource_set_in(value: Any, what: str) -> ResourceSet | None:
    if value is None:
        return None
    obj = _obj(value, what)
    if "exact" in obj and isinstance(obj["exact"], str):
        return ExactMatch(obj["exact"])
    if "prefix" in obj and isinstance(obj["prefix"], str):
        return PrefixMatch(obj["prefix"])
    raise JsonShapeError(f"{what}: expected `exact` or `prefix`")


def _rw_obj(rw: ReadWritePermissions | None) -> dict[str, bool] | None:
    return None if rw is None else {"read": rw.read, "write": rw.write}


def _rw_in(value: Any) -> ReadWritePermissions | None:
    if value is None:
        return None
    obj = _obj(value, "permissions")
    return ReadWritePermissions(read=bool(obj.get("read")), write=bool(obj.get("write")))


def scope_obj(scope: AccessTokenScope) -> dict[str, Any]:
    """``AccessTokenScope`` as JSON."""
    groups = scope.op_groups
    return {
        "basins": _resource_set_obj(scope.basins),
        "streams": _resource_set_obj(scope.streams),
        "access_tokens": _resource_set_obj(scope.access_tokens),
        "op_groups": None
        if groups is None
        else {
            "account": _rw_obj(groups.account),
            "basin": _rw_obj(groups.basin),
            "stream": _rw_obj(groups.stream),
        },
        "ops": None if scope.ops is None else [op.value for op in scope.ops],
    }


def scope_from_obj(value: Any) -> AccessTokenScope:
    """Parse an ``AccessTokenScope``."""
    obj = _obj(value, "scope")
    groups = obj.get("op_groups")
    ops = obj.get("ops")
    try:
        parsed_ops = None if ops is None else tuple(Operation(o) for o in ops)
    except (ValueError, TypeError):
        raise JsonShapeError("ops: unknown operation") from None
    return AccessTokenScope(
        basins=_resource_set_in(obj.get("basins"), "basins"),
        streams=_resource_set_in(obj.get("streams"), "streams"),
        access_tokens=_resource_set_in(obj.get("access_tokens"), "access_tokens"),
        op_groups=None
        if groups is None
        else PermittedOperationGroups(
            account=_rw_in(_obj(groups, "op_groups").get("account")),
            basin=_rw_in(groups.get("basin")),
            stream=_rw_in(groups.get("stream")),
        ),
        ops=parsed_ops,
    )


def token_info_obj(info: AccessTokenInfo) -> dict[str, Any]:
    """``AccessTokenInfo`` / ``IssueAccessTokenRequest`` as JSON."""
    return {
        "id": info.id,
        "expires_at": None if info.expires_at is None else format_time(info.expires_at),
        "auto_prefix_streams": info.auto_prefix_streams,
        "scope": scope_obj(info.scope),
    }


def token_info_from_obj(value: Any) -> AccessTokenInfo:
    """Parse an ``AccessTokenInfo``."""
    obj = _obj(value, "access token")
    token_id = obj.get("id")
    if not isinstance(token_id, str):
        raise JsonShapeError("id: expected a string")
    expires = obj.get("expires_at")
    return AccessTokenInfo(
        id=token_id,
        scope=scope_from_obj(obj.get("scope")),
        expires_at=None if expires is None else parse_time(expires, "expires_at"),
        auto_prefix_streams=bool(obj.get("auto_prefix_streams")),
    )


def _points(values: Any) -> tuple[tuple[int, float], ...]:
    try:
        return tuple((int(t), float(v)) for t, v in values)
    except (TypeError, ValueError):
        raise JsonShapeError("metric values: expected [time, value] pairs") from None


def metric_from_obj(value: Any) -> Metric:
    """Parse one externally tagged ``Metric``."""
    obj = _obj(value, "metric")
    if len(obj) != 1:
        raise JsonShapeError("metric: expected one variant")
    kind, body = next(iter(obj.items()))
    m = _obj(body, kind)
    try:
        name = str(m["name"])
        if kind == "scalar":
            return ScalarMetric(name=name, unit=MetricUnit(m["unit"]), value=float(m["value"]))
        if kind == "accumulation":
            interval = m.get("interval")
            return AccumulationMetric(
                name=name,
                unit=MetricUnit(m["unit"]),
                interval=None if interval is None else TimeseriesInterval(interval),
                values=_points(m.get("values", [])),
            )
        if kind == "gauge":
            return GaugeMetric(name=name, unit=MetricUnit(m["unit"]), values=_points(m["values"]))
        if kind == "label":
            return LabelMetric(name=name, values=tuple(str(v) for v in m["values"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise JsonShapeError(f"{kind} metric: {exc}") from None
    raise JsonShapeError(f"unknown metric kind {kind!r}")
