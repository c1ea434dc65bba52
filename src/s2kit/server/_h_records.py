"""Lite handlers for the data plane: check-tail, unary append and read, and the streaming
forms — S2S append sessions, S2S read sessions and SSE reads (docs/protocol.md#records).

Append sessions follow docs/retry-safety.md#server-obligations: inputs are admitted (sequenced)
in arrival order; the first failure poisons the session, so nothing after it is applied; every
admitted input is acked, in order, before the terminal frame; an ack is only sent once the input
is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from s2kit.errors import ErrorCode, FrameError, ServerError
from s2kit.server._h_resources import checked_stream
from s2kit.server._http import Query, Reply, err, error_body, json_body, read_body
from s2kit.server._observe import AppendTally, ReadTally
from s2kit.server._reads import UNARY_WAIT_MAX, ReadParams, read_session, resolve_start
from s2kit.types import (
    AppendAck,
    AppendInput,
    RecordFields,
    SeqNum,
    StreamConfig,
    StreamPosition,
    TailOffset,
    Timestamp,
    metered_bytes,
)
from s2kit.wire import _json, _negotiate, _proto, _s2s, _sse
from s2kit.wire._pbdec import PlainInput
from s2kit.wire._validate import InvalidBatch, validate_append_input, validate_plain_input

if TYPE_CHECKING:
    from s2kit.server._backend import Backend
    from s2kit.server._catalog import StreamMeta
    from s2kit.server._front import Request, Responder
    from s2kit.server._memory import Share
    from s2kit.server._render import Renderings
    from s2kit.wire._compress import Compression as WireCompression

STREAMING_HEADERS = [("cache-control", "no-cache, no-transform"), ("x-accel-buffering", "no")]
PROTO_CT = ("content-type", "application/protobuf")


def _format(reply: Reply) -> _json.Format:
    try:
        return _negotiate.parse_s2_format(reply.request.header("s2-format"))
    except ValueError:
        raise err(ErrorCode.BAD_HEADER, "Invalid header `s2-format`") from None


def _wants_proto(reply: Reply) -> bool:
    return _negotiate.is_protobuf(reply.request.header("accept"))


def _validate(inp: AppendInput | PlainInput) -> list[int]:
    try:
        if isinstance(inp, PlainInput):
            return validate_plain_input(inp)
        sizes: list[int] = []
        validate_append_input(inp, sizes)
    except InvalidBatch as exc:
        raise err(ErrorCode.INVALID, str(exc)) from None
    return sizes


def stream_config_header(reply: Reply) -> StreamConfig | None:
    """The ``s2-stream-config`` header: the config of a stream this request auto-creates."""
    raw = reply.request.header("s2-stream-config")
    if raw is None:
        return None
    try:
        return _json.stream_config_from_obj(_json.loads(raw))
    except (_json.JsonShapeError, _json.JsonInvalid) as exc:
        raise err(ErrorCode.BAD_HEADER, f"Invalid header `s2-stream-config`: {exc}") from None


async def check_tail(backend: Backend, reply: Reply, basin: str, stream: str) -> None:
    """GET /v1/streams/{stream}/records/tail."""
    tail = backend.check_tail(basin, checked_stream(stream), stream_config_header(reply))
    await backend.meta_durable()  # the stream may have just been auto-created
    await reply.json(200, {"tail": {"seq_num": tail.seq_num, "timestamp": tail.timestamp}})


# --- append -----------------------------------------------------------------------------------


async def append(backend: Backend, reply: Reply, basin: str, stream: str) -> None:
    """POST /v1/streams/{stream}/records: unary append or an S2S append session."""
    request = reply.request
    stream = checked_stream(stream)
    media = request.header("content-type")
    if _negotiate.is_s2s(media):
        await _append_session(backend, reply, basin, stream)
        return
    body = await read_body(request, share=reply.share)
    if _negotiate.is_protobuf(media):
        try:
            inp: AppendInput | PlainInput = _proto.decode_append_batch(body)
        except _proto.ProtoDecodeError as exc:
            raise err(ErrorCode.BAD_PROTO, str(exc)) from None
    elif _negotiate.is_json(media):
        fmt = _format(reply)
        obj = json_body(body)  # parse errors first, as bad_json
        try:
            inp = _json.append_input_from_obj(obj, fmt)
        except _json.JsonShapeError as exc:
            raise err(ErrorCode.BAD_JSON, f"Failed to deserialize the JSON body: {exc}") from None
        except _json.JsonInvalid as exc:
            raise err(ErrorCode.INVALID, str(exc)) from None
    else:
        raise err(ErrorCode.BAD_JSON, "Expected request with `Content-Type: application/json`")
    sizes = _validate(inp)
    reply.guard.check_batch(inp)  # trim and fence need their own operations (``_auth.py``)
    config = stream_config_header(reply)
    meta = backend.stream_for_append(basin, stream, config)
    cipher = backend.cipher(meta, request.header("s2-encryption-key"))
    future, failed = await backend.append(basin, stream, config, inp, sizes, cipher)
    _tally(backend, basin, meta).add(0 if failed else sum(sizes))
    ack = await future
    await _send_ack(reply, ack)


def _tally(backend: Backend, basin: str, meta: StreamMeta) -> AppendTally:
    """The usage accounting of one append request (``_observe.py``)."""
    storage_class = meta.config.storage_class
    return AppendTally(backend, basin, "express" if storage_class is None else storage_class.value)


async def _send_ack(reply: Reply, ack: AppendAck) -> None:
    if _wants_proto(reply):
        await reply.send(200, _proto.encode_append_ack(ack), [PROTO_CT])
    else:
        await reply.send(
            200, _json.encode_append_ack(ack).encode(), [("content-type", "application/json")]
        )


async def _append_session(backend: Backend, reply: Reply, basin: str, stream: str) -> None:
    request, responder = reply.request, reply.responder
    config = stream_config_header(reply)
    meta = backend.stream_for_append(basin, stream, config)
    cipher = backend.cipher(meta, request.header("s2-encryption-key"))
    compression = _negotiate.s2s_compression_from_accept_encoding(
        request.header_all("accept-encoding")
    )
    tally = _tally(backend, basin, meta)
    await responder.start(200, [("content-type", "s2s/proto"), *STREAMING_HEADERS, *reply.extra])
    acks: asyncio.Queue[asyncio.Future[AppendAck] | ServerError | None] = asyncio.Queue()

    async def admit() -> None:
        # Reads frames and admits inputs; puts the poisoning error (or None at the end) last.
        decoder = _s2s.FrameDecoder()
        try:
            while not backend.draining.is_set():
                chunk = await _next_chunk(request, backend.draining)
                if chunk is None:
                    if backend.draining.is_set():
                        break
                    decoder.end_of_stream()
                    acks.put_nowait(None)
                    return
                decoder.receive_data(chunk)
                while (event := decoder.next_event()) is not None:
                    if isinstance(event, _s2s.Terminal):
                        raise FrameError("unexpected terminal frame from client")
                    try:
                        inp = _proto.decode_append_batch(event.payload)
                    except _proto.ProtoDecodeError as exc:
                        raise FrameError(str(exc)) from None
                    sizes = _validate(inp)
                    reply.guard.check_batch(inp)
                    future, failed = await backend.append(basin, stream, config, inp, sizes, cipher)
                    tally.add(0 if failed else sum(sizes))
                    acks.put_nowait(future)
                    if failed:
                        # The 412 is reported later (once what precedes it is durable), but it
                        # poisons the session now: nothing after it may be admitted (S1).
                        return
            acks.put_nowait(err(ErrorCode.SERVER_DRAINING, "server is shutting down"))
        except FrameError as exc:
            acks.put_nowait(err(ErrorCode.BAD_FRAME, str(exc)))
        except ServerError as exc:
            acks.put_nowait(exc)

    async def respond() -> None:
        while True:
            item = await acks.get()
            if item is None:
                return
            if isinstance(item, ServerError):
                await _terminal(responder, item)
                return
            try:
                ack = await item
            except ServerError as exc:
                await _terminal(responder, exc)
                return
            frames = [_proto.encode_append_ack(ack)]
            # Coalesce acks that are already settled into one write.
            while not acks.empty():
                nxt = acks._queue[0]  # type: ignore[attr-defined]
                if not isinstance(nxt, asyncio.Future) or not nxt.done() or nxt.exception():
                    break
                acks.get_nowait()
                frames.append(_proto.encode_append_ack(nxt.result()))
            await responder.send(_s2s.encode_messages(frames, compression))

    async with asyncio.TaskGroup() as tg:
        reader = tg.create_task(admit())
        await respond()
        reader.cancel()
    await responder.end()


async def _next_chunk(request: Request, draining: asyncio.Event) -> bytes | None:
    read = asyncio.ensure_future(request.read_chunk())
    drain = asyncio.ensure_future(draining.wait())
    try:
        await asyncio.wait({read, drain}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        drain.cancel()
        if not read.done():
            read.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await read
        elif not read.cancelled():
            # A reset fails the read and cancels us at once: retrieve its error either way.
            read.exception()
    if read.cancelled() or not read.done():
        return None
    chunk: bytes | None = read.result()
    return chunk


def _s2s_batch(
    recs: list[RecordFields],
    tail: StreamPosition | None,
    compression: WireCompression,
    renderings: Renderings,
) -> bytes:
    """A read batch as one S2S message; a live one rendered once for all its readers."""

    def render() -> bytes:
        return _s2s.encode_message_chunks(_proto.read_batch_chunks(recs, tail), compression)

    return render() if tail is None else renderings.get(recs, tail, ("s2s", compression), render)


def _sse_data(
    recs: list[RecordFields], tail: StreamPosition | None, fmt: _json.Format, renderings: Renderings
) -> bytes:
    """A read batch's SSE data lines; a live one rendered once for all its readers."""

    def render() -> bytes:
        return _sse.sse_data(_json.encode_read_batch(recs, tail, fmt))

    return render() if tail is None else renderings.get(recs, tail, ("sse", fmt), render)


