"""PDF through poppler's ``pdftotext``, a process of its own in the worker's process group.

The PDF goes to pdftotext as an anonymous in-memory file (memfd): nothing is written to disk,
so a worker killed on its timeout leaves no temporary file behind. Its output is read as it
comes and pdftotext is stopped once max_output is reached; the worker's memory limit
(RLIMIT_AS) is inherited, and the parent's kill of the process group takes pdftotext too.
"""

from __future__ import annotations

import codecs
import os
import selectors
import shutil
import signal
import subprocess

from .job import Failed, Job, OutOfTime

# pages read at most: a PDF bomb of millions of empty pages must not keep pdftotext busy
# until the timeout; long before this the text is over max_output anyway
MAX_PAGES = 5000
MISSING = "pdftotext is not installed: apt-get install poppler-utils"


def read_pdf(data: bytes, job: Job) -> None:
    binary = shutil.which("pdftotext")
    if binary is None:
        raise Failed(MISSING)
    fd = os.memfd_create("attachment.pdf", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        command = [binary, "-q", "-enc", "UTF-8", "-l", str(MAX_PAGES), f"/dev/fd/{fd}", "-"]
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            pass_fds=(fd,),
        )
    finally:
        os.close(fd)
    try:
        _read_output(proc, job)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    if proc.returncode < 0:
        raise Failed(f"pdftotext crashed ({_signal_name(-proc.returncode)}; out of memory?)")
    if proc.returncode != 0:
        raise Failed(
            f"pdftotext cannot read it (damaged, or encrypted), exit status {proc.returncode}"
        )


def _signal_name(number: int) -> str:
    """``SIGSEGV`` for 11; a real-time signal (SIGRTMIN+n) has no name of its own."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _read_output(proc: subprocess.Popen[bytes], job: Job) -> None:
    assert proc.stdout is not None
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while True:
            remaining = job.remaining()
            if remaining <= 0 or not selector.select(remaining):
                raise OutOfTime
            chunk = os.read(proc.stdout.fileno(), 1 << 16)
            if not chunk:
                job.add_text(decoder.decode(b"", final=True))
                return
            # pdftotext ends each page with a form feed
            job.add_text(decoder.decode(chunk).replace("\f", "\n"))
