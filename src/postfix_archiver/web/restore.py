"""Restoring mail from the web: "Restore to my mailbox" on a message page, "Restore these N"
on a search's results, and the API's ``POST /api/v1/messages/{id}/restore`` and
``POST /api/v1/restore``. The work is the library's (``postfix_archiver.restore``).

Who may restore what, where:

- a user restores the messages they may see (the search's and the message page's rule: a
  message not theirs is a 404, as everywhere) into their own mailbox only;
- auditors, who see every message, likewise into their own mailbox;
- admins restore any message into any mailbox (``mailbox``: the mailbox's login, or the
  address for an SMTP restore).

A user's own mailbox is ``[restore] mailbox``: their login name (the mail server's login, as
IMAP sign-in makes it) or their first address; an SMTP restore always goes to the first
address. At most ``max_messages`` per request (more is refused, not cut short: a partial
restore nobody asked for is worse than a narrower search) and ``requests_per_hour`` per user
(then 429). Every restore is audited with who, what and where (``restore.intent`` before,
``restore`` after). A mail server that cannot be reached or refuses is a 502; an unreadable
master password file a 503 (the log says why); restoring not configured at all a 404 (and
no button shows).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ..accounts import login_of
from ..catalog import MessageRow
from ..errors import QueryError
from ..restore import (
    DELIVERY_ERRORS,
    Outcome,
    RestoreUnavailable,
    configured_target,
    restore,
)
from ..search import parse_query
from . import flash
from .access import visible_message
from .api import query_problem
from .auth import CsrfUser, Identity
from .context import HttpProblem, WebContext, context
from .limiter import RateLimiter
from .pages import safe_next

log = logging.getLogger("postfix_archiver.web")

pages_router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["restore"])

_ERROR: dict[str, Any] = {
    "description": 'an error: {"error": message}',
    "content": {"application/json": {}},
}
_RESPONSES: dict[int | str, dict[str, Any]] = dict.fromkeys(
    (400, 401, 403, 404, 429, 502, 503), _ERROR
)
# a mailbox's login or address: printable, no spaces, no "*" (Dovecot's master user
# separator in a LOGIN), no more than an address may be long
_MAILBOX = re.compile(r"[^\s*\x00-\x1f\x7f]{1,320}")
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")


def quota(settings_per_hour: int) -> RateLimiter:
    """Restores counted per user over an hour (the login limiter's sliding window: each
    restore counts as one "failure" of the key ``(user, "restore")``)."""
    return RateLimiter(limit=settings_per_hour, user_limit=settings_per_hour, window=3600)


def _enabled(ctx: WebContext) -> None:
    if not ctx.config.restore.enabled:
        # a feature switched off, not a server in trouble: nothing here to restore with
        raise HttpProblem(
            404, "restoring to mailboxes is not configured on this server ([restore] imap or smtp)"
        )


def _mailbox(ctx: WebContext, identity: Identity, requested: str | None) -> str:
    """The mailbox a restore goes to: the caller's own, or for an admin the one asked for."""
    settings = ctx.config.restore
    smtp = settings.smtp is not None
    wanted = (requested or "").strip()
    if wanted:
        if not identity.user.is_admin:
            raise HttpProblem(
                403, f"restoring to another mailbox: your role ({identity.user.role}) may not"
            )
        if not _MAILBOX.fullmatch(wanted) or (smtp and not _ADDRESS.fullmatch(wanted)):
            shown = wanted[:80] + ("..." if len(wanted) > 80 else "")
            what = "a mail address" if smtp else "a mailbox login (or an address)"
            raise HttpProblem(400, f"mailbox {shown!r}: give {what}, no spaces")
        return wanted
    user = identity.user
    if smtp or settings.mailbox == "address":
        if not user.addresses:
            raise HttpProblem(
                400, "your account has no mail address to restore to: ask an admin to add one"
            )
        return user.addresses[0]
    # someone signed in by IMAP (``imap:alice``) has the mailbox of the login they gave it
    return login_of(user.name)


def _run(
    request: Request,
    identity: Identity,
    rows: Iterable[MessageRow],
    count: int,
    detail: dict[str, object],
    requested: str | None,
    dry_run: bool = False,
) -> tuple[Outcome, str, str]:
    """The checks every restore passes, then the restore: the outcome, the mailbox and the
    target's description."""
    ctx = context(request)
    settings = ctx.config.restore
    mailbox = _mailbox(ctx, identity, requested)
    if count > settings.max_messages:
        raise HttpProblem(
            400,
            f"{count} messages match; at most {settings.max_messages} are restored at once: "
            "narrow the search",
        )
    if not dry_run:
        limiter: RateLimiter = request.app.state.restore_quota
        name = identity.user.name
        wait = limiter.retry_after(name, "restore")
        if wait is not None:
            ctx.audit(request, identity, "restore", **detail, mailbox=mailbox, error="rate limited")
            minutes = max(1, math.ceil(wait / 60))
            raise HttpProblem(
                429,
                f"at most {settings.requests_per_hour} restores an hour: try again in "
                f"{minutes} minute{'s' if minutes != 1 else ''}",
                headers={"Retry-After": str(wait)},
            )
        limiter.failure(name, "restore")  # counted before trying: a failing server too
    try:
        target = configured_target(settings, mailbox)
    except RestoreUnavailable as exc:
        log.error("restore for %s: %s", identity.user.name, exc)
        shown = str(exc) if identity.user.is_admin else "the server log says why"
        raise HttpProblem(503, f"restoring is not available now ({shown})") from None
    try:
        outcome = restore(
            ctx.archive,
            rows,
            target,
            count=count,
            audit=lambda action, info: ctx.audit(request, identity, action, **info),
            detail={**detail, "mailbox": mailbox},
            dry_run=dry_run,
        )
    except DELIVERY_ERRORS as exc:
        log.warning("restore for %s to %s failed: %s", identity.user.name, target.where, exc)
        # the reason names servers and accounts: for those who run them
        reason = str(exc) if identity.user.sees_all else "the server log says why"
        again = "" if settings.smtp else ", a retry skips them"
        raise HttpProblem(
            502,
            f"the mail server did not take the messages ({reason}); "
            f"those restored before the failure stay{again}",
        ) from None
    return outcome, mailbox, target.where


