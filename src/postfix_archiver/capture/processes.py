"""``serve`` in several processes: one listening socket, a supervisor, N children.

One Python process uses one core, and the sink's work per message is mostly the event loop
and the committer, both of which need the GIL. So with ``[smtp] processes = N`` the
``serve`` process binds the socket, then becomes a supervisor that archives nothing: it
starts N children (``serve --worker``), each a whole proxy or sink with its own sessions and
its own committer (group commit per process), all accepting on that one inherited socket.

Why one inherited socket rather than a socket per child with ``SO_REUSEPORT``: the address
is bound once, so a busy port fails the start once and plainly; the kernel hands each
connection to whichever child asks first, so the child that also runs the indexer takes
fewer; and a child that dies leaves nothing queued on a socket of its own (the kernel
resets the connections waiting on a ``SO_REUSEPORT`` socket when it closes).

What the children share is made safe where it lives: every catalog write is one
``BEGIN IMMEDIATE`` transaction that reads the chain's head inside it (one chain however
many writers), a message's row is looked up by its SHA-256 in that same transaction (the
same bytes from two children at once are stored once), and the blob pack is a SQLite file
each writer waits its turn on. What must run once runs in the first child only (the
``primary``): the background indexer and the checkpointer.

The supervisor forwards SIGHUP (each child re-reads its rules) and SIGTERM/SIGINT (each
finishes what it has in flight), tells systemd READY=1 once every child accepts, and
restarts a child that dies; one that cannot start, or children dying more than
``RESTARTS`` times within ``RESTART_WINDOW`` seconds, stop the whole ``serve`` with exit
code 1 rather than leave it at part of its capacity unnoticed. A child whose supervisor is
gone (killed) stops as on SIGTERM: it watches a pipe only the supervisor holds open.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import sd_notify

log = logging.getLogger("postfix_archiver.smtp")

RESTARTS = 5
RESTART_WINDOW = 60.0
READY = b"1"


@dataclass(frozen=True)
class Worker:
    """What a child is handed, as ``serve --worker LISTEN,READY,PARENT,PRIMARY``: the
    listening socket's descriptor, a pipe to say it accepts, a pipe that ends when the
    supervisor does, and whether it runs the once-only threads."""

    listen_fd: int
    ready_fd: int
    parent_fd: int
    primary: bool

    def spec(self) -> str:
        return f"{self.listen_fd},{self.ready_fd},{self.parent_fd},{int(self.primary)}"

    @classmethod
    def parse(cls, text: str) -> Worker:
        fields = text.split(",")
        if len(fields) != 4 or not all(f.isascii() and f.isdigit() and len(f) < 8 for f in fields):
            raise ValueError(f"--worker takes LISTEN,READY,PARENT,PRIMARY, not {text[:60]!r}")
        listen, ready, parent, primary = (int(f) for f in fields)
        if primary not in (0, 1) or min(listen, ready, parent) < 3:
            raise ValueError(f"--worker takes LISTEN,READY,PARENT,PRIMARY, not {text[:60]!r}")
        return cls(listen, ready, parent, bool(primary))


def bind(host: str, port: int, backlog: int = 128) -> socket.socket:
    """The listening socket the children share (``OSError`` if the address is taken)."""
    family, kind, proto, _name, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass
class _Child:
    slot: int
    proc: subprocess.Popen[bytes]
    ready_fd: int  # our end of its ready pipe; -1 once read
    ready: bool = False


class Supervisor:
    """Runs ``count`` children on ``sock`` until SIGTERM/SIGINT (see the module's
    docstring); ``argv(worker)`` is a child's command line."""

    def __init__(
        self,
        sock: socket.socket,
        count: int,
        argv: Callable[[Worker], Sequence[str]],
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        self.sock = sock
        self.count = count
        self.argv = argv
        # systemd hears from the supervisor only: a child's READY=1 would come too early
        self.env = dict(os.environ if env is None else env)
        self.env.pop("NOTIFY_SOCKET", None)
        self.children: dict[int, _Child] = {}
        self.deaths: deque[float] = deque()
        self.stopping = False
        self.failed = False
        self.announced = False
        self._parent_r, self._parent_w = os.pipe()

    # -- children ------------------------------------------------------------------------

    def _start(self, slot: int) -> None:
        ready_r, ready_w = os.pipe()
        worker = Worker(self.sock.fileno(), ready_w, self._parent_r, slot == 0)
        try:
            proc = subprocess.Popen(
                list(self.argv(worker)),
                env=self.env,
                pass_fds=(worker.listen_fd, ready_w, self._parent_r),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
        self.children[slot] = _Child(slot, proc, ready_r)
        log.info("started serve process %d of %d (pid %d)", slot + 1, self.count, proc.pid)

    def _signal_all(self, sig: int, *, ready_only: bool = False) -> None:
        for child in self.children.values():
            if ready_only and not child.ready:
                continue  # it reads the config as it starts; SIGHUP would still kill it
            if child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(sig)

    def _read_ready(self, child: _Child) -> None:
        try:
            got = os.read(child.ready_fd, 16)
        except BlockingIOError:
            return
        os.close(child.ready_fd)
        child.ready_fd = -1
        child.ready = got.startswith(READY)

    def _reap(self) -> None:
        for slot, child in list(self.children.items()):
            code = child.proc.poll()
            if code is None:
                continue
            if child.ready_fd >= 0:
                self._read_ready(child)  # it may have said so just before it went
            del self.children[slot]
            if self.stopping:
                # killed by our SIGTERM before it had set up its handlers: it held nothing
                if code != 0 and not (code == -signal.SIGTERM and not child.ready):
                    log.error("serve process %d exited with %s while stopping", slot + 1, code)
                    self.failed = True
                continue
            self._died(slot, child, code)

    def _died(self, slot: int, child: _Child, code: int) -> None:
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        if not child.ready and not self.announced:
            log.error("serve process %d could not start (%s): stopping", slot + 1, how)
            self._stop(failed=True)
            return
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths and self.deaths[0] < now - RESTART_WINDOW:
            self.deaths.popleft()
        if len(self.deaths) > RESTARTS:
            log.error(
                "serve processes died %d times within %gs (the last: %s): stopping, rather "
                "than run short of processes",
                len(self.deaths),
                RESTART_WINDOW,
                how,
            )
            self._stop(failed=True)
            return
        log.error("serve process %d died (%s): starting it again", slot + 1, how)
        self._start(slot)

    def _stop(self, *, failed: bool = False) -> None:
        if not self.stopping:
            sd_notify.stopping()
            log.info("stopping %d serve processes", len(self.children))
        self.stopping = True
        self.failed = self.failed or failed
        self._signal_all(signal.SIGTERM)

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        """Until the children are gone after a stop: 0, or 1 if one failed."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        sigs = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
        old_fd = signal.set_wakeup_fd(wake_w)
        # the numbers arrive through the wake-up pipe; the handlers need only exist
        old = {s: signal.signal(s, lambda *_: None) for s in sigs}
        try:
            for slot in range(self.count):
                self._start(slot)
            while self.children or not self.stopping:
                self._turn(wake_r)
        finally:
            self._stop()
            for child in self.children.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.proc.wait(90)
                if child.proc.poll() is None:
                    child.proc.kill()
            signal.set_wakeup_fd(old_fd)
            for s, handler in old.items():
                signal.signal(s, handler)
            for fd in (wake_r, wake_w, self._parent_r, self._parent_w):
                os.close(fd)
            for child in self.children.values():
                if child.ready_fd >= 0:
                    os.close(child.ready_fd)
        return 1 if self.failed else 0

    def _turn(self, wake_r: int) -> None:
        waiting = {c.ready_fd: c for c in self.children.values() if c.ready_fd >= 0}
        # SIGCHLD wakes us; the timeout only covers a signal lost before the wake-up fd
        readable, _, _ = select.select([wake_r, *waiting], [], [], 1.0)
        for fd in readable:
            if fd in waiting:
                self._read_ready(waiting[fd])
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                for number in os.read(wake_r, 64):
                    if number in (signal.SIGTERM, signal.SIGINT):
                        self._stop()
                    elif number == signal.SIGHUP and not self.stopping:
                        sd_notify.reloading()
                        log.info("reloading the rules of %d serve processes", len(self.children))
                        self._signal_all(signal.SIGHUP, ready_only=True)
                        sd_notify.ready()
        self._reap()
        if not self.announced and not self.stopping and self._all_ready():
            self.announced = True
            host, port = self.sock.getsockname()[:2]
            log.info("%d serve processes listening on %s:%d", self.count, host, port)
            sd_notify.ready(f"{self.count} processes listening on {host}:{port}")

    def _all_ready(self) -> bool:
        children = self.children.values()
        return len(children) == self.count and all(c.ready for c in children)
