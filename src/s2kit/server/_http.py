"""HTTP helpers shared by lite's handlers: query parsing, bodies, JSON and error responses.

Everything here maps S2 semantics onto the front's ``Request``/``Responder`` and nothing else,
so handlers read as the spec reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, unquote_to_bytes

from s2kit.errors import (
    ErrorCode,
    FencingTokenMismatch,
    ReadUnwritten,
    SeqNumMismatch,
    ServerError,
)
from s2kit.server._auth import OPEN
from s2kit.server._catalog import err as err
from s2kit.wire import _compress, _negotiate
from s2kit.wire._json import JsonInvalid, JsonShapeError, dumps, encode_error, encode_tail, loads

if TYPE_CHECKING:
    from s2kit.server._front import Request, Responder
    from s2kit.server._memory import Share
    from s2kit.server._routes import Match

T = TypeVar("T")

MAX_BODY = 8 * 1024 * 1024
"""Largest unary request body accepted (a 1 MiB batch in base64 JSON fits with room)."""
COMPRESS_MIN = 1024
JSON_CT = ("content-type", "application/json")


def error_body(exc: ServerError) -> tuple[int, bytes]:
    """Status and JSON body for an error, including the 412 and 416 shapes."""
    if isinstance(exc, FencingTokenMismatch):
        return 412, dumps({"fencing_token_mismatch": exc.expected}).encode()
    if isinstance(exc, SeqNumMismatch):
        return 412, dumps({"seq_num_mismatch": exc.expected}).encode()
    if isinstance(exc, ReadUnwritten):
        return 416, encode_tail(exc.tail).encode()
    return exc.status, encode_error(exc.code, exc.message).encode()


# --- query ------------------------------------------------------------------------------------


MAX_QUERY_FIELDS = 64
"""More parameters than any S2 request has (a read takes eight), with room."""
_U64_DIGITS = 20  # 2**64 - 1 has 20 decimal digits


class Query:
    """Parsed query parameters; bad values raise ``bad_query``.

    Strict as s2-lite's typed query extraction is: each name at most once, values valid UTF-8
    after percent-decoding, integers in ASCII digits only (``str.isdigit`` and ``int`` would
    take ``１``, ``٣`` or ``1_000``). Unknown names are ignored.
    """

    def __init__(self, raw: str) -> None:
        try:
            # The front decodes the request target as latin-1, one char per byte: back to the
            # bytes and decoded as UTF-8, then percent-decoded as UTF-8 too, both strictly (no
            # mojibake, no lone surrogates).
            decoded = parse_qsl(
                raw.encode("latin-1").decode(),
                keep_blank_values=True,
                errors="strict",
                max_num_fields=MAX_QUERY_FIELDS,
            )
        except UnicodeError:
            raise err(ErrorCode.BAD_QUERY, "invalid query string: not valid UTF-8") from None
        except ValueError:
            raise err(
                ErrorCode.BAD_QUERY, f"invalid query string: more than {MAX_QUERY_FIELDS} fields"
            ) from None
        self._values: dict[str, str] = {}
        for k, v in decoded:
            if k in self._values:
                raise err(ErrorCode.BAD_QUERY, f"duplicate query parameter `{k}`")
            self._values[k] = v

    def has(self, name: str) -> bool:
        """Whether ``name`` was given."""
        return name in self._values

    def text(self, name: str, default: str = "") -> str:
        """A string parameter."""
        return self._values.get(name, default)

    def _conv(self, name: str, conv: Callable[[str], T]) -> T | None:
        raw = self._values.get(name)
        if raw is None:
            return None
        try:
            return conv(raw)
        except ValueError:
            raise err(ErrorCode.BAD_QUERY, f"invalid query parameter `{name}`: {raw!r}") from None

    def u64(self, name: str, *, bits: int = 64) -> int | None:
        """An unsigned integer parameter (ASCII decimal digits only)."""

        def conv(raw: str) -> int:
            if not (raw.isascii() and raw.isdigit()) or len(raw.lstrip("0")) > _U64_DIGITS:
                raise ValueError(raw)
            value = int(raw)
            if value >= 1 << bits:
                raise ValueError(raw)
            return value

        return self._conv(name, conv)

    def flag(self, name: str) -> bool:
        """A boolean parameter (``true``/``false``)."""

        def conv(raw: str) -> bool:
            if raw in ("true", "false"):
                return raw == "true"
            raise ValueError(raw)

        return bool(self._conv(name, conv))


def path_segment(raw: str) -> str:
    """Percent-decode one path segment (names may contain ``/``) as UTF-8."""
    try:
        # As for the query: the latin-1 text is the raw bytes; decode them, escapes and all.
        return unquote_to_bytes(raw.encode("latin-1")).decode()
    except UnicodeError:
        raise err(ErrorCode.BAD_PATH, "path segment is not valid UTF-8") from None


# --- bodies -----------------------------------------------------------------------------------


async def read_body(request: Request, limit: int = MAX_BODY, share: Share | None = None) -> bytes:
    """The whole request body, decompressed per ``Content-Encoding``.

    With ``share``, the body is charged to the memory budget as it grows: when the budget is
    full the read waits, the unread bytes stay with the client (flow control), and a client
    that then stalls meets the front's body deadline.
    """
    from s2kit.server._front import BodyTooLarge

    declared = request.header("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise err(ErrorCode.INVALID, "request body too large")
    if share is None:
        try:
            body = await request.read_all(limit)
        except BodyTooLarge:
            raise err(ErrorCode.INVALID, "request body too large") from None
    else:
        # Room for the chunks and their join (a growing bytearray may hold twice what it has).
        # A declared length is taken up front, waiting while holding nothing; a body of
        # unknown length grows its share as it arrives (a client that then stalls, holding
        # room, meets the front's body deadline).
        if declared is not None and declared.isdigit():
            await share.ensure(2 * int(declared))
        parts: list[bytes] = []
        size = 0
        while (chunk := await request.read_chunk()) is not None:
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                raise err(ErrorCode.INVALID, "request body too large")
            await share.ensure(2 * size)
        body = b"".join(parts)
        parts.clear()
    encoding = (request.header("content-encoding") or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    try:
        return _compress.decompress_body(body, encoding, max_size=limit)
    except ValueError as exc:
        raise err(ErrorCode.BAD_HEADER, f"Invalid header `content-encoding`: {exc}") from None


def json_body(body: bytes, *, required: bool = True) -> Any:
    """Parse a JSON body (``bad_json`` on any failure, as lite does)."""
    if not body:
        if required:
            raise err(ErrorCode.BAD_JSON, "Failed to parse the request body as JSON: empty body")
        return None
    try:
        return loads(body)
    except JsonShapeError as exc:
        raise err(ErrorCode.BAD_JSON, f"Failed to parse the request body as JSON: {exc}") from None


def require_json_content_type(request: Request) -> None:
    """JSON bodies need a JSON content type (docs/protocol.md#content-negotiation)."""
    if not _negotiate.is_json(request.header("content-type")):
        raise err(ErrorCode.BAD_JSON, "Expected request with `Content-Type: application/json`")


def from_json(conv: Callable[[Any], T], value: Any) -> T:
    """Run a wire converter, mapping shape errors to ``bad_json`` and invalid values to 422."""
    try:
        return conv(value)
    except JsonShapeError as exc:
        raise err(ErrorCode.BAD_JSON, f"Failed to deserialize the JSON body: {exc}") from None
    except JsonInvalid as exc:
        raise err(ErrorCode.INVALID, str(exc)) from None


# --- responses --------------------------------------------------------------------------------


class Reply:
    """Response helpers bound to one exchange: compression and CORS applied uniformly.

    ``share`` is the exchange's share of lite's memory budget (``_memory.py``): what it
    buffers for its client (a body being received, a batch being sent) is charged to it.
    """

    def __init__(
        self,
        request: Request,
        responder: Responder,
        extra: list[tuple[str, str]],
        share: Share | None = None,
    ):
        self.request = request
        self.responder = responder
        self.extra = extra
        self.share = share
        self.route: Match | None = None
        """The request's route once the app has classified it (``_routes.py``)."""
        self.guard = OPEN
        """What the request's access token allows (``_auth.py``); everything without auth."""
        self.status = 0
        """The status of a response sent through this reply (0: none yet, or a session the
        handler started on the responder itself): for metrics and logs (``_observe.py``)."""

    async def send(
        self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None
    ) -> None:
        """A complete response; bodies of 1 KiB or more are compressed when accepted."""
        hdrs = list(headers or [])
        if len(body) >= COMPRESS_MIN:
            enc = _negotiate.http_encoding_from_accept_encoding(
                self.request.header_all("accept-encoding")
            )
            if enc is not None:
                body = _compress.compress_body(body, enc)
                hdrs.append(("content-encoding", enc))
                hdrs.append(("vary", "accept-encoding"))
        self.status = status
        await self.responder.respond(status, hdrs + self.extra, body)

    async def json(
        self, status: int, obj: Any, headers: list[tuple[str, str]] | None = None
    ) -> None:
        """A JSON response."""
        await self.send(status, dumps(obj).encode(), [JSON_CT, *(headers or [])])

    async def error(self, exc: ServerError) -> None:
        """An S2 error response."""
        status, body = error_body(exc)
        self.status = status
        await self.responder.respond(status, [JSON_CT, *self.extra], body)

    async def empty(self, status: int) -> None:
        """An empty response."""
        self.status = status
        await self.responder.respond(status, list(self.extra), b"")
