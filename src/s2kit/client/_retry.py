"""Retry decisions, as pure functions over the error types (docs/retry-safety.md#the-retry-rule).

Everything that decides whether to try again lives here; the drivers only ask. The error
carries its own classification (``is_retryable``, ``has_no_side_effects``); the append policy
adds one fact: whether any unacknowledged input was handed to the transport in the attempt
that failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from s2kit.client._config import AppendRetryPolicy, Retry
from s2kit.errors import (
    FencingTokenMismatch,
    ReadUnwritten,
    S2Error,
    SeqNumMismatch,
    ServerError,
)
from s2kit.types import StreamPosition


def append_may_retry(error: S2Error, policy: AppendRetryPolicy, handed_off: bool) -> bool:
    """Whether a failed append attempt may be retried under ``policy``.

    Under NO_SIDE_EFFECTS a retry is allowed only if the failure proves nothing was applied:
    the error says so, or no unacknowledged input's bytes were handed off in the attempt.

    Args:
        error: why the attempt failed.
        policy: the append retry policy.
        handed_off: whether any input still unacknowledged was handed to the transport
            during the failed attempt.
    """
    if not error.is_retryable:
        return False
    if policy is AppendRetryPolicy.ALL:
        return True
    return not handed_off or error.has_no_side_effects


def is_free_retry(error: S2Error) -> bool:
    """Failures that move to a new connection without spending the retry budget."""
    return isinstance(error, ServerError) and error.code == "server_draining"


@dataclass(slots=True)
class Budget:
    """Attempts left in the current window without progress (A3).

    ``server_draining`` is a free retry (docs/retry-safety.md#backoff-and-budget, scenarios S7
    and R8): it does not spend
    the budget, and the first one goes at once (the server acked everything first). Free
    retries are still bounded: at most ``max_attempts`` in a row without progress, with
    backoff after the first, so a server that keeps answering ``server_draining`` (lite
    while it drains answers every request so) is not hammered in a loop.
    """

    retry: Retry
    retries: int = field(default=0)
    free: int = field(default=0)

    def progress(self) -> None:
        """Something succeeded: the budget is whole again."""
        self.retries = 0
        self.free = 0

    def take(self, error: S2Error) -> float | None:
        """Spend one retry and return the delay before it, or None when none are left."""
        if is_free_retry(error) and self.free < self.retry.max_attempts:
            self.free += 1
            return 0.0 if self.free == 1 else self.retry.backoff(self.free - 2)
        if self.retries + 1 >= self.retry.max_attempts:
            return None
        delay = self.retry.backoff(self.retries)
        self.retries += 1
        if isinstance(error, ServerError) and error.retry_after_ms is not None:
            delay = max(delay, error.retry_after_ms / 1000)
        return delay


def server_error(status: int, body: bytes | str, retry_after_ms: int | None = None) -> ServerError:
    """The error for a failed response or terminal frame (412 and 416 have their own shapes)."""
    try:
        obj = json.loads(body)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        if status == 412:
            if "fencing_token_mismatch" in obj:
                return FencingTokenMismatch(str(obj["fencing_token_mismatch"]))
            if "seq_num_mismatch" in obj and isinstance(obj["seq_num_mismatch"], int):
                return SeqNumMismatch(obj["seq_num_mismatch"])
        if status == 416 and isinstance(obj.get("tail"), dict):
            tail = obj["tail"]
            return ReadUnwritten(StreamPosition(int(tail["seq_num"]), int(tail["timestamp"])))
        if isinstance(obj.get("code"), str):
            return ServerError(
                status, obj["code"], str(obj.get("message", "")), retry_after_ms=retry_after_ms
            )
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    # An unparseable body: classified by status alone (docs/retry-safety.md#error-classification).
    return ServerError(status, "", text[:200] or f"HTTP {status}", retry_after_ms=retry_after_ms)
