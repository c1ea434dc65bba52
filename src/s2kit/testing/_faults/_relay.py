"""The sans-IO core of the fault proxy: one client connection relayed to one server connection.

Theory of operation
-------------------
Bytes from each side go in (``receive_up`` from the client, ``receive_down`` from the
server); bytes for each side come out (``take_output``). In between, every HTTP/2 frame is
parsed and either passed on as it came or rewritten:

* **Header blocks** are decoded with the sender's HPACK state and re-encoded, at the moment
  they are forwarded, with the proxy's own encoder for the receiver. That is what lets the
  proxy drop a request (``hide``), hold a response, or answer in the server's name without
  corrupting either side's dynamic table.
* **DATA** of a stream goes through the stream's fault (``_stream``): S2S bodies are cut into
  messages, so a fault can forward the first *k* inputs, withhold acks, flip a flag or
  replace a terminal frame.
* **Flow control stays exact** (RFC 9113 §5.2). Bytes the proxy drops are credited back to
  their sender (WINDOW_UPDATE); bytes it injects are a debt subtracted from the client's next
  credits to the server. So neither side's window drifts, and no side ever sees a
  flow-control error the real peer would not cause.
* **Window control** (``manage_windows``): the server's SETTINGS_INITIAL_WINDOW_SIZE reaches the
  client as 0, and the proxy grants each new stream its window itself, so it can withhold one
  stream's window (``StreamFault.stall``) and release it later.

Triggers are checked after every whole message, so an action lands exactly between two
messages; the actions themselves live in :mod:`._actions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import hpack

from s2kit.testing._faults._actions import FaultActions
from s2kit.testing._faults._model import (
    Cut,
    Direction,
    RequestInfo,
    TraceEvent,
)
from s2kit.testing._faults._stream import Item, ItemKind, ProxyStream
from s2kit.testing._faults._wire import (
    PREFACE,
    S2S_RECONNECT,
    S2S_TERMINAL,
    Flag,
    Frame,
    FrameReader,
    FrameType,
    H2ErrorCode,
    SettingCode,
    frame,
    goaway_payload,
    parse_settings,
    settings_payload,
    window_update,
)
from s2kit.wire._s2s import encode_terminal

if TYPE_CHECKING:
    from collections.abc import Callable

    from s2kit.testing._faults._model import FaultStats, StreamFault

__all__ = ["ProtocolViolation", "Relay"]

_DEFAULT_FRAME = 16_384
_DEFAULT_WINDOW = 65_535
_MAX_INCREMENT = 2**31 - 1
_Headers = list[tuple[bytes, bytes]]


class ProtocolViolation(Exception):
    """A side broke HTTP/2 in a way the proxy cannot relay; the connection is cut."""


def _text(headers: _Headers, name: bytes) -> str | None:
    for k, v in headers:
        if k == name:
            return v.decode("latin-1")
    return None


class Relay(FaultActions):
    """One proxied HTTP/2 connection, sans-IO.

    Args:
        conn: the proxy's number for this connection.
        choose: picks the fault (or None) for a new request stream.
        stats: totals to update.
        now: the clock (event-loop time).
        manage_windows: grant stream windows to the client itself (for ``stall``).
        trace: where to record message and control events, or None.
    """

    def __init__(
        self,
        *,
        conn: int,
        choose: Callable[[RequestInfo], StreamFault | None],
        stats: FaultStats,
        now: Callable[[], float],
        manage_windows: bool = False,
        trace: list[TraceEvent] | None = None,
    ) -> None:
        self.conn = conn
        self.cut: Cut | None = None
        """Set when the connection must be dropped (after the pending output is written)."""
        self.raw = False
        """Relaying bytes as they are (not HTTP/2 with prior knowledge)."""
        self._choose = choose
        self._stats = stats
        self._now = now
        self._manage = manage_windows
        self._trace = trace
        self._preface = b""
        self._up = FrameReader()
        self._down = FrameReader()
        self._up_dec = hpack.Decoder()
        self._up_enc = hpack.Encoder()
        self._down_dec = hpack.Decoder()
        self._down_enc = hpack.Encoder()
        self._block: dict[Direction, tuple[int, bool, bytearray]] = {}
        self._streams: dict[int, ProxyStream] = {}
        self._gone: set[int] = set()  # forgotten streams the server never knew or dropped
        self._highest = 0  # the highest stream id the client opened
        self._forwarded = 0  # the highest stream id the server saw
        self._to_server: list[bytes] = []
        self._to_client: list[bytes] = []
        self._debt = 0  # bytes injected to the client, owed against its connection credits
        self._client_frame = _DEFAULT_FRAME  # the client's SETTINGS_MAX_FRAME_SIZE
        self._server_frame = _DEFAULT_FRAME
        self._server_window = _DEFAULT_WINDOW  # the server's real SETTINGS_INITIAL_WINDOW_SIZE
        self._server_settings_seen = False
        self._delayed: set[ProxyStream] = set()

    # -- the driver's interface ------------------------------------------------------------

    def take_output(self) -> tuple[bytes, bytes]:
        """Bytes to write to the server and to the client, in that order."""
        up, down = b"".join(self._to_server), b"".join(self._to_client)
        self._to_server.clear()
        self._to_client.clear()
        return up, down

    def receive_up(self, data: bytes) -> None:
        """Bytes from the client.

        Raises:
            ProtocolViolation: the bytes cannot be relayed.
        """
        self._stats.bytes_up += len(data)
        if self.raw:
            self._to_server.append(data)
            return
        if len(self._preface) < len(PREFACE):
            need = len(PREFACE) - len(self._preface)
            self._preface += data[:need]
            data = data[need:]
            if not PREFACE.startswith(self._preface):
                self.raw = True  # not h2c with prior knowledge: relay it untouched
                self._to_server.append(self._preface + data)
                return
            if len(self._preface) < len(PREFACE):
                return
            self._to_server.append(PREFACE)
        try:
            for f in self._up.receive(data):
                if self.cut is not None:
                    break  # nothing after the cut point is relayed
                self._from_client(f)
        except (ValueError, hpack.HPACKError) as exc:
            raise ProtocolViolation(f"from the client: {exc}") from exc

    def receive_down(self, data: bytes) -> None:
        """Bytes from the server.

        Raises:
            ProtocolViolation: the bytes cannot be relayed.
        """
        self._stats.bytes_down += len(data)
        if self.raw:
            self._to_client.append(data)
            return
        try:
            for f in self._down.receive(data):
                if self.cut is not None:
                    break
                self._from_server(f)
        except (ValueError, hpack.HPACKError) as exc:
            raise ProtocolViolation(f"from the server: {exc}") from exc

    def next_deadline(self) -> float | None:
        """When delayed messages are next due (event-loop time), if any are waiting."""
        times = [st.queue[0].not_before for st in self._delayed if st.queue]
        return min(times) if times else None

    def tick(self) -> None:
        """Forward delayed messages that are due."""
        for st in list(self._delayed):
            self._delayed.discard(st)
            self._pump(st)

    def release_windows(self) -> None:
        """Give every stalled stream the window it was denied."""
        for st in self._streams.values():
            if st.stalled:
                st.stalled = False
                self._grant(st.sid, st.withheld_window)
                st.withheld_window = 0

    def goaway(self, code: int, last_stream_id: int | None) -> None:
        """Send GOAWAY to the client (``last_stream_id`` defaults to the highest stream seen)."""
        if self.raw:
            return
        last = self._highest if last_stream_id is None else last_stream_id
        self._to_client.append(frame(FrameType.GOAWAY, 0, 0, goaway_payload(last, code)))
        self._stats.faults[f"goaway:{H2ErrorCode(code).name}"] += 1

    # -- client to server ------------------------------------------------------------------

    def _from_client(self, f: Frame) -> None:
        t = f.type
        if t == FrameType.HEADERS or t == FrameType.CONTINUATION:
            self._collect(Direction.UP, f)
        elif f.stream_id in self._gone:
            if t == FrameType.DATA:
                self._to_client.append(window_update(0, len(f.payload)))
        elif t == FrameType.DATA:
            self._client_data(f)
        elif t == FrameType.WINDOW_UPDATE:
            self._client_window_update(f)
        elif t == FrameType.RST_STREAM:
            st = self._streams.get(f.stream_id)
            if st is None or not st.server_gone:
                self._to_server.append(f.raw)
            if st is not None:
                self._drop_held(st)
                self._forget(st)
        elif t == FrameType.SETTINGS and not f.flags & Flag.ACK:
            for ident, value in parse_settings(f.payload):
                if ident == SettingCode.HEADER_TABLE_SIZE:
                    self._down_enc.header_table_size = min(value, 4096)
                    self._down_dec.max_allowed_table_size = value
                elif ident == SettingCode.MAX_FRAME_SIZE:
                    self._client_frame = value
            self._to_server.append(f.raw)
        elif t == FrameType.PRIORITY:
            st = self._streams.get(f.stream_id)
            if st is None or not st.server_gone:
                self._to_server.append(f.raw)
        else:
            self._to_server.append(f.raw)

    def _client_headers(self, sid: int, block: bytes, end: bool) -> None:
        headers: _Headers = list(self._up_dec.decode(block, raw=True))
        if sid in self._gone:
            return
        st = self._streams.get(sid)
        if st is None:
            if sid <= self._highest or sid % 2 == 0:  # a stream the proxy forgot: pass it on
                self._send_headers(Direction.UP, sid, headers, end)
                return
            self._highest = sid
            st = self._open(sid, headers)
        if not st.server_gone:
            self._send_headers(Direction.UP, sid, headers, end)
            self._forwarded = max(self._forwarded, sid)
        if end:
            st.client_ended = True
            if not st.s2s_up:
                st.up_seen = 1
        self._check(st)

    def _open(self, sid: int, headers: _Headers) -> ProxyStream:
        request = RequestInfo(
            conn=self.conn,
            stream_id=sid,
            method=_text(headers, b":method") or "",
            path=_text(headers, b":path") or "",
            headers=tuple(
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in headers if k[:1] != b":"
            ),
            time=self._now(),
        )
        fault = self._choose(request)
        self._stats.requests += 1
        st = ProxyStream(sid, request, fault, s2s_up=request.s2s)
        self._streams[sid] = st
        if fault is not None:
            st.hidden = fault.hide
            if not fault.steps():
                self._stats.faults[fault.kind()] += 1
        if self._manage:
            if fault is not None and fault.stall:
                st.stalled = True
                st.withheld_window = self._server_window
            else:
                self._grant(sid, self._server_window)
        return st

    def _client_data(self, f: Frame) -> None:
        sid = f.stream_id
        st = self._streams.get(sid)
        if st is None:
            self._to_server.append(f.raw)
            return
        body = f.body()
        end = bool(f.flags & Flag.END_STREAM)
        length = len(f.payload)
        dropped = length - len(body)  # padding is the proxy's to credit
        if st.server_gone:
            dropped = length
            self._count_up(st, body, end)
        elif st.s2s_up:
            dropped += self._client_messages(st, body, end)
        else:
            fault = st.fault
            out = body
            if fault is not None and fault.pass_up == 0:
                out = b""
                st.up_dropped = True
            elif fault is not None and fault.pass_up_bytes is not None:
                out = body[: max(0, fault.pass_up_bytes - st.up_bytes)]
                st.up_dropped = True  # END_STREAM never goes
            dropped += len(body) - len(out)
            st.up_bytes += len(out)
            forward_end = end and not st.up_dropped
            if out or forward_end:
                flags = Flag.END_STREAM if forward_end else 0
                self._to_server.append(frame(FrameType.DATA, flags, sid, out))
            if end:
                st.up_seen = 1
        if dropped:
            self._credit_client(st, dropped, end)
        if end:
            st.client_ended = True
        self._check(st)
        self._maybe_forget(st)

    def _client_messages(self, st: ProxyStream, body: bytes, end: bool) -> int:
        """Forward the S2S pieces the fault lets through; return the bytes dropped.

        The trigger is checked after every whole message, so an action lands exactly between
        two messages even when they share a DATA frame; nothing after it is forwarded once
        the server's side is gone or the connection is being cut.
        """
        keep: list[bytes] = []
        dropped = 0
        limit = st.pass_up
        for piece in st.up_split.feed(body):
            if st.server_gone or self.cut is not None:
                dropped += len(piece.data)
            elif limit is None or piece.index < limit:
                keep.append(piece.data)
            else:
                dropped += len(piece.data)
                st.up_dropped = True
            if piece.last:
                st.up_seen += 1
                self._stats.messages_up += 1
                if keep:
                    self._to_server.append(frame(FrameType.DATA, 0, st.sid, b"".join(keep)))
                    keep.clear()
                self._check(st)
        gone = st.server_gone or self.cut is not None
        if keep and not gone:
            self._to_server.append(frame(FrameType.DATA, 0, st.sid, b"".join(keep)))
        elif keep:
            dropped += sum(map(len, keep))
        if end and not st.up_dropped and not gone:
            self._to_server.append(frame(FrameType.DATA, Flag.END_STREAM, st.sid))
        return dropped

    def _count_up(self, st: ProxyStream, body: bytes, end: bool) -> None:
        if st.s2s_up:
            for piece in st.up_split.feed(body):
                if piece.last:
                    st.up_seen += 1
                    self._stats.messages_up += 1
        elif end:
            st.up_seen = 1

    def _credit_client(self, st: ProxyStream, size: int, end: bool) -> None:
        """Give the client back ``size`` bytes of window the server will never see."""
        self._to_client.append(window_update(0, size))
        if not end:
            self._to_client.append(window_update(st.sid, size))

    def _maybe_forget(self, st: ProxyStream) -> None:
        if st.ended_to_client and st.client_ended and not st.queue:
            self._forget(st)

    def _forget(self, st: ProxyStream) -> None:
        self._streams.pop(st.sid, None)
        self._delayed.discard(st)
        if st.server_gone:
            self._gone.add(st.sid)

    def _client_window_update(self, f: Frame) -> None:
        sid = f.stream_id
        increment = int.from_bytes(f.payload[:4], "big") & 0x7FFF_FFFF
        if sid == 0:
            paid = min(increment, self._debt)
            self._debt -= paid
            if increment - paid:
                self._to_server.append(window_update(0, increment - paid))
            return
        st = self._streams.get(sid)
        if st is None:
            self._to_server.append(f.raw)
        elif not st.server_gone:
            paid = min(increment, st.debt)
            st.debt -= paid
            if increment - paid:
                self._to_server.append(window_update(sid, increment - paid))

    # -- server to client ------------------------------------------------------------------

    def _from_server(self, f: Frame) -> None:
        t = f.type
        if t == FrameType.HEADERS or t == FrameType.CONTINUATION:
            self._collect(Direction.DOWN, f)
        elif f.stream_id in self._gone:
            if t == FrameType.DATA:
                self._to_server.append(window_update(0, len(f.payload)))
        elif t == FrameType.DATA:
            self._server_data(f)
        elif t == FrameType.WINDOW_UPDATE and f.stream_id:
            st = self._streams.get(f.stream_id)
            if st is not None and st.stalled:
                st.withheld_window += int.from_bytes(f.payload[:4], "big") & 0x7FFF_FFFF
            elif st is None or not st.server_gone:
                self._to_client.append(f.raw)
        elif t == FrameType.RST_STREAM:
            st = self._streams.get(f.stream_id)
            if st is not None and st.queue and not st.server_gone:
                # Behind what is held: a server's RST_STREAM(NO_ERROR) after a complete
                # response must not overtake it (RFC 9113 §8.1).
                done = st.down_split.completed if st.s2s_down else 0
                st.queue.append(Item(ItemKind.RST, done, after_all=True, data=f.raw[9:13]))
                self._record(f.stream_id, Direction.DOWN, "rst", f.raw[9:13])
                self._pump(st)
                return
            if st is None or not st.server_gone:
                self._to_client.append(f.raw)
                self._record(f.stream_id, Direction.DOWN, "rst", f.raw[9:13])
            if st is not None:
                if not st.server_gone:
                    st.ended_to_client = True
                self._forget(st)
        elif t == FrameType.SETTINGS and not f.flags & Flag.ACK:
            self._server_settings(f)
        elif t == FrameType.PUSH_PROMISE:
            raise ValueError("PUSH_PROMISE is not supported (the client disables push)")
        else:
            if t == FrameType.GOAWAY:
                self._record(0, Direction.DOWN, "goaway", f.raw[9:17])
            self._to_client.append(f.raw)

    def _server_settings(self, f: Frame) -> None:
        pairs = parse_settings(f.payload)
        changed = False
        for i, (ident, value) in enumerate(pairs):
            if ident == SettingCode.HEADER_TABLE_SIZE:
                self._up_enc.header_table_size = min(value, 4096)
                self._up_dec.max_allowed_table_size = value
            elif ident == SettingCode.MAX_FRAME_SIZE:
                self._server_frame = value
            elif ident == SettingCode.INITIAL_WINDOW_SIZE and self._manage:
                delta = value - self._server_window
                self._server_window = value
                pairs[i] = (ident, 0)
                changed = True
                for st in self._streams.values():
                    if st.stalled:
                        st.withheld_window += delta
                    elif delta > 0:
                        self._grant(st.sid, delta)
        if self._manage and not self._server_settings_seen and not changed:
            pairs.append((SettingCode.INITIAL_WINDOW_SIZE, 0))
            changed = True
        self._server_settings_seen = True
        if changed:
            self._to_client.append(frame(FrameType.SETTINGS, 0, 0, settings_payload(pairs)))
        else:
            self._to_client.append(f.raw)

    def _server_headers(self, sid: int, block: bytes, end: bool) -> None:
        headers: _Headers = list(self._down_dec.decode(block, raw=True))
        if sid in self._gone:
            return
        st = self._streams.get(sid)
        if st is None:
            self._send_headers(Direction.DOWN, sid, headers, end)
            return
        if st.server_gone:
            return
        status = _text(headers, b":status") or ""
        item = Item(ItemKind.HEAD, -1, headers=headers, end=end)
        if st.server_head:
            item.after_all = True  # trailers
            item.index = st.down_split.completed if st.s2s_down else 0
        elif not status.startswith("1"):
            st.server_head = True
            st.s2s_down = (_text(headers, b"content-type") or "").startswith("s2s/")
            if not st.s2s_down:
                item.index = 0
                st.down_seen = 1
                item.not_before = self._release_time(st)
        self._record(sid, Direction.DOWN, "headers", status.encode())
        st.queue.append(item)
        self._pump(st)
        self._check(st)

    def _release_time(self, st: ProxyStream) -> float:
        fault = st.fault
        return self._now() + fault.delay_down if fault is not None and fault.delay_down else 0.0

    def _server_data(self, f: Frame) -> None:
        sid = f.stream_id
        st = self._streams.get(sid)
        if st is None:
            self._to_client.append(f.raw)
            return
        length = len(f.payload)
        if st.server_gone:
            self._to_server.append(window_update(0, length))
            return
        body = f.body()
        end = bool(f.flags & Flag.END_STREAM)
        if length > len(body):  # padding
            self._credit_server(st, length - len(body), end)
        if st.s2s_down:
            self._server_messages(st, body)
            if st.server_gone:
                return
            if end:
                st.queue.append(
                    Item(ItemKind.END, st.down_split.completed, after_all=True, end=True)
                )
        else:
            item = Item(ItemKind.DATA, 0, data=body, end=end)
            item.not_before = st.queue[-1].not_before if st.queue else 0.0
            st.queue.append(item)
        self._pump(st)
        self._check(st)

    def _server_messages(self, st: ProxyStream, body: bytes) -> None:
        """Queue the server's S2S pieces, checking the trigger after every whole message
        (see :meth:`_client_messages`); once the stream is detached the rest is credited."""
        fault = st.fault
        for piece in st.down_split.feed(body):
            data = piece.data
            if st.server_gone or self.cut is not None:
                self._to_server.append(window_update(0, len(data)))
                if piece.last:
                    st.down_seen += 1
                continue
            if piece.first:
                terminal = piece.flag & S2S_TERMINAL
                if terminal and fault is not None and fault.rewrite_terminal is not None:
                    st.terminal_skip = piece.index
                elif fault is not None and fault.reconnect_flag and not terminal:
                    data = data[:3] + bytes([piece.flag | S2S_RECONNECT]) + data[4:]
            if piece.index == st.terminal_skip:
                self._credit_server(st, len(data), False)
                if piece.last and fault is not None and fault.rewrite_terminal is not None:
                    rewrite = fault.rewrite_terminal
                    injected = encode_terminal(rewrite.status, rewrite.encoded_body())
                    self._inject_debt(st, len(injected))
                    st.queue.append(Item(ItemKind.DATA, piece.index, data=injected))
                    self._stats.faults["rewrite-terminal"] += 1
            else:
                item = Item(ItemKind.DATA, piece.index, data=data)
                item.not_before = self._release_time(st) if piece.first else 0.0
                if not piece.first and st.queue:
                    item.not_before = st.queue[-1].not_before
                st.queue.append(item)
            if self._trace is not None:
                st.msg_buf += piece.data
            if piece.last:
                st.down_seen += 1
                self._stats.messages_down += 1
                if self._trace is not None:
                    kind = "terminal" if piece.flag & S2S_TERMINAL else "message"
                    self._record(st.sid, Direction.DOWN, kind, bytes(st.msg_buf[4:]))
                    st.msg_buf.clear()
                self._pump(st)
                self._check(st)

    def _credit_server(self, st: ProxyStream, size: int, end: bool) -> None:
        """Give the server back ``size`` bytes of window the client will never see."""
        self._to_server.append(window_update(0, size))
        if not end and not st.server_gone:
            self._to_server.append(window_update(st.sid, size))

    def _drop_held(self, st: ProxyStream) -> None:
        held = st.held_data()
        st.queue.clear()
        self._delayed.discard(st)
        if held and not st.hidden:
            self._to_server.append(window_update(0, held))

    def _pump(self, st: ProxyStream) -> None:
        """Forward the stream's items that may pass, in order."""
        queue = st.queue
        now = 0.0
        while queue:
            item = queue[0]
            if not st.passes(item):
                return
            if item.not_before:
                now = now or self._now()
                if item.not_before > now:
                    self._delayed.add(st)
                    return
            queue.popleft()
            if item.kind is ItemKind.RST:
                self._to_client.append(frame(FrameType.RST_STREAM, 0, st.sid, item.data))
                st.ended_to_client = True
                self._drop_held(st)
                self._forget(st)
                return
            if item.kind is ItemKind.HEAD:
                self._send_headers(Direction.DOWN, st.sid, item.headers, item.end)
                if not (_text(item.headers, b":status") or "1").startswith("1"):
                    st.client_has_head = True
            else:
                self._to_client.append(
                    frame(FrameType.DATA, Flag.END_STREAM if item.end else 0, st.sid, item.data)
                )
            if item.end:
                st.ended_to_client = True
        self._maybe_forget(st)

    # -- header blocks ---------------------------------------------------------------------

    def _collect(self, direction: Direction, f: Frame) -> None:
        pending = self._block.get(direction)
        if f.type == FrameType.HEADERS:
            if pending is not None:
                raise ValueError("HEADERS while a header block is still open")
            pending = (f.stream_id, bool(f.flags & Flag.END_STREAM), bytearray(f.body()))
        else:
            if pending is None or pending[0] != f.stream_id:
                raise ValueError("CONTINUATION without an open header block")
            pending[2].extend(f.payload)
        if not f.flags & Flag.END_HEADERS:
            self._block[direction] = pending
            return
        self._block.pop(direction, None)
        sid, end, block = pending
        if direction is Direction.UP:
            self._client_headers(sid, bytes(block), end)
        else:
            self._server_headers(sid, bytes(block), end)

    def _send_headers(self, to: Direction, sid: int, headers: _Headers, end: bool) -> None:
        """Encode a header block for the receiving side and queue it (split to its frame
        size). ``to`` is the direction of travel."""
        encoder, out, limit = (
            (self._up_enc, self._to_server, self._server_frame)
            if to is Direction.UP
            else (self._down_enc, self._to_client, self._client_frame)
        )
        block = encoder.encode(headers)
        first = block[:limit]
        flags = (Flag.END_STREAM if end else 0) | (Flag.END_HEADERS if len(block) <= limit else 0)
        out.append(frame(FrameType.HEADERS, flags, sid, first))
        for i in range(limit, len(block), limit):
            last = Flag.END_HEADERS if i + limit >= len(block) else 0
            out.append(frame(FrameType.CONTINUATION, last, sid, block[i : i + limit]))

    def _grant(self, sid: int, size: int) -> None:
        while size > 0:
            step = min(size, _MAX_INCREMENT)
            self._to_client.append(window_update(sid, step))
            size -= step

    def _record(self, sid: int, direction: Direction, kind: str, data: bytes) -> None:
        if self._trace is not None:
            self._trace.append(
                TraceEvent(
                    time=self._now(),
                    conn=self.conn,
                    stream_id=sid,
                    direction=direction,
                    kind=kind,
                    data=data,
                )
            )
