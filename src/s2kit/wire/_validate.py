"""Validation of append batches (docs/protocol.md#append-validation), shared by the SDK and lite.

The messages are lite's, so that a client sees the same text from either server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s2kit.types import AppendInput, Record
    from s2kit.wire._pbdec import PlainInput

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
    _check_shape(len(records), inp.fencing_token)
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
            raise _record_too_large(size)
        total += size
        if keep is not None:
            keep(size)
        if headers:
            if len(headers) == 1 and not headers[0][0]:
                validate_command(headers[0][1], r.body)
            elif any(not name for name, _ in headers):
                raise InvalidBatch("invalid header: empty name")
    if total > MAX_BATCH_BYTES:
        raise _batch_too_large(total)
    return total


def validate_plain_input(inp: PlainInput) -> list[int]:
    """:func:`validate_append_input` for a batch of bodies alone; returns the records'
    metered sizes. Without headers there is no command to check, so this is sizes only."""
    bodies = inp.bodies
    _check_shape(len(bodies), inp.fencing_token)
    sizes = [len(body) + 8 for body in bodies]
    total = sum(sizes)
    if total > MAX_BATCH_BYTES:
        # A record over the limit is reported as such, as the general path reports it.
        for size in sizes:
            if size > MAX_BATCH_BYTES:
                raise _record_too_large(size)
        raise _batch_too_large(total)
    return sizes


def _check_shape(count: int, fencing_token: str | None) -> None:
    if not count:
        raise InvalidBatch("record batch must not be empty")
    if count > MAX_BATCH_RECORDS:
        raise InvalidBatch("record batch must not exceed 1000 records")
    if fencing_token is not None:
        try:
            token_size = len(fencing_token.encode())
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 form to send or store
            raise InvalidBatch("fencing token must be valid UTF-8") from None
        if token_size > MAX_FENCING_TOKEN_BYTES:
            raise InvalidBatch("fencing token must not exceed 36 bytes in length")


def _record_too_large(size: int) -> InvalidBatch:
    return InvalidBatch(
        "record must have metered size less than 1 MiB",
        f"a record's metered size must be at most 1 MiB ({MAX_BATCH_BYTES} bytes), "
        f"got {size} bytes",
    )


def _batch_too_large(total: int) -> InvalidBatch:
    return InvalidBatch(
        "record batch must not exceed a metered size of 1 MiB",
        f"a batch's metered size must be at most 1 MiB ({MAX_BATCH_BYTES} bytes), "
        f"got {total} bytes",
    )
