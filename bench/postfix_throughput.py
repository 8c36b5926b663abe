"""Throughput through a real Postfix: messages per second with and without the archiver.

Postfix's own ``smtp-source`` sends N messages into a private Postfix instance, which
delivers them to Postfix's ``smtp-sink``; the clock runs from the first message sent to an
empty queue. Measured side by side in one run, so the ratios hold on a noisy machine:

1. no filter;
2. a do-nothing filter: Postfix's own loopback, ``content_filter = smtp:[127.0.0.1]:PORT``
   into the reinjection smtpd, the ceiling for any after-queue filter;
3. the archiver's SMTP proxy (``postfix-archiver serve``), full archiving and indexing;
4. the archiver's pipe filter (``postfix-archiver filter``), one process per message;
5. its baseline, the classic ``archiver.py`` (``bench/classic_archiver.py``: archives nothing),
   run by pipe(8) from the same master.cf entry, same user, same argv shape.

``--pipe-only`` runs only the pipe paths named by ``--pipe-paths`` (``pipe``: archiving in
the filter's process; ``proxy``: ``filter --proxy`` handing each message to a running
``serve``; ``classic``), ``--pipe-rounds`` times, interleaved, with ``--pipe-messages``
each, and prints each round's ratio to the classic script.

Then the sink alone: ``smtp-source`` straight into ``postfix-archiver serve --sink`` against
``smtp-sink``, with 100 kB messages (piler publishes about 2,400 messages/s of 100 kB as a
sink on 2 cores).

Needs root and Debian's postfix package. Run::

    .venv/bin/python bench/postfix_throughput.py [--messages N] [--size BYTES] [--sessions S]
    .venv/bin/python bench/postfix_throughput.py --pairs 5          # do-nothing, proxy, x5
    .venv/bin/python bench/postfix_throughput.py --sink-rounds 5    # smtp-sink, --sink, x5
    .venv/bin/python bench/postfix_throughput.py --backend-pairs 3 --messages 1000

``--pairs N`` runs only the do-nothing filter and the proxy, interleaved N times, and prints
each pair's ratio and the median; ``--backend-pairs N`` runs only the proxy, with SQLite +
files and with PostgreSQL + S3 (a private cluster, ``tests/pg_cluster.py``, a new database
each run; moto in memory, ``tests/s3_helpers.py``), interleaved N times, likewise;
``--sink-rounds N`` runs only ``smtp-sink`` and ``serve --sink``, interleaved N times,
likewise. Both print the load average before and after.
    .venv/bin/python bench/postfix_throughput.py --pipe-only --pipe-rounds 3 --pipe-messages 300 \
        --pipe-paths proxy,classic
"""

from __future__ import annotations

import argparse
import compileall
import functools
import os
import pwd
import re
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

from archiver_process import Archiver, archiver_cmd  # noqa: E402
from postfix_harness import PostfixInstance, free_port, is_listening, wait_until  # noqa: E402

import postfix_archiver  # noqa: E402

SMTP_SOURCE = "/usr/sbin/smtp-source"
# the archives go here, as an archive's own directory would (a /tmp churned by earlier runs
# makes file creation several times slower); the pipe user must be able to enter it
WORKDIR = HERE / "out"
SMTP_SINK = "/usr/sbin/smtp-sink"


