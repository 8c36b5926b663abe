"""One-time status messages after a change (redirect after POST).

A change answers 303 to the page it came from and leaves its message ("Added frank
(user).") in a cookie that the page shows once and deletes. The cookie is signed with the
session's CSRF secret (kept on the server), so a link or another site cannot make the page
say anything: only messages this server wrote are shown, and only to the session they were
written for. A caller with an API token has no session: it gets the redirect alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from .context import WebContext, context
from .identity import Identity

FLASH_SECONDS = 120  # long enough for a slow redirect, short enough to be gone on a later visit
Kind = Literal["notice", "error"]


@dataclass(frozen=True, slots=True)
class Flash:
    kind: Kind
    text: str
    secret: str | None = None  # a new API token, shown once


def _name(ctx: WebContext) -> str:
    return ("__Host-" if ctx.secure_cookies else "") + "pa_flash"


def _sign(key: str, payload: bytes) -> str:
    return hmac.new(key.encode(), payload, hashlib.sha256).hexdigest()


def redirect(
    request: Request,
    identity: Identity,
    target: str,
    text: str,
    *,
    kind: Kind = "notice",
    secret: str | None = None,
) -> Response:
    """303 to ``target`` with ``text`` to show there once."""
    ctx = context(request)
    response = RedirectResponse(target, status_code=303)
    if identity.csrf is None:
        return response
    doc = {"kind": kind, "text": text, **({"secret": secret} if secret else {})}
    payload = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()
    response.set_cookie(
        _name(ctx),
        f"{payload}.{_sign(identity.csrf, payload.encode())}",
        max_age=FLASH_SECONDS,
        path="/",
        secure=ctx.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


def take(request: Request, identity: Identity) -> Flash | None:
    """The message left for this page by this session's last change, if any (``forget``
    deletes it from the browser with the page's answer)."""
    ctx = context(request)
    value = request.cookies.get(_name(ctx))
    if not value or identity.csrf is None or len(value) > 8000:
        return None
    payload, _, signature = value.partition(".")
    if not hmac.compare_digest(signature.encode(), _sign(identity.csrf, payload.encode()).encode()):
        return None  # another session's, or not ours at all
    try:
        doc = json.loads(base64.urlsafe_b64decode(payload))
        kind, text, secret = doc["kind"], doc["text"], doc.get("secret")
    except (ValueError, KeyError, TypeError):
        return None
    if kind not in ("notice", "error") or not isinstance(text, str):
        return None
    return Flash(kind, text, secret if isinstance(secret, str) else None)


def forget(request: Request, response: Response) -> None:
    ctx = context(request)
    if _name(ctx) in request.cookies:
        response.delete_cookie(
            _name(ctx), path="/", secure=ctx.secure_cookies, httponly=True, samesite="strict"
        )
