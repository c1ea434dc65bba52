"""The vocabulary of the fault proxy: which requests a fault applies to, what it does to
their streams, what it does to whole connections, and what the proxy counted.

Every type here is a frozen, keyword-only dataclass, so a script is plain data that can be
printed, compared and generated (the chaos plan builds the same objects at random).
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from s2kit.testing._faults._wire import H2ErrorCode

__all__ = [
    "Action",
    "Blackhole",
    "ConnFault",
    "Cut",
    "CutAfter",
    "Direction",
    "EndStream",
    "FaultStats",
    "GoAway",
    "Hold",
    "Inject",
    "Match",
    "RequestInfo",
    "Release",
    "Reset",
    "ResetStream",
    "Respond",
    "Stall",
    "Step",
    "StreamFault",
    "Terminal",
    "TraceEvent",
]


class Direction(enum.Enum):
    """Which way bytes flow through the proxy."""

    UP = "up"
    """From the client to the server."""
    DOWN = "down"
    """From the server to the client."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestInfo:
    """A request as the proxy saw its HEADERS."""

    conn: int
    """The proxy's number for the client connection (1, 2, ... in accept order)."""
    stream_id: int
    """The HTTP/2 stream id the client chose."""
    method: str
    path: str
    """The ``:path``, query included."""
    headers: tuple[tuple[str, str], ...]
    """The regular headers (lowercase names)."""
    time: float
    """Event-loop time at which the HEADERS arrived."""

    def header(self, name: str) -> str | None:
        """First value of ``name``."""
        for k, v in self.headers:
            if k == name:
                return v
        return None

    @property
    def s2s(self) -> bool:
        """Whether it opens an S2S session (``content-type: s2s/proto``)."""
        return (self.header("content-type") or "").startswith("s2s/")


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """Which requests a :class:`StreamFault` applies to; every given field must hold."""

    method: str | None = None
    """``GET``, ``POST``, ..."""
    path: str | None = None
    """A substring of the ``:path`` (e.g. ``"/records"``, ``"/streams/s1/"``)."""
    s2s: bool | None = None
    """True: only S2S sessions; False: only the other requests."""
    where: Callable[[RequestInfo], bool] | None = None
    """Any further condition."""

    def matches(self, request: RequestInfo) -> bool:
        """Whether ``request`` is one of them."""
        if self.method is not None and request.method != self.method:
            return False
        if self.path is not None and self.path not in request.path:
            return False
        if self.s2s is not None and request.s2s != self.s2s:
            return False
        return self.where is None or self.where(request)


# --- stream actions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Cut:
    """Drop the whole connection, both sides: RST (``reset=True``) or FIN.

    Everything forwarded before the cut reaches the peer first (the proxy writes it, waits for
    its buffers to empty, then cuts).
    """

    reset: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Respond:
    """Answer the request in the server's place with an error response.

    The server's side of the stream is reset (CANCEL) and nothing more of it is forwarded.
    Use it on a hidden stream (``StreamFault(hide=True)``) to claim a definite failure
    truthfully: the server then never saw the request. Once the client has its response
    head, use :class:`Terminal` instead (a Respond then becomes one).
    """

    status: int
    code: str | None = None
    """The S2 error code; None sends ``body`` as is."""
    message: str = "injected by the fault proxy"
    retry_after_ms: int | None = None
    """Adds a ``retry-after-ms`` header."""
    body: bytes | None = None
    """The raw body (overrides ``code``): e.g. an HTML page for a non-JSON 503."""
    content_type: str = "application/json"

    def encoded_body(self) -> bytes:
        """The response body."""
        if self.body is not None:
            return self.body
        return json.dumps({"code": self.code, "message": self.message}).encode()


