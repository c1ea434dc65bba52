"""Test-side clients for lite's data plane: a raw HTTP/2 client for S2S sessions, and a few
unary helpers over httpx.

``H2Client`` speaks h2c with prior knowledge on one connection. Its reader task owns the socket's
read side, so a test can stream a request body while response DATA keeps arriving (full
duplex). Received DATA is credited back (WINDOW_UPDATE) only when the test takes the chunk out
with ``recv``: a test that stops reading stalls the server after one window, which is how the
lag tests make a follower fall behind. ``AppendSession`` and ``ReadSession`` frame S2S with
``s2kit.wire._s2s`` and decode with ``s2kit.wire._proto``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import httpx

from s2kit.types import AppendInput, Record
from s2kit.wire._compress import Compression
from s2kit.wire._proto import decode_append_ack, decode_read_batch, encode_append_input
from s2kit.wire._s2s import FrameDecoder, Message, Terminal, encode_message

if TYPE_CHECKING:
    from collections.abc import Callable

    from s2kit.types import AppendAck, ReadBatch

TIMEOUT = 10.0
KEY = base64.b64encode(bytes(range(32))).decode()
"""A valid ``s2-encryption-key``."""
OTHER_KEY = base64.b64encode(bytes(32)).decode()


async def eventually(predicate: Callable[[], bool]) -> None:
    """Poll for server state no event announces (background jobs such as dormancy)."""
    for _ in range(int(TIMEOUT / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


class StreamClosed(Exception):
    """The stream (or the connection) can no longer carry request data."""


class H2Stream:
    """One request/response exchange on an :class:`H2Client`."""

    def __init__(self, client: H2Client, stream_id: int) -> None:
        self.client = client
        self.stream_id = stream_id
        self.head: asyncio.Future[tuple[int, dict[str, str]]] = (
            asyncio.get_running_loop().create_future()
        )
        self.reset_code: int | None = None
        """The error code of a RST_STREAM from the server."""
        self._chunks: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue()
        self._ended = False

    async def response(self) -> tuple[int, dict[str, str]]:
        """The response status and headers (raises StreamClosed if reset first)."""
        async with asyncio.timeout(TIMEOUT):
            return await asyncio.shield(self.head)

    async def send(self, data: bytes, *, end: bool = False) -> None:
        """Send request body bytes within flow control; ``end`` closes the request body."""
        client, sid = self.client, self.stream_id
        offset = 0
        while True:
            if client.lost or self.reset_code is not None:
                raise StreamClosed("stream is gone")
            left = len(data) - offset
            try:
                size = min(left, client.h2.local_flow_control_window(sid))
                size = min(size, client.h2.max_outbound_frame_size)
                if left and size <= 0:
                    await client.window_changed()
                    continue
                last = end and size == left
                client.h2.send_data(sid, data[offset : offset + size], end_stream=last)
            except h2.exceptions.ProtocolError as exc:
                raise StreamClosed(str(exc)) from exc
            client.flush()
            offset += size
            if offset == len(data):
                break
        await client.writer.drain()

    def reset(self, code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        """Send RST_STREAM."""
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.client.h2.reset_stream(self.stream_id, code)
        self.client.flush()
        self._end()

    async def recv(self) -> bytes | None:
        """The next response DATA chunk (credited back now), or None at the end."""
        async with asyncio.timeout(TIMEOUT):
            item = await self._chunks.get()
        if item is None:
            self._chunks.put_nowait(None)  # the end stays the end
            return None
        data, credit = item
        self.client.credit(self.stream_id, credit)
        return data

    def pending(self) -> int:
        """DATA chunks received but not yet taken out with ``recv``."""
        return self._chunks.qsize() - self._ended

    async def body(self) -> bytes:
        """The rest of the response body."""
        out = bytearray()
        while (chunk := await self.recv()) is not None:
            out += chunk
        return bytes(out)

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._chunks.put_nowait(None)
        if not self.head.done():
            self.head.set_exception(StreamClosed(f"reset ({self.reset_code})"))
            self.head.exception()  # retrieved: a test that never asks must not warn


class H2Client:
    """An h2c (prior knowledge) connection. ``async with await H2Client.connect(url)``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=config)
        self.reader, self.writer = reader, writer
        self.streams: dict[int, H2Stream] = {}
        self.lost = False
        self._window = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, url: str) -> H2Client:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        client = cls(reader, writer)
        client.h2.initiate_connection()
        client.flush()
        client._task = asyncio.create_task(client._read_loop())
        return client

    async def __aenter__(self) -> H2Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    def request(
        self, method: str, path: str, headers: dict[str, str], *, end: bool = False
    ) -> H2Stream:
        """Open a stream with the request head; ``end`` when there is no body."""
        sid = self.h2.get_next_available_stream_id()
        head = [
            (":method", method),
            (":scheme", "http"),
            (":authority", "localhost"),
            (":path", path),
        ]
        self.h2.send_headers(sid, head + list(headers.items()), end_stream=end)
        self.flush()
        self.streams[sid] = stream = H2Stream(self, sid)
        return stream

    def flush(self) -> None:
        if (data := self.h2.data_to_send()) and not self.writer.is_closing():
            self.writer.write(data)

    def credit(self, stream_id: int, size: int) -> None:
        if size and not self.lost:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.acknowledge_received_data(size, stream_id)
            self.flush()

    async def window_changed(self) -> None:
        self._window.clear()
        async with asyncio.timeout(TIMEOUT):
            await self._window.wait()

    async def _read_loop(self) -> None:
        try:
            while data := await self.reader.read(1 << 16):
                for event in self.h2.receive_data(data):
                    self._on_event(event)
                self.flush()
        except (OSError, h2.exceptions.ProtocolError):
            pass
        finally:
            self.lost = True
            self._window.set()
            for stream in self.streams.values():
                stream._end()

    def _on_event(self, event: h2.events.Event) -> None:
        stream = self.streams.get(getattr(event, "stream_id", 0))
        if isinstance(event, h2.events.DataReceived):
            if stream is None or stream._ended:
                self.credit(event.stream_id, event.flow_controlled_length)
            else:
                stream._chunks.put_nowait((event.data, event.flow_controlled_length))
        elif isinstance(event, h2.events.ResponseReceived) and stream is not None:
            headers = dict(event.headers)
            if not stream.head.done():
                stream.head.set_result((int(headers.pop(":status")), headers))
        elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset) and stream:
            if isinstance(event, h2.events.StreamReset):
                stream.reset_code = event.error_code
            stream._end()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._window.set()


