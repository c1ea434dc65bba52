"""Basin and stream commands: list, create, delete, get and reconfigure their configuration."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from s2kit import (
    UNSET,
    BasinConfig,
    BasinReconfiguration,
    EncryptionAlgorithm,
    StorageClass,
    StreamConfig,
    StreamReconfiguration,
    Timestamping,
    TimestampingMode,
    TimestampingReconfiguration,
)
from s2kit.cli._config import (
    CliUsageError,
    Settings,
    add_bool_flag,
    basin_arg,
    basin_prefix_arg,
    choice_of,
    duration_secs,
    format_duration,
    make_client,
    positive_int,
    stream_arg,
)
from s2kit.cli._output import (
    flatten,
    print_json,
    print_kv,
    print_line,
    print_table,
    to_jsonable,
)

if TYPE_CHECKING:
    from s2kit import S2
    from s2kit.cli._commands import Commands

_STORAGE = choice_of([c.value for c in StorageClass], "storage class")
_MODES = choice_of([m.value for m in TimestampingMode], "timestamping mode")
_CIPHERS = choice_of([c.value for c in EncryptionAlgorithm], "cipher")


def _retention(text: str) -> int | str:
    if text.strip().lower() == "infinite":
        return "infinite"
    secs = duration_secs(text)
    if secs <= 0:
        raise argparse.ArgumentTypeError("retention must be positive (or 'infinite')")
    return secs


def _stream_config_flags(p: argparse.ArgumentParser, what: str) -> None:
    g = p.add_argument_group(what)
    g.add_argument("--storage-class", type=_STORAGE, help="standard or express")
    g.add_argument(
        "--retention-policy", type=_retention, metavar="AGE", help="e.g. 7d, 3600s, or infinite"
    )
    g.add_argument(
        "--timestamping-mode", type=_MODES, help="client-prefer, client-require or arrival"
    )
    add_bool_flag(g, "--timestamping-uncapped", "allow client timestamps in the future")
    g.add_argument(
        "--delete-on-empty-min-age",
        type=duration_secs,
        metavar="AGE",
        help="delete the stream once empty for this long (0 disables)",
    )


def _basin_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("basin configuration")
    add_bool_flag(g, "--create-stream-on-append", "create a stream when it is appended to")
    add_bool_flag(g, "--create-stream-on-read", "create a stream when it is read")
    g.add_argument("--stream-cipher", type=_CIPHERS, help="aegis-256 or aes-256-gcm")
    _stream_config_flags(p, "default stream configuration")


def _timestamping(args: argparse.Namespace) -> Timestamping | None:
    if args.timestamping_mode is None and args.timestamping_uncapped is None:
        return None
    mode = None if args.timestamping_mode is None else TimestampingMode(args.timestamping_mode)
    return Timestamping(mode=mode, uncapped=args.timestamping_uncapped)


def stream_config_from(args: argparse.Namespace) -> StreamConfig | None:
    """The stream configuration given by the flags, or None when none was given."""
    ts = _timestamping(args)
    fields = (args.storage_class, args.retention_policy, ts, args.delete_on_empty_min_age)
    if all(f is None for f in fields):
        return None
    return StreamConfig(
        storage_class=None if args.storage_class is None else StorageClass(args.storage_class),
        retention_policy=args.retention_policy,
        timestamping=ts,
        delete_on_empty_min_age_secs=args.delete_on_empty_min_age,
    )


def _keep(value: Any) -> Any:
    return UNSET if value is None else value


def stream_reconfiguration_from(args: argparse.Namespace) -> StreamReconfiguration | None:
    """The changes the flags ask for, or None when there are none."""
    if stream_config_from(args) is None:
        return None
    ts: Any = UNSET
    if args.timestamping_mode is not None or args.timestamping_uncapped is not None:
        ts = TimestampingReconfiguration(
            mode=_keep(args.timestamping_mode and TimestampingMode(args.timestamping_mode)),
            uncapped=_keep(args.timestamping_uncapped),
        )
    return StreamReconfiguration(
        storage_class=_keep(args.storage_class and StorageClass(args.storage_class)),
        retention_policy=_keep(args.retention_policy),
        timestamping=ts,
        delete_on_empty_min_age_secs=_keep(args.delete_on_empty_min_age),
    )


def _print_config(config: Any, js: bool) -> None:
    """JSON as the API has it; for people, durations as the flags take them (``7d``)."""
    if js:
        print_json(config)
        return
    rows = []
    for key, value in flatten(config):
        if key.endswith("retention_policy") and value.isdigit():
            value = format_duration(int(value))
        elif key.endswith("delete_on_empty_min_age_secs") and value.isdigit():
            key, value = key.removesuffix("_secs"), format_duration(int(value))
        rows.append((key, value))
    print_kv(rows)


# --- basins -------------------------------------------------------------------------------------


async def _collect(pages: Any, start_after: str, limit: int | None) -> list[Any]:
    """Every item of a listing from ``start_after``, page after page, up to ``limit``."""
    items: list[Any] = []
    while limit is None or len(items) < limit:
        page = await pages(start_after=start_after)
        items.extend(page.items)
        if not page.has_more or not page.items:
            break
        start_after = page.items[-1].name
    return items if limit is None else items[:limit]


def _when(dt: Any) -> str:
    return "-" if dt is None else dt.strftime("%Y-%m-%dT%H:%M:%SZ")


async def _list_basins(s2: S2, prefix: str, start_after: str, limit: int | None, js: bool) -> int:
    async def pages(start_after: str) -> Any:
        return await s2.list_basins(prefix=prefix, start_after=start_after)

    basins = await _collect(pages, start_after, limit)
    if js:
        print_json([{**_info(b), "state": b.state.value} for b in basins])
    else:
        rows = [[b.name, b.state.value, _when(b.created_at)] for b in basins]
        print_table(["NAME", "STATE", "CREATED"], rows)
    return 0


def _info(obj: Any) -> dict[str, Any]:
    value: dict[str, Any] = to_jsonable(obj)
    return value


async def list_basins(args: argparse.Namespace, settings: Settings) -> int:
    """``list-basins``."""
    async with make_client(settings) as s2:
        return await _list_basins(s2, args.prefix, args.start_after, args.limit, settings.json)


async def create_basin(args: argparse.Namespace, settings: Settings) -> int:
    """``create-basin``."""
    default = stream_config_from(args)
    config = None
    if default is not None or any(
        v is not None
        for v in (args.create_stream_on_append, args.create_stream_on_read, args.stream_cipher)
    ):
        config = BasinConfig(
            default_stream_config=default,
            stream_cipher=None
            if args.stream_cipher is None
            else EncryptionAlgorithm(args.stream_cipher),
            create_stream_on_append=bool(args.create_stream_on_append),
            create_stream_on_read=bool(args.create_stream_on_read),
        )
    async with make_client(settings) as s2:
        info = await s2.create_basin(args.basin, config)
    if settings.json:
        print_json({**_info(info), "state": info.state.value})
    else:
        print_line(f"created basin {info.name}")
    return 0


async def delete_basin(args: argparse.Namespace, settings: Settings) -> int:
    """``delete-basin``."""
    async with make_client(settings) as s2:
        await s2.delete_basin(args.basin)
    if settings.json:
        print_json({"basin": args.basin, "state": "deleting"})
    else:
        print_line(f"deleting basin {args.basin}")
    return 0


async def get_basin_config(args: argparse.Namespace, settings: Settings) -> int:
    """``get-basin-config``."""
    async with make_client(settings) as s2:
        config = await s2.get_basin_config(args.basin)
    _print_config(config, settings.json)
    return 0


async def reconfigure_basin(args: argparse.Namespace, settings: Settings) -> int:
    """``reconfigure-basin``."""
    default: Any = stream_reconfiguration_from(args)
    changes = BasinReconfiguration(
        default_stream_config=UNSET if default is None else default,
        stream_cipher=_keep(args.stream_cipher and EncryptionAlgorithm(args.stream_cipher)),
        create_stream_on_append=_keep(args.create_stream_on_append),
        create_stream_on_read=_keep(args.create_stream_on_read),
    )
    if changes == BasinReconfiguration():
        raise CliUsageError("nothing to change: give at least one configuration flag")
    async with make_client(settings) as s2:
        config = await s2.reconfigure_basin(args.basin, changes)
    _print_config(config, settings.json)
    return 0


# --- streams ------------------------------------------------------------------------------------


async def _list_streams(
    s2: S2, basin: str, prefix: str, start_after: str, limit: int | None, js: bool
) -> int:
    b = s2.basin(basin)

    async def pages(start_after: str) -> Any:
        return await b.list_streams(prefix=prefix, start_after=start_after)

    streams = await _collect(pages, start_after, limit)
    if not streams:
        # A basin that does not exist lists as empty on some servers (lite): ask for it, so a
        # typo fails (basin_not_found) instead of printing an empty table.
        await s2.get_basin_config(basin)
    if js:
        print_json([_info(s) for s in streams])
    else:
        rows = [
            [
                f"s2://{basin}/{s.name}",
                "deleting" if s.deleted_at else "active",
                _when(s.created_at),
            ]
            for s in streams
        ]
        print_table(["URI", "STATE", "CREATED"], rows)
    return 0


async def list_streams(args: argparse.Namespace, settings: Settings) -> int:
    """``list-streams``."""
    basin, prefix = args.basin
    prefix = args.prefix if args.prefix is not None else prefix
    async with make_client(settings) as s2:
        return await _list_streams(s2, basin, prefix, args.start_after, args.limit, settings.json)


async def ls(args: argparse.Namespace, settings: Settings) -> int:
    """``ls``: basins, or the streams of ``s2://BASIN[/PREFIX]``."""
    async with make_client(settings) as s2:
        if args.uri is None:
            return await _list_basins(s2, "", "", args.limit, settings.json)
        basin, prefix = args.uri
        return await _list_streams(s2, basin, prefix, "", args.limit, settings.json)


