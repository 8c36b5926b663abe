"""The audit log's hash chain, the same for every backend (see ``postfix_archiver.chain``).

An entry's hash covers the previous entry's hash, its id, time, user, client, action and
detail; ``verify_entries`` recomputes the chain from the first entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import chain
from .records import AuditCheck, AuditEntry


def audit_hash(
    prev_hash: str,
    id: int,
    when: str,
    user: str,
    client: str,
    action: str,
    detail: dict[str, Any],
) -> str:
    entry = {
        "id": id,
        "time": when,
        "user": user,
        "client": client,
        "action": action,
        "detail": detail,
    }
    return chain.link_hash(prev_hash, entry)


def verify_entries(entries: Iterable[AuditEntry]) -> AuditCheck:
    """Check ``entries`` (all of them, oldest first); the first break is the problem."""
    links = (chain.Link(e.id, e.prev_hash, e.hash, e.chained()) for e in entries)
    check = chain.check_links(links, "entry")
    return AuditCheck(check.ok, check.links, check.head, check.problem)
