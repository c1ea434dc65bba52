"""Record commands: append, read, tail, check-tail, fence and trim (formats: ``_formats``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from s2kit import (
    AppendInput,
    CommandRecord,
    ReadLimit,
    Record,
    SeqNum,
    TailOffset,
    Timestamp,
)
from s2kit.cli._config import (
    CliUsageError,
    Settings,
    make_client,
    non_negative_int,
    positive_int,
    stream_arg,
)
from s2kit.cli._formats import (
    FORMAT,
    FORMATS_HELP,
    NotText,
    format_record,
    lines,
    parse_record,
)
from s2kit.cli._output import note, print_json, print_line
from s2kit.errors import UsageError

if TYPE_CHECKING:
    from s2kit import RecordTicket
    from s2kit.cli._commands import Commands

_FOLLOW_WAIT = 2**32 - 1  # the largest `wait` (u32 seconds): follow until a limit is reached


async def append(args: argparse.Namespace, settings: Settings) -> int:
    """``append``: one record per input line, through a producer (batched, pipelined)."""
    fmt = args.format or "text"
    src: IO[bytes]
    if args.input in (None, "-"):
        src = sys.stdin.buffer
    else:
        try:
            src = await asyncio.to_thread(open, args.input, "rb")
        except OSError as exc:
            raise CliUsageError(f"cannot read {args.input}: {exc.strerror}") from None
    count = 0
    first: RecordTicket | None = None
    last: RecordTicket | None = None
    bad: str | None = None
    try:
        async with make_client(settings) as s2:
            stream = s2.basin(args.uri.basin).stream(args.uri.stream)
            producer = stream.producer(
                fencing_token=args.fencing_token, match_seq_num=args.match_seq_num
            )
            async with producer:
                async for lineno, line in lines(src):
                    try:
                        record = parse_record(line, fmt)
                        if record is None:
                            continue
                        ticket = await producer.submit(record)
                    except (ValueError, UsageError) as exc:  # UsageError: record too large
                        bad = f"line {lineno}: {exc}"
                        break
                    first = first or ticket
                    last = ticket
                    count += 1
    finally:
        if src is not sys.stdin.buffer:
            src.close()
    if bad is not None:
        done = f"; the {count} records before it were appended" if count else ""
        raise CliUsageError(f"{bad}{done}")
    if first is None or last is None:
        if settings.json:
            print_json({"records": 0})
        else:
            note("s2kit append: no input records; nothing appended")
        return 0
    a, z = await first, await last
    if settings.json:
        print_json(
            {
                "records": count,
                "first_seq_num": a.seq_num,
                "last_seq_num": z.seq_num,
                "tail": z.batch.tail,
            }
        )
    else:
        print_line(
            f"appended {count} record{'s' if count != 1 else ''} to {args.uri}: "
            f"seq_num {a.seq_num}{'' if count == 1 else f'..{z.seq_num}'}, "
            f"tail {z.batch.tail.seq_num}"
        )
    return 0


def _start_spec(text: str) -> SeqNum | Timestamp | TailOffset:
    kind, sep, value = text.partition(":")
    if not sep:
        kind, value = "seq", text
    starts: dict[str, type[SeqNum] | type[Timestamp] | type[TailOffset]] = {
        "seq": SeqNum,
        "seq_num": SeqNum,
        "timestamp": Timestamp,
        "ts": Timestamp,
        "tail-offset": TailOffset,
        "tail_offset": TailOffset,
    }
    conv = starts.get(kind)
    value = value.strip()
    if conv is None or not (value.isascii() and value.isdigit()):
        raise argparse.ArgumentTypeError(
            f"invalid start {text!r}: use N or seq:N (a seq_num), timestamp:MS (milliseconds "
            "since the epoch) or tail-offset:N (N records before the tail)"
        )
    return conv(int(value))


async def _read_out(
    args: argparse.Namespace, settings: Settings, start: Any, wait: int | None
) -> int:
    fmt = args.format or ("json" if settings.json else "text")
    limit = None
    if getattr(args, "count", None) is not None or getattr(args, "bytes", None) is not None:
        limit = ReadLimit(count=args.count, bytes=args.bytes)
    sys.stdout.flush()
    out = sys.stdout.buffer
    async with make_client(settings) as s2:
        stream = s2.basin(args.uri.basin).stream(args.uri.stream)
        session = stream.read_session(
            start,
            limit=limit,
            until=getattr(args, "until", None),
            clamp=bool(getattr(args, "clamp", False)),
            wait=wait,
        )
        async with session:
            async for batch in session:
                for r in batch.records:
                    try:
                        line = format_record(r, fmt)
                    except NotText as exc:
                        out.flush()
                        raise CliUsageError(str(exc)) from None
                    if line is not None:
                        out.write(line)
                out.flush()
    return 0


async def read(args: argparse.Namespace, settings: Settings) -> int:
    """``read``: from a position to the tail (or on, with ``--follow``/``--wait``)."""
    start = args.start if args.start is not None else SeqNum(0)
    bounded = args.count is not None or args.bytes is not None or args.until is not None
    if args.wait is not None:
        wait: int | None = args.wait
    elif args.follow:
        wait = _FOLLOW_WAIT if bounded else None
    else:
        wait = 0
    return await _read_out(args, settings, start, wait)


async def tail(args: argparse.Namespace, settings: Settings) -> int:
    """``tail``: the last N records, and with ``-f`` every new one."""
    return await _read_out(args, settings, TailOffset(args.lines), None if args.follow else 0)


async def check_tail(args: argparse.Namespace, settings: Settings) -> int:
    """``check-tail``."""
    async with make_client(settings) as s2:
        pos = await s2.basin(args.uri.basin).stream(args.uri.stream).check_tail()
    if settings.json:
        print_json(pos)
    elif pos.seq_num == 0:
        print_line("next seq_num    0 (the stream is empty)")
    else:
        print_line(f"next seq_num    {pos.seq_num}")
        print_line(f"last timestamp  {_iso_ms(pos.timestamp)} ({pos.timestamp} ms)")
    return 0


def _iso_ms(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC (``-`` beyond what datetime holds)."""
    try:
        when = datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, ValueError, OSError):
        return "-"
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _command(args: argparse.Namespace, settings: Settings, record: Record) -> Any:
    async with make_client(settings) as s2:
        stream = s2.basin(args.uri.basin).stream(args.uri.stream)
        inp = AppendInput(
            records=(record,), fencing_token=args.fencing_token, match_seq_num=args.match_seq_num
        )
        return await stream.append(inp)


