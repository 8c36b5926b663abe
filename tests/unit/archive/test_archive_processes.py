"""ingest_many with worker processes: the same archive as with threads, in input order."""

from __future__ import annotations

from postfix_archiver.archive import Archive, verify
from postfix_archiver.envelope import Envelope


def _corpus(cpython_messages: list[tuple[str, bytes]]) -> list[tuple[bytes, Envelope]]:
    items = [(raw, Envelope("a@example.com", ("b@example.com",))) for _, raw in cpython_messages]
    # a duplicate and a retry among them: dedup must hold across processes too
    items.append((items[0][0], Envelope("c@example.com", ("d@example.com",))))
    items.append(items[1])
    return items


def test_processes_give_the_same_results_in_order(
    archive: Archive, cpython_messages: list[tuple[str, bytes]]
) -> None:
    items = _corpus(cpython_messages)
    results = list(archive.ingest_many(items, processes=2, window=8, max_bytes=20_000))
    assert [r.sha256 for r in results] == [archive.get(r.id).sha256 for r in results]
    distinct = {raw for raw, _ in items}
    assert sum(r.new_message for r in results) == len(distinct)
    assert results[-2].new_message is False
    assert results[-2].new_envelope is True
    assert results[-1].new_message is False
    assert results[-1].new_envelope is False
    for (raw, _), r in zip(items, results, strict=True):
        assert archive.raw(r.id) == raw
    report = verify(archive)
    assert report.ok, report.problems
    assert report.events == len(items) - 1
