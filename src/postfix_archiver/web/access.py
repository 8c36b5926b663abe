"""Which messages a caller may see: one check, used by every route that takes a message id."""

from __future__ import annotations

from ..errors import NotFoundError
from .auth import Identity
from .context import WebContext, not_found

_MAX_ID = 2**63 - 1  # SQLite's INTEGER; a bigger number is simply not an id


def visible_message(ctx: WebContext, identity: Identity, ident: str) -> int:
    """The archive id for ``ident`` (a number or a SHA-256) if ``identity`` may see it.

    Unknown, malformed and not-yours ids all raise the same 404: an id tells a user
    nothing about mail that is not theirs.
    """
    try:
        message = ctx.archive.resolve(ident)
        if not 0 < message <= _MAX_ID:
            raise not_found()
        ctx.archive.get(message)  # raises NotFoundError for an unknown id
    except NotFoundError:
        raise not_found() from None
    user = identity.user
    if not user.sees_all and not ctx.archive.is_visible(message, user.addresses):
        raise not_found()
    return message
