"""The public surface is pinned: adding or removing a name is a deliberate change."""

from __future__ import annotations

import subprocess
import sys

import pytest

import s2kit
import s2kit.client
import s2kit.server
import s2kit.sync
import s2kit.testing


def test_top_level_exports() -> None:
    assert s2kit.__all__ == sorted(s2kit.__all__)
    assert set(s2kit.__all__) == {
        *s2kit.client.__all__,
        "AccessTokenInfo", "AccessTokenScope", "AccumulationMetric", "AppendAck", "AppendInput",
        "BasinConfig", "BasinInfo", "BasinReconfiguration", "BasinState", "CommandRecord",
        "EncryptionAlgorithm", "ExactMatch", "GaugeMetric", "Header", "LabelMetric", "Metric",
        "MetricUnit", "Operation", "Page", "PermittedOperationGroups", "PrefixMatch",
        "ProvisionResult", "ReadBatch", "ReadLimit", "ReadStart", "ReadWritePermissions",
        "Record", "ScalarMetric", "SeqNum", "SequencedRecord", "StorageClass", "StreamConfig",
        "StreamInfo", "StreamPosition", "StreamReconfiguration", "TailOffset",
        "TimeseriesInterval", "Timestamp", "Timestamping", "TimestampingMode",
        "TimestampingReconfiguration", "UNSET", "metered_bytes",
    }  # fmt: skip
    for name in s2kit.__all__:
        assert getattr(s2kit, name) is not None


def test_unknown_attribute_raises() -> None:
    with pytest.raises(AttributeError):
        _ = s2kit.NoSuchThing  # type: ignore[attr-defined]


SERVER = ["DataDirError", "Lite", "LiteConfig", "LiteThread", "MemoryStorage", "Storage"]
TESTING = ["LiteEndpoint", "LiteProcess", "run_lite"]
SYNC = ["AppendSession", "Basin", "Producer", "ReadSession", "S2", "Stream", "Ticket"]


@pytest.mark.parametrize(
    ("module", "names"), [(s2kit.server, SERVER), (s2kit.testing, TESTING), (s2kit.sync, SYNC)]
)
def test_package_exports(module: object, names: list[str]) -> None:
    assert module.__all__ == names  # type: ignore[attr-defined]
    for name in names:
        value = getattr(module, name)
        if isinstance(value, type):
            assert value.__module__ == module.__name__  # type: ignore[attr-defined]


def test_client_classes_report_the_public_module() -> None:
    for name in s2kit.client.__all__:
        assert getattr(s2kit.client, name).__module__ == "s2kit.client"


def test_importing_the_wire_layer_does_not_import_asyncio() -> None:
    code = "import sys, s2kit.wire._proto, s2kit.wire._json; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
