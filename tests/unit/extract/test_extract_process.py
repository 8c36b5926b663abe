"""Isolation: the worker process, its deadline, its caps, and every way it can go wrong
ending as an Extraction (never an exception, never a hang)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from postfix_archiver.extract import (
    FAILED,
    OK,
    TIMEOUT,
    TOO_BIG,
    UNSUPPORTED,
    Limits,
    extract,
    extract_many,
)
from postfix_archiver.extract.process import Worker


def group_members(pgid: int) -> list[int]:
    """Processes still alive (not zombies) in process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def slow_rtf(size: int = 24 << 20) -> bytes:
    """RTF that takes striprtf many seconds (it reads character by character)."""
    return b"{\\rtf1\\ansi " + b"slow words here " * (size // 16) + b"}"


def stand_in(code: str) -> list[str]:
    """A worker command that speaks (or breaks) the protocol as ``code`` says."""
    return [sys.executable, "-c", code]


def test_text_is_extracted_in_another_process() -> None:
    with Worker(Limits()) as worker:
        result = worker.extract(b"hello pangolin", "text/plain", "a.txt")
        assert result == extract(b"hello pangolin", "text/plain", "a.txt", Limits())
        assert result.status == OK
        assert result.text == "hello pangolin"
        assert worker.pid is not None
        assert worker.pid != os.getpid()


def test_a_worker_is_reused_for_the_next_attachment() -> None:
    with Worker(Limits()) as worker:
        worker.extract(b"one", "text/plain", "")
        first = worker.pid
        assert worker.extract(b"two", "text/plain", "").text == "two"
        assert worker.pid == first


def test_wall_clock_timeout_kills_the_process_group() -> None:
    limits = Limits(timeout=1.0)
    with Worker(limits) as worker:
        started = time.monotonic()
        result = worker.extract(slow_rtf(), "application/rtf", "slow.rtf")
        took = time.monotonic() - started
        assert result.status == TIMEOUT, result
        assert "timeout" in result.detail
        assert took < 5
        assert worker.pid is None  # replaced on the next use


def test_timeout_kills_what_the_worker_started() -> None:
    """A worker that started a child of its own (pdftotext) and hangs: the whole group
    goes, the grandchild too."""
    code = (
        "import subprocess, time, sys; "
        "p = subprocess.Popen(['sleep', '300']); "
        "open(sys.argv[1], 'w').write(str(p.pid)); time.sleep(300)"
    )
    marker = Path(os.environ.get("TMPDIR", "/tmp")) / f"extract-grandchild-{os.getpid()}"
    worker = Worker(Limits(timeout=4), [*stand_in(code), str(marker)])
    result = worker.extract(b"x", "text/plain", "")
    assert result.status == TIMEOUT
    grandchild = int(marker.read_text())
    marker.unlink()
    time.sleep(0.2)
    state = Path(f"/proc/{grandchild}/stat")
    assert not state.exists() or state.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_a_failure_leaves_the_other_attachments_alone() -> None:
    items = [
        (b"first gecko", "text/plain", ""),
        (slow_rtf(), "text/rtf", "slow.rtf"),
        (b"third okapi", "text/plain", ""),
    ]
    results = extract_many(items, Limits(timeout=1.0))
    assert [r.status for r in results] == [OK, TIMEOUT, OK]
    assert results[2].text == "third okapi"


def test_the_worker_is_replaced_after_a_timeout() -> None:
    with Worker(Limits(timeout=1.0)) as worker:
        worker.extract(b"a", "text/plain", "")
        first = worker.pid
        assert worker.extract(slow_rtf(), "text/rtf", "").status == TIMEOUT
        assert worker.extract(b"b", "text/plain", "").text == "b"
        assert worker.pid not in (None, first)


def test_a_damaged_file_keeps_the_worker() -> None:
    """A reader's plain failure (a damaged docx, a PDF pdftotext cannot read) leaves the
    worker as it was: mail full of broken attachments must not pay a process start each."""
    with Worker(Limits()) as worker:
        worker.extract(b"a", "text/plain", "")
        first = worker.pid
        damaged = worker.extract(b"PK\x03\x04 not really a zip", "application/zip", "x.docx")
        assert damaged.status == FAILED
        assert worker.extract(b"b", "text/plain", "").text == "b"
        assert worker.pid == first


def test_memory_cap_becomes_failed() -> None:
    limits = Limits(max_memory=96 << 20, max_input=128 << 20)
    result = extract("é".encode() * (24 << 20), "text/plain; charset=utf-8", "", limits)
    assert result.status == FAILED
    assert "out of memory" in result.detail


def test_a_worker_killed_mid_extraction_is_failed_not_an_exception() -> None:
    worker = Worker(Limits(timeout=30))
    worker.extract(b"warm", "text/plain", "")
    pid = worker.pid
    assert pid is not None
    threading.Timer(0.5, os.kill, (pid, signal.SIGSEGV)).start()
    result = worker.extract(slow_rtf(), "text/rtf", "")
    worker.close()
    assert result.status == FAILED
    assert "SIGSEGV" in result.detail


@pytest.mark.parametrize(
    ("code", "detail"),
    [
        ("import sys; sys.exit(7)", "exited with status 7"),
        (
            "import sys; sys.stdin.buffer.read(20); sys.stdout.write('garbage!' * 10); "
            "sys.stdout.flush(); import time; time.sleep(5)",
            "garbage",
        ),
        (
            "import sys, struct; sys.stdin.buffer.read(20); "
            "sys.stdout.buffer.write(struct.pack('>I', 9) + b'not json!'); sys.stdout.flush()",
            "garbage",
        ),
        (
            "import sys, struct; sys.stdin.buffer.read(20); "
            'b = b\'{"status": "ok", "text": 5, "names": [], "detail": ""}\'; '
            "sys.stdout.buffer.write(struct.pack('>I', len(b)) + b); sys.stdout.flush()",
            "garbage",
        ),
        ("import os; os.kill(os.getpid(), 9)", "SIGKILL"),
    ],
)
def test_a_broken_worker_is_failed(code: str, detail: str) -> None:
    with Worker(Limits(timeout=10), stand_in(code)) as worker:
        result = worker.extract(b"some text", "text/plain", "")
    assert result.status == FAILED
    assert detail in result.detail


def test_a_worker_that_cannot_start_is_failed() -> None:
    worker = Worker(Limits(), ["/nonexistent/python"])
    result = worker.extract(b"text", "text/plain", "")
    assert result.status == FAILED
    assert "cannot start" in result.detail


def test_a_hanging_worker_is_a_timeout() -> None:
    with Worker(Limits(timeout=0.5), stand_in("import time; time.sleep(60)")) as worker:
        result = worker.extract(b"x" * 10, "text/plain", "")
    assert result.status == TIMEOUT


def test_too_big_is_not_read() -> None:
    result = extract(b"x" * 2000, "text/plain", "", Limits(max_input=1000))
    assert result.status == TOO_BIG


def test_images_are_unsupported_without_a_process() -> None:
    with Worker(Limits()) as worker:
        png = b"\x89PNG\r\n\x1a\n" + bytes(100)
        assert worker.extract(png, "image/png", "a.png").status == UNSUPPORTED
        assert worker.extract(png, "application/octet-stream", "a.bin").status == UNSUPPORTED
        assert worker.pid is None


def test_output_is_cut_at_max_output() -> None:
    result = extract(b"word " * 100_000, "text/plain", "", Limits(max_output=1000))
    assert result.status == OK
    assert len(result.text) == 1000
    assert "cut" in result.detail


def test_eight_bit_file_names_survive_the_trip() -> None:
    name = b"r\xe9sum\xe9 \xed\x9a\x8c.txt".decode("utf-8", "surrogateescape")
    result = extract(b"caf\xc3\xa9", "text/plain", name, Limits())
    assert result.status == OK
    assert result.text == "café"


def test_the_process_group_is_gone_after_close() -> None:
    worker = Worker(Limits())
    worker.extract(b"x", "text/plain", "")
    pid = worker.pid
    assert pid is not None
    worker.close()
    assert group_members(pid) == []
