"""What the SMTP proxy answers Postfix when something goes wrong, how fast, and what it logs.

A client playing Postfix's ``smtp`` (``smtplib``, with XFORWARD, SIZE and BODY=8BITMIME as
Postfix sends them) talks to the real ``postfix-archiver serve``, one process per fault with
its own config and data directory in a temporary directory. The reinjection listener is a
real private Postfix (``tests/integration/postfix_harness.py``) relaying to ``smtp-sink``,
with ``smtpd_timeout = 2s`` so that it hangs up on idle pooled connections the way a busy
Postfix does (10 s under stress), and it authorises XFORWARD from 127.0.0.1 as the README's
master.cf line does. Faults:

1. a normal message (the baseline);
2. nothing listening on the reinjection port;
3. the reinjection smtpd closed the pooled connection (421 after ``smtpd_timeout``): one
   message, Postfix's timeout, then the one measured;
4. the archive's disk is full (a full 8 MB tmpfs as the archive home), then space freed;
5. ``catalog.sqlite`` locked by another process (``BEGIN IMMEDIATE``) with
   ``answer_timeout = "5s"``, then the lock released and the message retried;
6. a 2 MB message against ``max_message_size = 1 MB``, SIZE declared (as Postfix does) and not;
7. hostile headers: a Date in the year 9999 at -1200, an 8-bit Subject, a NUL byte;
8. ``kill -9`` of the archiver in the middle of DATA, then a restarted archiver and the retry.

The time is from the end of DATA (the final dot sent) to the reply; for a refusal at MAIL
FROM, from MAIL FROM; for the kill, from the kill to the client seeing the connection drop.
The log column is the archiver's own log line (stderr) for the transaction, at the default
level unless said otherwise. Prints progress to stderr and one markdown table to stdout; exits
1 if an outcome differs from the promise in the README.

Needs root (tmpfs, Postfix) and Debian's postfix package. Run::

    .venv/bin/python bench/failure_modes.py
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

from archiver_process import archiver_cmd  # noqa: E402
from postfix_harness import PostfixInstance, SmtpSink, free_port  # noqa: E402

SMTPD_TIMEOUT = 2  # seconds, the reinjection smtpd's idle limit
ANSWER_TIMEOUT = 5.0  # seconds, [smtp] answer_timeout for the locked catalog
MAX_SIZE = 1024 * 1024  # [smtp] max_message_size for the big message
SENDER = "alice@example.com"
RECIPIENTS = ("bob@example.org",)
CLIENT_TIMEOUT = 60.0

START = time.monotonic()


def progress(text: str) -> None:
    print(f"[{time.monotonic() - START:5.1f}s] {text}", file=sys.stderr, flush=True)


# -- the archiver -----------------------------------------------------------------------------


class Serve:
    """``postfix-archiver serve --config F`` in a process; its log (stderr) in a file."""

    def __init__(self, base: Path, name: str, reinject_port: int, extra: str = "") -> None:
        self.dir = base / name
        self.dir.mkdir()
        self.home = self.dir / "archive"
        self.home.mkdir()
        self.port = free_port()
        self.config = self.dir / "archiver.toml"
        self.config.write_text(
            f'[archive]\nhome = "{self.home}"\n\n'
            f'[smtp]\nlisten = "127.0.0.1:{self.port}"\n'
            f'reinject = "127.0.0.1:{reinject_port}"\n{extra}'
        )
        self.log_path = self.dir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
        env["POSTFIX_ARCHIVER_CONFIG"] = str(self.config)
        return env

    def start(self, *, verbose: bool = False) -> Serve:
        mark = self.mark()
        self._log = self.log_path.open("ab")
        argv = [archiver_cmd(), "serve", "--config", str(self.config)]
        self.proc = subprocess.Popen(
            [*argv, *(["-v"] if verbose else [])],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env=self.env,
        )
        deadline = time.monotonic() + 30
        while not any("listening on" in line for line in self.lines_since(mark)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"serve did not start:\n{self.log_text()[-2000:]}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def mark(self) -> int:
        return len(self.log_text().splitlines())

    def lines_since(self, mark: int) -> list[str]:
        return self.log_text().splitlines()[mark:]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [archiver_cmd(), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def search(self, query: str = "") -> dict[str, Any]:
        """Once serve's indexer has caught up (it indexes after the answer), up to 10 s."""
        deadline = time.monotonic() + 10
        while True:
            done = self.cli("search", "--json", "--limit", "1000", *([query] if query else []))
            if done.returncode != 0:
                raise RuntimeError(f"search --json exited {done.returncode}: {done.stderr.strip()}")
            result: dict[str, Any] = json.loads(done.stdout)
            if not result.get("not_indexed") or time.monotonic() > deadline:
                return result
            time.sleep(0.2)

    def envelopes(self, ident: int) -> int:
        done = self.cli("show", str(ident), "--json")
        if done.returncode != 0:
            raise RuntimeError(f"show --json exited {done.returncode}: {done.stderr.strip()}")
        return len(json.loads(done.stdout)["envelopes"])


