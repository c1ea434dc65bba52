"""``AppendSession.close()`` is bounded against a server that acks everything but never ends
its response (it still answers PINGs, so the connection looks healthy): docs/outcomes.md."""

from __future__ import annotations

import asyncio

from _scripted_server import ScriptedServer, ServerStream

import s2kit
from s2kit.testing.faults import ack_frame
from s2kit.wire import _proto, _s2s


async def _ack_and_never_end(stream: ServerStream) -> None:
    stream.respond(200, [("content-type", "s2s/proto")])
    decoder = _s2s.FrameDecoder()
    seq = 0
    while (chunk := await stream.read()) is not None:
        decoder.receive_data(chunk)
        while (event := decoder.next_event()) is not None:
            assert isinstance(event, _s2s.Message)
            n = len(_proto.decode_append_input(event.payload).records)
            await stream.send(ack_frame(seq, seq + n))
            seq += n
    # END_STREAM from the client: no END_STREAM back, ever (until the client resets).
    await stream.server.until(lambda: stream.reset_code is not None)


async def test_close_is_bounded_when_the_server_never_ends_its_response() -> None:
    async with ScriptedServer(_ack_and_never_end) as server:
        s2 = s2kit.S2(
            "t",
            endpoints=s2kit.Endpoints.for_url(server.url),
            timeout=s2kit.Timeout(request=0.5),
            retry=s2kit.Retry(max_attempts=1),
        )
        async with s2:
            session = s2.basin("b").stream("s").append_session()
            ticket = await session.submit(s2kit.AppendInput(records=[s2kit.Record(body=b"x")]))
            assert (await ticket).end.seq_num == 1
            loop = asyncio.get_running_loop()
            started = loop.time()
            async with asyncio.timeout(5):
                await session.close()  # every input was acked: a clean close
            assert loop.time() - started < 2.0  # the request timeout bounds the wait for the end
            assert session.statistics().acked_batches == 1
