"""The one place where foreign exceptions become s2kit errors.

Every call into ``h2``, the socket layer or ``ssl`` runs inside an :class:`ExceptionMap`, a
context manager with a per-operation table from exception type to error factory; it always
raises ``from`` the original. Failures that arrive as callbacks instead of exceptions (the
transport was lost, a keepalive PING went unanswered) are built with :func:`chain`.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, TypeVar

import h2.exceptions
import hyperframe.exceptions

from s2kit.errors import LocalProtocolError, RemoteProtocolError, S2Error, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

__all__ = ["LOCAL_H2", "REMOTE_H2", "ExceptionMap", "chain", "tls_hint"]

E = TypeVar("E", bound=S2Error)


class ExceptionMap:
    """Translate exceptions of the listed types; let s2kit errors and anything else through.

    Args:
        table: ``(exception type, factory)`` pairs, tried in order (list subclasses first).
    """

    __slots__ = ("_table",)

    def __init__(
        self, table: Sequence[tuple[type[BaseException], Callable[[BaseException], S2Error]]]
    ) -> None:
        self._table = tuple(table)

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, S2Error):
            return
        for from_type, make in self._table:
            if isinstance(exc, from_type):
                raise make(exc) from exc


def chain(error: E, cause: BaseException | None) -> E:
    """Return ``error`` with ``cause`` as its ``__cause__`` (for errors that are not raised)."""
    error.__cause__ = cause
    return error


UNTRUSTED_CERTIFICATE = (
    "the server's certificate is not trusted: for `s2kit lite --tls-self`, export the "
    "SSL_CERT_FILE line lite printed; or skip verification: S2_SSL_NO_VERIFY=1 for "
    "S2.from_env() and the s2kit CLI, --insecure on the CLI"
)
NOT_TLS = (
    "the server does not speak TLS there: use http:// for lite started without TLS; an "
    "endpoint without a scheme means https"
)


def tls_hint(exc: BaseException) -> str:
    """What to do about a failed TLS handshake, told apart by OpenSSL's reason; "" if nothing.

    The one definition of these hints: the HTTP/2 pool and the HTTP/1.1 transport put them in
    their :class:`~s2kit.errors.ConnectError`, and the CLI prints that error as it is.
    """
    text = str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return UNTRUSTED_CERTIFICATE
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return NOT_TLS
    return ""


#: Our own calls into ``h2`` (headers, data, resets): a failure there is our bug or bad usage.
LOCAL_H2 = ExceptionMap(
    [
        (UnicodeError, lambda exc: UsageError(f"header is not latin-1: {exc}")),
        (h2.exceptions.H2Error, lambda exc: LocalProtocolError(f"HTTP/2: {exc}")),
    ]
)

#: Feeding the server's bytes to ``h2``: a failure there is the server breaking HTTP/2.
REMOTE_H2 = ExceptionMap(
    [
        (h2.exceptions.H2Error, lambda exc: RemoteProtocolError(f"HTTP/2 from server: {exc}")),
        (
            hyperframe.exceptions.HyperframeError,
            lambda exc: RemoteProtocolError(f"bad HTTP/2 frame from server: {exc}"),
        ),
    ]
)
