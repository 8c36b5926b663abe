"""FTS5 options measured on an archive's own entries: what each costs in size and in query
time, beside the catalog's table as it is (``detail=full``).

Give an archive made by ``bench/catalog_size.py --keep DIR``: each message's entry is made
again from its blobs (as the indexer makes it) and put into one fresh table per option; the
size is the table's pages after ``optimize`` (``dbstat``), the time the median of a few runs
of a few kinds of query (a word, two words, a phrase, a prefix), all tables interleaved.

    .venv/bin/python bench/catalog_size.py --src package/data --keep /tmp/size
    .venv/bin/python bench/fts_options.py --home /tmp/size

``detail=column`` and ``detail=none`` keep no positions: FTS5 refuses a phrase query on
``none`` and answers one on ``column`` as words in the same column, so a search that kept
either would have to confirm its phrases another way (reading each candidate's text).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from postfix_archiver.archive import Archive
from postfix_archiver.archive.indexer import entry_of
from postfix_archiver.config import parse_config

OPTIONS = {
    "detail=full (as now)": "",
    "detail=full, columnsize=0": ", columnsize = 0",
    "detail=full, prefix='2 3'": ", prefix = '2 3'",
    "detail=column": ", detail = column",
    "detail=column, columnsize=0": ", detail = column, columnsize = 0",
    "detail=none": ", detail = none",
}
QUERIES = {
    "word": '"money"',
    "two words": '"free" AND "offer"',
    "phrase": '"click here"',
    "prefix": '"remov"*',
    "column": '{subject} : "meeting"',
}


def entries(home: Path) -> list[tuple[int, tuple[str, str, str, str, str]]]:
    config = parse_config(f'[archive]\nhome = "{home}"\n', str(home / "archiver.toml"))
    out = []
    with Archive(config, readonly=True) as archive:
        for row in archive.iter_search(""):
            made = entry_of(archive, row.sha256, extract_missing=False)
            if made is None:
                continue
            e = made.entry
            out.append((row.id, (e.subject, e.body, e.names, e.addrs, e.attachments)))
    return out


def table_bytes(conn: sqlite3.Connection, name: str) -> int:
    sql = "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name LIKE ? || '%'"
    return int(conn.execute(sql, (name,)).fetchone()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="archive kept by catalog_size")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    rows = entries(args.home)
    if not rows:
        print(f"no indexed messages in {args.home}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fts-options-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "fts.sqlite")
        names = {}
        for n, (label, extra) in enumerate(OPTIONS.items()):
            name = f"t{n}"
            names[label] = name
            conn.execute(
                f"CREATE VIRTUAL TABLE {name} USING fts5(subject, body, names, addrs, "
                f"attachments, content = '', tokenize = 'unicode61 remove_diacritics 2'{extra})"
            )
            with conn:
                conn.executemany(
                    f"INSERT INTO {name} (rowid, subject, body, names, addrs, attachments) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(rowid, *values) for rowid, values in rows],
                )
                conn.execute(f"INSERT INTO {name} ({name}) VALUES ('optimize')")
        conn.execute("VACUUM")
        times: dict[tuple[str, str], list[float]] = {}
        found: dict[tuple[str, str], int | str] = {}
        for _ in range(args.runs):
            for label, name in names.items():
                for kind, match in QUERIES.items():
                    start = time.perf_counter()
                    try:
                        count = len(
                            conn.execute(
                                f"SELECT rowid FROM {name} WHERE {name} MATCH ?", (match,)
                            ).fetchall()
                        )
                    except sqlite3.Error as exc:
                        found[label, kind] = f"error: {exc}"
                        continue
                    times.setdefault((label, kind), []).append(time.perf_counter() - start)
                    found[label, kind] = count
        full = table_bytes(conn, names["detail=full (as now)"])
        print(f"{len(rows):,} entries; size of the index, and median ms (matches) per query")
        print(
            f"{'option':30s} {'MB':>6s} {'of now':>6s}  " + "  ".join(f"{k:>16s}" for k in QUERIES)
        )
        for label, name in names.items():
            size = table_bytes(conn, name)
            cells = []
            for kind in QUERIES:
                t = times.get((label, kind))
                what = found[label, kind]
                if t is None:
                    cells.append(f"{'refused':>16s}")
                else:
                    cells.append(f"{statistics.median(t) * 1000:7.2f} ({what:>6})")
            print(f"{label:30s} {size / (1 << 20):6.2f} {size / full:6.2f}  " + "  ".join(cells))
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
