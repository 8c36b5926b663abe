"""What every SQL backend of the accounts shares: values made storable, rows made records,
the audit log's filters and its next entry.

A backend keeps only its connection, its SQL dialect (the placeholder, its case-insensitive
LIKE) and its locking; everything a backend could get subtly different from another (how a
row reads, what a filter matches, how an entry is chained) is written once, here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..chain import GENESIS
from ..errors import AccountError
from .audit import audit_hash
from .checks import check_name, external_name, is_external
from .records import AuditEntry, User

# the largest number SQLite and PostgreSQL (BIGINT) bind: past it an id, a limit or an
# offset raises instead of answering; nothing is that far
MAX_INT = 2**63 - 1
USER_COLUMNS = "u.id, u.name, u.role, u.addresses, u.created, u.last_login"
AUDIT_COLUMNS = 'id, time, "user", client, action, detail, prev_hash, hash'


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def storable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters and storable anywhere: PostgreSQL's text holds no
    NUL and no database encodes a lone surrogate, and both come in from hostile login names,
    labels and clients (each becomes U+FFFD, on every backend, so the chain is the same)."""
    cut = text[:limit].replace("\x00", "\ufffd")
    return cut.encode("utf-8", "replace").decode("utf-8")


def possible_name(name: str) -> str | None:
    """``name`` if a user could have it, else None: every stored name passed
    ``check_name``, so any other (a NUL, a lone surrogate, a megabyte, 8-bit letters) is no
    user, and never reaches the database (which would raise on some of them)."""
    try:
        if is_external(name):  # ``imap:LOGIN``, ``ldap:LOGIN``: made by external_name
            origin, _, login = name.partition(":")
            return name if external_name(origin, login) == name else None
        return check_name(name)
    except AccountError:
        return None


def token_label(label: str) -> str:
    return storable(label.strip(), 100) or "api"


def bounded(number: int) -> int:
    """A limit or offset as a database binds it: never negative, never past 64 bits."""
    return max(0, min(number, MAX_INT))


def like(text: str) -> str:
    """``text`` for a LIKE pattern with ``ESCAPE '\\'``: its wildcards are literal."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def user_row(r: Sequence[Any]) -> User:
    """A ``User`` from a row starting with ``USER_COLUMNS``."""
    return User(
        id=int(r[0]),
        name=str(r[1]),
        role=str(r[2]),
        addresses=tuple(json.loads(str(r[3]))),
        created=str(r[4]),
        last_login=None if r[5] is None else str(r[5]),
    )


def entry_row(r: Sequence[Any]) -> AuditEntry:
    """An ``AuditEntry`` from a row of ``AUDIT_COLUMNS``."""
    return AuditEntry(
        id=int(r[0]),
        time=str(r[1]),
        user=str(r[2]),
        client=str(r[3]),
        action=str(r[4]),
        detail=json.loads(str(r[5])),
        prev_hash=str(r[6]),
        hash=str(r[7]),
    )


def next_entry(
    last: Sequence[Any] | None, user: str, client: str, action: str, detail: dict[str, Any] | None
) -> AuditEntry:
    """The entry after ``last`` (the newest row's id and hash, None for an empty log). The
    backend reads ``last`` and inserts the result in one transaction that no other writer
    of the log can interleave with (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory
    lock), or two writers would chain to the same entry."""
    detail = json.loads(json.dumps(detail or {}, default=str))
    user, client, action = storable(user, 200), storable(client, 200), storable(action, 200)
    entry_id, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
    when = now_iso()
    digest = audit_hash(prev, entry_id, when, user, client, action, detail)
    return AuditEntry(entry_id, when, user, client, action, detail, prev, digest)


def entry_params(entry: AuditEntry) -> tuple[object, ...]:
    """``entry`` as the values of ``AUDIT_COLUMNS`` (detail as JSON, non-ASCII escaped)."""
    return (
        entry.id, entry.time, entry.user, entry.client, entry.action,
        json.dumps(entry.detail), entry.prev_hash, entry.hash,
    )  # fmt: skip


@dataclass(frozen=True)
class Dialect:
    """How a backend writes a bound parameter and an ASCII-case-insensitive LIKE."""

    param: str
    like: str


def audit_where(
    d: Dialect,
    *,
    user: str | None,
    action: str | None,
    since: str | None,
    until: str | None,
    text: str | None,
    before: int | None,
) -> tuple[str, list[object]]:
    """The WHERE clause of ``Accounts.audit``'s filters and its parameters. Filter values
    are made storable as entries are, so a NUL in one matches what a NUL became."""
    p = d.param
    params: list[object] = []
    conditions = ["1=1"]
    if user:
        conditions.append(f'"user" = {p}')
        params.append(storable(user, 200))
    if action:
        conditions.append(f"(action = {p} OR action {d.like} {p} ESCAPE '\\')")
        action = storable(action, 200)
        params.extend([action, like(action) + ".%"])
    if since:
        conditions.append(f"time >= {p}")
        params.append(storable(since, 100))
    if until:
        conditions.append(f"time < {p}")
        params.append(storable(until, 100))
    if text:
        # detail is stored as JSON with non-ASCII escaped (\u00e9): look for both forms
        text = storable(text, len(text))
        hay = "(\"user\" || ' ' || client || ' ' || action || ' ' || detail)"
        conditions.append(f"({hay} {d.like} {p} ESCAPE '\\' OR {hay} {d.like} {p} ESCAPE '\\')")
        params.extend(f"%{like(t)}%" for t in (text, json.dumps(text)[1:-1]))
    if before is not None:
        conditions.append(f"id < {p}")
        params.append(min(before, MAX_INT))
    return " AND ".join(conditions), params
