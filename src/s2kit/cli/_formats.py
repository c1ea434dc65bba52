"""Record formats of ``append`` and ``read`` (``--format``), one record per line both ways:

* ``text``: the line is the body (UTF-8; a trailing ``\\r\\n`` or ``\\n`` is not part of it).
  Reading writes each body and a newline; command records are noted on stderr instead.
* ``json``: ``{"body": "...", "headers": [["name", "value"]], "timestamp": 123}`` with UTF-8
  strings; reads add ``seq_num``. What ``read`` prints, ``append`` accepts. A record that is
  not UTF-8 has no such form: ``read`` stops there with an error naming ``base64`` rather than
  print a lossy copy.
* ``base64``: the same objects, with body, header names and values base64-encoded (binary safe;
  S2's ``s2-format: base64``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator
from functools import partial
from typing import IO, Any

from s2kit import Record, SequencedRecord
from s2kit.cli._config import choice_of
from s2kit.cli._output import note

FORMATS = ["text", "json", "base64"]
FORMAT = choice_of(FORMATS, "format")
_JSON_KEYS = frozenset({"body", "headers", "timestamp", "seq_num"})
FORMATS_HELP = """\
formats (--format), one record per line:
  text    the line is the body (a trailing \\n or \\r\\n is not part of it)
  json    {"body": "...", "headers": [["name", "value"]], "timestamp": 123}, UTF-8 strings
          (read adds "seq_num"; what read prints, append accepts; read stops with an
          error at a record that is not UTF-8 rather than print it lossily)
  base64  the same objects with body, header names and values base64-encoded (binary safe)"""


# --- input --------------------------------------------------------------------------------------


def _read_some(f: IO[bytes]) -> bytes:
    read1 = getattr(f, "read1", None)
    return bytes(read1(64 * 1024) if read1 is not None else f.read(64 * 1024))


async def lines(f: IO[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    """Numbered lines of ``f`` without their line ending, read off the event loop."""
    rest = b""
    lineno = 0
    while chunk := await asyncio.to_thread(_read_some, f):
        *lines, rest = (rest + chunk).split(b"\n")
        for line in lines:
            lineno += 1
            yield lineno, line.removesuffix(b"\r")
    if rest:
        yield lineno + 1, rest.removesuffix(b"\r")


def _decode(value: Any, b64: bool, what: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    if not b64:
        return value.encode()
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError(f"{what} is not valid base64") from None


def parse_record(line: bytes, fmt: str) -> Record | None:
    """The record a line of input holds (None: a blank line in a JSON format).

    Raises:
        ValueError: the line is not a record in ``fmt``.
    """
    if fmt == "text":
        return Record(body=line)
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError('expected a JSON object like {"body": "..."}')
    unknown = set(obj) - _JSON_KEYS
    if unknown:
        field = sorted(unknown)[0]
        raise ValueError(f"unknown field {field!r} (expected body, headers, timestamp)")
    b64 = fmt == "base64"
    headers = obj.get("headers", [])
    if not isinstance(headers, list) or not all(
        isinstance(h, list) and len(h) == 2 for h in headers
    ):
        raise ValueError("headers must be a list of [name, value] pairs")
    ts = obj.get("timestamp")
    if ts is not None and (not isinstance(ts, int) or isinstance(ts, bool) or ts < 0):
        raise ValueError("timestamp must be a non-negative integer")
    return Record(
        body=_decode(obj.get("body", ""), b64, "body"),
        headers=tuple(
            (_decode(n, b64, "header name"), _decode(v, b64, "header value")) for n, v in headers
        ),
        timestamp=ts,
    )


# --- output -------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class NotText(ValueError):
    """A record has bytes that are not UTF-8, so ``--format json`` cannot show it losslessly."""


def _utf8(seq_num: int, data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise NotText(
            f"the record at seq_num {seq_num} is not UTF-8 text, which --format json would "
            "corrupt: use --format base64 (binary safe) or text"
        ) from None


def format_record(r: SequencedRecord, fmt: str) -> bytes | None:
    """A read record as one output line (None: not printed in this format).

    Raises:
        NotText: ``fmt`` is ``json`` and the record's body or a header is not UTF-8.
    """
    if fmt == "text":
        if r.is_command:
            op = r.headers[0][1].decode("utf-8", "replace")
            detail = repr(r.body.decode("utf-8", "replace")) if op == "fence" else ""
            if op == "trim" and len(r.body) == 8:
                detail = f"to seq_num {int.from_bytes(r.body, 'big')}"
            note(f"s2kit: seq_num {r.seq_num}: {op} command record {detail}".rstrip())
            return None
        return r.body + b"\n"
    enc = _b64 if fmt == "base64" else partial(_utf8, r.seq_num)
    obj = {
        "seq_num": r.seq_num,
        "timestamp": r.timestamp,
        "headers": [[enc(n), enc(v)] for n, v in r.headers],
        "body": enc(r.body),
    }
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"
