"""Entry point of the ``s2kit`` command: parses the sub-command and dispatches to it.

Every command module registers its sub-commands through :class:`~s2kit.cli._commands.Commands`
and provides ``async def handler(args, settings) -> int``. This module owns the one place where
errors turn into exit codes, so every command reports failures the same way: one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from s2kit.cli._commands import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    Handler,
    Parser,
)
from s2kit.cli._config import CliUsageError, Settings, parse_duration, settings_from
from s2kit.cli._output import describe_error, missing_extra
from s2kit.errors import S2Error, TransportError, UsageError

# Re-exported for command modules written against the old location (prefer ``_commands``).
__all__ = ["Commands", "main"]

_Parser = Parser

_EPILOG = """\
addressing:
  Basins are named directly (my-basin) or as s2://my-basin; streams are s2://BASIN/STREAM
  (the stream name may contain '/').

configuration (flags win over the environment, which wins over `s2kit config`):
  S2_ACCESS_TOKEN       access token (--access-token); lite ignores it but one must be set
  S2_ACCOUNT_ENDPOINT   account endpoint (--account-endpoint), default https://a.s2.dev
  S2_BASIN_ENDPOINT     basin endpoint (--basin-endpoint), default https://{basin}.b.s2.dev
  S2_SSL_NO_VERIFY=1    skip TLS certificate checks (--insecure), e.g. for lite --tls-self
  --endpoint URL sets both endpoints at once (lite serves both on one URL). With only one
  endpoint set, the other follows it, or is the S2 cloud's when the one set is the cloud's.
  Endpoints without a scheme mean https, except local addresses (localhost, 127.0.0.1, ...),
  which must say http:// or https://. `s2kit config set KEY VALUE` keeps settings in
  ~/.config/s2kit/config.toml (see `s2kit config --help`).

output:
  Human-readable text on stdout by default; --json prints JSON documents for scripts.
  Errors are one line on stderr.

