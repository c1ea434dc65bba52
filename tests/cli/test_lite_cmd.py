"""``s2kit lite`` as a command: it serves what the other commands talk to, and reports bad
flags and busy ports on one line."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from s2kit.testing import LiteProcess

if TYPE_CHECKING:
    from .conftest import Cli


def test_lite_serves_the_cli(cli: Cli) -> None:
    proc = LiteProcess()
    endpoint = proc.start()
    try:
        assert cli.ok("create-basin", "served-by-lite", "--endpoint", endpoint.url).code == 0
        listed = cli.ok("--json", "list-basins", "--endpoint", endpoint.url).json
        assert [b["name"] for b in listed] == ["served-by-lite"]
    finally:
        assert proc.stop() == 0  # SIGTERM drains and exits cleanly


def test_lite_bad_flags(cli: Cli) -> None:
    r = cli("lite", "--tls-cert", "cert.pem")
    assert (r.code, r.err) == (2, "s2kit lite: --tls-cert and --tls-key go together\n")
    r = cli("lite", "--port", "http")
    assert r.code == 2
    assert "argument --port: invalid int value: 'http'" in r.err
    r = cli("lite", "--tls-self", "--tls-cert", "c.pem")
    assert r.code == 2
    assert "not allowed with argument" in r.err


def test_lite_port_in_use(cli: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = cli("lite", "--port", str(port))
    assert r.code == 1
    assert r.err.startswith(f"s2kit lite: cannot listen on 127.0.0.1:{port}: ")
    assert r.err.count("\n") == 1
