"""The ingest service's batches: it stages on one thread, then stores the blobs of what
waits in one go and commits their rows as one transaction."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future

import pytest
from tests.catalog_helpers import WAIT, GatedCatalog, make_arrival

from postfix_archiver.archive import Archive, IngestService, Outcome
from postfix_archiver.archive.ingest import Staged
from postfix_archiver.catalog import open_catalog
from postfix_archiver.config import Config
from postfix_archiver.envelope import Envelope
from postfix_archiver.errors import CatalogError, StoreError
from postfix_archiver.rules import Policy, Verdict
from postfix_archiver.store import open_store


class RecordingStore:
    """The real file store, recording each ``put_many`` and able to fail them."""

    def __init__(self, url: str) -> None:
        self.inner = open_store(url)
        self.url = url
        self.calls: list[list[str]] = []
        self.fail = False

    def put_many(self, items: Sequence[tuple[str, bytes]], retain_until: object = None) -> None:
        self.calls.append([key for key, _ in items])
        if self.fail:
            raise StoreError("cannot write blob pack: disk full")
        self.inner.put_many(items)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def staged(n: int, **kwargs: object) -> Staged:
    arrival = make_arrival(n, **kwargs)  # type: ignore[arg-type]
    return Staged(arrival, ((f"m/{arrival.sha256}", f"blob {n}".encode()),))


class SkipAll:
    """Rules that skip everything (a policy is duck-typed: ``decide``)."""

    def decide(self, parsed: object, envelope: Envelope) -> Verdict:
        return Verdict(())


class Broken:
    def decide(self, parsed: object, envelope: Envelope) -> Verdict:
        raise OSError("disk full")


def skipped(service: IngestService, policy: object = None) -> Future[Outcome]:
    return service.submit(
        b"Subject: skip me\n\nbody\n",
        Envelope("a@example.com", ("b@example.com",)),
        policy=policy or SkipAll(),  # type: ignore[arg-type]
    )


def seq(service: IngestService) -> Callable[[int], Future[Outcome]]:
    return lambda n: service.submit_staged(staged(n))


def archived_as(future: Future[Outcome]) -> int:
    outcome = future.result(WAIT)
    assert outcome.result is not None
    return outcome.result.id


@pytest.fixture
def catalog(config: Config) -> GatedCatalog:
    return GatedCatalog(open_catalog(config.archive.catalog_url))


@pytest.fixture
def store(config: Config) -> RecordingStore:
    return RecordingStore(config.archive.store_url)


@pytest.fixture
def archive(config: Config, catalog: GatedCatalog, store: RecordingStore) -> Iterator[Archive]:
    with Archive(config, catalog=catalog, store=store) as a:  # type: ignore[arg-type]
        yield a
        catalog.gate.set()


def test_what_waits_is_committed_as_one_batch(
    archive: Archive, catalog: GatedCatalog, store: RecordingStore
) -> None:
    service = IngestService(archive)
    try:
        first = service.submit_staged(staged(0))
        assert catalog.entered.wait(WAIT)
        # these queue up behind the held first batch
        rest = [service.submit_staged(staged(n)) for n in range(1, 21)]
        catalog.gate.set()
        results = [f.result(WAIT) for f in [first, *rest]]
    finally:
        service.close()
    assert all(o.result is not None and o.result.new_message for o in results)
    assert [o.result.sha256 for o in results if o.result] == [
        make_arrival(n).sha256 for n in range(21)
    ]
    assert len(catalog.batches) == 2
    assert len(catalog.batches[1]) == 20
    # the blobs of each batch were stored in one call, before its rows
    assert [len(keys) for keys in store.calls] == [1, 20]
    for n in range(21):
        key = f"m/{make_arrival(n).sha256}"
        assert archive.store.get(key) == f"blob {n}".encode()


def test_a_failed_store_fails_only_the_arrivals_that_needed_it(
    archive: Archive, catalog: GatedCatalog, store: RecordingStore
) -> None:
    catalog.gate.set()
    service = IngestService(archive)
    try:
        archived_as(service.submit_staged(staged(0)))
        store.fail = True
        # already archived bytes: a new envelope only, no blob to write
        known = Staged(staged(0).arrival, ())
        with pytest.raises(StoreError, match="disk full"):
            service.submit_staged(staged(1)).result(WAIT)
        added = service.submit_staged(known).result(WAIT).result
        skip = skipped(service).result(WAIT)
    finally:
        service.close()
    assert added is not None
    assert added.new_message is False
    assert skip.result is None
    assert skip.status == "Skipped; rule=default"
    # no row without its blob: only the first message is in the catalog
    assert archive.stats().messages == 1


def test_nothing_to_archive_resolves_without_a_row(archive: Archive, catalog: GatedCatalog) -> None:
    catalog.gate.set()
    service = IngestService(archive)
    try:
        skip = skipped(service)
        kept = service.submit_staged(staged(1))
        assert skip.result(WAIT).archive_id is None
        ident = archived_as(kept)
    finally:
        service.close()
    assert catalog.get(ident) is not None


def test_a_failing_prepare_or_arrival_fails_alone(archive: Archive, catalog: GatedCatalog) -> None:
    service = IngestService(archive)
    try:
        first = service.submit_staged(staged(0))
        assert catalog.entered.wait(WAIT)
        futures: list[Future[Outcome]] = [
            service.submit_staged(staged(1)),
            skipped(service, Broken()),
            service.submit_staged(staged(3, poison=True)),
            service.submit_staged(staged(4)),
        ]
        catalog.gate.set()
        archived_as(first)
        archived_as(futures[0])
        with pytest.raises(OSError, match="disk full"):
            futures[1].result(WAIT)
        with pytest.raises(CatalogError):
            futures[2].result(WAIT)
        archived_as(futures[3])
    finally:
        service.close()
    # the chain has no gap: events 1..3 for the three good arrivals
    assert [link.seq for link in catalog.chain()] == [1, 2, 3]


def test_close_finishes_what_is_waiting(archive: Archive, catalog: GatedCatalog) -> None:
    service = IngestService(archive)
    first = service.submit_staged(staged(0))
    assert catalog.entered.wait(WAIT)
    later = service.submit_staged(staged(1))
    closing = threading.Thread(target=service.close)
    closing.start()
    catalog.gate.set()
    closing.join(WAIT)
    assert not closing.is_alive()
    assert first.result(0).result is not None
    assert later.result(0).result is not None
    with pytest.raises(RuntimeError, match="closed"):
        service.submit_staged(staged(2))


def test_a_cancelled_arrival_is_dropped(archive: Archive, catalog: GatedCatalog) -> None:
    service = IngestService(archive)
    try:
        first = service.submit_staged(staged(0))
        assert catalog.entered.wait(WAIT)
        dropped = service.submit_staged(staged(1))
        assert dropped.cancel()  # the caller stopped waiting before the committer got to it
        catalog.gate.set()
        archived_as(first)
        archived_as(service.submit_staged(staged(2)))
    finally:
        service.close()
    assert catalog.find_sha(make_arrival(1).sha256) is None


def test_the_pipe_archives_on_its_own_thread(archive: Archive, catalog: GatedCatalog) -> None:
    """``ingest`` (the pipe filter) runs the same steps without starting the committer."""
    catalog.gate.set()
    service = IngestService(archive)
    before = {t.name for t in threading.enumerate()}
    outcome = service.ingest(
        b"Subject: piped\n\nbody\n", Envelope("a@example.com", ("b@example.com",))
    )
    assert outcome.result is not None
    assert outcome.status == "Archived"
    assert "archive-committer" not in {t.name for t in threading.enumerate()} - before
    service.close()


def test_rules_decide_and_their_retention_and_tags_are_stored(
    archive: Archive, catalog: GatedCatalog
) -> None:
    from postfix_archiver.config import parse_config
    from postfix_archiver.rules import compile_policy

    catalog.gate.set()
    policy: Policy = compile_policy(
        parse_config(
            """
            [[rules]]
            name = "finance"
            action = "archive"
            retention = "10y"
            tags = ["finance", "sox"]
            recipient = "cfo@example.com"

            [[rules]]
            name = "everyone"
            action = "archive"
            retention = "90d"
            tags = ["all", "finance"]
            recipient = "*@example.com"

            [[rules]]
            name = "nobody"
            recipient = "*"
            action = "skip"
            """,
            "rules.toml",
        )
    )
    service = IngestService(archive)
    try:
        kept = service.ingest(
            b"Subject: q3\n\nnumbers\n",
            Envelope("a@example.org", ("cfo@example.com", "bob@example.com", "x@example.net")),
            policy=policy,
        )
        skip = service.ingest(
            b"Subject: other\n\nnothing\n",
            Envelope("a@example.org", ("x@example.net",)),
            policy=policy,
        )
    finally:
        service.close()
    assert kept.result is not None
    assert (kept.retention, kept.tags) == ("10y", ("finance", "sox", "all"))
    [row] = catalog.envelopes(kept.result.id)
    assert row.envelope.recipients == ("cfo@example.com", "bob@example.com")
    assert (row.retention, row.tags) == ("10y", ("finance", "sox", "all"))
    assert skip.result is None
    assert skip.status == "Skipped; rule=nobody"


class Recording:
    """Rules that skip everything and say when they were asked."""

    def __init__(self) -> None:
        self.asked = threading.Event()

    def decide(self, parsed: object, envelope: Envelope) -> Verdict:
        self.asked.set()
        return Verdict(())


def test_the_next_batch_is_staged_while_the_one_before_commits(
    archive: Archive, catalog: GatedCatalog
) -> None:
    """Parsing, deciding, hashing and compressing the arrivals that came meanwhile overlap
    the commit (and fsyncs) of the batch before; they commit only after it."""
    service = IngestService(archive)
    rules = Recording()
    try:
        first = service.submit_staged(staged(0))
        assert catalog.entered.wait(WAIT)  # the first batch's commit is held
        second = skipped(service, rules)
        assert rules.asked.wait(WAIT), "nothing was staged while a batch committed"
        assert not first.done()
        assert not second.done()
        catalog.gate.set()
        archived_as(first)
        assert second.result(WAIT).status == "Skipped; rule=default"
    finally:
        service.close()


def test_a_staged_arrival_cancelled_before_its_commit_is_dropped(
    archive: Archive, catalog: GatedCatalog
) -> None:
    """Staged ahead is not taken on: the caller may still stop waiting, and then the arrival
    is not archived."""
    service = IngestService(archive)
    rules = Recording()
    try:
        first = service.submit_staged(staged(0))
        assert catalog.entered.wait(WAIT)
        dropped = service.submit(
            b"Subject: staged\n\nbody\n", Envelope("a@example.com", ("b@example.com",))
        )
        later = skipped(service, rules)
        assert rules.asked.wait(WAIT)  # staged in order: the one before is staged too
        assert dropped.cancel()
        catalog.gate.set()
        archived_as(first)
        later.result(WAIT)
    finally:
        service.close()
    assert archive.stats().messages == 1
