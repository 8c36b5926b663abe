"""What every route needs: the archive, the accounts, the limiter, the templates, the audit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import jinja2
from starlette.requests import HTTPConnection

from ..accounts import Accounts
from ..archive import Archive
from ..config import Config
from .identity import Identity
from .limiter import RateLimiter


class HttpProblem(Exception):
    """An error answer: JSON ``{"error": message, ...}`` under /api, an HTML page elsewhere."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


class LoginRequired(HttpProblem):
    """No valid session: pages redirect to the login form, the API answers 401."""

    def __init__(self, message: str = "authentication required") -> None:
        super().__init__(401, message, headers={"WWW-Authenticate": 'Bearer realm="api"'})


def not_found() -> HttpProblem:
    # one answer for "no such message" and "not yours": ids reveal nothing
    return HttpProblem(404, "not found")


@dataclass
class WebContext:
    config: Config
    archive: Archive
    accounts: Accounts
    limiter: RateLimiter
    templates: jinja2.Environment
    session_cookie: str
    login_cookie: str
    secure_cookies: bool
    session_hours: float

    def render(self, template: str, /, **values: Any) -> str:
        return self.templates.get_template(template).render(**values)

    def audit(self, conn: HTTPConnection, who: Identity | str, action: str, **detail: Any) -> None:
        name = who if isinstance(who, str) else who.user.name
        if not isinstance(who, str):
            detail.setdefault("via", who.via)
        self.accounts.record(name, client_address(conn), action, detail)


def context(conn: HTTPConnection) -> WebContext:
    return cast(WebContext, conn.app.state.web)


def client_address(conn: HTTPConnection) -> str:
    """The client's address as the server saw it (behind a proxy: see uvicorn's
    ``forwarded_allow_ips``; by default only a proxy on 127.0.0.1 is trusted)."""
    return conn.client.host if conn.client else "unknown"
