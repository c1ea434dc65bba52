"""A speed fix for hyperframe, applied once by both HTTP/2 users in s2kit.

h2 4.x logs every received frame with ``logger.trace("...", repr(frame))``: the ``repr`` runs
even when the logger discards it, and hyperframe's repr hex-encodes the whole payload before
keeping 20 characters. With 1 MiB DATA frames that was a third of lite's CPU on bulk appends
(docs/benchmarks.md). Hex-encoding only the first 11 bytes of the payload yields the same text.
"""

from __future__ import annotations

import binascii

from hyperframe import frame as _frame


def _raw_data_repr(data: bytes | None) -> str:
    if not data:
        return "None"
    r = binascii.hexlify(bytes(data[:11])).decode("ascii")
    if len(r) > 20:
        r = r[:20] + "..."
    return "<hex:" + r + ">"


def _data_body_repr(self: _frame.DataFrame) -> str:
    # The default serializes the whole (padded) body first, just to print 20 hex digits.
    return _raw_data_repr(self.data)


def apply() -> None:
    """Install the bounded reprs (idempotent)."""
    _frame._raw_data_repr = _raw_data_repr
    _frame.DataFrame._body_repr = _data_body_repr  # type: ignore[method-assign,assignment]


apply()