# --- S2S sessions -----------------------------------------------------------------------------


def records(*bodies: bytes | str, **kwargs: Any) -> AppendInput:
    """An AppendInput of plain records (``match_seq_num``/``fencing_token`` as keywords)."""
    recs = tuple(Record(body=b.encode() if isinstance(b, str) else b) for b in bodies)
    return AppendInput(records=recs, **kwargs)


def frame(inp: AppendInput, compression: Compression = Compression.NONE) -> bytes:
    """One S2S frame carrying ``inp``."""
    return encode_message(encode_append_input(inp), compression)


def stream_path(stream: str, query: dict[str, Any] | None = None) -> str:
    path = f"/v1/streams/{quote(stream, safe='')}/records"
    return f"{path}?{urlencode(query)}" if query else path


class _Session:
    def __init__(self, stream: H2Stream, status: int, headers: dict[str, str]) -> None:
        self.stream = stream
        self.status = status
        self.headers = headers
        self.error: Any = None
        """The JSON body of a non-200 answer (errors before the session starts)."""
        self._decoder = FrameDecoder()

    async def _start(self) -> None:
        if self.status != 200:
            self.error = json.loads(await self.stream.body())

    async def frame(self) -> Message | Terminal | None:
        """The next frame, or None once the response body ended."""
        while (event := self._decoder.next_event()) is None:
            chunk = await self.stream.recv()
            if chunk is None:
                self._decoder.end_of_stream()
                return None
            self._decoder.receive_data(chunk)
        return event


class AppendSession(_Session):
    """An S2S append session: send AppendInput frames, receive AppendAck frames."""

    async def send(self, *items: AppendInput | bytes, end: bool = False) -> None:
        """Send inputs (or raw bytes, for bad frames) in one write."""
        data = b"".join(i if isinstance(i, bytes) else frame(i) for i in items)
        await self.stream.send(data, end=end)

    async def close(self) -> None:
        await self.stream.send(b"", end=True)

    async def ack(self) -> AppendAck | Terminal | None:
        event = await self.frame()
        return decode_append_ack(event.payload) if isinstance(event, Message) else event

    async def results(self) -> tuple[list[AppendAck], Terminal | None]:
        """Every remaining ack, then the terminal frame if one came, until the body ends."""
        acks: list[AppendAck] = []
        terminal = None
        while (item := await self.ack()) is not None:
            if isinstance(item, Terminal):
                terminal = item
                assert await self.frame() is None, "frames after a terminal"
                break
            acks.append(item)
        return acks, terminal


