"""Benchmark: the cost of signed checkpoints on a long chain.

Run: ``.venv/bin/python bench/checkpoint.py [--events N]``

Builds a catalog holding N chain events (linked hashes, written straight into the events
table: the descent check reads only the events, not the rows they cover), then times
- the first checkpoint (it walks the whole chain: nothing earlier of its key to start from),
- a next one after 1,000 more events (it walks from the previous checkpoint only: what
  ``serve`` does every interval),
- ``check_checkpoint`` (an auditor's descent check: the whole chain, links only).
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

# runnable from a checkout without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from postfix_archiver.archive.checkpoint import check_checkpoint, make_checkpoint
from postfix_archiver.catalog.sqlite import SqliteCatalog
from postfix_archiver.chain import GENESIS
from postfix_archiver.config import IntegritySettings
from postfix_archiver.integrity.keys import create_signing_key, load_public_key

T = TypeVar("T")


def add_events(db: Path, start: int, count: int, prev: str) -> str:
    conn = sqlite3.connect(db)
    rows = []
    for seq in range(start, start + count):
        digest = hashlib.sha256(f"{prev}{seq}".encode()).hexdigest()
        rows.append((seq, seq, seq, prev, digest))
        prev = digest
    with conn:
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows)
    conn.close()
    return prev


def timed(what: str, fn: Callable[[], T]) -> T:
    started = time.perf_counter()
    result = fn()
    print(f"{what:<48} {time.perf_counter() - started:8.3f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pa-bench-cp-") as tmp:
        home = Path(tmp)
        catalog = SqliteCatalog(str(home / "catalog.sqlite"))
        head: str = timed(
            f"build {args.events} events",
            lambda: add_events(home / "catalog.sqlite", 1, args.events, GENESIS),
        )
        key = create_signing_key(home / "keys" / "signing.key")
        settings = IntegritySettings(signing_key=key.private, signing_key_configured=True)
        directory = home / "checkpoints"
        first = timed(
            "first checkpoint (walks the whole chain)",
            lambda: make_checkpoint(catalog, settings, directory),
        )
        add_events(home / "catalog.sqlite", args.events + 1, 1000, str(head))
        timed(
            "next checkpoint, 1000 events later",
            lambda: make_checkpoint(catalog, settings, directory),
        )
        public = load_public_key(key.public)
        report = timed(
            "check_checkpoint (descent over the whole chain)",
            lambda: check_checkpoint(catalog, first.path, public),
        )
        assert report.ok, report.problems
        catalog.close()


if __name__ == "__main__":
    main()
