"""``verify``: re-read every blob and re-walk the integrity chain.

It reports every problem it finds, first one first, each naming what to look at: a blob whose
bytes changed, a catalog row that was edited, removed or reordered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .. import chain
from ..catalog import ChainLink, MessageRow
from ..errors import StoreError
from ..message import normalize_message_id, parse_message
from . import events
from .service import Archive


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # "blob", "chain", "catalog"
    where: str  # e.g. "message 12", "event 40"
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


@dataclass(frozen=True, slots=True)
class RemovedArrival:
    """An arrival event whose message a tombstone removed: not a problem, but reported."""

    seq: int
    tombstone: int
    message: int
    why: str
    reason: str
    who: str
    when: str

    def __str__(self) -> str:
        return (
            f"event {self.seq}: arrival of a message removed by tombstone {self.tombstone} "
            f"({self.why}, {self.reason}, {self.who}, {self.when})"
        )


@dataclass
class VerifyReport:
    messages: int = 0
    events: int = 0
    head: str = chain.GENESIS
    problems: list[Problem] = field(default_factory=list)
    removed: list[RemovedArrival] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "messages": self.messages,
            "events": self.events,
            "head": self.head,
            "problems": [
                {"kind": p.kind, "where": p.where, "detail": p.detail} for p in self.problems
            ],
            "removed": [
                {
                    "event": r.seq,
                    "tombstone": r.tombstone,
                    "message": r.message,
                    "why": r.why,
                    "reason": r.reason,
                    "who": r.who,
                    "when": r.when,
                }
                for r in self.removed
            ],
        }


def verify(
    archive: Archive, progress: Callable[[int], None] | None = None, *, index: bool = False
) -> VerifyReport:
    """Check the chain, then every message blob; ``progress(n)`` is called as items pass.
    ``index``: also the full-text index (``check_index``)."""
    report = VerifyReport()
    _check_chain(archive, report, progress)
    _check_orphans(archive, report)
    _check_blobs(archive, report, progress)
    if index:
        report.problems += check_index(archive)
    return report


def check_index(archive: Archive) -> list[Problem]:
    """Messages neither indexed nor queued (a search cannot find them by their text), and
    index entries of messages that no longer exist (a search may count them)."""
    missing, stale = archive.catalog.index_check()
    fix = "run `postfix-archiver reindex` to rebuild the index"
    return [
        *(Problem("index", f"message {m}", f"neither indexed nor queued; {fix}") for m in missing),
        *(Problem("index", f"index entry {m}", f"no such message; {fix}") for m in stale),
    ]


def _check_chain(
    archive: Archive, report: VerifyReport, progress: Callable[[int], None] | None
) -> None:
    prev = chain.GENESIS
    expected_seq = 1
    removed = _tombstoned(archive)
    for link in archive.catalog.chain():
        report.events += 1
        where = f"event {link.seq}"
        if link.seq != expected_seq:
            report.problems.append(
                Problem(
                    "chain",
                    where,
                    f"expected event {expected_seq} here: events were removed or reordered",
                )
            )
        if link.prev_hash != prev:
            report.problems.append(
                Problem(
                    "chain",
                    where,
                    "does not link to the event before it: the chain was "
                    "edited, reordered or events removed",
                )
            )
        if link.tombstone is not None:
            _check_tombstone(link, report)
        elif link.seq in removed:
            gone = removed[link.seq]
            if gone.hash != link.hash:
                report.problems.append(
                    Problem(
                        "chain",
                        where,
                        f"tombstone {gone.note.tombstone} names this event with another hash: "
                        "the event or the tombstone was edited",
                    )
                )
            report.removed.append(gone.note)
        elif link.message_sha256 is None or link.size is None:
            report.problems.append(
                Problem("catalog", where, f"its message row {link.message} is missing")
            )
        elif link.envelope is None:
            report.problems.append(
                Problem(
                    "catalog",
                    where,
                    f"its envelope row {link.envelope_id} of message {link.message} is missing",
                )
            )
        else:
            digest = events.event_hash(
                link.prev_hash, link.seq, link.message_sha256, link.size, link.envelope
            )
            if digest != link.hash:
                report.problems.append(
                    Problem(
                        "chain",
                        where,
                        f"hash does not match the catalog rows of message "
                        f"{link.message} / envelope {link.envelope_id}: the message row "
                        "(SHA-256, size) or its envelope (sender, recipients, queue id, time) "
                        "was edited",
                    )
                )
        prev = link.hash
        expected_seq = link.seq + 1
        if progress:
            progress(1)
    report.head = prev


@dataclass(frozen=True, slots=True)
class _Gone:
    hash: str  # the arrival event's hash as the tombstone recorded it
    note: RemovedArrival


def _tombstoned(archive: Archive) -> dict[int, _Gone]:
    """The arrival events tombstones name, by number: a first pass, as the arrival comes
    first. A tombstone that was altered is reported by the main pass, not trusted here."""
    gone: dict[int, _Gone] = {}
    for link in archive.catalog.chain():
        t = link.tombstone
        if t is None or not _sealed(link):
            continue
        arrivals = t.get("arrivals")
        for arrival in arrivals if isinstance(arrivals, list) else ():
            if isinstance(arrival, dict) and isinstance(arrival.get("seq"), int):
                note = RemovedArrival(
                    arrival["seq"],
                    link.seq,
                    link.message,
                    str(t.get("why")),
                    str(t.get("reason")),
                    str(t.get("who")),
                    str(t.get("when")),
                )
                gone[arrival["seq"]] = _Gone(str(arrival.get("hash")), note)
    return gone


def _sealed(link: ChainLink) -> bool:
    """Whether a tombstone's content is what its hash covers."""
    t = link.tombstone
    return t is not None and "prev" not in t and chain.link_hash(link.prev_hash, t) == link.hash


