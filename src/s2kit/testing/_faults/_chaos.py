"""Random faults: a seeded plan that draws from the proxy's whole repertoire.

Every fault it draws is *truthful*: an error the S2 rules call side-effect free is only ever
injected when nothing of the failed request was applied (the request was hidden from the
server, or only the inputs it acknowledged were forwarded), so a correct client keeps its
promises under any mix of them. Faults that would make the claim false are not drawn.

The plan draws per request stream (after the scripted rules) and per connection (after the
queued connection faults). Each draw is independent; the random sequence depends only on the
seed and the order of requests, not on timing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from s2kit.testing._faults._model import (
    Blackhole,
    Cut,
    CutAfter,
    Direction,
    EndStream,
    GoAway,
    Inject,
    Reset,
    ResetStream,
    Respond,
    StreamFault,
    Terminal,
)
from s2kit.testing._faults._wire import H2ErrorCode
from s2kit.types import AppendAck, StreamPosition
from s2kit.wire import _proto, _s2s
from s2kit.wire._compress import Compression

if TYPE_CHECKING:
    from s2kit.testing._faults._model import Action, ConnFault, RequestInfo

_Maker = Callable[[random.Random], StreamFault]

__all__ = [
    "APPEND_FAULTS",
    "CONNECTION_FAULTS",
    "READ_FAULTS",
    "UNARY_FAULTS",
    "Chaos",
    "ack_frame",
]

_DEFINITE = (
    (429, "rate_limited"),
    (502, "hot_server"),
    (503, "server_draining"),
    (409, "transaction_conflict"),
)
_INDEFINITE = (
    (500, "other"),
    (500, "storage"),
    (503, "unavailable"),
    (504, "upstream_timeout"),
    (408, "request_timeout"),
)
_RESET_CODES = (
    H2ErrorCode.CANCEL,
    H2ErrorCode.INTERNAL_ERROR,
    H2ErrorCode.PROTOCOL_ERROR,
    H2ErrorCode.FLOW_CONTROL_ERROR,
    H2ErrorCode.ENHANCE_YOUR_CALM,
)


def ack_frame(start: int, end: int, tail: int | None = None) -> bytes:
    """An S2S frame carrying an append ack for ``[start, end)`` (to forge with :class:`Inject`)."""
    ack = AppendAck(
        start=StreamPosition(start, 0),
        end=StreamPosition(end, 0),
        tail=StreamPosition(end if tail is None else tail, 0),
    )
    return _s2s.encode_message(_proto.encode_append_ack(ack), Compression.NONE)


def bad_ack_frame() -> bytes:
    """An ack that matches no batch (its end is before its start)."""
    return ack_frame(7, 0, 0)


def _terminal(pair: tuple[int, str]) -> Terminal:
    return Terminal(status=pair[0], code=pair[1], message="chaos")


def _respond(pair: tuple[int, str]) -> Respond:
    return Respond(status=pair[0], code=pair[1], message="chaos")


def _k(rng: random.Random) -> int:
    return rng.randint(0, 3)


def _j(rng: random.Random) -> int:
    return rng.randint(1, 4)


def _apply_then_cut(r: random.Random) -> StreamFault:
    # The server applied input k+1; the connection dies before its ack (S3, S16).
    n = _k(r)
    return StreamFault(pass_down=n, when_down=n + 1, action=Cut(reset=r.random() < 0.5))


def _ack_k_then(action: Action) -> Callable[[random.Random], StreamFault]:
    # k inputs acked; the ones after them never reach the server; then the action (S2, S7).
    def make(r: random.Random) -> StreamFault:
        n = _k(r)
        return StreamFault(pass_up=n, when_up=n + 1, when_down=n, action=action)

    return make


def _terminal_definite(r: random.Random) -> StreamFault:
    return _ack_k_then(_terminal(r.choice(_DEFINITE)))(r)


def _after_apply(make_action: Callable[[random.Random], Action]) -> _Maker:
    # Input k+1 was applied; the client gets k acks, then the action (S8, S12c, S14).
    def make(r: random.Random) -> StreamFault:
        n = _k(r)
        return StreamFault(pass_down=n, when_down=n + 1, action=make_action(r))

    return make


def _after_reads(make_action: Callable[[random.Random], Action]) -> _Maker:
    # j read batches delivered, then the action (R1, R5, R8, R9).
    def make(r: random.Random) -> StreamFault:
        n = _j(r)
        return StreamFault(pass_down=n, when_down=n, action=make_action(r))

    return make


def _bad_ack(r: random.Random) -> StreamFault:
    n = _k(r)
    return StreamFault(pass_down=n, when_down=n, action=Inject(data=bad_ack_frame()))


def _goaway_cut(r: random.Random) -> Action:
    return GoAway(code=H2ErrorCode.INTERNAL_ERROR, then_cut=True)


def _rst(r: random.Random) -> Action:
    return ResetStream(code=r.choice(_RESET_CODES))


def _append_faults() -> dict[str, _Maker]:
    return {
        "apply-then-cut": _apply_then_cut,
        "ack-k-then-cut": _ack_k_then(Cut(reset=True)),
        "terminal-definite": _terminal_definite,
        "terminal-indefinite": _after_apply(lambda r: _terminal(r.choice(_INDEFINITE))),
        # The session is answered with an HTTP error the server never had a say in (S1).
        "respond-definite": lambda r: StreamFault(hide=True, action=_respond(r.choice(_DEFINITE))),
        "respond-indefinite": lambda r: StreamFault(
            hide=True, action=_respond(r.choice(_INDEFINITE))
        ),
        # RFC 9113: the request was never processed (S12b, S13).
        "refused-stream": lambda r: StreamFault(
            hide=True, when_up=r.randint(1, 2), action=ResetStream(code=H2ErrorCode.REFUSED_STREAM)
        ),
        "goaway-unprocessed": lambda r: StreamFault(
            hide=True, when_up=r.randint(1, 2), action=GoAway(below=True)
        ),
        "rst-stream": _after_apply(_rst),
        "goaway-error-cut": _after_apply(_goaway_cut),
        # Acks (S5) or inputs (S6) withheld until the client's ack deadline passes.
        "withhold-acks": lambda r: StreamFault(pass_down=_k(r)),
        "withhold-inputs": lambda r: StreamFault(pass_up=_k(r)),
        "delay-acks": lambda r: StreamFault(delay_down=r.uniform(0.001, 0.05)),
        "reconnect-flag": lambda r: StreamFault(reconnect_flag=True),
        # Not retryable: the session stops, under every policy (S10, S11).
        "end-stream": _ack_k_then(EndStream()),
        "bad-ack": _bad_ack,
        # The flow-control stall of S15 (needs manage_windows).
        "stall-window": lambda r: StreamFault(stall=True),
    }


def _read_faults() -> dict[str, _Maker]:
    return {
        "cut": _after_reads(lambda r: Cut(reset=r.random() < 0.5)),
        "terminal": _after_reads(
            lambda r: _terminal(r.choice(((500, "storage"), (503, "unavailable"))))
        ),
        "terminal-draining": _after_reads(lambda r: _terminal((503, "server_draining"))),
        "rst-stream": _after_reads(_rst),
        "goaway-error-cut": _after_reads(_goaway_cut),
        "withhold": lambda r: StreamFault(pass_down=_j(r)),
        "delay": lambda r: StreamFault(delay_down=r.uniform(0.001, 0.05)),
        "reconnect-flag": lambda r: StreamFault(reconnect_flag=True),
        "respond": lambda r: StreamFault(hide=True, action=_respond(r.choice(_INDEFINITE))),
    }


def _unary_faults() -> dict[str, _Maker]:
    return {
        "respond-definite": lambda r: StreamFault(hide=True, action=_respond(r.choice(_DEFINITE))),
        "respond-indefinite": lambda r: StreamFault(
            hide=True, action=_respond(r.choice(_INDEFINITE))
        ),
        "apply-then-cut": lambda r: StreamFault(pass_down=0, when_down=1, action=Cut()),
        "apply-then-error": lambda r: StreamFault(
            pass_down=0, when_down=1, action=_respond(r.choice(_INDEFINITE))
        ),
        "cut-before": lambda r: StreamFault(hide=True, action=Cut(reset=r.random() < 0.5)),
        "delay": lambda r: StreamFault(delay_down=r.uniform(0.001, 0.05)),
    }


APPEND_FAULTS = frozenset(_append_faults())
"""Names of the faults drawn for append sessions."""
READ_FAULTS = frozenset(_read_faults())
"""Names of the faults drawn for read sessions."""
UNARY_FAULTS = frozenset(_unary_faults())
"""Names of the faults drawn for unary requests."""
CONNECTION_FAULTS = frozenset({"reset", "blackhole", "cut-after-up", "cut-after-down"})
"""Names of the connection faults."""


@dataclass(kw_only=True)
class Chaos:
    """A seeded source of random faults for :attr:`FaultProxy.chaos`.

    Attributes:
        seed: the random seed.
        stream_rate: the chance that a request stream gets a fault.
        connection_rate: the chance that a connection gets a fault.
        allow: decides which named faults may hit a request (default: all). Use it to keep
            faults that end a session for good away from writers that must not stop.
        blackhole_seconds: how long a blackholed connection is held (the client's connect
            timeout should be shorter).
    """

    seed: int = 0
    stream_rate: float = 0.05
    connection_rate: float = 0.02
    allow: Callable[[RequestInfo, str], bool] | None = None
    blackhole_seconds: float = 5.0
    drawn: dict[str, int] = field(default_factory=dict)
    """How often each named fault was drawn."""

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._append = _append_faults()
        self._read = _read_faults()
        self._unary = _unary_faults()

    def _pick(self, request: RequestInfo, menu: dict[str, _Maker]) -> StreamFault | None:
        names = sorted(n for n in menu if self.allow is None or self.allow(request, n))
        if not names:
            return None
        name = self._rng.choice(names)
        self.drawn[name] = self.drawn.get(name, 0) + 1
        return menu[name](self._rng)

    def stream_fault(self, request: RequestInfo) -> StreamFault | None:
        """A fault for a new request stream, or None."""
        if self._rng.random() >= self.stream_rate:
            return None
        if request.s2s and request.method == "POST":
            return self._pick(request, self._append)
        if request.s2s:
            return self._pick(request, self._read)
        return self._pick(request, self._unary)

    def connection_fault(self, number: int) -> ConnFault | None:
        """A fault for a new connection, or None."""
        rng = self._rng
        if rng.random() >= self.connection_rate:
            return None
        name = rng.choice(sorted(CONNECTION_FAULTS))
        self.drawn[f"conn:{name}"] = self.drawn.get(f"conn:{name}", 0) + 1
        if name == "reset":
            return Reset()
        if name == "blackhole":
            return Blackhole(seconds=self.blackhole_seconds)
        direction = Direction.UP if name == "cut-after-up" else Direction.DOWN
        nbytes = rng.randint(50, 20_000)
        return CutAfter(nbytes=nbytes, direction=direction, reset=rng.random() < 0.5)
