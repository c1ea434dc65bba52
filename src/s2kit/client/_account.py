"""Account operations beyond basins: access tokens and metrics (cloud; lite answers 501)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from s2kit.client._api import quote_segment
from s2kit.errors import RemoteProtocolError
from s2kit.types import AccessTokenInfo, AccessTokenScope, Metric, Page, TimeseriesInterval
from s2kit.wire import _json, _json_account

if TYPE_CHECKING:
    from s2kit.client._api import Api

JSON = ("content-type", "application/json")


def _parse(conv: Any, body: bytes) -> Any:
    try:
        return conv(_json.loads(body))
    except (_json.JsonShapeError, _json.JsonInvalid) as exc:
        raise RemoteProtocolError(f"unexpected response: {exc}") from exc


def _metric_query(
    metric_set: str, start: int | None, end: int | None, interval: TimeseriesInterval | None
) -> dict[str, str | int]:
    q: dict[str, str | int] = {"set": metric_set}
    if start is not None:
        q["start"] = start
    if end is not None:
        q["end"] = end
    if interval is not None:
        q["interval"] = interval.value
    return q


def _metrics(obj: Any) -> list[Metric]:
    values = obj.get("values") if isinstance(obj, dict) else None
    if not isinstance(values, list):
        raise _json.JsonShapeError("values: expected an array")
    return [_json_account.metric_from_obj(v) for v in values]


class AccountOps:
    """Access-token and metric operations of :class:`~s2kit.S2`."""

    _api: Api

    async def issue_access_token(
        self,
        token_id: str,
        scope: AccessTokenScope,
        *,
        expires_at: datetime | None = None,
        auto_prefix_streams: bool = False,
    ) -> str:
        """Issue an access token; returns its secret.

        Raises:
            ServerError: ``resource_already_exists`` (id taken), ``not_implemented`` (lite).
        """
        info = AccessTokenInfo(
            id=token_id, scope=scope, expires_at=expires_at, auto_prefix_streams=auto_prefix_streams
        )
        obj = _json_account.token_info_obj(info)
        if expires_at is None:
            del obj["expires_at"]  # absent = the issuing token's expiry
        resp = await self._api.request(
            "POST", "/v1/access-tokens", headers=[JSON], body=_json.dumps(obj).encode()
        )
        body = _parse(lambda o: o, resp.body)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            raise RemoteProtocolError("issue response has no access_token")
        return token

    async def list_access_tokens(
        self, *, prefix: str = "", start_after: str = "", limit: int | None = None
    ) -> Page[AccessTokenInfo]:
        """One page of access tokens."""
        q: dict[str, str | int] = {}
        if prefix:
            q["prefix"] = prefix
        if start_after:
            q["start_after"] = start_after
        if limit is not None:
            q["limit"] = limit
        resp = await self._api.request("GET", "/v1/access-tokens", query=q)

        def conv(obj: Any) -> Page[AccessTokenInfo]:
            items = tuple(
                _json_account.token_info_from_obj(t) for t in obj.get("access_tokens", [])
            )
            return Page(items=items, has_more=bool(obj.get("has_more")))

        page: Page[AccessTokenInfo] = _parse(conv, resp.body)
        return page

    async def revoke_access_token(self, token_id: str) -> None:
        """Revoke an access token."""
        await self._api.request("DELETE", f"/v1/access-tokens/{quote_segment(token_id)}")

    async def _metrics(
        self,
        path: str,
        metric_set: str,
        start: int | None,
        end: int | None,
        interval: TimeseriesInterval | None,
    ) -> list[Metric]:
        resp = await self._api.request(
            "GET", path, query=_metric_query(metric_set, start, end, interval)
        )
        metrics: list[Metric] = _parse(_metrics, resp.body)
        return metrics

    async def account_metrics(
        self,
        metric_set: str,
        *,
        start: int | None = None,
        end: int | None = None,
        interval: TimeseriesInterval | None = None,
    ) -> list[Metric]:
        """Account metrics (``active-basins``, ``account-ops``)."""
        return await self._metrics("/v1/metrics", metric_set, start, end, interval)

    async def basin_metrics(
        self,
        basin: str,
        metric_set: str,
        *,
        start: int | None = None,
        end: int | None = None,
        interval: TimeseriesInterval | None = None,
    ) -> list[Metric]:
        """Basin metrics (``storage``, ``append-ops``, ``read-ops``, ...)."""
        path = f"/v1/metrics/{quote_segment(basin)}"
        return await self._metrics(path, metric_set, start, end, interval)

    async def stream_metrics(
        self,
        basin: str,
        stream: str,
        metric_set: str = "storage",
        *,
        start: int | None = None,
        end: int | None = None,
        interval: TimeseriesInterval | None = None,
    ) -> list[Metric]:
        """Stream metrics (``storage``)."""
        path = f"/v1/metrics/{quote_segment(basin)}/{quote_segment(stream)}"
        return await self._metrics(path, metric_set, start, end, interval)
