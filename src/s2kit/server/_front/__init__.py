"""The HTTP front of the lite server: HTTP/1.1, h2c and TLS (ALPN) on one asyncio port.

The application plugs in as a ``Handler``: an async callable taking a ``Request`` (the head
and a streamed body) and a ``Responder`` (start, send, end). See ``_listener`` for how
connections are accepted and told apart, and ``_h2conn`` / ``_h1conn`` for flow control.
"""

from __future__ import annotations

import s2kit._h2fast  # noqa: F401  (bounded frame reprs: see the module)
from s2kit.server._front._exchange import BodyTooLarge as BodyTooLarge
from s2kit.server._front._exchange import ClientDisconnected as ClientDisconnected
from s2kit.server._front._exchange import Handler as Handler
from s2kit.server._front._exchange import Request as Request
from s2kit.server._front._exchange import Responder as Responder
from s2kit.server._front._limits import Limits as Limits
from s2kit.server._front._limits import default_max_connections as default_max_connections
from s2kit.server._front._limits import raise_fd_limit as raise_fd_limit
from s2kit.server._front._listener import HttpServer as HttpServer
from s2kit.server._front._listener import ServerStatistics as ServerStatistics
from s2kit.server._front._tls import TlsConfigError as TlsConfigError
from s2kit.server._front._tls import generate_self_signed_cert as generate_self_signed_cert
from s2kit.server._front._tls import make_self_signed_context as make_self_signed_context
from s2kit.server._front._tls import make_server_context as make_server_context

__all__ = [
    "BodyTooLarge",
    "ClientDisconnected",
    "Handler",
    "HttpServer",
    "Limits",
    "Request",
    "Responder",
    "ServerStatistics",
    "TlsConfigError",
    "default_max_connections",
    "generate_self_signed_cert",
    "make_self_signed_context",
    "make_server_context",
    "raise_fd_limit",
]

# Report the public names as living here, not in the private modules that define them.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or (callable(_obj) and hasattr(_obj, "__code__")):
        _obj.__module__ = __name__
del _name, _obj
