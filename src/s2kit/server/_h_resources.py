"""Lite handlers for the control plane: basins and streams (docs/protocol.md#endpoints)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from s2kit.errors import ErrorCode
from s2kit.server._catalog import (
    basin_name_problem,
    basin_prefix_problem,
    stream_name_problem,
)
from s2kit.server._http import (
    Query,
    Reply,
    err,
    from_json,
    json_body,
    read_body,
    require_json_content_type,
)
from s2kit.types import BasinInfo, Page, ProvisionResult, StreamConfig, StreamInfo
from s2kit.wire._json import (
    basin_config_from_obj,
    basin_config_obj,
    basin_info_obj,
    basin_reconfiguration_from_obj,
    stream_config_from_obj,
    stream_config_obj,
    stream_info_obj,
    stream_reconfiguration_from_obj,
)

if TYPE_CHECKING:
    from s2kit.server._backend import Backend

MAX_REQUEST_TOKEN = 36


def _list_params(q: Query, *, basin_names: bool) -> tuple[str, str, int]:
    prefix, start_after = q.text("prefix"), q.text("start_after")
    limit = q.u64("limit")
    if basin_names:
        for name, value in (("prefix", prefix), ("start_after", start_after)):
            problem = basin_prefix_problem(value)
            if problem:
                raise err(ErrorCode.BAD_QUERY, f"invalid query parameter `{name}`: {problem}")
    else:
        for name, value in (("prefix", prefix), ("start_after", start_after)):
            if len(value.encode()) > 512:
                raise err(
                    ErrorCode.BAD_QUERY,
                    f"invalid query parameter `{name}`: must not exceed 512 bytes in length",
                )
    # Lite maps 0 and anything above 1000 to 1000, as s2-lite does.
    return prefix, start_after, 1000 if not limit or limit > 1000 else limit


def _request_token(reply: Reply) -> str | None:
    token = reply.request.header("s2-request-token")
    # Header values arrive as latin-1 text, one char per byte: the length in bytes is len().
    if token is not None and len(token) > MAX_REQUEST_TOKEN:
        raise err(
            ErrorCode.BAD_HEADER,
            "Invalid header `s2-request-token`: must not exceed 36 bytes in length",
        )
    return token


def _provision(result: ProvisionResult) -> list[tuple[str, str]]:
    return [("s2-provision-result", result.value)]


def checked_basin(name: str) -> str:
    """A basin name from a path, or ``bad_path``."""
    problem = basin_name_problem(name)
    if problem:
        raise err(ErrorCode.BAD_PATH, problem)
    return name


def checked_stream(name: str) -> str:
    """A stream name from a path, or ``bad_path``."""
    problem = stream_name_problem(name)
    if problem:
        raise err(ErrorCode.BAD_PATH, problem)
    return name


def _name_in_body(obj: dict[str, Any], key: str, problem_of: Any) -> str:
    name = obj.get(key)
    if not isinstance(name, str):
        raise err(ErrorCode.BAD_JSON, f"Failed to deserialize the JSON body: `{key}` is required")
    problem = problem_of(name)
    if problem:
        # Lite reports every JSON extraction failure as bad_json (docs/protocol.md#known-quirks).
        raise err(ErrorCode.BAD_JSON, f"Failed to deserialize the JSON body: {problem}")
    return name


async def _optional_json(reply: Reply) -> Any:
    body = await read_body(reply.request)
    if not body:
        return None
    require_json_content_type(reply.request)
    return json_body(body)


def _obj(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise err(ErrorCode.BAD_JSON, "Failed to deserialize the JSON body: expected an object")
    return value


# --- basins -----------------------------------------------------------------------------------


async def list_basins(backend: Backend, reply: Reply) -> None:
    """GET /v1/basins."""
    prefix, start_after, limit = _list_params(Query(reply.request.query), basin_names=True)
    view = reply.guard.basins(prefix, start_after)  # the token's scope (``_auth.py``)
    page: Page[BasinInfo] = (
        Page()
        if view.nothing
        else backend.catalog.list_basins(view.prefix, view.start_after, limit, view.keep)
    )
    await reply.json(
        200, {"basins": [basin_info_obj(b) for b in page.items], "has_more": page.has_more}
    )


async def create_basin(backend: Backend, reply: Reply) -> None:
    """POST /v1/basins."""
    token = _request_token(reply)
    require_json_content_type(reply.request)
    obj = _obj(json_body(await read_body(reply.request)))
    name = _name_in_body(obj, "basin", basin_name_problem)
    reply.guard.basin(name)
    raw_cfg = obj.get("config")
    config = from_json(basin_config_from_obj, {} if raw_cfg is None else raw_cfg)
    meta, result = backend.catalog.create_basin(name, config, token)
    await backend.meta_durable()
    await reply.json(201, basin_info_obj(meta.info()), _provision(result))


async def ensure_basin(backend: Backend, reply: Reply, name: str) -> None:
    """PUT /v1/basins/{basin}: create or replace the config."""
    obj = await _optional_json(reply)
    raw_cfg = None if obj is None else _obj(obj).get("config")
    config = from_json(basin_config_from_obj, {} if raw_cfg is None else raw_cfg)
    meta, result = backend.catalog.ensure_basin(name, config)
    await backend.meta_durable()
    status = 201 if result is ProvisionResult.CREATED else 200
    await reply.json(status, basin_info_obj(meta.info()), _provision(result))


async def get_basin_config(backend: Backend, reply: Reply, name: str) -> None:
    """GET /v1/basins/{basin}."""
    await reply.json(200, basin_config_obj(backend.catalog.basin(name).config))


async def reconfigure_basin(backend: Backend, reply: Reply, name: str) -> None:
    """PATCH /v1/basins/{basin}."""
    require_json_content_type(reply.request)
    rc = from_json(basin_reconfiguration_from_obj, json_body(await read_body(reply.request)))
    config = backend.catalog.reconfigure_basin(name, rc)
    await backend.meta_durable()
    await reply.json(200, basin_config_obj(config))


async def delete_basin(backend: Backend, reply: Reply, name: str) -> None:
    """DELETE /v1/basins/{basin}: 202, finished in the background."""
    backend.delete_basin(name)
    await backend.meta_durable()
    await reply.empty(202)


# --- streams ----------------------------------------------------------------------------------


async def list_streams(backend: Backend, reply: Reply, basin: str) -> None:
    """GET /v1/streams."""
    prefix, start_after, limit = _list_params(Query(reply.request.query), basin_names=False)
    view = reply.guard.streams(prefix, start_after)  # the token's scope (``_auth.py``)
    page: Page[StreamInfo] = (
        Page()
        if view.nothing
        else backend.catalog.list_streams(basin, view.prefix, view.start_after, limit, view.keep)
    )
    await reply.json(
        200, {"streams": [_stream_info(reply, s) for s in page.items], "has_more": page.has_more}
    )


def _stream_info(reply: Reply, info: StreamInfo) -> dict[str, Any]:
    """``StreamInfo`` named as the client names it (``auto_prefix_streams``, ``_auth.py``)."""
    return {**stream_info_obj(info), "name": reply.guard.stream_out(info.name)}


def _stream_config(raw: Any) -> StreamConfig | None:
    return None if raw is None else from_json(stream_config_from_obj, raw)


async def create_stream(backend: Backend, reply: Reply, basin: str) -> None:
    """POST /v1/streams."""
    token = _request_token(reply)
    require_json_content_type(reply.request)
    obj = _obj(json_body(await read_body(reply.request)))
    name = reply.guard.stream(_name_in_body(obj, "stream", stream_name_problem))
    meta, result = backend.catalog.create_stream(
        basin, name, _stream_config(obj.get("config")), token
    )
    await backend.meta_durable()
    await reply.json(201, _stream_info(reply, meta.info()), _provision(result))


async def ensure_stream(backend: Backend, reply: Reply, basin: str, name: str) -> None:
    """PUT /v1/streams/{stream}."""
    # The body is a bare StreamConfig, unlike the basin's wrapped one.
    obj = await _optional_json(reply)
    config = None if obj is None else _stream_config(_obj(obj))
    meta, result = backend.catalog.ensure_stream(basin, name, config)
    await backend.meta_durable()
    status = 201 if result is ProvisionResult.CREATED else 200
    await reply.json(status, _stream_info(reply, meta.info()), _provision(result))


async def get_stream_config(backend: Backend, reply: Reply, basin: str, name: str) -> None:
    """GET /v1/streams/{stream}."""
    meta = backend.catalog.active_stream(basin, name)
    await reply.json(200, stream_config_obj(meta.config))


async def reconfigure_stream(backend: Backend, reply: Reply, basin: str, name: str) -> None:
    """PATCH /v1/streams/{stream}."""
    require_json_content_type(reply.request)
    rc = from_json(stream_reconfiguration_from_obj, json_body(await read_body(reply.request)))
    meta = backend.catalog.reconfigure_stream(basin, name, rc)
    await backend.meta_durable()
    await reply.json(200, stream_config_obj(meta.config))


async def delete_stream(backend: Backend, reply: Reply, basin: str, name: str) -> None:
    """DELETE /v1/streams/{stream}: 202, finished in the background."""
    backend.delete_stream(basin, name)
    await backend.meta_durable()
    await reply.empty(202)
