"""Base64 in S2's JSON: exactly the canonical encodings are accepted.

The rule is in docs/protocol.md#json-encoding-of-bytes.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s2kit.wire._json import JsonInvalid, _decode_bytes, _encode_bytes

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def _canonical(text: str) -> bytes | None:
    """The reference: decodable, and what re-encoding the result gives back."""
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return data if base64.b64encode(data).decode() == text else None


@given(st.text(alphabet=ALPHABET + " -_\né", max_size=14))
def test_accepts_exactly_the_canonical_encodings(text: str) -> None:
    expected = _canonical(text)
    if expected is None:
        with pytest.raises(JsonInvalid):
            _decode_bytes(text, "body", "base64")
    else:
        assert _decode_bytes(text, "body", "base64") == expected


@given(st.binary(max_size=300))
def test_round_trip(data: bytes) -> None:
    assert _decode_bytes(_encode_bytes(data, "base64"), "body", "base64") == data


@pytest.mark.parametrize("text", ["YWJj=", "YWJj==", "YR==", "YWJ=", "YQ=", "=YWJ", "YW Jj"])
def test_non_canonical_is_invalid(text: str) -> None:
    with pytest.raises(JsonInvalid):
        _decode_bytes(text, "body", "base64")
