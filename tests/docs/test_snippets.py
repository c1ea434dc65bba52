"""Every code block of README.md and docs/ runs against a fresh lite, so none can rot.

Python blocks run in this process, as ``__main__``, with the ``S2_*`` variables pointing at the
test's lite and the working directory a fresh temporary one; a block that defines ``test_*``
functions has them called too, with ``s2kit_lite`` (and ``tmp_path``) supplied as pytest would.
Each Python block runs twice against the same lite: what the docs show must also work the
second time a reader runs it. Shell blocks that call ``s2kit`` run once, under ``bash -e``.
Blocks marked ``<!-- not-run: REASON -->`` are skipped with that reason (see ``_markdown``).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from s2kit.testing import LiteEndpoint, run_lite

from ._markdown import PYTHON, SHELL, Block, blocks, markdown_files, markers

RUNNABLE = [
    b
    for path in markdown_files()
    for b in blocks(path)
    if b.lang in PYTHON or (b.lang in SHELL and b.calls_s2kit)
]


def _run_python(block: Block, tmp_path: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": block.where}
    exec(compile(block.code, block.where, "exec"), namespace)
    for name, fn in list(namespace.items()):
        if name.startswith("test_") and inspect.isfunction(fn):
            # A fresh server per test, as the fixture gives.
            with run_lite() as fresh, pytest.MonkeyPatch.context() as monkeypatch:
                supplied = {"s2kit_lite": fresh, "tmp_path": tmp_path, "monkeypatch": monkeypatch}
                kwargs = {p: supplied[p] for p in inspect.signature(fn).parameters}
                result = fn(**kwargs)
                if inspect.iscoroutine(result):
                    asyncio.run(result)


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.where for b in RUNNABLE])
def test_block_runs(
    block: Block,
    s2kit_lite: LiteEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if block.not_run is not None:
        pytest.skip(f"not-run: {block.not_run}")
    for key, value in s2kit_lite.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    if block.lang in PYTHON:
        (tmp_path / "run1").mkdir()
        _run_python(block, tmp_path / "run1")
        (tmp_path / "run2").mkdir()
        _run_python(block, tmp_path / "run2")
        return
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"{block.where} failed:\n{proc.stdout}\n{proc.stderr}"


def test_markers_precede_blocks_and_give_reasons() -> None:
    """A marker that is not right before a block, or has no reason, would hide nothing or
    hide without saying why."""
    for path in markdown_files():
        attached = {b.line for b in blocks(path) if b.not_run is not None}
        lines = path.read_text(encoding="utf-8").splitlines()
        for line, reason in markers(path):
            assert reason, f"{path}:{line}: a not-run marker needs a reason"
            after = next(
                (n for n in range(line, len(lines)) if lines[n].strip()), len(lines)
            )  # 0-based index of the next non-blank line = 1-based line number - 1
            assert after + 1 in attached, f"{path}:{line}: the marker is not before a block"


def test_every_page_has_been_scanned() -> None:
    """The scan sees the README and the docs, and runs most of what they show."""
    ran = [b for b in RUNNABLE if b.not_run is None]
    assert any(b.path.name == "README.md" for b in ran)
    assert len(ran) >= 10, [b.where for b in ran]
