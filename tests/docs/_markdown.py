"""Fenced code blocks of the repository's Markdown, for the tests that run them.

A block preceded by ``<!-- not-run: REASON -->`` (blank lines between are allowed) is one the
reader cannot run as is — it starts a server that runs until stopped, or points at the cloud;
the tests skip it with its reason, so the summary counts every one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>.*?)\s*-->\s*$")
# A shell line that runs the CLI: `s2kit ...`, also after a pipe, `&&` or `python -m`.
_CALLS_S2KIT = re.compile(r"(^|[|;&]\s*|python3?\s+-m\s+)s2kit\s", re.MULTILINE)

PYTHON = frozenset({"python", "py"})
SHELL = frozenset({"sh", "bash", "shell", "console"})


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block: where it is, its language and code, and why it is not run (if so)."""

    path: Path
    line: int
    lang: str
    code: str
    not_run: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def calls_s2kit(self) -> bool:
        return bool(_CALLS_S2KIT.search(self.code))


def markdown_files() -> list[Path]:
    """README.md and every page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, in order."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        lang = m["info"].split()[0].lower() if m["info"].strip() else ""
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        found.append(Block(path, i + 1, lang, "\n".join(body) + "\n", _marker(lines, i)))
        i = j + 1
    return found


def _marker(lines: list[str], fence_index: int) -> str | None:
    k = fence_index - 1
    while k >= 0 and not lines[k].strip():
        k -= 1
    if k >= 0 and (m := _NOT_RUN.match(lines[k])):
        return m["reason"]
    return None


def markers(path: Path) -> list[tuple[int, str]]:
    """Every not-run marker of ``path``: (line, reason)."""
    return [
        (n, m["reason"])
        for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if (m := _NOT_RUN.match(text))
    ]
