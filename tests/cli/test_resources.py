"""``s2kit`` basin and stream commands against lite: human and JSON output, errors, exit codes."""

from __future__ import annotations

import time

from .conftest import Cli, unique_basin


def _wait_gone(cli: Cli, *argv: str, name: str) -> None:
    deadline = time.monotonic() + 10
    while name in cli.ok(*argv).out:
        assert time.monotonic() < deadline, f"{name} still listed"
        time.sleep(0.05)


def test_basin_lifecycle_human(cli: Cli) -> None:
    name = unique_basin()
    created = cli.ok("create-basin", name)
    assert created.out == f"created basin {name}\n"
    assert created.err == ""

    listing = cli.ok("list-basins", "--prefix", name)
    assert listing.lines[0].split() == ["NAME", "STATE", "CREATED"]
    assert listing.lines[1].split()[:2] == [name, "active"]
    assert len(listing.lines) == 2

    # `s2://BASIN` is accepted wherever a basin is.
    deleted = cli.ok("delete-basin", f"s2://{name}")
    assert deleted.out == f"deleting basin {name}\n"
    _wait_gone(cli, "list-basins", "--prefix", name, name=name)


def test_basin_lifecycle_json(cli: Cli) -> None:
    name = unique_basin()
    info = cli.ok("--json", "create-basin", name).json
    assert info["name"] == name
    assert info["state"] == "active"
    assert info["deleted_at"] is None
    listed = cli.ok("list-basins", "--prefix", name, "--json").json
    assert [b["name"] for b in listed] == [name]
    assert cli.ok("delete-basin", name, "--json").json == {"basin": name, "state": "deleting"}


def test_list_basins_paginates_with_start_after_and_limit(cli: Cli) -> None:
    prefix = unique_basin("page")
    names = [f"{prefix}-{i}" for i in range(4)]
    for n in names:
        cli.ok("create-basin", n)
    everything = cli.ok("--json", "list-basins", "--prefix", prefix).json
    assert [b["name"] for b in everything] == names
    after = cli.ok("--json", "list-basins", "--prefix", prefix, "--start-after", names[0]).json
    assert [b["name"] for b in after] == names[1:]
    limited = cli.ok("--json", "list-basins", "--prefix", prefix, "--limit", "2").json
    assert [b["name"] for b in limited] == names[:2]


def test_basin_config_get_and_reconfigure(cli: Cli) -> None:
    name = unique_basin()
    cli.ok(
        "create-basin", name,
        "--create-stream-on-read", "true",
        "--storage-class", "standard",
        "--retention-policy", "1d",
    )  # fmt: skip
    config = cli.ok("--json", "get-basin-config", name).json
    assert config["create_stream_on_read"] is True
    assert config["create_stream_on_append"] is False
    assert config["default_stream_config"]["storage_class"] == "standard"
    assert config["default_stream_config"]["retention_policy"] == 86400

    human = cli.ok("get-basin-config", name)
    assert "create_stream_on_read                           true" in human.out or any(
        line.split() == ["create_stream_on_read", "true"] for line in human.lines
    )
    # People see durations as the flags take them; JSON keeps the API's seconds.
    assert any(
        line.split() == ["default_stream_config.retention_policy", "1d"] for line in human.lines
    )

    changed = cli.ok(
        "--json", "reconfigure-basin", name,
        "--create-stream-on-append", "yes",
        "--timestamping-mode", "arrival",
    ).json  # fmt: skip
    assert changed["create_stream_on_append"] is True
    assert changed["create_stream_on_read"] is True  # untouched
    assert changed["default_stream_config"]["timestamping"]["mode"] == "arrival"
    assert changed["default_stream_config"]["retention_policy"] == 86400  # untouched
    assert cli.ok("--json", "get-basin-config", name).json == changed


def test_stream_lifecycle(cli: Cli, basin: str) -> None:
    uri = f"s2://{basin}/logs/app-1"
    assert cli.ok("create-stream", uri).out == f"created stream {uri}\n"
    info = cli.ok("--json", "create-stream", f"s2://{basin}/logs/app-2").json
    assert info["name"] == "logs/app-2"

    listing = cli.ok("list-streams", f"s2://{basin}/logs/")
    assert [line.split()[0] for line in listing.lines[1:]] == [uri, f"s2://{basin}/logs/app-2"]
    # The prefix may also be a flag, and `ls` lists streams given a basin URI.
    only = cli.ok("--json", "list-streams", basin, "--prefix", "logs/app-2").json
    assert [s["name"] for s in only] == ["logs/app-2"]
    ls = cli.ok("ls", f"s2://{basin}/logs/app-1")
    assert [line.split()[0] for line in ls.lines[1:]] == [uri]
    assert cli.ok("--json", "list-streams", basin, "--limit", "1").json[0]["name"] == "logs/app-1"

    assert cli.ok("delete-stream", uri).out == f"deleting stream {uri}\n"
    deadline = time.monotonic() + 10
    while "app-1" in cli.ok("list-streams", f"s2://{basin}/logs/").out:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_ls_without_argument_lists_basins(cli: Cli, basin: str) -> None:
    listing = cli.ok("--json", "ls").json
    assert basin in [b["name"] for b in listing]


