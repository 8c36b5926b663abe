"""The ``Accounts`` contract, run against every backend, then what only SQLite can show.

Add a backend by adding a factory to ``BACKENDS``; every test in ``TestContract`` then runs
against it (PostgreSQL takes a new database on the session's private cluster, and skips
without one: ``tests/pg_cluster.py``). What only a particular backend can show (its file,
its schema, tampering with its rows) lives in a class of its own below, PostgreSQL's in
``test_accounts_postgresql.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher
from tests.pg_cluster import postgresql_url
from tests.unit.web.web_helpers import sql

from postfix_archiver.accounts import (
    DB_NAME,
    TOKEN_PREFIX,
    Accounts,
    accounts_exist,
    home_url,
    open_accounts,
)
from postfix_archiver.accounts.audit import audit_hash
from postfix_archiver.accounts.sqlite import SqliteAccounts
from postfix_archiver.accounts.sqlite_schema import MIGRATIONS
from postfix_archiver.chain import GENESIS
from postfix_archiver.errors import AccountError

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # argon2, fast for tests

# a backend: (a fresh directory, keyword arguments of open_accounts) -> Accounts, the same
# database each time it is called with the same directory
AccountsFactory = Callable[..., Accounts]

_DATABASES: dict[Path, str] = {}


def _postgresql(tmp: Path, **kw: Any) -> Accounts:
    # one new database per test directory, the same one each time it is opened again
    if tmp not in _DATABASES:
        _DATABASES[tmp] = postgresql_url()
    return open_accounts(_DATABASES[tmp], **kw)


BACKENDS: dict[str, AccountsFactory] = {
    "sqlite": lambda tmp, **kw: open_accounts(home_url(tmp), **kw),
    "postgresql": _postgresql,
}


def backend_params() -> list[Any]:
    """``BACKENDS`` as parameters; a backend that needs a server is ``integration``."""
    return [
        pytest.param(name, marks=() if name == "sqlite" else (pytest.mark.integration,))
        for name in sorted(BACKENDS)
    ]


@pytest.fixture(params=backend_params())
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Accounts]:
    """Opens the backend's database under test (the same one on every call)."""
    factory = BACKENDS[request.param]

    def opened(**kw: Any) -> Accounts:
        kw.setdefault("hasher", CHEAP)
        return factory(tmp_path, **kw)

    return opened


@pytest.fixture
def accounts(backend: Callable[..., Accounts]) -> Iterator[Accounts]:
    with backend() as accounts:
        yield accounts