class Sink:
    """smtp-sink without dumping: the fastest possible final destination."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Sink:
        self.proc = subprocess.Popen(
            [SMTP_SINK, "-u", "nobody", "-c", f"127.0.0.1:{self.port}", "1024"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_until(lambda: is_listening(self.port), 10):
            raise RuntimeError("smtp-sink did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(10)


def smtp_source(port: int, messages: int, size: int, sessions: int) -> float:
    """Send with smtp-source; returns the time it took."""
    start = time.perf_counter()
    subprocess.run(
        [
            SMTP_SOURCE,
            "-s",
            str(sessions),
            "-m",
            str(messages),
            "-l",
            str(size),
            "-f",
            "sender@example.com",
            "-t",
            "rcpt@example.org",
            f"127.0.0.1:{port}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def delivered(postfix: PostfixInstance, sink_port: int) -> int:
    pattern = re.compile(rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{sink_port},.*status=sent")
    return sum(1 for line in postfix.log_lines() if pattern.search(line))


def through_postfix(
    name: str,
    messages: int,
    size: int,
    sessions: int,
    setup: Callable[[PostfixInstance, Path], Callable[[], None]],
) -> float:
    """Messages/s through a fresh Postfix set up by ``setup`` (which returns its teardown)."""
    base = Path(tempfile.mkdtemp(prefix="pa-bench-", dir=WORKDIR))
    base.chmod(0o755)
    try:
        with Sink() as sink, PostfixInstance(sink.port, retry_delay=60) as postfix:
            teardown = setup(postfix, base)
            try:
                start = time.perf_counter()
                smtp_source(postfix.smtpd_port, messages, size, sessions)
                postfix.wait_queue_empty(timeout=1800)
                elapsed = time.perf_counter() - start
                count = delivered(postfix, sink.port)
            finally:
                teardown()
        if count != messages:
            raise RuntimeError(f"{name}: {count} of {messages} messages delivered")
        rate = messages / elapsed
        print(f"  {name:<34} {rate:8.1f} msg/s  ({elapsed:.1f} s)", flush=True)
        return rate
    finally:
        shutil.rmtree(base, ignore_errors=True)


def no_filter(postfix: PostfixInstance, base: Path) -> Callable[[], None]:
    return lambda: None


def do_nothing_filter(postfix: PostfixInstance, base: Path) -> Callable[[], None]:
    arch = Archiver(base)
    arch.configure_postfix(postfix, "--mode", "proxy")
    postfix.postconf(f"content_filter=smtp:[127.0.0.1]:{arch.reinject_port}")
    postfix.settle_config()
    postfix.reload()
    return lambda: None


def proxy(postfix: PostfixInstance, base: Path) -> Callable[[], None]:
    arch = Archiver(base)
    arch.configure_postfix(postfix, "--mode", "proxy")
    arch.start()

    def stop() -> None:
        arch.stop()

    return stop


def proxy_on(
    catalog: str | None, store: str | None, endpoint: str | None
) -> Callable[[PostfixInstance, Path], Callable[[], None]]:
    """``proxy`` with the archive's catalog and store at these URLs (None: the defaults,
    catalog.sqlite and files under the archive's home)."""

    def setup(postfix: PostfixInstance, base: Path) -> Callable[[], None]:
        arch = Archiver(base)
        text = f'[archive]\nhome = "{arch.home}"\n'
        text += f'catalog = "{catalog}"\n' if catalog else ""
        text += f'store = "{store}"\n' if store else ""
        text += (
            f'\n[smtp]\nlisten = "127.0.0.1:{arch.listen_port}"\n'
            f'reinject = "127.0.0.1:{arch.reinject_port}"\n'
        )
        text += f'\n[s3]\nendpoint = "{endpoint}"\n' if endpoint else ""
        arch.config_path.write_text(text)
        arch.configure_postfix(postfix, "--mode", "proxy")
        arch.start(timeout=120)

        def stop() -> None:
            arch.stop()

        return stop

    return setup


def backend_pairs(count: int, messages: int, size: int, sessions: int) -> list[float]:
    """The proxy with SQLite + files and with PostgreSQL + S3, interleaved ``count`` times."""
    sys.path.insert(0, str(HERE.parent))
    from tests.pg_cluster import postgresql_url
    from tests.s3_helpers import MotoServer, s3_environment

    print(
        f"Backend pairs: {count} x (proxy with SQLite + files, proxy with PostgreSQL + S3), "
        f"{messages} messages of {size} bytes, {sessions} sessions; PostgreSQL a private "
        f"cluster (fsync=off), S3 moto in memory; load average before: {_load()}"
    )
    os.environ.update(s3_environment())
    moto = MotoServer().start()
    ratios = []
    try:
        bucket = moto.bucket()
        for n in range(count):
            files = through_postfix(
                f"[{n + 1}] proxy, SQLite + files", messages, size, sessions,
                proxy_on(None, None, None),
            )  # fmt: skip
            remote = through_postfix(
                f"[{n + 1}] proxy, PostgreSQL + S3", messages, size, sessions,
                proxy_on(postgresql_url(), f"s3://{bucket}/run{n}", moto.endpoint),
            )  # fmt: skip
            ratios.append(remote / files)
            print(f"      ratio {remote / files:.2f}  (load {_load()})", flush=True)
    finally:
        moto.stop()
    median = statistics.median(ratios)
    print("  PostgreSQL + S3 / SQLite + files per pair: " + ", ".join(f"{r:.2f}" for r in ratios))
    print(f"  median {median:.2f}, min {min(ratios):.2f}; load average after: {_load()}")
    return ratios


def _traversable(path: Path) -> None:
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def pipe(postfix: PostfixInstance, base: Path) -> Callable[[], None]:
    _pipe_archiver(postfix, base)
    return lambda: None