def test_stream_config_get_and_reconfigure(cli: Cli, basin: str) -> None:
    uri = f"s2://{basin}/configured"
    cli.ok(
        "create-stream", uri,
        "--storage-class", "express",
        "--retention-policy", "infinite",
        "--timestamping-mode", "client-require",
        "--timestamping-uncapped", "true",
        "--delete-on-empty-min-age", "1h",
    )  # fmt: skip
    config = cli.ok("get-stream-config", uri, "--json").json
    assert config == {
        "storage_class": "express",
        "retention_policy": "infinite",
        "timestamping": {"mode": "client-require", "uncapped": True},
        "delete_on_empty_min_age_secs": 3600,
    }
    human = cli.ok("get-stream-config", uri)
    assert [line.split() for line in human.lines] == [
        ["storage_class", "express"],
        ["retention_policy", "infinite"],
        ["timestamping.mode", "client-require"],
        ["timestamping.uncapped", "true"],
        ["delete_on_empty_min_age", "1h"],
    ]
    changed = cli.ok(
        "--json", "reconfigure-stream", uri, "--retention-policy", "2h",
        "--timestamping-uncapped", "false",
    ).json  # fmt: skip
    assert changed["retention_policy"] == 7200
    assert changed["timestamping"] == {"mode": "client-require", "uncapped": False}
    assert changed["storage_class"] == "express"
    # What get-stream-config prints, the flags take back.
    cli.ok("reconfigure-stream", uri, "--retention-policy", "7d", "--delete-on-empty-min-age", "0")
    cli.ok("reconfigure-stream", uri, "--timestamping-uncapped")  # a bare flag means true
    assert [line.split() for line in cli.ok("get-stream-config", uri).lines][1:] == [
        ["retention_policy", "7d"],
        ["timestamping.mode", "client-require"],
        ["timestamping.uncapped", "true"],
        ["delete_on_empty_min_age", "0s"],
    ]


def test_unknown_basin_is_a_server_error(cli: Cli) -> None:
    # Lite lists an unknown basin's streams as an empty page, as s2-lite does; the CLI then
    # asks for the basin, so a typo is an error rather than an empty table.
    for argv in (
        ["ls", "s2://no-such-basin-x"],
        ["list-streams", "s2://no-such-basin-x/prefix"],
        ["get-basin-config", "no-such-basin-x"],
        ["delete-basin", "no-such-basin-x"],
        ["create-stream", "s2://no-such-basin-x/s"],
        ["check-tail", "s2://no-such-basin-x/s"],
        ["read", "s2://no-such-basin-x/s"],
    ):
        r = cli(*argv)
        assert r.code == 1, argv
        assert r.out == ""
        assert r.err == (
            f"s2kit {argv[0]}: error: basin `no-such-basin-x` not found "
            "[basin_not_found, HTTP 404]\n"
        )


def test_unknown_stream_and_duplicates(cli: Cli, basin: str) -> None:
    r = cli("get-stream-config", f"s2://{basin}/missing")
    assert r.code == 1
    assert "stream_not_found" in r.err
    assert r.err.count("\n") == 1
    cli.ok("create-stream", f"s2://{basin}/twice")
    r = cli("create-stream", f"s2://{basin}/twice")
    assert r.code == 1
    assert r.err.startswith("s2kit create-stream: error: ")
    assert "[resource_already_exists, HTTP 409]" in r.err
    r = cli("create-basin", basin)
    assert r.code == 1
    assert "resource_already_exists" in r.err


def test_bad_names_uris_and_flags_are_usage_errors(cli: Cli) -> None:
    cases = {
        ("create-basin", "Bad_Name"): "invalid basin name 'Bad_Name'",
        ("create-basin", "short"): "invalid basin name 'short'",
        ("get-basin-config", "s2://cli-basin-x/stream"): "expected a basin, got the stream URI",
        ("create-stream", "cli-basin-x/stream"): "malformed URI 'cli-basin-x/stream'",
        ("create-stream", "s2://cli-basin-x"): "the stream name is missing",
        ("create-stream", "http://cli-basin-x/s"): "malformed URI 'http://cli-basin-x/s'",
        ("create-stream", "s2:/cli-basin-x/s"): "malformed URI 's2:/cli-basin-x/s'",
        ("create-stream", "s2:///s"): "the basin is missing",
        ("create-basin", "cli-basin-x", "--storage-class", "gold"): "invalid storage class",
        ("create-basin", "cli-basin-x", "--retention-policy", "soon"): "invalid duration 'soon'",
        ("create-basin", "cli-basin-x", "--create-stream-on-read", "maybe"): "expected true or",
        ("list-basins", "--limit", "-3"): "expected a non-negative integer",
        ("list-basins", "--frobnicate"): "unrecognized arguments: --frobnicate",
        ("create-basin",): "the following arguments are required: BASIN",
    }
    for argv, message in cases.items():
        r = cli(*argv)
        assert r.code == 2, argv
        assert message in r.err, (argv, r.err)
        assert r.err.count("\n") == 1, r.err  # one line, no usage dump
        assert r.err.startswith(f"s2kit {argv[0]}: error: ")


def test_reconfigure_without_changes_is_a_usage_error(cli: Cli, basin: str) -> None:
    r = cli("reconfigure-basin", basin)
    assert (r.code, r.err) == (
        2,
        "s2kit reconfigure-basin: error: nothing to change: give at least one configuration flag\n",
    )
    r = cli("reconfigure-stream", f"s2://{basin}/s")
    assert r.code == 2
    assert "nothing to change" in r.err
