"""The SMTP envelope of one arrival: who Postfix says sent it and to whom.

The envelope recipients are the only record of Bcc recipients (Postfix removes the Bcc header
before the archiver sees the message), so every ingest keeps them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from .dates import clamp

SOURCES = ("smtp", "pipe", "sink", "import")


def _is_clean(text: str) -> bool:
    return text.isascii() or not any("\ud800" <= c <= "\udfff" for c in text)


def clean_text(text: str) -> str:
    """``text`` with surrogate-escaped bytes read as UTF-8 where they are, else as Latin-1
    (every byte a character: nothing is lost, and a Latin-1 address reads right)."""
    raw = text.encode("utf-8", "surrogateescape") if not _has_lone(text) else None
    if raw is None:
        return text.encode("utf-8", "replace").decode("utf-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _has_lone(text: str) -> bool:
    """Surrogates that are not escaped bytes (U+D800..U+DC7F): no byte to give back."""
    return any("\ud800" <= c < "\udc80" or "\udd00" <= c <= "\udfff" for c in text)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Envelope:
    """Envelope of one arrival. ``sender`` is ``""`` for the null sender (bounces)."""

    sender: str
    recipients: tuple[str, ...]
    queue_id: str | None = None
    client_address: str | None = None
    client_name: str | None = None
    helo: str | None = None
    received: datetime = field(default_factory=_now)
    source: str = "smtp"

    def __post_init__(self) -> None:
        # an address with 8-bit bytes that are not UTF-8 (a Latin-1 "b\xf6b@") comes in as
        # surrogate escapes, which no UTF-8 store accepts: the archived envelope keeps the
        # text (the reinjected copy keeps the bytes)
        for name in ("sender", "queue_id", "client_address", "client_name", "helo"):
            value = getattr(self, name)
            if value is not None and not _is_clean(value):
                object.__setattr__(self, name, clean_text(value))
        if not all(_is_clean(r) for r in self.recipients):
            object.__setattr__(self, "recipients", tuple(clean_text(r) for r in self.recipients))
        if self.source not in SOURCES:
            raise ValueError(f"unknown envelope source {self.source!r}")
        # clamped: a From_ line or INTERNALDATE can name year 1 or 9999, which would
        # overflow in every reader that shifts it into another zone
        object.__setattr__(self, "received", clamp(self.received))

    def with_recipients(self, recipients: tuple[str, ...]) -> Envelope:
        return replace(self, recipients=recipients)

    @property
    def key(self) -> str:
        """Identity of this arrival for idempotent retries.

        Postfix retries a deferred message with the same queue id, sender and recipients, so
        those make the key; the time received and the client do not (a retry differs there).
        """
        ident = [
            self.queue_id or "",
            self.sender.lower(),
            sorted(r.lower() for r in self.recipients),
        ]
        return hashlib.sha256(json.dumps(ident).encode()).hexdigest()

    def canonical(self) -> dict[str, object]:
        """The stable form the integrity chain hashes."""
        return {
            "sender": self.sender,
            "recipients": list(self.recipients),
            "queue_id": self.queue_id,
            "client_address": self.client_address,
            "client_name": self.client_name,
            "helo": self.helo,
            "received": self.received.astimezone(UTC).isoformat(timespec="microseconds"),
            "source": self.source,
        }
