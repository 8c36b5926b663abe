"""Reading works on a full disk (issue #9, item 7): a real full filesystem, a small tmpfs
filled to the last byte, and the commands that only read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from requirements import require_binary, require_root

pytestmark = [pytest.mark.integration]

CLI = Path(sys.executable).parent / "postfix-archiver"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    require_root("mounting a small tmpfs")
    require_binary("mount", "mount (util-linux)")
    path = tmp_path / "disk"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
    env["POSTFIX_ARCHIVER_HOME"] = str(home)
    return subprocess.run(
        [str(CLI), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def fill(disk: Path) -> None:
    with (disk / "filler").open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    # what little is left in part-filled blocks
    for i in range(1000):
        try:
            (disk / f"f{i}").write_bytes(b"x" * 512)
        except OSError:
            break


def test_read_only_commands_work_on_a_full_disk(disk: Path, tmp_path: Path) -> None:
    home = disk / "home"
    mail = tmp_path / "mail"
    mail.mkdir()
    for i in range(5):
        (mail / f"{i}.eml").write_bytes(
            f"From: a@example.com\nTo: b@example.org\nSubject: note {i}\n\nbody {i}\n".encode()
        )
    # a large attachment too, so one blob is a file outside the pack
    big = os.urandom(400_000).hex().encode()
    (mail / "big.eml").write_bytes(
        b"From: a@example.com\nSubject: big\nContent-Type: application/octet-stream\n\n" + big
    )
    assert run(home, "import", str(mail)).returncode == 0
    fill(disk)
    assert os.statvfs(disk).f_bavail == 0

    found = run(home, "search", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["total"] == 6
    stats = run(home, "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    verify = run(home, "verify")
    assert verify.returncode == 0, verify.stderr
    for row in json.loads(found.stdout)["results"]:
        shown = run(home, "show", str(row["id"]))
        assert shown.returncode == 0, shown.stderr
    out = tmp_path / "out.mbox"  # written on another disk
    exported = run(home, "export", "--format", "mbox", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert out.read_bytes().count(b"\nFrom ") + out.read_bytes().startswith(b"From ") == 6
