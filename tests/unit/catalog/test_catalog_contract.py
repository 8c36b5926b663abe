"""The ``Catalog`` contract through its own interface, for every backend in ``BACKENDS``:
what ``add_batch`` records and what each read gives back (the search itself is checked
against an oracle in ``test_search_oracle``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from tests.catalog_helpers import make_arrival

from postfix_archiver.archive.events import seal, seal_tombstone
from postfix_archiver.catalog import Catalog, IndexEntry, Removal, StoredPart, open_catalog
from postfix_archiver.errors import CatalogError
from postfix_archiver.message import Attachment


@pytest.fixture
def cat(catalog_url: str) -> Iterator[Catalog]:
    c = open_catalog(catalog_url)
    yield c
    c.close()


def test_an_arrival_is_recorded_with_its_envelope_rules_and_event(cat: Catalog) -> None:
    part = "ab" * 32
    arrival = replace(
        make_arrival(1),
        attachments=[Attachment(2, "report.pdf", "application/pdf", 1234, part)],
        parts=[StoredPart(part, 900)],
        retention="10y",
        tags=("legal", "hr"),
    )
    [result] = cat.add_batch([arrival], seal)
    assert (result.new_message, result.new_envelope, result.event_seq) == (True, True, 1)
    assert cat.find_sha(arrival.sha256) == result.id
    row = cat.get(result.id)
    assert row is not None
    assert (row.sha256, row.size, row.subject, row.message_id) == (
        arrival.sha256,
        arrival.size,
        "arrival 1",
        "1@example.com",
    )
    assert row.date == datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)
    assert row.attachment_count == 1
    [env] = cat.envelopes(result.id)
    assert env.envelope.key == arrival.envelope.key
    assert env.envelope.recipients == ("b@example.com",)
    assert (env.retention, env.tags) == ("10y", ("legal", "hr"))
    [att] = cat.attachments(result.id)
    assert (att.index, att.filename, att.content_type, att.size, att.sha256) == (
        2,
        "report.pdf",
        "application/pdf",
        1234,
        part,
    )
    [link] = cat.chain()
    assert (link.seq, link.message, link.message_sha256) == (1, result.id, arrival.sha256)
    assert link.hash == seal(None, arrival).hash
    assert cat.orphans() == ([], [])


def test_the_same_arrival_again_is_one_envelope_and_other_envelopes_add_one(
    cat: Catalog,
) -> None:
    first = make_arrival(1)
    again = make_arrival(1)
    forwarded = make_arrival(1, queue_id="OTHER")
    r1, r2 = cat.add_batch([first], seal) + cat.add_batch([again], seal)
    [r3] = cat.add_batch([forwarded], seal)
    assert (r2.id, r2.new_message, r2.new_envelope, r2.event_seq) == (r1.id, False, False, None)
    assert (r3.id, r3.new_message, r3.new_envelope, r3.event_seq) == (r1.id, False, True, 2)
    assert [e.envelope.queue_id for e in cat.envelopes(r1.id)] == ["Q00001", "OTHER"]
    assert [link.seq for link in cat.chain()] == [1, 2]
    stats = cat.stats()
    assert (stats.messages, stats.envelopes) == (1, 2)


def test_counts_and_listings(cat: Catalog) -> None:
    results = cat.add_batch([make_arrival(n) for n in range(1, 6)], seal)
    assert [r.event_seq for r in results] == [1, 2, 3, 4, 5]
    assert [m.id for m in cat.messages()] == sorted(r.id for r in results)
    stats = cat.stats()
    assert (stats.messages, stats.envelopes, stats.parts) == (5, 5, 0)
    assert stats.raw_bytes == sum(make_arrival(n).size for n in range(1, 6))
    assert stats.first_date == datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)
    assert stats.last_date == datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)
    assert cat.per_day() == [("2024-05-01", 5, stats.raw_bytes)]
    assert cat.per_day(datetime(2024, 5, 2, tzinfo=UTC)) == []
    arrived = {e.envelope.received.astimezone(UTC).date().isoformat()
               for r in results for e in cat.envelopes(r.id)}  # fmt: skip
    assert cat.per_day(by="arrival") == [(d, 5, stats.raw_bytes) for d in sorted(arrived)]
    assert cat.is_visible(results[0].id, ["B@Example.com"])
    assert not cat.is_visible(results[0].id, ["nobody@example.com"])
    assert cat.get(results[-1].id + 1) is None
    assert cat.envelopes(results[-1].id + 1) == []


def test_everything_is_still_there_after_reopening(cat: Catalog, catalog_url: str) -> None:
    [result] = cat.add_batch([replace(make_arrival(1), retention="1y")], seal)
    cat.close()
    for readonly in (False, True):
        again = open_catalog(catalog_url, readonly=readonly)
        try:
            assert again.find_sha(make_arrival(1).sha256) == result.id
            assert [e.retention for e in again.envelopes(result.id)] == ["1y"]
            assert [link.seq for link in again.chain()] == [1]
        finally:
            again.close()


def test_a_read_only_catalog_refuses_writes(cat: Catalog, catalog_url: str) -> None:
    cat.add_batch([make_arrival(1)], seal)
    readonly = open_catalog(catalog_url, readonly=True)
    try:
        with pytest.raises(CatalogError):
            readonly.add_batch([make_arrival(2)], seal)
    finally:
        readonly.close()
    assert cat.find_sha(make_arrival(2).sha256) is None


@pytest.mark.parametrize("far", [2**63, 2**70, -(2**63) - 1, -(2**70)])
def test_an_id_outside_the_integer_range_is_simply_not_there(cat: Catalog, far: int) -> None:
    """Ids come from URLs, the API and the command line; one past SQLite's 64-bit integers
    raised OverflowError (a traceback) from the catalog instead of "no such message"."""
    [result] = cat.add_batch([make_arrival(1)], seal)
    both = [result.id, far]
    assert cat.get(far) is None
    assert cat.envelopes(far) == []
    assert cat.attachments(far) == []
    assert cat.is_visible(far, ["bob@example.com"]) is False
    assert cat.holds_of(far) == []
    assert cat.held(both) == set()
    assert cat.active_holds_of(both) == {}
    assert list(cat.index_signatures(both)) == [result.id]
    assert cat.set_retain_until([(far, None)]) == 0
    assert list(cat.events(far)) == ([] if far > 0 else list(cat.events()))
    removal = Removal(far, "purge", "test", "tester", datetime.now(UTC), IndexEntry("", "", "", ""))
    removed = cat.remove([removal], seal_tombstone)
    assert (removed.removed, removed.gone) == ({}, [far])
    assert cat.get(result.id) is not None  # the message that is there is untouched
