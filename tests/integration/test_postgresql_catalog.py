"""What only the PostgreSQL catalog has: its server (unreachable, a newer schema), several
writers in one database (one chain, one row per message), text PostgreSQL cannot hold as is.

The ``Catalog`` contract itself runs over this backend in ``tests/unit/catalog``.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from tests.catalog_helpers import WAIT, make_arrival
from tests.conftest import make_config
from tests.pg_cluster import cluster, postgresql_url

from postfix_archiver.archive import Archive
from postfix_archiver.catalog import ChainEvent, NewArrival, Removal, open_catalog
from postfix_archiver.catalog.postgresql import redact
from postfix_archiver.envelope import Envelope
from postfix_archiver.errors import CatalogError
from postfix_archiver.search import parse_query

pytestmark = [pytest.mark.integration]

EPOCH = datetime(2024, 5, 1, tzinfo=UTC)


def seal(last: ChainEvent | None, arrival: NewArrival) -> ChainEvent:
    """A chain event after ``last``, its hash naming its place and its message: a fork (two
    events after one head) shows as two events with one ``prev_hash``."""
    seq = 1 if last is None else last.seq + 1
    return ChainEvent(seq, "0" * 64 if last is None else last.hash, f"{seq}:{arrival.sha256}")


def test_an_unreachable_server_is_one_line_naming_the_url_without_its_password() -> None:
    c = cluster()
    url = f"postgresql://archiver:s3cret-pw@127.0.0.1:{c.port + 1}/archive"  # nobody listens
    with pytest.raises(CatalogError) as caught:
        open_catalog(url)
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert "postgresql://archiver@127.0.0.1:" in message
    assert "\n" not in message
    assert message.startswith("cannot connect to catalog")


def test_redact_leaves_a_url_without_password_alone() -> None:
    assert redact("postgresql://a:b@h:5/d") == "postgresql://a@h:5/d"
    assert redact("postgresql://h/d") == "postgresql://h/d"
    assert "pw" not in redact("postgresql://:pw@h/d")


def test_a_schema_newer_than_this_program_is_refused() -> None:
    url = postgresql_url()
    open_catalog(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(CatalogError, match=r"schema version 99, newer .*upgrade postfix-archiver"):
        open_catalog(url)


def test_a_readonly_open_of_an_empty_database_creates_nothing() -> None:
    url = postgresql_url()
    with pytest.raises(CatalogError, match="no archive"):
        open_catalog(url, readonly=True)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert row.fetchone() == (0,)


def test_text_with_nul_comes_back_as_archived() -> None:
    """PostgreSQL's text cannot hold NUL; hostile mail puts one in a Subject or a name."""
    c = open_catalog(postgresql_url())
    try:
        subject = "a\x00b \ufdd0 c\ufdd00"
        arrival = dataclasses.replace(make_arrival(1), subject=subject)
        [result] = c.add_batch([arrival], seal)
        row = c.get(result.id)
        assert row is not None
        assert row.subject == subject
    finally:
        c.close()


def test_several_writers_keep_one_chain_and_one_row_per_message() -> None:
    """Four catalogs (four connections, as four ``serve`` processes would hold) commit
    batches at once, each batch holding messages another writer adds too: every batch
    commits, each message has one row, the chain is one line with no fork."""
    url = postgresql_url()
    open_catalog(url).close()
    writers, batches, size = 4, 6, 10
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(w: int) -> None:
        c = open_catalog(url)
        try:
            start.wait(WAIT)
            for b in range(batches):
                # message n arrives from every writer, each with its own queue id
                arrivals = [
                    make_arrival(n, queue_id=f"W{w}Q{n}") for n in range(b * size, (b + 1) * size)
                ]
                c.add_batch(arrivals, seal)
        except BaseException as exc:
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    c = open_catalog(url)
    try:
        assert len(list(c.messages())) == batches * size
        links = list(c.chain())
        assert len(links) == writers * batches * size  # one event per envelope
        assert [link.seq for link in links] == list(range(1, len(links) + 1))
        for before, after in itertools.pairwise(links):
            assert after.prev_hash == before.hash
        assert c.orphans() == ([], [])
        page = c.search(parse_query("arrival"), limit=1)
        assert page.not_indexed == batches * size  # queued for the indexer, once each
    finally:
        c.close()


