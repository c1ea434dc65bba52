"""Strict JSON parsing for untrusted input: UTF-8 only, bounded size and depth, no lone
surrogates, no ``NaN``/``Infinity``.

Python's ``json`` module is lenient where the S2 reference server (serde_json) is not, and some
of that leniency turns bad input into crashes further on:

* nesting is bounded only by the interpreter's recursion guard, so ``[`` × 100,000 raises
  ``RecursionError`` (not a ``ValueError``) from inside the parser;
* ``"\\ud800"`` decodes to a ``str`` holding a lone surrogate, which cannot be encoded to
  UTF-8 later (a record body, a name, a fencing token), and ``json.loads`` of bytes lets
  surrogates encoded as UTF-8 bytes through as well (it decodes with ``surrogatepass``);
* bytes in UTF-16 or UTF-32 are detected and accepted; ``NaN`` and ``Infinity`` are accepted.

:func:`parse` refuses all of these up front with a ``ValueError`` whose message is one line.
The depth limit is serde_json's default (128), so lite refuses what s2-lite refuses.

Depth is measured on the text, before parsing, in C-speed passes (escapes dropped, then
everything but brackets and quotes, then the strings): about 0.5 ns per input byte, so the
check costs a small fraction of the parse itself, and a hostile body cannot make it much
dearer than parsing.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 128
"""Deepest nesting of arrays and objects accepted (serde_json's recursion limit)."""
MAX_BYTES = 16 * 1024 * 1024
"""Largest JSON document accepted. The largest legitimate S2 document is a read batch or
append of 1 MiB metered in ``raw`` format with every byte escaped (about 6 MiB)."""

# Bytes kept for the depth check: brackets (``{}`` folded into ``[]``) and quotes.
_SKELETON = bytes.maketrans(b"{}", b"[]")
_NOT_SKELETON = bytes(b for b in range(256) if b not in b'"[]{}')
_STEPS = bytes.maketrans(b"[]", b"\x01\xff")  # +1 / -1 as signed bytes
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def parse(data: bytes | str, *, max_bytes: int = MAX_BYTES) -> Any:
    """Parse one JSON document strictly; raises ``ValueError`` with a one-line message."""
    if len(data) > max_bytes:
        raise ValueError(f"document larger than {max_bytes} bytes")
    if isinstance(data, str):
        try:
            text, raw = data, data.encode()
        except UnicodeEncodeError:
            raise ValueError("lone surrogate in the text") from None
    else:
        try:
            text, raw = data.decode(), data  # strict: no surrogates, no other encodings
        except UnicodeDecodeError as exc:
            raise ValueError(f"invalid UTF-8 at byte {exc.start}") from None
    if _too_deep(raw):
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        value = _DECODER.decode(text)
    except RecursionError:  # unreachable after _too_deep; kept so it can never be a 500
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    if b"\\" in raw and _SURROGATE_ESCAPE.search(raw):  # a one-byte `in` is a memchr
        # Escaped pairs decode to one code point; whatever surrogate is left stands alone.
        _check_strings(value)
    return value


def _too_deep(raw: bytes) -> bool:
    """Whether the document nests arrays/objects deeper than :data:`MAX_DEPTH`.

    Exact for valid JSON. For invalid JSON the answer does not matter (the parser refuses it)
    as long as nothing deep reaches the parser: unbalanced input counts as deep here.
    """
    if b"\\" in raw:
        # Drop escaped backslashes first, then escaped quotes: what is left of a backslash
        # is never next to a quote, so quotes now delimit strings exactly.
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = raw.translate(_SKELETON, _NOT_SKELETON)
    if skeleton.count(b"[") <= MAX_DEPTH:
        return False
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[::2])  # brackets inside strings do not nest
    steps = memoryview(skeleton.translate(_STEPS)).cast("b")
    return max(accumulate(steps), default=0) > MAX_DEPTH


def _check_strings(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise ValueError("lone surrogate in a string")
        elif isinstance(item, dict):
            stack.extend(item)  # keys
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
