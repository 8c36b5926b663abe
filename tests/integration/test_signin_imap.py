"""IMAP sign-in through the web against a real Dovecot (``dovecot_harness``): the mail
server checks the password; the login maps to addresses by pattern or map."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dovecot_harness import Dovecot, dovecot_server
from postfix_harness import free_port
from signin_web import LOCAL_PASSWORD, SignInWeb, signin_web

pytestmark = [pytest.mark.integration]

BOB_PASSWORD = "bob-Imap-Secret"
JOERG_PASSWORD = "pässwörd-ß-Ω"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    for server in dovecot_server():
        server.add_user("bob", BOB_PASSWORD)
        server.add_user("alice@example.com", "alice-Imap-Secret")
        server.add_user("jörg", JOERG_PASSWORD)
        yield server


def imap_config(
    dovecot: Dovecot,
    *,
    methods: str = '["local", "imap"]',
    server: str | None = None,
    ca: bool = True,
) -> str:
    return f"""
[web]
auth = {methods}
[auth.imap]
server = "{server or f"imaps://127.0.0.1:{dovecot.imaps_port}"}"
{f'ca_file = "{dovecot.ca_file}"' if ca else ""}
addresses = ["{{local}}@example.com", "{{local}}@example.net"]
timeout = 3
role = "user"
[auth.imap.map]
"jörg" = ["joerg@example.com"]
"""


@pytest.fixture
def web(dovecot: Dovecot, tmp_path: Path) -> Iterator[SignInWeb]:
    with signin_web(tmp_path / "data", imap_config(dovecot)) as w:
        yield w


def test_good_password_signs_in_with_the_pattern_addresses(web: SignInWeb) -> None:
    bob = web.me("bob", BOB_PASSWORD)
    assert (bob["name"], bob["role"]) == ("imap:bob", "user")
    assert bob["addresses"] == ["bob@example.com", "bob@example.net"]
    _response, client = web.login("bob", BOB_PASSWORD)
    assert web.subjects(client) == {"for-bob"}
    entry = web.last_login_audit()
    assert (entry.user, entry.detail["method"]) == ("imap:bob", "imap")
    assert BOB_PASSWORD not in str(entry.to_json())


def test_a_login_with_a_domain(web: SignInWeb) -> None:
    alice = web.me("alice@example.com", "alice-Imap-Secret")
    assert alice["name"] == "imap:alice@example.com"
    assert alice["addresses"] == ["alice@example.com", "alice@example.net"]


def test_wrong_and_empty_passwords_are_refused(web: SignInWeb) -> None:
    for password in ("wrong-password", ""):
        response, client = web.login("bob", password)
        assert response.status_code == 401, response.text
        assert client.get("/api/v1/me").status_code == 401
    assert web.accounts.get_user("imap:bob") is None


def test_non_ascii_login_and_password_with_the_map(web: SignInWeb) -> None:
    joerg = web.me("jörg", JOERG_PASSWORD)
    assert (joerg["name"], joerg["addresses"]) == ("imap:jörg", ["joerg@example.com"])
    response, _ = web.login("jörg", "passwoerd-ss-O")
    assert response.status_code == 401


def test_methods_in_order_and_local_kept_apart(dovecot: Dovecot, tmp_path: Path) -> None:
    for methods, expected in (('["local", "imap"]', "bob"), ('["imap", "local"]', "imap:bob")):
        home = tmp_path / methods.replace('"', "").strip("[]").replace(", ", "-")
        with signin_web(home, imap_config(dovecot, methods=methods)) as web:
            web.accounts.add_user("bob", "user", BOB_PASSWORD, ["local-bob@example.org"])
            assert web.me("bob", BOB_PASSWORD)["name"] == expected
            # the local alice and the mail server's alice@example.com never mix
            assert web.me("alice", LOCAL_PASSWORD)["addresses"] == ["local-alice@example.org"]
            response, _ = web.login("imap:bob", BOB_PASSWORD)
            assert response.status_code == 401


def test_starttls(dovecot: Dovecot, tmp_path: Path) -> None:
    text = imap_config(dovecot, server=f"imap://127.0.0.1:{dovecot.imap_port}")
    with signin_web(tmp_path / "data", text) as web:
        assert web.me("bob", BOB_PASSWORD)["name"] == "imap:bob"


@pytest.mark.parametrize("case", ["down", "untrusted"])
def test_a_server_that_is_down_fails_clearly_and_local_still_works(
    dovecot: Dovecot, tmp_path: Path, case: str
) -> None:
    if case == "down":
        text = imap_config(dovecot, server=f"imaps://127.0.0.1:{free_port()}")
    else:
        text = imap_config(dovecot, ca=False)
    with signin_web(tmp_path / "data", text) as web:
        for _ in range(7):  # past the limiter's 5: an outage is not the user's failure
            response, _ = web.login("bob", BOB_PASSWORD)
            assert response.status_code == 503, response.text
            assert "IMAP sign-in server could not be reached" in response.text
        assert web.last_login_audit().detail["unavailable"] == ["imap"]
        assert web.me("alice", LOCAL_PASSWORD)["name"] == "alice"


def test_a_silent_server_times_out(dovecot: Dovecot, tmp_path: Path) -> None:
    import socket
    import time

    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        text = imap_config(dovecot, server=f"imaps://127.0.0.1:{port}").replace(
            "timeout = 3", "timeout = 1"
        )
        with signin_web(tmp_path / "data", text) as web:
            started = time.monotonic()
            response, _ = web.login("bob", BOB_PASSWORD)
            assert response.status_code == 503
            assert time.monotonic() - started < 10