@contextlib.contextmanager
def running(serve: Serve, *, verbose: bool = False) -> Iterator[Serve]:
    try:
        yield serve.start(verbose=verbose)
    finally:
        serve.stop()


# -- the client, playing Postfix's smtp(8) ----------------------------------------------------


def message(
    subject: str,
    *,
    size: int = 0,
    date: str = "Tue, 24 Nov 2026 10:00:00 +0000",
    extra: bytes = b"",
    subject_bytes: bytes | None = None,
) -> bytes:
    """A CR LF message with a unique Message-ID; padded with body lines to ``size`` bytes."""
    msgid = f"<{re.sub(r'[^a-z0-9]+', '-', subject.lower())}.{os.getpid()}@example.com>"
    head = (
        b"Received: from client.example.net (client.example.net [192.0.2.7])\r\n"
        b"\tby mx.example.com (Postfix) with ESMTP; Tue, 24 Nov 2026 10:00:00 +0000\r\n"
        b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\n"
        + b"Subject: "
        + (subject_bytes if subject_bytes is not None else subject.encode())
        + b"\r\n"
        + f"Date: {date}\r\nMessage-ID: {msgid}\r\n".encode()
        + extra
        + b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    body = f"Body of {subject}.\r\n".encode()
    line = b"x" * 76 + b"\r\n"
    return head + body + line * max(0, (size - len(head) - len(body)) // len(line))


def stuffed(content: bytes) -> bytes:
    content = b"." + content if content.startswith(b".") else content
    content = content.replace(b"\r\n.", b"\r\n..")
    return content if content.endswith(b"\r\n") else content + b"\r\n"


def reply(code: int, text: bytes) -> str:
    return f"{code} {text.decode(errors='replace')}"


@dataclass
class Answer:
    code: int  # 0: no reply (the connection dropped)
    text: str
    seconds: float
    stage: str = "DATA"  # which command the reply answered


class Client:
    """One SMTP session with the proxy; the envelope as Postfix's smtp client sends it."""

    def __init__(self, port: int) -> None:
        self.smtp = smtplib.SMTP(
            "127.0.0.1", port, local_hostname="mx.example.com", timeout=CLIENT_TIMEOUT
        )
        self.smtp.ehlo()

    def close(self) -> None:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            self.smtp.quit()
        self.smtp.close()

    def envelope(self, content: bytes, ident: str, *, declare_size: bool = True) -> Answer | None:
        """XFORWARD, MAIL, RCPT; an Answer if one of them was refused, else None."""
        if self.smtp.has_extn("xforward"):
            for attrs in (
                "NAME=client.example.net ADDR=192.0.2.7 PORT=49152 PROTO=ESMTP",
                f"HELO=client.example.net IDENT={ident} SOURCE=REMOTE",
            ):
                code, text = self.smtp.docmd("XFORWARD", attrs)
                if code != 250:
                    return Answer(code, reply(code, text), 0.0, "XFORWARD")
        options = ["BODY=8BITMIME"] + ([f"SIZE={len(content)}"] if declare_size else [])
        start = time.perf_counter()
        code, text = self.smtp.mail(SENDER, options)
        if code != 250:
            took = time.perf_counter() - start
            return Answer(code, reply(code, text), took, "MAIL FROM")
        for rcpt in RECIPIENTS:
            code, text = self.smtp.rcpt(rcpt)
            if code not in (250, 251):
                return Answer(code, reply(code, text), 0.0, "RCPT TO")
        code, text = self.smtp.docmd("DATA")
        if code != 354:
            return Answer(code, reply(code, text), 0.0, "DATA")
        return None

    def finish_data(self, rest: bytes) -> Answer:
        """Send the rest of the data and the final dot; time the reply from there."""
        try:
            self.smtp.send(rest + b".\r\n")
            start = time.perf_counter()
            code, text = self.smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            return Answer(0, f"{type(exc).__name__}: {exc}", 0.0)
        return Answer(code, reply(code, text), time.perf_counter() - start)


def send(port: int, content: bytes, ident: str, *, declare_size: bool = True) -> Answer:
    client = Client(port)
    try:
        refused = client.envelope(content, ident, declare_size=declare_size)
        return refused if refused is not None else client.finish_data(stuffed(content))
    finally:
        client.close()


# -- the table --------------------------------------------------------------------------------


@dataclass
class Row:
    fault: str
    answer: Answer
    log: str
    expect: str  # "250", "451", "5xx" or "drop"
    note: str = ""

    @property
    def outcome(self) -> str:
        code = self.answer.code
        if code == 0:
            return f"connection dropped, no reply (`{shorten(self.answer.text, 60)}`)"
        kind = {2: "accepted", 4: "deferred", 5: "refused"}.get(code // 100, "?")
        return f"{kind} `{shorten(self.answer.text, 70)}`"

    @property
    def as_expected(self) -> bool:
        code = self.answer.code
        return {
            "250": code == 250,
            "451": code == 451,
            "5xx": 500 <= code < 600,
            "drop": code == 0,
        }[self.expect]


def shorten(text: str, width: int) -> str:
    """One line of at most ``width`` characters; the middle goes, since a log line's end
    (the hint naming the fix) matters as much as its start."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    head = width * 3 // 5
    return text[:head].rstrip() + " … " + text[len(text) - (width - head - 3) :].lstrip()


LOG_PREFIX = re.compile(r"^\S+ [\d:,]+ \S+\[\d+\] (\w+) ")


def log_line(
    lines: Sequence[str], pattern: str, homes: Sequence[Path] = (), width: int = 230
) -> str:
    """The first log line matching ``pattern``, without time and pid, paths shortened."""
    regex = re.compile(pattern)
    found = [ln for ln in lines if regex.search(ln)]
    if not found:
        return "(nothing logged)"
    line = LOG_PREFIX.sub(r"\1 ", found[0])
    for home in homes:
        line = line.replace(str(home), "HOME")
    return shorten(line, width)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def print_table(rows: Sequence[Row]) -> None:
    print(
        "| fault | what happens to the mail | time to answer | what the operator sees in the log |"
    )
    print("|---|---|---|---|")
    for row in rows:
        seconds = row.answer.seconds
        when = f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
        if row.answer.stage != "DATA":
            when += f" (at {row.answer.stage})"
        outcome = row.outcome + (f"; {row.note}" if row.note else "")
        if not row.as_expected:
            outcome += f" **(expected {row.expect})**"
        print(f"| {cell(row.fault)} | {cell(outcome)} | {when} | {cell(row.log)} |")


# -- the faults -------------------------------------------------------------------------------


@dataclass
class World:
    base: Path
    postfix: PostfixInstance
    sink: SmtpSink
    stack: contextlib.ExitStack

    def serve(self, name: str, extra: str = "", *, reinject_port: int | None = None) -> Serve:
        port = self.postfix.smtpd_port if reinject_port is None else reinject_port
        return Serve(self.base, name, port, extra)

    def delivered(self, content: bytes) -> int:
        """How many times the sink got this message (by Message-ID)."""
        msgid = re.search(rb"^Message-ID: (\S+)", content, re.M)
        assert msgid
        return sum(msgid.group(1) in d.content for d in self.sink.deliveries())

    def wait_delivered(self, content: bytes, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while not self.delivered(content) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)  # a second copy, if there were one, would come right behind
        return self.delivered(content)


ARCHIVED = r"archived id=|reinjected:"
FAILED = r"ERROR|WARNING"


def baseline(w: World) -> list[Row]:
    content = message("baseline")
    with running(w.serve("baseline")) as serve:
        send(serve.port, message("warm-up"), "4WARMUP01")  # first connection, imports
        mark = serve.mark()
        answer = send(serve.port, content, "4BASE0001")
        log = log_line(serve.lines_since(mark), ARCHIVED)
    copies = w.wait_delivered(content)
    return [Row("1. normal message", answer, log, "250", f"delivered {copies}×")]


def listener_down(w: World) -> list[Row]:
    with running(w.serve("down", reinject_port=free_port())) as serve:
        mark = serve.mark()
        answer = send(serve.port, message("listener down"), "4DOWN0001")
        log = log_line(serve.lines_since(mark), FAILED, [serve.home])
    return [Row("2. reinjection listener down (nothing on the port)", answer, log, "451")]


def listener_idle_closed(w: World) -> list[Row]:
    # -v: the replacement of the stale connection is logged at debug level only
    with running(w.serve("idle"), verbose=True) as serve:
        start = len(w.postfix.log_lines())
        first = message("before the idle spell")
        before = serve.mark()
        send(serve.port, first, "4IDLE0001")
        w.postfix.wait_for_log(r"smtpd\[\d+\]: timeout after", SMTPD_TIMEOUT + 10, start=start)
        content = message("after the idle spell")
        mark = serve.mark()
        answer = send(serve.port, content, "4IDLE0002")
        info = log_line(serve.lines_since(mark), ARCHIVED, width=70)
        # the pool notices the 421 while the connection waits, before the next message
        debug = log_line(serve.lines_since(before), r"stale|closed an idle", width=110)
    copies = w.wait_delivered(content)
    return [
        Row(
            f"3. reinjection smtpd closed the pooled connection (real Postfix smtpd, "
            f"smtpd_timeout={SMTPD_TIMEOUT}s; 421 timeout seen in its log), next message",
            answer,
            f"nothing about it, only the usual {info}; with -v: {debug}",
            "250",
            f"delivered {copies}×",
        )
    ]


def fill(disk: Path) -> None:
    with (disk / "filler").open("wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    # the bytes left in part-filled blocks
    for i in range(1000):
        try:
            (disk / f"filler{i}").write_bytes(b"x" * 512)
        except OSError:
            break


def disk_full(w: World) -> list[Row]:
    serve = w.serve("diskfull")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(serve.home)], check=True)
    w.stack.callback(subprocess.run, ["umount", "-l", str(serve.home)], check=False)
    rows = []
    with running(serve):
        send(serve.port, message("disk-full warm-up"), "4DISK0000")  # catalog and pack exist
        fill(serve.home)
        progress(f"  tmpfs filled: {os.statvfs(serve.home).f_bavail} blocks free")
        content = message("disk full", size=20_000)
        mark = serve.mark()
        answer = send(serve.port, content, "4DISK0001")
        log = log_line(serve.lines_since(mark), FAILED, [serve.home])
        rows.append(Row("4. archive disk full (8 MB tmpfs filled)", answer, log, "451"))
        for filler in serve.home.glob("filler*"):
            filler.unlink()
        mark = serve.mark()
        answer = send(serve.port, content, "4DISK0001")
        log = log_line(serve.lines_since(mark), ARCHIVED + "|" + FAILED, [serve.home])
        copies = w.wait_delivered(content)
        rows.append(
            Row(
                "4b. space freed, Postfix's retry (same process)",
                answer,
                log,
                "250",
                f"delivered {copies}×",
            )
        )
    return rows


def catalog_locked(w: World) -> list[Row]:
    serve = w.serve("locked", f'answer_timeout = "{ANSWER_TIMEOUT:g}s"\n')
    rows = []
    with running(serve):
        send(serve.port, message("locked warm-up"), "4LOCK0000")
        content = message("catalog locked")
        lock = sqlite3.connect(serve.home / "catalog.sqlite", isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            mark = serve.mark()
            answer = send(serve.port, content, "4LOCK0001")
            log = log_line(serve.lines_since(mark), FAILED, [serve.home])
            lock.execute("ROLLBACK")
        finally:
            lock.close()
        rows.append(
            Row(
                "5. catalog.sqlite locked (BEGIN IMMEDIATE in another process), "
                f'answer_timeout = "{ANSWER_TIMEOUT:g}s"',
                answer,
                log,
                "451",
                f"bound {ANSWER_TIMEOUT:g} s",
            )
        )
        mark = serve.mark()
        answer = send(serve.port, content, "4LOCK0001")
        log = log_line(serve.lines_since(mark), ARCHIVED + "|" + FAILED, [serve.home])
        copies = w.wait_delivered(content)
        found = serve.search('subject:"catalog locked"')["total"]
        rows.append(
            Row(
                "5b. lock released, Postfix's retry",
                answer,
                log,
                "250",
                f"archived {found}×, delivered {copies}×",
            )
        )
    return rows


def too_big(w: World) -> list[Row]:
    serve = w.serve("big", f"max_message_size = {MAX_SIZE}\n")
    rows = []
    content = message("too big", size=2 * MAX_SIZE)
    mb = f"{len(content) / MAX_SIZE:.1f} MB"
    with running(serve):
        for declared in (True, False):
            mark = serve.mark()
            answer = send(serve.port, content, "4BIG00001", declare_size=declared)
            log = log_line(serve.lines_since(mark), r".", [serve.home])
            how = "SIZE declared at MAIL FROM, as Postfix does" if declared else "no SIZE"
            rows.append(
                Row(
                    f"6{'' if declared else 'b'}. {mb} message, max_message_size = 1 MB ({how})",
                    answer,
                    log,
                    "5xx",
                    "Postfix bounces it",
                )
            )
    return rows


def hostile_headers(w: World) -> list[Row]:
    subject = "Gr\u00fc\u00dfe \u65e5\u672c".encode() + b" caf\xe9 latin-1"
    content = message(
        "hostile headers",
        date="Fri, 31 Dec 9999 23:59:59 -1200",
        subject_bytes=subject,
        extra=b"X-Nul: before\x00after\r\n",
    )
    with running(w.serve("hostile")) as serve:
        mark = serve.mark()
        answer = send(serve.port, content, "4HOST0001")
        log = log_line(serve.lines_since(mark), ARCHIVED + "|" + FAILED, [serve.home])
        try:
            page = serve.search()
            hits = [r for r in page["results"] if "hostile-headers" in (r["message_id"] or "")]
            note = (
                f"`search --json` works: {len(hits)} hit, date {hits[0]['date']!r}"
                if hits
                else f"`search --json` works but does not list it ({page['total']} results)"
            )
        except (RuntimeError, ValueError) as exc:
            note = f"`search --json` FAILS: {shorten(str(exc), 100)}"
    copies = w.wait_delivered(content)
    return [
        Row(
            "7. hostile headers (Date: Fri, 31 Dec 9999 23:59:59 -1200; 8-bit Subject, "
            "UTF-8 and Latin-1; a NUL byte in a header)",
            answer,
            log,
            "250",
            f"{note}; delivered {copies}×",
        )
    ]


def killed_in_data(w: World) -> list[Row]:
    serve = w.serve("killed")
    content = message("killed in data", size=400_000)
    data = stuffed(content)
    rows = []
    with running(serve):
        client = Client(serve.port)
        try:
            refused = client.envelope(content, "4KILL0001")
            if refused is not None:
                raise RuntimeError(f"the kill case's envelope was refused: {refused.text}")
            client.smtp.send(data[: len(data) // 2])
            time.sleep(0.3)  # the archiver has read the first half
            mark = serve.mark()
            killed = time.perf_counter()
            serve.kill9()
            answer = client.finish_data(data[len(data) // 2 :])
            answer.seconds = time.perf_counter() - killed
            answer.stage = "kill"
        finally:
            client.close()
        log = log_line(serve.lines_since(mark), r".", [serve.home])
    rows.append(
        Row(
            "8. kill -9 of the archiver in the middle of DATA",
            answer,
            log if log != "(nothing logged)" else "(nothing: the process is gone)",
            "drop",
            "Postfix defers it (lost connection) and retries",
        )
    )
    with running(serve):
        mark = serve.mark()
        answer = send(serve.port, content, "4KILL0001")
        log = log_line(serve.lines_since(mark), ARCHIVED + "|" + FAILED, [serve.home])
        page = serve.search('subject:"killed in data"')
        envelopes = [serve.envelopes(r["id"]) for r in page["results"]]
    copies = w.wait_delivered(content)
    rows.append(
        Row(
            "8b. archiver restarted, Postfix's retry",
            answer,
            log,
            "250",
            f"archived {page['total']}× with {sum(envelopes)} envelope(s), delivered {copies}×",
        )
    )
    return rows


FAULTS: list[tuple[str, Callable[[World], list[Row]]]] = [
    ("normal message", baseline),
    ("reinjection listener down", listener_down),
    ("reinjection smtpd closed the pooled connection", listener_idle_closed),
    ("disk full", disk_full),
    ("catalog locked", catalog_locked),
    ("message too big", too_big),
    ("hostile headers", hostile_headers),
    ("kill -9 in DATA", killed_in_data),
]


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so that the finally blocks unmount and clean up


def main() -> int:
    if os.geteuid() != 0 or not Path("/usr/sbin/smtp-sink").exists():
        print("needs root and Debian's postfix package (postfix, smtp-sink)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        base = Path(tempfile.mkdtemp(prefix="pa-failure-modes-"))
        stack.callback(shutil.rmtree, base, ignore_errors=True)
        progress("starting a private Postfix as the reinjection listener")
        sink = stack.enter_context(SmtpSink())
        postfix = stack.enter_context(
            PostfixInstance(
                sink,
                main_cf={
                    "smtpd_timeout": f"{SMTPD_TIMEOUT}s",
                    "smtpd_authorized_xforward_hosts": "127.0.0.0/8",
                },
            )
        )
        world = World(base, postfix, sink, stack)
        for name, fault in FAULTS:
            progress(name)
            # mounts are undone as soon as their fault is over, failure or not
            with contextlib.ExitStack() as own:
                world.stack = own
                new = fault(world)
            rows += new
            for row in new:
                progress(f"  {row.fault[:50]}: {row.outcome[:60]} in {row.answer.seconds:.3f} s")
    print_table(rows)
    wrong = [r.fault for r in rows if not r.as_expected]
    if wrong:
        progress(f"not as the README promises: {', '.join(wrong)}")
        return 1
    progress("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
