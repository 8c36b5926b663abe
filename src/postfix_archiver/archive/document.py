"""The public JSON documents, defined once, here and not in a backend: a catalog returns
rows, and these are what the CLI's ``--json`` and the REST API make of them.

The document of one archived message: ``postfix-archiver show --json`` prints it and
``GET /api/v1/messages/{id}`` answers it.

The two differ only where the reader differs: the API shows each user the envelope
recipients they may see (with a count of those withheld) and links every attachment; the
CLI's operator sees every envelope whole and reads attachments from the archive itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from ..catalog import (
    AttachmentRow,
    EnvelopeRow,
    ExtractRecord,
    IndexStatus,
    MessageRow,
    SearchPage,
    Stats,
)
from ..message import ParsedMessage
from .service import MessageView
from .snippets import Snippet

# an envelope as one reader may see it: the row, the recipients shown, how many withheld
VisibleEnvelope = tuple[EnvelopeRow, Sequence[str], int]


def message_document(
    view: MessageView,
    parsed: ParsedMessage,
    *,
    envelopes: Iterable[VisibleEnvelope] | None = None,
    attachment_url: Callable[[AttachmentRow], str] | None = None,
    show_holds: bool = True,
) -> dict[str, object]:
    """Summary, envelopes, attachments, parse defects, decoded headers and the text body.

    ``envelopes``: those the reader may see; by default every envelope whole (and no
    ``hidden_recipients`` key). ``attachment_url``: adds a ``url`` to each attachment.
    ``show_holds``: with the legal holds on it (what a matter is called is for auditors and
    admins only; a plain user's document has no ``holds`` key)."""
    if envelopes is None:
        shown = [{"id": e.id, **e.envelope.canonical(), **_kept(e)} for e in view.envelopes]
    else:
        shown = [
            {
                "id": row.id,
                **row.envelope.canonical(),
                "recipients": list(recipients),
                "hidden_recipients": hidden,
                **_kept(row),
            }
            for row, recipients, hidden in envelopes
        ]
    attachments = [attachment_document(a, view.extracts.get(a.sha256)) for a in view.attachments]
    if attachment_url is not None:
        for doc, a in zip(attachments, view.attachments, strict=True):
            doc["url"] = attachment_url(a)
    holds = {"holds": [h.to_json() for h in view.holds]} if show_holds else {}
    return {
        **message_summary(view.row),
        **holds,
        # the latest retention any arrival gave (or `retention set`); None: kept forever
        "retain_until": _iso(view.row.retain_until),
        "envelopes": shown,
        "attachments": attachments,
        "defects": view.row.defects,
        "headers": parsed.headers,
        "body": parsed.body_text,
    }


def _kept(row: EnvelopeRow) -> dict[str, object]:
    """How long the arrival is kept and its tags, from the rule that archived it."""
    return {"retention": row.retention, "tags": list(row.tags)}


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def attachment_document(
    a: AttachmentRow, extraction: ExtractRecord | None = None
) -> dict[str, object]:
    """``extraction``: how its text was extracted for the index (None: not yet)."""
    return {
        "index": a.index,
        "filename": a.filename,
        "content_type": a.content_type,
        "size": a.size,
        "sha256": a.sha256,
        "extraction": None
        if extraction is None
        else {"status": extraction.status, "detail": extraction.detail},
    }


def message_summary(row: MessageRow) -> dict[str, object]:
    """One message as ``search --json`` and the API's search list it (and the start of its
    own document): the stable summary."""
    return {
        "id": row.id,
        "date": row.date.isoformat(),
        "from": row.from_,
        "to": row.to,
        "cc": row.cc,
        "subject": row.subject,
        "size": row.size,
        "attachments": row.attachment_count,
        "message_id": row.message_id,
        "sha256": row.sha256,
    }


def search_document(
    page: SearchPage, snippets: Sequence[Snippet | None] | None = None
) -> dict[str, object]:
    """``postfix-archiver search --json`` and ``GET /api/v1/messages?q=``: each result with
    its ``snippet`` (``Archive.snippets``, one per result): ``{"text", "marks", "source"}``,
    ``marks`` a list of ``[start, end)`` offsets in code points into ``text``; or null.
    ``not_indexed``: messages archived but not indexed yet, which a full-text search may
    miss."""
    shown = snippets if snippets is not None else [None] * len(page.results)
    return {
        "total": page.total,
        "results": [
            {**message_summary(r), "snippet": None if s is None else s.to_json()}
            for r, s in zip(page.results, shown, strict=True)
        ],
        "not_indexed": page.not_indexed,
    }


def stats_document(stats: Stats) -> dict[str, object]:
    """``postfix-archiver stats --json`` (the API adds messages per day)."""
    return {
        "messages": stats.messages,
        "envelopes": stats.envelopes,
        "raw_bytes": stats.raw_bytes,
        "stored_bytes": stats.stored_bytes,
        "ratio": round(stats.ratio, 4),
        "parts": stats.parts,
        "catalog_bytes": stats.catalog_bytes,
        "first_date": stats.first_date.isoformat() if stats.first_date else None,
        "last_date": stats.last_date.isoformat() if stats.last_date else None,
        "index": None if stats.index is None else index_document(stats.index),
    }


def index_document(status: IndexStatus, now: datetime | None = None) -> dict[str, object]:
    """The index's lag: messages queued, the age in seconds of the oldest, and attachment
    extractions that did not succeed, by status."""
    return {
        "queued": status.queued,
        "lag_seconds": lag_seconds(status, now),
        "extraction_failures": dict(status.failures),
    }


def lag_seconds(status: IndexStatus, now: datetime | None = None) -> int:
    if status.oldest is None:
        return 0
    return max(0, int(((now or datetime.now(UTC)) - status.oldest).total_seconds()))