@dataclass(frozen=True, slots=True, kw_only=True)
class Terminal:
    """End an S2S response with a terminal frame (docs/protocol.md#s2s-framing) carrying this error.

    If the client has no response head yet, a ``200 s2s/proto`` head goes first. The server's
    side of the stream is reset (CANCEL).
    """

    status: int
    code: str | None = None
    message: str = "injected by the fault proxy"
    body: bytes | None = None
    """The raw JSON body (overrides ``code``)."""

    def encoded_body(self) -> bytes:
        """The terminal frame's body."""
        if self.body is not None:
            return self.body
        return json.dumps({"code": self.code, "message": self.message}).encode()


@dataclass(frozen=True, slots=True, kw_only=True)
class EndStream:
    """End the response cleanly (END_STREAM, no terminal frame); the server's side is reset."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResetStream:
    """RST_STREAM(``code``) to the client; the server's side is reset with CANCEL."""

    code: int = H2ErrorCode.CANCEL


@dataclass(frozen=True, slots=True, kw_only=True)
class GoAway:
    """GOAWAY to the client in the server's name (the real server is not told).

    ``last_stream_id`` defaults to the highest stream the client has opened that the server
    saw. With ``below=True`` it is the highest stream the server saw, so with ``hide`` the
    faulted stream is above it and truly never processed (RFC 9113 §6.8); the streams the
    server did see go on. ``then_cut`` drops the connection right after.
    """

    code: int = H2ErrorCode.NO_ERROR
    last_stream_id: int | None = None
    below: bool = False
    then_cut: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Inject:
    """Send ``data`` (whole S2S frames, e.g. a forged ack) to the client on the stream."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """Change the stream's ``pass_down`` limit (None: no limit) and forward the server
    messages it now lets through; e.g. hold acks until the client sent more, then let some
    go."""

    pass_down: int | None = None


Action = Cut | Respond | Terminal | EndStream | ResetStream | GoAway | Inject | Release


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """A further trigger and action of a :class:`StreamFault` (see ``then``)."""

    when_up: int = 0
    when_down: int = 0
    action: Action | tuple[Action, ...] | None = None

    @property
    def actions(self) -> tuple[Action, ...]:
        """The action(s) as a tuple."""
        if self.action is None:
            return ()
        return self.action if isinstance(self.action, tuple) else (self.action,)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamFault:
    """What to do to the streams of matching requests.

    Messages are S2S frames for S2S bodies; a non-S2S request body is one message (complete
    at END_STREAM) and a non-S2S response is one message (its HEADERS and DATA).

    The action fires once, as soon as the client has sent ``when_up`` messages **and** the
    server has sent ``when_down`` messages (counted as they arrive at the proxy, forwarded or
    not). With the defaults it fires on the request's HEADERS.
    """

    match: Match = field(default_factory=Match)
    times: int = 1
    """How many matching streams it applies to (each consumes one)."""
    hide: bool = False
    """The server never sees the request: the proxy consumes its body and answers alone."""
    pass_up: int | None = None
    """Forward at most this many client messages; later ones are dropped (they never reach
    the server). None: all."""
    pass_up_bytes: int | None = None
    """For a non-S2S body: forward only its first bytes (and never its END_STREAM)."""
    pass_down: int | None = None
    """Forward at most this many server messages; later ones are withheld. None: all."""
    when_up: int = 0
    when_down: int = 0
    action: Action | tuple[Action, ...] | None = None
    """What happens when the trigger holds (None: only the pass limits apply)."""
    then: tuple[Step, ...] = ()
    """Further steps, each firing once its own trigger holds, after the one before it."""
    delay_down: float = 0.0
    """Hold each server message this many seconds before forwarding it."""
    reconnect_flag: bool = False
    """Set the reconnect-advised bit (0x10) on every S2S message forwarded to the client."""
    rewrite_terminal: Terminal | None = None
    """Replace any terminal frame the server sends on the stream with this one."""
    stall: bool = False
    """Withhold the stream's send window from the client until ``release_windows()``
    (needs ``FaultProxy(manage_windows=True)``)."""

    @property
    def actions(self) -> tuple[Action, ...]:
        """The action(s) as a tuple."""
        if self.action is None:
            return ()
        return self.action if isinstance(self.action, tuple) else (self.action,)

    def steps(self) -> list[Step]:
        """Every trigger with its actions, in firing order."""
        first = [Step(when_up=self.when_up, when_down=self.when_down, action=self.action)]
        return (first if self.action is not None else []) + list(self.then)

    def kind(self) -> str:
        """A short label for statistics (``"cut"``, ``"terminal:rate_limited"``, ...)."""
        acts = tuple(a for step in self.steps() for a in step.actions if not isinstance(a, Release))
        if not acts:
            if self.stall:
                return "stall-window"
            if self.pass_down is not None or self.pass_up is not None:
                return "withhold"
            if self.delay_down:
                return "delay"
            if self.reconnect_flag:
                return "reconnect-flag"
            return "none"
        return "+".join(_action_kind(a) for a in acts)


def _action_kind(action: Action) -> str:
    if isinstance(action, Cut):
        return "cut-rst" if action.reset else "cut-fin"
    if isinstance(action, Respond):
        return f"respond:{action.code or action.status}"
    if isinstance(action, Terminal):
        return f"terminal:{action.code or action.status}"
    if isinstance(action, EndStream):
        return "end-stream"
    if isinstance(action, ResetStream):
        return f"rst-stream:{H2ErrorCode(action.code).name}"
    if isinstance(action, GoAway):
        return f"goaway:{H2ErrorCode(action.code).name}{':below' if action.below else ''}"
    if isinstance(action, Release):
        return "release"
    return "inject"


# --- connection faults ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Reset:
    """Accept the connection, then reset it (RST) before reading a byte."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Blackhole:
    """Accept the connection and never answer: nothing is read, forwarded or sent.

    Held until the client gives up or ``seconds`` pass (then reset).
    """

    seconds: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    """Accept, but relay nothing until ``release`` is set (or ``seconds`` pass: reset)."""

    release: asyncio.Event
    """Set it to let the connection through."""
    seconds: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CutAfter:
    """Cut the connection once ``nbytes`` bytes came from one side.

    Only the whole frames within those bytes are forwarded.
    """

    nbytes: int
    direction: Direction = Direction.UP
    reset: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Stall:
    """Stop reading from one side after ``nbytes`` (its writes back up), then, after
    ``seconds``, cut the connection."""

    nbytes: int
    direction: Direction = Direction.UP
    seconds: float = 30.0
    reset: bool = True


