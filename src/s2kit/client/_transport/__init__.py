"""The SDK's HTTP/2 transport: a connection pool handing out full-duplex streams.

``ConnectionPool.open_stream`` returns an :class:`H2Stream` on a pooled connection (h2c with
prior knowledge for ``http``, TLS with ALPN ``h2`` for ``https``). Streams report failures
as s2kit errors whose retry semantics are exact: ``ConnectError`` and ``REFUSED_STREAM`` are
side-effect free, a GOAWAY that does not cover the stream is too, and ``ConnectionLost``
tells through ``data_sent`` whether any of the request body was handed off. See
``_connection`` and ``_stream`` for the theory of operation.
"""

from __future__ import annotations

import s2kit._h2fast  # noqa: F401  (bounded frame reprs: see the module)
from s2kit.client._transport._connection import ConnectionState as ConnectionState
from s2kit.client._transport._origin import Origin as Origin
from s2kit.client._transport._pool import ConnectionPool as ConnectionPool
from s2kit.client._transport._pool import PoolStatistics as PoolStatistics
from s2kit.client._transport._stream import H2Stream as H2Stream
from s2kit.client._transport._stream import StreamState as StreamState

__all__ = [
    "ConnectionPool",
    "ConnectionState",
    "H2Stream",
    "Origin",
    "PoolStatistics",
    "StreamState",
]

# Report the public names as living here, not in the private modules that define them.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
