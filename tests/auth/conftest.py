"""Fixtures for the access-control tests: one lite with ``--auth`` per module, in a background
thread (so sync and async tests share it), and clients holding a given token."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import s2kit
from s2kit.server import LiteConfig, LiteThread

ROOT = "root-token-of-the-auth-tests-0123"
"""The root token every module's lite runs with."""

_names = itertools.count()


def unique(prefix: str = "auth") -> str:
    """A name (valid as a basin, a stream or a token id) not used before in this process."""
    return f"{prefix}-{next(_names):06d}"


def auth_config(**overrides: Any) -> LiteConfig:
    """Quick test settings with access control on."""
    base: dict[str, Any] = {
        "auth": True,
        "root_token": ROOT,
        "background_interval": 0.05,
        "deletion_grace": 0.2,
        "shutdown_grace": 2.0,
    }
    base.update(overrides)
    return LiteConfig(**base)


@pytest.fixture(scope="module")
def auth_lite() -> Iterator[LiteThread]:
    """One lite with ``--auth`` for the module."""
    with LiteThread(auth_config()) as lite:
        yield lite


@pytest.fixture
def url(auth_lite: LiteThread) -> str:
    return auth_lite.url


def sdk(url: str, token: str, **options: Any) -> s2kit.S2:
    """s2kit's client for ``url`` holding ``token``."""
    return s2kit.S2(token, endpoints=s2kit.Endpoints.for_url(url), **options)


def http(url: str, token: str | None = None) -> httpx.Client:
    """A plain HTTP/1.1 client for ``url`` sending ``token`` as a bearer token."""
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    return httpx.Client(base_url=url, headers=headers, timeout=10.0)


def error_of(resp: httpx.Response) -> tuple[int, str]:
    """(status, S2 error code) of an error response."""
    body = resp.json()
    assert set(body) == {"code", "message"}, body
    assert resp.headers["content-type"] == "application/json"
    return resp.status_code, body["code"]