async def fence(args: argparse.Namespace, settings: Settings) -> int:
    """``fence``: set a new fencing token."""
    ack = await _command(args, settings, CommandRecord.fence(args.new_token))
    if settings.json:
        print_json({"fencing_token": args.new_token, "ack": ack})
    else:
        seq = ack.start.seq_num
        print_line(f"fenced {args.uri} with token {args.new_token!r} at seq_num {seq}")
    return 0


async def trim(args: argparse.Namespace, settings: Settings) -> int:
    """``trim``: delete the records before a seq_num."""
    ack = await _command(args, settings, CommandRecord.trim(args.trim_point))
    if settings.json:
        print_json({"trim_point": args.trim_point, "ack": ack})
    else:
        print_line(
            f"trimmed {args.uri} before seq_num {args.trim_point} "
            f"(command at seq_num {ack.start.seq_num})"
        )
    return 0


def _conditions(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fencing-token", metavar="TOKEN", help="append only if the token matches")
    p.add_argument(
        "--match-seq-num",
        type=non_negative_int,
        metavar="N",
        help="append only if the stream's next seq_num is N",
    )


def _uri(p: argparse.ArgumentParser) -> None:
    p.add_argument("uri", type=stream_arg, metavar="s2://BASIN/STREAM")


def add_parsers(cmds: Commands) -> None:
    """Register the record commands."""
    p = cmds.add(
        "append",
        append,
        "append records, one per line of stdin or a file",
        "printf 'a\\nb\\n' | s2kit append s2://my-basin/logs\n"
        "s2kit append s2://my-basin/logs --format json --input records.jsonl",
        details=FORMATS_HELP,
    )
    _uri(p)
    p.add_argument("-i", "--input", metavar="FILE", help="read FILE instead of stdin ('-')")
    p.add_argument("--format", type=FORMAT, help="text (default), json or base64")
    _conditions(p)

    p = cmds.add(
        "read",
        read,
        "read records (to the tail, or on with --follow)",
        "s2kit read s2://my-basin/logs --seq-num 100 --count 10\n"
        "s2kit read s2://my-basin/logs --tail-offset 5 --format json",
    )
    _uri(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--start",
        type=_start_spec,
        metavar="SPEC",
        help="N, seq:N, timestamp:MS or tail-offset:N (default seq 0)",
    )
    g.add_argument(
        "-s",
        "--seq-num",
        dest="start",
        type=lambda v: SeqNum(non_negative_int(v)),
        metavar="N",
        help="start at this seq_num",
    )
    g.add_argument(
        "--timestamp",
        dest="start",
        metavar="MS",
        type=lambda v: Timestamp(non_negative_int(v)),
        help="start at the first record with a timestamp >= MS",
    )
    g.add_argument(
        "--tail-offset",
        dest="start",
        metavar="N",
        type=lambda v: TailOffset(non_negative_int(v)),
        help="start N records before the tail",
    )
    p.set_defaults(start=None)
    p.add_argument("-n", "--count", type=positive_int, metavar="N", help="at most N records")
    p.add_argument("-b", "--bytes", type=positive_int, metavar="N", help="at most N metered bytes")
    p.add_argument(
        "--until",
        type=non_negative_int,
        metavar="MS",
        help="only records with a timestamp below MS",
    )
    p.add_argument("--clamp", action="store_true", help="start at the tail if beyond it")
    p.add_argument("-f", "--follow", action="store_true", help="wait for new records")
    p.add_argument(
        "--wait",
        type=non_negative_int,
        metavar="SECS",
        help="stop after SECS without new records at the tail",
    )
    p.add_argument("--format", type=FORMAT, help="text (default; json with --json), base64")

    p = cmds.add(
        "tail",
        tail,
        "print the last records; -f follows new ones",
        "s2kit tail -f -n 20 s2://my-basin/logs",
    )
    _uri(p)
    p.add_argument(
        "-n",
        "--lines",
        type=non_negative_int,
        default=10,
        metavar="N",
        help="how many records (default 10)",
    )
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    p.add_argument("--format", type=FORMAT, help="text (default; json with --json), base64")

    p = cmds.add(
        "check-tail",
        check_tail,
        "print the next seq_num and the time of the last record",
        "s2kit check-tail s2://my-basin/logs",
    )
    _uri(p)
    p = cmds.add(
        "fence",
        fence,
        "set a stream's fencing token (a command record)",
        "s2kit fence s2://my-basin/logs writer-2 --fencing-token writer-1",
    )
    _uri(p)
    p.add_argument("new_token", metavar="NEW_TOKEN", help="the new token ('' removes it)")
    _conditions(p)
    p = cmds.add(
        "trim",
        trim,
        "delete the records before a seq_num (a command record)",
        "s2kit trim s2://my-basin/logs 1000",
    )
    _uri(p)
    p.add_argument("trim_point", type=non_negative_int, metavar="SEQ_NUM")
    _conditions(p)
