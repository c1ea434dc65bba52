"""History runs: concurrent clients against lite, every operation recorded, the whole
history checked against the sequential log model (``_checker.py`` lists the properties).

Four phases (``_phases.py``), each mixing HTTP/2 and HTTP/1.1 clients: plain, behind the
fault proxy, durable lite SIGKILLed and restarted, and both. The CI-sized runs take a few
seconds of workload each; ``-m slow`` runs all four until at least 200,000 operations and 50
kills (``S2KIT_HISTORY_SEED`` picks another seed; ``S2KIT_HISTORY_REPORT=path`` writes the
figures as JSON, for docs/reliability.md).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from ._phases import PHASES, Plan, run_phase, write_report

if TYPE_CHECKING:
    from pathlib import Path

SEED = int(os.environ.get("S2KIT_HISTORY_SEED", "20261220"))
CI_SECONDS = {"plain": 6.0, "proxy": 8.0, "durable": 10.0, "proxy-durable": 10.0}
CI_KILLS = {"plain": 0, "proxy": 0, "durable": 5, "proxy-durable": 5}


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.timeout(300)
async def test_history(phase: str, tmp_path: Path) -> None:
    plan = Plan(seed=SEED, seconds=CI_SECONDS[phase], kills=CI_KILLS[phase])
    run = await run_phase(PHASES[phase], plan, tmp_path)
    write_report(phase, run.report)
    figures = ("operations", "kills", "faults_injected", "seconds", "violations")
    print({k: run.report[k] for k in figures})
    assert run.result.ok, run.result.summary()
    assert run.report["kills"] >= CI_KILLS[phase]


LARGE_OPERATIONS = 60_000  # per phase: at least 240,000 in all
LARGE_KILLS = 30  # per durable phase: at least 60 in all


@pytest.mark.slow
@pytest.mark.timeout(3600)
async def test_history_large(tmp_path: Path) -> None:
    totals = {"operations": 0, "kills": 0, "faults_injected": 0, "seconds": 0.0}
    found: list[str] = []
    for phase in PHASES:
        durable = PHASES[phase].durable
        plan = Plan(
            seed=SEED + 1,
            operations=LARGE_OPERATIONS,
            kills=LARGE_KILLS if durable else 0,
            bulk_trim_every=50_000,
        )
        (tmp_path / phase).mkdir()
        run = await run_phase(PHASES[phase], plan, tmp_path / phase)
        write_report(f"large/{phase}", run.report)
        for key in totals:
            totals[key] += run.report[key]
        if not run.result.ok:
            found.append(f"{phase}: {run.result.summary()}")
        del run
    write_report("large/total", {**totals, "violations": found})
    print(totals)
    assert not found, "\n".join(found)
    assert totals["operations"] >= 200_000
    assert totals["kills"] >= 50
