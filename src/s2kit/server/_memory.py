"""One process-wide budget for the data lite buffers on behalf of its clients.

Theory of operation
-------------------
What a client can make lite hold in memory, beyond the stored records themselves, is a batch
being read from storage for it, a response rendered for it and not yet taken by its socket,
and a request body not yet complete. Each is bounded per session (one batch at a time, the
body limit), but not in total: 2,000 SSE readers that never read, each holding one rendered
1 MiB batch, hold gigabytes. So every such buffer is charged to one :class:`MemoryBudget`,
through the :class:`Share` of the session that holds it:

* ``await share.ensure(n)`` waits until the share holds ``n`` bytes of the budget (a share
  only grows while it holds nothing else it waits for, so shares cannot deadlock each other);
* ``share.release()`` gives everything back (after the batch went out, or the body was
  parsed).

When the budget is full, a share that waits for room evicts the shares that have been stuck
sending (their client stopped reading) for longer than ``stall_grace``: the session is ended
by cancelling its task, which frees what it held, and its client reconnects and resumes (a
read that ends with a reset or a dropped connection is retried from its position by every S2
SDK). A share with no stuck holder to evict just waits: the others are moving. Writers are
never evicted; an append body over the budget waits, as s2-lite's ``--append-inflight-bytes``
admission makes appends wait.

A reader that keeps up never waits here: its share is taken and given back within one send.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Admission", "MemoryBudget", "Share"]

logger = logging.getLogger("s2kit.server")

DEFAULT_BUDGET = 32 << 20
STALL_GRACE = 5.0


class Share:
    """What one session holds of the budget."""

    __slots__ = ("_budget", "_task", "evicted", "held", "stuck_since")

    def __init__(self, budget: MemoryBudget, task: asyncio.Task[object] | None) -> None:
        self._budget = budget
        self._task = task
        self.held = 0
        self.stuck_since: float | None = None
        """Since when (loop time) the session waits for its client to take what it sent."""
        self.evicted = False

    async def ensure(self, size: int) -> None:
        """Hold at least ``size`` bytes of the budget, waiting for room if need be."""
        if size > self.held:
            budget = self._budget
            if budget.used + size - self.held <= budget.capacity:
                budget._add(self, size - self.held)  # room at once: no coroutine to run
            else:
                await budget._grow(self, size)

    def charge(self, size: int) -> None:
        """Hold ``size`` bytes now, without waiting (memory that already exists)."""
        if size > self.held:
            self._budget._add(self, size - self.held)

    def sending(self) -> None:
        """The session starts waiting for its client to take a write."""
        self.stuck_since = asyncio.get_running_loop().time()

    def release(self) -> None:
        """Give back everything held."""
        self.stuck_since = None
        if self.held:
            self._budget._add(self, -self.held)

    def close(self) -> None:
        """The session is over: give everything back, and let go of its task (a task that
        refers to its own share through its frames would otherwise be cyclic garbage)."""
        self.release()
        self._task = None

    def _evict(self) -> None:
        self.evicted = True
        if self._task is not None and not self._task.done():
            self._task.cancel()


class MemoryBudget:
    """The process-wide budget (bytes)."""

    def __init__(self, capacity: int = DEFAULT_BUDGET, *, stall_grace: float = STALL_GRACE):
        self.capacity = capacity
        self.stall_grace = stall_grace
        self.used = 0
        self.evictions = 0
        self._shares: set[Share] = set()
        self._waiters: collections.deque[tuple[asyncio.Future[None], int]] = collections.deque()

    def share(self) -> Share:
        """A share for the calling task (the task an eviction cancels)."""
        return Share(self, asyncio.current_task())

    def shares(self) -> Iterator[Share]:
        """The shares holding anything."""
        return iter(list(self._shares))

    def _add(self, share: Share, delta: int) -> None:
        share.held += delta
        self.used += delta
        if share.held > 0:
            self._shares.add(share)
        else:
            self._shares.discard(share)
        if delta < 0:
            self._wake()

    async def _grow(self, share: Share, size: int) -> None:
        # A share bigger than the whole budget may still have it all, alone.
        loop = asyncio.get_running_loop()
        need = size - share.held
        while self.used + need > self.capacity and self.used > share.held:
            self._evict_stuck(loop.time())
            waiter = loop.create_future()
            entry = (waiter, need)
            self._waiters.append(entry)
            try:
                async with asyncio.timeout(self.stall_grace):
                    await waiter
            except TimeoutError:
                pass  # look again for shares that got stuck meanwhile
            finally:
                if not waiter.done():
                    waiter.cancel()
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(entry)
        self._add(share, need)

    def _evict_stuck(self, now: float) -> None:
        for share in list(self._shares):
            stuck = share.stuck_since
            if stuck is not None and now - stuck > self.stall_grace and not share.evicted:
                self.evictions += 1
                logger.info(
                    "ending a session whose client read nothing for %.0f s (memory budget full)",
                    now - stuck,
                )
                share._evict()

    def _wake(self) -> None:
        # In arrival order, as many as what is free now serves (not everyone: with hundreds
        # of waiting readers, waking all on every release is a storm of wake-ups that gets
        # nobody anything and starves the event loop).
        free = self.capacity - self.used
        waiters = self._waiters
        while waiters:
            waiter, need = waiters[0]
            if waiter.done():
                waiters.popleft()
                continue
            if need > free and free < self.capacity:
                return
            waiters.popleft()
            free -= need
            waiter.set_result(None)


DEFAULT_APPEND_INFLIGHT = 128 << 20


class Admission:
    """Appends in flight: metered bytes sequenced and not yet durable, over all streams.

    s2-lite's ``--append-inflight-bytes`` (default 128 MiB): past the cap an append waits to
    be admitted, without an error, so a storage that falls behind slows writers down instead
    of filling memory with their batches. One batch larger than the cap is admitted alone.
    """

    def __init__(self, capacity: int = DEFAULT_APPEND_INFLIGHT) -> None:
        self.capacity = capacity
        self.used = 0
        self._room = asyncio.Event()
        self._room.set()

    async def admit(self, size: int) -> None:
        """Wait until ``size`` more bytes fit, and take them."""
        while self.used and self.used + size > self.capacity:
            self._room.clear()
            await self._room.wait()
        self.used += size

    def done(self, size: int) -> None:
        """Give back an append's bytes (acked, or failed)."""
        self.used -= size
        self._room.set()
