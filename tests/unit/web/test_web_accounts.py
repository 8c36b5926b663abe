"""The accounts database: users, passwords, tokens, sessions, the audit chain, the schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher

from postfix_archiver.chain import GENESIS
from postfix_archiver.config import Config
from postfix_archiver.errors import AccountError
from postfix_archiver.web.accounts import MIGRATIONS, TOKEN_PREFIX, Accounts, audit_hash

from .web_helpers import CHEAP, sql


def test_users_roles_and_addresses(accounts: Accounts) -> None:
    bob = accounts.add_user("bob", "user", "bob's password", ["Bob@Example.com", "bob@example.com",
                                                               " b2@example.com "])  # fmt: skip
    assert bob.addresses == ("bob@example.com", "b2@example.com")  # lower case, once each
    assert (bob.sees_all, bob.can_audit, bob.is_admin) == (False, False, False)
    assert bob.visible_to == ("bob@example.com", "b2@example.com")
    audra = accounts.add_user("audra", "auditor", "audra's password")
    assert (audra.sees_all, audra.can_audit, audra.is_admin, audra.visible_to) == (
        True, True, False, None,
    )  # fmt: skip
    admin = accounts.add_user("admin", "admin", "admin's password")
    assert (admin.sees_all, admin.can_audit, admin.is_admin) == (True, True, True)
    assert [u.name for u in accounts.users()] == ["admin", "audra", "bob"]
    assert accounts.get_user("BOB") == bob  # names are case-insensitive
    assert accounts.count_users() == 3
    updated = accounts.update_user("bob", role="auditor", addresses=[])
    assert (updated.role, updated.addresses) == ("auditor", ())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a: a.add_user("", "user", "long enough"), "bad user name"),
        (lambda a: a.add_user("a b", "user", "long enough"), "bad user name"),
        (lambda a: a.add_user("-x", "user", "long enough"), "bad user name"),
        (lambda a: a.add_user("x" * 65, "user", "long enough"), "bad user name"),
        (lambda a: a.add_user("ok", "root", "long enough"), "unknown role 'root'"),
        (lambda a: a.add_user("ok", "user", "short"), "password too short"),
        (lambda a: a.add_user("ok", "user", "x" * 2000), "password too long"),
        (lambda a: a.add_user("ok", "user", "long enough", ["nope"]), "not a mail address"),
        (lambda a: a.add_user("ok", "user", "long enough", ["a@b c"]), "not a mail address"),
        (lambda a: a.update_user("ghost", role="user"), "no user 'ghost'"),
        (lambda a: a.set_password("ghost", "long enough"), "no user 'ghost'"),
        (lambda a: a.remove_user("ghost"), "no user 'ghost'"),
        (lambda a: a.create_token("ghost"), "no user 'ghost'"),
    ],
)
def test_refusals_say_why(accounts: Accounts, call: object, message: str) -> None:
    with pytest.raises(AccountError, match=message):
        call(accounts)  # type: ignore[operator]
    assert accounts.count_users() == 0


def test_duplicate_names_are_refused(accounts: Accounts) -> None:
    accounts.add_user("bob", "user", "long enough")
    with pytest.raises(AccountError, match="exists already"):
        accounts.add_user("Bob", "admin", "long enough")


def test_the_last_admin_stays(accounts: Accounts) -> None:
    accounts.add_user("root", "admin", "long enough")
    with pytest.raises(AccountError, match="refusing to demote the last admin"):
        accounts.update_user("root", role="auditor")
    with pytest.raises(AccountError, match="refusing to remove the last admin"):
        accounts.remove_user("root")
    accounts.add_user("second", "admin", "long enough")
    accounts.update_user("root", role="user")
    accounts.remove_user("root")
    assert [u.name for u in accounts.users()] == ["second"]


def test_passwords_are_argon2_and_checked(accounts: Accounts) -> None:
    accounts.add_user("bob", "user", "bob's password")
    ((stored,),) = sql(accounts.path, "SELECT password_hash FROM users")
    assert stored.startswith("$argon2id$")
    assert accounts.authenticate("bob", "bob's password") is not None
    assert accounts.authenticate("bob", "Bob's password") is None
    assert accounts.authenticate("nobody", "bob's password") is None
    assert accounts.authenticate("bob", "x" * 5000) is None


def test_weak_old_hashes_are_upgraded_on_login(config: Config) -> None:
    with Accounts.open(config, hasher=CHEAP) as old:
        old.add_user("bob", "user", "bob's password")
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    with Accounts.open(config, hasher=stronger) as new:
        assert new.authenticate("bob", "bob's password") is not None
        ((stored,),) = sql(new.path, "SELECT password_hash FROM users")
        assert "t=2" in stored


def test_new_password_ends_sessions(accounts: Accounts) -> None:
    bob = accounts.add_user("bob", "user", "bob's password")
    session_id, _ = accounts.create_session(bob, "192.0.2.1", 8)
    assert accounts.session(session_id) is not None
    accounts.set_password("bob", "a new password")
    assert accounts.session(session_id) is None
    assert accounts.authenticate("bob", "bob's password") is None
    assert accounts.authenticate("bob", "a new password") is not None


def test_tokens(accounts: Accounts) -> None:
    bob = accounts.add_user("bob", "user", "bob's password")
    info, secret = accounts.create_token("bob", "  laptop  ")
    assert secret.startswith(TOKEN_PREFIX)
    assert len(secret) > 40
    assert info.label == "laptop"
    assert accounts.user_for_token(secret) == (bob, info.id)
    assert accounts.user_for_token(secret + "x") is None
    assert accounts.user_for_token(secret[len(TOKEN_PREFIX) :]) is None
    second, other = accounts.create_token("bob")
    assert second.label == "api"
    assert [t.id for t in accounts.tokens("bob")] == [info.id, second.id]
    assert accounts.revoke_token("bob", info.id) == 1
    assert accounts.revoke_token("bob", info.id) == 0
    assert accounts.user_for_token(secret) is None
    assert accounts.user_for_token(other) is not None
    assert accounts.revoke_token("bob") == 1
    assert accounts.user_for_token(other) is None


def test_sessions_expire_and_end(config: Config) -> None:
    now = [1000.0]
    with Accounts.open(config, hasher=CHEAP, clock=lambda: now[0]) as accounts:
        bob = accounts.add_user("bob", "user", "bob's password")
        session_id, session = accounts.create_session(bob, "192.0.2.1", 2)
        assert session.expires == 1000 + 7200
        found = accounts.session(session_id)
        assert found is not None
        assert found.user == bob
        assert found.csrf == session.csrf
        now[0] += 7200
        assert accounts.session(session_id) is None
        second, _ = accounts.create_session(bob, "192.0.2.1", 2)  # also purges the expired
        assert sql(accounts.path, "SELECT count(*) FROM sessions") == [(1,)]
        accounts.end_session(second)
        assert accounts.session(second) is None
        assert accounts.session("x" * 500) is None


def test_removing_a_user_removes_their_sessions_and_tokens(accounts: Accounts) -> None:
    accounts.add_user("admin", "admin", "long enough")
    bob = accounts.add_user("bob", "user", "bob's password")
    session_id, _ = accounts.create_session(bob, "192.0.2.1", 1)
    _, secret = accounts.create_token("bob")
    accounts.record("bob", "192.0.2.1", "login", {"ok": True})
    accounts.remove_user("bob")
    assert accounts.session(session_id) is None
    assert accounts.user_for_token(secret) is None
    assert accounts.audit()[0] == 1  # the audit entry stays


def test_audit_chain(accounts: Accounts) -> None:
    first = accounts.record("bob", "192.0.2.1", "search", {"query": "invoice"})
    second = accounts.record("bob", "192.0.2.1", "view", {"message": 3})
    assert (first.id, first.prev_hash) == (1, GENESIS)
    assert second.prev_hash == first.hash
    assert second.hash == audit_hash(first.hash, 2, second.time, "bob", "192.0.2.1", "view",
                                     {"message": 3})  # fmt: skip
    check = accounts.verify_audit()
    assert (check.ok, check.entries, check.head) == (True, 2, second.hash)
    total, entries = accounts.audit(action="search")
    assert total == 1
    assert entries[0].detail == {"query": "invoice"}


def test_audit_verification_finds_a_gap(accounts: Accounts) -> None:
    for n in range(3):
        accounts.record("bob", "192.0.2.1", "search", {"n": n})
    sql(accounts.path, "DROP TRIGGER audit_no_delete")
    sql(accounts.path, "DELETE FROM audit WHERE id = 2")
    check = accounts.verify_audit()
    assert (check.ok, check.problem) == (False, "entry 2 is missing (next is 3)")


def test_schema_version_and_a_newer_database_is_refused(config: Config, tmp_path: Path) -> None:
    with Accounts.open(config, hasher=CHEAP) as accounts:
        path = accounts.path
    assert sql(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    sql(path, f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(AccountError, match="newer than this postfix-archiver knows"):
        Accounts(path)


def test_database_file_is_private(config: Config) -> None:
    with Accounts.open(config, hasher=CHEAP) as accounts:
        assert accounts.path == config.archive.home / "web.sqlite"
        assert accounts.path.stat().st_mode & 0o777 == 0o600
