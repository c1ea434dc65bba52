"""Header parsing for content negotiation (docs/protocol.md#content-negotiation).

Pure functions over header values, shared by the client (to label what it sends) and the server
(to pick a response format). They follow the reference implementation's rules, which are looser
than RFC 9110 in places on purpose: only the first media type of ``Accept`` counts, and S2S frame
compression ignores q-values.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from s2kit.wire._compress import Compression

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "http_encoding_from_accept_encoding",
    "is_json",
    "is_protobuf",
    "is_s2s",
    "is_sse",
    "parse_last_event_id",
    "parse_media_type",
    "parse_s2_format",
    "s2s_compression_from_accept_encoding",
]

_U64_MAX = (1 << 64) - 1
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_PROTOBUF_SUBTYPES = frozenset({"protobuf", "x-protobuf"})
# The accepted spellings of s2-format, after trimming (docs/protocol.md#request-headers).
_S2_FORMATS: dict[str, Literal["raw", "base64"]] = {
    "raw": "raw",
    "json": "raw",
    "base64": "base64",
    "json-binsafe": "base64",
}


def parse_media_type(header: str | None) -> tuple[str, str]:
    """Split the first media type of a ``Content-Type`` or ``Accept`` value.

    Only the first comma-separated entry counts; its parameters are dropped and the type
    and subtype are lowercased.

    Args:
        header: the header value, or ``None`` when absent.

    Returns:
        ``(type, subtype)``; ``("", "")`` when the header is absent or has no ``/``.
    """
    if not header:
        return "", ""
    essence = header.split(",", 1)[0].split(";", 1)[0]
    type_, slash, subtype = essence.partition("/")
    if not slash:
        return "", ""
    return type_.strip().lower(), subtype.strip().lower()


def is_json(header: str | None) -> bool:
    """Whether the first media type is ``application/json`` or ``application/*+json``."""
    type_, subtype = parse_media_type(header)
    return type_ == "application" and (subtype == "json" or subtype.endswith("+json"))


def is_protobuf(header: str | None) -> bool:
    """Whether the first media type is ``application/protobuf`` or ``application/x-protobuf``."""
    type_, subtype = parse_media_type(header)
    return type_ == "application" and subtype in _PROTOBUF_SUBTYPES


def is_s2s(header: str | None) -> bool:
    """Whether the first media type is ``s2s/proto``, which selects a session."""
    return parse_media_type(header) == ("s2s", "proto")


def is_sse(header: str | None) -> bool:
    """Whether the first media type is ``text/event-stream``, which selects SSE."""
    return parse_media_type(header) == ("text", "event-stream")


def _codings(values: Iterable[str]) -> Iterable[tuple[str, str]]:
    # Every header line counts, and each may list several codings (RFC 9110 §12.5.3).
    for value in values:
        for entry in value.split(","):
            name, _, params = entry.partition(";")
            yield name.strip().lower(), params


def s2s_compression_from_accept_encoding(values: Iterable[str]) -> Compression:
    """Choose the compression of a session's server frames from ``Accept-Encoding``.

    ``zstd`` anywhere wins, else ``gzip``, else none. As in the reference server, parameters
    are ignored, so even ``zstd;q=0`` selects zstd.

    Args:
        values: every ``Accept-Encoding`` header line of the request.

    Returns:
        The algorithm for the frames (still subject to the 1 KiB threshold).
    """
    names = {name for name, _ in _codings(values)}
    if "zstd" in names:
        return Compression.ZSTD
    if "gzip" in names:
        return Compression.GZIP
    return Compression.NONE


def _refuses(params: str) -> bool:
    # RFC 9110 §12.4.2: q=0 means "not acceptable". A malformed q counts as a refusal too, so we
    # never send a coding the client may be unable to decode.
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            value = value.strip()
            return _QVALUE.fullmatch(value) is None or float(value) == 0.0
    return False


def http_encoding_from_accept_encoding(values: Iterable[str]) -> Literal["zstd", "gzip"] | None:
    """Choose the ``Content-Encoding`` of an HTTP response body from ``Accept-Encoding``.

    Unlike S2S frame compression this honours ``q=0`` (RFC 9110 §12.5.3): a coding listed with
    ``q=0`` anywhere is refused. Among the acceptable ones zstd is preferred over gzip whatever
    their q-values, as lite does (docs/protocol.md#request-headers). ``*`` is not expanded:
    identity is always safe.

    Args:
        values: every ``Accept-Encoding`` header line of the request.

    Returns:
        ``"zstd"``, ``"gzip"`` or ``None`` (send the body unencoded).
    """
    accepted: set[str] = set()
    refused: set[str] = set()
    for name, params in _codings(values):
        (refused if _refuses(params) else accepted).add(name)
    acceptable = accepted - refused
    if "zstd" in acceptable:
        return "zstd"
    if "gzip" in acceptable:
        return "gzip"
    return None


def parse_s2_format(value: str | None) -> Literal["raw", "base64"]:
    """Parse the ``s2-format`` header of a JSON or SSE append or read.

    Args:
        value: the header value, or ``None`` when absent (meaning ``raw``).

    Returns:
        ``"raw"`` for ``raw`` or ``json``; ``"base64"`` for ``base64`` or ``json-binsafe``.

    Raises:
        ValueError: any other value (the server answers 400 ``bad_header``).
    """
    if value is None:
        return "raw"
    try:
        return _S2_FORMATS[value.strip()]
    except KeyError:
        raise ValueError(
            f"invalid s2-format {value!r}: expected raw, json, base64 or json-binsafe"
        ) from None


def parse_last_event_id(value: str) -> tuple[int, int, int]:
    """Parse an SSE ``Last-Event-ID`` resume token ``seq_num,count,bytes`` (docs/protocol.md#sse).

    Args:
        value: the header value.

    Returns:
        ``(seq_num, count, bytes)``: the last record delivered, and the cumulative record count
        and metered bytes delivered on the earlier connection.

    Raises:
        ValueError: not three comma-separated unsigned 64-bit decimal integers (the server
            answers 400 ``bad_header``).
    """
    parts = value.strip().split(",")
    if len(parts) != 3:
        raise ValueError(f"invalid last-event-id {value!r}: expected seq_num,count,bytes")
    numbers: list[int] = []
    for part in parts:
        # isdigit alone would accept non-ASCII digits and int() would accept "+", "_" and spaces.
        if not (part.isascii() and part.isdigit()):
            raise ValueError(f"invalid last-event-id {value!r}: {part!r} is not a number")
        number = int(part)
        if number > _U64_MAX:
            raise ValueError(f"invalid last-event-id {value!r}: {part} does not fit in 64 bits")
        numbers.append(number)
    return numbers[0], numbers[1], numbers[2]
