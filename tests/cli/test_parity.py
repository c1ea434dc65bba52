"""Habits of the official ``s2`` CLI that s2kit keeps: ``--version``, bare boolean flags,
``config set/get/list`` with a file, errors for names that cannot exist, endpoints that cannot
be misread, and output that does not lose bytes."""

from __future__ import annotations

import base64
import json
import os
import stat
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import s2kit
from s2kit.cli._config import format_duration, parse_duration

from .conftest import unique_basin

if TYPE_CHECKING:
    import pytest

    from s2kit.testing import LiteEndpoint

    from .conftest import Cli


def test_version(cli: Cli) -> None:
    r = cli("--version")
    assert (r.code, r.out) == (0, f"s2kit {s2kit.__version__}\n")


def test_boolean_flags_bare_or_with_a_value(cli: Cli) -> None:
    name = unique_basin()
    # `s2 create-basin` takes bare flags; `s2 reconfigure-basin` takes values: both work here.
    cli.ok("create-basin", name, "--create-stream-on-append", "--create-stream-on-read")
    config = cli.ok("--json", "get-basin-config", name).json
    assert (config["create_stream_on_append"], config["create_stream_on_read"]) == (True, True)
    cli.ok("reconfigure-basin", name, "--create-stream-on-read", "false")
    config = cli.ok("--json", "get-basin-config", name).json
    assert (config["create_stream_on_append"], config["create_stream_on_read"]) == (True, False)
    r = cli("create-basin", "--create-stream-on-append", unique_basin())
    assert r.code == 2
    assert "a bare flag means true; put it after the positional arguments" in r.err


def test_durations_print_as_the_flags_take_them() -> None:
    for secs in (0, 1, 59, 60, 90, 3600, 5400, 86400, 604800, 694861):
        text = format_duration(secs)
        assert parse_duration(text) == secs, text
    assert [format_duration(s) for s in (604800, 5400, 0, 0.25)] == ["7d", "1h 30m", "0s", "250ms"]


def test_ls_of_an_empty_basin_is_an_empty_table(cli: Cli, basin: str) -> None:
    assert cli.ok("ls", f"s2://{basin}").lines == ["URI  STATE  CREATED"]
    assert cli.ok("--json", "ls", f"s2://{basin}/no-such-prefix").json == []


def test_json_output_refuses_bytes_it_would_corrupt(cli: Cli, basin: str) -> None:
    uri = f"s2://{basin}/binary"
    text, binary = base64.b64encode(b"fine").decode(), base64.b64encode(b"\xff\xfe").decode()
    lines = f'{{"body": "{text}"}}\n{{"body": "{binary}"}}\n'
    cli.ok("append", uri, "--format", "base64", stdin=lines)
    r = cli("read", uri, "--format", "json")
    assert r.code == 2
    assert [json.loads(line)["body"] for line in r.lines] == ["fine"]  # what came before
    assert r.err == (
        "s2kit read: error: the record at seq_num 1 is not UTF-8 text, which --format json "
        "would corrupt: use --format base64 (binary safe) or text\n"
    )
    read = cli.ok("read", uri, "--format", "base64").lines
    assert [json.loads(line)["body"] for line in read] == [text, binary]


def test_stream_names_are_checked_before_any_request(cli: Cli, basin: str) -> None:
    r = cli("append", f"s2://{basin}/{'n' * 600}", stdin="a\n")
    assert (r.code, r.err) == (
        2,
        "s2kit append: error: argument s2://BASIN/STREAM: stream name too long: 600 bytes, at "
        "most 512 are allowed (see 's2kit append --help')\n",
    )
    assert cli.ok("append", f"s2://{basin}/{'n' * 512}", stdin="a\n").code == 0
    assert cli("create-stream", f"s2://{basin}/..").code == 2


