"""``serve --sink --processes 2``: a supervisor and two real listening processes on one port.

What must hold however many processes archive: every message answered 250 is archived
exactly once, the chain of events is one chain that ``verify`` accepts, the same bytes
arriving in both processes at the same moment are stored once, SIGTERM stops every process,
and a process that dies is started again (a supervisor that dies takes its children along).
"""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import threading
import time
from pathlib import Path

import pytest
from archiver_process import Archiver, until

pytestmark = [pytest.mark.integration]


def mail(n: int, body: str | None = None) -> bytes:
    text = body if body is not None else f"message {n}\r\n" + "x" * 2000
    return (
        f"From: a@example.com\r\nTo: b@example.org\r\nSubject: s{n}\r\n"
        f"Message-ID: <{n}.{body is None}@example.com>\r\n\r\n{text}\r\n"
    ).encode()


def children(arch: Archiver) -> dict[int, int]:
    """Slot -> pid of the processes the supervisor started last, from its log."""
    found: dict[int, int] = {}
    for slot, pid in re.findall(r"started serve process (\d+) of \d+ \(pid (\d+)\)", arch.log()):
        found[int(slot)] = int(pid)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def send_many(port: int, sessions: int, each: int) -> None:
    """``sessions`` clients at once, ``each`` messages one after another per connection."""
    failures: list[BaseException] = []

    def client(s: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
                for i in range(each):
                    n = s * 1000 + i
                    smtp.sendmail("a@example.com", [f"r{n}@example.org"], mail(n))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(s,)) for s in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures


@pytest.fixture
def arch(base: Path) -> Archiver:
    return Archiver(base, sink=True, processes=2)


def test_concurrent_sessions_are_archived_once_in_one_chain(arch: Archiver) -> None:
    arch.start(timeout=120)
    try:
        pids = children(arch)
        assert sorted(pids) == [1, 2]
        send_many(arch.listen_port, sessions=8, each=10)
    finally:
        assert arch.stop() == 0
    arch.assert_each_archived_once(80)
    done = arch.verify()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "80 chain events" in done.stdout
    # both processes archived: the answers in the log come from two process ids
    archivers = set(re.findall(r"smtp\[(\d+)\] INFO [^:]*: archived", arch.log()))
    assert archivers == {str(p) for p in pids.values()}


class HeldClient:
    """A session that has sent everything but the final dot."""

    def __init__(self, port: int, n: int, content: bytes) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.file = self.sock.makefile("rb")
        self._reply()
        for line in ("EHLO test", "MAIL FROM:<a@example.com>", f"RCPT TO:<r{n}@example.org>"):
            self.sock.sendall(line.encode() + b"\r\n")
            self._reply()
        self.sock.sendall(b"DATA\r\n")
        assert self._reply().startswith("354")
        self.sock.sendall(content)

    def _reply(self) -> str:
        while True:
            line = self.file.readline().decode()
            if line[3:4] != "-":
                return line

    def owner(self, pids: list[int]) -> int | None:
        """The serving process holding the other end of this connection."""
        here = self.sock.getsockname()[1]
        there = self.sock.getpeername()[1]
        inode = None
        for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = row.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == there and int(remote.split(":")[1], 16) == here:
                inode = fields[9]
        for pid in pids:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    if os.readlink(fd) == f"socket:[{inode}]":
                        return pid
                except OSError:
                    continue
        return None

    def finish(self) -> str:
        self.sock.sendall(b".\r\n")
        reply = self._reply()
        self.sock.sendall(b"QUIT\r\n")
        self.sock.close()
        return reply


def test_the_same_bytes_in_both_processes_at_once_are_stored_once(arch: Archiver) -> None:
    arch.start(timeout=120)
    content = mail(1, "the same bytes\r\n" + "y" * 5000) + b"\r\n"
    try:
        pids = list(children(arch).values())
        held: list[HeldClient] = []
        owners: set[int | None] = set()
        # the kernel gives each connection to whichever process accepts first
        while len(held) < 40 and not {*pids} <= owners:
            client = HeldClient(arch.listen_port, len(held), content)
            held.append(client)
            time.sleep(0.05)
            owners.add(client.owner(pids))
        assert set(pids) <= owners, "no connection reached one of the processes"
        replies: list[str] = []
        threads = [threading.Thread(target=lambda c=c: replies.append(c.finish())) for c in held]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        assert arch.stop() == 0
    assert len(replies) == len(held)
    assert all(r.startswith("250") for r in replies), replies
    stats = arch.stats()
    assert (stats["messages"], stats["envelopes"]) == (1, len(held))
    done = arch.verify()
    assert done.returncode == 0, done.stdout + done.stderr


def test_sigterm_stops_every_process(arch: Archiver) -> None:
    arch.start(timeout=120)
    pids = list(children(arch).values())
    assert len(pids) == 2
    assert all(alive(p) for p in pids)
    assert arch.stop() == 0
    assert not any(alive(p) for p in pids)


def test_a_killed_process_is_started_again(arch: Archiver) -> None:
    arch.start(timeout=120)
    try:
        first = children(arch)
        os.kill(first[2], signal.SIGKILL)
        until(lambda: children(arch).get(2, first[2]) != first[2], 30, "a new process 2")
        until(lambda: arch.log().count(" (sink)\n") >= 3, 120, "it to listen")
        assert "serve process 2 died (signal 9): starting it again" in arch.log()
        assert arch.proc is not None
        assert arch.proc.poll() is None
        send_many(arch.listen_port, sessions=4, each=5)
    finally:
        assert arch.stop() == 0
    arch.assert_each_archived_once(20)


def test_the_processes_stop_when_their_supervisor_is_killed(arch: Archiver) -> None:
    arch.start(timeout=120)
    pids = list(children(arch).values())
    arch.kill()
    until(lambda: not any(alive(p) for p in pids), 60, "the orphaned processes to stop")
    assert "the supervising serve process is gone: stopping" in arch.log()
