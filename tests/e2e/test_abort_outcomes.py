"""Aborting an append session tells apart inputs that may have landed from those that cannot."""

from __future__ import annotations

import asyncio

import pytest

import s2kit
from conftest import quick_config
from s2kit.errors import ClosedError
from s2kit.server import Lite

pytestmark = pytest.mark.timeout(60)


async def test_abort_marks_inputs_in_flight_as_maybe_applied() -> None:
    # A long flush interval keeps the first input admitted but unacknowledged at abort time.
    async with (
        Lite(quick_config(flush_interval=0.5)) as lite,
        s2kit.S2("t", endpoints=s2kit.Endpoints.for_url(lite.url)) as client,
    ):
        await client.create_basin("abort-basin")
        await client.basin("abort-basin").create_stream("s")
        stream = client.basin("abort-basin").stream("s")
        # A commit now makes the next one wait for the following 0.5 s slot.
        await stream.append(s2kit.AppendInput(records=[s2kit.Record(body=b"warm-up")]))
        session = stream.append_session(max_unacked_batches=1)
        sent = await session.submit(s2kit.AppendInput(records=[s2kit.Record(body=b"sent")]))
        while session.statistics().inflight == 0:  # noqa: ASYNC110 (a private state, no event)
            await asyncio.sleep(0.001)
        waiting = asyncio.create_task(
            session.submit(s2kit.AppendInput(records=[s2kit.Record(body=b"queued")]))
        )
        await asyncio.sleep(0.05)  # the second submit waits for room behind the first
        await session.abort()
        with pytest.raises(ClosedError) as first:
            await sent
        assert first.value.maybe_applied
        assert not first.value.has_no_side_effects
        assert first.value.is_indefinite
        with pytest.raises(ClosedError) as second:
            await waiting
        assert second.value.has_no_side_effects  # never left the client
        # The admitted input is committed anyway (an admitted append is never cancelled).
        for _ in range(100):
            if (await stream.check_tail()).seq_num == 2:
                break
            await asyncio.sleep(0.05)
        assert (await stream.check_tail()).seq_num == 2
