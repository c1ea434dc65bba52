"""Validation of append batches (docs/protocol.md#append-validation), shared by the SDK and lite.

The messages are lite's, so that a client sees the same text from either server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s2kit.types import AppendInput, Record

MAX_BATCH_RECORDS = 1000
MAX_BATCH_BYTES = 1024 * 1024
MAX_FENCING_TOKEN_BYTES = 36


class InvalidBatch(ValueError):
    """The batch breaks a limit or carries a malformed command (``invalid``, 422).

    ``str()`` is lite's message (s2-lite's wording); ``for_client`` is what the SDK says
    instead where that wording misleads (s2-lite says "less than 1 MiB" but accepts exactly
    1 MiB) or a size helps.
    """

    def __init__(self, message: str, for_client: str | None = None) -> None:
        super().__init__(message)
        self.for_client = for_client or message


def command_of(record: Record) -> bytes | None:
    """The command op (``fence``/``trim``/...) if ``record`` is a command record."""
    headers = record.headers
    if len(headers) == 1 and not headers[0][0]:
        return headers[0][1]
    return None


def validate_command(op: bytes, body: bytes) -> None:
    """Check a command record's payload."""
    if op == b"fence":
        try:
            body.decode()
        except UnicodeDecodeError:
            raise InvalidBatch("invalid `fence` command: invalid UTF-8") from None
        if len(body) > MAX_FENCING_TOKEN_BYTES:
            raise InvalidBatch(
                "invalid `fence` command: fencing token must not exceed 36 bytes in length"
            )
    elif op == b"trim":
        if len(body) != 8:
            raise InvalidBatch(
                "invalid `trim` command: earliest sequence number to trim to was "
                f"{len(body)} bytes, must be 8"
            )
    else:
        raise InvalidBatch("unknown command")


def validate_append_input(inp: AppendInput, sizes: list[int] | None = None) -> int:
    """Validate a batch and return its metered size; raises :class:`InvalidBatch`.

    With ``sizes``, each record's metered size is appended to it (the server keeps them).
    """
    records = inp.records
    if not records:
        raise InvalidBatch("record batch must not be empty")
    if len(records) > MAX_BATCH_RECORDS:
        raise InvalidBatch("record batch must not exceed 1000 records")
    if inp.fencing_token is not None:
        try:
            token_size = len(inp.fencing_token.encode())
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 form to send or store
            raise InvalidBatch("fencing token must be valid UTF-8") from None
        if token_size > MAX_FENCING_TOKEN_BYTES:
            raise InvalidBatch("fencing token must not exceed 36 bytes in length")
    total = 0
    keep = sizes.append if sizes is not None else None
    for r in records:
        # Runs once per record on both sides: headers are looked at only when there are some.
        headers = r.headers
        size = 8 + len(r.body)
        if headers:
            for name, value in headers:
                size += 2 + len(name) + len(value)
        if size > MAX_BATCH_BYTES:
            raise InvalidBatch(
                "record must have metered size less than 1 MiB",
                f"a record's metered size must be at most 1 MiB ({MAX_BATCH_BYTES} bytes), "
                f"got {size} bytes",
            )
        total += size
        if keep is not None:
            keep(size)
        if headers:
            if len(headers) == 1 and not headers[0][0]:
                validate_command(headers[0][1], r.body)
            elif any(not name for name, _ in headers):
                raise InvalidBatch("invalid header: empty name")
    if total > MAX_BATCH_BYTES:
        raise InvalidBatch(
            "record batch must not exceed a metered size of 1 MiB",
            f"a batch's metered size must be at most 1 MiB ({MAX_BATCH_BYTES} bytes), "
            f"got {total} bytes",
        )
    return total
