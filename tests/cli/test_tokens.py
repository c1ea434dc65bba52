"""Access-token commands against lite without ``--auth``, which answers ``not_implemented``
(501): the CLI must send the request, report that on one line with exit code 1, and reject bad
flags before sending anything. Against lite with ``--auth``: tests/auth/test_cli.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .conftest import Cli

NOT_IMPLEMENTED = (
    "Not implemented [not_implemented, HTTP 501] (this server does not support the operation; "
    "lite serves access tokens with --auth)\n"
)


def test_issue_list_revoke_report_lite_not_implemented(cli: Cli) -> None:
    for argv in (
        ["issue-access-token", "ci-reader", "--basins", "=my-basin", "--streams", "logs/",
         "--op-groups", "stream=r,basin=rw", "--ops", "append,read",
         "--expires-at", "2030-01-01T00:00:00Z", "--auto-prefix-streams"],
        ["issue-access-token", "plain"],
        ["list-access-tokens", "--prefix", "ci-", "--limit", "5"],
        ["revoke-access-token", "ci-reader"],
    ):  # fmt: skip
        r = cli(*argv)
        assert r.code == 1, argv
        assert r.out == ""
        assert r.err == f"s2kit {argv[0]}: error: {NOT_IMPLEMENTED}"


def test_bad_token_flags_are_usage_errors(cli: Cli) -> None:
    cases = {
        ("issue-access-token", "t", "--ops", "append,fly"): "unknown operation 'fly'",
        ("issue-access-token", "t", "--op-groups", "stream=x"): "invalid operation group",
        ("issue-access-token", "t", "--op-groups", "cluster=r"): "invalid operation group",
        ("issue-access-token", "t", "--expires-at", "tomorrow"): "invalid time 'tomorrow'",
        ("issue-access-token",): "required: ID",
        ("revoke-access-token",): "required: ID",
        ("list-access-tokens", "--limit", "0"): "expected a positive integer",
    }
    for argv, message in cases.items():
        r = cli(*argv)
        assert r.code == 2, argv
        assert message in r.err, r.err
        assert r.err.count("\n") == 1
