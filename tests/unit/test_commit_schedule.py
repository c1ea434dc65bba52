"""Lite's group-commit schedule (``commit_slot``): at most one commit per interval, an append
after a quiet spell commits at once, and late timer wake-ups never push later slots back."""

from __future__ import annotations

import itertools
import math

from s2kit.server._engine import commit_slot

INTERVAL = 5.0  # ms
LATE = 1.0  # how late the event loop's timers fire (epoll rounds to whole milliseconds)


def _waits(arrivals: list[float], *, count_from_wakeup: bool = False) -> list[float]:
    """How long each append waits for its commit, one commit per arrival."""
    last, waits = -math.inf, []
    for arrival in arrivals:
        slot = commit_slot(last, arrival, INTERVAL)
        woke = slot + LATE if slot > arrival else arrival
        waits.append(woke - arrival)
        last = woke if count_from_wakeup else slot
    return waits


def test_appends_a_little_over_an_interval_apart_commit_at_once() -> None:
    # A producer lingering 5 ms sends a batch every ~5.9 ms; one batch comes late.
    arrivals = [i * 5.9 + (1.5 if i == 10 else 0.0) for i in range(200)]
    waits = _waits(arrivals)
    assert waits[11] > 0  # the late one made the next wait for its slot...
    assert all(w == 0 for w in waits[20:])  # ...and the schedule recovered
    # Counting from when the loop woke up instead, the lateness is carried forward and the
    # appends lock into waiting for every commit (what lite did before).
    assert sum(w > 2 for w in _waits(arrivals, count_from_wakeup=True)[20:]) > 150


def test_busy_commits_keep_to_the_interval_grid() -> None:
    last, slots = -math.inf, []
    for arrival in [i * 0.3 for i in range(1000)]:  # appends faster than commits
        if slots and arrival < slots[-1]:
            continue  # this append joins the pending commit
        last = commit_slot(last, arrival, INTERVAL)
        slots.append(last)
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(slots)}
    assert gaps == {INTERVAL}


def test_no_interval_means_no_wait() -> None:
    assert commit_slot(10.0, 10.5, 0.0) == 10.5
    assert commit_slot(-math.inf, 3.0, INTERVAL) == 3.0
    assert commit_slot(1.0, 3.0, INTERVAL) == 6.0
