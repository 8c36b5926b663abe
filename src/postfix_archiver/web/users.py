"""The users pages (admins): add, change, set a password, remove after a confirmation, API
tokens; every change answers 303 back to the page with a one-time message (``flash``).

A refused change makes no change: it answers 400 with the page and the form as sent (less the
password), so nothing typed is lost.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..accounts import MIN_PASSWORD, ROLES, User
from ..errors import AccountError
from . import flash
from .auth import CsrfUser, Identity, PageUser, require
from .context import HttpProblem, context
from .pages import page

router = APIRouter(include_in_schema=False)

# a user name in a path: at most what check_name allows and then some, never a 500
UserName = Annotated[str, Path(max_length=200)]
TokenId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _addresses(text: str) -> list[str]:
    return [a for a in re.split(r"[\s,;]+", text) if a]


def _admin(identity: Identity) -> None:
    require(identity, identity.user.is_admin, "user management")


def _url(name: str, tail: str = "") -> str:
    return f"/users/{quote(name, safe='')}{tail}"


def _users_page(
    request: Request,
    identity: Identity,
    *,
    error: str | None = None,
    new: dict[str, str] | None = None,
    edit: dict[str, str] | None = None,
) -> HTMLResponse:
    """The list; ``error`` with the add form (``new``) or a row's form (``edit``) as sent."""
    ctx = context(request)
    shown = flash.take(request, identity)
    users = ctx.accounts.users()
    response = page(
        request,
        "users.html",
        identity,
        status=400 if error else 200,
        section="users",
        users=users,
        tokens={u.name: len(ctx.accounts.tokens(u.name)) for u in users},
        roles=ROLES,
        min_password=MIN_PASSWORD,
        flash=shown,
        error=error,
        adding=new is not None,
        new=new or {"name": "", "role": "user", "addresses": ""},
        edit=edit or {},
    )
    flash.forget(request, response)
    return response


def _found(request: Request, name: str) -> User:
    user = context(request).accounts.get_user(name)
    if user is None:
        raise HttpProblem(404, f"no user {name!r}: it may have been removed meanwhile")
    return user


@router.get("/users")
def users_page(request: Request, identity: PageUser) -> HTMLResponse:
    _admin(identity)
    return _users_page(request, identity)


@router.post("/users")
def add_user(
    request: Request,
    identity: CsrfUser,
    name: str = Form("", max_length=200),
    role: str = Form("", max_length=20),
    addresses: str = Form("", max_length=20_000),
    password: str = Form("", max_length=4096),
) -> Response:
    _admin(identity)
    ctx = context(request)
    name = name.strip()
    sent = {"name": name, "role": role, "addresses": addresses}
    if ctx.accounts.get_user(name) is not None:
        return _users_page(
            request,
            identity,
            new=sent,
            error=f"A user {name!r} exists already: choose another name, or change "
            "theirs in the list above.",
        )
    try:
        user = ctx.accounts.add_user(name, role, password, _addresses(addresses))
    except AccountError as exc:
        return _users_page(request, identity, new=sent, error=str(exc))
    ctx.audit(request, identity, "user.add", name=user.name, role=user.role,
              addresses=list(user.addresses))  # fmt: skip
    # the form posts to /users#add (an error shows it at once); without a fragment of its
    # own the redirect would inherit that one and hide the message at the top
    return flash.redirect(request, identity, "/users#status", f"Added {user.name} ({user.role}).")


@router.post("/users/{name}")
def update_user(
    request: Request,
    identity: CsrfUser,
    name: UserName,
    role: str = Form("", max_length=20),
    addresses: str = Form("", max_length=20_000),
) -> Response:
    _admin(identity)
    ctx = context(request)
    _found(request, name)
    try:
        user = ctx.accounts.update_user(name, role=role, addresses=_addresses(addresses))
    except AccountError as exc:
        edit = {"name": name, "role": role, "addresses": addresses}
        return _users_page(request, identity, edit=edit, error=f"{name}: {exc}")
    ctx.audit(request, identity, "user.update", name=user.name, role=user.role,
              addresses=list(user.addresses))  # fmt: skip
    return flash.redirect(request, identity, "/users", f"Saved {user.name}.")


