"""The SQLite backends' one migration runner (``sqlite_db.migrate``), on real files."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from postfix_archiver.accounts.sqlite import SqliteAccounts
from postfix_archiver.catalog.sqlite import SqliteCatalog
from postfix_archiver.sqlite_db import SchemaTooNew, connect_durable, migrate

STEPS = [
    # a string and a trigger body hold semicolons: each statement must stay whole
    """
    CREATE TABLE t (v TEXT NOT NULL);
    INSERT INTO t VALUES ('one; two');
    CREATE TRIGGER t_no_delete BEFORE DELETE ON t
    BEGIN SELECT RAISE(ABORT, 'append-only; no DELETE'); END;
    """,
    "ALTER TABLE t ADD COLUMN w TEXT",
]


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_statements_with_semicolons_inside_stay_whole(tmp_path: Path) -> None:
    conn = connect_durable(tmp_path / "db.sqlite", timeout=5)
    migrate(conn, STEPS)
    assert user_version(conn) == 2
    assert conn.execute("SELECT v, w FROM t").fetchall() == [("one; two", None)]
    with pytest.raises(sqlite3.IntegrityError, match="append-only; no DELETE"):
        conn.execute("DELETE FROM t")
    migrate(conn, STEPS)  # nothing left to do
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    conn.close()


def test_a_failing_step_is_rolled_back_and_the_ones_before_stay(tmp_path: Path) -> None:
    conn = connect_durable(tmp_path / "db.sqlite", timeout=5)
    broken = [*STEPS, "CREATE TABLE u (x); INSERT INTO missing VALUES (1)"]
    with pytest.raises(sqlite3.OperationalError, match="no such table: missing"):
        migrate(conn, broken)
    assert user_version(conn) == 2
    assert not conn.in_transaction
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"t"}
    conn.close()


def test_a_newer_file_is_refused_untouched(tmp_path: Path) -> None:
    conn = connect_durable(tmp_path / "db.sqlite", timeout=5)
    conn.execute("PRAGMA user_version = 3")
    with pytest.raises(SchemaTooNew) as info:
        migrate(conn, STEPS)
    assert (info.value.version, info.value.known) == (3, 2)
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    conn.close()


def _open_at_once(kind: str, path: str, barrier: Any) -> None:
    """In a process of its own: wait for the others, then open (create) the same file."""
    barrier.wait(30)
    if kind == "catalog":
        SqliteCatalog(path).close()
    else:
        SqliteAccounts(Path(path)).close()


@pytest.mark.parametrize("kind", ["catalog", "accounts"])
def test_processes_creating_the_same_file_at_once_all_succeed(tmp_path: Path, kind: str) -> None:
    """Several processes (``serve``, a CLI command, the web app) starting on a fresh archive
    at the same moment: each sees the schema version before the others' writes, so without
    reading it again under the write lock the second applied migration 1 again ("table ...
    already exists"). Now it waits for the lock and finds the step done."""
    context = multiprocessing.get_context("spawn")  # no fork of the test process's threads
    for round_ in range(3):  # the race is one of timing: a few fresh files
        path = tmp_path / f"{kind}{round_}.sqlite"
        barrier = context.Barrier(4)
        workers = [
            context.Process(target=_open_at_once, args=(kind, str(path), barrier)) for _ in range(4)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert [w.exitcode for w in workers] == [0, 0, 0, 0], path
