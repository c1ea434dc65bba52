"""The blocking API: the same client as :mod:`s2kit`, for code without an event loop.

Every call runs on one background event loop (a daemon thread shared by all blocking clients
in the process) through the asyncio core, so behaviour, retries and types are identical.
Sessions are context managers; read sessions are iterators::

    with s2kit.sync.S2.from_env() as s2:
        stream = s2.basin("my-basin").stream("events")
        stream.append(AppendInput(records=(Record(body=b"hi"),)))
        with stream.read_session(start=SeqNum(0)) as session:
            for batch in session:
                ...

Layout: ``_core`` holds the background loop and the blocking :class:`Ticket`, ``_producer``
the blocking :class:`Producer` (records cross to the loop in bulk), ``_client`` the client,
basin, stream and session classes.
"""

from __future__ import annotations

from s2kit.sync._client import S2 as S2
from s2kit.sync._client import AppendSession as AppendSession
from s2kit.sync._client import Basin as Basin
from s2kit.sync._client import ReadSession as ReadSession
from s2kit.sync._client import Stream as Stream
from s2kit.sync._core import Ticket as Ticket
from s2kit.sync._producer import Producer as Producer

__all__ = ["AppendSession", "Basin", "Producer", "ReadSession", "S2", "Stream", "Ticket"]

# Defined in private modules; documented, and repr'd, as this package's.
for _name in __all__:
    globals()[_name].__module__ = __name__
