"""The web app over a temporary archive, for the IMAP and LDAP sign-in tests: a config with
``[web] auth`` and ``[auth.*]``, a local user whose login the servers also know, two messages
(one for alice, one for bob), and a login through the real form."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from starlette.exceptions import StarletteDeprecationWarning

from postfix_archiver.accounts import Accounts, home_url, open_accounts
from postfix_archiver.archive import Archive
from postfix_archiver.config import parse_config
from postfix_archiver.envelope import Envelope
from postfix_archiver.web import create_app

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx`", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
LOCAL_PASSWORD = "local-alice-password"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def mail(to: str, subject: str) -> bytes:
    return (
        f"From: someone@example.org\r\nTo: {to}\r\nSubject: {subject}\r\n"
        "Date: Tue, 07 Jan 2025 10:00:00 +0000\r\nMessage-ID: <"
        f"{subject}@example.org>\r\n\r\nwombat\r\n"
    ).encode()


@dataclass
class SignInWeb:
    accounts: Accounts
    app: Any
    clients: list[Any] = field(default_factory=list)

    def client(self) -> Any:
        client = TestClient(self.app, follow_redirects=False)
        client.__enter__()
        self.clients.append(client)
        return client

    def login(self, name: str, password: str) -> tuple[Any, Any]:
        """The answer to the login form, and the client (with its session if it worked)."""
        client = self.client()
        form = client.get("/login")
        csrf = _CSRF.search(form.text)
        assert csrf, form.text
        response = client.post(
            "/login", data={"name": name, "password": password, "csrf": csrf.group(1)}
        )
        return response, client

    def me(self, name: str, password: str) -> dict[str, Any]:
        response, client = self.login(name, password)
        assert response.status_code == 303, response.text
        found: dict[str, Any] = client.get("/api/v1/me").json()
        return found

    def subjects(self, client: Any) -> set[str]:
        found = client.get("/api/v1/messages", params={"q": "wombat"}).json()
        return {r["subject"] for r in found["results"]}

    def last_login_audit(self) -> Any:
        _, entries = self.accounts.audit(limit=1, action="login")
        return entries[0]


@contextmanager
def signin_web(home: Path, extra: str) -> Iterator[SignInWeb]:
    config = parse_config(f'[archive]\nhome = "{home}"\n{extra}', str(home.parent / "c.toml"))
    when = datetime(2025, 1, 7, 10, tzinfo=UTC)
    with (
        Archive(config) as archive,
        open_accounts(home_url(home), hasher=CHEAP) as accounts,
    ):
        for to, subject in (("alice@example.com", "for-alice"), ("bob@example.com", "for-bob")):
            archive.ingest(mail(to, subject), Envelope("someone@example.org", (to,), received=when))
        archive.index_pending()
        accounts.add_user("alice", "user", LOCAL_PASSWORD, ["local-alice@example.org"])
        web = SignInWeb(accounts, create_app(config, archive, accounts=accounts))
        try:
            yield web
        finally:
            for client in web.clients:
                client.__exit__(None, None, None)
