"""What the mailbox tests share: messages, appending them to a real Dovecot, and the
command run against a temporary archive home."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from dovecot_harness import Dovecot
from imapclient import IMAPClient

from postfix_archiver.cli import main

CLI = Path(sys.executable).parent / "postfix-archiver"
USER = "alice@example.com"
PASSWORD = "s3cret-Päss"  # non-ASCII: IMAP LOGIN must carry it intact


def new_user(dovecot: Dovecot, request: pytest.FixtureRequest) -> str:
    """A user of its own for each test (the server is shared by the module)."""
    user = f"u{abs(hash(request.node.nodeid)) % 10**8}@example.com"
    dovecot.add_user(user, PASSWORD)
    return user


def client(dovecot: Dovecot, user: str) -> IMAPClient:
    context = ssl.create_default_context(cafile=str(dovecot.ca_file))
    imap = IMAPClient("127.0.0.1", port=dovecot.imaps_port, ssl=True, ssl_context=context)
    try:
        imap.plain_login(user, PASSWORD)
    except BaseException:
        imap.shutdown()
        raise
    return imap


def message(n: int, extra: bytes = b"") -> bytes:
    return (
        f"From: Sender {n} <sender{n}@example.org>\r\n"
        f"To: {USER}\r\nSubject: note {n}\r\nMessage-ID: <n{n}@example.org>\r\n"
        "Date: Mon, 2 Mar 2020 10:00:00 +0000\r\n\r\n"
        f"body {n} quokka\r\n"
    ).encode() + extra


def append(dovecot: Dovecot, user: str, folder: str, raws: list[bytes], start: datetime) -> None:
    imap = client(dovecot, user)
    if not imap.folder_exists(folder):
        imap.create_folder(folder)
    for i, raw in enumerate(raws):
        imap.append(folder, raw, msg_time=start + timedelta(hours=i))
    imap.logout()


class Run:
    def __init__(self, tmp_path: Path, dovecot: Dovecot) -> None:
        self.dovecot = dovecot
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
        self.env["POSTFIX_ARCHIVER_HOME"] = str(tmp_path / "home")
        self.env["COLUMNS"] = "200"

    def __call__(
        self, *args: str | Path, password: str = PASSWORD
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLI), *map(str, args)],
            env=self.env,
            input=password + "\n",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def url(self, user: str, folder: str = "", *, port: int | None = None) -> str:
        return f"imaps://{user}@127.0.0.1:{port or self.dovecot.imaps_port}/{folder}"

    def imap(self, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self("import", url, "--password-stdin", "--ca-file", self.dovecot.ca_file, *extra)

    def quick(self, *args: str) -> str:
        """A read-only command in this process (no interpreter start-up): its stdout."""
        done = CliRunner().invoke(main, list(args), env=self.env, catch_exceptions=False)
        assert done.exit_code == 0, done.output
        return done.stdout

    def search(self, query: str) -> list[dict[str, object]]:
        results = json.loads(self.quick("search", "--json", "--limit", "1000", query))["results"]
        assert isinstance(results, list)
        return results

    def raw(self, message: object) -> bytes:
        done = CliRunner().invoke(main, ["show", "--raw", str(message)], env=self.env)
        assert done.exit_code == 0, done.output
        return done.stdout_bytes