async def create_stream(args: argparse.Namespace, settings: Settings) -> int:
    """``create-stream``."""
    async with make_client(settings) as s2:
        info = await s2.basin(args.uri.basin).create_stream(
            args.uri.stream, stream_config_from(args)
        )
    if settings.json:
        print_json(info)
    else:
        print_line(f"created stream {args.uri}")
    return 0


async def delete_stream(args: argparse.Namespace, settings: Settings) -> int:
    """``delete-stream``."""
    async with make_client(settings) as s2:
        await s2.basin(args.uri.basin).delete_stream(args.uri.stream)
    if settings.json:
        print_json({"basin": args.uri.basin, "stream": args.uri.stream, "state": "deleting"})
    else:
        print_line(f"deleting stream {args.uri}")
    return 0


async def get_stream_config(args: argparse.Namespace, settings: Settings) -> int:
    """``get-stream-config``."""
    async with make_client(settings) as s2:
        config = await s2.basin(args.uri.basin).get_stream_config(args.uri.stream)
    _print_config(config, settings.json)
    return 0


async def reconfigure_stream(args: argparse.Namespace, settings: Settings) -> int:
    """``reconfigure-stream``."""
    changes = stream_reconfiguration_from(args)
    if changes is None:
        raise CliUsageError("nothing to change: give at least one configuration flag")
    async with make_client(settings) as s2:
        config = await s2.basin(args.uri.basin).reconfigure_stream(args.uri.stream, changes)
    _print_config(config, settings.json)
    return 0