def test_the_advisory_lock_makes_a_second_writer_wait_for_the_first() -> None:
    """``writing()`` holds the lock every write takes: another process's commit waits."""
    url = postgresql_url()
    first, second = open_catalog(url), open_catalog(url)
    done = threading.Event()
    try:
        with first.writing():

            def commit() -> None:
                second.add_batch([make_arrival(1)], seal)
                done.set()

            t = threading.Thread(target=commit)
            t.start()
            assert not done.wait(1.0), "the second writer did not wait for the lock"
        assert done.wait(WAIT)
        t.join(WAIT)
        assert second.last_event() is not None
    finally:
        first.close()
        second.close()


def test_ids_are_never_reused_after_a_removal_across_writers() -> None:
    url = postgresql_url()
    a, b = open_catalog(url), open_catalog(url)
    try:
        [first] = a.add_batch([make_arrival(1)], seal)

        def tombstone(last: ChainEvent, removed: object) -> tuple[ChainEvent, dict[str, object]]:
            return ChainEvent(last.seq + 1, last.hash, f"t{last.seq + 1}"), {"removed": True}

        a.remove([Removal(first.id, "erase", "test", "me", datetime.now(UTC), None)], tombstone)
        [second] = b.add_batch([make_arrival(2)], seal)
        assert second.id > first.id
    finally:
        a.close()
        b.close()


def test_a_lost_connection_fails_one_commit_and_the_next_reconnects() -> None:
    """A server restart or a dropped connection is a temporary failure (451: Postfix keeps
    the mail), never a catalog that stays broken until the process restarts."""
    url = postgresql_url()
    c = open_catalog(url)
    try:
        c.add_batch([make_arrival(1)], seal)
        assert c.get(1) is not None
        with psycopg.connect(cluster().url("postgres"), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid != pg_backend_pid()",
                (url.rsplit("/", 1)[1],),
            )
        with pytest.raises(CatalogError, match="lost the connection") as caught:
            c.add_batch([make_arrival(2)], seal)
        assert "\n" not in str(caught.value)
        with pytest.raises(CatalogError):
            c.get(1)  # the reader's connection went too: an error, then a new one
        c.add_batch([make_arrival(2)], seal)
        assert c.get(1) is not None
        assert [link.seq for link in c.chain()] == [1, 2]
    finally:
        c.close()


def test_closing_leaves_no_connection_open_even_with_a_read_in_flight() -> None:
    """A thread still reading when the catalog closes gives its connection back to a pool
    that is gone: it is closed, not kept (kept, it was found by the garbage collector later,
    an unclosed socket); a write after close opens nothing."""
    c = open_catalog(postgresql_url())
    c.add_batch([make_arrival(1)], seal)
    readers = c._readers  # type: ignore[attr-defined]
    with readers.use() as lent:
        c.close()
        assert not lent.closed  # the read in flight goes on
        lent.execute("SELECT 1")
    assert lent.closed
    with pytest.raises(CatalogError, match="is closed"):
        c.add_batch([make_arrival(2)], seal)
    assert c._writer is None  # type: ignore[attr-defined]


def test_two_hosts_indexers_claim_different_messages_and_a_lapsed_claim_is_free() -> None:
    """Two catalogs on one database (two ``serve`` hosts): each indexer's claim takes
    messages the other has not; its own claim it may take again; a claim that ran out (its
    host died) is anyone's; a look without a claim sees every queued message."""
    url = postgresql_url()
    a, b = open_catalog(url), open_catalog(url)
    try:
        a.add_batch([make_arrival(n) for n in range(10)], seal)
        now = datetime.now(UTC)
        everything = [m for m, _ in a.queued(100)]
        assert len(everything) == 10
        first = [m for m, _ in a.queued(4, due=now, claim=True)]
        second = [m for m, _ in b.queued(4, due=now, claim=True)]
        assert (first, second) == (everything[:4], everything[4:8])  # the oldest first
        # a's own claim it takes again (a batch the catalog refused is retried), b's not
        assert [m for m, _ in a.queued(10, due=now, claim=True)] == first + everything[8:]
        assert [m for m, _ in a.queued(100)] == everything  # no claim: all of them
        # b's host dies: once its claim lapses, a takes its messages too
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "UPDATE index_queue SET claimed_until = 0 WHERE message = ANY(%s)", (second,)
            )
        assert [m for m, _ in a.queued(10, due=now, claim=True)] == everything
    finally:
        a.close()
        b.close()


