"""Lite's token gate (``--auth``): who a request is, and ending what a token may no longer do.

Authentication (:meth:`Gate.authenticate`) reads ``Authorization: Bearer <secret>``, hashes
the secret and looks the digest up: first against the root token with a constant-time
compare, then among issued tokens by digest. Issued secrets are 256 random bits, so a
lookup keyed by their digest reveals nothing usable about any secret (docs/auth.md); the
root token may be chosen by a person, hence the constant-time compare.

A request holds its token for as long as it runs (:meth:`Gate.hold`): an ``asyncio.timeout``
around the handler, due at the token's expiry and moved to *now* when the token is revoked
(:meth:`Gate.end`). A unary request still unanswered then gets 401 ``authn``; a response
already under way (an append or read session, SSE) is aborted, so the client sees it fail
rather than end, and its retry meets the 401. A handler that swallowed the cancellation (it
lands in a cleanup path) is aborted a moment later all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from s2kit.errors import ErrorCode, ServerError
from s2kit.server._auth import ROOT_SCOPE, Grant, digest
from s2kit.server._catalog import err
from s2kit.server._tokens import expired
from s2kit.wire._json import format_time

if TYPE_CHECKING:
    from s2kit.server._front import Request, Responder
    from s2kit.server._tokens import TokenStore

log = logging.getLogger("s2kit.server")

ROOT_TOKEN_MIN = 16
"""Shortest root token accepted: a chosen one must not be guessable."""
ABORT_AFTER = 1.0
"""Seconds a revoked request may take to unwind before its exchange is aborted outright."""


def root_token_problem(token: str) -> str | None:
    """Why ``token`` cannot be the root token, or None."""
    if not (token.isascii() and token.isprintable()) or " " in token:
        return "the root token must be printable ASCII without spaces"
    if len(token) < ROOT_TOKEN_MIN:
        return f"the root token must be at least {ROOT_TOKEN_MIN} characters long"
    return None


@dataclass(slots=True, eq=False)
class _Hold:
    """One running request of an issued token."""

    task: asyncio.Task[object] | None
    scope: asyncio.Timeout
    responder: Responder
    revoked: bool = False


class Gate:
    """Authenticates requests and ends those of revoked or expired tokens."""

    def __init__(self, store: TokenStore, root_token: str) -> None:
        if problem := root_token_problem(root_token):
            raise ValueError(problem)
        self.store = store
        """The issued tokens."""
        self.root = Grant(
            id="",
            scope=ROOT_SCOPE,
            expires_at=None,
            auto_prefix_streams=False,
            digest=digest(root_token),
        )
        """The root token: every operation on every resource; never stored or listed."""
        self._holds: dict[str, set[_Hold]] = {}

    def authenticate(self, request: Request) -> Grant:
        """The token of a request.

        Raises:
            ServerError: ``authn`` (401) for a missing, malformed, unknown (or revoked) or
                expired token.
        """
        header = request.header("authorization")
        if header is None:
            raise err(ErrorCode.AUTHN, "missing access token: send `Authorization: Bearer <token>`")
        scheme, _, secret = header.strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise err(ErrorCode.AUTHN, "invalid header `authorization`: expected `Bearer <token>`")
        presented = digest(secret)
        if hmac.compare_digest(presented, self.root.digest):
            return self.root
        grant = self.store.find(presented)
        if grant is None:
            raise err(ErrorCode.AUTHN, "invalid or revoked access token")
        if expired(grant):
            assert grant.expires_at is not None
            raise err(
                ErrorCode.AUTHN,
                f"access token `{grant.id}` expired at {format_time(grant.expires_at)}",
            )
        return grant

    @contextlib.asynccontextmanager
    async def hold(self, grant: Grant, responder: Responder) -> AsyncIterator[None]:
        """Run a request under its token: ended when the token expires or is revoked.

        Raises:
            ServerError: ``authn`` when that happened (after aborting a started response).
        """
        if grant.root:  # never expires, cannot be revoked
            yield
            return
        loop = asyncio.get_running_loop()
        deadline = None
        if grant.expires_at is not None:
            left = (grant.expires_at - datetime.now(UTC)).total_seconds()
            deadline = loop.time() + left
        holds = self._holds.setdefault(grant.id, set())
        hold: _Hold | None = None
        try:
            async with asyncio.timeout_at(deadline) as scope:
                hold = _Hold(asyncio.current_task(), scope, responder)
                holds.add(hold)
                yield
        except TimeoutError:
            if hold is None or not hold.scope.expired():
                raise
            raise self._ended(grant, hold) from None
        finally:
            if hold is not None:
                holds.discard(hold)
            if not holds and self._holds.get(grant.id) is holds:
                del self._holds[grant.id]

    def _ended(self, grant: Grant, hold: _Hold) -> ServerError:
        if hold.responder.started and not hold.responder.ended:
            hold.responder.abort()
        what = "revoked" if hold.revoked else "expired"
        log.debug("ended a request of access token %r: %s", grant.id, what)
        return err(ErrorCode.AUTHN, f"access token `{grant.id}` was {what}")

    def end(self, token_id: str) -> int:
        """End every running request of a (just revoked) token but the current one; returns
        how many."""
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        ended = 0
        for hold in list(self._holds.get(token_id, ())):
            if hold.task is me:
                continue  # revoking its own token: this request still gets its answer
            hold.revoked = True
            hold.scope.reschedule(loop.time())
            loop.call_later(ABORT_AFTER, self._abort_if_stuck, token_id, hold)
            ended += 1
        return ended

    def _abort_if_stuck(self, token_id: str, hold: _Hold) -> None:
        if hold in self._holds.get(token_id, ()):
            hold.responder.abort()

    def running(self, token_id: str) -> int:
        """Requests of the token running now."""
        return len(self._holds.get(token_id, ()))
