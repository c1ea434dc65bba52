"""What the CLI prints: human text by default, JSON with ``--json``, one-line errors.

Results go to stdout; progress and notes go to stderr, so ``s2kit read ... > file`` and
``s2kit --json ... | jq`` see only data.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from datetime import datetime
from typing import Any

from s2kit.errors import (
    AppendConditionFailed,
    ConnectError,
    ReadUnwritten,
    RequestTimeout,
    S2Error,
    ServerError,
    TransportError,
)


def to_jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values: dataclasses and named tuples become objects, enums their
    values, datetimes ISO 8601, bytes UTF-8 text (replacing what is not UTF-8)."""
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_asdict"):  # a named tuple: SequencedRecord
        return to_jsonable(obj._asdict())
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    return str(obj)


def print_json(obj: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(to_jsonable(obj), ensure_ascii=False) + "\n")


def print_line(text: str) -> None:
    """A line on stdout."""
    sys.stdout.write(text + "\n")


def note(text: str) -> None:
    """A line on stderr (progress, hints)."""
    sys.stderr.write(text + "\n")


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Dotted ``key: value`` pairs of a (nested) JSON-able value, for human output."""
    value = to_jsonable(obj)
    out: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            key = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                out.extend(flatten(v, key))
            else:
                out.append((key, _scalar(v)))
    else:
        out.append((prefix or "value", _scalar(value)))
    return out


def _scalar(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return ", ".join(_scalar(x) for x in v) or "-"
    return str(v)


def print_kv(pairs: list[tuple[str, str]]) -> None:
    """Aligned ``key  value`` lines (e.g. of :func:`flatten`)."""
    width = max((len(k) for k, _ in pairs), default=0)
    for k, v in pairs:
        print_line(f"{k.ljust(width)}  {v}")


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Left-aligned columns separated by two spaces; nothing but the header when empty."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    for row in [headers, *rows]:
        print_line("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def describe_error(exc: S2Error, settings_hint: str = "") -> str:
    """A one-line description of an SDK error for the user."""
    if isinstance(exc, ReadUnwritten):
        return f"nothing to read there: {exc.message} (use --clamp to start at the tail)"
    if isinstance(exc, AppendConditionFailed):
        return f"append condition failed: {exc.message}"
    if isinstance(exc, ServerError):
        hint = ""
        if exc.code == "not_implemented":
            hint = (
                " (this server does not support the operation; lite serves access tokens with"
                " --auth)"
            )
        return f"{exc.message} [{exc.code}, HTTP {exc.status}]{hint}"
    if isinstance(exc, ConnectError):
        # The SDK's hint (TLS trouble: what to set) beats the generic "check the endpoint".
        return str(exc) if exc.hint else f"{exc}{settings_hint}"
    if isinstance(exc, RequestTimeout):
        return f"timed out: {exc} (see --request-timeout)"
    if isinstance(exc, TransportError):
        return f"network error: {exc}"
    return str(exc) or type(exc).__name__


def missing_extra(extra: str, exc: ImportError) -> int:
    """Say which extra to install when an optional dependency is missing; exit code 1."""
    sys.stderr.write(
        f"s2kit: this command needs the `{extra}` extra ({exc.name} is missing): "
        f"pip install 's2kit[{extra}]'\n"
    )
    return 1