@router.post("/users/{name}/password")
def reset_password(
    request: Request,
    identity: CsrfUser,
    name: UserName,
    password: str = Form("", max_length=4096),
) -> Response:
    _admin(identity)
    ctx = context(request)
    _found(request, name)
    try:
        user = ctx.accounts.set_password(name, password)
    except AccountError as exc:
        return _users_page(request, identity, error=f"{name}: {exc}")
    ctx.audit(request, identity, "user.password", name=user.name)
    return flash.redirect(
        request, identity, "/users", f"New password set for {user.name}; their sessions ended."
    )


# -- removing: a confirmation page, then the change -------------------------------------------


@router.get("/users/{name}/remove")
def confirm_remove(request: Request, identity: PageUser, name: UserName) -> HTMLResponse:
    _admin(identity)
    user = _found(request, name)
    if user.name == identity.user.name:
        raise HttpProblem(400, "You cannot remove yourself: another admin can.")
    return page(
        request,
        "user_remove.html",
        identity,
        section="users",
        user=user,
        tokens=len(context(request).accounts.tokens(user.name)),
        action=_url(user.name, "/delete"),
    )


@router.post("/users/{name}/delete")
def remove_user(
    request: Request,
    identity: CsrfUser,
    name: UserName,
    confirm: str = Form("", max_length=200),
) -> Response:
    _admin(identity)
    ctx = context(request)
    if confirm != name:
        # the confirmation page's form names the user; anything else asks first
        return RedirectResponse(_url(name, "/remove"), status_code=303)
    if name == identity.user.name:
        return _users_page(
            request, identity, error="You cannot remove yourself: another admin can."
        )
    try:
        ctx.accounts.remove_user(name)
    except AccountError as exc:
        return _users_page(request, identity, error=f"{name}: {exc}")
    ctx.audit(request, identity, "user.remove", name=name)
    return flash.redirect(
        request, identity, "/users", f"Removed {name} with their sessions and API tokens."
    )


# -- API tokens --------------------------------------------------------------------------------


@router.get("/users/{name}/tokens")
def tokens_page(request: Request, identity: PageUser, name: UserName) -> HTMLResponse:
    _admin(identity)
    user = _found(request, name)
    shown = flash.take(request, identity)
    response = page(
        request,
        "user_tokens.html",
        identity,
        section="users",
        user=user,
        tokens=context(request).accounts.tokens(user.name),
        flash=shown,
        base=_url(user.name, "/tokens"),
    )
    flash.forget(request, response)
    return response


@router.post("/users/{name}/tokens")
def create_token(
    request: Request,
    identity: CsrfUser,
    name: UserName,
    label: str = Form("", max_length=100),
) -> Response:
    _admin(identity)
    ctx = context(request)
    user = _found(request, name)
    try:
        info, secret = ctx.accounts.create_token(user.name, label)
    except AccountError as exc:  # an IMAP or LDAP user: no tokens
        target = _url(user.name, "/tokens")
        return flash.redirect(request, identity, target, str(exc), kind="error")
    ctx.audit(request, identity, "token.create", name=user.name, token=info.id, label=info.label)
    return flash.redirect(
        request,
        identity,
        _url(user.name, "/tokens"),
        f"API token {info.id} ({info.label}) for {user.name}: copy it now, it is shown only "
        "this once. Use it as 'Authorization: Bearer TOKEN'.",
        secret=secret,
    )


@router.post("/users/{name}/tokens/{token_id}/revoke")
def revoke_token(
    request: Request, identity: CsrfUser, name: UserName, token_id: TokenId
) -> Response:
    _admin(identity)
    ctx = context(request)
    user = _found(request, name)
    target = _url(user.name, "/tokens")
    if ctx.accounts.revoke_token(user.name, token_id) == 0:
        return flash.redirect(
            request, identity, target, f"{user.name} has no token {token_id}.", kind="error"
        )
    ctx.audit(request, identity, "token.revoke", name=user.name, token=token_id)
    return flash.redirect(request, identity, target, f"Revoked token {token_id} of {user.name}.")
