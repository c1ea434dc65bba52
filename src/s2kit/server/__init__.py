"""Lite: an S2-compatible server (in memory by default, durable with ``data_dir``).

Needs the ``lite`` extra: ``pip install 's2kit[lite]'``.
"""

from __future__ import annotations

from s2kit.server._datadir import DataDirError as DataDirError
from s2kit.server._lite import Lite as Lite
from s2kit.server._lite import LiteConfig as LiteConfig
from s2kit.server._lite import LiteThread as LiteThread
from s2kit.server._storage import MemoryStorage as MemoryStorage
from s2kit.server._storage import Storage as Storage

__all__ = ["DataDirError", "Lite", "LiteConfig", "LiteThread", "MemoryStorage", "Storage"]

for _name in __all__:
    globals()[_name].__module__ = __name__
