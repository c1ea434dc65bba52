"""The ``s2kit`` command line."""

from __future__ import annotations

from s2kit.cli._main import main as main

__all__ = ["main"]