def _pipe_archiver(postfix: PostfixInstance, base: Path) -> Archiver:
    # compiled as an install compiles it (pip writes the .pyc files as root): the filter
    # runs as nobody, who cannot write them next to a checkout's sources, and would compile
    # every module from source in every process
    compileall.compile_dir(Path(postfix_archiver.__file__).parent, quiet=1)
    nobody = pwd.getpwnam("nobody")
    arch = Archiver(base)
    arch.home.mkdir()
    os.chown(arch.home, nobody.pw_uid, nobody.pw_gid)
    _traversable(Path(archiver_cmd()))
    _traversable(Path(sys.executable).resolve())
    arch.configure_postfix(postfix, "--mode", "pipe", "--user", "nobody")
    return arch


CLASSIC = HERE / "classic_archiver.py"
# the same interpreter as the filter's (a build of Python may start a third faster or slower
# than another: that is no difference between the two scripts); --classic-python changes it
CLASSIC_PYTHON = [sys.executable]


def classic(postfix: PostfixInstance, base: Path) -> Callable[[], None]:
    """The classic ``archiver.py`` in the pipe filter's place: the master.cf entry
    ``postfix-config --mode pipe`` writes, with only its argv swapped for the classic form
    (``HOST PORT ${sender} ${recipient}``, which ``filter`` accepts too), run by
    ``CLASSIC_PYTHON``: the filter's own interpreter unless ``--classic-python`` names
    another (``/usr/bin/python3``, which the script's ``#!`` line names)."""
    arch = _pipe_archiver(postfix, base)
    interpreter = CLASSIC_PYTHON[0]
    _traversable(CLASSIC)
    head, _ = _pipe_entry(postfix)
    argv = f"{interpreter} {CLASSIC} 127.0.0.1 {arch.reinject_port} ${{sender}} ${{recipient}}"
    _set_pipe_entry(postfix, head, argv)
    return lambda: None


def pipe_proxy(postfix: PostfixInstance, base: Path, messages: int) -> Callable[[], None]:
    """The pipe filter handing each message to a running proxy (``filter --proxy``, the
    proxy started with ``serve``): the same master.cf entry with ``--proxy`` added."""
    arch = _pipe_archiver(postfix, base)
    head, argv = _pipe_entry(postfix)
    argv = argv.replace(" filter ", f" filter --proxy 127.0.0.1:{arch.listen_port} ", 1)
    _set_pipe_entry(postfix, head, argv)
    arch.start()

    def stop() -> None:
        arch.stop()
        # handed over, not archived by the filters themselves: the proxy logs each one
        # the proxy's one line per message ends "reinjected=QUEUEID (250 ...)"
        handed = len(re.findall(r" reinjected=\S+ \(250", arch.log()))
        if handed < messages:
            raise RuntimeError(f"pipe filter --proxy: {handed} handed to the proxy")

    return stop


def _pipe_entry(postfix: PostfixInstance) -> tuple[str, str]:
    """The pipe transport's master.cf entry: what comes before ``argv=``, and the argv."""
    entry = next(
        line
        for line in postfix.master_cf().splitlines()
        if line.startswith("postfix-archiver-pipe ")
    )
    head, _, argv = entry.partition(" argv=")
    return head, argv


def _set_pipe_entry(postfix: PostfixInstance, head: str, argv: str) -> None:
    postfix.postconf_master(f"postfix-archiver-pipe/unix={head} argv={argv}")
    postfix.reload()


Setup = Callable[..., Callable[[], None]]
PIPE_PATHS: dict[str, tuple[str, Setup]] = {
    "pipe": ("postfix-archiver pipe filter", pipe),
    "proxy": ("pipe filter --proxy (serve running)", pipe_proxy),
    "classic": ("classic archiver.py", classic),
}


def pipe_and_classic(
    messages: int, size: int, sessions: int, rounds: int, paths: list[str]
) -> dict[str, list[float]]:
    """``rounds`` interleaved rounds of ``paths`` (keys of ``PIPE_PATHS``); the rates, and
    each round's ratio to the classic script."""
    print(
        f"Pipe filter and classic archiver.py through Postfix: {messages} messages of "
        f"{size} bytes, {sessions} sessions, {rounds} interleaved rounds of {', '.join(paths)}"
    )
    rates: dict[str, list[float]] = {path: [] for path in paths}
    for n in range(1, rounds + 1):
        for path in paths:
            name, setup = PIPE_PATHS[path]
            if setup is pipe_proxy:
                setup = functools.partial(pipe_proxy, messages=messages)
            rates[path].append(through_postfix(f"{name} #{n}", messages, size, sessions, setup))
        if "classic" in paths:
            for path in paths:
                if path != "classic":
                    ratio = rates[path][-1] / rates["classic"][-1]
                    print(f"  {path} / classic #{n}: {ratio:.2f}  (target >= 1.00)", flush=True)
    print(f"  load average after the run: {os.getloadavg()[0]:.1f}")
    if "classic" in paths:
        for path in paths:
            if path == "classic":
                continue
            ratios = sorted(a / b for a, b in zip(rates[path], rates["classic"], strict=True))
            print(
                f"  {path} / classic over {rounds}: {', '.join(f'{r:.2f}' for r in ratios)} "
                f"(sorted); median {ratios[len(ratios) // 2]:.2f}"
            )
    return rates


