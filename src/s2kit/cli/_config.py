"""Where the CLI connects and what it operates on: settings, ``s2://`` URIs, durations.

Settings come from flags first, then the environment (``S2_ACCESS_TOKEN``,
``S2_ACCOUNT_ENDPOINT``, ``S2_BASIN_ENDPOINT``, ``S2_SSL_NO_VERIFY``), then the user's
configuration file (``s2kit config``, :mod:`s2kit.cli._config_file`), then the S2 cloud
defaults. With one endpoint given, the other follows :meth:`s2kit.Endpoints.derive`.

Every parsing helper raises :class:`CliUsageError` (exit code 2) or, when used as an argparse
``type=``, :class:`argparse.ArgumentTypeError`, so a bad value never reaches the server.
"""

from __future__ import annotations

import argparse
import os
import re
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from s2kit import S2, AppendRetryPolicy, Endpoints, Retry, Timeout
from s2kit.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_REQUEST_TIMEOUT = 30.0
"""The official CLI's request timeout (docs/retry-safety.md#timeouts), longer than the SDK's 5 s."""

MAX_STREAM_NAME_BYTES = 512
"""Stream names are 1-512 bytes of UTF-8 (and not ``.`` or ``..``)."""
_BASIN_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-zµ]+)")
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
}


class CliUsageError(Exception):
    """Bad input found after argument parsing: reported on one line, exit code 2."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """How to reach S2."""

    access_token: str
    endpoints: Endpoints
    insecure: bool
    request_timeout: float
    json: bool


def settings_from(args: argparse.Namespace) -> Settings:
    """Resolve the connection settings from the global flags and the environment.

    Raises:
        CliUsageError: no access token, an endpoint that is not an http(s) origin, or a
            configuration file that cannot be read.
    """
    from s2kit.cli._config_file import ConfigFileError, load

    try:
        saved = load()
    except ConfigFileError as exc:
        raise CliUsageError(str(exc)) from None
    token = (
        getattr(args, "access_token", None)
        or os.environ.get("S2_ACCESS_TOKEN")
        or saved.get("access_token")
    )
    if not token:
        raise CliUsageError(
            "no access token: set S2_ACCESS_TOKEN, pass --access-token or run "
            "`s2kit config set access_token TOKEN` (lite ignores it: any value will do)"
        )
    both = getattr(args, "endpoint", None)
    account = (
        getattr(args, "account_endpoint", None)
        or both
        or os.environ.get("S2_ACCOUNT_ENDPOINT")
        or saved.get("account_endpoint")
    )
    basin = (
        getattr(args, "basin_endpoint", None)
        or both
        or os.environ.get("S2_BASIN_ENDPOINT")
        or saved.get("basin_endpoint")
    )
    try:
        endpoints = Endpoints.derive(account, basin)
    except UsageError as exc:
        raise CliUsageError(str(exc)) from None
    no_verify = os.environ.get("S2_SSL_NO_VERIFY") or saved.get("ssl_no_verify", "")
    insecure = bool(getattr(args, "insecure", False)) or no_verify.lower() in ("1", "true", "yes")
    timeout = getattr(args, "request_timeout", None)
    if timeout is None and "request_timeout" in saved:
        timeout = parse_duration(saved["request_timeout"])
    return Settings(
        access_token=token,
        endpoints=endpoints,
        insecure=insecure,
        request_timeout=DEFAULT_REQUEST_TIMEOUT if timeout is None else timeout,
        json=bool(getattr(args, "json", False)),
    )


def make_client(settings: Settings, *, no_side_effects: bool = False) -> S2:
    """An :class:`~s2kit.S2` client for ``settings``."""
    ctx = None
    if settings.insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    retry = Retry(
        append_retry_policy=(
            AppendRetryPolicy.NO_SIDE_EFFECTS if no_side_effects else AppendRetryPolicy.ALL
        )
    )
    return S2(
        settings.access_token,
        endpoints=settings.endpoints,
        timeout=Timeout(request=settings.request_timeout),
        retry=retry,
        ssl_context=ctx,
    )


# --- names and URIs -----------------------------------------------------------------------------


def check_basin(name: str) -> str:
    """``name`` if it is a valid basin name (docs/protocol.md#names-and-limits)."""
    if not 8 <= len(name) <= 48 or not _BASIN_RE.match(name):
        raise argparse.ArgumentTypeError(
            f"invalid basin name {name!r}: 8-48 lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    return name


def _split_uri(text: str) -> tuple[str, str | None]:
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme != "s2":
            raise argparse.ArgumentTypeError(f"malformed URI {text!r}: expected s2://BASIN/STREAM")
    elif text.startswith("s2:"):
        raise argparse.ArgumentTypeError(f"malformed URI {text!r}: expected s2://BASIN/STREAM")
    else:
        rest = text
    basin, sep, stream = rest.partition("/")
    if not basin:
        raise argparse.ArgumentTypeError(f"malformed URI {text!r}: the basin is missing")
    check_basin(basin)
    return basin, (stream if sep else None)


def basin_arg(text: str) -> str:
    """argparse type: ``BASIN`` or ``s2://BASIN``."""
    basin, stream = _split_uri(text)
    if stream:
        raise argparse.ArgumentTypeError(f"expected a basin, got the stream URI {text!r}")
    return basin


@dataclass(frozen=True, slots=True)
class StreamUri:
    """``s2://BASIN/STREAM``."""

    basin: str
    stream: str

    def __str__(self) -> str:
        return f"s2://{self.basin}/{self.stream}"


def stream_arg(text: str) -> StreamUri:
    """argparse type: ``s2://BASIN/STREAM`` (the stream name may contain ``/``)."""
    if "://" not in text:
        raise argparse.ArgumentTypeError(f"malformed URI {text!r}: expected s2://BASIN/STREAM")
    basin, stream = _split_uri(text)
    if not stream:
        raise argparse.ArgumentTypeError(f"malformed URI {text!r}: the stream name is missing")
    size = len(stream.encode(errors="surrogateescape"))
    if size > MAX_STREAM_NAME_BYTES:
        raise argparse.ArgumentTypeError(
            f"stream name too long: {size} bytes, at most {MAX_STREAM_NAME_BYTES} are allowed"
        )
    if stream in (".", ".."):
        raise argparse.ArgumentTypeError(f"invalid stream name {stream!r}")
    return StreamUri(basin, stream)


def basin_prefix_arg(text: str) -> tuple[str, str]:
    """argparse type: ``s2://BASIN[/PREFIX]`` or ``BASIN``: a basin and a stream-name prefix."""
    basin, prefix = _split_uri(text)
    return basin, prefix or ""


# --- values -------------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds in ``text``: humantime (``60s``, ``5m``, ``1h 30m``, ``250ms``) or a bare number
    of seconds."""
    s = text.strip().lower()
    try:
        value = float(s)
    except ValueError:
        pass
    else:
        if value < 0:
            raise argparse.ArgumentTypeError(f"invalid duration {text!r}: negative")
        return value
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(s):
        if s[pos : m.start()].strip() or m.group(2) not in _UNITS:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    else:
        if pos and not s[pos:].strip():
            return total
    raise argparse.ArgumentTypeError(
        f"invalid duration {text!r}: use e.g. 30s, 5m, 1h 30m, 250ms or a number of seconds"
    )


def format_duration(secs: float) -> str:
    """``secs`` as :func:`parse_duration` reads it back: ``7d``, ``1h 30m``, ``250ms``, ``0s``."""
    ms = round(secs * 1000)
    parts = []
    for unit, scale in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if ms >= scale:
            parts.append(f"{ms // scale}{unit}")
            ms %= scale
    if ms >= 1000:
        parts.append(f"{ms // 1000}s")
        ms %= 1000
    if ms:
        parts.append(f"{ms}ms")
    return " ".join(parts) or "0s"


def duration_secs(text: str) -> int:
    """argparse type: a duration in whole seconds."""
    return round(parse_duration(text))


def non_negative_int(text: str) -> int:
    """argparse type: an integer ≥ 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a positive integer, got 0")
    return value


def boolean(text: str) -> bool:
    """argparse type: ``true``/``false`` (also yes/no, on/off, 1/0)."""
    t = text.strip().lower()
    if t in ("true", "yes", "on", "1"):
        return True
    if t in ("false", "no", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(
        f"expected true or false, got {text!r} (a bare flag means true; put it after the "
        "positional arguments or give the value)"
    )


def add_bool_flag(group: Any, flag: str, help: str | None = None) -> None:
    """``--flag`` (true), or ``--flag true|false``: the official CLI takes both spellings."""
    group.add_argument(flag, type=boolean, nargs="?", const=True, metavar="BOOL", help=help)


def choice_of(values: list[str], what: str) -> Callable[[str], str]:
    """argparse type: one of ``values`` (case-insensitive), with a one-line message."""

    def conv(text: str) -> str:
        t = text.strip().lower()
        if t not in values:
            raise argparse.ArgumentTypeError(
                f"invalid {what} {text!r}: choose from {', '.join(values)}"
            )
        return t

    conv.__name__ = what
    return conv
