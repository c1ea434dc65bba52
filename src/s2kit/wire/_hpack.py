"""A stateless HPACK encoder (RFC 7541) for the header blocks s2kit sends, client and lite.

Why not h2's own encoder (``hpack.Encoder``): it keeps a dynamic table, searches it entry by
entry for every field it sends and inserts every field it did not find. Fields whose values
rarely repeat (a path per stream, a body length, a request token) fill the table with entries
that never match again, so each search walks all of them; on top of that every value is
Huffman-coded in Python. For a unary append that was most of the client's CPU and a large part
of lite's (docs/benchmarks.md#lite-at-scale).

This encoder never inserts into the dynamic table, so a field's encoding depends on the field
alone: it is computed once and cached. What it sends (RFC 7541 §6):

* a field found whole in the static table: its index (RFC 7541 §6.1);
* anything else: a literal without indexing (RFC 7541 §6.2.2), or never indexed
  (RFC 7541 §6.2.3) for credentials, naming the field by its static-table index where the
  table has the name; values go as they are, not Huffman-coded, so the peer's decoder has
  nothing to undo.

The table size: our table is always empty, so the first block says so with a dynamic table
size update to 0 (RFC 7541 §6.3), as does the first block after the peer changes
SETTINGS_HEADER_TABLE_SIZE (h2 assigns ``header_table_size`` then): a decoder whose limit
went down expects an update (RFC 7541 §4.2), and 0 satisfies any limit.
"""

from __future__ import annotations

from collections.abc import Iterable

from hpack import NeverIndexedHeaderTuple
from hpack.table import HeaderTable

__all__ = ["SENSITIVE", "StatelessEncoder", "encode_integer"]

SENSITIVE = frozenset({b"authorization", b"proxy-authorization", b"s2-encryption-key"})
"""Fields sent never-indexed (RFC 7541 §6.2.3): no intermediary may keep them in a table."""

_STATIC: dict[bytes, tuple[int, dict[bytes, int]]] = HeaderTable.STATIC_TABLE_MAPPING
_CACHE_MAX = 4096
_SIZE_UPDATE_TO_ZERO = b"\x20"  # 001 prefix, size 0


def encode_integer(value: int, prefix_bits: int, flags: int) -> bytes:
    """An integer with an N-bit prefix (RFC 7541 §5.1); ``flags``: the first byte's other bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((flags | value,))
    out = bytearray((flags | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(data: bytes) -> bytes:
    return encode_integer(len(data), 7, 0x00) + data  # H = 0: raw octets (RFC 7541 §5.2)


def encode_field(name: bytes, value: bytes, sensitive: bool) -> bytes:
    """One field's representation (no dynamic table involved)."""
    static = _STATIC.get(name)
    if static is not None:
        index = static[1].get(value)
        if index is not None and not sensitive:
            return encode_integer(index, 7, 0x80)  # RFC 7541 §6.1
    flags = 0x10 if sensitive else 0x00  # never indexed / without indexing: RFC 7541 §6.2.3, §6.2.2
    if static is not None:
        return encode_integer(static[0], 4, flags) + _string(value)
    return bytes((flags,)) + _string(name) + _string(value)


class StatelessEncoder:
    """What h2 needs of an encoder (``encode`` and ``header_table_size``), without a table."""

    __slots__ = ("_cache", "_table_size", "_update")

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, bytes, bool], bytes] = {}
        self._table_size = 4096
        self._update = True

    @property
    def header_table_size(self) -> int:
        """The largest table the peer allows (SETTINGS_HEADER_TABLE_SIZE); ours stays 0."""
        return self._table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self._table_size = value
        self._update = True

    def encode(self, headers: Iterable[tuple[bytes, bytes]], huffman: bool = True) -> bytes:
        """A header block for ``headers`` (names lower-case bytes; ``huffman`` is ignored)."""
        del huffman  # values go raw: cheaper for both ends, a few bytes more on the wire
        cache = self._cache
        parts: list[bytes] = []
        if self._update:
            self._update = False
            parts.append(_SIZE_UPDATE_TO_ZERO)
        for header in headers:
            name, value = header
            sensitive = name in SENSITIVE or isinstance(header, NeverIndexedHeaderTuple)
            key = (name, value, sensitive)
            encoded = cache.get(key)
            if encoded is None:
                encoded = encode_field(name, value, sensitive)
                if len(cache) >= _CACHE_MAX:
                    cache.clear()  # bounded; values that never repeat only cost a rebuild
                cache[key] = encoded
            parts.append(encoded)
        return b"".join(parts)
