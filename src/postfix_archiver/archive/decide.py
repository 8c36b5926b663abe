"""The decide step of ingest: complete the envelope from the message, apply the rules.

A way in (proxy, sink, pipe) hands over the envelope as the protocol gave it. Some of it is
only in the headers, so it is completed here, after the one parse: the queue id from the
newest Received header when Postfix did not pass it, and in sink mode the recipients a
delivery agent or journaling MTA wrote into the headers.

Rules decide per recipient; an arrival keeps the recipients some rule archives, and is
stored with one retention and one set of tags (``kept``), per arrival rather than per
recipient: a purge can only remove a message (or an arrival) as a whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..envelope import Envelope
from ..message import ParsedMessage
from ..retention import longest
from ..rules import Policy, Verdict

# "... by mx.example.com (Postfix) with ESMTP id 4Xk2Lq0Zz1z9rxN; ..." -> the queue id
_RECEIVED_ID = re.compile(r"\(Postfix\)\s+with\s+\S+\s+id\s+([0-9A-Za-z]+)", re.I)
_HEADER_RECIPIENTS = ("X-Original-To", "Delivered-To", "X-Envelope-To")


@dataclass(frozen=True, slots=True)
class Kept:
    """What an arrival is archived with, from the rules that kept its recipients."""

    envelope: Envelope  # only the recipients the rules keep
    retention: str | None
    tags: tuple[str, ...]


def queue_id_from_headers(parsed: ParsedMessage) -> str | None:
    """Postfix's queue id from the newest Received header, if Postfix wrote it."""
    received = parsed.header("Received")
    if received:
        m = _RECEIVED_ID.search(received)
        if m:
            return m.group(1)
    return None


def header_recipients(parsed: ParsedMessage) -> list[str]:
    """Recipients a delivery agent or journaling MTA wrote into the headers (sink mode)."""
    found: list[str] = []
    for name in _HEADER_RECIPIENTS:
        for value in parsed.header_all(name):
            for addr in re.findall(r"[^\s<>,;\"]+@[^\s<>,;\"]+", value):
                if addr.lower() not in (f.lower() for f in found):
                    found.append(addr)
    return found


def complete_envelope(envelope: Envelope, parsed: ParsedMessage) -> Envelope:
    """``envelope`` with what only the headers tell (see the module's docstring)."""
    queue_id = envelope.queue_id or queue_id_from_headers(parsed)
    recipients = envelope.recipients
    if envelope.source == "sink":
        lowered = {r.lower() for r in recipients}
        recipients += tuple(r for r in header_recipients(parsed) if r.lower() not in lowered)
    if queue_id == envelope.queue_id and recipients == envelope.recipients:
        return envelope
    return Envelope(
        sender=envelope.sender,
        recipients=recipients,
        queue_id=queue_id,
        client_address=envelope.client_address,
        client_name=envelope.client_name,
        helo=envelope.helo,
        received=envelope.received,
        source=envelope.source,
    )


def kept(verdict: Verdict, envelope: Envelope) -> Kept | None:
    """What ``envelope`` is archived with by ``verdict``; None: skipped.

    Retention: the longest any archiving rule gives (a shorter one would break the longer
    rule's promise); tags: every archiving rule's, in order, once each.
    """
    if not verdict.archive:
        return None
    archived = [d for d in verdict.decisions if d.action == "archive"]
    narrowed = (
        envelope.with_recipients(verdict.archived_recipients) if envelope.recipients else envelope
    )
    periods = [d.retention for d in archived if d.retention is not None]
    retention = longest(periods)
    tags = tuple(dict.fromkeys(t for d in archived for t in d.tags))
    return Kept(narrowed, retention, tags)


def decide(
    policy: Policy, parsed: ParsedMessage, envelope: Envelope
) -> tuple[Verdict, Kept | None]:
    verdict = policy.decide(parsed, envelope)
    return verdict, kept(verdict, envelope)