def _notice(outcome: Outcome, identity: Identity, mailbox: str, smtp: bool) -> str:
    own = (identity.user.name, login_of(identity.user.name), *identity.user.addresses)
    whose = "your mailbox" if mailbox in own else mailbox
    if not outcome.count:
        return "Nothing to restore: no message matches."
    n = outcome.restored
    text = f"Restored {n} message{'s' if n != 1 else ''} to {whose}"
    text += " (re-delivered by mail)." if smtp else "."
    if outcome.skipped:
        s = outcome.skipped
        text += f" {s} {'were' if s != 1 else 'was'} there already and not restored again."
    return text


def _document(outcome: Outcome, mailbox: str, where: str) -> dict[str, object]:
    return {
        "mailbox": mailbox,
        "to": where,
        "count": outcome.count,
        "restored": outcome.restored,
        "skipped": outcome.skipped,
        "dry_run": outcome.dry_run,
    }


def _one(
    request: Request, identity: Identity, ident: str, mailbox: str | None, dry_run: bool = False
) -> tuple[Outcome, str, str, int]:
    ctx = context(request)
    _enabled(ctx)
    message = visible_message(ctx, identity, ident)
    outcome, box, where = _run(
        request, identity, [ctx.archive.get(message)], 1, {"message": message}, mailbox, dry_run
    )
    return outcome, box, where, message


def _query(
    request: Request, identity: Identity, q: str, mailbox: str | None, dry_run: bool = False
) -> tuple[Outcome, str, str]:
    ctx = context(request)
    _enabled(ctx)
    try:
        node = parse_query(q)
    except QueryError as exc:
        raise query_problem(exc) from None
    visible_to = identity.user.visible_to
    count = ctx.archive.search(node, limit=1, visible_to=visible_to).total
    if count == 0:
        return Outcome(0, dry_run=dry_run), _mailbox(ctx, identity, mailbox), ""
    rows = ctx.archive.iter_search(node, visible_to=visible_to)
    return _run(request, identity, rows, count, {"query": q}, mailbox, dry_run)


# -- the pages: a form's POST, answered 303 with a one-time message --------------------------


@pages_router.post("/messages/{ident}/restore")
def restore_message_form(
    request: Request,
    ident: str,
    identity: CsrfUser,
    mailbox: str = Form("", max_length=1000),
) -> Response:
    outcome, box, _, message = _one(request, identity, ident, mailbox)
    smtp = context(request).config.restore.smtp is not None
    return flash.redirect(
        request, identity, f"/messages/{message}", _notice(outcome, identity, box, smtp)
    )


@pages_router.post("/restore")
def restore_search_form(
    request: Request,
    identity: CsrfUser,
    q: str = Form("", max_length=4000),
    back: str = Form("", max_length=8000),
    mailbox: str = Form("", max_length=1000),
) -> Response:
    outcome, box, _ = _query(request, identity, q, mailbox)
    smtp = context(request).config.restore.smtp is not None
    target = safe_next(back) if back.startswith("/search") else "/search"
    return flash.redirect(request, identity, target, _notice(outcome, identity, box, smtp))


# -- the API ---------------------------------------------------------------------------------


class RestoreOne(BaseModel):
    mailbox: str | None = Field(
        None, max_length=1000, description="admins: the mailbox (login, or address) to restore to"
    )
    dry_run: bool = Field(False, description="count and check, restore nothing")


class RestoreQuery(RestoreOne):
    q: str = Field(max_length=4000, description="A query in the search language")


@api_router.post("/messages/{ident}/restore", summary="Restore one message", responses=_RESPONSES)
def restore_message(
    request: Request, ident: str, identity: CsrfUser, body: RestoreOne | None = None
) -> JSONResponse:
    """Restores the message to the caller's own mailbox (admins: to ``mailbox``): IMAP APPEND
    into the configured folder with its original date, skipped if already there; or SMTP
    re-delivery. ``{"restored": 1, "skipped": 0, ...}``. A cookie-authenticated call sends
    the session's CSRF token as ``X-CSRF-Token``."""
    sent = body or RestoreOne(mailbox=None, dry_run=False)
    outcome, box, where, _ = _one(request, identity, ident, sent.mailbox, sent.dry_run)
    return JSONResponse(_document(outcome, box, where))


@api_router.post("/restore", summary="Restore a search result", responses=_RESPONSES)
def restore_query(request: Request, body: RestoreQuery, identity: CsrfUser) -> JSONResponse:
    """Restores every message ``q`` matches that the caller may see (at most the configured
    ``max_messages``; more is a 400), as ``/messages/{id}/restore`` does one."""
    outcome, box, where = _query(request, identity, body.q, body.mailbox, body.dry_run)
    return JSONResponse(_document(outcome, box, where))
