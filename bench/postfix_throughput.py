"""Throughput through a real Postfix: messages per second with and without the archiver.

Postfix's own ``smtp-source`` sends N messages into a private Postfix instance, which
delivers them to Postfix's ``smtp-sink``; the clock runs from the first message sent to an
empty queue. Measured side by side in one run, so the ratios hold on a noisy machine:

1. no filter;
2. a do-nothing filter: Postfix's own loopback, ``content_filter = smtp:[127.0.0.1]:PORT``
   into the reinjection smtpd, the ceiling for any after-queue filter;
3. the archiver's SMTP proxy (``postfix-archiver serve``), full archiving and indexing;
4. the archiver's pipe filter (``postfix-archiver filter``), one process per message.

Then the sink alone: ``smtp-source`` straight into ``postfix-archiver serve --sink`` against
``smtp-sink``, with 100 kB messages (piler publishes about 2,400 messages/s of 100 kB as a
sink on 2 cores).

Needs root and Debian's postfix package. Run::

    .venv/bin/python bench/postfix_throughput.py [--messages N] [--size BYTES] [--sessions S]
    .venv/bin/python bench/postfix_throughput.py --pairs 5          # do-nothing, proxy, x5
    .venv/bin/python bench/postfix_throughput.py --sink-rounds 5    # smtp-sink, --sink, x5

``--pairs N`` runs only the do-nothing filter and the proxy, interleaved N times, and prints
each pair's ratio and the median; ``--sink-rounds N`` runs only ``smtp-sink`` and
``serve --sink``, interleaved N times, likewise. Both print the load average before and after.
"""

from __future__ import annotations

import argparse
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


def _traversable(path: Path) -> None:
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def pipe(postfix: PostfixInstance, base: Path) -> Callable[[], None]:
    nobody = pwd.getpwnam("nobody")
    arch = Archiver(base)
    arch.home.mkdir()
    os.chown(arch.home, nobody.pw_uid, nobody.pw_gid)
    _traversable(Path(archiver_cmd()))
    _traversable(Path(sys.executable).resolve())
    arch.configure_postfix(postfix, "--mode", "pipe", "--user", "nobody")
    return lambda: None


def sink_alone(messages: int, size: int, sessions: int) -> tuple[float, float]:
    with Sink() as sink:
        plain = messages / smtp_source(sink.port, messages, size, sessions)
    base = Path(tempfile.mkdtemp(prefix="pa-bench-", dir=WORKDIR))
    try:
        arch = Archiver(base, sink=True)
        arch.start()
        try:
            elapsed = smtp_source(arch.listen_port, messages, size, sessions)
        finally:
            arch.stop()
        total = arch.search(limit=1)["total"]
        if total != messages:
            raise RuntimeError(f"sink archived {total} of {messages}")
        return plain, messages / elapsed
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


def sink_rounds(count: int, messages: int, size: int, sessions: int) -> list[float]:
    """``smtp-sink`` and ``serve --sink``, interleaved ``count`` times: one ratio a round."""
    print(
        f"Sink rounds: {count} x (smtp-sink, serve --sink), {messages} messages of {size} "
        f"bytes, {sessions} sessions; load average before: {_load()}"
    )
    ratios = []
    for n in range(count):
        plain, ours = sink_alone(messages, size, sessions)
        ratios.append(ours / plain)
        print(
            f"  [{n + 1}] smtp-sink {plain:8.1f} msg/s, serve --sink {ours:8.1f} msg/s, "
            f"ratio {ours / plain:.2f}  (load {_load()})",
            flush=True,
        )
    _ratios("serve --sink / smtp-sink per round", ratios, 0.65, None)
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=10_000, help="bytes per message")
    parser.add_argument("--sessions", type=int, default=10, help="parallel SMTP sessions")
    parser.add_argument("--sink-messages", type=int, default=2000)
    parser.add_argument("--sink-size", type=int, default=100_000)
    parser.add_argument("--skip-pipe", action="store_true")
    parser.add_argument(
        "--pairs", type=int, default=0, metavar="N", help="only N do-nothing/proxy pairs"
    )
    parser.add_argument(
        "--sink-rounds", type=int, default=0, metavar="N", help="only N smtp-sink/--sink rounds"
    )
    args = parser.parse_args(argv)
    WORKDIR.mkdir(parents=True, exist_ok=True)
    _traversable(WORKDIR / "x")
    if os.geteuid() != 0 or not Path(SMTP_SOURCE).exists():
        print("needs root and Debian's postfix package (smtp-source, smtp-sink)")
        return 2
    if args.pairs or args.sink_rounds:
        if args.pairs:
            pairs(args.pairs, args.messages, args.size, args.sessions)
        if args.sink_rounds:
            sink_rounds(args.sink_rounds, args.sink_messages, args.sink_size, args.sessions)
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
            "postfix-archiver pipe filter", args.messages, args.size, args.sessions, pipe
        )
    print()
    print(f"  proxy / do-nothing filter: {rates['proxy'] / rates['loop']:.2f}  (target >= 0.8)")
    print(f"  proxy / no filter:         {rates['proxy'] / rates['none']:.2f}")
    if "pipe" in rates:
        print(f"  pipe / do-nothing filter:  {rates['pipe'] / rates['loop']:.2f}")
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
