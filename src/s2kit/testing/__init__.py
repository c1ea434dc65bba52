"""Test helpers for code that uses S2: run lite in-process or as a subprocess.

The pytest plugin (registered automatically when s2kit is installed) provides the
``s2kit_lite`` fixture: a fresh lite server per test, as a :class:`LiteEndpoint` with the URL
and the environment variables S2 clients read.

:mod:`s2kit.testing.faults` is a fault-injection proxy to put between a client and lite, for
chaos tests (docs/reliability.md).
"""

from __future__ import annotations

from s2kit.testing._runner import LiteEndpoint as LiteEndpoint
from s2kit.testing._runner import LiteProcess as LiteProcess
from s2kit.testing._runner import run_lite as run_lite

__all__ = ["LiteEndpoint", "LiteProcess", "run_lite"]

for _name in __all__:
    globals()[_name].__module__ = __name__
