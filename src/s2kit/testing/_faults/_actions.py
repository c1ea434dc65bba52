"""What stream faults do: the trigger check and every action, as a base of :class:`Relay`.

Actions are synchronous: they queue frames for either side (through the relay's output
buffers and header encoders) and may set ``cut``, which the driver carries out once the output
is written. Every action that answers in the server's name first *detaches* the stream: the
server's side is reset with CANCEL and anything it still sends is dropped (and credited), so
the client sees only the proxy's answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from s2kit.testing._faults._model import (
    Action,
    Cut,
    Direction,
    EndStream,
    GoAway,
    Inject,
    Release,
    ResetStream,
    Respond,
    Terminal,
)
from s2kit.testing._faults._wire import (
    Flag,
    FrameType,
    H2ErrorCode,
    frame,
    goaway_payload,
)
from s2kit.wire._s2s import encode_terminal

if TYPE_CHECKING:
    from s2kit.testing._faults._model import FaultStats
    from s2kit.testing._faults._stream import ProxyStream

__all__ = ["FaultActions"]

_CHUNK = 16_384  # the frame size every peer accepts (RFC 9113 §4.2)
_Headers = list[tuple[bytes, bytes]]


class FaultActions:
    """The fault half of the relay (see :class:`~._relay.Relay` for the other)."""

    cut: Cut | None
    _stats: FaultStats
    _to_server: list[bytes]
    _to_client: list[bytes]
    _debt: int
    _forwarded: int

    def _send_headers(self, to: Direction, sid: int, headers: _Headers, end: bool) -> None:
        raise NotImplementedError

    def _drop_held(self, st: ProxyStream) -> None:
        raise NotImplementedError

    def _pump(self, st: ProxyStream) -> None:
        raise NotImplementedError

    def _maybe_forget(self, st: ProxyStream) -> None:
        raise NotImplementedError

    def _record(self, sid: int, direction: Direction, kind: str, data: bytes) -> None:
        raise NotImplementedError

    def _check(self, st: ProxyStream) -> None:
        while (step := st.due()) is not None:
            assert st.fault is not None
            if st.step == 0:
                self._stats.faults[st.fault.kind()] += 1
                self._record(st.sid, Direction.DOWN, "fault", st.fault.kind().encode())
            st.step += 1
            for action in step.actions:
                self._fire(st, action)

    def _fire(self, st: ProxyStream, action: Action) -> None:
        if isinstance(action, Cut):
            self.cut = self.cut or action
        elif isinstance(action, Respond):
            if st.client_has_head or st.ended_to_client:
                self._terminal(st, action.status, action.encoded_body())
            else:
                self._respond(st, action)
        elif isinstance(action, Terminal):
            self._terminal(st, action.status, action.encoded_body())
        elif isinstance(action, EndStream):
            self._end(st, b"")
        elif isinstance(action, ResetStream):
            self._detach(st)
            if not st.ended_to_client:
                code = int(action.code).to_bytes(4, "big")
                self._to_client.append(frame(FrameType.RST_STREAM, 0, st.sid, code))
                st.ended_to_client = True
        elif isinstance(action, GoAway):
            # "below": the highest stream the server really saw, so every stream above it
            # (this hidden one included) truly was never processed (RFC 9113 §6.8).
            last = action.last_stream_id
            if last is None:
                last = self._forwarded if action.below else max(st.sid, self._forwarded)
            self._to_client.append(
                frame(FrameType.GOAWAY, 0, 0, goaway_payload(last, int(action.code)))
            )
            if last < st.sid:
                self._detach(st)
            if action.then_cut:
                self.cut = self.cut or Cut(reset=True)
        elif isinstance(action, Release):
            st.down_limit = action.pass_down
            self._pump(st)
        elif isinstance(action, Inject):
            self._inject_debt(st, len(action.data))
            for i in range(0, len(action.data), _CHUNK):
                chunk = action.data[i : i + _CHUNK]
                self._to_client.append(frame(FrameType.DATA, 0, st.sid, chunk))

    def _inject_debt(self, st: ProxyStream, size: int) -> None:
        self._debt += size
        st.debt += size

    def _detach(self, st: ProxyStream) -> None:
        """Forget the server's side of the stream: reset it there, drop what it sent."""
        if st.server_gone:
            return
        self._to_server.append(
            frame(FrameType.RST_STREAM, 0, st.sid, int(H2ErrorCode.CANCEL).to_bytes(4, "big"))
        )
        self._drop_held(st)
        st.detached = True

    def _respond(self, st: ProxyStream, response: Respond) -> None:
        body = response.encoded_body()
        headers: _Headers = [
            (b":status", str(response.status).encode()),
            (b"content-type", response.content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        if response.retry_after_ms is not None:
            headers.append((b"retry-after-ms", str(response.retry_after_ms).encode()))
        self._detach(st)
        self._send_headers(Direction.DOWN, st.sid, headers, not body)
        st.client_has_head = True
        if body:
            self._end(st, body)
        st.ended_to_client = True
        self._maybe_forget(st)

    def _terminal(self, st: ProxyStream, status: int, body: bytes) -> None:
        self._end(st, encode_terminal(status, body))

    def _end(self, st: ProxyStream, data: bytes) -> None:
        """Finish the client's response with ``data`` (after a 200 head if it has none)."""
        self._detach(st)
        if st.ended_to_client:
            return
        if not st.client_has_head:
            head: _Headers = [(b":status", b"200"), (b"content-type", b"s2s/proto")]
            self._send_headers(Direction.DOWN, st.sid, head, False)
            st.client_has_head = True
        self._debt += len(data)
        for i in range(0, max(len(data), 1), _CHUNK):
            last = i + _CHUNK >= len(data)
            chunk = data[i : i + _CHUNK]
            self._to_client.append(
                frame(FrameType.DATA, Flag.END_STREAM if last else 0, st.sid, chunk)
            )
        st.ended_to_client = True
        self._maybe_forget(st)