def _check_tombstone(link: ChainLink, report: VerifyReport) -> None:
    t = link.tombstone
    assert t is not None
    where = f"event {link.seq}"
    if t.get("kind") != events.TOMBSTONE or t.get("seq") != link.seq:
        report.problems.append(
            Problem("chain", where, "is not a well-formed tombstone: the event was edited")
        )
    elif not _sealed(link):
        report.problems.append(
            Problem(
                "chain",
                where,
                "tombstone does not match its hash: what it says was removed, why, by "
                "whom or when was edited",
            )
        )


def _check_orphans(archive: Archive, report: VerifyReport) -> None:
    messages, envelopes = archive.catalog.orphans()
    for m in messages:
        report.problems.append(
            Problem(
                "chain",
                f"message {m}",
                "has no event in the integrity chain: the row was "
                "added outside the archiver or its events were removed",
            )
        )
    for e in envelopes:
        report.problems.append(
            Problem(
                "chain",
                f"envelope {e}",
                "has no event in the integrity chain: the row was "
                "added outside the archiver or its event was removed",
            )
        )


def _check_one(archive: Archive, row: MessageRow) -> list[Problem]:
    where = f"message {row.id}"
    try:
        raw = archive.read_blob(row.sha256)
    except StoreError as exc:  # IntegrityError included; an unreadable file is a problem too
        return [Problem("blob", where, str(exc))]
    problems = []
    if len(raw) != row.size:
        problems.append(
            Problem(
                "catalog",
                where,
                f"catalog says {row.size} bytes, the stored message has {len(raw)}",
            )
        )
    parsed = parse_message(raw)
    if parsed.subject != row.subject:
        problems.append(
            Problem(
                "catalog",
                where,
                "catalog subject differs from the stored message: the row was edited",
            )
        )
    for name, shown, addresses in (
        ("From", row.from_, parsed.from_),
        ("To", row.to, parsed.to),
        ("Cc", row.cc, parsed.cc),
    ):
        if shown != ", ".join(str(a) for a in addresses):
            problems.append(
                Problem(
                    "catalog",
                    where,
                    f"catalog {name} differs from the stored message: the row was edited",
                )
            )
    if row.attachment_count != len(parsed.attachments):
        problems.append(
            Problem(
                "catalog",
                where,
                f"catalog says {row.attachment_count} attachments, the stored message has "
                f"{len(parsed.attachments)}: the row was edited",
            )
        )
    if normalize_message_id(parsed.message_id) != row.message_id:
        problems.append(
            Problem(
                "catalog",
                where,
                "catalog Message-ID differs from the stored message: the row was edited",
            )
        )
    return problems


def _check_blobs(
    archive: Archive, report: VerifyReport, progress: Callable[[int], None] | None
) -> None:
    for problems in archive.map_parallel(
        lambda r: _check_one(archive, r), archive.catalog.messages()
    ):
        report.messages += 1
        report.problems.extend(problems)
        if progress:
            progress(1)
