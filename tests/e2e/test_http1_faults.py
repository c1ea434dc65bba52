"""HTTP/1.1 clients through dropped connections: a drop is a transport failure (retryable,
indefinite once the body was sent), never a protocol error that stops a read session.

The fault proxy speaks HTTP/2, so these tests put a plain TCP relay in front of lite that
closes (FIN) or resets (RST) a connection once it has passed a given number of bytes from
the server, for the first connections only.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import TYPE_CHECKING

import pytest

import s2kit
from s2kit.errors import ConnectError, ConnectionLost

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from s2kit.server import Lite

BASIN = "http1-faults"


class CuttingRelay:
    """Relays TCP to ``upstream``; the first ``len(cuts)`` connections are cut once they have
    passed ``cuts[i]`` bytes from the server (``None``: not cut)."""

    def __init__(
        self,
        upstream_port: int,
        cuts: list[int | None],
        *,
        reset: bool = False,
        accept: int | None = None,
    ):
        self._upstream = upstream_port
        self._cuts = list(cuts)
        self._reset = reset
        self._accept = accept  # stop listening after this many connections (then: refused)
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        self.url = ""

    async def __aenter__(self) -> CuttingRelay:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._relay(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.connections == self._accept:
            self._server.close()
        cut = self._cuts.pop(0) if self._cuts else None
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, limit: int | None):
            passed = 0
            while data := await src.read(65536):
                if limit is not None and passed + len(data) >= limit:
                    dst.write(data[: limit - passed])
                    await dst.drain()
                    return True
                passed += len(data)
                dst.write(data)
                await dst.drain()
            return False

        try:
            async with asyncio.TaskGroup() as tg:
                up = tg.create_task(pump(reader, up_writer, None))
                down = tg.create_task(pump(up_reader, writer, cut))
                await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
                up.cancel()
                down.cancel()
        except* (ConnectionError, OSError):
            pass
        finally:
            if self._reset:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
            up_writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
                await up_writer.wait_closed()


@pytest.fixture
async def direct(lite: Lite) -> AsyncIterator[s2kit.S2]:
    async with s2kit.S2("t", endpoints=s2kit.Endpoints.for_url(lite.url)) as client:
        await client.create_basin(BASIN)
        await client.basin(BASIN).create_stream("s")
        yield client


def h1_client(url: str, policy: s2kit.AppendRetryPolicy = s2kit.AppendRetryPolicy.ALL) -> s2kit.S2:
    return s2kit.S2(
        "t",
        endpoints=s2kit.Endpoints.for_url(url),
        http1=True,
        retry=s2kit.Retry(min_base_delay=0.01, max_base_delay=0.05, append_retry_policy=policy),
    )


def port_of(lite: Lite) -> int:
    return int(lite.url.rsplit(":", 1)[1])


async def fill(direct: s2kit.S2, n: int) -> None:
    stream = direct.basin(BASIN).stream("s")
    for i in range(0, n, 100):
        batch = [s2kit.Record(body=b"r%04d" % j + b"." * 200) for j in range(i, min(n, i + 100))]
        await stream.append(s2kit.AppendInput(records=batch))


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_an_sse_read_session_resumes_after_the_connection_drops(
    lite: Lite, direct: s2kit.S2, reset: bool
) -> None:
    await fill(direct, 300)
    async with (
        CuttingRelay(port_of(lite), [4000, 9000], reset=reset) as relay,
        h1_client(relay.url) as client,
    ):
        session = (
            client.basin(BASIN)
            .stream("s")
            .read_session(s2kit.SeqNum(0), limit=s2kit.ReadLimit(count=300))
        )
        seen: list[int] = []
        async with session:
            async for batch in session:
                seen += [r.seq_num for r in batch.records]
        assert seen == list(range(300))
        assert session.reconnects >= 2
        assert relay.connections >= 3


async def test_a_unary_read_is_retried_after_the_connection_drops_mid_response(
    lite: Lite, direct: s2kit.S2
) -> None:
    await fill(direct, 100)
    async with CuttingRelay(port_of(lite), [3000]) as relay, h1_client(relay.url) as client:
        batch = await client.basin(BASIN).stream("s").read(s2kit.SeqNum(0))
        assert [r.seq_num for r in batch.records] == list(range(100))
        assert relay.connections == 2


async def test_a_connection_closed_before_any_response_is_a_transport_failure(
    lite: Lite, direct: s2kit.S2
) -> None:
    async with CuttingRelay(port_of(lite), [0, 0]) as relay, h1_client(relay.url) as client:
        tail = await client.basin(BASIN).stream("s").check_tail()  # the third connection
        assert tail.seq_num == 0
        assert relay.connections == 3


async def test_an_append_whose_response_is_cut_is_indefinite_under_nse(
    lite: Lite, direct: s2kit.S2
) -> None:
    nse = s2kit.AppendRetryPolicy.NO_SIDE_EFFECTS
    async with CuttingRelay(port_of(lite), [10]) as relay, h1_client(relay.url, nse) as client:
        inp = s2kit.AppendInput(records=[s2kit.Record(body=b"once")])
        with pytest.raises(ConnectionLost) as info:
            await client.basin(BASIN).stream("s").append(inp)
        assert info.value.is_indefinite
        assert info.value.is_retryable
    assert (await direct.basin(BASIN).stream("s").check_tail()).seq_num == 1  # it did land


async def test_an_append_applied_then_cut_stays_indefinite_when_retries_are_refused(
    lite: Lite, direct: s2kit.S2
) -> None:
    # Under ALL: the first attempt lands and its response is cut; the retries find the port
    # closed. The ConnectError that stops them must not claim "no side effects".
    async with (
        CuttingRelay(port_of(lite), [10], accept=1) as relay,
        h1_client(relay.url) as client,
    ):
        inp = s2kit.AppendInput(records=[s2kit.Record(body=b"landed")])
        with pytest.raises(ConnectError) as info:
            await client.basin(BASIN).stream("s").append(inp)
        assert info.value.is_indefinite
        assert isinstance(info.value.earlier_indefinite, ConnectionLost)
    assert (await direct.basin(BASIN).stream("s").check_tail()).seq_num == 1