ConnFault = Reset | Blackhole | Hold | CutAfter | Stall


def conn_fault_kind(fault: ConnFault) -> str:
    """A short label for statistics."""
    if isinstance(fault, Reset):
        return "conn:reset"
    if isinstance(fault, Blackhole):
        return "conn:blackhole"
    if isinstance(fault, Hold):
        return "conn:hold"
    if isinstance(fault, CutAfter):
        return f"conn:cut-after-{fault.direction.value}"
    return f"conn:stall-{fault.direction.value}"


# --- what the proxy saw -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceEvent:
    """One S2S message or control event on a stream (recorded with ``record=True``)."""

    time: float
    conn: int
    stream_id: int
    direction: Direction
    kind: str
    """``"message"``, ``"terminal"``, ``"headers"``, ``"end"``, ``"rst"``, ``"goaway"``,
    ``"fault"``."""
    data: bytes = b""
    """The message payload (without its 4-byte head), or the fault's label."""
    forwarded: bool = True


@dataclass(slots=True)
class FaultStats:
    """Running totals of a :class:`FaultProxy`."""

    connections: int = 0
    """Client connections accepted."""
    requests: int = 0
    """Request streams seen."""
    messages_up: int = 0
    """S2S messages from clients."""
    messages_down: int = 0
    """S2S messages from the server."""
    bytes_up: int = 0
    bytes_down: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    """Faults injected, by kind."""

    def total_faults(self) -> int:
        """All faults injected."""
        return sum(self.faults.values())


def as_actions(actions: Action | Sequence[Action] | None) -> tuple[Action, ...]:
    """Normalize an action argument."""
    if actions is None:
        return ()
    if isinstance(actions, Sequence):
        return tuple(actions)
    return (actions,)
