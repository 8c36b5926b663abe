"""The web application: pages, the REST API, static files, security headers, error answers.

``create_app(config, archive)`` builds it; ``postfix-archiver web`` and ``run`` serve it with
uvicorn. Every route but ``/login``, ``/healthz`` and ``/static`` needs a session or an API
token. FastAPI's Swagger UI and ReDoc are off (they load scripts from a CDN, and no asset
here comes from the internet); the OpenAPI schema is served, to authenticated callers, at
``/api/v1/openapi.json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from markupsafe import Markup
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..accounts import Accounts, open_accounts
from ..archive import Archive
from ..config import Config
from ..dates import clamp, display, display_day, zone_abbreviation
from ..errors import ArchiverError, NotFoundError
from . import api, audit_pages, holds, pages, restore, users
from .auth import RateLimiter, cookie_names
from .context import HttpProblem, LoginRequired, WebContext, not_found
from .health import Health, metrics_response, readyz_response
from .render import clean_text, human_size

log = logging.getLogger("postfix_archiver.web")
HERE = Path(__file__).parent

PAGE_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": PAGE_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": (
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
        "microphone=(), payment=(), usb=()"
    ),
}
STATUS_TITLES = {
    400: "Bad request",
    401: "Log in first",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    429: "Too many attempts",
    500: "Server error",
    502: "The mail server failed",
    503: "Not available",
}


class SecurityHeaders:
    """Adds the security headers to every response (a route may set its own CSP/XFO)."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.defaults = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        if hsts:
            self.defaults.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.defaults if k not in present]
                if b"cache-control" not in present:
                    # mail is private: no copies in browser or proxy caches
                    cache = b"private, max-age=3600" if static else b"no-store"
                    headers.append((b"cache-control", cache))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ArchiverApp(FastAPI):
    """FastAPI with the security headers outside everything, error pages included."""

    hsts = False

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack(), hsts=self.hsts)


def _finalize(value: Any) -> Any:
    # every {{ value }} from mail passes here before escaping: control and bidi characters
    # become visible; Markup (the sanitized body, the chart) is left alone
    if isinstance(value, str) and not isinstance(value, Markup):
        return clean_text(value)
    return value


@jinja2.pass_context
def _when(
    ctx: jinja2.runtime.Context, value: datetime | str, seconds: bool = False, zone: bool = True
) -> str:
    """A time in the reader's zone (the page's ``tz``, UTC if it has none), with the zone's
    abbreviation; an ISO 8601 string (the audit log's) too."""
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return value  # shown as stored rather than not at all
    else:
        when = value
    return display(when, seconds=seconds, zone=zone, tz=ctx.get("tz") or UTC)


@jinja2.pass_context
def _zone(ctx: jinja2.runtime.Context, value: datetime) -> str:
    """The abbreviation of the reader's zone at ``value`` (``KST``; ``CET`` or ``CEST``)."""
    return zone_abbreviation(clamp(value).astimezone(ctx.get("tz") or UTC))


@jinja2.pass_context
def _day(ctx: jinja2.runtime.Context, value: datetime) -> str:
    return display_day(value, ctx.get("tz") or UTC)


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["size"] = human_size
    env.filters["when"] = _when
    env.filters["day"] = _day
    env.filters["zone"] = _zone
    env.filters["json"] = lambda v: json.dumps(v, ensure_ascii=False)
    return env


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _problem_response(request: Request, problem: HttpProblem) -> Response:
    if _is_api(request):
        return JSONResponse(
            {"error": problem.message, **problem.extra},
            status_code=problem.status,
            headers=problem.headers,
        )
    if isinstance(problem, LoginRequired) and "authorization" not in request.headers:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/search"
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    identity = getattr(request.state, "identity", None)
    response = pages.page(
        request,
        "error.html",
        identity,
        status=problem.status,
        title=STATUS_TITLES.get(problem.status, "Error"),
        message=problem.message,
    )
    response.headers.update(problem.headers)
    return response


def create_app(
    config: Config,
    archive: Archive,
    *,
    accounts: Accounts | None = None,
    limiter: RateLimiter | None = None,
    health: Health | None = None,
) -> FastAPI:
    """The web UI and REST API over ``archive``; accounts from ``web.sqlite`` unless given
    (then the caller closes them). ``health``: what ``/metrics`` and ``/readyz`` report
    (the proxy's, when it runs beside); else the archive's alone."""
    own_accounts = accounts is None
    accounts = accounts if accounts is not None else open_accounts(config.archive.accounts_url)
    session_cookie, login_cookie = cookie_names(config.web.secure_cookies)
    ctx = WebContext(
        config=config,
        archive=archive,
        accounts=accounts,
        limiter=limiter or RateLimiter(),
        templates=make_templates(),
        session_cookie=session_cookie,
        login_cookie=login_cookie,
        secure_cookies=config.web.secure_cookies,
        session_hours=config.web.session_hours,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if own_accounts:
                ctx.accounts.close()

    try:
        app_version = version("postfix-archiver")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        app_version = "0"
    app = ArchiverApp(
        title="postfix-archiver",
        version=app_version,
        description="Search, read and export the mail archive. Authenticate with "
        "`Authorization: Bearer TOKEN` (`postfix-archiver user token NAME`).",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.hsts = config.web.secure_cookies
    app.state.web = ctx
    app.state.restore_quota = restore.quota(config.restore.requests_per_hour)
    app.include_router(api.router)
    app.include_router(holds.api_router)
    app.include_router(restore.api_router)
    app.include_router(pages.router)
    app.include_router(holds.pages_router)
    app.include_router(restore.pages_router)
    app.include_router(users.router)
    app.include_router(audit_pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    # no session for these (Prometheus, load balancers): README says how to restrict them
    checked = health or Health(archive)

    @app.get("/metrics", include_in_schema=False)
    def metrics_endpoint() -> Response:
        return metrics_response(checked)

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        return await readyz_response(checked)

    _handlers(app)
    return app


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(HttpProblem)
    def on_problem(request: Request, exc: HttpProblem) -> Response:
        return _problem_response(request, exc)

    @app.exception_handler(NotFoundError)
    def on_not_found(request: Request, exc: NotFoundError) -> Response:
        return _problem_response(request, not_found())

    @app.exception_handler(ArchiverError)
    def on_archiver_error(request: Request, exc: ArchiverError) -> Response:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return _problem_response(
            request, HttpProblem(500, "the archive could not answer; the server log says why")
        )

    @app.exception_handler(StarletteHTTPException)
    def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        message = "not found" if exc.status_code == 404 else str(exc.detail)
        return _problem_response(
            request, HttpProblem(exc.status_code, message, headers=dict(exc.headers or {}))
        )

    @app.exception_handler(RequestValidationError)
    def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "path"))
            problems.append(f"{where}: {e.get('msg', 'invalid')}")
        return _problem_response(request, HttpProblem(400, "bad request: " + "; ".join(problems)))
