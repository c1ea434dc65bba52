"""What one client may hold of the HTTP front: time, connections.

Every wait for a peer has a deadline (a slowloris client that sends a header byte every few
seconds, or never reads its responses, must not keep a connection, a handler and its
buffers for ever), and the number of connections is capped below the process's file
descriptor limit, so running out of descriptors cannot stop the accept loop for everyone.
The deadlines are checked by one sweep over all connections, once a second
(``HttpServer``), not by a timer per connection or per chunk.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

__all__ = ["Limits", "default_max_connections", "raise_fd_limit"]

logger = logging.getLogger("s2kit.server")

_FD_RESERVE = 64  # descriptors kept for storage, logs and the listener itself


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Deadlines and caps of the HTTP front (seconds, counts)."""

    header_timeout: float = 10.0
    """A request head must arrive within this (from the connection, or from the first byte
    of the next head on a keep-alive connection); for HTTP/2, a header block must complete."""
    body_timeout: float = 30.0
    """A unary request body may keep its handler waiting this long for the next bytes.
    (S2S append sessions are exempt: an idle session is normal.)"""
    send_timeout: float = 60.0
    """A connection whose client reads nothing of what is queued for it for this long is
    closed (the transport's buffer stayed full)."""
    idle_timeout: float = 300.0
    """A connection with no request in flight is closed after this."""
    max_connections: int = 10_000
    """Connections open at once; beyond it, new ones wait in the listen backlog."""
    sweep_interval: float = 1.0
    """How often the deadlines are checked."""


def default_max_connections(wanted: int = 10_000) -> int:
    """``wanted``, but below the process's file descriptor limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, soft - _FD_RESERVE))


def raise_fd_limit(target: int = 65_536) -> None:
    """Raise the soft file descriptor limit toward ``target`` (never above the hard one).

    For ``s2kit lite``'s own process only: a library must not change its host's limits.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    goal = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft != resource.RLIM_INFINITY and soft < goal:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (goal, hard))
        except (ValueError, OSError) as exc:
            logger.debug("cannot raise the file descriptor limit: %s", exc)
