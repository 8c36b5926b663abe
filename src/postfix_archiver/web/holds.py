"""Legal holds on the web: the ``/holds`` page (admins place and release holds, auditors see
them) and ``/api/v1/holds``. Every route checks the role; every change is audited."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from ..archive import holds
from ..errors import ComplianceError, HoldExists, QueryError
from .api import query_problem
from .auth import ApiUser, CsrfUser, Identity, PageUser, require
from .context import HttpProblem, context
from .pages import page

pages_router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["holds"])

_ERROR: dict[str, Any] = {
    "description": 'an error: {"error": message}',
    "content": {"application/json": {}},
}
_COMMON: dict[int | str, dict[str, Any]] = {401: _ERROR, 403: _ERROR}


def _see(identity: Identity) -> None:
    require(identity, identity.user.can_audit, "legal holds")


def _change(identity: Identity) -> None:
    require(identity, identity.user.is_admin, "placing and releasing legal holds")


def _add(request: Request, identity: Identity, name: str, query: str, reason: str) -> str:
    """Places the hold (audited); the notice to show. ComplianceError, QueryError if refused."""
    ctx = context(request)
    added = holds.add_hold(ctx.archive, name.strip(), query, reason.strip(), identity.user.name)
    ctx.audit(request, identity, "hold.add", name=added.name, query=query,
              reason=added.reason, count=added.messages)  # fmt: skip
    return f"Hold {added.name} placed: {added.messages} messages held."


def _release(request: Request, identity: Identity, name: str) -> str:
    ctx = context(request)
    released, changed = holds.release_hold(ctx.archive, name, identity.user.name)
    if not changed:
        return f"Hold {released.name} was already released by {released.released_by}."
    ctx.audit(request, identity, "hold.release", name=released.name, count=released.messages)
    return f"Hold {released.name} released."


# -- the page ------------------------------------------------------------------------------


def _holds_page(
    request: Request,
    identity: Identity,
    *,
    notice: str | None = None,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    return page(
        request,
        "holds.html",
        identity,
        status=400 if error else 200,
        section="holds",
        holds=holds.list_holds(context(request).archive),
        notice=notice,
        error=error,
        form=form or {},
    )


@pages_router.get("/holds")
def holds_page(request: Request, identity: PageUser) -> HTMLResponse:
    _see(identity)
    return _holds_page(request, identity)


@pages_router.post("/holds")
def add_hold_form(
    request: Request,
    identity: CsrfUser,
    name: str = Form("", max_length=200),
    query: str = Form("", max_length=4000),
    reason: str = Form("", max_length=2000),
) -> HTMLResponse:
    _change(identity)
    try:
        notice = _add(request, identity, name, query, reason)
    except (ComplianceError, QueryError) as exc:
        form = {"name": name, "query": query, "reason": reason}
        return _holds_page(request, identity, error=str(exc), form=form)
    return _holds_page(request, identity, notice=notice)


@pages_router.post("/holds/{name}/release")
def release_hold_form(request: Request, name: str, identity: CsrfUser) -> HTMLResponse:
    _change(identity)
    try:
        notice = _release(request, identity, name)
    except ComplianceError as exc:
        return _holds_page(request, identity, error=str(exc))
    return _holds_page(request, identity, notice=notice)


# -- the API -------------------------------------------------------------------------------


class NewHold(BaseModel):
    name: str = Field(max_length=200, description="letters, digits and . _ - (case-2024-17)")
    query: str = Field(max_length=4000, description="A query in the search language")
    reason: str = Field("", max_length=2000)


@api_router.get("/holds", summary="Legal holds", responses=_COMMON)
def list_holds(request: Request, identity: ApiUser) -> JSONResponse:
    """Every hold, active and released, oldest first (auditors and admins): the shape of
    ``postfix-archiver hold list --json``."""
    _see(identity)
    return JSONResponse(
        {"holds": [h.to_json() for h in holds.list_holds(context(request).archive)]}
    )


@api_router.get("/holds/{name}", summary="One legal hold", responses={**_COMMON, 404: _ERROR})
def get_hold(request: Request, name: str, identity: ApiUser) -> JSONResponse:
    _see(identity)
    try:
        return JSONResponse(holds.get_hold(context(request).archive, name).to_json())
    except ComplianceError as exc:
        raise HttpProblem(404, str(exc)) from None


@api_router.post(
    "/holds",
    summary="Place a legal hold",
    status_code=201,
    responses={**_COMMON, 400: _ERROR, 409: _ERROR},
)
def add_hold(request: Request, body: NewHold, identity: CsrfUser) -> JSONResponse:
    """Holds what the query matches now and matching mail archived later (admins). A
    cookie-authenticated call sends the session's CSRF token as ``X-CSRF-Token``."""
    _change(identity)
    try:
        _add(request, identity, body.name, body.query, body.reason)
    except QueryError as exc:
        raise query_problem(exc) from None
    except ComplianceError as exc:
        raise HttpProblem(409 if isinstance(exc, HoldExists) else 400, str(exc)) from None
    found = holds.get_hold(context(request).archive, body.name.strip())
    return JSONResponse(found.to_json(), status_code=201)


@api_router.post(
    "/holds/{name}/release",
    summary="Release a legal hold",
    responses={**_COMMON, 404: _ERROR},
)
def release_hold(request: Request, name: str, identity: CsrfUser) -> JSONResponse:
    """Releases the hold (admins); its record and what it held stay."""
    _change(identity)
    try:
        _release(request, identity, name)
    except ComplianceError as exc:
        raise HttpProblem(404, str(exc)) from None
    return JSONResponse(holds.get_hold(context(request).archive, name).to_json())
