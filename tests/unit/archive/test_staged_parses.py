"""The parses kept for the indexer (``archive.staged_parses``): bounded, and when full the
oldest stay (the indexer takes the oldest queued first)."""

from __future__ import annotations

from postfix_archiver.archive.ingest_index import Parsed
from postfix_archiver.archive.service import sha256_hex
from postfix_archiver.archive.skeleton import split_message
from postfix_archiver.archive.staged_parses import StagedParses
from postfix_archiver.message import parse_message


def parsed(n: int, body: bytes = b"hello") -> Parsed:
    raw = b"From: a@example.com\r\nSubject: s %d\r\n\r\n%s\r\n" % (n, body)
    return Parsed(
        sha256_hex(raw), raw, parse_message(raw), split_message(raw, 1 << 20, sha256_hex), ""
    )


def test_when_full_the_oldest_are_kept() -> None:
    kept = StagedParses(entries=2)
    first, second, third = parsed(1), parsed(2), parsed(3)
    assert kept.keep(first)
    assert kept.keep(second)
    assert not kept.keep(third)
    assert kept.take(third.sha) is None
    assert kept.take(first.sha) is first
    assert kept.take(first.sha) is None  # given up once
    assert kept.keep(third)  # room again
    assert len(kept) == 2


def test_bytes_bound_and_a_big_message_is_never_kept() -> None:
    kept = StagedParses(entries=100, max_bytes=4000)
    assert not kept.keep(parsed(1, b"x" * 1200))  # over a quarter of the bytes
    small = [parsed(n, b"y" * 400) for n in range(10)]
    results = [kept.keep(p) for p in small]
    assert results[:2] == [True, True]
    assert not all(results)
    taken = [p for p in small if kept.take(p.sha) is not None]
    assert sum(len(p.raw) for p in taken) <= 4000
    assert len(kept) == 0


def test_parses_nobody_took_give_way_when_full() -> None:
    """Another process's indexer may index the message: its parse here is never taken."""
    kept = StagedParses(entries=2, max_age=0.0)
    first, second, third = parsed(1), parsed(2), parsed(3)
    assert kept.keep(first)
    assert kept.keep(second)
    assert kept.keep(third)
    assert kept.take(first.sha) is None
    assert kept.take(third.sha) is third
