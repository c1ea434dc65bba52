"""The user's configuration file and ``s2kit config set|get|unset|list|path``.

Like the official ``s2 config``, settings persist in a TOML file of flat ``key = value`` lines
so that the access token and endpoints need not be exported in every shell. The file is
``$XDG_CONFIG_HOME/s2kit/config.toml`` (``~/.config/s2kit/config.toml`` when unset) on Linux
and macOS, ``%APPDATA%\\s2kit\\config.toml`` on Windows: the places the official CLI uses for
its own file. (``platformdirs`` would put it under ``~/Library/Application Support`` on macOS,
where users of the official CLI would not look, so the two rules are written out here.)

Flags win over environment variables, which win over this file, which wins over the defaults.
The file holds a secret (the token), so it is written readable by its owner only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from s2kit import Endpoints
from s2kit.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from s2kit.cli._commands import Commands


class ConfigFileError(Exception):
    """The file cannot be read or a value in it is invalid (exit code 2)."""


def _endpoint(which: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        try:
            ep = Endpoints.derive(**{which: value})
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        return ep.account if which == "account" else ep.basin

    return check


def _bool(value: str) -> str:
    t = value.strip().lower()
    if t in ("true", "yes", "on", "1"):
        return "true"
    if t in ("false", "no", "off", "0"):
        return "false"
    raise ValueError(f"expected true or false, got {value!r}")


def _duration(value: str) -> str:
    from s2kit.cli._config import parse_duration

    try:
        parse_duration(value)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(str(exc)) from None
    return value.strip()


def _token(value: str) -> str:
    if not value.strip():
        raise ValueError("the access token must not be empty")
    return value.strip()


@dataclass(frozen=True, slots=True)
class _Key:
    check: Callable[[str], str]
    env: str
    help: str


KEYS: dict[str, _Key] = {
    "access_token": _Key(_token, "S2_ACCESS_TOKEN", "access token (--access-token)"),
    "account_endpoint": _Key(
        _endpoint("account"), "S2_ACCOUNT_ENDPOINT", "account endpoint (--account-endpoint)"
    ),
    "basin_endpoint": _Key(
        _endpoint("basin"), "S2_BASIN_ENDPOINT", "basin endpoint (--basin-endpoint)"
    ),
    "ssl_no_verify": _Key(_bool, "S2_SSL_NO_VERIFY", "true: skip TLS checks (--insecure)"),
    "request_timeout": _Key(_duration, "", "per-request timeout, e.g. 30s (--request-timeout)"),
}
"""The keys ``s2kit config`` knows: official ``s2`` names where the official CLI has one."""


def _user_dir(xdg: str, fallback: str, windows: str) -> Path:
    if sys.platform == "win32" and os.environ.get(windows):
        return Path(os.environ[windows]) / "s2kit"
    base = os.environ.get(xdg) or ""
    # The XDG rule: a relative path in the variable is invalid and is ignored.
    return (Path(base) if os.path.isabs(base) else Path.home() / fallback) / "s2kit"


def config_path() -> Path:
    """Where the configuration file is (it may not exist)."""
    return _user_dir("XDG_CONFIG_HOME", ".config", "APPDATA") / "config.toml"


def cache_dir() -> Path:
    """s2kit's directory for files it can recreate (``$XDG_CACHE_HOME/s2kit``); not created."""
    return _user_dir("XDG_CACHE_HOME", ".cache", "LOCALAPPDATA")


def load() -> dict[str, str]:
    """The settings in the file; empty when there is no file.

    Raises:
        ConfigFileError: the file is not TOML, or holds an unknown key or a bad value.
    """
    path = config_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigFileError(f"cannot read {path}: {exc}") from None
    out: dict[str, str] = {}
    for key, value in data.items():
        if key not in KEYS:
            raise ConfigFileError(f"{path}: unknown key {key!r} (known: {', '.join(KEYS)})")
        text = str(value).lower() if isinstance(value, bool) else value
        if not isinstance(text, str):
            raise ConfigFileError(f"{path}: {key} must be a string")
        try:
            out[key] = KEYS[key].check(text)
        except ValueError as exc:
            raise ConfigFileError(f"{path}: {key}: {exc}") from None
    return out


