"""The proxy's batcher: prepares on one thread, commits what waits as one transaction."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pytest
from test_catalog_writer import WAIT, GatedCatalog, make_arrival

from postfix_archiver.catalog import AddResult, NewArrival
from postfix_archiver.catalog.batch import Batcher
from postfix_archiver.errors import CatalogError


def prepared(n: int) -> Callable[[], tuple[int, NewArrival | None]]:
    return lambda: (n, make_arrival(n))


@pytest.fixture
def catalog(tmp_path: Path) -> GatedCatalog:
    return GatedCatalog(str(tmp_path / "catalog.sqlite"))


def test_what_waits_is_committed_as_one_batch(catalog: GatedCatalog) -> None:
    batcher: Batcher[int] = Batcher(catalog)
    try:
        first = batcher.submit(lambda: (0, make_arrival(0)))
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


def test_nothing_to_archive_resolves_without_a_row(catalog: GatedCatalog) -> None:
    catalog.gate.set()
    batcher: Batcher[str] = Batcher(catalog)
    try:
        skipped = batcher.submit(lambda: ("skipped", None))
        kept = batcher.submit(lambda: ("kept", make_arrival(1)))
        assert skipped.result(WAIT) == ("skipped", None)
        value, added = kept.result(WAIT)
    finally:
        batcher.close()
    assert value == "kept"
    assert added is not None
    assert catalog.get(added.id) is not None


def test_a_failing_prepare_or_arrival_fails_alone(catalog: GatedCatalog) -> None:
    batcher: Batcher[int] = Batcher(catalog)

    def broken() -> tuple[int, NewArrival | None]:
        raise OSError("disk full")

    try:
        first = batcher.submit(lambda: (0, make_arrival(0)))
        assert catalog.entered.wait(WAIT)
        futures: list[Future[tuple[int, AddResult | None]]] = [
            batcher.submit(lambda: (1, make_arrival(1))),
            batcher.submit(broken),
            batcher.submit(lambda: (3, make_arrival(3, poison=True))),
            batcher.submit(lambda: (4, make_arrival(4))),
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


def test_close_finishes_what_is_waiting(catalog: GatedCatalog) -> None:
    batcher: Batcher[int] = Batcher(catalog)
    first = batcher.submit(lambda: (0, make_arrival(0)))
    assert catalog.entered.wait(WAIT)
    later = batcher.submit(lambda: (1, make_arrival(1)))
    closing = threading.Thread(target=batcher.close)
    closing.start()
    catalog.gate.set()
    closing.join(WAIT)
    assert not closing.is_alive()
    assert first.result(0)[1] is not None
    assert later.result(0)[1] is not None
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(lambda: (2, None))
