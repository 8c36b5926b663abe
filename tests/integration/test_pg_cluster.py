"""The private PostgreSQL cluster the catalog tests run on (``tests/pg_cluster.py``)."""

from __future__ import annotations

import psycopg
import pytest
from tests.pg_cluster import cluster, postgresql_url

pytestmark = [pytest.mark.integration]


def test_each_database_is_new_and_empty() -> None:
    first, second = postgresql_url(), postgresql_url()
    assert first != second
    with psycopg.connect(first) as conn:
        conn.execute("CREATE TABLE left_behind (x int)")
    with psycopg.connect(second) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert tables == (0,)


def test_the_cluster_is_private_to_the_session() -> None:
    c = cluster()
    assert c.root.exists()
    with psycopg.connect(c.url("postgres")) as conn:
        row = conn.execute("SELECT current_setting('data_directory')").fetchone()
    assert row is not None
    assert str(row[0]).startswith(str(c.root))
