"""One rendering of a live batch for all of its readers.

A commit reaches every follower of a stream as the very same list of records (the owner
pushes one list to each; a read that takes it whole passes it on unchanged). Rendering it —
base64 and JSON for SSE, protobuf and S2S framing for a session — costs far more than
sending it, and it is the same bytes for every reader that asked for the same format: with a
few hundred readers, rendering per reader made the event loop the bottleneck and delayed
the writers' acks. So lite keeps its latest renderings, keyed by the list's identity (an
entry holds the list, so the identity cannot be reused while it is cached), the tail the
batch carries, and the format. The followers of one commit are woken one after another, so
a short least-recently-used list serves them; it is bounded in entries and in bytes. A
reader whose batch was cut (limits, a resume in the middle of a commit) gets a list of its
own and renders it itself.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s2kit.types import RecordFields, StreamPosition

__all__ = ["Renderings"]

_Key = tuple[int, "StreamPosition | None", Hashable]


class Renderings:
    """Lite's latest renderings of live batches, least recently used first."""

    __slots__ = ("_bytes", "_entries", "max_bytes", "max_entries")

    def __init__(self, max_entries: int = 64, max_bytes: int = 8 << 20) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._bytes = 0
        self._entries: collections.OrderedDict[_Key, tuple[list[RecordFields], bytes]] = (
            collections.OrderedDict()
        )

    def get(
        self,
        records: list[RecordFields],
        tail: StreamPosition | None,
        kind: Hashable,
        render: Callable[[], bytes],
    ) -> bytes:
        """The rendering of ``records`` (with ``tail``) as ``kind``, made once."""
        key = (id(records), tail, kind)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is records:
            self._entries.move_to_end(key)
            return entry[1]
        data = render()
        if len(data) <= self.max_bytes // 4:
            if entry is not None:  # an identity reused by a new list: replace it
                self._drop(key)
            self._entries[key] = (records, data)
            self._bytes += len(data)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))
        return data

    def _drop(self, key: _Key) -> None:
        _, data = self._entries.pop(key)
        self._bytes -= len(data)
