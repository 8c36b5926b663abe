"""Users signed in by IMAP or LDAP: named ``imap:LOGIN`` / ``ldap:LOGIN``, no password here,
never a local login, no API tokens; role and addresses as the server said last."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from tests.unit.accounts.test_accounts_contract import BACKENDS, backend_params

from postfix_archiver.accounts import Accounts, external_name
from postfix_archiver.errors import AccountError

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(params=backend_params())
def accounts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Accounts]:
    """Over every accounts backend (the contract suite's)."""
    with BACKENDS[request.param](tmp_path, hasher=CHEAP) as accounts:
        yield accounts


def test_created_then_updated_at_each_sign_in(accounts: Accounts) -> None:
    first = accounts.external_user("ldap", "alice", "admin", ["Alice@Example.com"])
    assert (first.name, first.role, first.addresses) == (
        "ldap:alice",
        "admin",
        ("alice@example.com",),
    )
    assert first.last_login is not None
    again = accounts.external_user("ldap", "alice", "user", ["a@example.com", "b@example.com"])
    assert (again.id, again.role, again.addresses) == (
        first.id,
        "user",
        ("a@example.com", "b@example.com"),
    )
    assert [u.name for u in accounts.users()] == ["ldap:alice"]


def test_local_and_external_users_of_one_login_are_apart(accounts: Accounts) -> None:
    local = accounts.add_user("alice", "user", "local-password", ["local@example.org"])
    imap = accounts.external_user("imap", "alice", "user", ["alice@example.com"])
    ldap = accounts.external_user("ldap", "alice", "auditor", [])
    assert len({local.id, imap.id, ldap.id}) == 3
    assert accounts.require_user("alice").addresses == ("local@example.org",)
    # a local name cannot take the external form
    with pytest.raises(AccountError, match="bad user name"):
        accounts.add_user("imap:bob", "user", "local-password")


def test_no_password_no_local_login_no_tokens(accounts: Accounts) -> None:
    accounts.external_user("imap", "bob", "user", ["bob@example.com"])
    for password in ("", "anything-at-all"):
        assert accounts.authenticate("imap:bob", password) is None
    with pytest.raises(AccountError, match="IMAP server's password"):
        accounts.set_password("imap:bob", "a-new-password")
    with pytest.raises(AccountError, match="no API tokens"):
        accounts.create_token("imap:bob")
    assert accounts.tokens("imap:bob") == []


def test_sessions_work_like_everyone_elses(accounts: Accounts) -> None:
    user = accounts.external_user("ldap", "jörg", "user", ["jörg@example.com"])
    session_id, _ = accounts.create_session(user, "192.0.2.1", 1)
    found = accounts.session(session_id)
    assert found is not None
    assert found.user.name == "ldap:jörg"
    accounts.remove_user("ldap:jörg")
    assert accounts.session(session_id) is None


@pytest.mark.parametrize(
    ("origin", "login"),
    [
        ("kerberos", "bob"),
        ("imap", ""),
        ("imap", "   "),
        ("imap", "bob\r\nA1 LOGOUT"),
        ("ldap", "bob\x00"),
        ("ldap", "x" * 201),
    ],
)
def test_odd_logins_are_refused(accounts: Accounts, origin: str, login: str) -> None:
    with pytest.raises(AccountError):
        external_name(origin, login)
    with pytest.raises(AccountError):
        accounts.external_user(origin, login, "user", [])


def test_bad_role_or_address_from_a_server_is_refused(accounts: Accounts) -> None:
    with pytest.raises(AccountError, match="unknown role"):
        accounts.external_user("ldap", "bob", "root", [])
    with pytest.raises(AccountError, match="not a mail address"):
        accounts.external_user("imap", "bob", "user", ["bob@evil@example.com"])
    assert accounts.get_user("imap:bob") is None
