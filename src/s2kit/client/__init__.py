"""The S2 client (SDK): :class:`S2`, basins, streams, sessions and the producer."""

from __future__ import annotations

from s2kit.client._append_session import AppendSession as AppendSession
from s2kit.client._append_session import AppendSessionStatistics as AppendSessionStatistics
from s2kit.client._append_session import AppendTicket as AppendTicket
from s2kit.client._client import S2 as S2
from s2kit.client._client import Basin as Basin
from s2kit.client._config import AppendRetryPolicy as AppendRetryPolicy
from s2kit.client._config import Batching as Batching
from s2kit.client._config import Compression as Compression
from s2kit.client._config import Endpoints as Endpoints
from s2kit.client._config import ReadSessionRetryPolicy as ReadSessionRetryPolicy
from s2kit.client._config import Retry as Retry
from s2kit.client._config import Timeout as Timeout
from s2kit.client._producer import Producer as Producer
from s2kit.client._producer import ProducerStatistics as ProducerStatistics
from s2kit.client._producer import RecordAck as RecordAck
from s2kit.client._producer import RecordTicket as RecordTicket
from s2kit.client._read_session import ReadSession as ReadSession
from s2kit.client._stream import Stream as Stream

__all__ = [
    "AppendRetryPolicy",
    "AppendSession",
    "AppendSessionStatistics",
    "AppendTicket",
    "Basin",
    "Batching",
    "Compression",
    "Endpoints",
    "Producer",
    "ProducerStatistics",
    "ReadSession",
    "ReadSessionRetryPolicy",
    "RecordAck",
    "RecordTicket",
    "Retry",
    "S2",
    "Stream",
    "Timeout",
]

for _name in __all__:
    globals()[_name].__module__ = __name__
