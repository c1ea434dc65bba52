"""Client configuration: endpoints, timeouts, retries, compression and batching.

Defaults are those of the official SDKs (s2-api.md §13, retry-safety.md §4.1–§4.2), so code
moving from them behaves the same.
"""

from __future__ import annotations

import enum
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


def _origin(url: str, what: str) -> str:
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url.replace("{basin}", "basin-template"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{what}: expected an http(s) URL, got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"{what}: expected a bare origin without path or query, got {url!r}")
    return url.rstrip("/")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the account and basin APIs live.

    A basin endpoint starting with ``{basin}.`` is a zone: requests for basin ``b`` go to
    ``b.<zone>``. Any other basin endpoint is direct: requests carry an ``s2-basin`` header.
    """

    account: str = "https://a.s2.dev"
    """Account endpoint."""
    basin: str = "https://{basin}.b.s2.dev"
    """Basin endpoint or ``{basin}.`` zone."""

    def __post_init__(self) -> None:
        account = _origin(self.account, "account endpoint")
        basin = _origin(self.basin, "basin endpoint")
        if account.split("://")[0] != basin.split("://")[0]:
            raise UsageError("account and basin endpoints must use the same scheme")
        object.__setattr__(self, "account", account)
        object.__setattr__(self, "basin", basin)

    @classmethod
    def for_url(cls, url: str) -> Endpoints:
        """One URL for both (lite, or any direct endpoint)."""
        return cls(account=url, basin=url)

    @classmethod
    def from_env(cls) -> Endpoints:
        """From ``S2_ACCOUNT_ENDPOINT`` and ``S2_BASIN_ENDPOINT`` (either may be omitted)."""
        default = cls()
        account = os.environ.get("S2_ACCOUNT_ENDPOINT") or default.account
        basin = os.environ.get("S2_BASIN_ENDPOINT") or default.basin
        return cls(account=account, basin=basin)

    @property
    def is_direct(self) -> bool:
        """Whether basin requests need the ``s2-basin`` header."""
        host = self.basin.split("://", 1)[1]
        return not host.startswith("{basin}.")

    def basin_url(self, basin: str) -> str:
        """The origin serving ``basin``."""
        return self.basin if self.is_direct else self.basin.replace("{basin}", basin, 1)