def test_an_endpoint_without_a_scheme(cli: Cli, lite_endpoint: LiteEndpoint) -> None:
    hostport = lite_endpoint.url.removeprefix("http://")
    r = cli("list-basins", "--endpoint", hostport)
    assert (r.code, r.err) == (
        2,
        f"s2kit list-basins: error: account endpoint {hostport!r} has no scheme: write "
        f"http://{hostport} (lite without TLS) or https://{hostport}\n",
    )
    # https to a plain-HTTP server: the hint says so, not "check the endpoint".
    r = cli("list-basins", "--endpoint", f"https://{hostport}")
    assert r.code == 1
    assert r.err.endswith(
        "(the server does not speak TLS there: use http:// for lite started without TLS; an "
        "endpoint without a scheme means https)\n"
    )
    assert r.err.count("does not speak TLS") == 1


def test_one_endpoint_variable_is_enough_for_lite(
    cli: Cli, basin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("S2_BASIN_ENDPOINT")
    assert basin in cli.ok("ls").out  # the basin endpoint follows the account endpoint
    cli.ok("append", f"s2://{basin}/one-variable", stdin="a\n")
    monkeypatch.setenv("S2_BASIN_ENDPOINT", os.environ.pop("S2_ACCOUNT_ENDPOINT"))
    assert cli.ok("check-tail", f"s2://{basin}/one-variable").lines[0] == "next seq_num    1"


def _config_file(tmp_path: Path) -> Path:
    return tmp_path / "config" / "s2kit" / "config.toml"


def test_config_file_set_get_list_unset(
    cli: Cli,
    basin: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lite_endpoint: LiteEndpoint,
) -> None:
    path = _config_file(tmp_path)
    assert cli.ok("config", "path").out == f"{path}\n"
    assert cli.ok("config", "list").out == ""
    r = cli("config", "get", "access_token")
    assert (r.code, r.err) == (1, f"s2kit config: access_token is not set in {path}\n")

    cli.ok("config", "set", "access_token", "from-the-file")
    cli.ok("config", "set", "account_endpoint", lite_endpoint.url + "/")
    assert cli.ok("config", "get", "account_endpoint").out == lite_endpoint.url + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds a token
    assert tomllib.loads(path.read_text()) == {
        "access_token": "from-the-file",
        "account_endpoint": lite_endpoint.url,
    }
    assert cli.ok("config", "list").lines == [
        'access_token = "from-the-file"',
        f'account_endpoint = "{lite_endpoint.url}"',
    ]
    assert cli.ok("config", "list", "--json").json == {
        "access_token": "from-the-file",
        "account_endpoint": lite_endpoint.url,
    }

    # Without the environment, the file is used (the basin endpoint follows the account's).
    for key in ("S2_ACCESS_TOKEN", "S2_ACCOUNT_ENDPOINT", "S2_BASIN_ENDPOINT"):
        monkeypatch.delenv(key)
    assert basin in cli.ok("ls").out
    # The environment wins over the file, and flags win over both.
    monkeypatch.setenv("S2_ACCOUNT_ENDPOINT", "http://127.0.0.1:9")
    assert cli("ls", "--request-timeout", "2s").code == 1
    assert basin in cli.ok("ls", "--account-endpoint", lite_endpoint.url).out

    cli.ok("config", "unset", "access_token")
    assert "access_token" not in path.read_text()
    assert "no access token" in cli("ls").err


def test_config_rejects_unknown_keys_and_bad_values(cli: Cli, tmp_path: Path) -> None:
    r = cli("config", "set", "colour", "blue")
    assert r.code == 2
    assert "unknown key 'colour': choose from access_token, account_endpoint" in r.err
    r = cli("config", "set", "account_endpoint", "localhost:8080")
    assert (r.code, r.err) == (
        2,
        "s2kit config: error: account_endpoint: account endpoint 'localhost:8080' has no "
        "scheme: write http://localhost:8080 (lite without TLS) or https://localhost:8080\n",
    )
    assert cli("config", "set", "ssl_no_verify", "perhaps").code == 2
    assert not _config_file(tmp_path).exists()  # nothing was written

    # A broken file is reported with its path by every command that reads it.
    _config_file(tmp_path).parent.mkdir(parents=True)
    _config_file(tmp_path).write_text("access_token = \n")
    r = cli("ls")
    assert r.code == 2
    assert r.err.startswith(f"s2kit ls: error: cannot read {_config_file(tmp_path)}: ")
