"""The SMTP envelope of one arrival: who Postfix says sent it and to whom.

The envelope recipients are the only record of Bcc recipients (Postfix removes the Bcc header
before the archiver sees the message), so every ingest keeps them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

SOURCES = ("smtp", "pipe", "sink", "import")


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
        if self.source not in SOURCES:
            raise ValueError(f"unknown envelope source {self.source!r}")
        if self.received.tzinfo is None:
            object.__setattr__(self, "received", self.received.replace(tzinfo=UTC))

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
