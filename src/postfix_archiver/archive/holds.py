"""Legal holds and retention changes: the rules around them, over the catalog's rows.

A hold is a name, a query and a reason. Placing it holds every message matching the query
then, and, while it is active, every message archived later that matches (the ingest
committer asks ``ActiveHolds`` for the query trees inside its commit, so no arrival slips
between a hold being placed and the committer noticing it). A held message cannot be purged
or erased, whatever its retention (``Catalog.held``). Releasing a hold keeps its record and
what it held: an auditor later sees what was held, by whom, from when to when.

``retention set`` re-dates matching mail: the period counts from each message's arrival.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .. import retention
from ..catalog import HoldRow
from ..envelope import clean_text
from ..errors import ComplianceError, HoldExists, QueryError
from ..search import All, Node, parse_query

if TYPE_CHECKING:
    from .service import Archive

log = logging.getLogger("postfix_archiver.archive")

MAX_NAME = 64
MAX_REASON = 1000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)


def check_name(name: str) -> str:
    """A hold's name: what a case number or matter id looks like, safe in a URL and a shell."""
    if _NAME.fullmatch(name) is None:
        raise ComplianceError(
            f"bad hold name {_shown(name)!r}: 1-{MAX_NAME} ASCII letters, digits and . _ -, "
            "starting with a letter or digit (like case-2024-17)"
        )
    return name


def _shown(name: str) -> str:
    """A name as an error repeats it: cut, so that a hostile one stays one short line."""
    return name if len(name) <= 40 else name[:40] + "…"


def check_text(text: str) -> str:
    """A query or reason as stored: 8-bit bytes from argv arrive as surrogate escapes, which
    no SQLite text takes; read them as UTF-8 where they are, else Latin-1 (as erase does)."""
    return clean_text(text)


def check_reason(reason: str) -> str:
    """The reason as stored (cleaned); ComplianceError if it is too long or not one line."""
    reason = check_text(reason)
    if len(reason) > MAX_REASON or any(ord(c) < 32 and c not in "\t" for c in reason):
        raise ComplianceError(
            f"bad reason: at most {MAX_REASON} characters on one line, no control characters"
        )
    return reason


def add_hold(archive: Archive, name: str, query: str, reason: str, who: str) -> HoldRow:
    """Places a hold on what ``query`` matches now and on matching mail archived later."""
    check_name(name)
    reason = check_reason(reason)
    query = check_text(query)
    node = parse_query(query)  # a QueryError names the position
    added = archive.catalog.add_hold(name, query, node, reason, who, datetime.now(UTC))
    if added is None:
        raise HoldExists(
            f"a hold named {name!r} exists already (names are never reused, released holds "
            "included: choose another name)"
        )
    return added


def release_hold(archive: Archive, name: str, who: str) -> tuple[HoldRow, bool]:
    """Releases the hold; the row and whether this call released it (False: it was already)."""
    before = get_hold(archive, name)
    if not before.active:
        return before, False
    after = archive.catalog.release_hold(before.name, who, datetime.now(UTC))
    assert after is not None  # holds are never deleted
    return after, after.released_by == who


def list_holds(archive: Archive) -> list[HoldRow]:
    """Every hold, active and released, oldest first."""
    return archive.catalog.holds()


def get_hold(archive: Archive, name: str) -> HoldRow:
    found = archive.catalog.hold(name) if _NAME.fullmatch(name) else None
    if found is None:
        raise ComplianceError(f"no hold named {_shown(name)!r} (hold list shows them)")
    return found


def check_period(period: str) -> str:
    try:
        return retention.check(period)
    except ValueError as exc:
        raise ComplianceError(f"bad period: {exc}") from None


def set_retention(
    archive: Archive,
    query: str,
    period: str,
    *,
    dry_run: bool = False,
    progress: Callable[[int], object] | None = None,
    chunk: int = 1000,
) -> int:
    """Re-dates every message matching ``query``: ``period`` from its arrival (or forever).
    Returns how many messages match (and, unless ``dry_run``, were changed)."""
    check_period(period)
    node = parse_query(check_text(query))
    # the whole match first: a query on retained-until: would otherwise change under the
    # pages as they are re-dated
    matches = [(row.id, retention.until(period, row.received)) for row in archive.iter_search(node)]
    if dry_run:
        return len(matches)
    for start in range(0, len(matches), chunk):
        part = matches[start : start + chunk]
        archive.catalog.set_retain_until(part)
        if progress is not None:
            progress(len(part))
    return len(matches)


def count_matching(archive: Archive, query: str) -> int:
    return archive.search(query, limit=1).total


class ActiveHolds:
    """The query trees of the active holds for the ingest committer, parsed once per hold.

    The committer's catalog reads which holds are active inside each commit (a few rows: the
    cost with no hold active is that one read) and asks for their trees here; a hold placed
    or released by another process is noticed at the next commit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trees: dict[tuple[int, str], Node] = {}

    def __call__(self, active: Sequence[tuple[int, str]]) -> list[tuple[int, Node]]:
        with self._lock:
            trees: dict[tuple[int, str], Node] = {}
            for key in active:
                tree = self._trees.get(key)
                trees[key] = tree if tree is not None else _tree(*key)
            self._trees = trees  # released holds drop out of the cache
            return [(hold, tree) for (hold, _), tree in trees.items()]


def _tree(hold: int, query: str) -> Node:
    try:
        # stored: a hold placed before unknown fields were errors keeps its meaning
        return parse_query(query, stored=True)
    except QueryError as exc:
        # its query parsed when the hold was placed; a later version reads it otherwise.
        # Holding too much is the error that can be undone: hold every new message
        log.error("hold %d: its query no longer parses (%s); it holds every new message", hold, exc)
        return All()
