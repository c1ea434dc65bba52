"""s2kit: the Python toolkit for S2, the durable streams API."""

from __future__ import annotations

__version__ = "0.1.0"
