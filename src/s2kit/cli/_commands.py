"""How sub-commands register: the :class:`Commands` registry, the parser class and exit codes.

Command modules (``_resources``, ``_records``, ``_tokens``, ``_metrics``, ``_bench``,
``_config_file``) import this module, never ``_main``: ``_main`` imports them to build the
parser, so the dependency points one way only.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from s2kit.cli._config import Settings

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_VERIFICATION = 3
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace, "Settings"], Coroutine[Any, Any, int]]
"""What a sub-command runs: ``async def handler(args, settings) -> exit code``."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class Commands:
    """Registers sub-commands with the shared global flags, a summary and an example."""

    def __init__(self, sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
        self._sub = sub
        self._common = common

    def add(
        self, name: str, handler: Handler, summary: str, example: str, *, details: str = ""
    ) -> argparse.ArgumentParser:
        """A sub-command running ``handler``; ``example`` is shown in its ``--help``."""
        p = self.add_group(name, summary, example, details=details, common=True)
        p.set_defaults(handler=handler)
        return p

    def add_group(
        self, name: str, summary: str, example: str, *, details: str = "", common: bool = False
    ) -> argparse.ArgumentParser:
        """A sub-command without a handler of its own (it gets sub-commands, or sets one)."""
        description = textwrap.fill(summary[0].upper() + summary[1:] + ".", 79)
        if details:  # prose is wrapped; preformatted text (with newlines) is kept
            description += "\n\n" + (details if "\n" in details else textwrap.fill(details, 79))
        description += "\n\nexample:\n  " + example.replace("\n", "\n  ")
        return self._sub.add_parser(
            name,
            help=summary,
            description=description,
            parents=[self._common] if common else [],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
