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
  looking at the password (``limiter``).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .context import HttpProblem, LoginRequired, context
from .identity import Identity
from .limiter import RateLimiter

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"

__all__ = [
    "ApiUser",
    "CsrfUser",
    "Identity",
    "PageUser",
    "RateLimiter",
    "api_identity",
    "cookie_names",
    "csrf_checked",
    "identify",
    "page_identity",
    "require",
]


def cookie_names(secure: bool) -> tuple[str, str]:
    """Session and login-CSRF cookie names; ``__Host-`` pins them to this host over TLS."""
    prefix = "__Host-" if secure else ""
    return f"{prefix}pa_session", f"{prefix}pa_login"


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
