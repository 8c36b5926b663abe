"""Who is asking: sessions (cookie), API tokens (Bearer), CSRF, login rate limiting.

- A session is a random id in an HttpOnly, SameSite=Strict cookie (``Secure`` and the
  ``__Host-`` name prefix with ``[web] secure_cookies``); the server keeps only its SHA-256,
  with the user, the expiry and the session's CSRF token.
- An API token is ``Authorization: Bearer pa_...``; a request that carries one is judged by
  it alone (a bad token is 401 even next to a good cookie). Token requests need no CSRF
  token: a browser never adds that header on its own.
- Every state-changing request authenticated by cookie must carry the session's CSRF token
  (form field ``csrf`` or header ``X-CSRF-Token``); the login form, which has no session yet,
  uses a double-submit cookie.
- Failed logins are counted per user name and client address (5 per 15 minutes) and per
  user name from anywhere (50 per 15 minutes); over either limit, logins answer 429 without
  looking at the password.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .accounts import User
from .context import HttpProblem, LoginRequired, context

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


def cookie_names(secure: bool) -> tuple[str, str]:
    """Session and login-CSRF cookie names; ``__Host-`` pins them to this host over TLS."""
    prefix = "__Host-" if secure else ""
    return f"{prefix}pa_session", f"{prefix}pa_login"


@dataclass(frozen=True, slots=True)
class Identity:
    user: User
    via: Literal["session", "token"]
    session_id: str | None = None
    csrf: str | None = None
    token_id: int | None = None


class RateLimiter:
    """Failed logins in a sliding window, in memory (a restart forgets them)."""

    def __init__(
        self,
        *,
        limit: int = 5,
        user_limit: int = 50,
        window: float = 15 * 60,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.limit = limit
        self.user_limit = user_limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _keys(self, user: str, client: str) -> list[tuple[tuple[str, str], int]]:
        name = user.strip().lower()[:200]
        return [((name, client), self.limit), ((name, "*"), self.user_limit)]

    def retry_after(self, user: str, client: str) -> int | None:
        """Seconds until ``user`` may try again from ``client``; None when allowed now."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key, limit in self._keys(user, client):
                times = self._failures.get(key)
                if times is None:
                    continue
                while times and times[0] <= now - self.window:
                    times.popleft()
                if len(times) >= limit:
                    wait = max(wait, times[0] + self.window - now)
        return math.ceil(wait) if wait > 0 else None

    def failure(self, user: str, client: str) -> None:
        now = self.clock()
        with self._lock:
            for key, _ in self._keys(user, client):
                times = self._failures.setdefault(key, deque())
                times.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:  # bounded memory under a name spray
                self._failures.popitem(last=False)

    def success(self, user: str, client: str) -> None:
        with self._lock:
            self._failures.pop(self._keys(user, client)[0][0], None)


def identify(request: Request) -> Identity | None:
    """The caller, from a Bearer token if one is sent, else from the session cookie."""
    cached: Identity | None = getattr(request.state, "identity", None)
    if cached is not None:
        return cached
    ctx = context(request)
    identity: Identity | None = None
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise LoginRequired("unsupported Authorization header: send Bearer TOKEN")
        found = ctx.accounts.user_for_token(secret.strip())
        if found is None:
            raise LoginRequired("invalid or revoked API token")
        identity = Identity(found[0], "token", token_id=found[1])
    else:
        session_id = request.cookies.get(ctx.session_cookie)
        session = ctx.accounts.session(session_id) if session_id else None
        if session is not None and session_id is not None:
            identity = Identity(session.user, "session", session_id, session.csrf)
    request.state.identity = identity
    return identity


_bearer = HTTPBearer(
    auto_error=False, description="An API token from `postfix-archiver user token`"
)


def api_identity(
    request: Request, _token: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Identity:
    """The caller of an API route (Bearer token or session cookie), else 401."""
    identity = identify(request)
    if identity is None:
        raise LoginRequired("authentication required: send Authorization: Bearer TOKEN")
    return identity


def page_identity(request: Request) -> Identity:
    """The caller of a page, else a redirect to the login form."""
    identity = identify(request)
    if identity is None:
        raise LoginRequired()
    return identity


async def csrf_checked(
    request: Request, identity: Annotated[Identity, Depends(page_identity)]
) -> Identity:
    """``page_identity`` for a state-changing request: the session's CSRF token must match."""
    if identity.via == "token":
        return identity
    sent: object = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        sent = form.get(CSRF_FIELD)
    if (
        not isinstance(sent, str)
        or identity.csrf is None
        or not hmac.compare_digest(sent.encode("utf-8", "replace"), identity.csrf.encode())
    ):
        raise HttpProblem(
            403, "the form was stale or not sent by this site (CSRF check): reload and retry"
        )
    return identity


ApiUser = Annotated[Identity, Depends(api_identity)]
PageUser = Annotated[Identity, Depends(page_identity)]
CsrfUser = Annotated[Identity, Depends(csrf_checked)]


def require(identity: Identity, allowed: bool, what: str) -> None:
    if not allowed:
        raise HttpProblem(403, f"{what}: your role ({identity.user.role}) may not")
