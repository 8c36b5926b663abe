"""CPU time of a page's snippets, for comparing two versions of the code on a loaded machine.

Opens the cached archive of ``bench/web_search.py`` read-only, finds the same queries (the
bench's kinds, ``--queries`` of each, the same seed) with pages of 50, and times
``Archive.snippets`` for each page with ``time.process_time`` (CPU time of this process: what
other engineers' load does not change much), cold (the texts kept for pages shown again are
forgotten first) and with no time budget (so every result gets its snippet whatever the load).
Prints CPU ms per page by kind; ``--dump FILE`` writes every snippet as JSON lines, so two
versions can be checked to give the same snippets; ``--profile`` prints a cProfile of it.

``--added N`` then prints ``web_search.py``'s in-process table (wall time) without its HTTP
part, on the archive opened read-only (the bench itself rewrites the users in it).

Run it once per version, the other version's ``src`` first on ``PYTHONPATH``:

    .venv/bin/python bench/snippet_cpu.py --dump /tmp/new.jsonl
    PYTHONPATH=/tmp/old/src .venv/bin/python bench/snippet_cpu.py --dump /tmp/old.jsonl
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import statistics
import sys
import time
from pathlib import Path

import postfix_archiver
from postfix_archiver.archive import Archive
from postfix_archiver.archive.reading import TextCache
from postfix_archiver.archive.snippets import SCAN_LIMIT

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.web_search import (
    OUT,
    config_for,
    measure_snippets,
    query_kinds,
    report_snippets,
    vocabulary,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=20, help="queries per kind")
    parser.add_argument("--dump", type=Path, help="write every snippet here (JSON lines)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime", help="cProfile order (--profile)")
    parser.add_argument(
        "--added",
        type=int,
        metavar="ROUNDS",
        help="then web_search.py's in-process table (wall time: a page of 50 without and "
        "with its snippets), ROUNDS queries per kind, on the archive opened read-only",
    )
    args = parser.parse_args(argv)
    home = OUT / f"web-search-{args.messages}"
    if not (home / "catalog.sqlite").exists():
        print(f"no cached archive in {home}: run bench/web_search.py first", file=sys.stderr)
        return 2
    print(f"code: {Path(postfix_archiver.__file__).parent}")
    kinds = query_kinds(random.Random(11), vocabulary(random.Random(7)))
    queries = [(kind, make()) for _ in range(args.queries) for kind, make in kinds.items()]
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    profiler = cProfile.Profile() if args.profile else None
    dump = args.dump.open("w") if args.dump else None
    try:
        with Archive(config_for(home), readonly=True) as archive:
            pages = [(kind, q, archive.search(q, limit=50).results) for kind, q in queries]
            for kind, q, rows in pages:
                archive._texts = TextCache(SCAN_LIMIT)  # cold: no page was shown before
                if profiler:
                    profiler.enable()
                start = time.process_time()
                snippets = archive.snippets(rows, q, budget=1e9)
                cpu[kind].append((time.process_time() - start) * 1000)
                if profiler:
                    profiler.disable()
                if dump:
                    for row, s in zip(rows, snippets, strict=True):
                        shown = None if s is None else s.to_json()
                        dump.write(json.dumps([q, row.id, shown], ensure_ascii=False) + "\n")
    finally:
        if dump:
            dump.close()
    print(f"CPU ms for a page of 50 snippets, {args.queries} queries per kind (cold)")
    print(f"  {'query kind':30} {'median':>8} {'mean':>8} {'max':>8}")
    for kind, values in cpu.items():
        print(
            f"  {kind:30} {statistics.median(values):>8.1f} {statistics.mean(values):>8.1f} "
            f"{max(values):>8.1f}"
        )
    every = [v for values in cpu.values() for v in values]
    print(f"  {'all':30} {statistics.median(every):>8.1f} {statistics.mean(every):>8.1f}")
    print(f"  total CPU: {sum(every) / 1000:.2f} s")
    if args.added:
        with Archive(config_for(home), readonly=True) as archive:
            measure_snippets(archive, kinds, 2)  # warm-up
            report_snippets(
                f"snippets: a page of 50 without and with them, in-process, {args.added} "
                "queries per kind, times in ms",
                measure_snippets(archive, kinds, args.added),
            )
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(45)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
