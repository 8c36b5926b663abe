"""``verify``: every kind of tampering is found, and the first thing that does not match is named.

The archive under test holds five events over four messages:

    event 1  message 1 (small)              envelope of queue id Q1
    event 2  message 2 (with a big part)    Q2
    event 3  message 1 again                Q3 (a second arrival of the same bytes)
    event 4  message 3                      Q4
    event 5  message 4                      Q5
"""

from __future__ import annotations

import base64
import hashlib
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zstandard

from postfix_archiver import chain
from postfix_archiver.archive import Archive, Problem, VerifyReport, verify
from postfix_archiver.config import Config
from postfix_archiver.envelope import Envelope

T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
PART = random.Random(42).randbytes(12_000)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def small(n: int) -> bytes:
    return (
        f"From: sender{n}@example.com\r\nTo: rcpt{n}@example.com\r\n"
        f"Subject: message number {n}\r\nMessage-ID: <m{n}@example.com>\r\n\r\n"
        f"Body of message {n}.\r\n"
    ).encode()


def with_part(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    body = b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    return (
        b"From: big@example.com\r\nTo: rcpt@example.com\r\nSubject: the big one\r\n"
        b"Message-ID: <big@example.com>\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n"
        b"\r\nsee attachment\r\n--B\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + body + b"\r\n--B--\r\n"
    )


@dataclass
class Populated:
    archive: Archive
    db: Path
    ids: dict[str, int]  # "m1".."m4" -> message id
    shas: dict[str, str]

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Run SQL on the catalog behind the archiver's back, as a tamperer would."""
        conn = sqlite3.connect(self.db)
        try:
            with conn:
                return conn.execute(statement, params).fetchall()
        finally:
            conn.close()

    def envelope_of(self, seq: int) -> int:
        [(envelope,)] = self.sql("SELECT envelope FROM events WHERE seq = ?", (seq,))
        assert isinstance(envelope, int)
        return envelope

    def hash_of(self, seq: int) -> str:
        [(digest,)] = self.sql("SELECT hash FROM events WHERE seq = ?", (seq,))
        return str(digest)

    def flip_blob_byte(self, key: str, from_end: int) -> None:
        """Change one byte of a stored blob behind the archive's back (the put goes
        straight to the store, as an intruder with write access to it could)."""
        store = self.archive.store
        data = bytearray(zstandard.ZstdDecompressor().decompress(store.get(key)))
        data[-from_end] ^= 0x20
        store.put(key, zstandard.ZstdCompressor().compress(bytes(data)))


@pytest.fixture
def populated(config: Config) -> Iterator[Populated]:
    raws = {"m1": small(1), "m2": with_part(PART), "m3": small(3), "m4": small(4)}
    order = ["m1", "m2", "m1", "m3", "m4"]
    with Archive(config) as archive:
        ids: dict[str, int] = {}
        for n, name in enumerate(order, start=1):
            result = archive.ingest(
                raws[name],
                Envelope(
                    f"sender{n}@example.com",
                    (f"rcpt{n}@example.com", f"bcc{n}@example.net"),
                    queue_id=f"Q{n}",
                    client_address="192.0.2.1",
                    received=T0 + timedelta(minutes=n),
                ),
            )
            ids[name] = result.id
        db = Path(config.archive.catalog_url.removeprefix("sqlite://"))
        yield Populated(archive, db, ids, {k: sha(v) for k, v in raws.items()})


def only(report: VerifyReport) -> Problem:
    assert len(report.problems) == 1, report.problems
    return report.problems[0]


def kinds(report: VerifyReport) -> list[tuple[str, str]]:
    return [(p.kind, p.where) for p in report.problems]


# -- clean -------------------------------------------------------------------------------


def test_clean_archive_verifies(populated: Populated) -> None:
    report = verify(populated.archive)
    assert report.ok, report.problems
    assert (report.messages, report.events) == (4, 5)
    assert report.head == populated.hash_of(5)
    assert report.to_json() == {
        "ok": True,
        "messages": 4,
        "events": 5,
        "head": populated.hash_of(5),
        "problems": [],
        "removed": [],
    }


def test_empty_archive_verifies(archive: Archive) -> None:
    report = verify(archive)
    assert report.ok
    assert (report.messages, report.events, report.head) == (0, 0, chain.GENESIS)


def test_progress_counts_events_and_messages(populated: Populated) -> None:
    seen: list[int] = []
    verify(populated.archive, progress=seen.append)
    assert sum(seen) == 5 + 4


def test_head_only_moves_forward(populated: Populated) -> None:
    head = verify(populated.archive).head
    populated.archive.ingest(small(9), Envelope("x@example.com", ("y@example.com",)))
    report = verify(populated.archive)
    assert report.ok
    [link] = [e for e in populated.archive.catalog.chain() if e.seq == 6]
    assert link.prev_hash == head
    assert report.head == link.hash != head


# -- blobs -------------------------------------------------------------------------------


def test_changed_byte_in_message_blob(populated: Populated) -> None:
    populated.flip_blob_byte(f"m/{populated.shas['m3']}", from_end=4)
    problem = only(verify(populated.archive))
    assert problem.kind == "blob"
    assert problem.where == f"message {populated.ids['m3']}"
    assert f"m/{populated.shas['m3']}" in problem.detail
    assert "do not match their SHA-256" in problem.detail
    assert str(problem).startswith(f"message {populated.ids['m3']}: ")


def test_changed_byte_in_part_blob(populated: Populated) -> None:
    populated.flip_blob_byte(f"p/{sha(PART)}", from_end=500)
    problem = only(verify(populated.archive))
    assert (problem.kind, problem.where) == ("blob", f"message {populated.ids['m2']}")
    assert f"part blob p/{sha(PART)}" in problem.detail


def test_missing_message_blob(populated: Populated) -> None:
    populated.archive.store.delete(f"m/{populated.shas['m4']}")
    problem = only(verify(populated.archive))
    assert (problem.kind, problem.where) == ("blob", f"message {populated.ids['m4']}")
    assert "missing" in problem.detail


def test_every_damaged_message_is_reported(populated: Populated) -> None:
    populated.flip_blob_byte(f"m/{populated.shas['m1']}", from_end=3)
    populated.flip_blob_byte(f"m/{populated.shas['m4']}", from_end=3)
    report = verify(populated.archive)
    assert kinds(report) == [
        ("blob", f"message {populated.ids['m1']}"),
        ("blob", f"message {populated.ids['m4']}"),
    ]


# -- edited catalog rows -----------------------------------------------------------------


def test_edited_envelope_recipient(populated: Populated) -> None:
    envelope = populated.envelope_of(3)
    populated.sql(
        "UPDATE envelope_recipients SET address = 'mallory@example.org' "
        "WHERE envelope = ? AND position = 1",
        (envelope,),
    )
    problem = only(verify(populated.archive))
    assert (problem.kind, problem.where) == ("chain", "event 3")
    assert "hash does not match" in problem.detail
    assert f"message {populated.ids['m1']} / envelope {envelope}" in problem.detail


def test_removed_envelope_recipient(populated: Populated) -> None:
    """Hiding a Bcc recipient from the record."""
    envelope = populated.envelope_of(2)
    populated.sql(
        "DELETE FROM envelope_recipients WHERE envelope = ? AND position = 1", (envelope,)
    )
    assert kinds(verify(populated.archive)) == [("chain", "event 2")]


def test_edited_envelope_sender(populated: Populated) -> None:
    envelope = populated.envelope_of(2)
    populated.sql("UPDATE envelopes SET sender = 'ceo@example.com' WHERE id = ?", (envelope,))
    problem = only(verify(populated.archive))
    assert (problem.kind, problem.where) == ("chain", "event 2")
    assert "sender, recipients" in problem.detail


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("queue_id", "FORGED"),
        ("received", "2020-01-01T00:00:00.000000+00:00"),
        ("client_address", "203.0.113.66"),
        ("source", "import"),
    ],
)
def test_edited_envelope_fields(populated: Populated, column: str, value: str) -> None:
    envelope = populated.envelope_of(4)
    populated.sql(f"UPDATE envelopes SET {column} = ? WHERE id = ?", (value, envelope))
    assert kinds(verify(populated.archive)) == [("chain", "event 4")]


