"""Entry point of the ``s2kit`` command: parses the sub-command and dispatches to it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def _missing_extra(extra: str, exc: ImportError) -> int:
    sys.stderr.write(
        f"s2kit: this command needs the `{extra}` extra ({exc.name} is missing): "
        f"pip install 's2kit[{extra}]'\n"
    )
    return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = argparse.ArgumentParser(
        prog="s2kit",
        description="The Python toolkit for S2, the durable streams API.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    lite = sub.add_parser(
        "lite",
        help="run an S2-compatible server on this machine (in memory)",
        description=(
            "Run lite, an S2-compatible server. HTTP/1.1, h2c and (with TLS) HTTPS are served on "
            "one port.\n\nexample:\n  s2kit lite --port 8080"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lite.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    lite.add_argument("--port", type=int, default=None, help="port (default 80, 443 with TLS)")
    lite.add_argument(
        "--flush-interval",
        type=float,
        default=5.0,
        metavar="MS",
        help="group-commit interval in milliseconds (default 5)",
    )
    tls = lite.add_mutually_exclusive_group()
    tls.add_argument("--tls-self", action="store_true", help="serve TLS with a self-signed cert")
    tls.add_argument("--tls-cert", metavar="PEM", help="TLS certificate chain (PEM)")
    lite.add_argument("--tls-key", metavar="PEM", help="TLS private key (PEM)")
    lite.add_argument("--no-cors", action="store_true", help="do not answer CORS requests")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "lite":
        try:
            from s2kit.cli import _lite_cmd
        except ImportError as exc:
            return _missing_extra("lite", exc)
        return _lite_cmd.run(args)
    parser.print_help()
    return EXIT_USAGE
