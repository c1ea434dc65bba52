"""Every exception s2kit raises, and the one table that says how each may be retried.

The tree::

    S2Error
    ├── TransportError            the network failed (never reported as a client error)
    │   ├── ConnectError          no request byte can have left (DNS, refused, TLS, timeout)
    │   ├── ReadError / WriteError
    │   ├── ConnectionLost        the connection died after the request was handed off
    │   ├── StreamReset           RST_STREAM from the peer (REFUSED_STREAM is side-effect free)
    │   ├── GoAway                GOAWAY that covers or does not cover the request
    │   └── RequestTimeout        a request, init or ack deadline passed
    ├── ProtocolError
    │   ├── LocalProtocolError    we broke the protocol (a bug or bad usage)
    │   └── RemoteProtocolError   the peer broke it (bad frame, bad ack, bad body)
    │       └── FrameError        a malformed S2S frame (``bad_frame`` when the server sees it)
    ├── ServerError               an HTTP status with an S2 error code and message
    │   ├── AppendConditionFailed (412)
    │   │   ├── FencingTokenMismatch
    │   │   └── SeqNumMismatch
    │   └── ReadUnwritten (416)
    ├── UsageError                the caller passed something invalid (also a ValueError)
    ├── ClosedError               you closed it
    └── BrokenError               the peer or the network broke it for good

Retry semantics (docs/retry-safety.md#error-classification) are attributes of the error:

* ``is_retryable``: a later attempt may succeed;
* ``has_no_side_effects``: the operation certainly changed nothing on the server, in *any* of
  its attempts (docs/outcomes.md): an append whose first attempt may have landed stays
  indefinite whatever a later attempt failed with (``earlier_indefinite`` then names that
  first attempt's error);
* ``is_indefinite`` (appends): the outcome is unknown, the input may or may not have landed.

Server codes map to exactly one status; a code that arrives with another status fails closed
(neither retryable nor side-effect free).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from s2kit.types import StreamPosition

__all__ = [
    "AppendConditionFailed",
    "BrokenError",
    "ClosedError",
    "ConnectError",
    "ConnectionLost",
    "ErrorCode",
    "FencingTokenMismatch",
    "FrameError",
    "GoAway",
    "LocalProtocolError",
    "ProtocolError",
    "ReadError",
    "ReadUnwritten",
    "RemoteProtocolError",
    "RequestTimeout",
    "S2Error",
    "SeqNumMismatch",
    "ServerError",
    "StreamReset",
    "TransportError",
    "UsageError",
    "WriteError",
]


@dataclass(frozen=True, slots=True)
class _CodeSpec:
    status: int
    retryable: bool
    no_side_effects: bool


class ErrorCode(enum.StrEnum):
    """The S2 error codes (docs/protocol.md#error-codes), each with its one HTTP status."""

    ACCESS_TOKEN_NOT_FOUND = "access_token_not_found"
    AUTHN = "authn"
    BAD_FRAME = "bad_frame"
    BAD_HEADER = "bad_header"
    BAD_JSON = "bad_json"
    BAD_PATH = "bad_path"
    BAD_PROTO = "bad_proto"
    BAD_QUERY = "bad_query"
    BASIN_DELETION_PENDING = "basin_deletion_pending"
    BASIN_NOT_FOUND = "basin_not_found"
    CLIENT_HANGUP = "client_hangup"
    DECRYPTION_FAILED = "decryption_failed"
    HOT_SERVER = "hot_server"
    INVALID = "invalid"
    NOT_IMPLEMENTED = "not_implemented"
    OTHER = "other"
    PERMISSION_DENIED = "permission_denied"
    QUOTA_EXHAUSTED = "quota_exhausted"
    RATE_LIMITED = "rate_limited"
    REQUEST_TIMEOUT = "request_timeout"
    RESOURCE_ALREADY_EXISTS = "resource_already_exists"
    SERVER_DRAINING = "server_draining"
    STORAGE = "storage"
    STREAM_DELETION_PENDING = "stream_deletion_pending"
    STREAM_NOT_FOUND = "stream_not_found"
    TRANSACTION_CONFLICT = "transaction_conflict"
    UNAVAILABLE = "unavailable"
    UPSTREAM_TIMEOUT = "upstream_timeout"

    @property
    def status(self) -> int:
        """The HTTP status this code is always sent with."""
        return _CODES[self].status

    @property
    def retryable(self) -> bool:
        """Whether a request that failed with this code may be retried."""
        return _CODES[self].retryable

    @property
    def no_side_effects(self) -> bool:
        """Whether the server guarantees the failed request changed nothing."""
        return _CODES[self].no_side_effects


_C = ErrorCode
# `unavailable` is *not* side-effect free (G3), `server_draining` is:
# docs/retry-safety.md#error-classification.
_CODES: dict[ErrorCode, _CodeSpec] = {
    _C.ACCESS_TOKEN_NOT_FOUND: _CodeSpec(404, False, True),
    _C.AUTHN: _CodeSpec(401, False, True),
    _C.BAD_FRAME: _CodeSpec(400, False, True),
    _C.BAD_HEADER: _CodeSpec(400, False, True),
    _C.BAD_JSON: _CodeSpec(400, False, True),
    _C.BAD_PATH: _CodeSpec(400, False, True),
    _C.BAD_PROTO: _CodeSpec(400, False, True),
    _C.BAD_QUERY: _CodeSpec(400, False, True),
    _C.BASIN_DELETION_PENDING: _CodeSpec(409, False, True),
    _C.BASIN_NOT_FOUND: _CodeSpec(404, False, True),
    _C.CLIENT_HANGUP: _CodeSpec(499, False, False),
    _C.DECRYPTION_FAILED: _CodeSpec(400, False, True),
    _C.HOT_SERVER: _CodeSpec(502, True, True),
    _C.INVALID: _CodeSpec(422, False, True),
    _C.NOT_IMPLEMENTED: _CodeSpec(501, False, True),
    _C.OTHER: _CodeSpec(500, True, False),
    _C.PERMISSION_DENIED: _CodeSpec(403, False, True),
    _C.QUOTA_EXHAUSTED: _CodeSpec(403, False, True),
    _C.RATE_LIMITED: _CodeSpec(429, True, True),
    _C.REQUEST_TIMEOUT: _CodeSpec(408, True, False),
    _C.RESOURCE_ALREADY_EXISTS: _CodeSpec(409, False, True),
    _C.SERVER_DRAINING: _CodeSpec(503, True, True),
    _C.STORAGE: _CodeSpec(500, True, False),
    _C.STREAM_DELETION_PENDING: _CodeSpec(409, False, True),
    _C.STREAM_NOT_FOUND: _CodeSpec(404, False, True),
    _C.TRANSACTION_CONFLICT: _CodeSpec(409, True, True),
    _C.UNAVAILABLE: _CodeSpec(503, True, False),
    _C.UPSTREAM_TIMEOUT: _CodeSpec(504, True, False),
}

# An unknown code is retryable only on these statuses, and never side-effect free.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class S2Error(Exception):
    """Root of every s2kit exception.

    Attributes:
        earlier_indefinite: set when an earlier attempt of the same append ended without a
            verdict after its bytes were handed off (that attempt's error): the input may
            have landed then, so ``has_no_side_effects`` is False whatever this error says
            of its own attempt.
    """

    is_retryable: ClassVar[bool] = False
    _applied_nothing: ClassVar[bool] = False
    """Whether the failed attempt itself certainly changed nothing (per class or instance)."""
    earlier_indefinite: S2Error | None = None

    @property
    def has_no_side_effects(self) -> bool:
        """The operation certainly changed nothing on the server, in any attempt."""
        return self._applied_nothing and self.earlier_indefinite is None

    @property
    def is_indefinite(self) -> bool:
        """For an append: the input may or may not have been applied."""
        return not self.has_no_side_effects

    def __str__(self) -> str:
        text = super().__str__()
        if self.earlier_indefinite is not None:
            text += f" (an earlier attempt may have applied it: {self.earlier_indefinite})"
        return text


def indefinite_after(error: S2Error, earlier: S2Error | None) -> S2Error:
    """``error`` as the outcome of an append an earlier attempt of which may have landed.

    Error precedence (docs/outcomes.md): once an attempt of an append ended without a verdict
    after its bytes were handed off, the append's outcome stays indefinite, whatever later
    attempts fail with. The error keeps its type (why the retries stopped); a copy carries
    ``earlier_indefinite``, so an error object shared with other operations (a failed
    connect is every waiter's) is never changed.
    """
    if earlier is None or error is earlier or not error.has_no_side_effects:
        return error
    copy = type(error).__new__(type(error), *error.args)
    copy.__dict__.update(error.__dict__)
    copy.__cause__ = error.__cause__
    copy.__context__ = error.__context__
    copy.__suppress_context__ = error.__suppress_context__
    copy.earlier_indefinite = earlier
    return copy


# --- transport --------------------------------------------------------------------------------


class TransportError(S2Error):
    """The network failed. Retryable; side effects unknown unless a subclass says otherwise."""

    is_retryable = True


class ConnectError(TransportError):
    """The connection could not be set up: DNS, refused, connect timeout or TLS handshake.

    Not retryable when it is a configuration error that a retry cannot fix (``retryable=False``:
    the server's certificate does not verify, or it does not offer HTTP/2; scenarios C4a and C4c of
    docs/retry-safety.md#connecting-no-request-byte-can-leave).

    Attributes:
        hint: what to do about it, when the cause says (a self-signed certificate, plain HTTP
            where TLS was expected); also at the end of the message, in parentheses. Empty
            when there is nothing specific to say.
    """

    _applied_nothing = True

    def __init__(
        self, message: str = "cannot connect", *, retryable: bool = True, hint: str = ""
    ) -> None:
        super().__init__(f"{message} ({hint})" if hint else message)
        self.retryable = retryable
        self.hint = hint

    @property
    def is_retryable(self) -> bool:  # type: ignore[override]
        return self.retryable


class ReadError(TransportError):
    """Reading from the connection failed."""


class WriteError(TransportError):
    """Writing to the connection failed."""


class ConnectionLost(TransportError):
    """The connection closed or reset while the request was in progress."""

    def __init__(self, message: str = "connection lost", *, data_sent: bool = True) -> None:
        super().__init__(message)
        self.data_sent = data_sent

    @property
    def _applied_nothing(self) -> bool:  # type: ignore[override]
        return not self.data_sent


class StreamReset(TransportError):
    """The peer reset the HTTP/2 stream (RST_STREAM) with ``error_code``."""

    REFUSED_STREAM: ClassVar[int] = 0x7

    def __init__(self, error_code: int, message: str | None = None) -> None:
        super().__init__(message or f"stream reset by peer (error code {error_code:#x})")
        self.error_code = error_code

    @property
    def _applied_nothing(self) -> bool:  # type: ignore[override]
        # RFC 9113 §8.7: REFUSED_STREAM means no application processing happened.
        return self.error_code == self.REFUSED_STREAM


class GoAway(TransportError):
    """The peer sent GOAWAY; ``processed`` tells whether it may have handled this request."""

    def __init__(self, error_code: int, last_stream_id: int, *, processed: bool) -> None:
        super().__init__(
            f"connection going away (error code {error_code:#x}, last stream {last_stream_id})"
        )
        self.error_code = error_code
        self.last_stream_id = last_stream_id
        self.processed = processed

    @property
    def _applied_nothing(self) -> bool:  # type: ignore[override]
        # RFC 9113 §6.8: streams above last_stream_id were never processed.
        return not self.processed


class RequestTimeout(TransportError):
    """A request, session-setup or ack deadline passed."""


# --- protocol ---------------------------------------------------------------------------------


class ProtocolError(S2Error):
    """A protocol rule was broken."""


class LocalProtocolError(ProtocolError):
    """We broke the protocol."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol: an undecodable body, a bad ack, a bad frame."""


class FrameError(RemoteProtocolError):
    """A malformed S2S frame."""


# --- server -----------------------------------------------------------------------------------


class ServerError(S2Error):
    """The server answered with an error status and an S2 error code.

    Attributes:
        status: the HTTP status.
        code: the S2 error code as sent (an :class:`ErrorCode` when known).
        message: the server's message.
        retry_after_ms: the ``retry-after-ms`` header, when sent.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms

    @classmethod
    def for_code(cls, code: ErrorCode, message: str) -> ServerError:
        """An error with ``code`` and its canonical status."""
        return cls(code.status, code.value, message)

    @property
    def known_code(self) -> ErrorCode | None:
        """The code, if it is known and arrived with its canonical status (fail closed)."""
        try:
            code = ErrorCode(self.code)
        except ValueError:
            return None
        return code if code.status == self.status else None

    @property
    def is_retryable(self) -> bool:  # type: ignore[override]
        code = self.known_code
        if code is not None:
            return code.retryable
        try:
            ErrorCode(self.code)
        except ValueError:
            return self.status in RETRYABLE_STATUSES
        return False  # a known code with the wrong status

    @property
    def _applied_nothing(self) -> bool:  # type: ignore[override]
        code = self.known_code
        return code is not None and code.no_side_effects


class AppendConditionFailed(ServerError):
    """412: an append's ``fencing_token`` or ``match_seq_num`` condition failed."""

    is_retryable = False
    _applied_nothing = True

    def __init__(self, message: str) -> None:
        super().__init__(412, "append_condition_failed", message)


class FencingTokenMismatch(AppendConditionFailed):
    """412: the stream's fencing token is ``expected``, not the one sent."""

    def __init__(self, expected: str) -> None:
        super().__init__(f"fencing token mismatch: stream's token is {expected!r}")
        self.expected = expected


class SeqNumMismatch(AppendConditionFailed):
    """412: the next seq_num of the stream is ``expected``, not ``match_seq_num``."""

    def __init__(self, expected: int) -> None:
        super().__init__(f"seq_num mismatch: next seq_num is {expected}")
        self.expected = expected


class ReadUnwritten(ServerError):
    """416: the read starts beyond the tail (or at it, when it cannot wait)."""

    is_retryable = False
    _applied_nothing = True

    def __init__(self, tail: StreamPosition) -> None:
        super().__init__(416, "read_unwritten", f"start is beyond the tail {tail.seq_num}")
        self.tail = tail


# --- usage and lifecycle ----------------------------------------------------------------------


class UsageError(S2Error, ValueError):
    """The caller passed something invalid; nothing was sent."""

    _applied_nothing = True


class ClosedError(S2Error):
    """The object was closed by its owner.

    ``maybe_applied`` is set on the tickets of appends that were already handed to the network
    when their session was aborted: their outcome is unknown (``is_indefinite``).
    """

    def __init__(self, message: str = "closed", *, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied

    @property
    def _applied_nothing(self) -> bool:  # type: ignore[override]
        return not self.maybe_applied


class BrokenError(S2Error):
    """The object was broken by the peer or the network and cannot be used again."""