def test_edited_message_sha256(populated: Populated) -> None:
    forged = sha(b"some other message")
    populated.sql("UPDATE messages SET sha256 = ? WHERE id = ?", (forged, populated.ids["m3"]))
    report = verify(populated.archive)
    first = report.problems[0]
    assert (first.kind, first.where) == ("chain", "event 4")
    assert "SHA-256, size" in first.detail
    # and the blob the row now points to does not exist
    assert ("blob", f"message {populated.ids['m3']}") in kinds(report)
    [blob] = [p for p in report.problems if p.kind == "blob"]
    assert f"m/{forged}" in blob.detail


def test_edited_message_size(populated: Populated) -> None:
    populated.sql("UPDATE messages SET size = size + 1 WHERE id = ?", (populated.ids["m4"],))
    report = verify(populated.archive)
    assert kinds(report) == [("chain", "event 5"), ("catalog", f"message {populated.ids['m4']}")]
    size = len(small(4))
    assert report.problems[1].detail == (
        f"catalog says {size + 1} bytes, the stored message has {size}"
    )


def test_edited_subject(populated: Populated) -> None:
    populated.sql(
        "UPDATE messages SET subject = 'nothing to see here' WHERE id = ?", (populated.ids["m2"],)
    )
    problem = only(verify(populated.archive))
    assert (problem.kind, problem.where) == ("catalog", f"message {populated.ids['m2']}")
    assert "subject differs" in problem.detail


