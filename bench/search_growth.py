"""How each query kind's time grows with the archive: the cached archives of
``bench/web_search.py`` side by side, in CPU time (this thread's: what other engineers' load
changes least), split into the catalog's SQL statements and the page's snippets.

For each ``--sizes`` archive (``bench/out/web-search-N``, opened read-only), the bench's query
kinds (same seed, so the same queries at every size), ``--queries`` of each, as the auditor
(sees all mail) or ``--user`` (one address): the search of a page of 50, each SQL statement's
time grouped by what it does, and ``Archive.snippets`` of the page, cold (no text kept from a
page before), with no time budget. Prints, per kind, medians in CPU ms at each size.

    .venv/bin/python bench/search_growth.py --sizes 10000,30000,100000,209224 [--queries 15]
    [--explain] [--dump FILE]

``--explain`` prints each kind's ``EXPLAIN QUERY PLAN`` of its statements at the largest size;
``--dump FILE`` writes each query's total and result ids as JSON lines (two versions compared:
the same results).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from postfix_archiver.archive import Archive
from postfix_archiver.archive.reading import TextCache
from postfix_archiver.archive.snippets import SCAN_LIMIT

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.web_search import OUT, config_for, query_kinds, vocabulary

USER = "user7@example.com"


def label(sql: str) -> str:
    """What a statement does, in a few words (the catalog's search statements)."""
    s = " ".join(sql.split())
    if s.startswith("SELECT rowid FROM fts") or s.startswith("SELECT m.id FROM messages m WHERE"):
        return "list"
    if s.startswith("SELECT count(*) FROM fts"):
        return "count(fts)"
    if s.startswith("SELECT count(*) FROM index_queue"):
        return "pending"
    if s.startswith("SELECT count(*)"):
        return "count"
    if s.startswith("SELECT message, position, filename"):
        return "attachments"
    if s.startswith("SELECT max(id)"):
        return "max(id)"
    if s.startswith("SELECT date FROM messages INDEXED BY"):
        return "walk bound"
    if "INDEXED BY messages_date" in s:
        return "date walk"
    if "json_each" in s:
        return "page(ids)"
    if "ORDER BY" in s:
        return "page(sort)"
    return "other"


class Timed:
    """Wraps a catalog's ``_query``: CPU ms per statement label, and the statements seen."""

    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog
        self.inner = catalog._query
        self.times: dict[str, float] = defaultdict(float)
        self.seen: list[tuple[str, list[object]]] = []
        catalog._query = self

    def __call__(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        start = time.thread_time()
        try:
            return self.inner(sql, params)  # type: ignore[no-any-return]
        finally:
            self.times[label(sql)] += (time.thread_time() - start) * 1000
            self.seen.append((sql, list(params)))

    def reset(self) -> None:
        self.times = defaultdict(float)
        self.seen = []


def run(
    size: int, queries: list[tuple[str, str]], visible_to: tuple[str, ...] | None, dump: Any
) -> tuple[dict[str, dict[str, list[float]]], dict[str, list[tuple[str, list[object]]]]]:
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    plans: dict[str, list[tuple[str, list[object]]]] = {}
    with Archive(config_for(OUT / f"web-search-{size}"), readonly=True) as archive:
        timed = Timed(archive.catalog)
        for _kind, q in queries[: len(queries) // 4]:  # warm-up: page cache, imports
            archive.search(q, limit=50, visible_to=visible_to)
        for kind, q in queries:
            timed.reset()
            archive._texts = TextCache(SCAN_LIMIT)  # cold: no page was shown before
            start = time.thread_time()
            page = archive.search(q, limit=50, visible_to=visible_to)
            searched = time.thread_time()
            plans.setdefault(kind, list(timed.seen))
            archive.snippets(page.results, q, budget=1e9)
            done = time.thread_time()
            row = per[kind]
            row["search"].append((searched - start) * 1000)
            row["snippets"].append((done - searched) * 1000)
            row["total"].append((done - start) * 1000)
            row["matches"].append(page.total)
            for what, ms in timed.times.items():
                row[what].append(ms)
            if dump:
                ids = [r.id for r in page.results]
                dump.write(json.dumps({"size": size, "q": q, "total": page.total, "ids": ids}))
                dump.write("\n")
    return per, plans


def explain(size: int, plans: dict[str, list[tuple[str, list[object]]]]) -> None:
    import sqlite3

    conn = sqlite3.connect(
        f"file:{OUT / f'web-search-{size}' / 'catalog.sqlite'}?mode=ro", uri=True
    )
    for kind, statements in plans.items():
        print(f"\n-- {kind}")
        for sql, params in statements:
            if label(sql) == "pending":
                continue
            print(f"  [{label(sql)}] {' '.join(sql.split())[:160]}")
            for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params):
                print(f"      {row[3]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,30000,100000,209224")
    parser.add_argument("--queries", type=int, default=15, help="queries per kind")
    parser.add_argument("--user", action="store_true", help=f"as a user who sees {USER}'s mail")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--dump", type=Path)
    parser.add_argument("--kinds", help="only these kinds (comma-separated substrings)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = query_kinds(random.Random(11), vocabulary(random.Random(7)))
    if args.kinds:
        wanted = args.kinds.split(",")
        kinds = {k: v for k, v in kinds.items() if any(w in k for w in wanted)}
    queries = [(kind, make()) for _ in range(args.queries) for kind, make in kinds.items()]
    visible_to = (USER,) if args.user else None
    dump = args.dump.open("w") if args.dump else None
    results: dict[int, dict[str, dict[str, list[float]]]] = {}
    plans: dict[str, list[tuple[str, list[object]]]] = {}
    for size in sizes:
        results[size], plans = run(size, queries, visible_to, dump)
    if dump:
        dump.close()
    who = f"user {USER}" if args.user else "auditor"
    print(f"CPU ms per query, medians of {args.queries} per kind, {who}, a page of 50")
    for kind in kinds:
        print(f"\n{kind}")
        whats = sorted({w for size in sizes for w in results[size][kind]} - {"matches"})
        order = ["total", "search", "snippets"] + [
            w for w in whats if w not in ("total", "search", "snippets")
        ]
        print(f"  {'':12}" + "".join(f"{s:>10,}" for s in sizes))
        print(
            f"  {'matches':12}"
            + "".join(f"{statistics.median(results[s][kind]['matches']):>10,.0f}" for s in sizes)
        )
        for what in order:
            cells = []
            for s in sizes:
                values = results[s][kind].get(what, [])
                cells.append(f"{statistics.median(values):>10.1f}" if values else f"{'-':>10}")
            print(f"  {what:12}" + "".join(cells))
        p99 = [max(results[s][kind]["total"]) for s in sizes]
        print(f"  {'max total':12}" + "".join(f"{v:>10.1f}" for v in p99))
    if args.explain:
        explain(sizes[-1], plans)
    return 0


if __name__ == "__main__":
    sys.exit(main())
