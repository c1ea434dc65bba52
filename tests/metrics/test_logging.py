"""``s2kit lite --log-level / --log-format``: what lite writes to stderr, read from a child
process (``_logging.py``, ``_observe.py``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable

import httpx

SECRET = "a-root-token-nobody-may-see-0123"
GARBAGE = "garbage-token-nobody-may-see-4567"


def run_lite(*args: str, traffic: Callable[[httpx.Client], None]) -> list[str]:
    """Run ``s2kit lite`` with ``args``, send it ``traffic``, stop it; its stderr lines."""
    cmd = [sys.executable, "-m", "s2kit", "lite", "--port", "0", *args]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            if m := re.search(r"serving on (\S+)", line):
                url = m.group(1)
                break
        assert url is not None, "lite did not start"
        with httpx.Client(base_url=url, timeout=10) as c:
            traffic(c)
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return err.splitlines()


def mistakes(c: httpx.Client, headers: dict[str, str] | None = None) -> None:
    """One good request and three client mistakes (400 bad_json, 404, 400 bad_query)."""
    h = headers or {}
    assert c.post("/v1/basins", json={"basin": "log-basin"}, headers=h).status_code == 201
    bad = c.post("/v1/basins", content=b"{nope", headers={**h, "content-type": "application/json"})
    assert bad.status_code == 400
    r = c.get("/v1/streams/x/records", headers={**h, "s2-basin": "log-basin"})
    assert r.status_code == 404
    assert c.get("/v1/basins", params={"limit": "abc"}, headers=h).status_code == 400


def test_json_at_debug_a_line_per_request_and_no_secrets() -> None:
    auth = {"authorization": f"Bearer {SECRET}"}

    def traffic(c: httpx.Client) -> None:
        mistakes(c, auth)
        r = c.get("/v1/basins", headers={"authorization": f"Bearer {GARBAGE}"})
        assert r.status_code == 401

    lines = run_lite(
        "--auth",
        "--root-token",
        SECRET,
        "--log-level",
        "debug",
        "--log-format",
        "json",
        traffic=traffic,
    )
    docs = [json.loads(line) for line in lines]  # every line is one JSON object
    requests = [d for d in docs if d["logger"] == "s2kit.server.requests"]
    assert [(d["method"], d["path"], d["status"], d["level"]) for d in requests] == [
        ("POST", "/v1/basins", 201, "debug"),
        ("POST", "/v1/basins", 400, "info"),
        ("GET", "/v1/streams/x/records", 404, "info"),
        ("GET", "/v1/basins", 400, "info"),
        ("GET", "/v1/basins", 401, "info"),
    ]
    assert [d.get("code") for d in requests] == [
        None,
        "bad_json",
        "stream_not_found",
        "bad_query",
        "authn",
    ]
    assert all(d["op"] and d["duration_ms"] >= 0 and d["time"].endswith("Z") for d in requests)
    text = "\n".join(lines)
    assert SECRET not in text
    assert GARBAGE not in text
    assert "Traceback" not in text
    assert not any("exception" in d for d in docs)


def test_text_at_info_a_line_per_error_without_tracebacks() -> None:
    lines = run_lite(traffic=mistakes)
    requests = [line for line in lines if " s2kit.server.requests: " in line]
    # Successful requests are debug lines: only the three mistakes show, one line each.
    assert len(requests) == 3, lines
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO ", requests[0])
    assert (
        "POST /v1/basins -> 400 bad_json: Failed to parse the request body as JSON" in (requests[0])
    )
    assert "GET /v1/streams/x/records -> 404 stream_not_found" in requests[1]
    assert "GET /v1/basins -> 400 bad_query" in requests[2]
    assert not any("Traceback" in line for line in lines)
    assert not any(" DEBUG " in line for line in lines)
