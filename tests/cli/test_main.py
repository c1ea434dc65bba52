"""The ``s2kit`` entry point: help, configuration from the environment and flags, exit codes."""

from __future__ import annotations

import re
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from s2kit.testing import LiteEndpoint

    from .conftest import Cli


def test_help_documents_exit_codes_environment_and_examples(cli: Cli) -> None:
    r = cli("--help")
    assert r.code == 0
    for text in (
        "exit codes:",
        "0  success",
        "1  the server or the network failed",
        "2  usage error",
        "3  bench: verification failed",
        "S2_ACCESS_TOKEN",
        "S2_ACCOUNT_ENDPOINT",
        "S2_BASIN_ENDPOINT",
        "s2://BASIN/STREAM",
        "--json",
        "examples:",
        "s2kit tail -f s2://my-basin/greetings",
    ):
        assert text in r.out, text
    for command in (
        "ls", "list-basins", "create-basin", "delete-basin", "get-basin-config",
        "reconfigure-basin", "list-streams", "create-stream", "delete-stream",
        "get-stream-config", "reconfigure-stream", "append", "read", "tail", "check-tail",
        "fence", "trim", "issue-access-token", "list-access-tokens", "revoke-access-token",
        "bench", "config", "lite",
    ):  # fmt: skip
        assert f"\n    {command}" in r.out, command
        sub = cli(command, "--help")
        assert sub.code == 0
        assert re.search(r"examples?:\n  \S", sub.out), command


def test_no_command_prints_help_and_is_a_usage_error(cli: Cli) -> None:
    r = cli()
    assert r.code == 2
    assert r.out == ""
    assert "usage: s2kit" in r.err


def test_unknown_command(cli: Cli) -> None:
    r = cli("frobnicate")
    assert r.code == 2
    assert r.err.startswith("s2kit: error: argument COMMAND: invalid choice: 'frobnicate'")
    assert r.err.count("\n") == 1


def test_global_flags_before_or_after_the_command(cli: Cli, basin: str) -> None:
    before = cli.ok("--json", "list-basins", "--prefix", basin).json
    after = cli.ok("list-basins", "--prefix", basin, "--json").json
    assert before == after
    assert [b["name"] for b in before] == [basin]


def test_missing_access_token(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S2_ACCESS_TOKEN")
    r = cli("list-basins")
    assert r.code == 2
    assert r.err == (
        "s2kit list-basins: error: no access token: set S2_ACCESS_TOKEN, pass --access-token or "
        "run `s2kit config set access_token TOKEN` (lite ignores it: any value will do)\n"
    )
    assert cli("list-basins", "--access-token", "t").code == 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_flags_win_over_the_environment(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, lite_endpoint: LiteEndpoint
) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("S2_ACCOUNT_ENDPOINT", dead)
    monkeypatch.setenv("S2_BASIN_ENDPOINT", dead)
    r = cli("list-basins")
    assert r.code == 1
    assert r.err.startswith(f"s2kit list-basins: error: cannot connect to {dead}")
    assert r.err.endswith("(check --endpoint or S2_ACCOUNT_ENDPOINT / S2_BASIN_ENDPOINT)\n")
    assert r.err.count("\n") == 1
    assert cli("list-basins", "--endpoint", lite_endpoint.url).code == 0
    both = ("--account-endpoint", lite_endpoint.url, "--basin-endpoint", lite_endpoint.url)
    assert cli("list-basins", *both).code == 0


def test_bad_endpoint_and_timeout(cli: Cli) -> None:
    r = cli("list-basins", "--endpoint", "ftp://example.com")
    assert (r.code, r.err) == (
        2,
        "s2kit list-basins: error: account endpoint: expected an http(s) URL, "
        "got 'ftp://example.com'\n",
    )
    r = cli("list-basins", "--request-timeout", "a while")
    assert r.code == 2
    assert "invalid duration 'a while'" in r.err
    assert cli("list-basins", "--request-timeout", "2s").code == 0
    assert cli("list-basins", "--request-timeout", "1500ms").code == 0
