"""Where a connection goes: scheme, host and port (RFC 6454 §4), the key of the pool."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from s2kit.errors import UsageError

__all__ = ["Origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Origin:
    """An HTTP origin. ``http`` means h2c with prior knowledge, ``https`` TLS with ALPN h2."""

    scheme: str
    """``"http"`` or ``"https"``."""
    host: str
    """A DNS name or an IP address (without brackets)."""
    port: int
    """The TCP port."""

    @classmethod
    def parse(cls, url: str) -> Origin:
        """The origin of ``url`` (``"http://h:p"``, ``"https://h"``; path and query are ignored).

        Raises:
            UsageError: not an ``http``/``https`` URL with an ASCII host and a valid port.
        """
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UsageError(f"invalid URL {url!r}: {exc}") from exc
        scheme = parts.scheme.lower()
        default = _DEFAULT_PORTS.get(scheme)
        if default is None:
            raise UsageError(f"unsupported URL scheme in {url!r} (use http or https)")
        host = parts.hostname
        if not host or not host.isascii():
            raise UsageError(f"URL {url!r} has no usable host")
        return cls(scheme, host, default if port is None else port)

    @property
    def tls(self) -> bool:
        """Whether connections use TLS."""
        return self.scheme == "https"

    @property
    def authority(self) -> str:
        """The ``:authority`` value: ``host`` or ``host:port``, IPv6 literals in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if _DEFAULT_PORTS.get(self.scheme) == self.port:
            return host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"
