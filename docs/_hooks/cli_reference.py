"""MkDocs hook: the CLI reference page, generated from the ``s2kit`` argparse parser.

``docs/cli.md`` holds a ``<!-- cli-reference -->`` marker; at build time it becomes one section
per command (subcommands nested), each with the command's ``--help`` text, so the page can never
drift from the parser. A hook rather than a plugin: no maintained MkDocs plugin renders argparse
(mkdocs-click is for click; the argparse ones on PyPI are single, unmaintained releases), and
argparse's own help text is the reference users already see in the terminal.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import Any

MARKER = "<!-- cli-reference -->"
WIDTH = "96"  # argparse wraps help to $COLUMNS; fixed so the page does not depend on a terminal


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:  # argparse exposes subparsers only through _actions
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _sections(parser: argparse.ArgumentParser, path: list[str], level: int) -> Iterator[str]:
    for name, sub in _subcommands(parser):
        words = [*path, name]
        yield f"{'#' * level} `{' '.join(words)}`\n"
        yield f"```text\n{sub.format_help().rstrip()}\n```\n"
        yield from _sections(sub, words, min(level + 1, 4))


def render() -> str:
    """The reference: the top-level help, then every command's."""
    from s2kit.cli._main import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        parser = build_parser()
        parts = [f"```text\n{parser.format_help().rstrip()}\n```\n"]
        parts.extend(_sections(parser, ["s2kit"], 2))
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())
