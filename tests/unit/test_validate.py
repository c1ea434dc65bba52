"""Batch validation (docs/protocol.md#append-validation): a batch of bodies alone, checked by
``validate_plain_input``, gets exactly the sizes and errors the general check gives it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from s2kit.types import AppendInput, Record
from s2kit.wire._pbdec import PlainInput
from s2kit.wire._validate import (
    MAX_BATCH_BYTES,
    InvalidBatch,
    validate_append_input,
    validate_plain_input,
)

# Body lengths near the limits: a record of exactly 1 MiB metered, one byte more, and small ones.
lengths = st.sampled_from([0, 1, 100, MAX_BATCH_BYTES - 8, MAX_BATCH_BYTES - 7]) | st.integers(
    0, 4096
)
tokens = st.none() | st.sampled_from(["", "t", "x" * 36, "x" * 37, "\ud800", "é" * 18, "é" * 19])


def _outcome(check: object) -> tuple[str, object]:
    try:
        return "ok", check()  # type: ignore[operator]
    except InvalidBatch as exc:
        return "invalid", (str(exc), exc.for_client)


@given(st.lists(lengths, max_size=3) | st.lists(st.just(1), min_size=999, max_size=1001), tokens)
def test_plain_validation_agrees_with_the_general_one(sizes: list[int], token: str | None) -> None:
    bodies = [b"x" * n for n in sizes]
    plain = PlainInput(bodies, None, token)
    general = AppendInput(records=[Record(body=b) for b in bodies], fencing_token=token)

    def general_sizes() -> list[int]:
        out: list[int] = []
        validate_append_input(general, out)
        return out

    assert _outcome(lambda: validate_plain_input(plain)) == _outcome(general_sizes)
