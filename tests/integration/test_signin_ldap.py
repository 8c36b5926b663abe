"""LDAP sign-in through the web against a real OpenLDAP (``slapd_harness``): the directory
checks the password, its attributes give the addresses and its groups the role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from postfix_harness import free_port
from signin_web import LOCAL_PASSWORD, SignInWeb, signin_web
from slapd_harness import (
    ADMINS,
    AUDITORS,
    GROUPS,
    PEOPLE,
    SERVICE_DN,
    SERVICE_PASSWORD,
    Slapd,
    slapd_server,
)

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def slapd() -> Iterator[Slapd]:
    yield from slapd_server()


def search_config(slapd: Slapd, tmp_path: Path, methods: str = '["local", "ldap"]') -> str:
    """ldaps://, the user found by the service account, groups from memberOf."""
    secret = tmp_path / "ldap.secret"
    secret.write_text(SERVICE_PASSWORD + "\n")
    return f"""
[web]
auth = {methods}
[auth.ldap]
server = "ldaps://127.0.0.1:{slapd.ldaps_port}"
ca_file = "{slapd.ca_file}"
base = "{PEOPLE}"
filter = "(&(objectClass=inetOrgPerson)(uid={{login}}))"
bind_dn = "{SERVICE_DN}"
bind_password_file = "{secret}"
timeout = 5
[auth.ldap.roles]
admin = ["{ADMINS.upper()}"]
auditor = ["{AUDITORS.replace(",", ", ")}"]
"""


def pattern_config(slapd: Slapd, port: int | None = None) -> str:
    """ldap:// with StartTLS, the DN from a pattern, groups from a search, no default role."""
    return f"""
[web]
auth = ["ldap", "local"]
[auth.ldap]
server = "ldap://127.0.0.1:{port or slapd.ldap_port}"
ca_file = "{slapd.ca_file}"
user_dn = "uid={{login}},{PEOPLE}"
group_attribute = ""
group_base = "{GROUPS}"
group_filter = "(&(objectClass=groupOfNames)(member={{dn}}))"
default_role = "none"
timeout = 2
[auth.ldap.roles]
admin = ["{ADMINS}"]
auditor = ["{AUDITORS}"]
user = ["cn=staff,{GROUPS}"]
"""


@pytest.fixture
def web(slapd: Slapd, tmp_path: Path) -> Iterator[SignInWeb]:
    with signin_web(tmp_path / "data", search_config(slapd, tmp_path)) as w:
        yield w


def test_addresses_from_every_attribute_and_the_role_from_groups(web: SignInWeb) -> None:
    alice = web.me("alice", "alice-Secret-1")
    assert alice["name"] == "ldap:alice"
    assert alice["role"] == "admin"  # the group DN written in capitals still matches
    # mail, mailAlternateAddress, and proxyAddresses' smtp:/SMTP: values only (no X400, SIP)
    assert sorted(alice["addresses"]) == [
        "a@corp.example.com",
        "alice.smith@example.com",
        "alice@corp.example.com",
        "alice@example.com",
    ]
    assert web.me("carol", "carol-Secret-1")["role"] == "auditor"  # DN spaced differently
    bob = web.me("bob", "bob-Secret-1")
    assert (bob["role"], bob["addresses"]) == ("user", ["bob@example.com"])
    entry = web.last_login_audit()
    assert (entry.user, entry.detail["ok"], entry.detail["method"]) == ("ldap:bob", True, "ldap")


def test_a_user_sees_the_mail_of_their_directory_addresses(web: SignInWeb) -> None:
    response, bob = web.login("bob", "bob-Secret-1")
    assert response.status_code == 303
    assert web.subjects(bob) == {"for-bob"}


def test_wrong_and_empty_passwords_are_refused(web: SignInWeb) -> None:
    for password in ("wrong-password", ""):
        response, client = web.login("bob", password)
        assert response.status_code == 401, response.text
        assert "Wrong user name or password" in response.text
        assert client.get("/api/v1/me").status_code == 401
    assert web.accounts.get_user("ldap:bob") is None  # nothing recorded for a refusal
    entry = web.last_login_audit()
    assert entry.detail["ok"] is False
    assert entry.detail["refused"] == {"local": "unknown user", "ldap": "empty password"}
    # the password appears nowhere in the audit log
    _, entries = web.accounts.audit(limit=100)
    assert not any("wrong-password" in str(e.to_json()) for e in entries)