@pytest.mark.parametrize(
    ("column", "header"), [("from_text", "From"), ("to_text", "To"), ("cc_text", "Cc")]
)
def test_edited_addresses(populated: Populated, column: str, header: str) -> None:
    populated.sql(
        f"UPDATE messages SET {column} = 'someone.else@example.org' WHERE id = ?",
        (populated.ids["m3"],),
    )
    problem = only(verify(populated.archive))
    assert (problem.kind, problem.where) == ("catalog", f"message {populated.ids['m3']}")
    assert problem.detail.startswith(f"catalog {header} differs")


def test_edited_attachment_count(populated: Populated) -> None:
    populated.sql("UPDATE messages SET attachment_count = 0 WHERE id = ?", (populated.ids["m2"],))
    problem = only(verify(populated.archive))
    assert (problem.kind, problem.where) == ("catalog", f"message {populated.ids['m2']}")
    assert "catalog says 0 attachments, the stored message has 1" in problem.detail


def test_edited_message_id(populated: Populated) -> None:
    populated.sql(
        "UPDATE messages SET message_id = 'forged@example.com' WHERE id = ?",
        (populated.ids["m1"],),
    )
    problem = only(verify(populated.archive))
    assert (problem.kind, problem.where) == ("catalog", f"message {populated.ids['m1']}")
    assert "Message-ID" in problem.detail


# -- removed and reordered rows ----------------------------------------------------------


def test_removed_event_in_the_middle(populated: Populated) -> None:
    envelope = populated.envelope_of(3)
    populated.sql("DELETE FROM events WHERE seq = 3")
    report = verify(populated.archive)
    assert report.problems[0] == Problem(
        "chain", "event 4", "expected event 3 here: events were removed or reordered"
    )
    assert kinds(report)[1] == ("chain", "event 4")
    assert "does not link" in report.problems[1].detail
    # the envelope that event recorded is now outside the chain
    assert ("chain", f"envelope {envelope}") in kinds(report)
    assert report.events == 4


def test_removed_last_event(populated: Populated) -> None:
    envelope = populated.envelope_of(5)
    populated.sql("DELETE FROM events WHERE seq = 5")
    report = verify(populated.archive)
    assert kinds(report) == [
        ("chain", f"message {populated.ids['m4']}"),
        ("chain", f"envelope {envelope}"),
    ]
    assert "has no event in the integrity chain" in report.problems[0].detail
    assert report.head == populated.hash_of(4)