def sink_alone(messages: int, size: int, sessions: int) -> tuple[float, float]:
    with Sink() as sink:
        plain = messages / smtp_source(sink.port, messages, size, sessions)
    return plain, archiver_sink(messages, size, sessions)


def archiver_sink(messages: int, size: int, sessions: int, processes: int = 1) -> float:
    """``serve --sink`` with ``processes`` listening processes: messages/s."""
    base = Path(tempfile.mkdtemp(prefix="pa-bench-", dir=WORKDIR))
    try:
        arch = Archiver(base, sink=True, processes=processes)
        arch.start(timeout=120)
        try:
            elapsed = smtp_source(arch.listen_port, messages, size, sessions)
        finally:
            arch.stop()
        total = arch.search(limit=1)["total"]
        if total != messages:
            raise RuntimeError(f"sink archived {total} of {messages}")
        return messages / elapsed
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _ratios(title: str, ratios: list[float], target: float, floor: float | None) -> None:
    median = statistics.median(ratios)
    print(f"  {title}: " + ", ".join(f"{r:.2f}" for r in ratios))
    verdict = "met" if median >= target and (floor is None or min(ratios) >= floor) else "NOT met"
    bound = f"median >= {target}" + (f", none below {floor}" if floor is not None else "")
    print(f"  median {median:.2f}, min {min(ratios):.2f}  (target {bound}: {verdict})")
    print(f"  load average after: {_load()}")


def pairs(count: int, messages: int, size: int, sessions: int) -> list[float]:
    """The do-nothing filter and the proxy, interleaved ``count`` times: one ratio a pair."""
    print(
        f"Proxy pairs: {count} x (do-nothing filter, proxy), {messages} messages of {size} "
        f"bytes, {sessions} sessions; load average before: {_load()}"
    )
    ratios = []
    for n in range(count):
        loop = through_postfix(
            f"[{n + 1}] do-nothing filter", messages, size, sessions, do_nothing_filter
        )
        ours = through_postfix(f"[{n + 1}] postfix-archiver proxy", messages, size, sessions, proxy)
        ratios.append(ours / loop)
        print(f"      ratio {ours / loop:.2f}  (load {_load()})", flush=True)
    _ratios("proxy / do-nothing filter per pair", ratios, 0.95, 0.8)
    return ratios


