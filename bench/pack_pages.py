"""The blob pack's page size: what a transaction writing one blob (the pipe filter's case)
costs with 4, 16 and 32 kB pages, interleaved, median of ``--runs``.

    .venv/bin/python bench/pack_pages.py [--blobs 400] [--runs 5]

Each run makes a fresh pack with the page size given (as ``store.packed`` makes a new one
with ``PAGE_SIZE``) and puts ``--blobs`` random blobs of 0.8-4 kB into it, one transaction
(one fsync) each, in a folder beside this script (``bench/out``: not a tmpfs).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from postfix_archiver.store.packed import PackedBlobs

SIZES = (4096, 16384, 32768)


def one_run(folder: Path, page_size: int, blobs: list[bytes], rng: random.Random) -> float:
    path = folder / "packed.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA page_size={page_size}")
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    pack = PackedBlobs(path)
    start = time.perf_counter()
    for blob in blobs:
        pack.put_many([(f"m/{rng.getrandbits(256):064x}", blob)])
    rate = len(blobs) / (time.perf_counter() - start)
    pack.close()
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=400)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    rng = random.Random(1)
    blobs = [rng.randbytes(rng.randint(800, 4000)) for _ in range(args.blobs)]
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    rates: dict[int, list[float]] = {size: [] for size in SIZES}
    for run in range(args.runs):
        for size in SIZES if run % 2 == 0 else tuple(reversed(SIZES)):
            folder = Path(tempfile.mkdtemp(prefix="pack-pages-", dir=out))
            try:
                rates[size].append(one_run(folder, size, blobs, rng))
            finally:
                shutil.rmtree(folder)
    base = statistics.median(rates[4096])
    for size, values in rates.items():
        median = statistics.median(values)
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(
            f"{size // 1024:2d} kB pages: {median:6.0f} transactions/s ({shown}); "
            f"{median / base:.2f} of 4 kB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
