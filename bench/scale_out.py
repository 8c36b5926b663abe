"""Scale-out benchmark: PostgreSQL (+ S3) against SQLite (+ files), side by side in one run.

1. ingest: the text corpus of ``bench/ingest.py`` (~10 KB messages) imported the way
   ``postfix-archiver import`` does, full-text indexing included, into a SQLite catalog and
   into a PostgreSQL catalog (blobs in files for both): messages/s and the ratio;
2. search: the same queries on both archives (one word, two words, a phrase, a sender, a
   subject word), ``Archive.search`` with 50 rows: median and 95th percentile latency;
3. the SMTP sink (``postfix-archiver serve --sink``, full archiving, Postfix's
   ``smtp-source`` as the sender): SQLite + files, PostgreSQL + S3 (moto), and two sink
   processes into one PostgreSQL + S3, each sent half the mail at the same time (after
   ``WARM`` messages each, not timed: first connections, first S3 client).

PostgreSQL is a private cluster (``tests/pg_cluster.py``: Debian's binaries, ``fsync=off``:
it measures the archiver's work, not a disk) unless ``--postgresql URL`` names a server
(each archive then gets a new database created there: the role needs CREATEDB). S3 is moto
(``tests/s3_helpers.py``), an in-memory server on 127.0.0.1: request costs and latencies of
a real S3 are not in these figures.

    .venv/bin/python bench/scale_out.py --messages 5000 --smtp-messages 400   # a loaded machine
    .venv/bin/python bench/scale_out.py --messages 100000 --smtp-messages 5000  # issue #14's
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

from archiver_process import Archiver  # noqa: E402
from bench.ingest import WORDS, TextCorpus, _config, run  # noqa: E402
from bench.postfix_throughput import smtp_source  # noqa: E402

from postfix_archiver.archive import Archive  # noqa: E402

WARM = 5  # messages each sink archives before the clock starts


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def new_database(server: str | None) -> str:
    if server is None:
        from tests.pg_cluster import postgresql_url

        return postgresql_url()
    import psycopg

    name = f"pa_bench_{os.getpid()}_{random.randrange(1 << 30)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.rsplit("/", 1)[0] + "/" + name


def queries(rng: random.Random, rounds: int) -> list[str]:
    kinds: list[Callable[[], str]] = [
        lambda: rng.choice(WORDS),
        lambda: f"{rng.choice(WORDS)} {rng.choice(WORDS)}",
        lambda: f'"{rng.choice(WORDS)} {rng.choice(WORDS)}"',
        lambda: "from:example.org",
        lambda: f"subject:{rng.choice(WORDS)}",
    ]
    return [kind() for _ in range(rounds) for kind in kinds]


def search_times(config_home: Path, catalog: str | None, qs: list[str]) -> list[float]:
    times = []
    with Archive(_config(config_home, None, catalog)) as archive:
        archive.search(qs[0], limit=50)  # warm: connections, caches
        for q in qs:
            start = time.perf_counter()
            archive.search(q, limit=50)
            times.append(time.perf_counter() - start)
    return times


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def sink_node(base: Path, catalog: str | None, store: str | None, endpoint: str | None) -> Archiver:
    base.mkdir(parents=True)
    node = Archiver(base, sink=True)
    text = f'[archive]\nhome = "{node.home}"\n'
    if catalog:
        text += f'catalog = "{catalog}"\n'
    if store:
        text += f'store = "{store}"\n'
    text += (
        f'\n[smtp]\nlisten = "127.0.0.1:{node.listen_port}"\n'
        f'reinject = "127.0.0.1:{node.reinject_port}"\n'
    )
    if endpoint:
        text += f'\n[s3]\nendpoint = "{endpoint}"\n'
    node.config_path.write_text(text)
    return node


def sink_rate(nodes: list[Archiver], messages: int, size: int, sessions: int) -> float:
    """All nodes started, each sent ``messages / len(nodes)`` at once; messages/s overall."""
    for node in nodes:
        node.start(timeout=120)
    try:
        for node in nodes:  # not timed: first connections to the catalog and the store
            smtp_source(node.listen_port, WARM, 1000, 1)
        share = messages // len(nodes)
        elapsed: list[float] = []
        threads = [
            threading.Thread(
                target=lambda n=n: elapsed.append(
                    smtp_source(n.listen_port, share, size, max(1, sessions // len(nodes)))
                )
            )
            for n in nodes
        ]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - start
    finally:
        for node in nodes:
            node.stop()
    total = nodes[0].search(limit=1)["total"]
    if total != (share + WARM) * len(nodes):
        raise RuntimeError(f"archived {total} of {(share + WARM) * len(nodes)}")
    return share * len(nodes) / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5_000, help="ingest corpus size")
    parser.add_argument("--rounds", type=int, default=10, help="queries per kind")
    parser.add_argument("--smtp-messages", type=int, default=400, help="0: no SMTP part")
    parser.add_argument("--size", type=int, default=10_000, help="SMTP message size")
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--postgresql", help="a server URL (default: a private cluster)")
    args = parser.parse_args(argv)

    out = HERE / "out"
    out.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="pa-scale-", dir=out))
    print(f"postfix-archiver scale-out benchmark; {os.cpu_count()} CPUs, load {load()}")
    try:
        if args.messages:
            text = TextCorpus()
            print(f"\n== ingest: {args.messages:,} messages of ~10 KB, indexing included")
            sqlite = run("sqlite", args.messages, text.message, workdir)
            pg_url = new_database(args.postgresql)
            text = TextCorpus()
            pg = run("postgresql", args.messages, text.message, workdir, catalog=pg_url)
            rs, rp = sqlite.messages / sqlite.seconds, pg.messages / pg.seconds
            print(f"  SQLite       {rs:8,.0f} msg/s")
            print(f"  PostgreSQL   {rp:8,.0f} msg/s   ratio PostgreSQL/SQLite {rp / rs:.2f}")

            print(f"\n== search: {5 * args.rounds} queries of 5 kinds, 50 rows each")
            qs = queries(random.Random(7), args.rounds)
            ts = search_times(workdir / "sqlite", None, qs)
            tp = search_times(workdir / "postgresql", pg_url, qs)
            for name, t in (("SQLite", ts), ("PostgreSQL", tp)):
                print(
                    f"  {name:12} median {statistics.median(t) * 1000:7.1f} ms   "
                    f"p95 {pct(t, 0.95) * 1000:7.1f} ms"
                )
            print(
                "  ratio PostgreSQL/SQLite (median) "
                f"{statistics.median(tp) / statistics.median(ts):.2f}"
            )

        if args.smtp_messages:
            from tests.s3_helpers import MotoServer, s3_environment

            os.environ.update(s3_environment())
            moto = MotoServer().start()
            try:
                bucket = moto.bucket()
                n, size, sessions = args.smtp_messages, args.size, args.sessions
                print(
                    f"\n== serve --sink: {n:,} messages of {size:,} bytes, "
                    f"{sessions} sessions (smtp-source)"
                )
                files = sink_rate([sink_node(workdir / "sink-sqlite", None, None, None)], n,
                                  size, sessions)  # fmt: skip
                one_url = new_database(args.postgresql)
                one = sink_rate(
                    [sink_node(workdir / "sink-pg", one_url, f"s3://{bucket}/one",
                               moto.endpoint)], n, size, sessions,
                )  # fmt: skip
                two_url = new_database(args.postgresql)
                two = sink_rate(
                    [
                        sink_node(workdir / f"sink-pg{k}", two_url, f"s3://{bucket}/two",
                                  moto.endpoint)
                        for k in (1, 2)
                    ],
                    n, size, sessions,
                )  # fmt: skip
                print(f"  SQLite + files                      {files:7,.0f} msg/s")
                print(
                    f"  PostgreSQL + S3, one sink           {one:7,.0f} msg/s   "
                    f"ratio to SQLite + files {one / files:.2f}"
                )
                print(
                    f"  PostgreSQL + S3, two sinks at once  {two:7,.0f} msg/s   "
                    f"ratio to one sink {two / one:.2f}"
                )
            finally:
                moto.stop()
        print(f"\nload average after: {load()}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
