"""Tests of your own code against a real server: the ``s2kit_lite`` fixture.

    pip install 's2kit[lite]' pytest pytest-asyncio
    pytest examples/test_with_lite.py

Installing s2kit registers the fixture (a pytest plugin); each test gets a fresh lite in
memory on a free port. ``s2kit_lite.url`` is its address and ``s2kit_lite.env`` the ``S2_*``
variables S2 clients read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import s2kit
from s2kit.sync import S2

if TYPE_CHECKING:
    from s2kit.testing import LiteEndpoint


def record_order(s2: S2, order_id: str) -> int:
    """The code under test: append an order event, return its seq_num."""
    s2.ensure_basin("orders-basin")
    s2.basin("orders-basin").ensure_stream("orders")
    stream = s2.basin("orders-basin").stream("orders")
    ack = stream.append(s2kit.AppendInput(records=[s2kit.Record(body=order_id)]))
    return ack.start.seq_num


def test_orders_are_numbered_in_order(s2kit_lite: LiteEndpoint) -> None:
    with S2("ignored", endpoints=s2kit.Endpoints.for_url(s2kit_lite.url)) as s2:
        assert [record_order(s2, f"order-{i}") for i in range(3)] == [0, 1, 2]
        batch = s2.basin("orders-basin").stream("orders").read(start=s2kit.SeqNum(0))
        assert [r.body for r in batch.records] == [b"order-0", b"order-1", b"order-2"]


def test_code_that_reads_the_environment(
    s2kit_lite: LiteEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s2kit_lite.env.items():
        monkeypatch.setenv(key, value)
    with S2.from_env() as s2:
        assert record_order(s2, "from-env") == 0  # a fresh server: the stream starts at 0


@pytest.mark.asyncio
async def test_async_code(s2kit_lite: LiteEndpoint) -> None:
    endpoints = s2kit.Endpoints.for_url(s2kit_lite.url)
    async with s2kit.S2("ignored", endpoints=endpoints) as s2:
        await s2.ensure_basin("orders-basin")
        basin = s2.basin("orders-basin")
        await basin.ensure_stream("orders")
        async with basin.stream("orders").producer() as producer:
            ticket = await producer.submit(s2kit.Record(body="async order"))
        assert (await ticket).seq_num == 0