def test_removed_first_event(populated: Populated) -> None:
    populated.sql("DELETE FROM events WHERE seq = 1")
    report = verify(populated.archive)
    assert report.problems[0].where == "event 2"
    assert "expected event 1" in report.problems[0].detail


def test_swapped_event_seqs(populated: Populated) -> None:
    populated.sql("UPDATE events SET seq = -1 WHERE seq = 2")
    populated.sql("UPDATE events SET seq = 2 WHERE seq = 3")
    populated.sql("UPDATE events SET seq = 3 WHERE seq = -1")
    report = verify(populated.archive)
    first = report.problems[0]
    assert (first.kind, first.where) == ("chain", "event 2")
    assert "does not link" in first.detail
    assert {p.where for p in report.problems} <= {"event 2", "event 3", "event 4"}
    assert all(p.kind == "chain" for p in report.problems)


def test_swapped_event_hashes(populated: Populated) -> None:
    rows = populated.sql("SELECT seq, prev_hash, hash FROM events WHERE seq IN (2, 3) ORDER BY seq")
    (_, prev2, hash2), (_, prev3, hash3) = rows
    populated.sql("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = 2", (prev3, hash3))
    populated.sql("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = 3", (prev2, hash2))
    report = verify(populated.archive)
    assert report.problems[0] == Problem(
        "chain",
        "event 2",
        "does not link to the event before it: the chain was edited, reordered or events removed",
    )
    assert ("chain", "event 3") in kinds(report)


def test_swapped_events_between_messages(populated: Populated) -> None:
    """Pointing event 4 at message 4 and event 5 at message 3."""
    e4, e5 = populated.envelope_of(4), populated.envelope_of(5)
    m3, m4 = populated.ids["m3"], populated.ids["m4"]
    populated.sql("UPDATE events SET message = ?, envelope = ? WHERE seq = 4", (m4, e5))
    populated.sql("UPDATE events SET message = ?, envelope = ? WHERE seq = 5", (m3, e4))
    report = verify(populated.archive)
    assert kinds(report)[:2] == [("chain", "event 4"), ("chain", "event 5")]


def test_removed_envelope_row(populated: Populated) -> None:
    envelope = populated.envelope_of(4)
    populated.sql("DELETE FROM envelope_recipients WHERE envelope = ?", (envelope,))
    populated.sql("DELETE FROM envelopes WHERE id = ?", (envelope,))
    problem = only(verify(populated.archive))
    assert (problem.kind, problem.where) == ("catalog", "event 4")
    assert problem.detail == (
        f"its envelope row {envelope} of message {populated.ids['m3']} is missing"
    )


def test_envelope_moved_to_another_message(populated: Populated) -> None:
    envelope = populated.envelope_of(4)
    populated.sql("UPDATE envelopes SET message = ? WHERE id = ?", (populated.ids["m4"], envelope))
    report = verify(populated.archive)
    assert report.problems[0].where == "event 4"
    assert "envelope row" in report.problems[0].detail


def test_removed_message_row(populated: Populated) -> None:
    m3 = populated.ids["m3"]
    populated.sql("DELETE FROM addresses WHERE message = ?", (m3,))
    populated.sql("DELETE FROM messages WHERE id = ?", (m3,))
    problem = only(verify(populated.archive))
    assert problem == Problem("catalog", "event 4", f"its message row {m3} is missing")


def test_row_added_outside_the_archiver(populated: Populated) -> None:
    populated.sql(
        "INSERT INTO messages (sha256, size, stored_size, date, received, message_id, subject, "
        "from_text, to_text, cc_text, attachment_count, defects) "
        "SELECT ?, size, stored_size, date, received, message_id, subject, from_text, to_text, "
        "cc_text, attachment_count, defects FROM messages WHERE id = ?",
        (sha(b"planted"), populated.ids["m4"]),
    )
    [(planted,)] = populated.sql("SELECT max(id) FROM messages")
    report = verify(populated.archive)
    assert report.problems[0] == Problem(
        "chain",
        f"message {planted}",
        "has no event in the integrity chain: the row was added outside the archiver "
        "or its events were removed",
    )
