"""Searching as a user who may see only their own mail: other people's Bcc stays hidden.

Run against every catalog backend (the ``archive`` fixture's ``config`` names each in turn).
"""

from __future__ import annotations

from postfix_archiver.archive import Archive
from postfix_archiver.envelope import Envelope

RAW = (
    b"From: Carol <carol@example.com>\r\nTo: alice@example.com\r\n"
    b"Subject: plans\r\nMessage-ID: <plans@example.com>\r\n\r\nsee you\r\n"
)
ENVELOPE = Envelope("carol@example.com", ("alice@example.com", "bob.bcc@example.com"))


def ids(archive: Archive, query: str, visible_to: list[str] | None) -> set[int]:
    return {r.id for r in archive.search(query, visible_to=visible_to).results}


def test_to_does_not_reveal_someone_elses_bcc(archive: Archive) -> None:
    message = archive.ingest(RAW, ENVELOPE).id
    # the auditor sees every envelope recipient
    assert ids(archive, "to:bob.bcc@example.com", None) == {message}
    # alice can read the message, but must not learn that bob was Bcc'd
    assert ids(archive, "", ["alice@example.com"]) == {message}
    assert ids(archive, "to:bob.bcc@example.com", ["alice@example.com"]) == set()
    assert ids(archive, "to:bob", ["alice@example.com"]) == set()
    assert ids(archive, "-to:bob.bcc@example.com", ["alice@example.com"]) == {message}
    # bob finds it by his own envelope address; alice by the header
    assert ids(archive, "to:bob.bcc@example.com", ["bob.bcc@example.com"]) == {message}
    assert ids(archive, "to:alice@example.com", ["alice@example.com"]) == {message}


def test_addresses_are_compared_case_insensitively(archive: Archive) -> None:
    message = archive.ingest(RAW, ENVELOPE).id
    assert ids(archive, "to:Bob.Bcc@Example.com", ["BOB.BCC@example.com"]) == {message}
