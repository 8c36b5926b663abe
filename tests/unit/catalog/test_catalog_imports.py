"""Import runs, where each imported arrival came from, and where a resumable import stopped,
for every backend in ``BACKENDS``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from tests.catalog_helpers import make_arrival

from postfix_archiver.archive.events import seal
from postfix_archiver.catalog import Catalog, open_catalog

WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def cat(catalog_url: str) -> Iterator[Catalog]:
    c = open_catalog(catalog_url)
    yield c
    c.close()


def test_an_import_run_records_each_arrivals_origin(cat: Catalog) -> None:
    results = cat.add_batch([make_arrival(1), make_arrival(2)], seal)
    run = cat.start_import("imaps://a@h:993 (INBOX)", WHEN)
    cat.record_import_origins(
        run, [(r.event_seq or 0, f"INBOX UID {i}") for i, r in enumerate(results)]
    )
    cat.finish_import(run, WHEN.replace(minute=5))
    envelopes = [cat.envelopes(r.id)[0].id for r in results]
    origins = cat.import_origins(envelopes)
    assert [origins[e].origin for e in envelopes] == ["INBOX UID 0", "INBOX UID 1"]
    assert {(o.source, o.started, o.finished) for o in origins.values()} == {
        ("imaps://a@h:993 (INBOX)", WHEN, WHEN.replace(minute=5))
    }


def test_cursors_are_kept_replaced_and_survive_reopening(cat: Catalog, catalog_url: str) -> None:
    assert cat.import_cursor("imaps://a@h:993/INBOX") is None
    cat.set_import_cursors([("imaps://a@h:993/INBOX", "7:10"), ("imaps://a@h:993/보관함", "9:3")])
    cat.set_import_cursors([("imaps://a@h:993/INBOX", "7:42")])
    cat.set_import_cursors([])
    cat.close()
    again = open_catalog(catalog_url, readonly=True)
    try:
        assert again.import_cursor("imaps://a@h:993/INBOX") == "7:42"
        assert again.import_cursor("imaps://a@h:993/보관함") == "9:3"
        assert again.import_cursor("imaps://a@h:993/inbox") is None  # folder names have case
    finally:
        again.close()


@pytest.mark.parametrize(
    "key",
    ["", "x" * 100_000, "\x00nul", "tab\there", "٣٤٥", "\U0001f4e7 mail", "'; DROP TABLE x; --"],
)
def test_any_text_is_a_key(cat: Catalog, key: str) -> None:
    cat.set_import_cursors([(key, key[:50])])
    assert cat.import_cursor(key) == key[:50]
