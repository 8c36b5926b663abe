"""Opening the blob pack while another connection holds a write lock on it (a backup, a
sqlite3 shell): a new connection reads at once and waits for the lock to write, never fails at
once (the pipe filter opens the pack afresh for every message)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from postfix_archiver.store.packed import PackedBlobs


def test_a_new_connection_reads_and_waits_to_write_under_a_held_lock(tmp_path: Path) -> None:
    path = tmp_path / "packed.sqlite"
    first = PackedBlobs(path)
    first.put_many([("m/a", b"one")])
    first.close()

    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(1.0, lambda: holder.execute("COMMIT"))
    started = time.monotonic()
    release.start()
    try:
        pack = PackedBlobs(path)
        assert pack.get("m/a") == b"one"
        pack.put_many([("m/b", b"two")])  # waits for the lock instead of failing at once
        waited = time.monotonic() - started
        assert pack.get("m/b") == b"two"
        pack.close()
    finally:
        release.join()
        holder.close()
    assert waited >= 0.9
