"""``postfix-archiver backup DEST`` while ``serve`` archives: the copy verifies, opens, and
holds every message archived before the backup began (SQLite's online backup API: the
proxy keeps answering 250 meanwhile)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .capture_helpers import Listener, ServeProcess, make_message

CLI = Path(sys.executable).parent / "postfix-archiver"


def _cli(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
    env["POSTFIX_ARCHIVER_HOME"] = str(home)
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=120, env=env, input=stdin
    )


def _with_attachment(n: int) -> bytes:
    """A message with a part too big for the pack: a blob file of its own."""
    blob = base64.encodebytes(os.urandom(300_000) + str(n).encode()).decode()
    extra = "X-Test: big\n"
    body = f"see attached {n}\n"
    message = make_message(f"big {n}", extra_headers=extra, body=body).decode()
    head, _, _ = message.partition("Content-Type: text/plain; charset=utf-8\r\n")
    mime = (
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
        f"{body}\r\n--b\r\nContent-Type: application/octet-stream\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="d{n}.bin"\r\n\r\n'
        + blob.replace("\n", "\r\n")
        + "--b--\r\n"
    )
    return (head + mime).encode()


def _count(home: Path) -> int:
    done = _cli(home, "stats", "--json")
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["messages"])


def test_backup_while_mail_flows_verifies_and_opens(
    start_serve: Callable[..., ServeProcess], listener: Listener, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    server = start_serve("--reinject", listener.address, home=home)
    assert (
        _cli(
            home,
            "user",
            "add",
            "ada",
            "--role",
            "admin",
            "--password-stdin",
            stdin="correct horse battery\n",
        ).returncode
        == 0
    )
    for n in range(3):
        code, text = server.send(_with_attachment(n))
        assert code == 250, text

    stop = threading.Event()
    replies: list[tuple[int, str]] = []

    def flow() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            replies.append(server.send(make_message(f"during backup {n}", body=f"n={n}\n")))
            if n % 5 == 0:
                replies.append(server.send(_with_attachment(100 + n)))

    sender = threading.Thread(target=flow)
    sender.start()
    try:
        while len(replies) < 5:
            time.sleep(0.02)
        before = _count(home)
        dest = tmp_path / "backup"
        done = _cli(home, "backup", str(dest))
        during = len(replies)
        time.sleep(0.3)
    finally:
        stop.set()
        sender.join(60)
    assert done.returncode == 0, done.stderr
    assert "backed up catalog.sqlite, web.sqlite, packed.sqlite" in done.stderr
    # the proxy kept answering while the backup ran
    assert all(code == 250 for code, _ in replies), replies
    assert len(replies) > during or during > 5

    checked = _cli(dest, "verify")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    copied = _count(dest)
    assert before <= copied <= _count(home)
    assert any((dest / "blobs").rglob("*"))
    assert (
        len([p for p in (dest / "blobs").rglob("*") if p.is_file() and p.name != "packed.sqlite"])
        >= 3
    )
    found = _cli(dest, "search", "--json", "big")
    assert found.returncode == 0, found.stderr
    shown = _cli(dest, "show", "1", "--raw")
    assert shown.returncode == 0
    assert "big 0" in shown.stdout
    users = _cli(dest, "user", "list")
    assert users.returncode == 0, users.stderr
    assert "ada" in users.stdout, users.stderr


def test_backup_refuses_what_it_cannot_do_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    none = _cli(home, "backup", str(tmp_path / "b1"))
    assert none.returncode == 1
    assert "nothing to back up" in none.stderr
    home.mkdir()
    (home / "m.eml").write_bytes(make_message("one"))
    assert _cli(home, "import", str(home / "m.eml")).returncode == 0
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    for dest, fragment in [
        (tmp_path / ("x" * 5000), "File name too long"),
        (Path("/proc/nope/deeper"), "cannot back up to /proc/nope/deeper"),
        (busy, "not an empty directory"),
        (home / "inside", "inside the archive home"),
    ]:
        done = _cli(home, "backup", str(dest))
        assert done.returncode == 1, done
        assert len(done.stderr.strip().splitlines()) == 1
        assert fragment in done.stderr
    config = tmp_path / "pg.toml"
    config.write_text('[archive]\ncatalog = "postgresql://u@127.0.0.1:1/db"\n')
    pg = _cli(home, "backup", "--config", str(config), str(tmp_path / "b2"))
    assert pg.returncode == 1, pg.stderr
    assert "pg_dump" in pg.stderr, pg.stderr
