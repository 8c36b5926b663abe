"""Issue #13's targets in one go: every performance benchmark run in turn, one table of ratios.

Runs the project's own benchmarks as they are (each prints its whole report, shown here as it
runs) and gathers their headline figures into one table with the targets beside them:

- ``serve --sink`` against Postfix's ``smtp-sink`` (``postfix_throughput.py --sink-rounds``);
- the SMTP proxy against the do-nothing filter, interleaved pairs (``--pairs``);
- the pipe filter, in its own process and handing over to ``serve`` (``filter --proxy``),
  against the classic ``archiver.py`` (``--pipe-only``);
- the archive's size on real mail (``catalog_size.py``, with ``--corpus DIR``);
- import speed over several runs (``ingest.py --runs``);
- search latency through the API (``web_search.py``).

Ratios are measured side by side inside each benchmark, so they hold on a noisy machine; the
absolute rates do not. Needs root and Debian's postfix package for the first three.

    .venv/bin/python bench/compare.py --corpus /tmp/package/data            # the full set
    .venv/bin/python bench/compare.py --quick --only sink,proxy             # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass
class Row:
    path: str
    figure: str
    target: str
    met: bool | None  # None: not measured


def run(script: str, *args: str) -> str:
    """One benchmark, its output shown as it comes and returned."""
    argv = [sys.executable, str(HERE / script), *args]
    print(f"\n$ {' '.join(argv[1:])}", flush=True)
    lines: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        assert p.stdout is not None
        for line in p.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    return "".join(lines)


def _medians(output: str) -> tuple[float, float] | None:
    found = re.search(r"median ([\d.]+), min ([\d.]+)", output)
    return (float(found[1]), float(found[2])) if found else None


def sink(rounds: int, messages: int) -> list[Row]:
    out = run(
        "postfix_throughput.py", "--sink-rounds", str(rounds), "--sink-messages", str(messages)
    )
    got = _medians(out)
    if got is None:
        return [Row("serve --sink / smtp-sink, 100 kB", "no result", ">= 0.65", None)]
    return [
        Row(
            "serve --sink / smtp-sink, 100 kB",
            f"median {got[0]:.2f} of {rounds}",
            ">= 0.65",
            got[0] >= 0.65,
        )
    ]


def proxy(rounds: int, messages: int) -> list[Row]:
    out = run("postfix_throughput.py", "--pairs", str(rounds), "--messages", str(messages))
    got = _medians(out)
    if got is None:
        return [Row("proxy / do-nothing filter", "no result", "median >= 0.95, min >= 0.8", None)]
    return [
        Row(
            "proxy / do-nothing filter",
            f"median {got[0]:.2f}, min {got[1]:.2f} of {rounds}",
            "median >= 0.95, min >= 0.8",
            got[0] >= 0.95 and got[1] >= 0.8,
        )
    ]


def pipe(rounds: int, messages: int) -> list[Row]:
    out = run(
        "postfix_throughput.py", "--pipe-only", "--pipe-rounds", str(rounds),
        "--pipe-messages", str(messages), "--pipe-paths", "pipe,proxy,classic",
    )  # fmt: skip
    rows = []
    for path, name in (("pipe", "pipe filter"), ("proxy", "pipe filter --proxy")):
        found = re.search(rf"{path} / classic over \d+: .*median ([\d.]+)", out)
        if found is None:
            rows.append(Row(f"{name} / classic archiver.py", "no result", ">= 1.00", None))
            continue
        median = float(found[1])
        rows.append(
            Row(
                f"{name} / classic archiver.py",
                f"median {median:.2f} of {rounds}",
                ">= 1.00",
                median >= 1.0,
            )
        )
    return rows


def size(corpus: Path | None) -> list[Row]:
    name = "blobs + catalog / raw, real text mail"
    if corpus is None:
        return [Row(name, "not run (--corpus DIR)", "<= 0.45", None)]
    out = run("catalog_size.py", "--src", str(corpus))
    found = re.search(r"total\s+([\d.]+) of raw", out)
    if found is None:
        return [Row(name, "no result", "<= 0.45", None)]
    total = float(found[1])
    return [Row(name, f"{total:.3f}", "<= 0.45", total <= 0.45)]


def imports(rounds: int, messages: int) -> list[Row]:
    out = run("ingest.py", "--runs", str(rounds), "--messages", str(messages))
    found = re.search(r"median ([\d,.]+) messages/s", out)
    name = "import, 10 kB text mail (msg/s)"
    if found is None:
        return [Row(name, "no result", "median >= 2,000", None)]
    rate = float(found[1].replace(",", ""))
    return [Row(name, f"median {rate:,.0f} of {rounds}", "median >= 2,000", rate >= 2000)]


def search(messages: int, rounds: int) -> list[Row]:
    out = run("web_search.py", "--messages", str(messages), "--rounds", str(rounds))
    section = out.split("== auditor", 1)[-1].split("\n==", 1)[0]
    medians, p99s = [], []
    for line in section.splitlines():
        cells = line.split()
        # "  kind words...  n median p95 p99 max matches"
        if len(cells) >= 7 and cells[-6].isdigit() and not line.strip().startswith("all "):
            try:
                medians.append(float(cells[-5]))
                p99s.append(float(cells[-3]))
            except ValueError:
                continue
    name = f"search through the API, {messages:,} messages (ms)"
    if not medians:
        return [Row(name, "no result", "median < 30, p99 < 150", None)]
    worst_median, worst_p99 = max(medians), max(p99s)
    return [
        Row(
            name,
            f"slowest kind: median {worst_median:.1f}, p99 {worst_p99:.1f}",
            "median < 30, p99 < 150 (every kind)",
            worst_median < 30 and worst_p99 < 150,
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, help="folder of real messages for the size")
    parser.add_argument("--quick", action="store_true", help="few rounds, small runs")
    parser.add_argument(
        "--only", default="", help="comma list of sink,proxy,pipe,size,import,search"
    )
    parser.add_argument("--search-messages", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    quick = args.quick
    steps: dict[str, Callable[[], list[Row]]] = {
        "sink": lambda: sink(2 if quick else 5, 500 if quick else 2000),
        "proxy": lambda: proxy(2 if quick else 5, 300 if quick else 1000),
        "pipe": lambda: pipe(1 if quick else 3, 100 if quick else 300),
        "size": lambda: size(args.corpus),
        "import": lambda: imports(2 if quick else 5, 1000 if quick else 10_000),
        "search": lambda: search(10_000 if quick else args.search_messages, 5 if quick else 30),
    }
    chosen = [s for s in args.only.split(",") if s] or list(steps)
    unknown = set(chosen) - set(steps)
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))} (use {', '.join(steps)})")
    started = time.monotonic()
    rows: list[Row] = []
    for step in chosen:
        rows.extend(steps[step]())
    print(
        f"\n== issue #13, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}: "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average now "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, {time.monotonic() - started:.0f} s"
    )
    width = max(len(r.path) for r in rows)
    fig = max(len(r.figure) for r in rows)
    for r in rows:
        verdict = {True: "met", False: "MISSED", None: "-"}[r.met]
        print(f"  {r.path:{width}}  {r.figure:{fig}}  target {r.target:30}  {verdict}")
    return 0 if all(r.met for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
