"""What only the PostgreSQL accounts have: a server (unreachable, a newer schema, a database
shared with the catalog), several web servers sharing users, sessions and one audit chain,
and an audit table the server itself keeps append-only.

The ``Accounts`` contract itself runs over this backend in ``tests/unit/accounts``.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from archiver_process import archiver_cmd
from argon2 import PasswordHasher
from tests.pg_cluster import cluster, postgresql_url

from postfix_archiver.accounts import accounts_exist, open_accounts
from postfix_archiver.accounts.postgresql import PostgresAccounts
from postfix_archiver.catalog import open_catalog
from postfix_archiver.errors import AccountError

pytestmark = [pytest.mark.integration]

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
WAIT = 60.0  # seconds; only reached when something hangs


@pytest.fixture
def url() -> str:
    return postgresql_url()


@pytest.fixture
def accounts(url: str) -> Iterator[PostgresAccounts]:
    with open_accounts(url, hasher=CHEAP) as opened:
        assert isinstance(opened, PostgresAccounts)
        yield opened


def sql(url: str, statement: str) -> list[tuple[object, ...]]:
    """One statement on a connection of its own, as a person with psql would."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


def test_an_unreachable_server_is_one_line_naming_the_url_without_its_password() -> None:
    url = f"postgresql://web:s3cret-pw@127.0.0.1:{cluster().port + 1}/archive"  # nobody there
    for call in (lambda: open_accounts(url), lambda: accounts_exist(url)):
        with pytest.raises(AccountError) as caught:
            call()
        message = str(caught.value)
        assert "s3cret-pw" not in message
        assert "\n" not in message
        assert message.startswith(
            "cannot connect to the accounts database postgresql://web@127.0.0.1:"
        )


def test_nothing_is_created_until_asked(url: str) -> None:
    assert not accounts_exist(url)
    with pytest.raises(AccountError, match=r"no web users yet .*user add NAME"):
        open_accounts(url, create=False)
    assert sql(url, "SELECT to_regnamespace('accounts')") == [(None,)]
    open_accounts(url, hasher=CHEAP).close()
    assert accounts_exist(url)
    open_accounts(url, create=False).close()


def test_a_schema_newer_than_this_program_is_refused(accounts: PostgresAccounts, url: str) -> None:
    accounts.close()
    sql(url, "UPDATE accounts.schema_version SET version = 99")
    with pytest.raises(AccountError, match=r"schema version 99, newer .*upgrade postfix-archiver"):
        open_accounts(url)


def test_the_catalogs_database_holds_the_accounts_too(url: str) -> None:
    # one database for both: the accounts' tables and schema_version are their own
    catalog = open_catalog(url)
    try:
        with open_accounts(url, hasher=CHEAP) as accounts:
            accounts.add_user("bob", "admin", "long enough")
            accounts.record("bob", "local", "login")
        assert catalog.stats().messages == 0
    finally:
        catalog.close()
    catalog = open_catalog(url)  # its schema_version is not the accounts'
    catalog.close()
    with open_accounts(url, hasher=CHEAP) as again:
        assert again.verify_audit().entries == 1


def test_the_server_refuses_to_change_the_audit_log(accounts: PostgresAccounts, url: str) -> None:
    accounts.record("bob", "192.0.2.1", "login")
    for statement in (
        "UPDATE accounts.audit SET \"user\" = 'someone else'",
        "DELETE FROM accounts.audit WHERE id = 1",
        "TRUNCATE accounts.audit",
        "INSERT INTO accounts.audit SELECT * FROM accounts.audit "
        "ON CONFLICT (id) DO UPDATE SET action = 'x'",
    ):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            sql(url, statement)
    assert accounts.verify_audit().ok


def test_verification_finds_an_entry_removed_behind_its_back(
    accounts: PostgresAccounts, url: str
) -> None:
    for n in range(3):
        accounts.record("bob", "192.0.2.1", "search", {"n": n})
    sql(url, "ALTER TABLE accounts.audit DISABLE TRIGGER audit_append_only")
    sql(url, "DELETE FROM accounts.audit WHERE id = 2")
    check = accounts.verify_audit()
    assert (check.ok, check.problem) == (False, "entry 2 is missing (next is 3)")


def test_two_web_servers_share_users_sessions_and_tokens(url: str) -> None:
    with (
        open_accounts(url, hasher=CHEAP) as one,
        open_accounts(url, hasher=CHEAP) as two,
    ):
        one.add_user("root", "admin", "long enough")
        bob = one.add_user("bob", "user", "bob's password")
        session_id, _ = one.create_session(bob, "192.0.2.1", 8)
        _, token = two.create_token("bob")
        found = two.session(session_id)
        assert found is not None
        assert found.user == bob
        assert one.user_for_token(token) is not None
        two.set_password("bob", "a new password")  # ends bob's sessions on every server
        assert one.session(session_id) is None
        assert one.authenticate("bob", "a new password") is not None


def test_several_servers_writing_at_once_keep_one_audit_chain(url: str) -> None:
    # three web servers (a connection each), four threads each: every entry chains to the
    # one before it, none is lost, and no two share a place
    servers = [open_accounts(url, hasher=CHEAP) for _ in range(3)]
    errors: list[BaseException] = []
    start = threading.Barrier(12)
    per_thread = 15

    def write(server: int, thread: int) -> None:
        start.wait(WAIT)
        try:
            for n in range(per_thread):
                servers[server].record(f"u{server}", "192.0.2.1", "view", {"t": thread, "n": n})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s, t)) for s in range(3) for t in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert errors == []
        check = servers[0].verify_audit()
        assert (check.ok, check.entries, check.problem) == (True, 12 * per_thread, None)
        assert servers[1].audit(limit=1)[0] == 12 * per_thread
    finally:
        for server in servers:
            server.close()


def test_the_command_line_uses_the_configured_accounts(tmp_path: Path, url: str) -> None:
    # two hosts' configs (two homes), one accounts database: a user added on one is listed
    # on the other, and neither home gets a web.sqlite
    configs = []
    for host in ("web1", "web2"):
        home = tmp_path / host
        config = tmp_path / f"{host}.toml"
        config.write_text(f'[archive]\nhome = "{home}"\naccounts = "{url}"\n')
        configs.append(config)

    def cli(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
        return subprocess.run(
            [archiver_cmd(), *args, "--config", str(config)],
            input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip

    listed = cli(configs[1], "user", "list")
    assert listed.returncode == 0, listed.stderr
    added = cli(configs[0], "user", "add", "carol", "--role", "admin", "--password-stdin",
                stdin="carol's password\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = cli(configs[1], "user", "list")
    assert "carol" in listed.stdout, listed.stdout + listed.stderr
    audit = cli(configs[1], "audit", "--verify")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert not list(tmp_path.rglob("web.sqlite"))


def test_a_lost_connection_is_one_error_then_connected_again(
    accounts: PostgresAccounts, url: str
) -> None:
    # the server restarted, or a firewall dropped the connection: the call that finds out
    # fails with one line (the web server answers it as an error), the next one reconnects
    accounts.add_user("bob", "admin", "long enough")
    sql(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'postfix-archiver accounts'")  # fmt: skip
    with pytest.raises(AccountError) as caught:
        accounts.record("bob", "192.0.2.1", "login")
    assert str(caught.value).startswith(f"accounts database {url}: ")
    assert "\n" not in str(caught.value)
    assert accounts.record("bob", "192.0.2.1", "login").id == 1
    assert accounts.require_user("bob").is_admin