async def _sent(responder: Responder, share: Share | None, *parts: bytes) -> None:
    """Send a read batch, then give back its room in the memory budget (taken by the read)."""
    if share is not None:
        share.sending()  # from here, a client that reads nothing makes this share evictable
    for part in parts:
        await responder.send(part)
    if share is not None:
        share.release()
    # No yield to the loop here: read_session yields between batches when more are ready at
    # once (_reads.py), and a follower waiting for its next commit suspends anyway.


async def _terminal(responder: Responder, exc: ServerError) -> None:
    status, body = error_body(exc)
    await responder.send(_s2s.encode_terminal(status, body))


# --- read -------------------------------------------------------------------------------------


def _read_params(q: Query, *, unary: bool) -> ReadParams:
    starts = [n for n in ("seq_num", "timestamp", "tail_offset") if q.has(n)]
    seq, ts, off = q.u64("seq_num"), q.u64("timestamp"), q.u64("tail_offset")
    count, nbytes, until = q.u64("count"), q.u64("bytes"), q.u64("until")
    wait = q.u64("wait", bits=32)
    clamp = q.flag("clamp")
    if len(starts) > 1:
        raise err(
            ErrorCode.INVALID, "only one of seq_num, timestamp, or tail_offset can be provided"
        )
    start: SeqNum | Timestamp | TailOffset
    if seq is not None:
        start = SeqNum(seq)
    elif ts is not None:
        start = Timestamp(ts)
        if until is not None and until <= ts:
            raise err(ErrorCode.INVALID, "start `timestamp` exceeds or equal to `until`")
    else:
        start = TailOffset(off or 0)
    if unary:
        count = 1000 if count is None else min(count, 1000)
        nbytes = 1024 * 1024 if nbytes is None else min(nbytes, 1024 * 1024)
        wait = None if wait is None else min(wait, UNARY_WAIT_MAX)
    return ReadParams(start=start, clamp=clamp, count=count, bytes=nbytes, until=until, wait=wait)