exit codes:
  0  success
  1  the server or the network failed (e.g. basin_not_found, connection refused)
  2  usage error (bad flags, malformed s2:// URI, invalid value)
  3  bench: verification failed (lost, duplicated or corrupted records)
  130 interrupted (Ctrl+C)

examples:
  s2kit lite --port 8080 &
  export S2_ACCESS_TOKEN=ignored S2_ACCOUNT_ENDPOINT=http://localhost:8080 \\
         S2_BASIN_ENDPOINT=http://localhost:8080
  s2kit create-basin my-basin --create-stream-on-append
  printf 'hello\\nworld\\n' | s2kit append s2://my-basin/greetings
  s2kit read s2://my-basin/greetings --seq-num 0
  s2kit tail -f s2://my-basin/greetings
  s2kit bench my-basin --duration 10s --catchup-delay 2s
"""


def _common_flags() -> _Parser:
    common = _Parser(add_help=False)
    g = common.add_argument_group("connection and output (also from the environment)")
    sup = argparse.SUPPRESS
    g.add_argument("--json", action="store_true", default=sup, help="print JSON for scripts")
    g.add_argument("--access-token", default=sup, metavar="TOKEN", help="S2_ACCESS_TOKEN")
    g.add_argument("--endpoint", default=sup, metavar="URL", help="both endpoints (e.g. lite)")
    g.add_argument("--account-endpoint", default=sup, metavar="URL", help="S2_ACCOUNT_ENDPOINT")
    g.add_argument("--basin-endpoint", default=sup, metavar="URL", help="S2_BASIN_ENDPOINT")
    g.add_argument(
        "--insecure", action="store_true", default=sup, help="skip TLS checks (S2_SSL_NO_VERIFY)"
    )
    g.add_argument(
        "--request-timeout",
        type=parse_duration,
        default=sup,
        metavar="DURATION",
        help="per-request timeout (default 30s)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    from s2kit import __version__
    from s2kit.cli import _bench, _config_file, _metrics, _records, _resources, _tokens

    common = _common_flags()
    parser = _Parser(
        prog="s2kit",
        description="The Python toolkit for S2, the durable streams API.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"s2kit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    cmds = Commands(sub, common)
    _resources.add_parsers(cmds)
    _records.add_parsers(cmds)
    _tokens.add_parsers(cmds)
    _metrics.add_parsers(cmds)
    _bench.add_parser(cmds)
    _config_file.add_parser(cmds)
    _add_lite(sub)
    return parser


def _add_lite(sub: argparse._SubParsersAction[_Parser]) -> None:
    lite = sub.add_parser(
        "lite",
        help="run an S2-compatible server on this machine (in memory, or durable on disk)",
        description=(
            "Run lite, an S2-compatible server. HTTP/1.1, h2c and (with TLS) HTTPS are served on "
            "one port. In memory unless --data-dir is given.\n\nexample:\n"
            "  s2kit lite --port 8080\n  s2kit lite --port 8080 --data-dir ./lite-data"
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
    lite.add_argument(
        "--tls-only", action="store_true", help="with TLS: refuse plaintext on the port"
    )
    lite.add_argument("--no-cors", action="store_true", help="do not answer CORS requests")
    lite.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let web pages of ORIGIN (e.g. https://app.example; * for any) use lite from a "
        "browser; loopback origins always may (repeatable)",
    )
    lite.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="accept this Host name besides local ones when listening on loopback (repeatable)",
    )
    lite.add_argument(
        "--data-dir",
        metavar="DIR",
        help="keep basins, streams and records durably in DIR (created if missing; one "
        "process at a time); default: in memory",
    )
    lite.add_argument(
        "--skip-page-check",
        action="store_true",
        help="with --data-dir: start without verifying every page of the data file first "
        "(about 2.7 s per GB); run `s2kit lite verify` instead when convenient",
    )
    access = lite.add_argument_group("access tokens (see docs/auth.md)")
    access.add_argument(
        "--auth",
        action="store_true",
        help="require an access token on every request but /health and serve the "
        "access-token API; the root token is printed at start unless given",
    )
    access.add_argument(
        "--root-token",
        metavar="TOKEN",
        help="with --auth: the root token, 16+ printable ASCII characters (default: "
        "$S2KIT_ROOT_TOKEN, else a new one each start); the variable keeps it out of `ps`",
    )
    logs = lite.add_argument_group("logging (see docs/observability.md)")
    logs.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="least severe lines logged to stderr (default info: errors of requests too; "
        "debug: a line per request)",
    )
    logs.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines (default), or one JSON object per line",
    )
    limits = lite.add_argument_group("limits (see docs/lite-limits.md)")
    limits.add_argument(
        "--max-connections",
        type=int,
        default=None,
        metavar="N",
        help="connections at once (default 10000, below the file descriptor limit)",
    )
    limits.add_argument(
        "--memory-budget",
        type=parse_size,
        default=None,
        metavar="SIZE",
        help="what lite may buffer for clients in all (default 32MiB)",
    )
    limits.add_argument(
        "--append-inflight-bytes",
        type=parse_size,
        default=None,
        metavar="SIZE",
        help="appends in flight before more wait, e.g. 128MiB (default, as s2-lite)",
    )
    for flag, default, what in (
        ("--header-timeout", 10, "for a request head"),
        ("--body-timeout", 30, "a unary request body may stall"),
        ("--send-timeout", 60, "a client may read nothing"),
        ("--idle-timeout", 300, "an idle connection stays open"),
    ):
        limits.add_argument(
            flag,
            type=float,
            default=None,
            metavar="SECONDS",
            help=f"seconds {what} (default {default})",
        )
    limits.add_argument(
        "--delete-on-empty-grace",
        type=float,
        default=None,
        metavar="SECONDS",
        help="padding of delete-on-empty deadlines (default 600, as s2-lite)",
    )
    # An optional sub-command: without one, `s2kit lite [flags]` serves as it always did.
    actions = lite.add_subparsers(dest="lite_command", metavar="{verify}")
    verify = actions.add_parser(
        "verify",
        help="check a stopped lite's data directory for damage",
        description=(
            "Read every page and row of a durable lite's data directory (lite must be "
            "stopped) and check each against its checksum and the others. Prints what it "
            "finds; exits 0 if all is intact, 1 if anything is damaged or cannot be read."
        ),
    )
    verify.add_argument("--data-dir", required=True, metavar="DIR", help="the data directory")


def parse_size(text: str) -> int:
    """``128MiB``, ``64M``, ``1GiB``, ``4096``: a size in bytes."""
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    raw = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = raw[-1:] if raw[-1:] in units else ""
    number = raw[: len(raw) - len(unit)]
    if not number.isascii() or not number.isdigit():
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (like 128MiB, 64K, 4096)")
    return int(number) * units[unit]


def _missing_extra(extra: str, exc: ImportError) -> int:
    return missing_extra(extra, exc)


def _fail(command: str, message: str, code: int) -> int:
    sys.stderr.write(f"s2kit {command}: error: {message}\n")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # reported by the sub-command, so the message names it
            _subparser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "lite":
        try:
            from s2kit.cli import _lite_cmd
        except ImportError as exc:
            return _missing_extra("lite", exc)
        return _lite_cmd.run(args)
    if args.command == "config":
        from s2kit.cli import _config_file

        return _config_file.run(args)
    return _dispatch(args.command, args.handler, args)


def _subparser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            sub: argparse.ArgumentParser = action.choices[command]
            return sub
    return parser


def _dispatch(command: str, handler: Handler, args: argparse.Namespace) -> int:
    settings: Settings | None = None
    try:
        settings = settings_from(args)
        return asyncio.run(handler(args, settings))
    except (CliUsageError, UsageError) as exc:
        return _fail(command, str(exc), EXIT_USAGE)
    except S2Error as exc:
        hint = ""
        if isinstance(exc, TransportError) and settings is not None:
            hint = " (check --endpoint or S2_ACCOUNT_ENDPOINT / S2_BASIN_ENDPOINT)"
        return _fail(command, describe_error(exc, hint), EXIT_ERROR)
    except KeyboardInterrupt:
        # Ctrl+C is how `tail -f` and `read --follow` end: the exit status says it, quietly.
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``s2kit read ... | head``): not an error of ours.
        _silence_stdout()
        return EXIT_OK


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
