"""Fault injection for S2 clients: an HTTP/2-aware proxy to put between a client and lite.

Run your own chaos tests the way s2kit tests its SDK (docs/reliability.md)::

    from s2kit import S2, Endpoints
    from s2kit.server import Lite
    from s2kit.testing.faults import Cut, FaultProxy, Match, StreamFault

    async with Lite() as lite, FaultProxy(lite.url) as proxy:
        # The server applies the second input of the first append session, then the
        # connection dies before its ack reaches the client ("apply then drop").
        proxy.add(StreamFault(match=Match(s2s=True, method="POST"),
                              pass_down=1, when_down=2, action=Cut()))
        async with S2("token", endpoints=Endpoints.for_url(proxy.url)) as s2:
            ...

What it can do
--------------
* **Connections** (:meth:`FaultProxy.next_connections`, one fault per new connection):
  :class:`Reset` (RST at accept), :class:`Blackhole` (accept, never answer),
  :class:`Hold` (relay nothing until released), :class:`CutAfter` (close or reset after N
  bytes either way), :class:`Stall` (stop reading one side). Refused connections:
  :meth:`FaultProxy.stop_listening`.
* **Request streams** (:meth:`FaultProxy.add`, :class:`StreamFault` rules matched on each
  request's HEADERS): hide the request from the server, forward only the first *k* inputs,
  withhold or delay acks (or read batches), set the reconnect-advice bit, replace a terminal
  frame; and when a trigger holds (*n* inputs from the client and *m* messages from the
  server), one or more actions: :class:`Cut`, :class:`Respond` (an HTTP error in the
  server's name), :class:`Terminal` (an S2S terminal frame), :class:`EndStream`,
  :class:`ResetStream` (RST_STREAM with any code), :class:`GoAway` (any code and
  last-stream-id), :class:`Inject` (forged frames, e.g. a bad ack), :class:`Release`
  (let withheld messages go); more triggers and actions follow as ``then`` steps.
* **Flow control**: with ``manage_windows=True`` a stream's send window can be withheld
  (``StreamFault(stall=True)``) and released later (:meth:`FaultProxy.release_windows`).
* **Chaos**: :class:`Chaos` draws random, truthful faults from the whole repertoire.

Determinism: faults are placed by counting frames and messages, never by timing, and every
hold is bounded (by the client's own timeouts or an explicit ``seconds``).
:meth:`FaultProxy.wait_for` waits for a condition on :attr:`FaultProxy.stats` or
:attr:`FaultProxy.trace` without sleeping.
"""

from __future__ import annotations

from s2kit.testing._faults._chaos import APPEND_FAULTS as APPEND_FAULTS
from s2kit.testing._faults._chaos import CONNECTION_FAULTS as CONNECTION_FAULTS
from s2kit.testing._faults._chaos import READ_FAULTS as READ_FAULTS
from s2kit.testing._faults._chaos import UNARY_FAULTS as UNARY_FAULTS
from s2kit.testing._faults._chaos import Chaos as Chaos
from s2kit.testing._faults._chaos import ack_frame as ack_frame
from s2kit.testing._faults._model import Action as Action
from s2kit.testing._faults._model import Blackhole as Blackhole
from s2kit.testing._faults._model import ConnFault as ConnFault
from s2kit.testing._faults._model import Cut as Cut
from s2kit.testing._faults._model import CutAfter as CutAfter
from s2kit.testing._faults._model import Direction as Direction
from s2kit.testing._faults._model import EndStream as EndStream
from s2kit.testing._faults._model import FaultStats as FaultStats
from s2kit.testing._faults._model import GoAway as GoAway
from s2kit.testing._faults._model import Hold as Hold
from s2kit.testing._faults._model import Inject as Inject
from s2kit.testing._faults._model import Match as Match
from s2kit.testing._faults._model import Release as Release
from s2kit.testing._faults._model import RequestInfo as RequestInfo
from s2kit.testing._faults._model import Reset as Reset
from s2kit.testing._faults._model import ResetStream as ResetStream
from s2kit.testing._faults._model import Respond as Respond
from s2kit.testing._faults._model import Stall as Stall
from s2kit.testing._faults._model import Step as Step
from s2kit.testing._faults._model import StreamFault as StreamFault
from s2kit.testing._faults._model import Terminal as Terminal
from s2kit.testing._faults._model import TraceEvent as TraceEvent
from s2kit.testing._faults._proxy import FaultProxy as FaultProxy
from s2kit.testing._faults._wire import H2ErrorCode as H2ErrorCode

__all__ = [
    "APPEND_FAULTS",
    "Action",
    "Blackhole",
    "CONNECTION_FAULTS",
    "Chaos",
    "ConnFault",
    "Cut",
    "CutAfter",
    "Direction",
    "EndStream",
    "FaultProxy",
    "FaultStats",
    "GoAway",
    "H2ErrorCode",
    "Hold",
    "Inject",
    "Match",
    "READ_FAULTS",
    "Release",
    "RequestInfo",
    "Reset",
    "ResetStream",
    "Respond",
    "Stall",
    "Step",
    "StreamFault",
    "Terminal",
    "TraceEvent",
    "UNARY_FAULTS",
    "ack_frame",
]

# Report the public classes and functions as living here, not in the private modules.
for _name in __all__:
    if hasattr(globals()[_name], "__qualname__"):  # not the aliases and constants
        globals()[_name].__module__ = __name__
del _name