class TestContract:
    def test_has_a_url(self, accounts: Accounts) -> None:
        assert "://" in accounts.url

    def test_users_roles_and_addresses(self, accounts: Accounts) -> None:
        bob = accounts.add_user("bob", "user", "bob's password", ["Bob@Example.com",
                                "bob@example.com", " b2@example.com "])  # fmt: skip
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
            (lambda a: a.require_user("ghost"), "no user 'ghost'"),
        ],
    )
    def test_refusals_say_why(self, accounts: Accounts, call: object, message: str) -> None:
        with pytest.raises(AccountError, match=message):
            call(accounts)  # type: ignore[operator]
        assert accounts.count_users() == 0

    def test_duplicate_names_are_refused(self, accounts: Accounts) -> None:
        accounts.add_user("bob", "user", "long enough")
        with pytest.raises(AccountError, match="exists already"):
            accounts.add_user("Bob", "admin", "long enough")

    def test_the_last_admin_stays(self, accounts: Accounts) -> None:
        accounts.add_user("root", "admin", "long enough")
        with pytest.raises(AccountError, match="refusing to demote the last admin"):
            accounts.update_user("root", role="auditor")
        with pytest.raises(AccountError, match="refusing to remove the last admin"):
            accounts.remove_user("root")
        accounts.add_user("second", "admin", "long enough")
        accounts.update_user("root", role="user")
        accounts.remove_user("root")
        assert [u.name for u in accounts.users()] == ["second"]

    def test_passwords_are_checked(self, accounts: Accounts) -> None:
        accounts.add_user("bob", "user", "bob's password")
        assert accounts.authenticate("bob", "bob's password") is not None
        assert accounts.authenticate("BOB", "bob's password") is not None
        assert accounts.authenticate("bob", "Bob's password") is None
        assert accounts.authenticate("nobody", "bob's password") is None
        assert accounts.authenticate("bob", "x" * 5000) is None

    def test_a_successful_login_is_kept_as_the_last_login(self, accounts: Accounts) -> None:
        accounts.add_user("bob", "user", "bob's password")
        assert accounts.require_user("bob").last_login is None
        assert accounts.authenticate("bob", "wrong password") is None
        assert accounts.require_user("bob").last_login is None
        user = accounts.authenticate("bob", "bob's password")
        assert user is not None
        assert user.last_login is not None
        assert user.last_login >= accounts.require_user("bob").created
        assert accounts.users()[0].last_login == user.last_login

    def test_new_password_ends_sessions(self, accounts: Accounts) -> None:
        bob = accounts.add_user("bob", "user", "bob's password")
        session_id, _ = accounts.create_session(bob, "192.0.2.1", 8)
        _, token = accounts.create_token("bob")
        assert accounts.session(session_id) is not None
        accounts.set_password("bob", "a new password")
        assert accounts.session(session_id) is None
        assert accounts.user_for_token(token) is not None  # tokens stay
        assert accounts.authenticate("bob", "bob's password") is None
        assert accounts.authenticate("bob", "a new password") is not None

    def test_tokens(self, accounts: Accounts) -> None:
        bob = accounts.add_user("bob", "user", "bob's password")
        info, secret = accounts.create_token("bob", "  laptop  ")
        assert secret.startswith(TOKEN_PREFIX)
        assert len(secret) > 40
        assert info.label == "laptop"
        assert accounts.user_for_token(secret) == (bob, info.id)
        assert accounts.user_for_token(secret + "x") is None
        assert accounts.user_for_token(secret[len(TOKEN_PREFIX) :]) is None
        assert accounts.user_for_token(TOKEN_PREFIX + "x" * 500) is None
        second, other = accounts.create_token("bob")
        assert second.label == "api"
        assert [t.id for t in accounts.tokens("bob")] == [info.id, second.id]
        assert accounts.revoke_token("bob", info.id) == 1
        assert accounts.revoke_token("bob", info.id) == 0
        assert accounts.user_for_token(secret) is None
        assert accounts.user_for_token(other) is not None
        assert accounts.revoke_token("bob") == 1
        assert accounts.user_for_token(other) is None

    def test_numbers_past_64_bits_are_answered(self, accounts: Accounts) -> None:
        accounts.add_user("bob", "user", "long enough")
        accounts.record("bob", "local", "login")
        assert accounts.revoke_token("bob", 2**64) == 0
        assert accounts.revoke_token("bob", -1) == 0
        assert accounts.audit(offset=2**64, limit=2**64) == (1, [])
        assert len(accounts.audit(limit=2**64)[1]) == 1

    def test_sessions_expire_and_end(self, backend: Callable[..., Accounts]) -> None:
        now = [1000.0]
        with backend(clock=lambda: now[0]) as accounts:
            bob = accounts.add_user("bob", "user", "bob's password")
            session_id, session = accounts.create_session(bob, "192.0.2.1", 2)
            assert session.expires == 1000 + 7200
            found = accounts.session(session_id)
            assert found is not None
            assert found.user == bob
            assert found.csrf == session.csrf
            now[0] += 7200
            assert accounts.session(session_id) is None
            second, _ = accounts.create_session(bob, "192.0.2.1", 2)
            accounts.end_session(second)
            assert accounts.session(second) is None
            assert accounts.session("x" * 500) is None

    def test_removing_a_user_removes_their_sessions_and_tokens(self, accounts: Accounts) -> None:
        accounts.add_user("admin", "admin", "long enough")
        bob = accounts.add_user("bob", "user", "bob's password")
        session_id, _ = accounts.create_session(bob, "192.0.2.1", 1)
        _, secret = accounts.create_token("bob")
        accounts.record("bob", "192.0.2.1", "login", {"ok": True})
        accounts.remove_user("bob")
        assert accounts.session(session_id) is None
        assert accounts.user_for_token(secret) is None
        assert accounts.audit()[0] == 1  # the audit entry stays

    def test_audit_chain(self, accounts: Accounts) -> None:
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

    def test_audit_pages_and_filters(self, accounts: Accounts) -> None:
        for n, (user, action) in enumerate(
            [("bob", "search"), ("eve", "search.saved"), ("bob", "view"), ("bob", "searchx")]
        ):
            accounts.record(user, "192.0.2.1", action, {"n": n, "when": Path("/x")})
        total, entries = accounts.audit(limit=2)
        assert (total, [e.id for e in entries]) == (4, [4, 3])  # newest first
        assert [e.id for e in accounts.audit(limit=2, offset=2)[1]] == [2, 1]
        assert [e.id for e in accounts.audit(action="search")[1]] == [2, 1]  # and search.*
        assert [e.id for e in accounts.audit(user="bob")[1]] == [4, 3, 1]
        assert accounts.audit(action="search_")[0] == 0  # LIKE wildcards are literal
        assert entries[0].detail == {"n": 3, "when": "/x"}  # stored as JSON, str() if need be

    def test_audit_by_time_text_and_before(self, accounts: Accounts) -> None:
        accounts.record("bob", "192.0.2.1", "search", {"query": "invoice Müller 100%"})
        accounts.record("eve", "2001:db8::1", "view", {"message": 7})
        accounts.record("bob", "192.0.2.1", "search", {"query": 'say "hi" \\ x_y'})
        _, entries = accounts.audit()
        times = [e.time for e in reversed(entries)]
        assert [e.id for e in accounts.audit(since=times[1])[1]] == [3, 2]
        assert [e.id for e in accounts.audit(until=times[1])[1]] == [1]
        assert [e.id for e in accounts.audit(since=times[1], until=times[2])[1]] == [2]
        assert [e.id for e in accounts.audit(text="Müller")[1]] == [1]
        assert [e.id for e in accounts.audit(text="INVOICE")[1]] == [1]
        assert [e.id for e in accounts.audit(text="100%")[1]] == [1]
        assert accounts.audit(text="0%")[0] == 1  # % is literal, not "anything"
        assert accounts.audit(text="x_")[0] == 1
        assert accounts.audit(text="_")[0] == 1  # only entry 3 has an underscore
        assert [e.id for e in accounts.audit(text='"hi" \\ x')[1]] == [3]
        assert [e.id for e in accounts.audit(text="2001:db8")[1]] == [2]  # the client too
        assert [e.id for e in accounts.audit(text="view")[1]] == [2]  # and the action
        assert [e.id for e in accounts.audit(before=3, user="bob")[1]] == [1]
        assert accounts.audit(before=2**80)[0] == 3  # past 64 bits: answered
        assert accounts.audit(text="x" * 10_000)[0] == 0
        assert accounts.audit(count=False, text="view") == (-1, accounts.audit(text="view")[1])

    def test_an_empty_audit_log_verifies(self, accounts: Accounts) -> None:
        check = accounts.verify_audit()
        assert (check.ok, check.entries, check.head, check.problem) == (True, 0, GENESIS, None)

    def test_hostile_text_is_stored_or_answered_never_raised(self, accounts: Accounts) -> None:
        # a NUL (PostgreSQL's text holds none) and a lone surrogate (no database encodes
        # one) from a login form, a client and a token label: U+FFFD on every backend
        bob = accounts.add_user("bob", "user", "bob's password")
        for name in ("bob\x00", "\x00", "b\ud800", "x" * 100_000, "\u0663", "b\xffb"):
            assert accounts.get_user(name) is None
            assert accounts.authenticate(name, "bob's password") is None
            with pytest.raises(AccountError, match="no user"):
                accounts.require_user(name)
            with pytest.raises(AccountError, match="no user"):
                accounts.update_user(name, role="user")
        entry = accounts.record("ev\x00il\ud800", "192.0.2.1\x00", "login", {"n\x00": "\x00"})
        assert (entry.user, entry.client) == ("ev\ufffdil?", "192.0.2.1\ufffd")
        assert entry.detail == {"n\x00": "\x00"}  # JSON escapes a NUL: kept as it was
        info, _ = accounts.create_token("bob", "lap\x00top\udfff")
        assert info.label == "lap\ufffdtop?"
        session_id, _ = accounts.create_session(bob, "\x00" * 500, 1)
        assert accounts.session(session_id) is not None
        assert accounts.audit(user="ev\x00il?")[0] == 1
        assert accounts.audit(text="\x00")[0] == 1
        assert accounts.audit(text="\ud800", until="\uffff")[0] == 1
        assert accounts.audit(since="\x00")[0] == 0  # U+FFFD: after every time
        assert accounts.audit(limit=-1, offset=-5)[1] == []
        assert accounts.verify_audit().ok

    def test_an_unknown_name_costs_a_password_check(self, backend: Callable[..., Accounts]) -> None:
        # the time a login takes must not tell which names exist: an unknown name is
        # verified against a dummy hash, as a wrong password is against the real one
        hasher = CountingHasher(time_cost=1, memory_cost=8, parallelism=1)
        with backend(hasher=hasher) as accounts:
            accounts.add_user("bob", "user", "bob's password")
            hasher.verified = 0
            assert accounts.authenticate("bob", "wrong password") is None
            assert accounts.authenticate("nobody", "wrong password") is None
            assert accounts.authenticate("bob\x00", "wrong password") is None
            assert hasher.verified == 3