def _toml_value(key: str, value: str) -> str:
    if key == "ssl_no_verify":
        return value
    # A JSON string without ASCII escaping is a valid TOML basic string: both escape only
    # quotes, backslashes and control characters, with the same \uXXXX and \n-style forms.
    return json.dumps(value, ensure_ascii=False)


def save(values: dict[str, str]) -> Path:
    """Write ``values`` as the whole file, readable by its owner only; returns the path."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{k} = {_toml_value(k, v)}\n" for k, v in sorted(values.items()))
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)  # readers see the old file or the new one, never half of it
    return path


# --- the command --------------------------------------------------------------------------------


def _key(text: str) -> str:
    if text not in KEYS:
        raise argparse.ArgumentTypeError(f"unknown key {text!r}: choose from {', '.join(KEYS)}")
    return text


def run(args: argparse.Namespace) -> int:
    """Run ``s2kit config ACTION``; returns the exit code."""
    action = args.config_action or "list"
    try:
        values = load()
        if action == "set":
            try:
                values[args.key] = KEYS[args.key].check(args.value)
            except ValueError as exc:
                raise ConfigFileError(f"{args.key}: {exc}") from None
            path = save(values)
            sys.stderr.write(f"s2kit config: set {args.key} in {path}\n")
        elif action == "unset":
            if values.pop(args.key, None) is not None:
                save(values)
        elif action == "get":
            if args.key not in values:
                sys.stderr.write(f"s2kit config: {args.key} is not set in {config_path()}\n")
                return 1
            sys.stdout.write(values[args.key] + "\n")
        elif action == "path":
            sys.stdout.write(f"{config_path()}\n")
        elif getattr(args, "json", False):
            sys.stdout.write(json.dumps(values, sort_keys=True) + "\n")
        else:
            for k, v in sorted(values.items()):
                sys.stdout.write(f"{k} = {_toml_value(k, v)}\n")
    except (ConfigFileError, OSError) as exc:
        sys.stderr.write(f"s2kit config: error: {exc}\n")
        return 2 if isinstance(exc, ConfigFileError) else 1
    return 0


def add_parser(cmds: Commands) -> None:
    """Register ``config`` and its actions."""
    keys = "\n".join(f"  {k:<17} {v.help}" for k, v in KEYS.items())
    p = cmds.add_group(
        "config",
        "keep the access token and endpoints in a configuration file",
        "s2kit config set access_token MY_TOKEN\n"
        "s2kit config set account_endpoint http://localhost:8080\n"
        "s2kit config list",
        details=(
            f"keys:\n{keys}\n\nThe file is $XDG_CONFIG_HOME/s2kit/config.toml (default "
            "~/.config/s2kit/config.toml;\n%APPDATA%\\s2kit\\config.toml on Windows). Flags and "
            "S2_* environment variables\nwin over it. With only one endpoint set, the other "
            "follows it (or is the S2 cloud's)."
        ),
    )
    actions = p.add_subparsers(dest="config_action", metavar="ACTION")
    s = actions.add_parser("set", help="set a key", description="Set a key in the file.")
    s.add_argument("key", type=_key, metavar="KEY")
    s.add_argument("value", metavar="VALUE")
    g = actions.add_parser("get", help="print a key's value", description="Print a key's value.")
    g.add_argument("key", type=_key, metavar="KEY")
    u = actions.add_parser("unset", help="remove a key", description="Remove a key.")
    u.add_argument("key", type=_key, metavar="KEY")
    ls = actions.add_parser("list", help="print every key that is set (default)")
    ls.add_argument("--json", action="store_true", help="as one JSON object")
    actions.add_parser("path", help="print where the file is")
