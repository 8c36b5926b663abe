"""Worker processes seen from the caller: start, send, wait with a deadline, kill.

A worker is ``python -I -c`` running ``extract.worker`` in a session (and process group) of
its own, so on a timeout one ``killpg`` stops it and whatever it started (pdftotext). Every
way a worker can go wrong (cannot start, dies, answers garbage, runs past the deadline) ends
as an ``Extraction`` with FAILED or TIMEOUT and the worker replaced; nothing raises.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from . import FAILED, TIMEOUT, TOO_BIG, UNSUPPORTED, Extraction, Limits
from .detect import HEAD, kind
from .protocol import (
    ANSWER_HEAD,
    EXIT_OUT_OF_MEMORY,
    REQUEST_HEAD,
    Garbage,
    answer_cap,
    parse_answer,
    request_header,
)

# the package's parent directory, put first on the worker's path: -I leaves out the current
# directory and $PYTHONPATH (nothing there can shadow a module the worker imports)
_ROOT = str(Path(__file__).resolve().parents[2])
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from postfix_archiver.extract.worker import main; main()"
)
_WRITE_CHUNK = 1 << 20
_MAX_LABEL = 2000


class _Lost(Exception):
    """The exchange with the worker failed; ``status`` and ``str()`` say how."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def _child_budget(timeout: float) -> float:
    """The worker's own deadline, a little before the caller's: it can then say TIMEOUT
    with the text it had, rather than being killed."""
    return timeout - min(1.0, timeout / 10)


class Worker:
    """One extraction process, started on first use and reused for the attachments given to
    ``extract`` after each other; replaced after a failure or a timeout, so one bad
    attachment costs the next one only a process start. Not shared between threads."""

    def __init__(self, limits: Limits, command: Sequence[str] | None = None) -> None:
        self.limits = limits
        # the worker's command line: the real worker unless a test gives a stand-in that
        # speaks (or breaks) the same protocol
        self.command = (
            list(command)
            if command is not None
            else [sys.executable, "-I", "-c", _BOOT, _ROOT, str(limits.max_memory)]
        )
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The running worker's process id (its process group's too), if one runs."""
        return self._proc.pid if self._proc is not None else None

    def __enter__(self) -> Worker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def extract(self, data: bytes, content_type: str, filename: str) -> Extraction:
        limits = self.limits
        if len(data) > limits.max_input:
            return Extraction(TOO_BIG, detail=f"larger than max_input ({limits.max_input} bytes)")
        if kind(data[:HEAD], content_type, filename) is None:
            return Extraction(UNSUPPORTED)  # no process for an image
        # from a message's headers: no use past a screenful, and never megabytes in a request
        content_type, filename = content_type[:_MAX_LABEL], filename[:_MAX_LABEL]
        try:
            result = self._exchange(data, content_type, filename)
        except _Lost as lost:
            self.close()
            return Extraction(lost.status, detail=str(lost))
        if result.status == TIMEOUT or (result.status == FAILED and "memory" in result.detail):
            # what went wrong may have left the worker worse off. A reader's plain failure
            # (a damaged file, pdftotext's exit 1) leaves it as it was: replacing it cost a
            # process start each (a quarter second), which made mail with broken PDFs index
            # at a few messages a second
            self.close()
        return result

    def close(self) -> None:
        """Stop the worker and anything it started; idle or busy, it is killed outright."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:  # once waited for, its id may already be another's
            self._kill(proc)
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        # the group of a worker not yet waited for is still ours (its id is not reused
        # while the zombie leader stands), so this cannot hit an unrelated group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            try:
                self._proc = subprocess.Popen(
                    self.command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    cwd="/",
                    start_new_session=True,
                )
            except OSError as exc:
                raise _Lost(FAILED, f"cannot start the extraction process: {exc}") from None
            for stream in (self._proc.stdin, self._proc.stdout):
                assert stream is not None
                os.set_blocking(stream.fileno(), False)
        return self._proc

    def _exchange(self, data: bytes, content_type: str, filename: str) -> Extraction:
        deadline = time.monotonic() + self.limits.timeout
        proc = self._start()
        assert proc.stdin is not None
        assert proc.stdout is not None
        header = request_header(
            content_type, filename, self.limits, _child_budget(self.limits.timeout)
        )
        head = REQUEST_HEAD.pack(len(header), len(data))
        for piece in (head + header, data):
            self._send(proc, proc.stdin.fileno(), memoryview(piece), deadline)
        size = ANSWER_HEAD.unpack(self._receive(proc, ANSWER_HEAD.size, deadline))[0]
        if size > answer_cap(self.limits):
            raise _Lost(FAILED, f"the extraction process answered garbage (a {size}-byte answer)")
        try:
            return parse_answer(self._receive(proc, size, deadline), self.limits)
        except Garbage as exc:
            raise _Lost(FAILED, f"the extraction process answered garbage ({exc})") from None

    def _wait(self, proc: subprocess.Popen[bytes], fd: int, event: int, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        poller = select.poll()
        poller.register(fd, event | select.POLLHUP | select.POLLERR)
        if remaining <= 0 or not poller.poll(remaining * 1000):
            raise _Lost(TIMEOUT, f"took longer than the timeout ({self.limits.timeout:g}s)")

    def _send(
        self, proc: subprocess.Popen[bytes], fd: int, view: memoryview, deadline: float
    ) -> None:
        while view:
            self._wait(proc, fd, select.POLLOUT, deadline)
            try:
                view = view[os.write(fd, view[:_WRITE_CHUNK]) :]
            except BlockingIOError:
                continue
            except OSError:  # a broken pipe: the worker is gone
                raise self._died(proc) from None

    def _receive(self, proc: subprocess.Popen[bytes], size: int, deadline: float) -> bytes:
        out = bytearray()
        fd = proc.stdout.fileno()  # type: ignore[union-attr]
        while len(out) < size:
            self._wait(proc, fd, select.POLLIN, deadline)
            try:
                chunk = os.read(fd, min(size - len(out), 1 << 20))
            except BlockingIOError:
                continue
            if not chunk:
                raise self._died(proc)
            out += chunk
        return bytes(out)

    def _died(self, proc: subprocess.Popen[bytes]) -> _Lost:
        self._kill(proc)
        code = proc.wait()
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            why = {
                "SIGXCPU": "; it used more CPU time than the timeout allows",
                "SIGKILL": "; out of memory?",
            }.get(name, "")
            return _Lost(FAILED, f"the extraction process was killed by {name}{why}")
        if code == EXIT_OUT_OF_MEMORY:
            return _Lost(FAILED, f"out of memory (max_memory {self.limits.max_memory >> 20} MB)")
        return _Lost(FAILED, f"the extraction process exited with status {code}")
