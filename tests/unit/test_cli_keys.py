"""``postfix-archiver keys init|rotate|rewrap``, run for real as subprocesses.

The rewrap test kills the command with SIGKILL in the middle and runs it again: every blob
must stay readable in between, and the second run must finish the work without redoing it.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import make_config

from postfix_archiver.archive import Archive, verify
from postfix_archiver.config import load_config
from postfix_archiver.envelope import Envelope
from postfix_archiver.store.encrypted import MAGIC, REWRAP_BATCH

CLI = Path(sys.executable).parent / "postfix-archiver"


class Keys:
    def __init__(self, tmp_path: Path, *, encryption: bool = True) -> None:
        self.home = tmp_path / "home"
        self.key_file = tmp_path / "etc" / "archive.keys"
        self.config = tmp_path / "archiver.toml"
        text = f'[archive]\nhome = "{self.home}"\n'
        if encryption:
            text += f'encryption = "aes-256-gcm"\nkey_file = "{self.key_file}"\n'
        # keys init makes the checkpoint signing key too: here, never in /etc
        text += f'[integrity]\nsigning_key = "{tmp_path / "etc" / "signing.key"}"\n'
        self.config.write_text(text)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}

    def argv(self, *args: str) -> list[str]:
        return [str(CLI), *args, "--config", str(self.config)]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), env=self.env, capture_output=True, text=True, timeout=120, check=False
        )

    def ok(self, *args: str) -> str:
        done = self(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout


def message(n: int) -> bytes:
    return (
        f"From: a@example.com\r\nTo: b@example.org\r\nSubject: note {n}\r\n"
        f"Message-ID: <k{n}@example.com>\r\n\r\nBody {n}.\r\n"
    ).encode()


def sealed_rows(home: Path) -> tuple[int, int]:
    """(sealed, all) rows of the pack, read as another process would while rewrap runs."""
    conn = sqlite3.connect(f"file:{home / 'blobs' / 'packed.sqlite'}?mode=ro", uri=True)
    try:
        sealed = conn.execute(
            "SELECT count(*) FROM blobs WHERE substr(data, 1, 4) = ?", (MAGIC,)
        ).fetchone()[0]
        total = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
    finally:
        conn.close()
    return int(sealed), int(total)


def test_init_creates_a_private_key_file_once(tmp_path: Path) -> None:
    keys = Keys(tmp_path)
    out = keys.ok("keys", "init")
    assert str(keys.key_file) in out
    assert "back it up" in out
    assert keys.key_file.stat().st_mode & 0o777 == 0o600
    before = keys.key_file.read_bytes()
    again = keys("keys", "init")
    assert again.returncode == 1
    assert len(again.stderr.strip().splitlines()) == 1
    assert "exists already" in again.stderr
    assert keys.key_file.read_bytes() == before


def test_init_without_encryption_creates_nothing(tmp_path: Path) -> None:
    keys = Keys(tmp_path, encryption=False)
    assert "encryption is off" in keys.ok("keys", "init")
    assert not keys.key_file.exists()
    for command in ("rotate", "rewrap"):
        done = keys("keys", command)
        assert done.returncode == 1
        assert 'encryption = "aes-256-gcm"' in done.stderr
        assert "Traceback" not in done.stderr


def test_archiving_without_the_key_file_names_the_fix(tmp_path: Path) -> None:
    keys = Keys(tmp_path)
    eml = tmp_path / "one.eml"
    eml.write_bytes(message(1))
    done = keys("import", str(eml))
    assert done.returncode == 1
    assert "postfix-archiver keys init" in done.stderr
    assert "Traceback" not in done.stderr


def test_rotate_then_rewrap(tmp_path: Path) -> None:
    keys = Keys(tmp_path)
    keys.ok("keys", "init")
    eml = tmp_path / "one.eml"
    eml.write_bytes(message(1))
    keys.ok("import", str(eml))
    out = keys.ok("keys", "rotate")
    assert "is current" in out
    assert "keys rewrap" in out
    eml.write_bytes(message(2))
    keys.ok("import", str(eml))
    assert "re-encrypted 1 blob(s), encrypted 0 plain one(s), 1 already" in keys.ok(
        "keys", "rewrap"
    )
    assert "re-encrypted 0 blob(s), encrypted 0 plain one(s), 2 already" in keys.ok(
        "keys", "rewrap"
    )
    assert keys.ok("verify").startswith("OK: 2 messages")


@pytest.mark.slow
def test_rewrap_killed_midway_then_resumed(tmp_path: Path) -> None:
    keys = Keys(tmp_path)
    count = 600
    with Archive(make_config(keys.home)) as archive:  # an archive from before encryption
        for result in archive.ingest_many(
            (message(n), Envelope("a@example.com", ("b@example.org",), queue_id=f"Q{n}"))
            for n in range(count)
        ):
            assert result.id
    keys.ok("keys", "init")
    assert sealed_rows(keys.home) == (0, count)

    proc = subprocess.Popen(
        keys.argv("keys", "rewrap"), env=keys.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            sealed, _ = sealed_rows(keys.home)
            if sealed >= 10:
                break
            assert proc.poll() is None, "rewrap finished before it could be killed"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate(timeout=30)
    sealed, total = sealed_rows(keys.home)
    assert 10 <= sealed < count  # killed midway
    # at most a batch of blobs sealed whose plain copies were not deleted yet
    assert count <= total <= count + REWRAP_BATCH

    config = load_config(keys.config)
    with Archive(config, readonly=True) as archive:
        assert verify(archive).ok  # everything readable, sealed or not
    out = keys.ok("keys", "rewrap")
    # nothing sealed before is sealed again; a blob killed between its sealed copy and the
    # removal of its plain one is sealed once more (its plain copy is still there)
    plain_left = total - sealed
    assert f"encrypted {plain_left} plain one(s), {sealed} already" in out
    assert sealed_rows(keys.home) == (count, count)
    with Archive(config, readonly=True) as archive:
        report = verify(archive)
        assert report.ok
        assert report.messages == count
        assert archive.raw(1) == message(0)
