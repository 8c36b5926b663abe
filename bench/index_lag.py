"""Index lag under a burst: how long Postfix waits versus how long the index takes to catch up.

A real ``postfix-archiver serve --sink`` process (the sink mode: no reinjection, so the
figures are the archiver's own) takes a burst of N messages over S concurrent SMTP sessions.
The clock starts at the first connection; printed per run:

- answered: when the last ``250`` came back (what Postfix waits for: blob + catalog row);
- indexed: when the index queue was empty again (read from the catalog every 20 ms);
- lag: indexed - answered, and messages/s answered and indexed.

Two runs: plain text messages, and the same with an extractable attachment each (text/plain,
distinct per message so the extraction cache does not help).

Then the same two bursts through a real Postfix (Debian's package, a private instance) with
the archiver as its after-queue content filter (``serve``, the SMTP proxy, which reinjects
into Postfix's second smtpd, which delivers to Postfix's ``smtp-sink``): "answered" is then
when Postfix's queue was empty again, every message archived, reinjected and delivered.
Needs root (``--no-postfix`` skips these runs).

    .venv/bin/python bench/index_lag.py [--messages N] [--sessions S] [--attachment-kb K]
"""

from __future__ import annotations

import argparse
import random
import smtplib
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
sys.path.insert(0, str(HERE.parent))

from archiver_process import Archiver  # noqa: E402
from bench.postfix_throughput import Sink  # noqa: E402
from postfix_harness import PostfixInstance  # noqa: E402

WORDS = [f"w{n}" for n in range(3000)] + ["invoice", "report", "meeting", "budget", "contract"]


def message(n: int, attachment_kb: int) -> bytes:
    rng = random.Random(n)
    body = "\n".join(" ".join(rng.choices(WORDS, k=12)) for _ in range(20))
    head = (
        f"From: sender{n % 50}@example.com\r\nTo: rcpt{n % 70}@example.org\r\n"
        f"Subject: burst {n} {' '.join(rng.choices(WORDS, k=4))}\r\n"
        f"Message-ID: <burst.{n}@example.com>\r\nMIME-Version: 1.0\r\n"
    )
    if not attachment_kb:
        return (head + "\r\n" + body.replace("\n", "\r\n") + "\r\n").encode()
    words = " ".join(rng.choices(WORDS, k=attachment_kb * 1024 // 6))
    notes = "\r\n".join(words[i : i + 76] for i in range(0, len(words), 76))
    return (
        f'{head}Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
        f"Content-Type: text/plain\r\n\r\n{body}\r\n--B\r\n"
        f'Content-Type: text/plain; name="notes{n}.txt"\r\n'
        f'Content-Disposition: attachment; filename="notes{n}.txt"\r\n\r\n'
        f"{notes}\r\n--B--\r\n"
    ).encode()


def queued(catalog: Path) -> int:
    conn = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT count(*) FROM index_queue").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return -1
    finally:
        conn.close()


def burst(port: int, messages: list[bytes], sessions: int) -> None:
    def send(chunk: list[bytes]) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            for raw in chunk:
                smtp.sendmail("sender@example.com", ["rcpt@example.org"], raw)

    threads = [
        threading.Thread(target=send, args=(messages[i::sessions],)) for i in range(sessions)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def timed_burst(archiver: Archiver, send: Callable[[], None], n: int) -> dict[str, float]:
    """Starts ``archiver``, times ``send`` (the burst, until what Postfix waits for is done)
    and the index's catch-up after it, and checks that all ``n`` messages are found."""
    archiver.start()
    catalog = archiver.home / "catalog.sqlite"
    try:
        started = time.monotonic()
        send()
        answered = time.monotonic() - started
        while queued(catalog) != 0:
            time.sleep(0.02)
        indexed = time.monotonic() - started
    finally:
        archiver.stop()
    found = archiver.search("burst", limit=n + 1)["total"]
    assert found == n, f"{found} of {n} messages searchable"
    return {"answered": answered, "indexed": indexed}


def run(base: Path, n: int, sessions: int, attachment_kb: int) -> dict[str, float]:
    archiver = Archiver(base, sink=True)
    messages = [message(i, attachment_kb) for i in range(n)]
    return timed_burst(archiver, lambda: burst(archiver.listen_port, messages, sessions), n)


def run_proxy(base: Path, n: int, sessions: int, attachment_kb: int) -> dict[str, float]:
    messages = [message(i, attachment_kb) for i in range(n)]
    base.chmod(0o755)
    with Sink() as sink, PostfixInstance(sink.port, retry_delay=60) as postfix:
        archiver = Archiver(base)
        archiver.configure_postfix(postfix, "--mode", "proxy")

        def send() -> None:
            burst(postfix.smtpd_port, messages, sessions)
            postfix.wait_queue_empty(timeout=1800)

        return timed_burst(archiver, send, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--attachment-kb", type=int, default=20)
    parser.add_argument("--no-postfix", action="store_true", help="skip the runs through Postfix")
    args = parser.parse_args()
    print(f"{args.messages} messages over {args.sessions} SMTP sessions")
    print(f"{'run':<48}{'answered s':>11}{'indexed s':>11}{'lag s':>8}{'ans/s':>9}{'idx/s':>9}")
    kinds = (("text only", 0), (f"+ {args.attachment_kb} KB text attachment", args.attachment_kb))
    ways = [("serve --sink", run)]
    if not args.no_postfix:
        ways.append(("Postfix + serve (proxy)", run_proxy))
    for way, runner in ways:
        for label, kb in kinds:
            (HERE / "out").mkdir(exist_ok=True)
            with tempfile.TemporaryDirectory(dir=HERE / "out") as tmp:
                r = runner(Path(tmp), args.messages, args.sessions, kb)
            lag = r["indexed"] - r["answered"]
            name = f"{way}, {label}"
            print(
                f"{name:<48}{r['answered']:>11.2f}{r['indexed']:>11.2f}{lag:>8.2f}"
                f"{args.messages / r['answered']:>9.0f}{args.messages / r['indexed']:>9.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
