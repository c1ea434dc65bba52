"""The CLI with access tokens: ``s2kit lite --auth`` and its root token (generated, from
``S2KIT_ROOT_TOKEN``, from ``--root-token``), and the token commands against it, as human
tables and as ``--json`` (docs/auth.md)."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import httpx
import pytest

from cli._runner import Cli as _Cli
from cli._runner import Result, isolate
from s2kit.testing import LiteProcess

from .conftest import ROOT, unique

if TYPE_CHECKING:
    from pathlib import Path

    from s2kit.server import LiteThread

ENDPOINT_VARIABLES = ("S2_ACCOUNT_ENDPOINT", "S2_BASIN_ENDPOINT")


class Cli(_Cli):
    """The CLI with ``S2_ACCESS_TOKEN`` set to a token (the root token unless told)."""

    def __call__(  # type: ignore[override]
        self, *argv: str, token: str = ROOT
    ) -> Result:
        return super().__call__(*argv, env={"S2_ACCESS_TOKEN": token})


@pytest.fixture
def cli(
    auth_lite: LiteThread,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Cli:
    isolate(monkeypatch, tmp_path, dict.fromkeys(ENDPOINT_VARIABLES, auth_lite.url))
    return Cli(capsysbinary, monkeypatch)


def test_issue_list_revoke_as_tables(cli: Cli) -> None:
    group = unique("cli")
    basin = f"{group}-basin"
    assert cli("create-basin", basin).code == 0
    issued = cli(
        "issue-access-token", f"{group}-reader", "--basins", f"={basin}", "--streams", "logs/",
        "--op-groups", "stream=r,basin=rw", "--ops", "append",
        "--expires-at", "2030-01-01T00:00:00Z", "--auto-prefix-streams",
    )  # fmt: skip
    assert issued.code == 0, issued
    secret = issued.out.strip()
    assert secret.startswith("s2kit_")
    assert issued.out == secret + "\n"
    assert cli("issue-access-token", f"{group}-lister", "--ops", "list-basins").code == 0

    listed = cli("list-access-tokens", "--prefix", f"{group}-")
    assert listed.code == 0, listed
    w = len(f"{group}-reader")
    assert listed.out.splitlines() == [
        f"{'ID':{w}}  EXPIRES               AUTO-PREFIX  SCOPE",
        f"{group}-lister  -                     no           ops=list-basins",
        f"{group}-reader  2030-01-01T00:00:00Z  yes          basins={basin} streams=logs/* "
        "basin:rw stream:r ops=append",
    ]
    # The issued secret works for what it allows, and the CLI reports what it does not.
    assert cli("create-stream", f"s2://{basin}/a", token=secret).code == 0
    denied = cli("list-basins", token=secret)
    assert denied.code == 1
    assert denied.err == (
        "s2kit list-basins: error: the access token does not permit operation `list-basins` "
        "[permission_denied, HTTP 403]\n"
    )

    revoked = cli("revoke-access-token", f"{group}-reader")
    assert (revoked.code, revoked.out) == (0, f"revoked access token {group}-reader\n")
    gone = cli("list-streams", f"s2://{basin}", token=secret)
    assert gone.code == 1
    assert "[authn, HTTP 401]" in gone.err
    again = cli("revoke-access-token", f"{group}-reader")
    assert again.code == 1
    assert again.err == (
        f"s2kit revoke-access-token: error: access token `{group}-reader` not found "
        "[access_token_not_found, HTTP 404]\n"
    )


def test_issue_list_revoke_as_json(cli: Cli) -> None:
    group = unique("cli")
    issued = cli("--json", "issue-access-token", f"{group}-a", "--ops", "read,list-streams")
    assert issued.code == 0, issued
    assert set(issued.json) == {"id", "access_token"}
    assert issued.json["id"] == f"{group}-a"
    listed = cli("--json", "list-access-tokens", "--prefix", f"{group}-")
    assert listed.code == 0, listed
    assert listed.json == [
        {
            "id": f"{group}-a",
            "expires_at": None,
            "auto_prefix_streams": False,
            "scope": {
                "basins": None,
                "streams": None,
                "access_tokens": None,
                "op_groups": {
                    "account": {"read": False, "write": False},
                    "basin": {"read": False, "write": False},
                    "stream": {"read": False, "write": False},
                },
                "ops": ["list-streams", "read"],
            },
        }
    ]
    revoked = cli("--json", "revoke-access-token", f"{group}-a")
    assert (revoked.code, revoked.json) == (0, {"id": f"{group}-a", "revoked": True})
    assert cli("--json", "list-access-tokens", "--prefix", f"{group}-").json == []
    refused = cli("--json", "issue-access-token", f"{group}-b")  # no operation at all
    assert refused.code == 1
    assert "[invalid, HTTP 422]" in refused.err


def _works(url: str, token: str) -> int:
    headers = {"authorization": f"Bearer {token}"}
    return httpx.get(f"{url}/v1/basins", headers=headers, timeout=10).status_code


def test_lite_auth_prints_a_generated_root_token() -> None:
    with LiteProcess("--auth") as lite:
        token = lite.env["S2_ACCESS_TOKEN"]
        assert token.startswith("s2kit_")
        assert _works(lite.url, token) == 200
        assert _works(lite.url, "ignored") == 401
        assert httpx.get(f"{lite.url}/health", timeout=10).status_code == 200


def test_lite_auth_takes_the_root_token_from_env_or_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S2KIT_ROOT_TOKEN", ROOT)
    with LiteProcess("--auth") as lite:
        assert lite.env["S2_ACCESS_TOKEN"] == ROOT
        assert _works(lite.url, ROOT) == 200
    monkeypatch.delenv("S2KIT_ROOT_TOKEN")
    given = "another-root-token-of-16+"
    with LiteProcess("--auth", "--root-token", given) as lite:
        assert lite.env["S2_ACCESS_TOKEN"] == given
        assert _works(lite.url, given) == 200
        assert _works(lite.url, ROOT) == 401


def test_lite_start_up_lines() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "s2kit", "lite", "--auth", "--port", "0", "--root-token", ROOT],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
    finally:
        proc.terminate()
        proc.wait(15)
        if proc.stdout is not None:
            proc.stdout.close()
    assert lines[4] == "  # and S2_ACCESS_TOKEN: the root token given with --root-token\n"
    assert not any(ROOT in line for line in lines)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--root-token", ROOT], "s2kit lite: --root-token needs --auth\n"),
        (
            ["--auth", "--root-token", "short"],
            "s2kit lite: the root token must be at least 16 characters long "
            "(--root-token / S2KIT_ROOT_TOKEN)\n",
        ),
    ],
)
def test_lite_refuses_bad_root_token_flags(argv: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "s2kit", "lite", "--port", "0", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", message)
