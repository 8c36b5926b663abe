"""The REST API under /api/v1. Authenticated by API token (Bearer) or session cookie.

``GET /api/v1/messages?q=`` answers exactly what ``postfix-archiver search --json`` prints.
Downloads are always attachments (``application/octet-stream`` for attached files, so a
browser never renders them); exports stream.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from .. import export
from ..archive import search_document, stats_document
from ..errors import QueryError
from ..search import MAX_INT, Order, parse_query
from .access import visible_message
from .auth import ApiUser, require
from .context import HttpProblem, context, not_found
from .export_names import export_disposition
from .render import attachment_json, content_disposition, envelopes_for, message_document

router = APIRouter(prefix="/api/v1", tags=["archive"])

ExportFormat = Literal["mbox", "eml-zip"]
_EXPORT_TYPES = {"mbox": ("application/mbox", "mbox"), "eml-zip": ("application/zip", "zip")}

_ERROR: dict[str, Any] = {
    "description": 'an error: {"error": message}',
    "content": {"application/json": {}},
}
_QUERY_ERROR: dict[str, Any] = {
    "description": 'a bad query: {"error": message, "reason": ..., "position": 0-based offset}',
    "content": {"application/json": {}},
}
_COMMON: dict[int | str, dict[str, Any]] = {401: _ERROR, 403: _ERROR}
_BY_ID: dict[int | str, dict[str, Any]] = {**_COMMON, 404: _ERROR}


def query_problem(exc: QueryError) -> HttpProblem:
    return HttpProblem(400, str(exc), extra={"reason": exc.reason, "position": exc.position})


@router.get(
    "/messages",
    summary="Search",
    responses={**_COMMON, 400: _QUERY_ERROR},
)
def search(
    request: Request,
    identity: ApiUser,
    q: str = Query("", max_length=4000, description="A query in the search language"),
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
    order: Order = "-date",
    snippets: bool = Query(
        True, description="0: each result's snippet is null (no message is read for it)"
    ),
) -> JSONResponse:
    """``{"total": N, "results": [...]}``, the shape of ``postfix-archiver search --json``."""
    ctx = context(request)
    try:
        page = ctx.archive.search(
            q, limit=limit, offset=offset, order=order, visible_to=identity.user.visible_to
        )
    except QueryError as exc:
        ctx.audit(request, identity, "search", query=q, error=str(exc))
        raise query_problem(exc) from None
    ctx.audit(request, identity, "search", query=q, order=order, offset=offset, total=page.total)
    shown = ctx.archive.snippets(page.results, q) if snippets else None
    return JSONResponse(search_document(page, shown))


@router.get("/messages/{ident}", summary="Message metadata", responses=_BY_ID)
def message(request: Request, ident: str, identity: ApiUser) -> JSONResponse:
    """Summary, envelopes (Bcc recipients included, for those who may see them),
    attachments, parse defects, decoded headers and the text body: the keys of
    ``postfix-archiver show --json``. ``ident`` is the archive id or the SHA-256."""
    ctx = context(request)
    message_id = visible_message(ctx, identity, ident)
    read = ctx.archive.read(message_id)
    ctx.audit(request, identity, "view", message=message_id)
    shown = envelopes_for(identity.user, read.envelopes, read.parsed)
    return JSONResponse(
        message_document(read.view, read.parsed, shown, show_holds=identity.user.sees_all)
    )


@router.get(
    "/messages/{ident}/raw",
    summary="Original message (.eml)",
    responses={**_BY_ID, 200: {"content": {"message/rfc822": {}}}},
    response_class=Response,
)
def raw(request: Request, ident: str, identity: ApiUser) -> Response:
    """The message exactly as archived, byte for byte, as an ``.eml`` attachment."""
    ctx = context(request)
    message_id = visible_message(ctx, identity, ident)
    data = ctx.archive.raw(message_id)
    ctx.audit(request, identity, "download", message=message_id, part="raw", size=len(data))
    name = f"message-{message_id}.eml"
    return Response(
        data,
        media_type="message/rfc822",
        headers={"Content-Disposition": content_disposition(name, name)},
    )


@router.get("/messages/{ident}/attachments", summary="List attachments", responses=_BY_ID)
def attachments(request: Request, ident: str, identity: ApiUser) -> JSONResponse:
    ctx = context(request)
    message_id = visible_message(ctx, identity, ident)
    rows = ctx.archive.attachments(message_id)
    extracts = ctx.archive.extractions(rows)
    return JSONResponse(
        {"attachments": [attachment_json(message_id, a, extracts.get(a.sha256)) for a in rows]}
    )


@router.get(
    "/messages/{ident}/attachments/{index}",
    summary="Download an attachment",
    responses={**_BY_ID, 200: {"content": {"application/octet-stream": {}}}},
    response_class=Response,
)
def attachment(
    request: Request, ident: str, identity: ApiUser, index: int = Path(ge=0, le=MAX_INT)
) -> Response:
    """The decoded attachment ``index`` (as listed), always as ``application/octet-stream``
    with a sanitized file name: the browser saves it, never renders it."""
    ctx = context(request)
    message_id = visible_message(ctx, identity, ident)
    listed = {a.index for a in ctx.archive.attachments(message_id)}
    if index not in listed:
        raise not_found()
    meta, payload = ctx.archive.attachment(message_id, index)
    ctx.audit(
        request,
        identity,
        "download",
        message=message_id,
        part="attachment",
        index=index,
        filename=meta.filename,
        sha256=meta.sha256,
    )
    fallback = f"attachment-{message_id}-{index}.bin"
    return Response(
        payload,
        media_type="application/octet-stream",
        headers={"Content-Disposition": content_disposition(meta.filename, fallback)},
    )


@router.get(
    "/export",
    summary="Export a search result",
    responses={
        **_COMMON,
        400: _QUERY_ERROR,
        200: {"content": {"application/mbox": {}, "application/zip": {}}},
    },
    response_class=StreamingResponse,
)
def export_messages(
    request: Request,
    identity: ApiUser,
    q: str = Query("", max_length=4000),
    format: ExportFormat = "mbox",
) -> StreamingResponse:
    """Every message matching ``q`` (oldest first), streamed as an mbox (mboxrd) or a zip
    of ``.eml`` files, byte for byte as archived."""
    ctx = context(request)
    try:
        node = parse_query(q)
    except QueryError as exc:
        ctx.audit(request, identity, "export", query=q, format=format, error=str(exc))
        raise query_problem(exc) from None
    # the ids first: the export is what matched now, even while new mail arrives
    ids = [r.id for r in ctx.archive.iter_search(node, visible_to=identity.user.visible_to)]
    ctx.audit(request, identity, "export", query=q, format=format, count=len(ids))
    media_type, ext = _EXPORT_TYPES[format]
    rows = (ctx.archive.get(i) for i in ids)
    return StreamingResponse(
        export.stream(ctx.archive, rows, format),
        media_type=media_type,
        headers={"Content-Disposition": export_disposition(q, ext, datetime.now(UTC).date())},
    )


@router.get("/stats", summary="Archive statistics", responses=_COMMON)
def stats(request: Request, identity: ApiUser) -> JSONResponse:
    """``postfix-archiver stats --json`` plus messages per day (auditors and admins)."""
    ctx = context(request)
    require(identity, identity.user.sees_all, "archive statistics")
    per_day = [{"day": d, "messages": c, "bytes": s} for d, c, s in ctx.archive.per_day()]
    return JSONResponse({**stats_document(ctx.archive.stats()), "per_day": per_day})


@router.get("/audit", summary="Audit log", responses=_COMMON)
def audit(
    request: Request,
    identity: ApiUser,
    limit: int = Query(100, ge=1, le=1000),
    # bounded: past SQLite's 64-bit integers the query itself fails (a 500, not a 400)
    offset: int = Query(0, ge=0, le=MAX_INT),
    user: str | None = Query(None, max_length=200),
    action: str | None = Query(None, max_length=50),
    text: str | None = Query(
        None, max_length=200, description="A literal substring of user, client, action or detail"
    ),
    since: str | None = Query(
        None, max_length=40, description="ISO 8601 instant, e.g. 2026-01-31T00:00:00Z (included)"
    ),
    until: str | None = Query(None, max_length=40, description="ISO 8601 instant (excluded)"),
) -> JSONResponse:
    """Audit entries, newest first (auditors and admins), filtered as the audit log page
    filters them. ``action=user`` also matches ``user.add``, ``user.remove`` and the other
    user-management actions."""
    ctx = context(request)
    require(identity, identity.user.can_audit, "the audit log")
    total, entries = ctx.accounts.audit(
        limit=limit,
        offset=offset,
        user=user,
        action=action,
        text=text or None,
        since=_instant(since, "since"),
        until=_instant(until, "until"),
    )
    return JSONResponse({"total": total, "entries": [e.to_json() for e in entries]})


def _instant(value: str | None, name: str) -> str | None:
    """An ISO 8601 instant as the audit log stores its times (UTC); a time without a zone
    is UTC. Anything else is a 400 naming the parameter."""
    if not value:
        return None
    try:
        if not value.isascii():  # fromisoformat would take other scripts' digits
            raise ValueError
        when = datetime.fromisoformat(value)
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise HttpProblem(
            400, f"bad {name} {shown!r}: an ISO 8601 time, e.g. 2026-01-31T00:00:00Z"
        ) from None
    return when.isoformat()


@router.get("/me", summary="Who am I", responses=_COMMON)
def me(identity: ApiUser) -> JSONResponse:
    return JSONResponse({**identity.user.to_json(), "via": identity.via})


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, identity: ApiUser) -> JSONResponse:
    """The OpenAPI schema, for authenticated callers only (like everything but /login)."""
    return JSONResponse(request.app.openapi())