@pytest.mark.parametrize("login", ["*)(uid=*", "ali*", "*", "alice)(|(uid=*"])
def test_a_login_is_never_a_filter(web: SignInWeb, login: str) -> None:
    # unescaped, "ali*" would find alice's entry, and her password would sign in "ali*"
    response, _ = web.login(login, "alice-Secret-1")
    assert response.status_code == 401, response.text
    assert [u.name for u in web.accounts.users() if u.name.startswith("ldap:")] == []


def test_non_ascii_login_and_password(web: SignInWeb) -> None:
    joerg = web.me("jörg", "pässwörd-ß-1")
    assert (joerg["name"], joerg["addresses"], joerg["role"]) == (
        "ldap:jörg",
        ["joerg@example.com"],
        "user",
    )
    response, _ = web.login("jörg", "passwoerd-ss-1")
    assert response.status_code == 401


def test_local_and_directory_alice_are_two_users(web: SignInWeb) -> None:
    local = web.me("alice", LOCAL_PASSWORD)
    assert (local["name"], local["role"], local["addresses"]) == (
        "alice",
        "user",
        ["local-alice@example.org"],
    )
    assert web.me("alice", "alice-Secret-1")["name"] == "ldap:alice"
    # the directory's user is no local account: its name with any password opens nothing
    for password in ("", "alice-Secret-1", LOCAL_PASSWORD):
        response, _ = web.login("ldap:alice", password)
        assert response.status_code == 401


def test_methods_are_tried_in_the_order_given(slapd: Slapd, tmp_path: Path) -> None:
    # a local "bob" with the same password as the directory's bob: the first method wins
    for methods, expected in (('["local", "ldap"]', "bob"), ('["ldap", "local"]', "ldap:bob")):
        home = tmp_path / methods.replace('"', "").strip("[]").replace(", ", "-")
        with signin_web(home, search_config(slapd, tmp_path, methods)) as web:
            web.accounts.add_user("bob", "user", "bob-Secret-1", [])
            assert web.me("bob", "bob-Secret-1")["name"] == expected
            response, _ = web.login("bob", "neither-password")
            assert response.status_code == 401
            refused = web.last_login_audit().detail["refused"]
            assert list(refused) == [m.strip(' "') for m in methods.strip("[]").split(",")]


def test_dn_pattern_starttls_group_search_and_no_default_role(slapd: Slapd, tmp_path: Path) -> None:
    with signin_web(tmp_path / "data", pattern_config(slapd)) as web:
        assert web.me("alice", "alice-Secret-1")["role"] == "admin"
        assert web.me("carol", "carol-Secret-1")["role"] == "auditor"
        assert web.me("bob", "bob-Secret-1")["role"] == "user"
        # in none of the groups named, with default_role = "none": refused
        response, _ = web.login("nogroup", "nogroup-Secret-1")
        assert response.status_code == 401
        assert web.last_login_audit().detail["refused"]["ldap"].startswith("in none of")
        # a login that would be another DN if put in unescaped
        response, _ = web.login(f"alice,{PEOPLE}", "alice-Secret-1")
        assert response.status_code == 401
        response, _ = web.login("alice", "")
        assert response.status_code == 401


def test_a_directory_that_is_down_fails_clearly_and_local_still_works(
    slapd: Slapd, tmp_path: Path
) -> None:
    with signin_web(tmp_path / "data", pattern_config(slapd, port=free_port())) as web:
        for _ in range(7):  # more than the limiter's 5: an outage is not the user's failure
            response, _ = web.login("bob", "bob-Secret-1")
            assert response.status_code == 503, response.text
            assert "LDAP sign-in server could not be reached" in response.text
        entry = web.last_login_audit()
        assert entry.detail["unavailable"] == ["ldap"]
        assert "bob-Secret-1" not in str(entry.to_json())
        assert web.me("alice", LOCAL_PASSWORD)["name"] == "alice"


def test_an_untrusted_certificate_is_an_outage_not_a_login(slapd: Slapd, tmp_path: Path) -> None:
    text = pattern_config(slapd).replace(f'ca_file = "{slapd.ca_file}"\n', "")
    with signin_web(tmp_path / "data", text) as web:
        response, _ = web.login("bob", "bob-Secret-1")
        assert response.status_code == 503


def test_directory_users_get_no_api_tokens(web: SignInWeb) -> None:
    response, alice = web.login("alice", "alice-Secret-1")  # an admin, from the directory
    assert response.status_code == 303
    page = alice.get("/users/ldap:alice/tokens")
    assert page.status_code == 200
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    made = alice.post("/users/ldap:alice/tokens", data={"csrf": csrf, "label": "x"})
    assert made.status_code == 303
    assert web.accounts.tokens("ldap:alice") == []
    shown = alice.get(made.headers["location"])
    assert "no API tokens" in shown.text
