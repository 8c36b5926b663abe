"""The archive's one committer (``IngestService``): group commit, and a bad arrival failing
alone. Arrivals are handed over staged, as the importers do.

Run against every catalog backend (``tests.catalog_helpers.BACKENDS``); the tests marked
``only("sqlite")`` are of SQLite's own ways (per-thread connections, another process's lock
on the file, the busy timeout).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from tests.catalog_helpers import WAIT, GatedCatalog, make_arrival, only

from postfix_archiver.archive import Archive, IngestResult, IngestService, Outcome
from postfix_archiver.archive.events import seal
from postfix_archiver.archive.ingest import Staged, commit_each
from postfix_archiver.catalog import AddResult, Catalog, NewArrival, open_catalog
from postfix_archiver.config import Config
from postfix_archiver.errors import CatalogError, TemporaryFailure
from postfix_archiver.sqlite_db import deadline


class Writer:
    """The ingest service seen as a catalog writer: staged arrivals in, results out."""

    def __init__(self, service: IngestService) -> None:
        self.service = service

    def submit(self, arrival: NewArrival, until: float | None = None) -> Future[IngestResult]:
        future: Future[IngestResult] = Future()

        def done(outcome: Future[Outcome]) -> None:
            exc = outcome.exception()
            if exc is not None:
                future.set_exception(exc)
            else:
                result = outcome.result().result
                assert result is not None
                future.set_result(result)

        self.service.submit_staged(Staged(arrival, ()), until).add_done_callback(done)
        return future

    def add(self, arrival: NewArrival, until: float | None = None) -> IngestResult:
        return self.submit(arrival, until).result()

    def close(self) -> None:
        self.service.close()


@pytest.fixture
def writer(config: Config, catalog: GatedCatalog) -> Iterator[Writer]:
    with Archive(config, catalog=catalog.as_catalog()) as archive:
        w = Writer(archive.ingester)
        yield w
        catalog.gate.set()
        w.close()


def hold_writer(catalog: GatedCatalog, writer: Writer) -> Future[IngestResult]:
    """Park the writer thread inside a batch of one; returns that arrival's future."""
    future = writer.submit(make_arrival(0))
    assert catalog.entered.wait(WAIT)
    return future


def chain_seqs(catalog: Catalog) -> list[int]:
    return [link.seq for link in catalog.chain()]


def test_concurrent_submitters_all_get_their_results(catalog: GatedCatalog, writer: Writer) -> None:
    first = hold_writer(catalog, writer)
    threads, per_thread = 8, 25
    submitted = threading.Barrier(threads + 1)
    results: dict[int, list[IngestResult]] = {}
    errors: list[BaseException] = []

    def submitter(t: int) -> None:
        try:
            futures = [
                writer.submit(make_arrival(1 + t * per_thread + i)) for i in range(per_thread)
            ]
            submitted.wait(WAIT)
            results[t] = [f.result(WAIT) for f in futures]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=submitter, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    submitted.wait(WAIT)  # every arrival is queued behind the held batch
    catalog.gate.set()
    for thread in pool:
        thread.join(WAIT)

    assert errors == []
    assert first.result(WAIT).new_message
    everything = [r for rs in results.values() for r in rs]
    assert len(everything) == threads * per_thread
    assert all(r.new_message for r in everything)
    assert all(r.new_envelope for r in everything)
    ids = {r.id for r in everything} | {first.result().id}
    assert len(ids) == threads * per_thread + 1
    # each submitter got the row of its own arrival back
    for t, rs in results.items():
        for i, r in enumerate(rs):
            row = catalog.get(r.id)
            assert row is not None
            assert row.subject == f"arrival {1 + t * per_thread + i}"
    # group commit: the 200 queued arrivals went in as one transaction, not 200
    assert [len(b) for b in catalog.batches] == [1, threads * per_thread]
    seqs = sorted(r.event_seq for r in everything if r.event_seq is not None)
    assert seqs == list(range(2, threads * per_thread + 2))
    assert chain_seqs(catalog.as_catalog()) == list(range(1, threads * per_thread + 2))