def _list_flags(p: argparse.ArgumentParser, prefix: bool = True) -> None:
    if prefix:
        p.add_argument("--prefix", default=None, help="only names starting with this")
    p.add_argument("--start-after", default="", metavar="NAME", help="only names after this")
    p.add_argument("--limit", type=positive_int, metavar="N", help="at most N results")


def add_parsers(cmds: Commands) -> None:
    """Register the basin and stream commands."""
    p = cmds.add("ls", ls, "list basins, or the streams of a basin", "s2kit ls s2://my-basin/logs/")
    p.add_argument("uri", nargs="?", type=basin_prefix_arg, metavar="s2://BASIN[/PREFIX]")
    p.add_argument("--limit", type=positive_int, metavar="N", help="at most N results")

    p = cmds.add("list-basins", list_basins, "list basins", "s2kit list-basins --prefix dev-")
    _list_flags(p)
    p.set_defaults(prefix="")
    p = cmds.add(
        "create-basin",
        create_basin,
        "create a basin",
        "s2kit create-basin my-basin --create-stream-on-append --storage-class express",
    )
    p.add_argument("basin", type=basin_arg, metavar="BASIN")
    _basin_flags(p)
    p = cmds.add("delete-basin", delete_basin, "delete a basin", "s2kit delete-basin my-basin")
    p.add_argument("basin", type=basin_arg, metavar="BASIN")
    p = cmds.add(
        "get-basin-config",
        get_basin_config,
        "show a basin's configuration",
        "s2kit --json get-basin-config my-basin",
    )
    p.add_argument("basin", type=basin_arg, metavar="BASIN")
    p = cmds.add(
        "reconfigure-basin",
        reconfigure_basin,
        "change a basin's configuration (only the fields given)",
        "s2kit reconfigure-basin my-basin --create-stream-on-read true --retention-policy 7d",
    )
    p.add_argument("basin", type=basin_arg, metavar="BASIN")
    _basin_flags(p)

    p = cmds.add(
        "list-streams",
        list_streams,
        "list the streams of a basin",
        "s2kit list-streams s2://my-basin/logs/",
    )
    p.add_argument("basin", type=basin_prefix_arg, metavar="s2://BASIN[/PREFIX]")
    _list_flags(p)
    for name, func, summary, example in (
        (
            "create-stream",
            create_stream,
            "create a stream",
            "s2kit create-stream s2://my-basin/logs --retention-policy 1d",
        ),
        (
            "delete-stream",
            delete_stream,
            "delete a stream",
            "s2kit delete-stream s2://my-basin/logs",
        ),
        (
            "get-stream-config",
            get_stream_config,
            "show a stream's configuration",
            "s2kit get-stream-config s2://my-basin/logs",
        ),
        (
            "reconfigure-stream",
            reconfigure_stream,
            "change a stream's configuration (only the fields given)",
            "s2kit reconfigure-stream s2://my-basin/logs --timestamping-mode arrival",
        ),
    ):
        p = cmds.add(name, func, summary, example)
        p.add_argument("uri", type=stream_arg, metavar="s2://BASIN/STREAM")
        if name in ("create-stream", "reconfigure-stream"):
            _stream_config_flags(p, "stream configuration")