class ReadSession(_Session):
    """An S2S read session: ReadBatch frames (heartbeats included) until the body ends."""

    async def batch(self) -> ReadBatch | Terminal | None:
        event = await self.frame()
        return decode_read_batch(event.payload) if isinstance(event, Message) else event

    async def collect(self) -> tuple[list[ReadBatch], Terminal | None]:
        batches: list[ReadBatch] = []
        while (item := await self.batch()) is not None:
            if isinstance(item, Terminal):
                return batches, item
            batches.append(item)
        return batches, None


def _headers(basin: str, extra: dict[str, str] | None) -> dict[str, str]:
    return {"s2-basin": basin, "content-type": "s2s/proto", **(extra or {})}


async def open_append(
    client: H2Client, basin: str, stream: str, headers: dict[str, str] | None = None
) -> AppendSession:
    h2s = client.request("POST", stream_path(stream), _headers(basin, headers))
    session = AppendSession(h2s, *await h2s.response())
    await session._start()
    return session


async def open_read(
    client: H2Client,
    basin: str,
    stream: str,
    query: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> ReadSession:
    h2s = client.request("GET", stream_path(stream, query), _headers(basin, headers), end=True)
    session = ReadSession(h2s, *await h2s.response())
    await session._start()
    return session


# --- unary helpers (httpx) --------------------------------------------------------------------


def http(url: str, basin: str | None = None) -> httpx.AsyncClient:
    headers = {"s2-basin": basin} if basin else {}
    return httpx.AsyncClient(base_url=url, headers=headers, timeout=TIMEOUT)


async def create_basin(url: str, name: str, **config: Any) -> None:
    async with http(url) as c:
        r = await c.post("/v1/basins", json={"basin": name, "config": config or None})
        assert r.status_code == 201, r.text


async def create_stream(url: str, basin: str, name: str, **config: Any) -> None:
    async with http(url, basin) as c:
        r = await c.post("/v1/streams", json={"stream": name, "config": config or None})
        assert r.status_code == 201, r.text


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


class Api:
    """Unary data-plane calls on one basin, JSON in ``base64`` format (binary safe)."""

    def __init__(self, url: str, basin: str) -> None:
        self.basin = basin
        self.client = http(url, basin)

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.aclose()

    def _headers(self, key: str | None) -> dict[str, str]:
        return {"s2-format": "base64"} | ({"s2-encryption-key": key} if key else {})

    async def append(
        self,
        stream: str,
        *bodies: bytes | str,
        key: str | None = None,
        timestamps: list[int | None] | None = None,
        records: list[dict[str, Any]] | None = None,
        **fields: Any,
    ) -> httpx.Response:
        """POST records; ``records`` overrides ``bodies`` with raw JSON AppendRecords."""
        recs: list[dict[str, Any]] = records or [{"body": b64(b)} for b in bodies]
        for rec, ts in zip(recs, timestamps or [], strict=False):
            if ts is not None:
                rec["timestamp"] = ts
        return await self.client.post(
            stream_path(stream), json={"records": recs, **fields}, headers=self._headers(key)
        )

    async def read(self, stream: str, key: str | None = None, **params: Any) -> httpx.Response:
        query = {
            k: str(v).lower() if isinstance(v, bool) else v
            for k, v in params.items()
            if v is not None  # None drops a default, e.g. records(seq_num=None, timestamp=5)
        }
        return await self.client.get(
            stream_path(stream), params=query, headers=self._headers(key), timeout=70
        )

    async def tail(self, stream: str) -> httpx.Response:
        return await self.client.get(stream_path(stream) + "/tail")

    async def tail_seq(self, stream: str) -> int:
        r = await self.tail(stream)
        assert r.status_code == 200, r.text
        seq: int = r.json()["tail"]["seq_num"]
        return seq

    async def records(self, stream: str, key: str | None = None, **params: Any) -> list[Any]:
        """A successful unary read's records, bodies decoded to bytes."""
        r = await self.read(stream, key, **{"seq_num": 0, **params})
        assert r.status_code == 200, r.text
        out = r.json()["records"]
        for rec in out:
            rec["body"] = base64.b64decode(rec.get("body", ""))
        return out

    async def bodies(self, stream: str, key: str | None = None, **params: Any) -> list[bytes]:
        return [rec["body"] for rec in await self.records(stream, key, **params)]
