"""Fixtures for the metrics tests: lite in the test's loop and a raw HTTP client for it.

Figures are checked as sums over the points a query returns, so a test that happens to cross
a minute (or hour) boundary between its requests still sees the same totals.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from s2kit.server import Lite

BASIN = "metrics-basin"


def window(back: int = 3600) -> dict[str, int]:
    """``start``/``end`` for the last ``back`` seconds, ``end`` a little ahead of now (S2 allows
    up to a minute) so the minute in progress is inside the range."""
    now = int(time.time())
    return {"start": now - back, "end": now + 30}


def minute_now() -> int:
    """The start of the current minute (Unix seconds), as lite's accounting buckets it."""
    now = int(time.time())
    return now - now % 60


def metered(body: bytes | str, headers: list[tuple[str, str]] = ()) -> int:  # type: ignore[assignment]
    """S2's metered size of a record: 8 + 2 per header + the bytes of names, values, body."""
    raw = body.encode() if isinstance(body, str) else body
    return 8 + sum(2 + len(n) + len(v) for n, v in headers) + len(raw)


def totals(response: dict[str, Any]) -> dict[str, float]:
    """Each metric's values summed, by name (label metrics: their number of values)."""
    out: dict[str, float] = {}
    for metric in response["values"]:
        ((kind, body),) = metric.items()
        if kind == "label":
            out[body["name"]] = len(body["values"])
        else:
            out[body["name"]] = sum(v for _, v in body["values"])
    return out


def last_point(response: dict[str, Any]) -> float | None:
    """The value of the last point of the (single) gauge of a response."""
    ((_, gauge),) = response["values"][0].items()
    return gauge["values"][-1][1] if gauge["values"] else None


_UNITS = {"bytes", "operations"}
_FIELDS = {
    "scalar": {"name", "unit", "value"},
    "accumulation": {"name", "unit", "interval", "values"},
    "gauge": {"name", "unit", "values"},
    "label": {"name", "values"},
}


def schema_problems(body: Any) -> list[str]:
    """What in a body breaks the OpenAPI ``MetricSetResponse`` schema (strictly: no field the
    schema does not name); [] if nothing."""
    if (
        not isinstance(body, dict)
        or set(body) != {"values"}
        or not isinstance(body["values"], list)
    ):
        return [f"not a MetricSetResponse: {body!r}"]
    found = []
    for i, metric in enumerate(body["values"]):
        if not isinstance(metric, dict) or len(metric) != 1 or next(iter(metric)) not in _FIELDS:
            found.append(f"values[{i}]: not one of scalar/accumulation/gauge/label: {metric!r}")
            continue
        ((kind, m),) = metric.items()
        if not isinstance(m, dict) or set(m) != _FIELDS[kind]:
            found.append(f"values[{i}].{kind}: fields {sorted(m)} != {sorted(_FIELDS[kind])}")
            continue
        if not isinstance(m["name"], str):
            found.append(f"values[{i}].{kind}.name: {m['name']!r}")
        if "unit" in m and m["unit"] not in _UNITS:
            found.append(f"values[{i}].{kind}.unit: {m['unit']!r}")
        if kind == "accumulation" and m["interval"] not in ("minute", "hour", "day"):
            found.append(f"values[{i}].accumulation.interval: {m['interval']!r}")
        if kind == "scalar" and not isinstance(m["value"], float):
            found.append(f"values[{i}].scalar.value: {m['value']!r}")
        if kind == "label":
            if not all(isinstance(v, str) for v in m["values"]):
                found.append(f"values[{i}].label.values: {m['values']!r}")
        elif kind != "scalar":
            for point in m["values"]:
                ok = (
                    isinstance(point, list)
                    and len(point) == 2
                    and type(point[0]) is int
                    and 0 <= point[0] < 1 << 32
                    and isinstance(point[1], float)
                )
                if not ok:
                    found.append(f"values[{i}].{kind}.values: {point!r} is not [u32, f64]")
    return found


class MetricsClient:
    """The S2 API over plain HTTP (h2-free httpx: lite serves HTTP/1.1 on the same port)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def get(self, path: str, set_: str, **params: Any) -> dict[str, Any]:
        """A metrics request that must succeed; its JSON body."""
        query = {"set": set_, **window(), **params}
        r = await self.http.get(path, params=query)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        body: dict[str, Any] = r.json()
        assert not schema_problems(body), schema_problems(body)
        return body

    async def stream_op(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """A basin-scoped request (``s2-basin`` set)."""
        headers = {"s2-basin": BASIN, **kw.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kw)

    async def append(self, stream: str, *bodies: str) -> None:
        """One unary append of ``bodies``."""
        records = [{"body": b} for b in bodies]
        r = await self.stream_op("POST", f"/v1/streams/{stream}/records", json={"records": records})
        assert r.status_code == 200, r.text


@pytest.fixture
async def http(lite: Lite) -> AsyncIterator[MetricsClient]:
    """An HTTP client for ``lite`` with the basin :data:`BASIN` created."""
    async with httpx.AsyncClient(base_url=lite.url, timeout=10) as c:
        r = await c.post("/v1/basins", json={"basin": BASIN})
        assert r.status_code == 201, r.text
        yield MetricsClient(c)
