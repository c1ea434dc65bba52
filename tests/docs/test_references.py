"""Every file reference in the code and the docs resolves inside this repository.

Docs and comments cite the repository's own files — ``docs/protocol.md#s2s-framing``,
``src/s2kit/client/_retry.py``, ``tests/faults/`` — never material kept elsewhere. This scans
src/, tests/, bench/, examples/, docs/ and README.md for references to Markdown files and to
paths under those folders, and checks that each exists and, where it names an anchor, that
the page has that heading (ids computed by Python-Markdown with the site's own extensions, as
MkDocs makes them). A section sign may only follow an RFC: a section number of a document
that is not here means nothing to a reader.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import Any

import markdown
import pytest
import yaml

from ._markdown import ROOT

SCANNED = ("src", "tests", "bench", "examples", "docs")
SUFFIXES = {".py", ".md", ".toml", ".yml", ".txt", ".cfg"}

# The patterns are spelled (escapes, character classes) so that this file passes its own scan.
SECTION_SIGN = "\u00a7"
_PATH = re.compile(
    r"(?<![\w/.-])(?P<path>(?:src|tests|bench|examples|docs)/[\w./-]*\w/?)(?:#(?P<anchor>[\w-]+))?"
)
_MD = re.compile(r"(?<![\w/.-])(?P<path>(?:\.\./)*[\w][\w./-]*\.md)\b(?:#(?P<anchor>[\w-]+))?")
# An RFC's sections, also as a list: "RFC 9113 S6.8", "RFC 9113 S4 and S6" (S the sign).
_RFC_SECTIONS = re.compile(r"RFC \d+ \u00a7[\d.]+(?:(?:, |, and | and | or |–)\u00a7[\d.]+)*")
_FORBIDDEN = re.compile(r"shared[/]spec|\.\.[/]shared|s2-api[.]md|python-http2-measure[m]ents")


def _files() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "mkdocs.yml", ROOT / "Makefile"]
    for top in SCANNED:
        found += [
            p
            for p in sorted((ROOT / top).rglob("*"))
            if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts
        ]
    return found


def _cli_page(text: str) -> str:
    """The CLI page as the site shows it: the hook puts the parser's help in."""
    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "docs" / "_hooks" / "cli_reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    rendered: str = hook.on_page_markdown(text, page=None)
    return rendered


