"""The HTML pages: log in and out, search, a message, statistics (the audit log:
``audit_pages``; users: ``users``).

Server-rendered with Jinja2 (autoescaping everything), no script at all. Downloads and
exports link to the API routes, which accept the session cookie too.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from ..archive import lag_seconds
from ..catalog import MessageRow, SearchPage
from ..dates import header_note, time_zone, zone_names
from ..errors import QueryError
from ..search import ORDERS, Order, parse_query
from . import chart, flash
from .access import visible_message
from .auth import CsrfUser, Identity, PageUser, identify, require
from .context import HttpProblem, WebContext, client_address, context
from .navigation import PER_PAGE, SearchContext, position
from .quoting import split_quoted
from .render import envelopes_for, inline_images, sanitize_html
from .search_dates import DateRange, DateRangeError, parse_range, quick_ranges
from .signin import Outcome, sign_in
from .zones import ZONE_COOKIE, reader_zone

router = APIRouter(include_in_schema=False)

# one label for each of search.ORDERS, in that order
ORDER_LABELS: dict[Order, str] = {
    "-date": "newest first",
    "date": "oldest first",
    "-size": "largest first",
    "size": "smallest first",
    "subject": "subject A-Z",
    "-subject": "subject Z-A",
    "from": "sender A-Z",
    "-from": "sender Z-A",
}
COLUMNS = (
    ("date", "Date"),
    ("from", "From"),
    ("", "To"),
    ("subject", "Subject"),
    ("size", "Size"),
    ("", ""),
)
CONVERSATION_LIMIT = 200  # messages listed on a message page; a longer one says so
# the mail body frame: its own policy, stricter than the pages' (no script, data: images only).
# Its sandbox (as the iframe's) allows popups only: a link in mail opens a new tab, which
# escapes the sandbox so the site linked works as if typed in; never scripts, never the
# archive's origin, never navigating the page around the frame.
FRAME_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
FRAME_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; "
    f"base-uri 'none'; form-action 'none'; sandbox {FRAME_SANDBOX}"
)


def page(
    request: Request,
    template: str,
    /,
    identity: Identity | None,
    *,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    ctx = context(request)
    values.setdefault("section", "")
    zone = reader_zone(request)
    # every time on the page is shown in the reader's zone (the "when" and "day" filters)
    values.setdefault("tz", zone.tz)
    values.setdefault("zone_name", zone.name)
    html = ctx.render(
        template,
        me=identity.user if identity else None,
        csrf=identity.csrf if identity else None,
        **values,
    )
    return HTMLResponse(html, status_code=status)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/search"
    if any(ord(c) < 32 for c in target) or "\\" in target:
        return "/search"
    return target


def _set_cookie(ctx: WebContext, response: Response, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path="/",
        secure=ctx.secure_cookies,
        httponly=True,
        samesite="strict",
    )


def _delete_cookie(ctx: WebContext, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path="/", secure=ctx.secure_cookies, httponly=True, samesite="strict"
    )


# -- logging in and out --------------------------------------------------------------------


def _login_form(
    request: Request, next_url: str, *, error: str | None = None, name: str = "", status: int = 200
) -> HTMLResponse:
    ctx = context(request)
    token = secrets.token_urlsafe(32)
    response = page(
        request,
        "login.html",
        None,
        status=status,
        login_csrf=token,
        next=next_url,
        error=error,
        name=name,
        section="login",
        mail_account=bool({"imap", "ldap"} & set(ctx.config.auth.methods)),
    )
    _set_cookie(ctx, response, ctx.login_cookie, token, 3600)
    return response


@router.get("/login")
def login_page(request: Request, next: str = "/search") -> Response:
    try:
        known = identify(request)
    except HttpProblem:
        known = None
    if known is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_form(request, safe_next(next))


@router.post("/login")
def login(
    request: Request,
    name: str = Form("", max_length=1000),
    password: str = Form("", max_length=4096),
    csrf: str = Form("", max_length=200),
    next: str = Form("", max_length=4000),
) -> Response:
    """Runs on a worker thread: argon2 verification is slow on purpose."""
    ctx = context(request)
    name = name.strip()[:200]
    next_url = safe_next(next)
    cookie = request.cookies.get(ctx.login_cookie) or ""
    client = client_address(request)
    if not csrf or not cookie or not hmac.compare_digest(csrf.encode(), cookie.encode()):
        ctx.audit(request, name or "-", "login", ok=False, reason="CSRF check failed")
        return _login_form(
            request, next_url, error="The form expired: please log in again.", status=403
        )
    wait = ctx.limiter.retry_after(name, client)
    if wait is not None:
        ctx.audit(request, name or "-", "login", ok=False, reason="rate limited")
        minutes = max(1, math.ceil(wait / 60))
        limited = _login_form(
            request,
            next_url,
            name=name,
            status=429,
            error=f"Too many failed logins for {name or 'this name'} from your address: "
            f"try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        )
        limited.headers["Retry-After"] = str(wait)
        return limited
    outcome = sign_in(ctx.accounts, ctx.config.auth, name, password)
    user = outcome.user
    if user is None:
        return _login_refused(request, outcome, name, client, next_url)
    ctx.limiter.success(name, client)
    old = request.cookies.get(ctx.session_cookie)
    if old:
        ctx.accounts.end_session(old)
    session_id, _ = ctx.accounts.create_session(user, client, ctx.session_hours)
    ctx.audit(request, user.name, "login", ok=True, method=outcome.method)
    response = RedirectResponse(next_url, status_code=303)
    _set_cookie(ctx, response, ctx.session_cookie, session_id, int(ctx.session_hours * 3600))
    _delete_cookie(ctx, response, ctx.login_cookie)
    return response


def _login_refused(
    request: Request, outcome: Outcome, name: str, client: str, next_url: str
) -> HTMLResponse:
    """401 when a method checked the password and refused it (counted by the limiter); 503
    when no server could check it (not counted: the user did nothing wrong)."""
    ctx = context(request)
    detail: dict[str, Any] = {"refused": outcome.refused} if outcome.refused else {}
    if outcome.unavailable:
        detail["unavailable"] = sorted(outcome.unavailable)
    if outcome.checked:
        ctx.limiter.failure(name, client)
    reason = next(iter(outcome.refused.values()), "sign-in server unavailable")
    ctx.audit(request, name or "-", "login", ok=False, reason=reason, **detail)
    error = "Wrong user name or password."
    if outcome.unavailable:
        servers = " and ".join(m.upper() for m in outcome.unavailable)
        lead = (
            "Wrong user name or password, or"
            if outcome.checked
            else "Your password could not be checked:"
        )
        error = f"{lead} the {servers} sign-in server could not be reached. Try again later."
    status = 401 if outcome.checked and not outcome.unavailable else 503
    return _login_form(request, next_url, name=name, status=status, error=error)


@router.post("/logout")
def logout(request: Request, identity: CsrfUser) -> Response:
    ctx = context(request)
    if identity.session_id:
        ctx.accounts.end_session(identity.session_id)
    ctx.audit(request, identity, "logout")
    response = RedirectResponse("/login", status_code=303)
    _delete_cookie(ctx, response, ctx.session_cookie)
    return response


@router.get("/")
def home() -> Response:
    return RedirectResponse("/search", status_code=303)


# -- search ----------------------------------------------------------------------------------


@router.get("/search")
def search_page(
    request: Request,
    identity: PageUser,
    q: str = Query("", max_length=4000),
    order: str = "-date",
    page_no: int = Query(1, alias="page", ge=1, le=10_000_000),
    per: int = 50,
    first: str = Query("", alias="from", max_length=100),
    last: str = Query("", alias="to", max_length=100),
    group: str = Query("", max_length=10),
) -> HTMLResponse:
    ctx = context(request)
    grouped = group == "1"  # anything else: not grouped
    order = order if order in ORDERS else "-date"
    per = per if per in PER_PAGE else 50
    offset = (page_no - 1) * per
    zone = reader_zone(request).tz
    result: SearchPage | None = None
    error: QueryError | None = None
    range_error: str | None = None
    dates = DateRange()
    full = q
    try:
        dates = parse_range(first, last)
        parse_query(q)  # alone first: "a OR" must not become "a OR after:..." below
        # OR binds tighter than the implicit AND, so appended terms narrow all of q
        full = " ".join(t for t in (q.strip(), dates.terms(zone)) if t)
        result = ctx.archive.search(
            full, limit=per, offset=offset, order=order, visible_to=identity.user.visible_to
        )
    except DateRangeError as exc:
        range_error = str(exc)
    except QueryError as exc:
        error = exc
    ctx.audit(
        request,
        identity,
        "search",
        query=full,
        order=order,
        offset=offset,
        **({"total": result.total} if result else {"error": range_error or str(error)}),
    )
    pages = max(1, math.ceil(result.total / per)) if result else 1
    kept = dates.params() if range_error is None else {"from": first, "to": last}

    def link(**changes: object) -> str:
        params: dict[str, object] = {"q": q, "order": order, "per": per, "page": page_no}
        params.update(kept)
        params["group"] = 1 if changes.pop("group", grouped) else ""
        params.update(changes)
        return urlencode({k: v for k, v in params.items() if v != ""})

    leaders, hidden = conversations(ctx, result.results) if result and grouped else ({}, set())

    sort_links = {}
    for key in ("date", "from", "subject", "size"):
        # a first click sorts dates and sizes descending, names ascending; a second reverses
        first_order = f"-{key}" if key in ("date", "size") else key
        flipped = key if order == f"-{key}" else f"-{key}"
        sort_links[key] = link(order=flipped if order.lstrip("-") == key else first_order, page=1)
    today = datetime.now(zone).date()
    here = SearchContext(q, order, per, page_no, grouped, kept.get("from", ""), kept.get("to", ""))
    response = page(
        request,
        "search.html",
        identity,
        status=400 if error or range_error else 200,
        section="search",
        q=q,
        order=order,
        per=per,
        page=result,
        # for the page shown only: each is cut from its message's blob (archive.snippets)
        snippets=ctx.archive.snippets(result.results, q) if result else [],
        error=error,
        range_error=range_error,
        dates=kept,
        date_range=dates,
        quick_dates=[
            (label, link(page=1, **r.params()), r == dates) for label, r in quick_ranges(today)
        ],
        any_time=link(page=1, **{"from": "", "to": ""}),
        offset=offset,
        page_no=page_no,
        pages=pages,
        past_end=bool(result and result.total and offset >= result.total),
        order_links=[(o, ORDER_LABELS[o], link(order=o, page=1)) for o in ORDERS],
        per_links=[(n, link(per=n, page=1 + offset // n)) for n in PER_PAGE],
        columns=COLUMNS,
        sort_links=sort_links,
        page_links={
            "first": link(page=1),
            "prev": link(page=page_no - 1),
            "next": link(page=page_no + 1),
            "last": link(page=pages),
        },
        grouped=grouped,
        group_link=link(group=0 if grouped else 1),
        leaders=leaders,
        hidden=hidden,
        # each result link names this page of this search (web.navigation)
        here=here.params(),
        export_mbox=urlencode({"q": full, "format": "mbox"}),
        export_zip=urlencode({"q": full, "format": "eml-zip"}),
        # "Restore these N" restores the query with its dates, then comes back here
        full_query=full,
        restore=ctx.config.restore,
        flash=flash.take(request, identity),
    )
    flash.forget(request, response)
    return response


def conversations(
    ctx: WebContext, rows: list[MessageRow]
) -> tuple[dict[int, list[MessageRow]], set[int]]:
    """The results of one page grouped by conversation: the first (in the page's order) of
    each conversation with the others of it on this page, and the ids of those others (not
    listed on their own). Grouping is by page: a conversation whose messages fall on two
    pages is on each."""
    threads = ctx.archive.threads([r.id for r in rows])
    first: dict[str, int] = {}
    leaders: dict[int, list[MessageRow]] = {}
    hidden: set[int] = set()
    for r in rows:
        key = threads.get(r.id)
        if key is None:
            continue
        if key in first:
            leaders[first[key]].append(r)
            hidden.add(r.id)
        else:
            first[key] = r.id
            leaders[r.id] = []
    return leaders, hidden


# -- one message -----------------------------------------------------------------------------


@router.get("/messages/{ident}")
def message_page(request: Request, ident: str, identity: PageUser) -> HTMLResponse:
    ctx = context(request)
    message = visible_message(ctx, identity, ident)
    read = ctx.archive.read(message)
    view, parsed = read.view, read.parsed
    html = (
        sanitize_html(parsed.text_html, inline_images(parsed.inline)) if parsed.text_html else None
    )
    search = SearchContext.from_params(request.query_params)
    # the search it was opened from is run again (its place, previous and next): recorded
    # with the view, so that no query runs without a trace in the audit log
    ctx.audit(
        request,
        identity,
        "view",
        message=message,
        **({"search": search.params()} if search else {}),
    )
    visible_to = identity.user.visible_to
    # one body at a time: the HTML one if there is one, else the text; the other a link away
    shown = "text" if html is None or request.query_params.get("view") == "text" else "html"
    context_params = dict(parse_qsl(search.params())) if search else {}
    body_links = {
        v: f"/messages/{message}?" + urlencode({**context_params, "view": v})
        for v in ("html", "text")
    }
    # images the HTML body shows by Content-ID: listed apart from the files
    inline_shas = {hashlib.sha256(p.data).hexdigest() for p in parsed.inline.values()}
    inline_shas &= {a.sha256 for a in view.attachments if a.content_type.startswith("image/")}
    response = page(
        request,
        "message.html",
        identity,
        section="search",
        row=view.row,
        date_note=header_note(parsed.header("Date")),
        parsed=parsed,
        body=parsed.body_text,
        html=html,
        frame_sandbox=FRAME_SANDBOX,
        attachments=view.attachments,
        extracts=view.extracts,
        envelopes=envelopes_for(identity.user, view.envelopes, parsed),
        imports=view.imports,
        shown=shown,
        body_links=body_links,
        inline_shas=inline_shas,
        inline_count=sum(1 for a in view.attachments if a.sha256 in inline_shas),
        holds=view.holds if identity.user.sees_all else [],
        search=search,
        place=(
            position(ctx.archive, search, message, visible_to, reader_zone(request).tz)
            if search
            else None
        ),
        # the others of its conversation this reader may see (a user: their own mail only)
        conversation=ctx.archive.conversation(
            message, limit=CONVERSATION_LIMIT, visible_to=visible_to
        ),
        conversation_limit=CONVERSATION_LIMIT,
        body_blocks=split_quoted(parsed.body_text) if parsed.body_text else [],
        restore=ctx.config.restore,
        flash=flash.take(request, identity),
    )
    flash.forget(request, response)
    return response


@router.get("/messages/{ident}/body")
def message_body(request: Request, ident: str, identity: PageUser) -> HTMLResponse:
    """The sanitized HTML body, for the sandboxed iframe of the message page."""
    ctx = context(request)
    message = visible_message(ctx, identity, ident)
    parsed = ctx.archive.read(message).parsed  # the page's parse, kept a moment for this
    clean = sanitize_html(parsed.text_html, inline_images(parsed.inline))
    html = ctx.render("body.html", content=Markup(clean.html))  # noqa: S704 - sanitized above
    return HTMLResponse(
        html, headers={"Content-Security-Policy": FRAME_CSP, "X-Frame-Options": "SAMEORIGIN"}
    )


# -- the reader's settings ------------------------------------------------------------------


def _settings_page(
    request: Request, identity: Identity, *, error: str | None = None, chosen: str = ""
) -> HTMLResponse:
    zone = reader_zone(request)
    return page(
        request,
        "settings.html",
        identity,
        status=400 if error else 200,
        section="settings",
        zones=zone_names(),
        current=chosen or zone.name,
        chosen=zone.chosen,
        default_zone=context(request).config.web.timezone,
        saved=request.query_params.get("saved") == "1",
        now=datetime.now(UTC),
        error=error,
    )


@router.get("/settings")
def settings_page(request: Request, identity: PageUser) -> HTMLResponse:
    return _settings_page(request, identity)


@router.post("/settings")
def save_settings(
    request: Request, identity: CsrfUser, timezone: str = Form("", max_length=200)
) -> Response:
    """The reader's time zone, kept in a cookie for a year; "" goes back to the default."""
    ctx = context(request)
    response = RedirectResponse("/settings?saved=1", status_code=303)
    if not timezone:
        _delete_cookie(ctx, response, ZONE_COOKIE)
        return response
    if time_zone(timezone) is None:
        shown = timezone[:80]
        return _settings_page(
            request, identity, error=f"unknown time zone {shown!r}: choose one from the list"
        )
    _set_cookie(ctx, response, ZONE_COOKIE, timezone, 365 * 86400)
    return response


# -- statistics ---------------------------------------------------------------------------


@router.get("/stats")
def stats_page(
    request: Request, identity: PageUser, by: Literal["arrival", "date"] = "arrival"
) -> HTMLResponse:
    """Counts by arrival unless ``by=date`` (the Date header, which senders write: spam
    dated 2099 would otherwise lead the chart)."""
    ctx = context(request)
    require(identity, identity.user.sees_all, "archive statistics")
    per_day = ctx.archive.per_day(by=by)
    stats = ctx.archive.stats()
    drawn = chart.chart(per_day, datetime.now(UTC).date())
    odd = sum(b.count for b in drawn.bars if b.odd)
    return page(
        request,
        "stats.html",
        identity,
        section="stats",
        stats=stats,
        lag=lag_seconds(stats.index) if stats.index else 0,
        chart=chart.svg(drawn),
        unit=drawn.unit,
        by=by,
        odd=odd,
        messages=chart.messages,
    )
