"""pytest plugin: the ``s2kit_lite`` fixture, a fresh in-process lite server per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from s2kit.testing._runner import LiteEndpoint, run_lite


@pytest.fixture
def s2kit_lite() -> Iterator[LiteEndpoint]:
    """A lite server on 127.0.0.1 (a free port) for the test; stopped afterwards."""
    with run_lite() as endpoint:
        yield endpoint