def _site_extensions() -> tuple[list[str], dict[str, Any]]:
    """The Markdown extensions of mkdocs.yml, with their options."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    names: list[str] = []
    options: dict[str, Any] = {}
    for entry in config["markdown_extensions"]:
        if isinstance(entry, dict):
            ((name, opts),) = entry.items()
            names.append(name)
            options[name] = opts or {}
        else:
            names.append(entry)
    return names, options


def _ids(tokens: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for token in tokens:
        found.add(token["id"])
        found |= _ids(token["children"])
    return found


def heading_ids(text: str) -> frozenset[str]:
    """The heading ids of Markdown ``text``, as MkDocs makes them (a repeated one gets ``_1``)."""
    names, options = _site_extensions()
    md = markdown.Markdown(extensions=names, extension_configs=options)
    md.convert(text)
    return frozenset(_ids(md.toc_tokens))  # type: ignore[attr-defined]


@functools.cache
def anchors(page: Path) -> frozenset[str]:
    """The heading ids of a page of the site."""
    text = page.read_text(encoding="utf-8")
    if "<!-- cli-reference -->" in text:
        text = _cli_page(text)
    return heading_ids(text)


def _resolve(ref: str, source: Path) -> Path | None:
    """Where ``ref`` points: relative to its file (Markdown links), else to the repository
    root, else (a bare page name) to docs/."""
    for base in (source.parent, ROOT, ROOT / "docs"):
        candidate = (base / ref).resolve()
        if candidate.exists() and ROOT in (candidate, *candidate.parents):
            return candidate
    return None


def _references(text: str) -> list[tuple[int, str, str | None]]:
    refs: list[tuple[int, str, str | None]] = []
    for n, line in enumerate(text.splitlines(), 1):
        seen = set()
        for pattern in (_PATH, _MD):
            for m in pattern.finditer(line):
                if m.start("path") in seen:
                    continue
                seen.add(m.start("path"))
                refs.append((n, m["path"].rstrip("."), m["anchor"]))
    return refs


def problems(text: str, source: Path) -> list[str]:
    """What is wrong with the references of ``text``, read as if it were the file ``source``."""
    found = []
    for line, ref, anchor in _references(text):
        target = _resolve(ref, source)
        if target is None:
            found.append(f"line {line}: {ref} is not in the repository")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            found.append(f"line {line}: {ref} has no heading #{anchor}")
    for n, line in enumerate(text.splitlines(), 1):
        if _FORBIDDEN.search(line):
            found.append(f"line {n}: cites material outside the repository: {line.strip()}")
        rfc_signs = sum(m[0].count(SECTION_SIGN) for m in _RFC_SECTIONS.finditer(line))
        if line.count(SECTION_SIGN) > rfc_signs:
            found.append(f"line {n}: a section number that is not an RFC's: {line.strip()}")
    return found


FILES = _files()


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_references_resolve(path: Path) -> None:
    found = problems(path.read_text(encoding="utf-8"), path)
    assert not found, "\n".join(found)


def test_the_scan_finds_references() -> None:
    """The patterns do match what the docs are full of (a scan that finds nothing passes)."""
    refs = [ref for _, ref, _ in _references((ROOT / "docs" / "architecture.md").read_text())]
    assert "protocol.md" in refs
    assert "retry-safety.md" in refs
    assert any(ref.startswith("tests/") for ref in refs)
    assert "s2s-framing" in anchors(ROOT / "docs" / "protocol.md")
    assert "s2kit-lite" in anchors(ROOT / "docs" / "cli.md")
    # A repeated heading gets the suffix MkDocs gives it.
    assert heading_ids("# Page\n## Records\n## Records\n") == {"page", "records", "records_1"}
    # Code in a heading keeps its underscores.
    assert "the-producer-with-match_seq_num-exactly-once-under-all" in anchors(
        ROOT / "docs" / "outcomes.md"
    )


def test_headings_say_what_they_are_not_which_issue() -> None:
    """A heading such as "Figures (issue 3)" means nothing to a reader of the site."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        fenced = False
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
            elif not fenced and line.startswith("#") and re.search(r"\bissue \d", line, re.I):
                found.append(f"{page.relative_to(ROOT)}:{n}: {line}")
    assert not found, "\n".join(found)


# Spelled in pieces, so that this file's own scan does not flag its samples.
S, MD, SL = SECTION_SIGN, ".md", "/"
SAMPLE_PAGE = f"sample{MD}"
BAD = [
    f"the framing (s2-api{MD} {S}6.1)",
    f"the hand-off rule (retry-safety{MD} {S}6.3)",
    f"as in the spec {S}4",
    f"defined the same way (bench spec {S}2)",
    f"see [the API](..{SL}..{SL}shared{SL}spec{SL}api{MD})",
    f"percentiles (docs: {SL}work{SL}shared{SL}spec{SL}bench{MD})",
    f"see docs{SL}nowhere{MD}",
    f"see protocol{MD}#no-such-heading",
    f"in src{SL}s2kit{SL}no_such_module.py",
    f"frames (RFC 9113 {S}6.8, s2 {S}6.1)",
]
GOOD = [
    f"a GOAWAY (RFC 9113 {S}6.8)",
    f"frames (RFC 9113 {S}4 and {S}6)",
    f"the framing (docs{SL}protocol{MD}#s2s-framing)",
    f"the rule ([retry-safety{MD}](retry-safety{MD}#the-retry-rule))",
    f"decided in src{SL}s2kit{SL}client{SL}_retry.py",
]


@pytest.mark.parametrize("line", BAD)
def test_a_bad_reference_fails(line: str) -> None:
    assert problems(line, ROOT / "src" / "s2kit" / "sample.py")
    assert problems(line, ROOT / "docs" / SAMPLE_PAGE)


@pytest.mark.parametrize("line", GOOD)
def test_a_good_reference_passes(line: str) -> None:
    assert problems(line, ROOT / "docs" / SAMPLE_PAGE) == []
