"""Migration benchmark: ``postfix-archiver migrate`` of a SQLite + files archive to
PostgreSQL + S3 (a private PostgreSQL cluster and moto_server on 127.0.0.1, as the tests
use) and to another SQLite + files, with each phase's seconds and the CPU time of the
migrating process.

    .venv/bin/python bench/migrate.py [--messages N]   # default 2,000 ~10 KB text messages

moto keeps its objects in memory and answers over loopback HTTP: the S3 figures say what
the archiver costs, not what a real bucket's latency adds (more blobs in flight would help
there: ``READERS`` in ``archive/migration.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import TextCorpus
from tests.pg_cluster import postgresql_url
from tests.s3_helpers import MotoServer, s3_environment

from postfix_archiver.archive import Archive
from postfix_archiver.config import load_config_file

CLI = Path(sys.executable).parent / "postfix-archiver"


def write(path: Path, home: Path, extra: str = "") -> Path:
    path.write_text(f'[archive]\nhome = "{home}"\n{extra}')
    return path


def migrate(source: Path, target: Path) -> dict[str, object]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        [str(CLI), "migrate", "--config", str(source), "--to", str(target), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    doc: dict[str, object] = json.loads(done.stdout)
    doc["wall"] = wall
    doc["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return doc


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    os.environ.update(s3_environment())
    server = MotoServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            source = write(base / "source.toml", base / "source")
            corpus = TextCorpus()
            with Archive(load_config_file(source)) as archive:
                for _result in archive.ingest_many(corpus.message(n) for n in range(args.messages)):
                    pass
                archive.index_pending()
            store = f"s3://{server.bucket()}/archive?endpoint={server.endpoint}"
            targets = {
                "PostgreSQL + S3": write(
                    base / "pg.toml",
                    base / "pg",
                    f'catalog = "{postgresql_url()}"\nstore = "{store}"\n',
                ),
                "SQLite + files": write(base / "files.toml", base / "files"),
            }
            print(f"{args.messages} messages, load average {os.getloadavg()[0]:.1f}")
            for name, target in targets.items():
                r = migrate(source, target)
                seconds = r["seconds"]
                assert isinstance(seconds, dict)
                phases = ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items())
                print(
                    f"{name:16} {r['messages']} msgs, {r['rows']} rows, {r['blobs']} blobs: "
                    f"{r['wall']:.1f}s wall ({args.messages / r['wall']:.0f} msg/s), "
                    f"{r['cpu']:.1f}s CPU; {phases}"
                )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
