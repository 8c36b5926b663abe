"""Indexing after answering: ingest queues, the indexer makes the entries (with attachment
text, extracted once per attachment), a removal forgets exact entries, and nothing is lost or
stuck when an extraction fails, a blob is unreadable or a message goes while queued."""

from __future__ import annotations

import base64
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.conftest import make_config

from postfix_archiver.archive import Archive, verify
from postfix_archiver.archive.indexer import entry_of, signature_of
from postfix_archiver.archive.removal import ERASE, remove
from postfix_archiver.archive.service import INDEX_TEXT_VERSION
from postfix_archiver.catalog import Indexed
from postfix_archiver.catalog.sqlite import MIGRATIONS, SqliteCatalog
from postfix_archiver.config import Config
from postfix_archiver.envelope import Envelope
from postfix_archiver.extract import Limits
from postfix_archiver.sqlite_db import migrate

T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
NOTES = b"minutes of the zqxplanning meeting\r\n" * 40  # a text attachment: extractable


def mail(n: int, body: str = "hello", attachment: bytes | None = NOTES) -> bytes:
    head = (
        f"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: memo {n}\r\n"
        f"Message-ID: <{n}@example.com>\r\nMIME-Version: 1.0\r\n"
    )
    if attachment is None:
        return f"{head}\r\n{body} {n}\r\n".encode()
    encoded = base64.encodebytes(attachment)
    return (
        (
            f'{head}Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
            f"--B\r\nContent-Type: text/plain\r\n\r\n{body} {n}\r\n"
            '--B\r\nContent-Type: text/plain; name="notes.txt"\r\n'
            'Content-Disposition: attachment; filename="notes.txt"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + encoded.replace(b"\n", b"\r\n")
        + b"--B--\r\n"
    )


def env(n: int) -> Envelope:
    return Envelope("alice@example.com", ("bob@example.com",), queue_id=f"Q{n}", received=T0)


def db(config: Config) -> sqlite3.Connection:
    return sqlite3.connect(config.archive.home / "catalog.sqlite")


def test_ingest_queues_and_the_indexer_makes_the_entry_with_attachment_text(
    archive: Archive,
) -> None:
    first = archive.ingest(mail(1), env(1)).id
    # durable and answered, not yet searchable: queued, no entry
    status = archive.catalog.index_status()
    assert (status.queued, status.failures) == (1, {})
    assert status.oldest is not None
    assert archive.search("memo").total == 0
    assert archive.catalog.index_check() == ([], [])  # queued is not missing
    assert archive.index_pending() == 1
    assert archive.catalog.index_status().queued == 0
    assert [r.id for r in archive.search("zqxplanning").results] == [first]
    assert [r.id for r in archive.search("memo notes.txt").results] == [first]
    assert archive.index_pending() == 0
    assert archive.catalog.index_signatures([first]) == {first: signature_of(archive)}


def test_the_answer_does_not_wait_for_indexing(archive: Archive) -> None:
    """An indexing pass holds the indexer's lock as long as its extractions take: the
    committer answers meanwhile."""
    archive.start_indexer()
    with archive.index_lock:  # the indexer is busy (a slow extraction, say)
        started = time.monotonic()
        outcome = archive.ingester.submit(mail(2), env(2)).result(timeout=20)
        assert time.monotonic() - started < 10
        assert outcome.archive_id is not None
        assert archive.search("zqxplanning").total == 0
    # once free, the thread, woken by the commit, indexes it
    deadline = time.monotonic() + 20
    while archive.search("zqxplanning").total == 0:
        assert time.monotonic() < deadline, "the background indexer never indexed the message"
        time.sleep(0.05)
    assert archive.catalog.index_status().queued == 0


def test_an_attachment_is_extracted_once(archive: Archive) -> None:
    first = archive.ingest(mail(1), env(1)).id
    archive.index_pending()
    [att] = archive.attachments(first)
    # the cached text, changed: a second message with the same attachment is indexed from
    # the cache, so it finds what the cache holds, not what extracting again would give
    archive.store_texts([(att.sha256, "zqxcachedonly", [])])
    second = archive.ingest(mail(2), env(2)).id
    archive.index_pending()
    assert [r.id for r in archive.search("zqxcachedonly").results] == [second]
    with db(archive.config) as conn:
        assert conn.execute("SELECT count(*), min(status) FROM extracts").fetchone() == (1, "ok")


def test_a_failed_extraction_is_recorded_and_the_message_indexed_without_it(
    archive: Archive,
) -> None:
    archive.extract_limits = Limits(max_input=100)  # the attachment is over it
    ident = archive.ingest(mail(1), env(1)).id
    assert archive.index_pending() == 1
    status = archive.catalog.index_status()
    assert (status.queued, status.failures) == (0, {"too-big": 1})
    assert [r.id for r in archive.search("memo").results] == [ident]
    assert archive.search("zqxplanning").total == 0
    [att] = archive.attachments(ident)
    record = archive.catalog.extract_records([att.sha256])[att.sha256]
    assert record.status == "too-big"
    assert "over 100" in record.detail


def test_an_unreadable_message_is_deferred_not_stuck(archive: Archive) -> None:
    bad = archive.ingest(mail(1, attachment=None), env(1))
    good = archive.ingest(mail(2, attachment=None), env(2)).id
    archive.store.delete_many([f"m/{bad.sha256}"])
    assert archive.index_pending() == 2  # both taken; the unreadable one put off
    assert [r.id for r in archive.search("memo").results] == [good]
    assert archive.catalog.index_status().queued == 1
    assert archive.index_pending() == 0  # not due again yet: no busy loop


def test_a_message_removed_while_queued_needs_no_rebuild(archive: Archive) -> None:
    kept = archive.ingest(mail(1), env(1)).id
    archive.index_pending()
    going = archive.ingest(mail(2, body="zqxgoing"), env(2)).id
    outcome = remove(archive, [archive.get(going)], why=ERASE, reason="r", who="w")
    assert [r.id for r, _ in outcome.removed] == [going]
    assert not outcome.reindexed
    assert archive.catalog.index_status().queued == 0
    assert archive.catalog.index_check() == ([], [])
    assert [r.id for r in archive.search("memo").results] == [kept]


def test_a_message_removed_while_being_indexed_is_not_indexed(archive: Archive) -> None:
    ident = archive.ingest(mail(1), env(1))
    made = entry_of(archive, ident.sha256)  # the indexer has made the entry ...
    assert made is not None
    remove(archive, [archive.get(ident.id)], why=ERASE, reason="r", who="w")  # ... it goes
    done = archive.catalog.index(
        [Indexed(ident.id, made.entry)], signature_of(archive), made.extracts
    )
    assert done == []
    assert archive.catalog.index_check() == ([], [])
    assert archive.search("zqxplanning").total == 0
    # its attachment's text blob, stored by the indexer, goes with the next removal's blobs
    [extracted] = made.extracts
    assert ("text", extracted.sha256) in archive.catalog.pending_blobs()


def test_an_indexed_message_is_forgotten_exactly_with_its_attachment_text(
    archive: Archive,
) -> None:
    kept = archive.ingest(mail(1, attachment=b"other text zqxkept\r\n" * 30), env(1)).id
    going = archive.ingest(mail(2), env(2)).id
    archive.index_pending()
    [att] = archive.attachments(going)
    assert archive.store.exists(f"t/{att.sha256}")
    outcome = remove(archive, [archive.get(going)], why=ERASE, reason="r", who="w")
    assert not outcome.reindexed  # its exact values were recomputed, cached text included
    assert archive.search("zqxplanning").total == 0
    assert [r.id for r in archive.search("zqxkept").results] == [kept]
    assert not archive.store.exists(f"t/{att.sha256}")
    assert archive.catalog.extract_records([att.sha256]) == {}
    assert verify(archive).ok


def test_a_lost_cached_text_means_a_rebuild_in_the_background(archive: Archive) -> None:
    kept = archive.ingest(mail(1, attachment=b"other text zqxkept\r\n" * 30), env(1)).id
    going = archive.ingest(mail(2), env(2)).id
    archive.index_pending()
    [att] = archive.attachments(going)
    archive.store.delete_many([f"t/{att.sha256}"])
    outcome = remove(archive, [archive.get(going)], why=ERASE, reason="r", who="w")
    assert outcome.reindexed
    assert archive.catalog.index_status().queued == 1  # the kept one, queued again
    assert archive.index_pending() == 1
    assert [r.id for r in archive.search("zqxkept").results] == [kept]
    assert archive.search("zqxplanning").total == 0


def test_a_crash_between_extraction_and_commit_is_resumed(config: Config) -> None:
    with Archive(config) as archive:
        ident = archive.ingest(mail(1), env(1))
        entry_of(archive, ident.sha256)  # extracted, text stored; then the process dies
    with Archive(config) as archive:  # restarted: the queue is in the catalog
        assert archive.catalog.index_status().queued == 1
        assert archive.index_pending() == 1
        assert [r.id for r in archive.search("zqxplanning").results] == [ident.id]


def test_two_indexers_index_a_message_once(archive: Archive, config: Config) -> None:
    """``postfix-archiver index`` beside serve's thread, in another process: the commit
    takes a message off the queue only if it is still queued."""
    ident = archive.ingest(mail(1), env(1)).id
    other = Archive(config)
    try:
        made = entry_of(other, archive.get(ident).sha256)
        assert made is not None
        assert archive.index_pending() == 1
        assert other.catalog.index([Indexed(ident, made.entry)], signature_of(other)) == []
    finally:
        other.close()
    assert archive.catalog.index_check() == ([], [])
    # indexed once: forgetting it once leaves nothing (a double entry would still match)
    remove(archive, [archive.get(ident)], why=ERASE, reason="r", who="w")
    assert archive.search("zqxplanning").total == 0


def test_the_indexer_thread_survives_and_stops(archive: Archive) -> None:
    archive.start_indexer()
    archive.start_indexer()  # once
    names = [t.name for t in threading.enumerate()]
    assert names.count("indexer") == 1
    archive.close()
    assert "indexer" not in [t.name for t in threading.enumerate()]


def test_migration_5_queues_what_was_archived_before(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    conn = sqlite3.connect(path)
    migrate(conn, MIGRATIONS[:4])
    with conn:
        conn.execute(
            "INSERT INTO messages (id, sha256, size, stored_size, date, received, message_id, "
            "subject, from_text, to_text, cc_text, attachment_count, defects, indexed_with) "
            "VALUES (7, 'ab', 1, 1, 0, 0, '', 'old', '', '', '', 0, '[]', 'text-v1;limit=9')"
        )
        conn.execute(
            "INSERT INTO fts (rowid, subject, body, names, addrs) VALUES (7, 'old', '', '', '')"
        )
    conn.close()
    catalog = SqliteCatalog(str(path))
    try:
        assert catalog.index_signatures([7]) == {7: None}
        assert catalog.queued(10) == [(7, "ab")]
        assert catalog.index_check() == ([], [])
    finally:
        catalog.close()
    conn = sqlite3.connect(path)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(fts)")]
    assert columns == ["subject", "body", "names", "addrs", "attachments"]
    assert conn.execute("SELECT count(*) FROM fts_docsize").fetchone() == (0,)
    conn.close()


def test_index_check_finds_missing_and_stale_entries(config: Config) -> None:
    with Archive(config) as archive:
        a = archive.ingest(mail(1, attachment=None), env(1)).id
        b = archive.ingest(mail(2, attachment=None), env(2)).id
        archive.index_pending()
    with db(config) as conn:
        conn.execute("DELETE FROM fts_docsize WHERE id = ?", (a,))  # lost its entry
        conn.execute("INSERT INTO fts (rowid, subject) VALUES (99, 'ghost')")  # no message
    with Archive(config, readonly=True) as archive:
        assert archive.catalog.index_check() == ([a], [99])
        assert b not in archive.catalog.index_check()[0]


@pytest.mark.parametrize("limit", [0, -5, 2**70])
def test_queued_takes_any_limit(archive: Archive, limit: int) -> None:
    archive.ingest(mail(1, attachment=None), env(1))
    assert len(archive.catalog.queued(limit)) == (1 if limit > 0 else 0)


def test_the_signature_says_how_the_entry_was_made(tmp_path: Path) -> None:
    """Another index limit or extraction limit is another signature (an entry made one
    way cannot be recomputed the other), and the signature stays short (one per message)."""
    signatures: set[str] = set()
    for extra in ("", "index_limit = 4096\n", "[extract]\nmax_output = 100000\n"):
        config = make_config(tmp_path / str(len(signatures)), extra)
        with Archive(config) as archive:
            signature = signature_of(archive)
        assert signature.startswith(f"text-v{INDEX_TEXT_VERSION};")
        assert len(signature) <= 24
        signatures.add(signature)
    assert len(signatures) == 3


def test_one_batch_with_the_same_attachment_twice_indexes_both(archive: Archive) -> None:
    first = archive.ingest(mail(1), env(1)).id
    second = archive.ingest(mail(2), env(2)).id
    assert archive.index_pending() == 2  # one batch: the second uses what the first extracted
    assert {r.id for r in archive.search("zqxplanning").results} == {first, second}
    with db(archive.config) as conn:
        assert conn.execute("SELECT count(*) FROM extracts").fetchone() == (1,)


def test_an_attachment_two_indexers_extracted_differently_leaves_no_stray_entry(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reindex beside serve's indexer: both extract one attachment before either commits,
    one of them times out. The later commit is not taken (its entry was made from the other
    outcome), so that each entry is what its removal computes again: erasing both messages
    leaves nothing of them in the index."""
    from postfix_archiver.archive import indexer
    from postfix_archiver.extract import TIMEOUT, Extraction

    with Archive(config) as archive:
        first = archive.ingest(mail(1), env(1)).id
        second = archive.ingest(mail(2), env(2)).id
        # the other indexer's view of the second message: extracted, timed out, not committed
        with monkeypatch.context() as m:
            m.setattr(indexer, "_extract", lambda *a: Extraction(TIMEOUT, detail="20 s"))
            late = entry_of(archive, archive.get(second).sha256, fresh={})
        assert late is not None
        assert [x.status for x in late.extracts] == [TIMEOUT]
        assert indexer.index_batch(archive, batch=1) == 1  # the first, extracted fine
        indexer._commit(archive, [(second, late)], signature_of(archive))
        assert archive.catalog.index_status().queued == 1  # not taken: made again later
        archive.catalog.defer([second], datetime.now(UTC))
        assert archive.index_pending() == 1
        assert {r.id for r in archive.search("zqxplanning").results} == {first, second}
        for going in (first, second):
            remove(archive, [archive.get(going)], why=ERASE, reason="r", who="w")
        page = archive.search("zqxplanning")
        assert (page.total, page.results) == (0, [])
        with db(config) as conn:
            (stray,) = conn.execute(
                "SELECT count(*) FROM fts WHERE fts MATCH 'zqxplanning'"
            ).fetchone()
        assert stray == 0


def test_a_count_the_index_gets_wrong_is_made_again(config: Config) -> None:
    # an index entry left of a removed message (a removal that did not match it, before
    # the fix above): the search still says what is there
    with Archive(config) as archive:
        kept = archive.ingest(mail(1), env(1)).id
        archive.index_pending()
        with db(config) as conn:
            conn.execute(
                "INSERT INTO fts (rowid, subject, body) VALUES (999, 'x', 'zqxplanning stray')"
            )
        page = archive.search("zqxplanning")
        assert ([r.id for r in page.results], page.total) == ([kept], 1)


def test_the_indexer_makes_the_entry_from_the_parse_the_message_was_staged_with(
    archive: Archive,
) -> None:
    """Mail archived in this process is indexed from the parse it was staged with, not read
    back from its blobs and parsed again: with its manifest gone, it is still indexed (with
    its attachment text), as the blobs would have indexed it."""
    archive.start_indexer()
    with archive.index_lock:  # the indexer waits until the blobs are gone
        outcome = archive.ingester.submit(mail(3), env(3)).result(timeout=20)
        assert outcome.result is not None
        sha = outcome.result.sha256
        made_from_blobs = entry_of(archive, sha)
        archive.store.delete_many([f"m/{sha}"])
    deadline = time.monotonic() + 20
    while archive.catalog.index_status().queued:
        assert time.monotonic() < deadline, "the background indexer never indexed the message"
        time.sleep(0.05)
    assert [r.id for r in archive.search("zqxplanning memo").results] == [outcome.archive_id]
    assert made_from_blobs is not None
    assert archive.catalog.index_check() == ([], [])
    assert len(archive.staged_parses) == 0  # taken, not held on to


def test_without_an_indexer_here_no_parse_is_kept(archive: Archive) -> None:
    """The pipe filter and the other listening processes run no indexer: they keep nothing."""
    archive.ingester.submit(mail(4), env(4)).result(timeout=20)
    assert len(archive.staged_parses) == 0
