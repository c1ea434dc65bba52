"""s2kit: the Python toolkit for S2, the durable streams API.

The SDK lives here: ``S2`` (account), ``Basin``, ``Stream`` and their sessions, the value
types of :mod:`s2kit.types` and the exceptions of :mod:`s2kit.errors`. Lite (the server) is
:mod:`s2kit.server`, test helpers are :mod:`s2kit.testing`, the command line is ``s2kit``.
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from s2kit.client import S2 as S2
    from s2kit.client import AppendRetryPolicy as AppendRetryPolicy
    from s2kit.client import AppendSession as AppendSession
    from s2kit.client import AppendSessionStatistics as AppendSessionStatistics
    from s2kit.client import AppendTicket as AppendTicket
    from s2kit.client import Basin as Basin
    from s2kit.client import Batching as Batching
    from s2kit.client import Compression as Compression
    from s2kit.client import Endpoints as Endpoints
    from s2kit.client import Producer as Producer
    from s2kit.client import ProducerStatistics as ProducerStatistics
    from s2kit.client import ReadSession as ReadSession
    from s2kit.client import ReadSessionRetryPolicy as ReadSessionRetryPolicy
    from s2kit.client import RecordAck as RecordAck
    from s2kit.client import RecordTicket as RecordTicket
    from s2kit.client import Retry as Retry
    from s2kit.client import Stream as Stream
    from s2kit.client import Timeout as Timeout
    from s2kit.types import UNSET as UNSET
    from s2kit.types import AccessTokenInfo as AccessTokenInfo
    from s2kit.types import AccessTokenScope as AccessTokenScope
    from s2kit.types import AccumulationMetric as AccumulationMetric
    from s2kit.types import AppendAck as AppendAck
    from s2kit.types import AppendInput as AppendInput
    from s2kit.types import BasinConfig as BasinConfig
    from s2kit.types import BasinInfo as BasinInfo
    from s2kit.types import BasinReconfiguration as BasinReconfiguration
    from s2kit.types import BasinState as BasinState
    from s2kit.types import CommandRecord as CommandRecord
    from s2kit.types import EncryptionAlgorithm as EncryptionAlgorithm
    from s2kit.types import ExactMatch as ExactMatch
    from s2kit.types import GaugeMetric as GaugeMetric
    from s2kit.types import Header as Header
    from s2kit.types import LabelMetric as LabelMetric
    from s2kit.types import Metric as Metric
    from s2kit.types import MetricUnit as MetricUnit
    from s2kit.types import Operation as Operation
    from s2kit.types import Page as Page
    from s2kit.types import PermittedOperationGroups as PermittedOperationGroups
    from s2kit.types import PrefixMatch as PrefixMatch
    from s2kit.types import ProvisionResult as ProvisionResult
    from s2kit.types import ReadBatch as ReadBatch
    from s2kit.types import ReadLimit as ReadLimit
    from s2kit.types import ReadStart as ReadStart
    from s2kit.types import ReadWritePermissions as ReadWritePermissions
    from s2kit.types import Record as Record
    from s2kit.types import ScalarMetric as ScalarMetric
    from s2kit.types import SeqNum as SeqNum
    from s2kit.types import SequencedRecord as SequencedRecord
    from s2kit.types import StorageClass as StorageClass
    from s2kit.types import StreamConfig as StreamConfig
    from s2kit.types import StreamInfo as StreamInfo
    from s2kit.types import StreamPosition as StreamPosition
    from s2kit.types import StreamReconfiguration as StreamReconfiguration
    from s2kit.types import TailOffset as TailOffset
    from s2kit.types import TimeseriesInterval as TimeseriesInterval
    from s2kit.types import Timestamp as Timestamp
    from s2kit.types import Timestamping as Timestamping
    from s2kit.types import TimestampingMode as TimestampingMode
    from s2kit.types import TimestampingReconfiguration as TimestampingReconfiguration
    from s2kit.types import metered_bytes as metered_bytes

# Exports are resolved lazily so that importing a sans-IO module such as ``s2kit.wire`` does not
# pull in the client (and asyncio) through this package.
_EXPORTS = {
    "AppendSessionStatistics": "s2kit.client",
    "ProducerStatistics": "s2kit.client",
    "BasinState": "s2kit.types",
    "ReadStart": "s2kit.types",
    "Header": "s2kit.types",
    "AccessTokenInfo": "s2kit.types",
    "AccessTokenScope": "s2kit.types",
    "ExactMatch": "s2kit.types",
    "PrefixMatch": "s2kit.types",
    "ReadWritePermissions": "s2kit.types",
    "PermittedOperationGroups": "s2kit.types",
    "Operation": "s2kit.types",
    "Metric": "s2kit.types",
    "MetricUnit": "s2kit.types",
    "TimeseriesInterval": "s2kit.types",
    "ScalarMetric": "s2kit.types",
    "AccumulationMetric": "s2kit.types",
    "GaugeMetric": "s2kit.types",
    "LabelMetric": "s2kit.types",
    "AppendRetryPolicy": "s2kit.client",
    "AppendSession": "s2kit.client",
    "AppendTicket": "s2kit.client",
    "Basin": "s2kit.client",
    "Batching": "s2kit.client",
    "Compression": "s2kit.client",
    "Endpoints": "s2kit.client",
    "Producer": "s2kit.client",
    "ReadSession": "s2kit.client",
    "ReadSessionRetryPolicy": "s2kit.client",
    "RecordAck": "s2kit.client",
    "RecordTicket": "s2kit.client",
    "Retry": "s2kit.client",
    "S2": "s2kit.client",
    "Stream": "s2kit.client",
    "Timeout": "s2kit.client",
    "AppendAck": "s2kit.types",
    "AppendInput": "s2kit.types",
    "BasinConfig": "s2kit.types",
    "BasinInfo": "s2kit.types",
    "BasinReconfiguration": "s2kit.types",
    "CommandRecord": "s2kit.types",
    "EncryptionAlgorithm": "s2kit.types",
    "Page": "s2kit.types",
    "ProvisionResult": "s2kit.types",
    "ReadBatch": "s2kit.types",
    "ReadLimit": "s2kit.types",
    "Record": "s2kit.types",
    "SeqNum": "s2kit.types",
    "SequencedRecord": "s2kit.types",
    "StorageClass": "s2kit.types",
    "StreamConfig": "s2kit.types",
    "StreamInfo": "s2kit.types",
    "StreamPosition": "s2kit.types",
    "StreamReconfiguration": "s2kit.types",
    "TailOffset": "s2kit.types",
    "Timestamp": "s2kit.types",
    "Timestamping": "s2kit.types",
    "TimestampingMode": "s2kit.types",
    "TimestampingReconfiguration": "s2kit.types",
    "UNSET": "s2kit.types",
    "metered_bytes": "s2kit.types",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 's2kit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # The exports are resolved lazily, so list them for dir(), help() and tab completion.
    return sorted({*globals(), *__all__})


__all__ = [
    "AccessTokenInfo",
    "AccessTokenScope",
    "AccumulationMetric",
    "AppendAck",
    "AppendInput",
    "AppendRetryPolicy",
    "AppendSession",
    "AppendSessionStatistics",
    "AppendTicket",
    "Basin",
    "BasinConfig",
    "BasinInfo",
    "BasinReconfiguration",
    "BasinState",
    "Batching",
    "CommandRecord",
    "Compression",
    "EncryptionAlgorithm",
    "Endpoints",
    "ExactMatch",
    "GaugeMetric",
    "Header",
    "LabelMetric",
    "Metric",
    "MetricUnit",
    "Operation",
    "Page",
    "PermittedOperationGroups",
    "PrefixMatch",
    "Producer",
    "ProducerStatistics",
    "ProvisionResult",
    "ReadBatch",
    "ReadLimit",
    "ReadSession",
    "ReadSessionRetryPolicy",
    "ReadStart",
    "ReadWritePermissions",
    "Record",
    "RecordAck",
    "RecordTicket",
    "Retry",
    "S2",
    "ScalarMetric",
    "SeqNum",
    "SequencedRecord",
    "StorageClass",
    "Stream",
    "StreamConfig",
    "StreamInfo",
    "StreamPosition",
    "StreamReconfiguration",
    "TailOffset",
    "Timeout",
    "TimeseriesInterval",
    "Timestamp",
    "Timestamping",
    "TimestampingMode",
    "TimestampingReconfiguration",
    "UNSET",
    "metered_bytes",
]
