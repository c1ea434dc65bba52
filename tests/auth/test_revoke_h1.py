"""Revocation ends a token's running requests over HTTP/1.1 too (docs/auth.md, "Revocation
and expiry"): an SSE read session is cut (the client sees the body fail, not end), and a unary
read waiting for records is answered 401 ``authn`` at once rather than when its wait ends."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from .conftest import ROOT, error_of, http, unique

if TYPE_CHECKING:
    from collections.abc import Iterator

    from s2kit.server import LiteThread

WAIT = 20
"""Seconds the reads would wait for records: far more than the tests may take."""


def _reader(url: str, root: httpx.Client) -> tuple[httpx.Client, str]:
    """A client holding a fresh read-only token, its ``s2-basin`` set to a fresh basin with
    stream ``s``; and the token's id."""
    basin, token_id = unique("basin"), unique("tok")
    assert root.post("/v1/basins", json={"basin": basin}).status_code == 201
    created = root.post("/v1/streams", json={"stream": "s"}, headers={"s2-basin": basin})
    assert created.status_code == 201
    scope = {
        "basins": {"exact": basin},
        "streams": {"prefix": ""},
        "op_groups": {"stream": {"read": True}},
    }
    issued = root.post("/v1/access-tokens", json={"id": token_id, "scope": scope})
    assert issued.status_code == 201
    client = http(url, issued.json()["access_token"])
    client.headers["s2-basin"] = basin
    client.timeout = httpx.Timeout(WAIT + 10)
    return client, token_id


@pytest.fixture
def root(auth_lite: LiteThread) -> Iterator[httpx.Client]:
    with http(auth_lite.url, ROOT) as client:
        yield client


def _revoke_soon(root: httpx.Client, token_id: str, delay: float) -> threading.Thread:
    def revoke() -> None:
        time.sleep(delay)
        assert root.delete(f"/v1/access-tokens/{token_id}").status_code == 204

    thread = threading.Thread(target=revoke)
    thread.start()
    return thread


def test_revocation_cuts_an_sse_session(auth_lite: LiteThread, root: httpx.Client) -> None:
    client, token_id = _reader(auth_lite.url, root)
    started = time.monotonic()
    with client:
        headers = {"accept": "text/event-stream"}
        params = {"seq_num": 0, "wait": WAIT}
        with client.stream("GET", "/v1/streams/s/records", params=params, headers=headers) as resp:
            assert resp.status_code == 200
            thread = _revoke_soon(root, token_id, 0.1)  # the session runs already
            with pytest.raises(httpx.RemoteProtocolError):
                for _ in resp.iter_lines():
                    pass
        thread.join()
        assert time.monotonic() - started < WAIT / 2
        assert error_of(client.get("/v1/streams/s/records/tail")) == (401, "authn")


def test_revocation_answers_a_waiting_unary_read(auth_lite: LiteThread, root: httpx.Client) -> None:
    client, token_id = _reader(auth_lite.url, root)
    started = time.monotonic()
    with client:
        # A second is ample for the request to arrive and start waiting, even on a busy box.
        thread = _revoke_soon(root, token_id, 1.0)
        resp = client.get("/v1/streams/s/records", params={"seq_num": 0, "wait": WAIT})
        thread.join()
    assert time.monotonic() - started < WAIT / 2
    assert error_of(resp) == (401, "authn")
    assert resp.json()["message"] == f"access token `{token_id}` was revoked"
