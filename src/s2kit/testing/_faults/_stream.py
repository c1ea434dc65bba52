"""Per-stream state of the fault proxy: what was seen each way, what is held, what fired.

A stream's server-to-client side is a queue of items (a response head, body bytes, the end
of the stream), each tagged with the index of the message it belongs to. ``pump`` forwards
items from the front while the stream's fault lets them pass: index below ``pass_down``, and
release time reached when messages are delayed. Items are never reordered, so once one is
held everything behind it waits too. The client-to-server side is never held: bytes past
``pass_up`` are dropped at once (and their flow-control credit given back to the client), so
they can never reach the server later.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from s2kit.testing._faults._wire import MessageSplitter

if TYPE_CHECKING:
    from s2kit.testing._faults._model import RequestInfo, Step, StreamFault

__all__ = ["Item", "ItemKind", "ProxyStream"]


class ItemKind(enum.Enum):
    """What a held server-to-client item is."""

    HEAD = "head"  # a response head (or trailers), decoded; encoded only when forwarded
    DATA = "data"
    END = "end"  # END_STREAM without data
    RST = "rst"  # the server's RST_STREAM (``data`` is its error code), kept in order


@dataclass(slots=True)
class Item:
    """One unit of the server-to-client side of a stream, in arrival order."""

    kind: ItemKind
    index: int
    """The message it belongs to; -1 for a head that always passes."""
    after_all: bool = False
    """It follows every message (the END of an S2S body, trailers): passes when the last
    message did."""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    data: bytes = b""
    end: bool = False
    """Carries END_STREAM."""
    not_before: float = 0.0


@dataclass(eq=False)
class ProxyStream:
    """One request stream as the proxy relays it."""

    sid: int
    request: RequestInfo
    fault: StreamFault | None
    hidden: bool = False
    """The server never saw it (``StreamFault.hide``)."""
    detached: bool = False
    """The server's side is gone (reset by the proxy); the proxy answers alone."""
    s2s_up: bool = False
    s2s_down: bool = False
    up_split: MessageSplitter = field(default_factory=MessageSplitter)
    down_split: MessageSplitter = field(default_factory=MessageSplitter)
    up_seen: int = 0
    """Client messages complete at the proxy."""
    down_seen: int = 0
    """Server messages complete (or, for a non-S2S response, its head) at the proxy."""
    up_dropped: bool = False
    up_bytes: int = 0
    """Non-S2S request body bytes forwarded."""
    client_ended: bool = False
    """The client sent END_STREAM."""
    server_head: bool = False
    """The server's final response head arrived."""
    client_has_head: bool = False
    """A final response head was sent to the client."""
    ended_to_client: bool = False
    """END_STREAM or RST_STREAM was sent to the client."""
    step: int = 0
    """Index of the fault's next step to fire."""
    down_limit: int | None = None
    """The current ``pass_down`` (a :class:`Release` changes it)."""
    stalled: bool = False
    """The client's send window for this stream is withheld."""
    withheld_window: int = 0
    """Window the client is owed once the stall is released."""
    debt: int = 0
    """Bytes injected to the client on this stream: discount the client's stream credits."""
    queue: deque[Item] = field(default_factory=deque)
    msg_buf: bytearray = field(default_factory=bytearray)
    """The message being assembled for the trace (``record=True``)."""
    terminal_skip: int = -1
    """Index of a server terminal message being replaced (its pieces are dropped)."""

    def __post_init__(self) -> None:
        if self.fault is not None:
            self.down_limit = self.fault.pass_down
            self._steps = self.fault.steps()
        else:
            self._steps = []

    @property
    def pass_down(self) -> int | None:
        """Server messages that may be forwarded (None: all)."""
        return self.down_limit

    @property
    def pass_up(self) -> int | None:
        """Client messages that may be forwarded (None: all)."""
        return None if self.fault is None else self.fault.pass_up

    @property
    def server_gone(self) -> bool:
        """The server does not (or no longer) know this stream."""
        return self.hidden or self.detached

    def passes(self, item: Item) -> bool:
        """Whether ``item`` is allowed past the ``pass_down`` limit."""
        limit = self.pass_down
        if limit is None or item.index < 0:
            return True
        if item.after_all:
            return item.index <= limit
        return item.index < limit

    def due(self) -> Step | None:
        """The fault's next step, if its trigger holds."""
        if self.step >= len(self._steps):
            return None
        step = self._steps[self.step]
        if self.up_seen >= step.when_up and self.down_seen >= step.when_down:
            return step
        return None

    def held_data(self) -> int:
        """Flow-controlled bytes in the queue."""
        return sum(len(item.data) for item in self.queue)
