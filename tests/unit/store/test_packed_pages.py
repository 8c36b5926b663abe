"""The pack's page size (SQLite's own file): a new pack has large pages, so rows of a few kB
fill them (4 kB pages left a third of the file empty); a pack made before keeps its pages and
works as before."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from postfix_archiver.store.fs import FileStore
from postfix_archiver.store.packed import PAGE_SIZE


def page_size(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        size: int = conn.execute("PRAGMA page_size").fetchone()[0]
        return size
    finally:
        conn.close()


def blobs(n: int) -> list[tuple[str, bytes]]:
    rng = random.Random(n)
    return [
        (f"m/{rng.getrandbits(256):064x}", rng.randbytes(rng.randint(800, 3000))) for _ in range(n)
    ]


def test_a_new_pack_has_large_pages_and_little_empty_space(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "blobs")
    items = blobs(1500)
    for i in range(0, len(items), 8):  # batches, as ingest writes them
        store.put_many(items[i : i + 8])
    assert [store.get(k) for k, _ in items] == [v for _, v in items]
    store.close()
    pack = tmp_path / "blobs" / "packed.sqlite"
    assert page_size(pack) == PAGE_SIZE == 16384
    conn = sqlite3.connect(pack)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    payload = sum(len(v) for _, v in items)
    assert pack.stat().st_size < 1.2 * payload, pack.stat().st_size / payload


def test_a_pack_with_small_pages_keeps_them_and_works(tmp_path: Path) -> None:
    pack = tmp_path / "blobs" / "packed.sqlite"
    pack.parent.mkdir()
    conn = sqlite3.connect(pack)
    conn.execute("PRAGMA page_size=4096")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL)")
    old = blobs(5)
    with conn:
        conn.executemany("INSERT INTO blobs VALUES (?, ?)", old)
    conn.close()
    store = FileStore(tmp_path / "blobs")
    new = blobs(7)[5:]
    store.put_many(new)
    assert [store.get(k) for k, _ in old + new] == [v for _, v in old + new]
    store.close()
    assert page_size(pack) == 4096
