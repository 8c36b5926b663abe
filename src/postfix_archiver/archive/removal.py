"""Purge and erasure: removing messages so that nothing of them can be read again, and so that
the chain says what went, why, by whom and when.

The order makes a crash harmless, as ingest's does: first ONE catalog transaction removes the
rows and the index entry and appends a tombstone per message, recording the blobs no kept
message uses as pending; only then are those blobs deleted from the store, and the pending
record dropped. A crash between the two leaves blobs nothing refers to, which the next purge
or erase deletes (``finish_pending``) before anything else. A message under an active hold is
never removed: holds are checked when planning and again inside the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..catalog import IndexEntry, MessageRow, Removal
from ..envelope import clean_text
from ..errors import ArchiverError, StoreError
from . import events
from .indexer import entry_of, signature_of
from .service import Archive

log = logging.getLogger("postfix_archiver.archive")

PURGE = "purge"
ERASE = "erase"
# a reason is kept in every tombstone and the audit log: a paragraph, not a document
MAX_REASON = 1000
# messages per catalog transaction: each ends by merging the index, which costs about as much
# as the index is large, so not one a message; small enough that mail is not held up long
BATCH = 500


@dataclass
class Plan:
    """What a purge or an erasure would remove, and what it keeps because it is held."""

    remove: list[MessageRow] = field(default_factory=list)
    held: list[tuple[MessageRow, list[str]]] = field(default_factory=list)
    # a purge's: what "expired" meant when planned, checked again as each message goes
    expired_before: datetime | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "remove": [_summary(r) for r in self.remove],
            "held": [{**_summary(r), "holds": holds} for r, holds in self.held],
        }


@dataclass
class Outcome:
    """What a removal did: the messages removed (with their tombstone's event number), those
    kept because a hold came meanwhile, those a purge kept because their retention was
    extended meanwhile, and the blobs deleted from the store. ``logs_kept``: the SQLite files
    whose write-ahead log a reader in another process kept from being cut, so it may still
    hold removed data (the next purge or erase cuts it)."""

    removed: list[tuple[MessageRow, int]] = field(default_factory=list)
    held: list[MessageRow] = field(default_factory=list)
    retained: list[MessageRow] = field(default_factory=list)
    blobs_deleted: int = 0
    reindexed: bool = False
    logs_kept: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "removed": [{**_summary(r), "tombstone": seq} for r, seq in self.removed],
            "held_meanwhile": [_summary(r) for r in self.held],
            "retention_changed": [_summary(r) for r in self.retained],
            "blobs_deleted": self.blobs_deleted,
            "index_rebuilt": self.reindexed,
            "logs_not_cleared": self.logs_kept,
        }


def _summary(row: MessageRow) -> dict[str, object]:
    return {
        "id": row.id,
        "sha256": row.sha256,
        "size": row.size,
        "date": row.date.isoformat(),
        "retain_until": row.retain_until.isoformat() if row.retain_until else None,
    }


def plan_purge(archive: Archive, now: datetime | None = None) -> Plan:
    """Messages past their retention date: removed unless held."""
    now = now or datetime.now(UTC)
    plan = _plan(archive, list(archive.catalog.expired(now)))
    plan.expired_before = now
    return plan


def plan_erase(archive: Archive, query: str) -> Plan:
    """Messages matching ``query``: removed unless held (then the erasure is refused)."""
    return _plan(archive, list(archive.iter_search(query)))


def _plan(archive: Archive, rows: list[MessageRow]) -> Plan:
    holds = archive.catalog.active_holds_of([r.id for r in rows])
    plan = Plan()
    for row in rows:
        if row.id in holds:
            plan.held.append((row, holds[row.id]))
        else:
            plan.remove.append(row)
    return plan


def check_reason(reason: str) -> str:
    """The reason as stored: one line of text, not empty, not too long."""
    # one line of printable text: it is shown by verify and stored in every tombstone
    text = " ".join("".join(c if c.isprintable() else " " for c in clean_text(reason)).split())
    if not text:
        raise ArchiverError("give a reason (--reason TEXT): it is kept in the tombstone")
    if len(text) > MAX_REASON:
        raise ArchiverError(f"the reason is {len(text)} characters long: keep it to {MAX_REASON}")
    return text


def remove(
    archive: Archive,
    rows: Sequence[MessageRow],
    *,
    why: str,
    reason: str,
    who: str,
    progress: Callable[[int], None] | None = None,
    expired_before: datetime | None = None,
) -> Outcome:
    """Remove ``rows`` for good (see the module docstring); returns what was done. A purge
    gives ``expired_before`` (``Plan.expired_before``): a message whose retention now ends
    later (extended, or the same bytes arrived again since the plan) is kept, not removed."""
    outcome = Outcome(blobs_deleted=finish_pending(archive))
    when = datetime.now(UTC)
    signature = signature_of(archive)
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        signatures = archive.catalog.index_signatures([r.id for r in chunk])
        removals = [
            Removal(
                r.id,
                why,
                reason,
                clean_text(who),
                when,
                # a queued message has no entry (the catalog sees that in its transaction);
                # one indexed otherwise than now, or whose text is lost, is unknown
                _entry(archive, r.sha256) if signatures.get(r.id) == signature else None,
                expired_before,
                signature,
            )
            for r in chunk
        ]
        result = archive.catalog.remove(removals, events.seal_tombstone)
        outcome.reindexed |= result.reindexed
        by_id = {r.id: r for r in chunk}
        outcome.removed += [(by_id[m], seq) for m, seq in result.removed.items()]
        outcome.held += [by_id[m] for m in result.held]
        outcome.retained += [by_id[m] for m in result.retained]
        outcome.blobs_deleted += finish_pending(archive)
        if progress:
            progress(len(chunk))
    # each batch tried to cut the logs without waiting; now wait a little for readers, and
    # say so if one still holds a log: the removal is not complete until it is cut
    outcome.logs_kept = archive.catalog.truncate_logs() + archive.store.truncate_logs()
    return outcome


def finish_pending(archive: Archive) -> int:
    """Delete the blobs earlier removals left pending (all of them, normally; after a crash,
    those of the run that crashed); returns how many were deleted."""

    def delete(refs: list[tuple[str, str]]) -> None:
        prefix = {"message": "m/", "part": "p/", "text": "t/"}
        archive.store.delete_many([prefix[kind] + sha for kind, sha in refs])

    return archive.catalog.release_blobs(delete)


def _entry(archive: Archive, sha: str) -> IndexEntry | None:
    """The index entry of a message about to go, from its blob and the cached attachment
    text; None if either cannot be read (the index is then emptied and rebuilt by the
    indexer in the background)."""
    try:
        made = entry_of(archive, sha, extract_missing=False)
    except StoreError as exc:
        log.warning("message %s: blob unreadable (%s): the index is rebuilt instead", sha, exc)
        return None
    if made is None:
        log.warning("message %s: attachment text not cached: the index is rebuilt instead", sha)
        return None
    return made.entry
