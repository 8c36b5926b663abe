"""Benchmark: what legal holds add to the ingest commit.

Run: ``.venv/bin/python bench/holds_commit.py [--messages N] [--batch B]``

Each group commit reads the active holds inside its transaction (a hold placed by another
process must apply from the next commit) and, for each active hold, matches the batch's new
messages against its query. Measured on a real SQLite catalog: the time of that read alone,
with no hold, with 1,000 released holds, and with 10 active holds; and the commit of N
arrivals in batches of B with no hold argument, with holds but none active, and with 10
active holds (address, subject and free-text queries). Target: no hold active costs nothing
measurable against the commit itself.

``--prefill P``: instead, into a catalog already holding P messages, commit N arrivals with
no hold active, then with an address hold (``to:@legal.example.com``) and a free-text hold
(``merger``) active: matching a commit's arrivals must cost what the batch costs, not what
the archive holds.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
import timeit
from datetime import UTC, datetime
from pathlib import Path

# runnable from a checkout without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from postfix_archiver.archive import events
from postfix_archiver.archive.holds import ActiveHolds
from postfix_archiver.catalog import NewArrival
from postfix_archiver.catalog.sqlite import SqliteCatalog
from postfix_archiver.envelope import Envelope
from postfix_archiver.message import Address
from postfix_archiver.search import parse_query

ACTIVE_READ = "SELECT id, query FROM holds WHERE released_at IS NULL ORDER BY id"
QUERIES = [
    "from:ceo@example.com",
    "to:@legal.example.com",
    'subject:"merger"',
    "invoice OR contract",
    "from:*@competitor.example",
    "has:attachment filename:*.xlsx",
    "-from:noreply@example.com subject:confidential",
    "cc:auditor@example.com",
    "after:2024-01-01 from:cfo@example.com",
    '"project falcon"',
]


def arrival(n: int) -> NewArrival:
    raw = f"From: a{n}@example.com\nSubject: report {n}\n\nquarterly numbers {n}\n".encode()
    return NewArrival(
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        stored_size=len(raw),
        date=datetime(2025, 1, 1, tzinfo=UTC),
        subject=f"report {n}",
        message_id=f"<{n}@example.com>",
        from_=[Address("", f"a{n}@example.com")],
        to=[Address("", "b@example.com")],
        cc=[],
        attachments=[],
        defects=[],
        body_text=f"quarterly numbers {n}",
        parts=[],
        envelope=Envelope(f"a{n}@example.com", ("b@example.com",), queue_id=f"Q{n}"),
    )


def place(catalog: SqliteCatalog, count: int, *, released: bool) -> None:
    now = datetime.now(UTC)
    for i in range(count):
        query = QUERIES[i % len(QUERIES)]
        name = f"{'old' if released else 'case'}-{i}"
        catalog.add_hold(name, query, parse_query(query), "", "bench", now)
        if released:
            catalog.release_hold(name, "bench", now)


def read_us(catalog: SqliteCatalog) -> float:
    conn = catalog._write_conn()
    number = 5000
    return timeit.timeit(lambda: conn.execute(ACTIVE_READ).fetchall(), number=number) / number * 1e6


def commit_seconds(messages: int, batch: int, holds: ActiveHolds | None, active: int) -> float:
    with tempfile.TemporaryDirectory() as home:
        catalog = SqliteCatalog(f"{home}/catalog.sqlite")
        place(catalog, active, released=False)
        arrivals = [arrival(n) for n in range(messages)]
        start = time.perf_counter()
        for i in range(0, messages, batch):
            catalog.add_batch(arrivals[i : i + batch], events.seal, holds)
        took = time.perf_counter() - start
        catalog.close()
    return took


PREFILL_HOLDS = ["to:@legal.example.com", "merger"]


def prefilled(prefill: int, messages: int, batch: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        catalog = SqliteCatalog(f"{home}/catalog.sqlite")
        start = time.perf_counter()
        for i in range(0, prefill, 500):
            catalog.add_batch([arrival(n) for n in range(i, min(i + 500, prefill))], events.seal)
        print(f"prefilled {prefill} messages in {time.perf_counter() - start:.1f} s")
        holds = ActiveHolds()
        now = datetime.now(UTC)
        n = prefill
        cases = [("no hold active", []), ("address + free-text hold", PREFILL_HOLDS)]
        for label, queries in cases:
            for i, query in enumerate(queries):
                catalog.add_hold(f"case-{i}", query, parse_query(query), "", "bench", now)
            arrivals = [arrival(k) for k in range(n, n + messages)]
            n += messages
            start = time.perf_counter()
            for i in range(0, messages, batch):
                catalog.add_batch(arrivals[i : i + batch], events.seal, holds)
            took = time.perf_counter() - start
            print(f"commit {messages} in batches of {batch} into {prefill}, {label:25s} "
                  f"{took:6.2f} s ({took / messages * 1e6:.0f} us/message)")  # fmt: skip
        catalog.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--prefill", type=int, default=0)
    args = parser.parse_args()
    if args.prefill:
        prefilled(args.prefill, args.messages, args.batch)
        return
    with tempfile.TemporaryDirectory() as home:
        catalog = SqliteCatalog(f"{home}/catalog.sqlite")
        print(f"active-holds read, no hold:            {read_us(catalog):7.1f} us")
        place(catalog, 1000, released=True)
        print(f"active-holds read, 1,000 released:     {read_us(catalog):7.1f} us")
        place(catalog, 10, released=False)
        print(f"active-holds read, 10 active:          {read_us(catalog):7.1f} us")
        catalog.close()
    cases = [("no holds argument", None, 0), ("holds, none active", ActiveHolds(), 0),
             ("10 active holds", ActiveHolds(), 10)]  # fmt: skip
    for label, holds, active in cases:
        took = commit_seconds(args.messages, args.batch, holds, active)
        per = took / args.messages * 1e6
        print(f"commit {args.messages} in batches of {args.batch}, {label:20s} {took:6.2f} s "
              f"({per:.0f} us/message)")  # fmt: skip


if __name__ == "__main__":
    main()
