"""What every importer yields, and the envelope an imported message gets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import Protocol

from ..dates import parse_header_date
from ..envelope import Envelope

_HEADERS = BytesHeaderParser(policy=policy.compat32)


@dataclass(frozen=True, slots=True)
class ImportItem:
    raw: bytes
    envelope: Envelope
    advance: int  # progress units this item completes (bytes of an mbox, 1 for a file)
    origin: str  # where it came from, for error messages
    # (key, value) to record in the catalog once this item is committed, so that a re-run
    # resumes after it (the IMAP importer's folder and UID); None: nothing to record
    mark: tuple[str, str] | None = None


class ImportSource(Protocol):
    description: str
    total: int  # progress units in all
    unit: str  # "bytes" or "messages"

    def __iter__(self) -> Iterator[ImportItem]: ...


def _header_block(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(sep)
        if end != -1:
            return raw[: end + len(sep)]
    return raw


# the headers a delivery agent adds that name envelope recipients (lower case)
_RECIPIENT_HEADERS = ("x-original-to", "delivered-to", "x-envelope-to")


def import_envelope(
    raw: bytes, *, sender: str | None = None, received: datetime | None = None
) -> Envelope:
    """Envelope for an imported message, from what the mailbox recorded of it.

    The sender comes from the mbox From_ line or Return-Path, the recipients from the
    Delivered-To / X-Original-To / X-Envelope-To headers a delivery agent added, the time
    from the From_ line or the Date header. Everything is taken from the bytes, so the same
    message imported twice has the same envelope and is recorded once.
    """
    block = _header_block(raw)
    if sender is not None and received is not None:
        # an mbox's From_ line gave sender and time: only the recipient headers are wanted,
        # and a header block that does not name one (as bytes, in any case) has none. The
        # email package's header parse was about a tenth of an mbox import's main process.
        lowered = block.lower()
        if not any(name.encode() in lowered for name in _RECIPIENT_HEADERS):
            return Envelope(sender=sender, recipients=(), received=received, source="import")
    headers = _HEADERS.parsebytes(block)
    if sender is None:
        return_path = str(headers.get("Return-Path", "")).strip()
        sender = return_path.strip("<>").strip() if return_path else ""
    recipients: list[str] = []
    for name in _RECIPIENT_HEADERS:
        for _, addr in getaddresses([str(v) for v in headers.get_all(name, [])]):
            if addr and addr.lower() not in (r.lower() for r in recipients):
                recipients.append(addr)
    if received is None:
        # the Date header, when it names a real instant; else the time of the import (the
        # message arrives in the archive now): never 1970, never a crash
        received, _ = parse_header_date(str(headers.get("Date", "")))
    if received is None:
        received = datetime.now(UTC)
    return Envelope(sender=sender, recipients=tuple(recipients), received=received, source="import")
