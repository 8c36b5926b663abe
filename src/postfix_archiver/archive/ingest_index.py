"""Index entries an import makes from the parse it stages with, instead of the indexer reading
every message back from its blobs and parsing it a second time.

An import's workers (processes for a large import, else threads) parse each message once to
stage it; ``made_at_ingest`` makes its full-text entry from that same parse with the
indexer's own function (``indexer.made_of``: the same entry, the same signature), attachment
text from the extraction cache or extracted there and then in an extraction process, as the
indexer does. The committer indexes the entries right after the message rows commit
(``index_made``), in a transaction of its own.

The queue keeps its meaning: a message is queued when its row commits and leaves the queue
only with its entry, so a crash between the two commits leaves it queued for the indexer.
Only a message the commit added gets an entry; one already archived (the same bytes again, a
retry) has its entry already, or is queued for it. An entry that cannot be made here (an
error, an extraction another indexer did differently meanwhile) is left to the indexer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..catalog import ExtractRecord, Indexed
from ..extract.process import Worker
from ..message import Attachment, ParsedMessage, attachment_payload
from .holds import ActiveHolds
from .indexer import Made, Text, made_of, signature_of
from .reading import stored_attachment
from .skeleton import Split

if TYPE_CHECKING:
    from .service import Archive

log = logging.getLogger("postfix_archiver.indexer")


class Parsed:
    """One new message as staged: its bytes, how it parsed, how it was split, and the index
    text its arrival carries (made once: making it again would note a long body's defect
    twice)."""

    __slots__ = ("body", "parsed", "raw", "sha", "split")

    def __init__(self, sha: str, raw: bytes, parsed: ParsedMessage, split: Split, body: str):
        self.sha = sha
        self.raw = raw
        self.parsed = parsed
        self.split = split
        self.body = body

    def payload(self, a: Attachment) -> bytes:
        """The decoded bytes of attachment ``a``: its part as cut out for storing, else (a
        small one the skeleton kept, malformed MIME) parsed out, as ``entry_of`` gets it."""
        found = stored_attachment(self.split.segments, a.sha256, self.split.parts.__getitem__)
        return found if found is not None else attachment_payload(self.raw, a.index)[1]


def made_at_ingest(archive: Archive, messages: Sequence[Parsed | None]) -> list[Made | None]:
    """The entry of each new message of a chunk (None: a known one, or one whose entry
    could not be made here: the indexer makes it). The extraction process is shared by
    the chunk and started only if an attachment needs it."""
    fresh: dict[str, tuple[ExtractRecord, Text]] = {}
    with Worker(archive.extract_limits) as worker:
        return [None if m is None else _made(archive, m, fresh, worker) for m in messages]


def _made(
    archive: Archive,
    m: Parsed,
    fresh: dict[str, tuple[ExtractRecord, Text]],
    worker: Worker,
) -> Made | None:
    try:
        return made_of(archive, m.sha, m.parsed, m.body, m.payload, fresh=fresh, worker=worker)
    except Exception:  # the import goes on; the message stays queued for the indexer
        log.exception("message %s: entry not made at import, left to the indexer", m.sha)
        return None


def index_made(archive: Archive, made: Sequence[tuple[int, Made]], holds: ActiveHolds) -> int:
    """Indexes the entries ``made`` at ingest for the messages just committed (archive id,
    entry); returns how many were indexed. Each is indexed only if still queued, as the
    indexer's are; what is not stays queued for it."""
    if not made:
        return 0
    signature = signature_of(archive)
    done = _index(archive, made, signature, holds)
    if not done and any(m.extracts for _, m in made):
        # an attachment extracted meanwhile with another outcome (another worker or
        # indexer): the whole call was refused; the entries that extracted nothing go in,
        # the others are made again by the indexer from the stored outcome
        done = _index(archive, [x for x in made if not x[1].extracts], signature, holds)
    archive.indexed_since_compact += done
    return done


def _index(
    archive: Archive, made: Sequence[tuple[int, Made]], signature: str, holds: ActiveHolds
) -> int:
    if not made:
        return 0
    entries = [Indexed(message, m.entry) for message, m in made]
    extracts = [x for _, m in made for x in m.extracts]
    return len(archive.catalog.index(entries, signature, extracts, holds))


__all__ = ["Parsed", "index_made", "made_at_ingest"]
