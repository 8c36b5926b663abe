"""``migrate`` between real backends: SQLite + files -> PostgreSQL (the session's private
cluster) + S3 (moto_server, a bucket with Object Lock) -> SQLite + files again, and a copy
killed with SIGKILL mid-way that a second run finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.migrate_helpers import build_source, cli, fingerprint, raw_blobs, write_config
from tests.pg_cluster import postgresql_url
from tests.s3_helpers import S3
from tests.unit.capture.capture_helpers import CLI

from postfix_archiver.catalog import open_catalog
from postfix_archiver.config import load_config_file

pytestmark = [pytest.mark.integration]


def keys_of(base: Path) -> str:
    key = base / "keys" / "archive.key"
    return f'encryption = "aes-256-gcm"\nkey_file = "{key}"\n'


def test_sqlite_to_postgresql_and_s3_and_back_keeps_everything(tmp_path: Path, moto_s3: S3) -> None:
    source = build_source(tmp_path, encrypted=True)
    bucket = moto_s3.server.bucket(object_lock=True)
    store = f"s3://{bucket}/archive?endpoint={moto_s3.server.endpoint}"
    middle = write_config(
        tmp_path / "middle.toml",
        tmp_path / "middle",
        f'catalog = "{postgresql_url()}"\nstore = "{store}"\n{keys_of(tmp_path)}',
    )
    back = write_config(tmp_path / "back.toml", tmp_path / "back", keys_of(tmp_path))
    there = cli(source, "migrate", "--to", str(middle))
    assert there.returncode == 0, there.stderr
    assert "the target passes verify" in there.stdout
    again = cli(middle, "migrate", "--to", str(back))
    assert again.returncode == 0, again.stderr
    configs = [load_config_file(p) for p in (source, middle, back)]
    first = fingerprint(configs[0])
    assert fingerprint(configs[1]) == first
    assert fingerprint(configs[2]) == first
    blobs = raw_blobs(configs[0])
    assert raw_blobs(configs[1]) == blobs  # the same bytes under the same (keyed) names
    assert raw_blobs(configs[2]) == blobs
    for path in (middle, back):
        checked = cli(path, "verify", "--index")
        assert checked.returncode == 0, checked.stdout + checked.stderr
    # mail kept ten years at the source is locked as long in the bucket (in its pack)
    client = moto_s3.server.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix="archive/")["Contents"]
    dates = [
        client.head_object(Bucket=bucket, Key=o["Key"]).get("ObjectLockRetainUntilDate")
        for o in listed
    ]
    kept = [r.retain_until for r, *_ in first["messages"].values() if r.retain_until]
    assert kept  # the imported messages' ten years
    assert max(d for d in dates if d is not None) == max(kept)


def _count(url: str) -> int:
    with psycopg.connect(url, connect_timeout=2) as conn:
        row = conn.execute("SELECT count(*) FROM messages").fetchone()
        return int(row[0]) if row else 0


BATCH = 10
PAUSE = 0x7061757365  # an advisory lock of the test's own, not the catalog's write lock

# Holds every write transaction at the target after the first that copies messages: the
# kill then lands mid-way for certain, with one batch copied, however fast the machine (a
# race against a poll needed hundreds of messages to be sure, and most of the test's time).
# A transaction's first INSERT into messages that finds rows there finds committed ones
# (an earlier batch); the transaction-local setting tells the first INSERT from the rest
# of a pipelined batch.
PAUSE_SQL = f"""
CREATE FUNCTION test_pause_second_batch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('test.batch_started', true), '') = '' THEN
        PERFORM set_config('test.batch_started', 'yes', true);
        IF EXISTS (SELECT 1 FROM messages) THEN
            PERFORM pg_advisory_xact_lock({PAUSE});
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER test_pause BEFORE INSERT ON messages
    FOR EACH STATEMENT EXECUTE FUNCTION test_pause_second_batch();
"""


def test_a_copy_killed_mid_way_is_finished_by_the_next_run(tmp_path: Path, moto_s3: S3) -> None:
    source = build_source(tmp_path)
    url = postgresql_url()
    open_catalog(url).close()  # the schema, as the copy's first step makes it: still empty
    target = write_config(
        tmp_path / "target.toml",
        tmp_path / "target",
        f'catalog = "{url}"\nstore = "{moto_s3.url()}"\n',
    )
    total = len(fingerprint(load_config_file(source))["messages"])
    assert total > 2 * BATCH
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
    with psycopg.connect(url, autocommit=True) as pause:
        pause.execute(PAUSE_SQL)
        pause.execute("SELECT pg_advisory_lock(%s)", (PAUSE,))
        proc = subprocess.Popen(
            [str(CLI), "migrate", "--config", str(source), "--to", str(target),
             "--batch", str(BATCH)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not _waiting_on(pause, PAUSE) and proc.poll() is None:
                assert time.monotonic() < deadline, "the copy never reached its second batch"
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:  # a failed wait: no copy left running
                proc.kill()
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL  # killed, not finished
        # the killed copy's session, held mid-batch, goes on and finds its client gone: the
        # batch rolls back (dropping the trigger waits for that: the session holds the table)
        pause.execute("SELECT pg_advisory_unlock(%s)", (PAUSE,))
        pause.execute("DROP TRIGGER test_pause ON messages")
        pause.execute("DROP FUNCTION test_pause_second_batch()")
    copied = _count(url)
    assert copied == BATCH  # the first batch, committed; the second, not
    done = cli(source, "migrate", "--to", str(target))
    assert done.returncode == 0, done.stderr
    assert "resuming an earlier copy" in done.stderr
    assert fingerprint(load_config_file(target)) == fingerprint(load_config_file(source))
    assert raw_blobs(load_config_file(target)) == raw_blobs(load_config_file(source))


def _waiting_on(conn: psycopg.Connection[Any], lock: int) -> bool:
    """Whether another session waits for advisory lock ``lock`` (a bigint lock is shown
    as its two halves)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND classid::bigint = %s AND objid::bigint = %s",
        (lock >> 32, lock & 0xFFFFFFFF),
    ).fetchone()
    return bool(row and row[0])


def test_a_postgresql_target_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    source = build_source(tmp_path)
    url = postgresql_url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (99)")
    target = write_config(tmp_path / "target.toml", tmp_path / "target", f'catalog = "{url}"\n')
    done = cli(source, "migrate", "--to", str(target))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "newer than this postfix-archiver knows" in done.stderr
