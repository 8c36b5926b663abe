"""``import_envelope`` skips the header parse when the From_ line gave sender and time and no
recipient header is there: the envelope must be the one the full parse makes, or importing a
mailbox again would record every message a second time (the envelope is its key)."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses

import pytest

from postfix_archiver.envelope import Envelope
from postfix_archiver.importers.base import import_envelope

WHEN = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def _parsed(raw: bytes, sender: str) -> Envelope:
    """What the email package's header parse makes of ``raw`` (the envelope before the
    shortcut), the From_ line having given ``sender`` and ``WHEN``."""
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i != -1), default=-1)
    block = raw if end == -1 else raw[: end + 4]
    headers = BytesHeaderParser(policy=policy.compat32).parsebytes(block)
    recipients: list[str] = []
    for name in ("X-Original-To", "Delivered-To", "X-Envelope-To"):
        for _, addr in getaddresses([str(v) for v in headers.get_all(name, [])]):
            if addr and addr.lower() not in (r.lower() for r in recipients):
                recipients.append(addr)
    return Envelope(sender=sender, recipients=tuple(recipients), received=WHEN, source="import")


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@example.com\nSubject: plain\n\nbody\n",
        b"From: a@example.com\nDelivered-To: b@example.org\n\nbody\n",
        b"DELIVERED-TO: B@Example.org\r\nx-original-to: c@example.org\r\n\r\nbody\r\n",
        b"X-Envelope-To:\n\t<folded@example.org>,\n d@example.org\nSubject: x\n\nbody\n",
        b"Subject: no blank line and no body\nDelivered-To: e@example.org",
        b"Subject: \xe9\xff 8-bit\nDelivered-To: f\xc3\xa9@example.org\n\nbody\n",
        b"Subject: talks about delivered-to: g@example.org\n\nbody\n",
        b"Subject: x\n\nDelivered-To: only-in-the-body@example.org\n",
        b"Delivered-To : spaced@example.org\nX-Original-To:\n\nbody\n",
        b"\n\nDelivered-To: after-an-empty-header-block@example.org\n",
        b"",
    ],
)
def test_envelope_is_the_full_parses(raw: bytes) -> None:
    assert import_envelope(raw, sender="s@example.com", received=WHEN) == _parsed(
        raw, "s@example.com"
    )


def test_without_a_from_line_the_headers_still_give_sender_and_time() -> None:
    raw = b"Return-Path: <r@example.com>\nDate: Fri, 01 Mar 2024 12:00:00 +0000\n\nbody\n"
    env = import_envelope(raw)
    assert (env.sender, env.received, env.recipients) == ("r@example.com", WHEN, ())