def sink_rounds(
    count: int, messages: int, size: int, sessions: int, processes: tuple[int, ...] = (1,)
) -> list[float]:
    """``smtp-sink`` and ``serve --sink`` (with each of ``processes``), interleaved
    ``count`` times: one ratio a round and setting; the ratios of the last setting."""
    print(
        f"Sink rounds: {count} x (smtp-sink, serve --sink with processes "
        f"{', '.join(map(str, processes))}), {messages} messages of {size} bytes, {sessions} "
        f"sessions; load average before: {_load()}"
    )
    ratios: dict[int, list[float]] = {p: [] for p in processes}
    for n in range(count):
        with Sink() as sink:
            plain = messages / smtp_source(sink.port, messages, size, sessions)
        line = f"  [{n + 1}] smtp-sink {plain:8.1f} msg/s"
        for p in processes:
            ours = archiver_sink(messages, size, sessions, p)
            ratios[p].append(ours / plain)
            line += f", processes={p} {ours:8.1f} msg/s ({ours / plain:.2f})"
        print(f"{line}  (load {_load()})", flush=True)
    for p in processes:
        _ratios(f"serve --sink --processes {p} / smtp-sink per round", ratios[p], 0.65, None)
    return ratios[processes[-1]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=10_000, help="bytes per message")
    parser.add_argument("--sessions", type=int, default=10, help="parallel SMTP sessions")
    parser.add_argument("--sink-messages", type=int, default=2000)
    parser.add_argument("--sink-size", type=int, default=100_000)
    parser.add_argument(
        "--sink-processes",
        default="1",
        metavar="N[,N...]",
        help="serve --sink --processes N each round, each N in turn (e.g. 1,2)",
    )
    parser.add_argument("--skip-pipe", action="store_true")
    parser.add_argument(
        "--pairs", type=int, default=0, metavar="N", help="only N do-nothing/proxy pairs"
    )
    parser.add_argument(
        "--backend-pairs",
        type=int,
        default=0,
        metavar="N",
        help="only N pairs of the proxy on SQLite + files and on PostgreSQL + S3",
    )
    parser.add_argument(
        "--sink-rounds", type=int, default=0, metavar="N", help="only N smtp-sink/--sink rounds"
    )
    parser.add_argument(
        "--pipe-only", action="store_true", help="only the pipe filter and the classic script"
    )
    parser.add_argument("--pipe-messages", type=int, default=300)
    parser.add_argument(
        "--classic-python", default=sys.executable, help="the classic script's interpreter"
    )
    parser.add_argument("--pipe-rounds", type=int, default=1)
    parser.add_argument(
        "--pipe-paths",
        default="proxy,classic",
        help="with --pipe-only: which of pipe (in-process), proxy, classic, in this order",
    )
    args = parser.parse_args(argv)
    WORKDIR.mkdir(parents=True, exist_ok=True)
    _traversable(WORKDIR / "x")
    if os.geteuid() != 0 or not Path(SMTP_SOURCE).exists():
        print("needs root and Debian's postfix package (smtp-source, smtp-sink)")
        return 2
    if args.backend_pairs:
        backend_pairs(args.backend_pairs, args.messages, args.size, args.sessions)
        return 0
    if args.pairs or args.sink_rounds:
        if args.pairs:
            pairs(args.pairs, args.messages, args.size, args.sessions)
        if args.sink_rounds:
            processes = tuple(int(p) for p in args.sink_processes.split(","))
            sink_rounds(
                args.sink_rounds, args.sink_messages, args.sink_size, args.sessions, processes
            )
        return 0
    CLASSIC_PYTHON[0] = args.classic_python
    print(f"classic archiver.py runs with {args.classic_python}")
    if args.pipe_only:
        paths = [p for p in args.pipe_paths.split(",") if p]
        if not paths or not set(paths) <= set(PIPE_PATHS):
            parser.error(f"--pipe-paths: a list of {', '.join(PIPE_PATHS)}")
        pipe_and_classic(args.pipe_messages, args.size, args.sessions, args.pipe_rounds, paths)
        return 0
    print(
        f"Through Postfix: {args.messages} messages of {args.size} bytes, "
        f"{args.sessions} sessions (cores: {os.cpu_count()})"
    )
    rates = {
        "none": through_postfix("no filter", args.messages, args.size, args.sessions, no_filter),
        "loop": through_postfix(
            "do-nothing filter (Postfix loopback)",
            args.messages,
            args.size,
            args.sessions,
            do_nothing_filter,
        ),
        "proxy": through_postfix(
            "postfix-archiver proxy", args.messages, args.size, args.sessions, proxy
        ),
    }
    if not args.skip_pipe:
        rates["pipe"] = through_postfix(
            "postfix-archiver pipe filter", args.pipe_messages, args.size, args.sessions, pipe
        )
        rates["pipe_proxy"] = through_postfix(
            "pipe filter --proxy",
            args.pipe_messages,
            args.size,
            args.sessions,
            functools.partial(pipe_proxy, messages=args.pipe_messages),
        )
        rates["classic"] = through_postfix(
            "classic archiver.py", args.pipe_messages, args.size, args.sessions, classic
        )
    print()
    print(f"  proxy / do-nothing filter: {rates['proxy'] / rates['loop']:.2f}  (target >= 0.8)")
    print(f"  proxy / no filter:         {rates['proxy'] / rates['none']:.2f}")
    if "pipe" in rates:
        print(f"  pipe / do-nothing filter:  {rates['pipe'] / rates['loop']:.2f}")
        print(f"  pipe / classic: {rates['pipe'] / rates['classic']:.2f}")
        print(f"  pipe --proxy / classic: {rates['pipe_proxy'] / rates['classic']:.2f}  (target 1)")
    print()
    print(
        f"Sink alone: {args.sink_messages} messages of {args.sink_size} bytes, "
        f"{args.sessions} sessions"
    )
    plain, ours = sink_alone(args.sink_messages, args.sink_size, args.sessions)
    print(f"  smtp-sink (discards)                {plain:8.1f} msg/s")
    print(
        f"  postfix-archiver serve --sink       {ours:8.1f} msg/s  "
        f"({ours / plain:.2f} of smtp-sink; piler publishes ~2,400 msg/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
