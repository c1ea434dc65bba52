"""The stream handle: check-tail, unary append and read, and the streaming sessions."""

from __future__ import annotations

from s2kit.client._api import Api, quote_segment
from s2kit.client._append_session import AppendSession
from s2kit.client._config import AppendRetryPolicy, Batching, Compression
from s2kit.client._producer import Producer
from s2kit.client._read_session import ReadSession, read_query
from s2kit.errors import RemoteProtocolError, UsageError
from s2kit.types import (
    AppendAck,
    AppendInput,
    ReadBatch,
    ReadLimit,
    ReadStart,
    SeqNum,
    StreamPosition,
)
from s2kit.wire import _json, _proto
from s2kit.wire._compress import Compression as WireCompression
from s2kit.wire._validate import InvalidBatch, validate_append_input

PROTO = "application/protobuf"
FROM_START = SeqNum(0)
_WIRE = {
    Compression.NONE: WireCompression.NONE,
    Compression.ZSTD: WireCompression.ZSTD,
    Compression.GZIP: WireCompression.GZIP,
}


class Stream:
    """Data operations on one stream; get one from :meth:`Basin.stream`.

    Args of every method carrying records accept an ``encryption_key`` set on the handle with
    :meth:`with_encryption_key` for streams created with a ``stream_cipher``.
    """

    def __init__(
        self, api: Api, basin: str, name: str, *, encryption_key: str | None = None
    ) -> None:
        self._api = api
        self.basin = basin
        self.name = name
        self._path = f"/v1/streams/{quote_segment(name)}/records"
        self._key = encryption_key

    def __repr__(self) -> str:
        return f"Stream({self.basin!r}, {self.name!r})"

    def with_encryption_key(self, key: str) -> Stream:
        """The same stream, sending ``s2-encryption-key: key`` (base64 of 32 bytes)."""
        return Stream(self._api, self.basin, self.name, encryption_key=key)

    def _extra(self) -> list[tuple[str, str]]:
        return [] if self._key is None else [("s2-encryption-key", self._key)]

    async def check_tail(self) -> StreamPosition:
        """The next seq_num to be assigned and the last record's timestamp."""
        resp = await self._api.request("GET", f"{self._path}/tail", basin=self.basin)
        try:
            return _json.decode_tail(resp.body)
        except _json.JsonShapeError as exc:
            raise RemoteProtocolError(f"bad tail response: {exc}") from exc

    async def append(self, inp: AppendInput) -> AppendAck:
        """Append one batch atomically; returns its ack once durable.

        Retries follow the client's append retry policy; under NO_SIDE_EFFECTS a retry happens
        only if the failed attempt cannot have appended anything. The error raised when
        retries stop is indefinite if any attempt may have appended the batch (its
        ``earlier_indefinite`` names that attempt's error). Cancelling the call abandons
        the request: the batch may or may not have been appended (docs/outcomes.md).

        Raises:
            UsageError: the batch is invalid.
            AppendConditionFailed: ``match_seq_num`` or ``fencing_token`` did not match.
            S2Error: any other failure once retries stop.
        """
        try:
            validate_append_input(inp)
        except InvalidBatch as exc:
            raise UsageError(exc.for_client) from None
        resp = await self._api.request(
            "POST",
            self._path,
            basin=self.basin,
            headers=[("content-type", PROTO), ("accept", PROTO), *self._extra()],
            body=_proto.encode_append_input(inp),
            append_policy=self._api.retry.append_retry_policy,
        )
        try:
            return _proto.decode_append_ack(resp.body)
        except _proto.ProtoDecodeError as exc:
            raise RemoteProtocolError(f"bad append response: {exc}") from exc

    async def read(
        self,
        start: ReadStart = FROM_START,
        *,
        limit: ReadLimit | None = None,
        until: int | None = None,
        clamp: bool = False,
        wait: int | None = None,
    ) -> ReadBatch:
        """Read one batch (at most 1000 records / 1 MiB).

        Args:
            start: where to start: ``SeqNum``, ``Timestamp`` or ``TailOffset``.
            limit: count/bytes bounds.
            until: only records with a timestamp below this.
            clamp: start at the tail instead of failing when ``start`` is beyond it.
            wait: seconds to long-poll at the tail for new records (up to 60).

        Raises:
            ReadUnwritten: ``start`` is beyond the tail (416), with the tail.
        """
        query = read_query(start, limit, until, clamp, wait)
        resp = await self._api.request(
            "GET",
            self._path,
            basin=self.basin,
            query=query,
            headers=[("accept", PROTO), *self._extra()],
            extra_time=float(wait or 0),
        )
        try:
            return _proto.decode_read_batch(resp.body)
        except _proto.ProtoDecodeError as exc:
            raise RemoteProtocolError(f"bad read response: {exc}") from exc

    def append_session(
        self,
        *,
        max_unacked_bytes: int = 5 * 1024 * 1024,
        max_unacked_batches: int | None = None,
        retry_policy: AppendRetryPolicy | None = None,
    ) -> AppendSession:
        """A pipelined append session (``async with``); see :class:`AppendSession`.

        Raises:
            UsageError: the client uses HTTP/1.1 (sessions need HTTP/2's full duplex).
        """
        if self._api.http1:
            raise UsageError("append sessions need HTTP/2; this client uses HTTP/1.1")
        return AppendSession(
            self._api,
            self.basin,
            self._path,
            [("content-type", "s2s/proto"), ("accept", "s2s/proto"), *self._extra()],
            compression=_WIRE[self._api.compression],
            policy=retry_policy or self._api.retry.append_retry_policy,
            ack_timeout=self._api.timeout.request,
            max_unacked_bytes=max_unacked_bytes,
            max_unacked_batches=max_unacked_batches,
        )

    def producer(
        self,
        *,
        batching: Batching | None = None,
        fencing_token: str | None = None,
        match_seq_num: int | None = None,
        max_unacked_bytes: int = 5 * 1024 * 1024,
        retry_policy: AppendRetryPolicy | None = None,
    ) -> Producer:
        """A record-at-a-time producer that batches for you (``async with``).

        Args:
            match_seq_num: the stream's expected next seq_num; every batch then carries the
                running value, which makes retries under ALL exactly-once (an ambiguous 412
                on a re-send is settled by reading the stream back; see :class:`Producer`).
        """

        def new_session() -> AppendSession:
            return self.append_session(
                max_unacked_bytes=max_unacked_bytes, retry_policy=retry_policy
            )

        return Producer(
            self,
            new_session(),
            batching=batching or Batching(),
            fencing_token=fencing_token,
            match_seq_num=match_seq_num,
            max_unacked_bytes=max_unacked_bytes,
            session_factory=new_session,
        )

    def read_session(
        self,
        start: ReadStart = FROM_START,
        *,
        limit: ReadLimit | None = None,
        until: int | None = None,
        clamp: bool = False,
        wait: int | None = None,
        heartbeat_timeout: float = 20.0,
    ) -> ReadSession:
        """Follow the stream (``async for batch in stream.read_session(...)``).

        Without limits, ``until`` or ``wait`` it follows the tail forever; batches from the
        live tail carry ``tail``, and heartbeats (empty batches with ``tail``) are not yielded.
        """
        return ReadSession(
            self._api,
            self.basin,
            self._path,
            self._extra(),
            start=start,
            limit=limit,
            until=until,
            clamp=clamp,
            wait=wait,
            heartbeat_timeout=heartbeat_timeout,
            compression=_WIRE[self._api.compression],
            sse=self._api.http1,
        )