async def read(backend: Backend, reply: Reply, basin: str, stream: str) -> None:
    """GET /v1/streams/{stream}/records: unary, SSE or S2S read."""
    request = reply.request
    stream = checked_stream(stream)
    q = Query(request.query)
    s2s = _negotiate.is_s2s(request.header("content-type"))
    sse = not s2s and _negotiate.is_sse(request.header("accept"))
    fmt = _format(reply) if not s2s else "raw"
    params = _read_params(q, unary=not (s2s or sse))
    resume = None
    last_event_id = request.header("last-event-id")
    if sse and last_event_id is not None:
        try:
            resume = _negotiate.parse_last_event_id(last_event_id)
        except ValueError:
            raise err(ErrorCode.BAD_HEADER, "Invalid header `last-event-id`") from None
        params = _resumed(params, resume)
    meta = backend.stream_for_read(basin, stream, stream_config_header(reply))
    await backend.meta_durable()  # the stream may have just been auto-created
    cipher = backend.cipher(meta, request.header("s2-encryption-key"))
    owner = backend.owner(meta)
    start = resolve_start(params, owner, backend.storage)
    tally = ReadTally(backend, basin, streaming=s2s or sse)
    batches = read_session(
        params,
        owner,
        backend.storage,
        cipher,
        backend.read_settings,
        start=start,
        share=reply.share,
        tally=tally,
    )
    # The read pins its owner: were the owner dropped as dormant, appends would go to a new
    # one this read never hears from (sessions survive dormancy).
    owner.readers += 1
    try:
        if s2s:
            await _serve_s2s(reply, batches, backend.renderings)
        elif sse:
            await _serve_sse(reply, batches, fmt, resume, backend.renderings)
        else:
            await _serve_unary(reply, batches, fmt, meta)
    finally:
        owner.readers -= 1
        tally.close()


