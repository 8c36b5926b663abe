"""The login form with IMAP and LDAP sign-in configured, without their servers: what is
refused before any network, and a server that is down (the real servers' tests are in
``tests/integration/test_signin_*.py``)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from postfix_archiver.accounts import home_url, open_accounts
from postfix_archiver.archive import Archive
from postfix_archiver.config import parse_config
from postfix_archiver.web.auth import RateLimiter

from .web_helpers import CHEAP, PASSWORD, Web


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    port = closed_port()
    config = parse_config(
        f"""
[archive]
home = "{tmp_path / "data"}"
[web]
auth = ["imap", "local", "ldap"]
[auth.imap]
server = "imaps://127.0.0.1:{port}"
timeout = 2
[auth.ldap]
server = "ldaps://127.0.0.1:{port}"
user_dn = "uid={{login}},dc=example,dc=com"
timeout = 2
""",
        str(tmp_path / "c.toml"),
    )
    with (
        Archive(config) as archive,
        open_accounts(home_url(config.archive.home), hasher=CHEAP) as accounts,
    ):
        accounts.add_user("bob", "user", PASSWORD, ["bob@example.com"])
        w = Web(config, archive, accounts, RateLimiter(), cast=None)  # type: ignore[arg-type]
        try:
            yield w
        finally:
            w.close()


def test_the_form_says_to_use_the_mail_account(web: Web) -> None:
    assert "password of your mail account" in web.client().get("/login").text


def test_servers_down_local_still_works(web: Web) -> None:
    client = web.login("bob")
    assert client.get("/api/v1/me").json()["name"] == "bob"
    _, entries = web.accounts.audit(limit=1, action="login")
    assert entries[0].detail["method"] == "local"


def test_servers_down_is_a_clear_503_not_counted_as_failures(web: Web) -> None:
    for _ in range(7):  # past the limiter's 5
        response = web.post_login(web.client(), "carol", "carols-password")
        assert response.status_code == 503
        assert "IMAP and LDAP sign-in server could not be reached" in response.text
    _, entries = web.accounts.audit(limit=1, action="login")
    assert entries[0].detail["unavailable"] == ["imap", "ldap"]
    assert "carols-password" not in str(entries[0].to_json())


def test_a_wrong_local_password_while_servers_are_down_is_counted(web: Web) -> None:
    for _ in range(5):
        assert web.post_login(web.client(), "bob", "wrong-password").status_code == 503
    assert web.post_login(web.client(), "bob", PASSWORD).status_code == 429


@pytest.mark.parametrize(
    ("name", "password", "status"),
    [
        # refused before any network: a 401, not the 503 of the servers that are down
        ("carol", "", 401),
        ("bob\r\nA1 LOGOUT", "a-password", 401),
        ("nul\x00", "a-password", 401),
        ("\x7f", "a-password", 401),
        ("٣٣٣", "", 401),
        # printable, so asked (the form keeps 200 characters of a name)
        ("\u202eevil", "a-password", 401),  # a bidi override is no printable login
        ("x" * 1000, "a-password", 503),
        ("٣٣٣", "a-password", 503),
    ],
)
def test_empty_passwords_and_odd_logins_never_reach_a_server(
    web: Web, name: str, password: str, status: int
) -> None:
    response = web.post_login(web.client(), name, password)
    assert response.status_code == status, response.text
