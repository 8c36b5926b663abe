"""CPU time of a page's snippets by component, for finding what limits them.

On the cached archive of ``bench/web_search.py`` (read-only), the bench's queries (same seed,
``QUERIES`` of each kind, pages of 50), each part of ``Archive._snippet`` timed alone with
``time.process_time``, cold: the search (for scale), compiling the query's expressions, the
message blob reads (store lookup and zstd), the text (``index_text_stored``: the parse), the
marking and cutting, and the attachment texts (catalog list, extraction cache blob, marking).
Prints the median CPU ms per page of each, by kind:

    .venv/bin/python bench/snippet_parts.py [QUERIES] [MESSAGES]
"""

from __future__ import annotations

import functools
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.web_search import OUT, config_for, query_kinds, vocabulary

from postfix_archiver.archive import Archive, service
from postfix_archiver.archive.reading import TextCache
from postfix_archiver.archive.snippets import SCAN_LIMIT, Highlighter, message_sources
from postfix_archiver.archive.stored_text import index_text_stored

COLUMNS = ("search", "expressions", "read", "text", "mark", "attachments", "snippets")


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    kinds = query_kinds(random.Random(11), vocabulary(random.Random(7)))
    queries = [(k, make()) for _ in range(n) for k, make in kinds.items()]
    res: dict[str, dict[str, list[float]]] = {k: {c: [] for c in COLUMNS} for k in kinds}
    with Archive(config_for(OUT / f"web-search-{size}"), readonly=True) as a:
        for kind, q in queries:
            cpu = page(a, q)
            for column, value in cpu.items():
                res[kind][column].append(value * 1000)
            a._texts = TextCache(SCAN_LIMIT)  # cold: no page was shown before
    print(f"CPU ms per page of 50 by component, {n} queries per kind (medians)")
    print(f"{'query kind':30}" + "".join(f"{c:>12}" for c in COLUMNS))
    for kind, r in res.items():
        print(f"{kind:30}" + "".join(f"{statistics.median(r[c]):>12.2f}" for c in COLUMNS))
    return 0


def page(a: Archive, q: str) -> dict[str, float]:
    """CPU seconds of each part of the search and snippets of one page of ``q``."""
    pt = time.process_time
    t0 = pt()
    rows = a.search(q, limit=50).results
    t1 = pt()
    marker = Highlighter(service._parsed(q))
    c = {"search": t1 - t0, "expressions": pt() - t1, "read": 0.0, "text": 0.0}
    c |= {"mark": 0.0, "attachments": 0.0}
    for row in rows if marker.has_terms else []:
        body = ""
        if marker.marks_body:
            s = pt()
            seg = a._segments(row.sha256)
            e = pt()
            rebuild = functools.partial(a._rebuild, row.sha256, seg)
            body = index_text_stored(seg, rebuild, a._read_part)[:SCAN_LIMIT]
            c["read"] += e - s
            c["text"] += pt() - e
        s = pt()
        found = marker.snippet(message_sources(body, row.subject))
        c["mark"] += pt() - s
        if (found is None or not found.marks) and row.attachment_count:
            s = pt()
            texts = a._attachment_texts(row) if marker.marks_attachments else []
            if texts:
                marker.snippet(message_sources("", "", texts))
            c["attachments"] += pt() - s
    c["snippets"] = sum(v for k, v in c.items() if k != "search")
    return c


if __name__ == "__main__":
    sys.exit(main())
