"""Signed checkpoints: made of the chain head, stored, and checked against the archive later
by someone holding only the public key; every way of rewriting history after a checkpoint
is named, and erased messages (events kept, rows gone) still descend.

The archive under test holds five arrivals, events 1-5; tampering goes to the SQLite file
behind the archiver's back, as an intruder with the disk would."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from postfix_archiver.archive import Archive, verify
from postfix_archiver.archive import events as chain_events
from postfix_archiver.archive.checkpoint import (
    check_checkpoint,
    make_checkpoint,
    stored_checkpoints,
)
from postfix_archiver.archive.checkpointer import Checkpointer, enabled
from postfix_archiver.chain import GENESIS
from postfix_archiver.config import Config, IntegritySettings
from postfix_archiver.envelope import Envelope
from postfix_archiver.errors import CheckpointError
from postfix_archiver.integrity import checkpoint as fmt
from postfix_archiver.integrity.keys import (
    create_signing_key,
    load_private_key,
    load_public_key,
)

T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 30, 13, 7, 14, tzinfo=UTC)


def message(n: int) -> bytes:
    return (
        f"From: sender{n}@example.com\r\nTo: rcpt{n}@example.com\r\n"
        f"Subject: message number {n}\r\nMessage-ID: <m{n}@example.com>\r\n\r\n"
        f"Body of message {n}.\r\n"
    ).encode()


def envelope(n: int) -> Envelope:
    return Envelope(
        f"sender{n}@example.com",
        (f"rcpt{n}@example.com",),
        queue_id=f"Q{n}",
        received=T0 + timedelta(minutes=n),
    )


@dataclass
class Signed:
    archive: Archive
    db: Path
    settings: IntegritySettings
    directory: Path
    public: Path
    added: int = 5

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        conn = sqlite3.connect(self.db)
        try:
            with conn:
                return conn.execute(statement, params).fetchall()
        finally:
            conn.close()

    def hash_of(self, seq: int) -> str:
        [(digest,)] = self.sql("SELECT hash FROM events WHERE seq = ?", (seq,))
        return str(digest)

    def add(self, count: int = 1) -> None:
        for _ in range(count):
            self.added += 1
            self.archive.ingest(message(self.added), envelope(self.added))

    def make(self, **kw: object) -> Path:
        return make_checkpoint(self.archive.catalog, self.settings, self.directory, **kw).path  # type: ignore[arg-type]

    def check(self, path: Path, public: Path | None = None) -> list[str]:
        report = check_checkpoint(
            self.archive.catalog, path, load_public_key(public or self.public)
        )
        return [str(p) for p in report.problems]

    def rechain(self, start: int) -> None:
        """Recompute every event from ``start`` on from the rows as they are now, as an
        intruder who knows the format would after changing something before it."""
        conn = sqlite3.connect(self.db)
        try:
            with conn:
                [(prev,)] = conn.execute(
                    "SELECT hash FROM events WHERE seq = ?", (start - 1,)
                ).fetchall() or [(GENESIS,)]
            links = {link.seq: link for link in self.archive.catalog.chain()}
            with conn:
                for seq in sorted(s for s in links if s >= start):
                    link = links[seq]
                    assert link.envelope is not None
                    assert link.message_sha256 is not None
                    digest = chain_events.event_hash(
                        prev, seq, link.message_sha256, link.size or 0, link.envelope
                    )
                    conn.execute(
                        "UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?",
                        (prev, digest, seq),
                    )
                    prev = digest
        finally:
            conn.close()


def integrity(key: Path, **kw: object) -> IntegritySettings:
    return IntegritySettings(signing_key=key, signing_key_configured=True, **kw)  # type: ignore[arg-type]


@pytest.fixture
def signed(config: Config, tmp_path: Path) -> Iterator[Signed]:
    key = tmp_path / "keys" / "signing.key"
    created = create_signing_key(key)
    with Archive(config) as archive:
        for n in range(1, 6):
            archive.ingest(message(n), envelope(n))
        db = Path(config.archive.catalog_url.removeprefix("sqlite://"))
        yield Signed(
            archive, db, integrity(key), config.archive.home / "checkpoints", created.public
        )


# -- making ----------------------------------------------------------------------------------


def test_a_checkpoint_signs_the_head_and_is_stored_durably(signed: Signed) -> None:
    written = make_checkpoint(signed.archive.catalog, signed.settings, signed.directory, now=NOW)
    assert written.path == signed.directory / "20261130T130714Z-5.json"
    statement = written.path.read_bytes()
    public = load_public_key(signed.public)
    assert fmt.signature_holds(statement, fmt.signature_path(written.path).read_bytes(), public)
    cp = fmt.parse(statement, "x")
    assert (cp.events, cp.head, cp.archive) == (5, signed.hash_of(5), signed.hash_of(1))
    assert cp.time == NOW
    assert statement == (
        b'{"archive":"' + signed.hash_of(1).encode() + b'","events":5,'
        b'"format":"postfix-archiver-checkpoint/1","head":"'
        + signed.hash_of(5).encode()
        + b'","key":"'
        + cp.key.encode()
        + b'","time":"2026-11-30T13:07:14Z"}\n'
    )
    assert written.timestamp is None
    assert written.timestamp_error is None
    # a second one in the same second gets a name of its own
    again = make_checkpoint(signed.archive.catalog, signed.settings, signed.directory, now=NOW)
    assert again.path.name == "20261130T130714Z-5-2.json"
    assert stored_checkpoints(signed.directory) == [written.path, again.path]
    assert not [p for p in signed.directory.iterdir() if p.name.startswith(".tmp")]


def test_an_empty_archive_has_a_checkpoint_every_later_archive_descends_from(
    config: Config, tmp_path: Path
) -> None:
    created = create_signing_key(tmp_path / "k" / "signing.key")
    with Archive(config) as archive:
        written = make_checkpoint(
            archive.catalog, integrity(created.private), tmp_path / "cps", now=NOW
        )
        cp = written.checkpoint
        assert (cp.events, cp.head, cp.archive) == (0, GENESIS, None)
        archive.ingest(message(1), envelope(1))
        report = check_checkpoint(archive.catalog, written.path, load_public_key(created.public))
        assert report.ok, report.problems
        assert report.descent is not None
        assert report.descent.events == 1


def test_the_archive_still_descends_after_more_mail(signed: Signed) -> None:
    path = signed.make()
    signed.add(3)
    report = check_checkpoint(signed.archive.catalog, path, load_public_key(signed.public))
    assert report.ok, report.problems
    assert report.descent is not None
    assert (report.descent.events, report.descent.head) == (8, signed.hash_of(8))
    assert report.timestamp_note == "no timestamp stored beside it"


def test_a_missing_key_is_a_clear_error(signed: Signed, tmp_path: Path) -> None:
    settings = integrity(tmp_path / "nowhere" / "signing.key")
    with pytest.raises(CheckpointError, match=r"no such file .*postfix-archiver keys init"):
        make_checkpoint(signed.archive.catalog, settings, signed.directory)
    assert not signed.directory.exists()


# -- history rewritten after the checkpoint ---------------------------------------------------


def test_an_altered_early_event_rechained_after_it_is_named(signed: Signed) -> None:
    path = signed.make()
    signed.sql("UPDATE events SET hash = ? WHERE seq = 2", ("ab" * 32,))
    signed.rechain(3)
    assert signed.check(path) == [
        f"checkpoint {path.name}: the archive does not descend from it: event 5 has hash "
        f"'{signed.hash_of(5)}', the checkpoint says {fmt.parse(path.read_bytes(), '').head}: "
        "the history up to event 5 was rewritten"
    ]
    # and verify's own recomputation names the event whose hash was changed
    assert [p.where for p in verify(signed.archive).problems] == ["event 2"]


def test_content_rewritten_with_every_hash_recomputed_only_the_checkpoint_sees(
    signed: Signed,
) -> None:
    # the worst case: a recipient changed and the chain recomputed from there, so that
    # verify alone finds nothing at all
    path = signed.make()
    envelope_id = signed.sql("SELECT envelope FROM events WHERE seq = 2")[0][0]
    signed.sql(
        "UPDATE envelope_recipients SET address = 'someone-else@example.com' WHERE envelope = ?",
        (envelope_id,),
    )
    signed.rechain(2)
    assert verify(signed.archive).ok
    [problem] = signed.check(path)
    assert "event 5 has hash" in problem
    assert "history up to event 5 was rewritten" in problem


def test_a_rewritten_first_event_is_named(signed: Signed) -> None:
    path = signed.make()
    signed.sql("UPDATE envelopes SET sender = 'x@example.com' WHERE id = 1")
    signed.rechain(1)
    [problem] = signed.check(path)
    assert "event 1 has hash" in problem
    assert "the checkpoint (its archive's first event) says" in problem


def test_a_broken_link_is_named(signed: Signed) -> None:
    path = signed.make()
    signed.sql("UPDATE events SET prev_hash = ? WHERE seq = 4", ("cd" * 32,))
    [problem] = signed.check(path)
    assert "event 4 does not link to event 3" in problem
    assert "the chain was rewritten here" in problem


def test_a_link_broken_after_the_checkpoint_is_named_too(signed: Signed) -> None:
    path = signed.make()
    signed.add(2)
    signed.sql("UPDATE events SET prev_hash = ? WHERE seq = 7", ("cd" * 32,))
    [problem] = signed.check(path)
    assert "event 7 does not link to event 6" in problem


@pytest.mark.parametrize(
    ("removed", "expected"),
    [
        ((3,), "event 3 is missing (the next one stored is 4): events were removed"),
        (
            (4, 5),
            "the archive has 3 events, the checkpoint has event 5: events were removed "
            "(or this is another archive)",
        ),
    ],
)
def test_removed_events_are_named(signed: Signed, removed: tuple[int, ...], expected: str) -> None:
    path = signed.make()
    for seq in removed:
        signed.sql("DELETE FROM events WHERE seq = ?", (seq,))
    [problem] = signed.check(path)
    assert expected in problem


def test_erased_messages_keep_their_events_and_still_descend(signed: Signed) -> None:
    # erasure (another part of the compliance work) removes a message's rows and blobs but
    # leaves its event in the chain: the checkpoint checks links, so it still holds
    path = signed.make()
    envelope_id = signed.sql("SELECT envelope FROM events WHERE seq = 3")[0][0]
    message_id = signed.sql("SELECT message FROM events WHERE seq = 3")[0][0]
    signed.sql("DELETE FROM envelope_recipients WHERE envelope = ?", (envelope_id,))
    signed.sql("DELETE FROM envelopes WHERE id = ?", (envelope_id,))
    signed.sql("DELETE FROM addresses WHERE message = ?", (message_id,))
    signed.sql("DELETE FROM messages WHERE id = ?", (message_id,))
    assert signed.check(path) == []


# -- the signature ----------------------------------------------------------------------------


def test_the_wrong_public_key_is_said_so(signed: Signed, tmp_path: Path) -> None:
    path = signed.make()
    other = create_signing_key(tmp_path / "other" / "signing.key")
    [problem] = signed.check(path, other.public)
    own = fmt.parse(path.read_bytes(), "").key
    assert f"it says it was signed by key {own}" in problem
    assert "the wrong public key" in problem


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b.replace(b'"events":5', b'"events":4'),
        lambda b: b.replace(b"\n", b" \n"),
        lambda b: b[:-1],
    ],
)
def test_an_altered_checkpoint_fails_its_signature(signed: Signed, change: object) -> None:
    path = signed.make()
    path.write_bytes(change(path.read_bytes()))  # type: ignore[operator]
    [problem] = signed.check(path)
    assert "the signature does not hold under the public key given" in problem
    assert "altered" in problem


@pytest.mark.parametrize("signature", [b"", b"\x00" * 64, b"\xff" * 65, bytes(range(256)) * 4])
def test_a_bad_signature_file_fails(signed: Signed, signature: bytes) -> None:
    path = signed.make()
    fmt.signature_path(path).write_bytes(signature)
    [problem] = signed.check(path)
    assert "the signature does not hold" in problem


def test_a_missing_signature_file_is_a_clear_error(signed: Signed) -> None:
    path = signed.make()
    fmt.signature_path(path).unlink()
    with pytest.raises(CheckpointError, match=r"signature .*\.json\.sig: no such file"):
        signed.check(path)


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        (b"\xff\xfe not json", "not ASCII JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"[" * 30_000 + b"]" * 30_000, "not ASCII JSON"),
        (b'{"format": "other/9"}', "format 'other/9'"),
        (b'{"format": "postfix-archiver-checkpoint/1", "events": -1}', "events is not a count"),
        (b'{"format": "postfix-archiver-checkpoint/1", "events": 1e999}', "events"),
        (b'{"format": "postfix-archiver-checkpoint/1", "events": true}', "events"),
        (
            b'{"format": "postfix-archiver-checkpoint/1", "events": 99999999999999999999999}',
            "events",
        ),
        *(
            (
                b'{"archive":"' + b"a" * 64 + b'","events":1,'
                b'"format":"postfix-archiver-checkpoint/1","head":"' + b"b" * 64 + b'",'
                b'"key":"sha256:' + b"c" * 64 + b'","time":"' + time + b'"}',
                "time is not a UTC time",
            )
            for time in (b"0000-01-01T00:00:00Z", b"2026-02-30T00:00:00Z", b"1e9", b"")
        ),
    ],
)
def test_a_signed_statement_that_is_not_a_checkpoint_is_refused_clearly(
    signed: Signed, statement: bytes, reason: str
) -> None:
    # signed by the right key, yet not ours: a signer of another program, or a bug
    path = signed.directory / "odd.json"
    signed.directory.mkdir(exist_ok=True)
    path.write_bytes(statement)
    key = load_private_key(signed.settings.signing_key)
    fmt.signature_path(path).write_bytes(fmt.sign(statement, key))
    with pytest.raises(CheckpointError, match="is not a postfix-archiver checkpoint: " + reason):
        signed.check(path)


def test_a_huge_checkpoint_file_is_not_read_whole(signed: Signed) -> None:
    path = signed.directory / "huge.json"
    signed.directory.mkdir(exist_ok=True)
    with path.open("wb") as f:
        f.truncate(1 << 30)  # sparse: a gigabyte that costs no disk
    fmt.signature_path(path).write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="larger than 64 KiB"):
        signed.check(path)


# -- refusing to sign a rewritten history -----------------------------------------------------


def test_no_new_checkpoint_over_a_history_rewritten_since_the_last(signed: Signed) -> None:
    signed.make()
    signed.sql("UPDATE envelopes SET sender = 'x@example.com' WHERE id = 2")
    signed.rechain(2)
    signed.add()
    with pytest.raises(
        CheckpointError,
        match=r"not signing: the chain does not hold from the "
        r"checkpoint of .*: event 5 has hash",
    ):
        signed.make()
    assert len(stored_checkpoints(signed.directory)) == 1


def test_no_first_checkpoint_over_a_broken_chain(signed: Signed) -> None:
    signed.sql("UPDATE events SET prev_hash = ? WHERE seq = 3", ("ef" * 32,))
    with pytest.raises(CheckpointError, match="from its first event: event 3 does not link"):
        signed.make()


# -- serve's checkpoints ----------------------------------------------------------------------


def wait_for(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_serve_makes_one_every_n_messages(signed: Signed) -> None:
    settings = integrity(signed.settings.signing_key, checkpoint_interval=0, checkpoint_messages=3)
    checkpointer = Checkpointer(signed.archive.catalog, settings, signed.directory, poll=0.02)
    checkpointer.start()
    try:
        # five events and no checkpoint yet: the first one comes at once
        assert wait_for(lambda: len(stored_checkpoints(signed.directory)) == 1)
        signed.add(2)
        time.sleep(0.3)
        assert len(stored_checkpoints(signed.directory)) == 1
        signed.add(1)
        assert wait_for(lambda: len(stored_checkpoints(signed.directory)) == 2)
    finally:
        checkpointer.stop()
    events = [fmt.parse(p.read_bytes(), "").events for p in stored_checkpoints(signed.directory)]
    assert events == [5, 8]


def test_serve_makes_one_every_interval_only_when_there_is_news(signed: Signed) -> None:
    settings = integrity(signed.settings.signing_key, checkpoint_interval=1.0)
    checkpointer = Checkpointer(signed.archive.catalog, settings, signed.directory, poll=0.02)
    started = time.monotonic()
    checkpointer.start()
    try:
        assert wait_for(lambda: len(stored_checkpoints(signed.directory)) == 1)
        assert time.monotonic() - started >= 1.0
        time.sleep(1.5)  # nothing new: no checkpoint
        assert len(stored_checkpoints(signed.directory)) == 1
        signed.add()
        assert wait_for(lambda: len(stored_checkpoints(signed.directory)) == 2)
    finally:
        checkpointer.stop()


def test_serve_starts_from_the_newest_stored_checkpoint(signed: Signed) -> None:
    signed.make()
    settings = integrity(signed.settings.signing_key, checkpoint_interval=0, checkpoint_messages=2)
    checkpointer = Checkpointer(signed.archive.catalog, settings, signed.directory, poll=0.02)
    assert not checkpointer.tick()  # 5 events, the stored checkpoint has them all
    signed.add(1)
    assert not checkpointer.tick()
    signed.add(1)
    assert checkpointer.tick()


def test_a_failing_checkpoint_is_logged_and_retried_while_mail_flows(
    signed: Signed, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = tmp_path / "later" / "signing.key"
    settings = integrity(key, checkpoint_interval=0, checkpoint_messages=1)
    checkpointer = Checkpointer(
        signed.archive.catalog, settings, signed.directory, poll=0.02, retry=0.2
    )
    with caplog.at_level(logging.ERROR, logger="postfix_archiver.checkpoint"):
        checkpointer.start()
        try:
            assert wait_for(lambda: "checkpoint failed, mail flows on" in caplog.text)
            signed.add(2)  # archiving goes on
            assert "no such file" in caplog.text
            create_signing_key(key)
            assert wait_for(lambda: len(stored_checkpoints(signed.directory)) == 1)
        finally:
            checkpointer.stop()
    assert fmt.parse(stored_checkpoints(signed.directory)[0].read_bytes(), "").events == 7


def test_serve_makes_checkpoints_only_with_a_trigger_and_a_key(tmp_path: Path) -> None:
    missing = tmp_path / "none.key"
    assert enabled(integrity(missing))  # set in the file: its absence is an error to log
    assert not enabled(IntegritySettings(signing_key=missing))  # the default, not there
    assert not enabled(integrity(missing, checkpoint_interval=0, checkpoint_messages=0))
    created = create_signing_key(tmp_path / "k" / "signing.key")
    assert enabled(IntegritySettings(signing_key=created.private))


def test_a_fifo_in_place_of_a_file_does_not_hang(signed: Signed) -> None:
    path = signed.make()
    fmt.signature_path(path).unlink()
    os.mkfifo(fmt.signature_path(path))
    with pytest.raises(CheckpointError, match=r"\.json\.sig is not a regular file"):
        signed.check(path)
    fifo = signed.directory / "key.pub"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match=r"key\.pub is not a regular file"):
        load_public_key(fifo)
