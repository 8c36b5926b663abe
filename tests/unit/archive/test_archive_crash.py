"""Crash consistency: a process SIGKILLed mid-ingest leaves an archive that verifies clean.

The ingest order (blobs written and fsync'd, then one catalog commit) means a crash leaves at
most unreferenced blobs; never a row without its blob or a half-recorded batch. The tests kill
real subprocesses, at a chosen point (fault injection) and at random points of a bulk import.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from postfix_archiver.archive import Archive, verify
from postfix_archiver.config import Config, parse_config
from postfix_archiver.envelope import Envelope

TIMEOUT = 60


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_config(home: Path) -> tuple[Path, Config]:
    """A config file for the child process, and the same config for this one."""
    text = f'[archive]\nhome = "{home}"\n'
    path = home.parent / f"{home.name}.toml"
    path.write_text(text)
    return path, parse_config(text, str(path))


def envelope(i: int) -> Envelope:
    return Envelope(
        "importer@example.com", (f"rcpt{i % 7}@example.com",), queue_id=f"Q{i:05d}", source="import"
    )


CHILD_PRELUDE = """
import json, os, signal, sys
from postfix_archiver.archive import Archive
from postfix_archiver.config import load_config
from postfix_archiver.envelope import Envelope

config_path, messages_path = sys.argv[1], sys.argv[2]
messages = [m.encode("latin-1") for m in json.loads(open(messages_path).read())]

def envelope(i):
    return Envelope(
        "importer@example.com", (f"rcpt{i % 7}@example.com",), queue_id=f"Q{i:05d}",
        source="import",
    )

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
"""

# the fault: the process dies where the catalog would commit
FAULTS = {
    "before-commit": """
from postfix_archiver.archive.ingest import IngestService
IngestService._commit = die
""",
    # the rows are inserted in the open transaction, the COMMIT never runs
    "inside-transaction": """
from postfix_archiver.catalog.sqlite import SqliteCatalog
_add = SqliteCatalog._add
def add_then_die(self, conn, arrival, seal):
    _add(self, conn, arrival, seal)
    die()
SqliteCatalog._add = add_then_die
""",
}

INGEST_ONE = """
with Archive(load_config(config_path)) as archive:
    archive.ingest(messages[0], envelope(0))
print("survived")
"""

INGEST_MANY = """
with Archive(load_config(config_path)) as archive:
    print("ready", flush=True)
    items = ((raw, envelope(i)) for i, raw in enumerate(messages))
    for n, result in enumerate(archive.ingest_many(items), start=1):
        print(n, flush=True)
"""


def write_messages(path: Path, messages: list[bytes]) -> None:
    path.write_text(json.dumps([m.decode("latin-1") for m in messages]))


def child(script: str, config_path: Path, messages_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, str(config_path), str(messages_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def big_message() -> bytes:
    data = random.Random(99).randbytes(40_000)
    encoded = base64.b64encode(data)
    body = b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    return (
        b"From: crash@example.com\r\nTo: test@example.com\r\nSubject: crashtest survivor\r\n"
        b"Message-ID: <crash@example.com>\r\n"
        b"Content-Type: multipart/mixed; boundary=C\r\n\r\n--C\r\nContent-Type: text/plain\r\n"
        b"\r\nunlucky timing\r\n--C\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + body + b"\r\n--C--\r\n"
    )


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_killed_before_the_catalog_commit(tmp_path: Path, fault: str) -> None:
    config_path, config = write_config(tmp_path / "data")
    raw = big_message()
    messages_path = tmp_path / "messages.json"
    write_messages(messages_path, [raw])

    proc = child(CHILD_PRELUDE + FAULTS[fault] + INGEST_ONE, config_path, messages_path)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL, err
    assert "survived" not in out

    with Archive(config) as archive:
        # the blobs were durable before the process died ...
        assert archive.store.exists(f"m/{sha(raw)}")
        assert len(list(archive.store.keys("p/"))) == 1
        # ... but without a committed row they are not part of the archive
        report = verify(archive)
        assert report.ok, report.problems
        assert (report.messages, report.events) == (0, 0)
        assert archive.stats().messages == 0
        assert archive.search("").total == 0
        assert archive.search("crashtest").total == 0
        assert archive.catalog.find_sha(sha(raw)) is None

        # the retry Postfix makes after the temporary failure
        result = archive.ingest(raw, envelope(0))
        assert result.new_message
        assert result.new_envelope
        assert archive.raw(result.id) == raw
        assert archive.index_pending() == 1
        assert archive.search("crashtest").total == 1
        assert [e.envelope.queue_id for e in archive.view(result.id).envelopes] == ["Q00000"]
        report = verify(archive)
        assert report.ok, report.problems
        assert (report.messages, report.events) == (1, 1)


def small_messages(count: int) -> list[bytes]:
    rng = random.Random(2000)
    out = []
    for i in range(count):
        eol = b"\r\n" if i % 3 else b"\n"
        lines = [
            f"From: user{rng.randrange(50)}@example.com".encode(),
            f"To: list{i % 5}@example.org".encode(),
            f"Subject: bulk message {i} {rng.randrange(10**6)}".encode(),
            f"Message-ID: <bulk{i}@example.com>".encode(),
            f"Date: Mon, 0{1 + i % 9} Jan 2024 12:{i % 60:02d}:00 +0000".encode(),
            b"",
            f"Line one of message {i}.".encode(),
            bytes(rng.randrange(32, 127) for _ in range(rng.randrange(0, 400))),
            b"",
        ]
        out.append(eol.join(lines))
    return out


@pytest.mark.slow
def test_bulk_import_killed_at_random_points(tmp_path: Path) -> None:
    count = 2000
    messages = small_messages(count)
    by_sha = {sha(m): m for m in messages}
    assert len(by_sha) == count
    messages_path = tmp_path / "messages.json"
    write_messages(messages_path, messages)
    rng = random.Random(5)
    # how many results the child has reported before the kill: early, middle, late
    targets = [0, rng.randrange(1, 200), rng.randrange(200, 900), rng.randrange(900, 1600), 1900]
    partial = 0

    for iteration, target in enumerate(targets):
        config_path, config = write_config(tmp_path / f"data{iteration}")
        proc = child(CHILD_PRELUDE + INGEST_MANY, config_path, messages_path)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        reported = 0
        while reported < target:
            line = proc.stdout.readline()
            if not line:
                break  # finished before the target: nothing to interrupt
            reported = int(line)
        time.sleep(rng.uniform(0, 0.03))
        proc.kill()
        proc.wait(TIMEOUT)
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()

        with Archive(config) as archive:
            report = verify(archive)
            assert report.ok, (iteration, report.problems)
            rows = list(archive.catalog.messages())
            # everything reported as archived really is, and nothing is half there
            assert len(rows) >= reported
            assert report.events == len(rows)
            for row in rows:
                assert archive.raw(row.id) == by_sha[row.sha256]
            if 0 < len(rows) < count:
                partial += 1

            results = list(
                archive.ingest_many((raw, envelope(i)) for i, raw in enumerate(messages))
            )
            assert len(results) == count
            assert {r.sha256 for r in results} == set(by_sha)
            assert sum(r.new_message for r in results) == count - len(rows)
            # the arrivals recorded before the crash are retries now, not new envelopes
            assert sum(r.new_envelope for r in results) == count - len(rows)
            stats = archive.stats()
            assert (stats.messages, stats.envelopes) == (count, count)
            report = verify(archive)
            assert report.ok, (iteration, report.problems)
            assert (report.messages, report.events) == (count, count)

    # the kills really landed in the middle of the import most of the time
    assert partial >= 3
