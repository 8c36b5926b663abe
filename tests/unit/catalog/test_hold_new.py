"""Matching a commit's new arrivals against the active holds (``hold_new_statement``): it
runs in every commit while a hold is active, so it must read the new messages' rows only,
never scan the archive's addresses, attachments or full-text index; and it must find what
a search over the whole archive finds among those messages.

SQLite's own: the plan is SQLite's ``EXPLAIN QUERY PLAN`` on a real catalog file."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from postfix_archiver.archive import events
from postfix_archiver.catalog import NewArrival
from postfix_archiver.catalog.compile import Compiler
from postfix_archiver.catalog.sqlite import SqliteCatalog, SqliteDialect, hold_new_statement
from postfix_archiver.envelope import Envelope
from postfix_archiver.message import Address, Attachment
from postfix_archiver.search import parse_query

QUERIES = [
    "from:ceo@example.com",
    "from:a3@example.com",
    "to:@legal.example.com",
    "to:b@example.com",
    "from:*@example.com",
    "cc:auditor",
    'subject:"report 3"',
    "quarterly",
    "numbers OR contract",
    "has:attachment filename:*.xlsx",
    "-from:a2@example.com subject:report",
    "after:2024-01-01 from:a4@example.com",
    '"project falcon"',
]


def arrival(n: int) -> NewArrival:
    raw = f"From: a{n}@example.com\nSubject: report {n}\n\nquarterly numbers {n}\n".encode()
    attachments = (
        [Attachment(0, f"sheet{n}.xlsx", "application/vnd.ms-excel", 3, "0" * 64)] if n % 2 else []
    )
    return NewArrival(
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        stored_size=len(raw),
        date=datetime(2025, 1, 1, tzinfo=UTC),
        subject=f"report {n}",
        message_id=f"<{n}@example.com>",
        from_=[Address("", f"a{n}@example.com")],
        to=[Address("", "b@example.com" if n % 3 else "x@legal.example.com")],
        cc=[Address("Auditor", "auditor@example.com")] if n % 4 == 0 else [],
        attachments=attachments,
        defects=[],
        body_text=f"quarterly numbers {n}",
        parts=[],
        envelope=Envelope(f"a{n}@example.com", ("b@example.com",), queue_id=f"Q{n}"),
    )


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    path = tmp_path_factory.mktemp("hold-new") / "catalog.sqlite"
    catalog = SqliteCatalog(str(path))
    catalog.add_batch([arrival(n) for n in range(40)], events.seal)
    catalog.close()
    conn = sqlite3.connect(path)
    yield conn
    conn.close()


NEW = [35, 36, 37, 38, 39, 40]


@pytest.mark.parametrize("query", QUERIES)
def test_matching_new_arrivals_reads_their_rows_only(db: sqlite3.Connection, query: str) -> None:
    sql, params = hold_new_statement(1, parse_query(query), NEW)
    plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params)]
    # a full-text lookup shows as SCAN of the virtual table: "=" in its index string is the
    # rowid constraint (this message's entry only), "M" the MATCH
    scans = [step for step in plan if step.startswith("SCAN") and ":=M" not in step]
    assert scans == [], plan


@pytest.mark.parametrize("query", QUERIES)
def test_it_finds_what_a_search_of_the_whole_archive_finds(
    db: sqlite3.Connection, query: str
) -> None:
    node = parse_query(query)
    marks = ",".join("?" * len(NEW))
    whole = Compiler(SqliteDialect()).compile(node)
    expected = db.execute(
        f"SELECT m.id FROM messages m WHERE m.id IN ({marks}) AND ({whole.where}) ORDER BY 1",
        [*NEW, *whole.params],
    ).fetchall()
    sql, params = hold_new_statement(7, node, NEW)
    select = sql.split(" SELECT ?, m.id ", 1)[1]
    found = db.execute(f"SELECT m.id {select} ORDER BY 1", params[1:]).fetchall()
    assert found == expected