def _resumed(params: ReadParams, resume: tuple[int, int, int]) -> ReadParams:
    seq, count, nbytes = resume
    return ReadParams(
        start=SeqNum(seq + 1),
        clamp=params.clamp,
        count=None if params.count is None else max(0, params.count - count),
        bytes=None if params.bytes is None else max(0, params.bytes - nbytes),
        until=params.until,
        wait=params.wait,
    )


async def _serve_unary(
    reply: Reply,
    batches: AsyncIterator[tuple[list[RecordFields], StreamPosition | None]],
    fmt: _json.Format,
    meta: StreamMeta,
) -> None:
    records: list[RecordFields] = []
    tail: StreamPosition | None = None
    async with contextlib.aclosing(batches):  # type: ignore[type-var]
        async for recs, t in batches:
            if recs:
                records, tail = recs, t
                break
    if reply.share is not None:
        reply.share.sending()
    if _wants_proto(reply):
        await reply.send(200, _proto.encode_read_batch_parts(records, tail), [PROTO_CT])
    else:
        body = _json.encode_read_batch(records, tail, fmt).encode()
        await reply.send(200, body, [("content-type", "application/json")])


async def _serve_s2s(
    reply: Reply,
    batches: AsyncIterator[tuple[list[RecordFields], StreamPosition | None]],
    renderings: Renderings,
) -> None:
    responder = reply.responder
    compression = _negotiate.s2s_compression_from_accept_encoding(
        reply.request.header_all("accept-encoding")
    )
    await responder.start(200, [("content-type", "s2s/proto"), *STREAMING_HEADERS, *reply.extra])
    share = reply.share
    try:
        async with contextlib.aclosing(batches):  # type: ignore[type-var]
            async for recs, tail in batches:
                # No local keeps the encoded batch alive while the next one waits for room.
                await _sent(responder, share, _s2s_batch(recs, tail, compression, renderings))
    except ServerError as exc:
        await _terminal(responder, exc)
    await responder.end()


async def _serve_sse(
    reply: Reply,
    batches: AsyncIterator[tuple[list[RecordFields], StreamPosition | None]],
    fmt: _json.Format,
    resume: tuple[int, int, int] | None,
    renderings: Renderings,
) -> None:
    responder = reply.responder
    await responder.start(
        200, [("content-type", "text/event-stream"), *STREAMING_HEADERS, *reply.extra]
    )
    # Counters continue from the Last-Event-ID so a second resume stays exact
    # (docs/lite-behaviour.md#9-sse-last-event-id-counters-across-resumes).
    count, nbytes = (resume[1], resume[2]) if resume else (0, 0)
    try:
        async with contextlib.aclosing(batches):  # type: ignore[type-var]
            async for recs, tail in batches:
                if not recs:
                    assert tail is not None
                    ping = {"timestamp": time.time_ns() // 1_000_000, "tail": _pos(tail)}
                    await responder.send(_sse.sse_ping(_json.dumps(ping)))
                    continue
                count += len(recs)
                nbytes += sum([metered_bytes(h, b) for _, _, h, b in recs])
                event_id = _sse.format_event_id(recs[-1][0], count, nbytes)
                # No local keeps the (large) event alive while this reader then waits for
                # room for its next batch.
                await _sent(
                    responder,
                    reply.share,
                    _sse.sse_batch_head(event_id),
                    _sse_data(recs, tail, fmt, renderings),  # shared: sent as it is, no copy
                )
    except ServerError as exc:
        _, body = error_body(exc)
        await responder.send(_sse.sse_error(body.decode()))
    else:
        await responder.send(_sse.sse_done())
    await responder.end()


def _pos(p: StreamPosition) -> dict[str, int]:
    return {"seq_num": p.seq_num, "timestamp": p.timestamp}
