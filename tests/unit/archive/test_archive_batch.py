"""The proxy's batcher: stages on one thread, then stores the blobs of what waits in one go
and commits their rows as one transaction."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future

import pytest
from tests.catalog_helpers import WAIT, GatedCatalog, make_arrival

from postfix_archiver.archive import Archive
from postfix_archiver.archive.batch import Batcher
from postfix_archiver.archive.service import Staged
from postfix_archiver.catalog import AddResult
from postfix_archiver.config import Config
from postfix_archiver.errors import CatalogError, StoreError
from postfix_archiver.store import open_store


class RecordingStore:
    """The real file store, recording each ``put_many`` and able to fail them."""

    def __init__(self, url: str) -> None:
        self.inner = open_store(url)
        self.url = url
        self.calls: list[list[str]] = []
        self.fail = False

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        self.calls.append([key for key, _ in items])
        if self.fail:
            raise StoreError("cannot write blob pack: disk full")
        self.inner.put_many(items)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def staged(n: int, **kwargs: object) -> Staged:
    arrival = make_arrival(n, **kwargs)  # type: ignore[arg-type]
    return Staged(arrival, ((f"m/{arrival.sha256}", f"blob {n}".encode()),))


def prepared(n: int) -> Callable[[], tuple[int, Staged | None]]:
    return lambda: (n, staged(n))


@pytest.fixture
def catalog(config: Config) -> GatedCatalog:
    return GatedCatalog(config.archive.catalog_url.removeprefix("sqlite://"))


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
    batcher: Batcher[int] = Batcher(archive)
    try:
        first = batcher.submit(lambda: (0, staged(0)))
        assert catalog.entered.wait(WAIT)
        # these queue up behind the held first batch
        rest = [batcher.submit(prepared(n)) for n in range(1, 21)]
        catalog.gate.set()
        results = [f.result(WAIT) for f in [first, *rest]]
    finally:
        batcher.close()
    assert [value for value, _ in results] == list(range(21))
    assert all(added is not None and added.new_message for _, added in results)
    assert len(catalog.batches) == 2
    assert len(catalog.batches[1]) == 20
    # the blobs of each batch were stored in one call, before its rows
    assert [len(keys) for keys in store.calls] == [1, 20]
    for value, _ in results:
        key = f"m/{make_arrival(value).sha256}"
        assert archive.store.get(key) == f"blob {value}".encode()


def test_a_failed_store_fails_only_the_arrivals_that_needed_it(
    archive: Archive, catalog: GatedCatalog, store: RecordingStore
) -> None:
    catalog.gate.set()
    batcher: Batcher[str] = Batcher(archive)
    try:
        assert batcher.submit(lambda: ("before", staged(0))).result(WAIT)[1] is not None
        store.fail = True
        # already archived bytes: a new envelope only, no blob to write
        known = Staged(staged(0).arrival, ())
        with pytest.raises(StoreError, match="disk full"):
            batcher.submit(lambda: ("new", staged(1))).result(WAIT)
        value, added = batcher.submit(lambda: ("known", known)).result(WAIT)
        skipped = batcher.submit(lambda: ("skipped", None)).result(WAIT)
    finally:
        batcher.close()
    assert value == "known"
    assert added is not None
    assert added.new_message is False
    assert skipped == ("skipped", None)
    # no row without its blob: only the first message is in the catalog
    assert archive.stats().messages == 1


def test_nothing_to_archive_resolves_without_a_row(archive: Archive, catalog: GatedCatalog) -> None:
    catalog.gate.set()
    batcher: Batcher[str] = Batcher(archive)
    try:
        skipped = batcher.submit(lambda: ("skipped", None))
        kept = batcher.submit(lambda: ("kept", staged(1)))
        assert skipped.result(WAIT) == ("skipped", None)
        value, added = kept.result(WAIT)
    finally:
        batcher.close()
    assert value == "kept"
    assert added is not None
    assert catalog.get(added.id) is not None


def test_a_failing_prepare_or_arrival_fails_alone(archive: Archive, catalog: GatedCatalog) -> None:
    batcher: Batcher[int] = Batcher(archive)

    def broken() -> tuple[int, Staged | None]:
        raise OSError("disk full")

    try:
        first = batcher.submit(lambda: (0, staged(0)))
        assert catalog.entered.wait(WAIT)
        futures: list[Future[tuple[int, AddResult | None]]] = [
            batcher.submit(lambda: (1, staged(1))),
            batcher.submit(broken),
            batcher.submit(lambda: (3, staged(3, poison=True))),
            batcher.submit(lambda: (4, staged(4))),
        ]
        catalog.gate.set()
        assert first.result(WAIT)[1] is not None
        assert futures[0].result(WAIT)[1] is not None
        with pytest.raises(OSError, match="disk full"):
            futures[1].result(WAIT)
        with pytest.raises(CatalogError):
            futures[2].result(WAIT)
        assert futures[3].result(WAIT)[1] is not None
    finally:
        batcher.close()
    # the chain has no gap: events 1..3 for the three good arrivals
    assert [link.seq for link in catalog.chain()] == [1, 2, 3]


def test_close_finishes_what_is_waiting(archive: Archive, catalog: GatedCatalog) -> None:
    batcher: Batcher[int] = Batcher(archive)
    first = batcher.submit(lambda: (0, staged(0)))
    assert catalog.entered.wait(WAIT)
    later = batcher.submit(lambda: (1, staged(1)))
    closing = threading.Thread(target=batcher.close)
    closing.start()
    catalog.gate.set()
    closing.join(WAIT)
    assert not closing.is_alive()
    assert first.result(0)[1] is not None
    assert later.result(0)[1] is not None
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(lambda: (2, None))
