"""Waiting for an outcome the caller does not own.

A ticket stands for the outcome of work the SDK does (an append session sending an input, a
producer's batch); the caller only waits for it. A task that awaits a future directly cancels
that future when the task is cancelled, so ``asyncio.wait_for(ticket, 1)`` timing out, or a
task group unwinding, would cancel the shared outcome itself: every other holder of the ticket
would then see ``CancelledError``, and an ack arriving later would be dropped. The asyncio norm
for shared work is the one of ``asyncio.shield``: cancelling a *wait* never cancels the
*operation* (docs/outcomes.md). :func:`wait` gives tickets that behaviour, at the cost of one
small future per wait that has to suspend (none when the outcome is already in).
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any


def wait(future: asyncio.Future[Any]) -> Generator[Any, None, None]:
    """Suspend until ``future`` is done; a cancellation of the waiter does not reach it."""
    if future.done():
        return
    waiter = future.get_loop().create_future()

    def wake(_: asyncio.Future[Any]) -> None:
        if not waiter.done():
            waiter.set_result(None)

    future.add_done_callback(wake)
    try:
        yield from waiter.__await__()
    finally:
        if not future.done():
            future.remove_done_callback(wake)
