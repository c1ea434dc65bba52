"""Client configuration: endpoints, timeouts, retries, compression and batching.

Defaults are those of the official SDKs (docs/retry-safety.md#defaults), so code moving from
them behaves the same.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import random
from dataclasses import dataclass
from urllib.parse import urlsplit

from s2kit.errors import UsageError

__all__ = [
    "AppendRetryPolicy",
    "Batching",
    "Compression",
    "Endpoints",
    "ReadSessionRetryPolicy",
    "Retry",
    "Timeout",
]


class Compression(enum.StrEnum):
    """Compression of request bodies and S2S frames (payloads of 1 KiB or more)."""

    NONE = "none"
    ZSTD = "zstd"
    GZIP = "gzip"


class AppendRetryPolicy(enum.StrEnum):
    """Which failed appends may be retried."""

    ALL = "all"
    """Retry every retryable failure; an append may then land twice (use match_seq_num)."""
    NO_SIDE_EFFECTS = "no-side-effects"
    """Retry only when the failed attempt provably appended nothing: never a duplicate."""


class ReadSessionRetryPolicy(enum.StrEnum):
    """How read sessions retry."""

    BUDGETED = "budgeted"
    """``max_attempts`` tries without progress, then fail."""
    INDEFINITE = "indefinite"
    """Keep retrying retryable failures for as long as the session lives."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeout:
    """Timeouts in seconds."""

    connect: float = 3.0
    """TCP + TLS connection setup."""
    request: float = 5.0
    """A whole unary request; also session setup and each append's ack deadline."""

    def __post_init__(self) -> None:
        # A zero or negative deadline would fail every request as a (retried) timeout.
        if not (self.connect > 0 and self.request > 0):
            raise UsageError("timeouts must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """Retry budget and backoff: delay n = base + U[0, base], base = min(min·2^n, max)."""

    max_attempts: int = 3
    """Attempts in total (so ``max_attempts - 1`` retries) per window without progress."""
    min_base_delay: float = 0.1
    """First backoff base, seconds."""
    max_base_delay: float = 1.0
    """Largest backoff base, seconds."""
    append_retry_policy: AppendRetryPolicy = AppendRetryPolicy.ALL
    """Which appends may be retried."""
    read_session_policy: ReadSessionRetryPolicy = ReadSessionRetryPolicy.BUDGETED
    """How read sessions retry."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise UsageError("max_attempts must be at least 1")
        if not 0 <= self.min_base_delay <= self.max_base_delay:
            raise UsageError("need 0 <= min_base_delay <= max_base_delay")

    def backoff(self, retry_index: int) -> float:
        """Delay before retry number ``retry_index`` (0-based)."""
        base = min(self.min_base_delay * 2.0**retry_index, self.max_base_delay)
        return base + random.uniform(0.0, base)


@dataclass(frozen=True, slots=True, kw_only=True)
class Batching:
    """How the producer groups records into batches."""

    linger: float = 0.005
    """Seconds a partial batch waits for more records."""
    max_records: int = 1000
    """Records per batch (1–1000)."""
    max_bytes: int = 1024 * 1024
    """Metered bytes per batch (at most 1 MiB)."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_records <= 1000:
            raise UsageError("max_records must be between 1 and 1000")
        if not 8 <= self.max_bytes <= 1024 * 1024:
            raise UsageError("max_bytes must be between 8 and 1 MiB")
        if self.linger < 0:
            raise UsageError("linger must not be negative")


_CLOUD_ACCOUNT = "https://a.s2.dev"
_CLOUD_BASIN = "https://{basin}.b.s2.dev"


def _is_local_host(host: str) -> bool:
    """Whether ``host`` is an IP literal or a ``localhost`` name: where plain HTTP is common."""
    host = host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _origin(url: str, what: str) -> str:
    if "://" not in url:
        # Without a scheme the official SDKs and CLI assume https. For a local address that
        # guess is as likely wrong as right (lite serves plain HTTP by default) and fails later
        # as an opaque TLS error, so it is refused here with both spellings to choose from.
        host = urlsplit("//" + url.replace("{basin}", "basin-template")).hostname or ""
        if _is_local_host(host):
            raise UsageError(
                f"{what} {url!r} has no scheme: write http://{url} (lite without TLS) "
                f"or https://{url}"
            )
        url = "https://" + url
    parts = urlsplit(url.replace("{basin}", "basin-template"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{what}: expected an http(s) URL, got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"{what}: expected a bare origin without path or query, got {url!r}")
    return url.rstrip("/")


def _is_cloud(url: str) -> bool:
    host = urlsplit(url if "://" in url else "//" + url).hostname or ""
    return host == "s2.dev" or host.endswith(".s2.dev")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the account and basin APIs live.

    A basin endpoint starting with ``{basin}.`` is a zone: requests for basin ``b`` go to
    ``b.<zone>``. Any other basin endpoint is direct: requests carry an ``s2-basin`` header.

    Endpoints are bare origins (``scheme://host[:port]``). Without a scheme, ``https`` is
    assumed, as in the official SDKs, except for local addresses (``localhost``, IP literals),
    which must spell out ``http://`` or ``https://``: lite serves plain HTTP unless started
    with TLS, so guessing either way would be wrong half the time.

    Raises:
        UsageError: not an http(s) origin, a local address without a scheme, or account and
            basin endpoints with different schemes.
    """

    account: str = _CLOUD_ACCOUNT
    """Account endpoint."""
    basin: str = _CLOUD_BASIN
    """Basin endpoint or ``{basin}.`` zone."""

    def __post_init__(self) -> None:
        account = _origin(self.account, "account endpoint")
        basin = _origin(self.basin, "basin endpoint")
        if account.split("://")[0] != basin.split("://")[0]:
            raise UsageError(
                f"account endpoint {account} and basin endpoint {basin} must use the same scheme"
            )
        object.__setattr__(self, "account", account)
        object.__setattr__(self, "basin", basin)

    @classmethod
    def for_url(cls, url: str) -> Endpoints:
        """One URL for both (lite, or any direct endpoint)."""
        return cls(account=url, basin=url)

    @classmethod
    def default(cls) -> Endpoints:
        """The S2 cloud (the official SDK's spelling of ``Endpoints()``)."""
        return cls()

    @classmethod
    def derive(cls, account: str | None = None, basin: str | None = None) -> Endpoints:
        """Endpoints from whichever of the two is known.

        A missing one follows the given one when that is a direct origin outside the S2 cloud
        (lite and other single-origin servers serve both APIs on one URL); otherwise it is the
        S2 cloud default.

        Raises:
            UsageError: as :class:`Endpoints`; a scheme mismatch with a cloud default says
                which endpoint was missing.
        """
        defaulted: str | None = None
        if account and not basin:
            basin = account if not _is_cloud(account) else None
            defaulted = "basin" if basin is None else None
        elif basin and not account:
            zone = basin.split("://", 1)[-1].startswith("{basin}.")
            account = basin if not zone and not _is_cloud(basin) else None
            defaulted = "account" if account is None else None
        account = _origin(account or _CLOUD_ACCOUNT, "account endpoint")
        basin = _origin(basin or _CLOUD_BASIN, "basin endpoint")
        if defaulted and account.split("://")[0] != basin.split("://")[0]:
            given = "account" if defaulted == "basin" else "basin"
            default = basin if defaulted == "basin" else account
            raise UsageError(
                f"the {given} endpoint is set but the {defaulted} endpoint is not, and the "
                f"S2 cloud default for it, {default}, uses another scheme: set the "
                f"{defaulted} endpoint too (for lite: the same URL)"
            )
        return cls(account=account, basin=basin)

    @classmethod
    def from_env(cls) -> Endpoints:
        """From ``S2_ACCOUNT_ENDPOINT`` and ``S2_BASIN_ENDPOINT``; either may be unset (see
        :meth:`derive` for what stands in for it), both unset means the S2 cloud."""
        return cls.derive(
            os.environ.get("S2_ACCOUNT_ENDPOINT") or None,
            os.environ.get("S2_BASIN_ENDPOINT") or None,
        )

    @property
    def is_direct(self) -> bool:
        """Whether basin requests need the ``s2-basin`` header."""
        host = self.basin.split("://", 1)[1]
        return not host.startswith("{basin}.")

    def basin_url(self, basin: str) -> str:
        """The origin serving ``basin``."""
        return self.basin if self.is_direct else self.basin.replace("{basin}", basin, 1)