def _scans(url: str) -> dict[str, int]:
    """Sequential scans of ``fts`` and index scans of each of its indexes, as PostgreSQL's
    statistics count them (a backend reports its counts once idle: at most 10 s later)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT pg_stat_clear_snapshot()")
        seq = conn.execute(
            "SELECT coalesce(seq_scan, 0) FROM pg_stat_user_tables WHERE relname = 'fts'"
        ).fetchone()
        found = {"seq": int(seq[0]) if seq else 0}
        for name, scans in conn.execute(
            "SELECT indexrelname, idx_scan FROM pg_stat_user_indexes WHERE relname = 'fts'"
        ):
            found[str(name)] = int(scans)
        return found


def _alone(url: str) -> None:
    """Waits until no other connection to ``url``'s database is left."""
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            ).fetchone()
            if (row is not None and row[0] == 0) or time.monotonic() > deadline:
                return
            time.sleep(0.1)


def _settled(url: str, before: dict[str, int], key: str) -> dict[str, int]:
    deadline = time.monotonic() + 30
    while True:
        now = _scans(url)
        if now.get(key, 0) > before.get(key, 0) or time.monotonic() > deadline:
            return now
        time.sleep(0.2)


def test_a_word_in_every_message_and_a_subject_word_are_found_in_the_gin_indexes(
    tmp_path: Path,
) -> None:
    # the planner prices a tsvector match as cheap as any operator, so for a word in most
    # messages it read every document out of TOAST (a Seq Scan on fts: 1,670 ms at 20,000
    # messages) instead of the GIN index's list; subject:word was a weighted match GIN cannot
    # answer, checked again in every document holding the word anywhere
    url = postgresql_url()
    config = make_config(tmp_path / "a", f"catalog = {url!r}")
    with Archive(config) as archive:
        for n in range(60):
            subject = "ledger closing" if n % 3 == 0 else f"note {n}"
            raw = (
                f"From: a{n}@example.com\nTo: b@example.org\nSubject: {subject}\n"
                f"Message-ID: <{n}@example.com>\n\nthe ledger of day {n}\n"
            ).encode()
            archive.ingest(raw, Envelope("a@example.com", ("b@example.org",), received=EPOCH))
        archive.index_pending()
    # the archiving connections' own scans of fts (an idle backend reports its counts up to
    # 10 s later) are all counted before the searches: they report at exit, and have exited
    _alone(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE fts")
    before = _scans(url)
    with Archive(config) as archive:
        page = archive.search("ledger", limit=5)
        after = _settled(url, before, "fts_doc")
        assert page.total == 60
        assert len(page.results) == 5
        assert after.get("fts_doc", 0) > before.get("fts_doc", 0)
        assert after["seq"] == before["seq"], "a search read the whole fts table"
        page = archive.search("subject:ledger", limit=50)
        assert page.total == 20
        final = _settled(url, after, "fts_subject_doc")
        assert final.get("fts_subject_doc", 0) > after.get("fts_subject_doc", 0)
        assert final["seq"] == after["seq"]


def test_entries_indexed_before_step_4_are_found_by_field_after_the_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # step 4 makes the field columns from the documents already there: nothing to reindex
    import postfix_archiver.catalog.postgresql as pg
    from postfix_archiver.catalog.postgresql_schema import MIGRATIONS

    url = postgresql_url()
    config = make_config(tmp_path / "a", f"catalog = {url!r}")
    monkeypatch.setattr(pg, "MIGRATIONS", MIGRATIONS[:3])  # a program from before step 4
    with Archive(config) as archive:
        for n in range(6):
            subject = "ledger closing" if n % 2 else "weekly note"
            raw = f"Subject: {subject}\nMessage-ID: <{n}@x>\n\nledger {n}\n".encode()
            archive.ingest(raw, Envelope("a@example.com", ("b@example.org",), received=EPOCH))
        archive.index_pending()
    monkeypatch.setattr(pg, "MIGRATIONS", MIGRATIONS)
    with Archive(config) as archive:
        assert archive.search("subject:ledger").total == 3
        assert archive.search('subject:"ledger closing" -subject:weekly').total == 3
        assert archive.search("ledger -subject:ledger").total == 3
        assert archive.search("subject:closing subject:weekly").total == 0
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (len(MIGRATIONS),)