def test_blocking_add_from_many_threads(catalog: GatedCatalog, writer: Writer) -> None:
    catalog.gate.set()
    results: list[IngestResult] = []
    lock = threading.Lock()

    def adder(t: int) -> None:
        for i in range(20):
            r = writer.add(make_arrival(t * 20 + i))
            with lock:
                results.append(r)

    pool = [threading.Thread(target=adder, args=(n,)) for n in range(10)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(WAIT)
    assert len({r.id for r in results}) == 200
    assert catalog.stats().messages == 200
    assert chain_seqs(catalog.as_catalog()) == list(range(1, 201))


def test_failing_arrival_does_not_fail_its_neighbours(
    catalog: GatedCatalog, writer: Writer
) -> None:
    first = hold_writer(catalog, writer)
    good = [make_arrival(n) for n in range(1, 11)]
    bad = make_arrival(99, poison=True)
    futures = [writer.submit(a) for a in good[:5]]
    bad_future = writer.submit(bad)
    futures += [writer.submit(a) for a in good[5:]]
    catalog.gate.set()

    with pytest.raises(CatalogError, match="cannot write catalog"):
        bad_future.result(WAIT)
    results = [f.result(WAIT) for f in futures]
    assert first.result(WAIT).new_message
    assert all(r.new_message and r.new_envelope for r in results)
    for arrival, result in zip(good, results, strict=True):
        assert catalog.find_sha(arrival.sha256) == result.id
    assert catalog.find_sha(bad.sha256) is None
    # the batch of eleven failed as a whole and was retried one by one
    assert len(catalog.batches[1]) == 11
    assert bad.sha256 in catalog.batches[1]
    assert [b for b in catalog.batches[2:] if len(b) != 1] == []
    assert catalog.stats().messages == 11
    # no event for the arrival that failed, and no gap where it would have been
    assert chain_seqs(catalog.as_catalog()) == list(range(1, 12))
    assert catalog.orphans() == ([], [])


def test_a_failed_batch_leaves_nothing_behind(catalog_url: str) -> None:
    catalog = open_catalog(catalog_url)
    try:
        ok = make_arrival(1)
        with pytest.raises(CatalogError):
            catalog.add_batch([ok, make_arrival(2, poison=True)], seal)
        assert catalog.find_sha(ok.sha256) is None
        assert list(catalog.chain()) == []
        [result] = catalog.add_batch([ok], seal)
        assert result.event_seq == 1
    finally:
        catalog.close()


def test_the_same_arrival_twice_in_one_batch(catalog: GatedCatalog, writer: Writer) -> None:
    """Postfix retrying while the first attempt waits for its commit."""
    hold_writer(catalog, writer)
    arrival = make_arrival(7)
    other_envelope = make_arrival(7, queue_id="RETRY2")
    f1, f2, f3 = (writer.submit(a) for a in (arrival, arrival, other_envelope))
    catalog.gate.set()
    r1, r2, r3 = f1.result(WAIT), f2.result(WAIT), f3.result(WAIT)
    assert len(catalog.batches[1]) == 3
    assert (r1.new_message, r1.new_envelope) == (True, True)
    assert (r2.id, r2.new_message, r2.new_envelope, r2.event_seq) == (r1.id, False, False, None)
    assert (r3.id, r3.new_message, r3.new_envelope) == (r1.id, False, True)
    assert [e.envelope.queue_id for e in catalog.envelopes(r1.id)] == ["Q00007", "RETRY2"]


def test_close_commits_what_is_queued(catalog: GatedCatalog, writer: Writer) -> None:
    first = hold_writer(catalog, writer)
    futures = [writer.submit(make_arrival(n)) for n in range(1, 6)]
    opener = threading.Timer(0.05, catalog.gate.set)
    opener.start()
    writer.close()
    opener.join()
    assert first.done()
    assert all(f.done() for f in futures)
    assert [f.result().new_message for f in futures] == [True] * 5
    assert catalog.stats().messages == 6
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(make_arrival(6))
    writer.close()  # a second close is harmless


@only("sqlite")
def test_reader_threads_that_end_give_their_connection_back(catalog: GatedCatalog) -> None:
    def read() -> None:
        assert catalog.get(1) is None

    for _ in range(50):
        t = threading.Thread(target=read)
        t.start()
        t.join()
    assert len(catalog.sqlite._readers) <= 1


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Another process's write transaction on the catalog (a backup, a sqlite3 shell)."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


@only("sqlite")
def test_a_locked_catalog_fails_the_whole_batch_at_once(catalog: GatedCatalog) -> None:
    catalog.gate.set()
    catalog.sqlite._write_conn().execute("PRAGMA busy_timeout=300")  # not the 30 s of a real one
    arrivals = [make_arrival(n) for n in range(5)]

    with locked(catalog.sqlite.path):
        started = time.monotonic()
        outcomes = commit_each(catalog.as_catalog(), arrivals)
        took = time.monotonic() - started

    # one wait for the lock, not one more per arrival: retrying singly cannot help
    assert catalog.batches == [[a.sha256 for a in arrivals]]
    assert took < 0.3 * 3
    assert len(outcomes) == 5
    for outcome in outcomes:
        assert isinstance(outcome, CatalogError)
        assert "is locked by another process" in str(outcome)
    # the lock is gone: the same batch commits as one
    committed = commit_each(catalog.as_catalog(), arrivals)
    assert all(isinstance(r, AddResult) and r.new_envelope for r in committed)
    assert len(catalog.batches) == 2


@only("sqlite")
def test_the_wait_for_a_locked_catalog_ends_at_the_deadline(
    catalog: GatedCatalog, writer: Writer
) -> None:
    catalog.gate.set()
    with locked(catalog.sqlite.path):
        started = time.monotonic()
        future = writer.submit(make_arrival(1), started + 0.5)
        with pytest.raises(CatalogError, match="locked by another process"):
            future.result(WAIT)
        took = time.monotonic() - started
        # past the deadline: tried once, not waited for
        with pytest.raises(CatalogError), deadline(started):
            catalog.add_batch([make_arrival(2)], seal)
    assert 0.4 < took < 2.0  # the catalog's own busy timeout is 30 s
    # the lock is gone: committed at once, the connection's own timeout back in force
    started = time.monotonic()
    assert writer.add(make_arrival(1), time.monotonic() + 5).new_message
    assert time.monotonic() - started < 1.0
    assert catalog.sqlite._write_conn().execute("PRAGMA busy_timeout").fetchone()[0] == 30_000


def test_an_arrival_past_its_deadline_is_not_committed(
    catalog: GatedCatalog, writer: Writer
) -> None:
    first = hold_writer(catalog, writer)
    late = writer.submit(make_arrival(1), time.monotonic() + 0.05)
    patient = writer.submit(make_arrival(2), time.monotonic() + WAIT)
    time.sleep(0.1)
    catalog.gate.set()

    with pytest.raises(TemporaryFailure, match="answer_timeout"):
        late.result(WAIT)
    assert patient.result(WAIT).new_message
    assert first.result(WAIT).new_message
    assert catalog.find_sha(make_arrival(1).sha256) is None
    assert catalog.batches[1] == [make_arrival(2).sha256]