class CountingHasher(PasswordHasher):
    """argon2's hasher, counting the verifications it is asked for."""

    verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified += 1
        return super().verify(hash, password)


class TestSqlite:
    """What only the SQLite backend can show: its file, schema, triggers and rows."""

    @pytest.fixture
    def accounts(self, tmp_path: Path) -> Iterator[SqliteAccounts]:
        with SqliteAccounts(tmp_path / DB_NAME, hasher=CHEAP) as accounts:
            yield accounts

    def test_the_url_of_an_archive_home(self, tmp_path: Path) -> None:
        url = home_url(tmp_path)
        assert url == f"sqlite://{tmp_path}/web.sqlite"
        assert not accounts_exist(url)
        with open_accounts(url, hasher=CHEAP) as accounts:
            assert isinstance(accounts, SqliteAccounts)
            assert accounts.path == tmp_path / "web.sqlite"
        assert accounts_exist(url)

    def test_other_urls_are_refused(self) -> None:
        with pytest.raises(AccountError, match="unsupported accounts URL 'mysql://u@db/web'"):
            open_accounts("mysql://u:secret@db/web")
        with pytest.raises(AccountError, match="unsupported accounts URL"):
            accounts_exist("mysql://localhost/web")

    def test_the_file_is_private(self, accounts: SqliteAccounts) -> None:
        assert accounts.path.stat().st_mode & 0o777 == 0o600

    def test_create_false_creates_nothing(self, tmp_path: Path) -> None:
        path = tmp_path / "home" / DB_NAME
        with pytest.raises(AccountError, match="no web users yet"):
            SqliteAccounts(path, create=False)
        assert not path.parent.exists()

    def test_passwords_are_argon2(self, accounts: SqliteAccounts) -> None:
        accounts.add_user("bob", "user", "bob's password")
        ((stored,),) = sql(accounts.path, "SELECT password_hash FROM users")
        assert stored.startswith("$argon2id$")

    def test_weak_old_hashes_are_upgraded_on_login(self, tmp_path: Path) -> None:
        path = tmp_path / DB_NAME
        with SqliteAccounts(path, hasher=CHEAP) as old:
            old.add_user("bob", "user", "bob's password")
        stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
        with SqliteAccounts(path, hasher=stronger) as new:
            assert new.authenticate("bob", "bob's password") is not None
            ((stored,),) = sql(path, "SELECT password_hash FROM users")
            assert "t=2" in stored

    def test_a_new_session_drops_expired_ones(self, tmp_path: Path) -> None:
        now = [1000.0]
        with SqliteAccounts(tmp_path / DB_NAME, hasher=CHEAP, clock=lambda: now[0]) as accounts:
            bob = accounts.add_user("bob", "user", "bob's password")
            accounts.create_session(bob, "192.0.2.1", 2)
            now[0] += 7200
            accounts.create_session(bob, "192.0.2.1", 2)
            assert sql(accounts.path, "SELECT count(*) FROM sessions") == [(1,)]

    def test_audit_verification_finds_a_gap(self, accounts: SqliteAccounts) -> None:
        for n in range(3):
            accounts.record("bob", "192.0.2.1", "search", {"n": n})
        sql(accounts.path, "DROP TRIGGER audit_no_delete")
        sql(accounts.path, "DELETE FROM audit WHERE id = 2")
        check = accounts.verify_audit()
        assert (check.ok, check.entries, check.problem) == (
            False, 1, "entry 2 is missing (next is 3)",
        )  # fmt: skip

    def test_audit_verification_finds_edits_and_broken_links(
        self, accounts: SqliteAccounts
    ) -> None:
        for n in range(3):
            accounts.record("bob", "192.0.2.1", "search", {"n": n})
        head = accounts.verify_audit().head
        sql(accounts.path, "DROP TRIGGER audit_no_update")
        sql(accounts.path, "UPDATE audit SET detail = '{\"n\": 7}' WHERE id = 3")
        assert accounts.verify_audit().problem == "entry 3 was altered"
        sql(accounts.path, "UPDATE audit SET prev_hash = hash WHERE id = 3")
        check = accounts.verify_audit()
        assert check.problem is not None
        assert check.problem.startswith("entry 3 does not link to ")
        assert check.head != head

    def test_the_audit_log_is_append_only(self, accounts: SqliteAccounts) -> None:
        accounts.record("bob", "192.0.2.1", "login")
        for statement in (
            "UPDATE audit SET user = 'someone else'",
            "DELETE FROM audit WHERE id = 1",
            "INSERT OR REPLACE INTO audit (id, time, user, client, action, detail, prev_hash,"
            " hash) VALUES (1, 'now', 'x', 'x', 'login', '{}', 'x', 'x')",
        ):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                sql(accounts.path, statement)
        assert accounts.verify_audit().ok

    def test_hashes_of_existing_databases_still_verify(self, tmp_path: Path) -> None:
        # an audit row as the previous release wrote it; its hash was computed by that
        # release's code, not by the code under test
        path = tmp_path / DB_NAME
        with SqliteAccounts(path, hasher=CHEAP):
            pass
        old_hash = "ab9539c61b5f5029380bfff205496532fb856850bd8fd0e2d7981586cd9625cc"
        sql(path, "INSERT INTO audit (id, time, user, client, action, detail, prev_hash, hash) "
            "VALUES (1, '2026-01-02T03:04:05.000006+00:00', 'bob', '192.0.2.1', 'search', "
            f"'{{\"query\": \"invoice \\u00e9\"}}', '{GENESIS}', '{old_hash}')")  # fmt: skip
        with SqliteAccounts(path, hasher=CHEAP) as accounts:
            check = accounts.verify_audit()
            assert (check.ok, check.entries, check.head) == (True, 1, old_hash)
            assert accounts.record("bob", "local", "view").prev_hash == old_hash
            assert accounts.verify_audit().entries == 2

    def test_a_store_of_the_first_schema_is_upgraded(self, tmp_path: Path) -> None:
        # a web.sqlite as release 1 made it: its schema, its user, its session and audit
        path = tmp_path / DB_NAME
        conn = sqlite3.connect(path)
        conn.executescript(MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
        conn.close()
        with SqliteAccounts(path, hasher=CHEAP) as old:
            pass
        assert sql(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
        hashed = CHEAP.hash("bob's password")
        sql(path, "INSERT INTO users (name, role, password_hash, addresses, created) "
            f"VALUES ('bob', 'user', '{hashed}', '[]', '2026-01-02T03:04:05+00:00')")  # fmt: skip
        with SqliteAccounts(path, hasher=CHEAP) as old:
            assert old.require_user("bob").last_login is None
            assert old.authenticate("bob", "bob's password") is not None
            assert old.require_user("bob").last_login is not None

    def test_schema_version_and_a_newer_database_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / DB_NAME
        with SqliteAccounts(path, hasher=CHEAP):
            pass
        assert sql(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
        sql(path, f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
        with pytest.raises(AccountError, match="newer than this postfix-archiver knows"):
            SqliteAccounts(path)
