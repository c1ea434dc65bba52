"""The access-token schemas of S2's OpenAPI document, and a checker for them.

The schemas are the OpenAPI ``components`` the token operations answer with, copied as data
(facts of the API). ``jsonschema`` is not among the test dependencies, and these schemas use
a small part of JSON Schema (types, required and known properties, items, ``oneOf``, enums,
RFC 3339 times), so the checker below covers exactly that part. It is stricter than the
document in one way: properties the schema does not name are refused, because S2 sends none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

_NULL = {"type": "null"}


def _nullable(ref: str) -> dict[str, Any]:
    return {"oneOf": [_NULL, {"$ref": ref}]}


OPERATIONS = [
    "list-basins", "create-basin", "delete-basin", "reconfigure-basin", "get-basin-config",
    "issue-access-token", "revoke-access-token", "list-access-tokens", "list-streams",
    "create-stream", "delete-stream", "get-stream-config", "reconfigure-stream", "check-tail",
    "append", "read", "trim", "fence", "account-metrics", "basin-metrics", "stream-metrics",
    # Added by the newer API (locations), which the official SDK 0.13 knows.
    "list-locations", "get-default-location", "set-default-location",
]  # fmt: skip

SCHEMAS: dict[str, dict[str, Any]] = {
    "ErrorInfo": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    },
    "IssueAccessTokenResponse": {
        "type": "object",
        "required": ["access_token"],
        "properties": {"access_token": {"type": "string"}},
    },
    "ListAccessTokensResponse": {
        "type": "object",
        "required": ["access_tokens", "has_more"],
        "properties": {
            "access_tokens": {
                "type": "array",
                "items": {"$ref": "AccessTokenInfo"},
                "maxItems": 1000,
            },
            "has_more": {"type": "boolean"},
        },
    },
    "AccessTokenInfo": {
        "type": "object",
        "required": ["id", "scope"],
        "properties": {
            "auto_prefix_streams": {"type": "boolean"},
            "expires_at": {"type": ["string", "null"], "format": "date-time"},
            "id": {"$ref": "AccessTokenIdStr"},
            "scope": {"$ref": "AccessTokenScope"},
        },
    },
    "AccessTokenIdStr": {"type": "string", "minLength": 1, "maxLength": 96},
    "AccessTokenScope": {
        "type": "object",
        "properties": {
            "access_tokens": _nullable("ResourceSet"),
            "basins": _nullable("ResourceSet"),
            "op_groups": _nullable("PermittedOperationGroups"),
            "ops": {"type": ["array", "null"], "items": {"$ref": "Operation"}},
            "streams": _nullable("ResourceSet"),
        },
    },
    "Operation": {"type": "string", "enum": OPERATIONS},
    "PermittedOperationGroups": {
        "type": "object",
        "properties": {
            "account": _nullable("ReadWritePermissions"),
            "basin": _nullable("ReadWritePermissions"),
            "stream": _nullable("ReadWritePermissions"),
        },
    },
    "ReadWritePermissions": {
        "type": "object",
        "properties": {"read": {"type": "boolean"}, "write": {"type": "boolean"}},
    },
    "ResourceSet": {
        "oneOf": [
            {"type": "object", "required": ["exact"], "properties": {"exact": {"type": "string"}}},
            {
                "type": "object",
                "required": ["prefix"],
                "properties": {"prefix": {"type": "string"}},
            },
        ]
    },
}

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def problems(value: Any, schema: dict[str, Any] | str, where: str = "$") -> list[str]:
    """What in ``value`` breaks ``schema`` (a schema or a component's name); [] if nothing."""
    if isinstance(schema, str):
        schema = {"$ref": schema}
    if "$ref" in schema:
        return problems(value, SCHEMAS[schema["$ref"]], where)
    if "oneOf" in schema:
        fits = [s for s in schema["oneOf"] if not problems(value, s, where)]
        return [] if len(fits) == 1 else [f"{where}: fits {len(fits)} of the oneOf branches"]
    types = schema.get("type")
    if types is not None:
        allowed = tuple(_TYPES[t] for t in ([types] if isinstance(types, str) else types))
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            return [f"{where}: {value!r} is not of type {types}"]
    found: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        found += [f"{where}: missing {k!r}" for k in schema.get("required", ()) if k not in value]
        found += [f"{where}: unexpected {k!r}" for k in value if k not in props]
        for key, sub in props.items():
            if key in value:
                found += problems(value[key], sub, f"{where}.{key}")
    elif isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            found.append(f"{where}: more than {schema['maxItems']} items")
        for i, item in enumerate(value):
            found += problems(item, schema.get("items", {}), f"{where}[{i}]")
    elif isinstance(value, str):
        found += _string_problems(value, schema, where)
    return found


def _string_problems(value: str, schema: dict[str, Any], where: str) -> list[str]:
    found = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} is not one of the enum")
    size = len(value.encode())
    if not schema.get("minLength", 0) <= size <= schema.get("maxLength", size):
        found.append(f"{where}: length {size} out of bounds")
    if schema.get("format") == "date-time":
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            found.append(f"{where}: {value!r} is not an RFC 3339 time")
        else:
            if parsed.tzinfo is None:
                found.append(f"{where}: {value!r} has no offset")
    return found
