"""Accounts in PostgreSQL: ``accounts = "postgresql://USER@HOST:PORT/DB"``. See ``Accounts``.

For several web servers in front of one archive: they share users, sessions, API tokens and
one audit log. The tables are in the PostgreSQL schema ``accounts`` (``postgresql_schema``),
so the database can be the catalog's own.

One audit chain with several writers. Every write transaction first takes one
transaction-level advisory lock (``pg_advisory_xact_lock``; not the catalog's, so a login
never waits for a mail commit), held until it commits or rolls back: ``record`` reads the
newest entry and appends the next one after it, and two servers reading the same newest entry
would fork the chain. The lock is what ``BEGIN IMMEDIATE`` is to the SQLite backend, which
also keeps "the last admin" from being demoted twice at once on two servers. Readers never
take it.

The password comes from libpq's usual places (the URL, ``PGPASSWORD``, ``~/.pgpass``) and is
never logged: errors name the URL without it. Every value is a bound parameter.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from argon2 import PasswordHasher

from ..errors import AccountError
from .audit import verify_entries
from .checks import check_addresses, check_name, check_role, external_name, is_external
from .passwords import TOKEN_PREFIX, Passwords, new_secret, new_token, token_digest
from .postgresql_schema import MIGRATIONS, SCHEMA
from .records import AuditCheck, AuditEntry, Session, TokenInfo, User
from .rows import (
    AUDIT_COLUMNS,
    MAX_INT,
    USER_COLUMNS,
    Dialect,
    audit_where,
    bounded,
    entry_params,
    entry_row,
    next_entry,
    now_iso,
    possible_name,
    storable,
    token_label,
    user_row,
)

# the advisory lock of every accounts write ("pfaccnts" in ASCII; the catalog's is
# "pfarchiv": mail and logins do not wait for each other)
WRITE_LOCK = 0x7066616363_6E7473
# how long a write waits for another server's before giving up with a clear error
LOCK_TIMEOUT = "30s"
CONNECT_TIMEOUT = 10  # seconds
SCHEMES = ("postgresql://", "postgres://")

# PostgreSQL's ILIKE under the "C" collation folds ASCII letters only, as SQLite's LIKE does
_SQL = Dialect(param="%s", like='COLLATE "C" ILIKE')
_T = f"{SCHEMA}."  # every table is in the accounts schema


def is_postgresql(url: str) -> bool:
    return url.startswith(SCHEMES)


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "postgresql://…"
    if password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _connect(url: str) -> psycopg.Connection[Any]:
    try:
        conn = psycopg.connect(
            url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
            application_name="postfix-archiver accounts",
        )  # fmt: skip
    except (psycopg.Error, ValueError) as exc:
        raise AccountError(
            f"cannot connect to the accounts database {redact(url)}: {_first_line(exc)} "
            "(is the server running, and the URL, ~/.pgpass or PGPASSWORD right?)"
        ) from None
    try:
        conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    except BaseException:
        conn.close()
        raise
    return conn


def _version(conn: psycopg.Connection[Any]) -> int:
    found = conn.execute(f"SELECT to_regclass('{_T}schema_version')").fetchone()
    if found is None or found[0] is None:
        return 0
    row = conn.execute(f"SELECT coalesce(max(version), 0) FROM {_T}schema_version").fetchone()
    return int(row[0]) if row else 0


def accounts_exist(url: str) -> bool:
    """Whether ``url`` holds accounts yet; asking creates nothing."""
    with _connect(url) as conn:
        try:
            return _version(conn) > 0
        except psycopg.Error as exc:
            raise AccountError(f"accounts database {redact(url)}: {_first_line(exc)}") from None


class PostgresAccounts:
    """See ``Accounts``. One connection behind a lock (the web server's threads share it; a
    lost connection is opened again by the next call)."""

    def __init__(
        self,
        url: str,
        *,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
        create: bool = True,
    ) -> None:
        self.url = url
        self.shown = redact(url)
        self.passwords = Passwords(hasher)
        self.clock = clock
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = _connect(url)
        try:
            self._prepare(create)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> PostgresAccounts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = _connect(self.url)
        return self._conn

    def _newer(self, version: int) -> AccountError:
        return AccountError(
            f"accounts database {self.shown} has schema version {version}, newer than this "
            f"postfix-archiver knows ({len(MIGRATIONS)}): upgrade postfix-archiver"
        )

    def _prepare(self, create: bool) -> None:
        conn = self._connection()
        try:
            version = _version(conn)
            if version > len(MIGRATIONS):
                raise self._newer(version)
            if version == 0 and not create:
                raise AccountError(
                    f"no web users yet (no accounts in {self.shown}): add one with "
                    "`postfix-archiver user add NAME`, or give --config for another archive"
                )
            if version == len(MIGRATIONS):
                return
            with conn.transaction():
                # under the lock: two servers starting at once migrate once
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {_T}schema_version (version INTEGER NOT NULL)"
                )
                version = _version(conn)
                if version > len(MIGRATIONS):
                    raise self._newer(version)
                for step in MIGRATIONS[version:]:
                    conn.execute(step)
                conn.execute(f"DELETE FROM {_T}schema_version")
                conn.execute(
                    f"INSERT INTO {_T}schema_version (version) VALUES (%s)", (len(MIGRATIONS),)
                )
        except psycopg.Error as exc:
            raise AccountError(
                f"cannot prepare the accounts database {self.shown}: {_first_line(exc)}"
            ) from None

    def _failed(self, exc: psycopg.Error) -> AccountError:
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return AccountError(
                f"accounts database {self.shown} is locked by another process for over "
                f"{LOCK_TIMEOUT}: try again"
            )
        if isinstance(exc, psycopg.OperationalError) and self._conn is not None:
            self._conn.close()  # the next call connects again
        return AccountError(f"accounts database {self.shown}: {_first_line(exc)}")

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        """One write transaction under the accounts' advisory lock."""
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                    yield conn
            except psycopg.Error as exc:
                raise self._failed(exc) from None

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except psycopg.Error as exc:
                raise self._failed(exc) from None

    @staticmethod
    def _user_id(conn: psycopg.Connection[Any], name: str, columns: str = "id") -> Any:
        if possible_name(name) is None:
            return None
        return conn.execute(
            f"SELECT {columns} FROM {_T}users WHERE lower(name) = lower(%s) FOR UPDATE", (name,)
        ).fetchone()

    # -- users -------------------------------------------------------------------------

    def add_user(self, name: str, role: str, password: str, addresses: Sequence[str] = ()) -> User:
        check_name(name)
        check_role(role)
        addrs = check_addresses(addresses)
        digest = self.passwords.hash(password)
        with self._tx() as conn:
            if self._user_id(conn, name) is not None:
                raise AccountError(f"user {name!r} exists already (user passwd to reset it)")
            conn.execute(
                f"INSERT INTO {_T}users (name, role, password_hash, addresses, created) "
                "VALUES (%s, %s, %s, %s, %s)",
                (name, role, digest, json.dumps(list(addrs)), now_iso()),
            )
        return self.require_user(name)

    def get_user(self, name: str) -> User | None:
        if possible_name(name) is None:
            return None
        rows = self._query(
            f"SELECT {USER_COLUMNS} FROM {_T}users u WHERE lower(u.name) = lower(%s)", (name,)
        )
        return user_row(rows[0]) if rows else None

    def require_user(self, name: str) -> User:
        user = self.get_user(name)
        if user is None:
            raise AccountError(f"no user {name!r} (postfix-archiver user list shows them)")
        return user

    def users(self) -> list[User]:
        rows = self._query(
            f'SELECT {USER_COLUMNS} FROM {_T}users u ORDER BY lower(u.name) COLLATE "C"'
        )
        return [user_row(r) for r in rows]

    def count_users(self) -> int:
        return int(self._query(f"SELECT count(*) FROM {_T}users")[0][0])

    def update_user(
        self, name: str, *, role: str | None = None, addresses: Sequence[str] | None = None
    ) -> User:
        if role is not None:
            check_role(role)
        addrs = None if addresses is None else check_addresses(addresses)
        with self._tx() as conn:
            row = self._user_id(conn, name, "id, role")
            if row is None:
                raise AccountError(f"no user {name!r}")
            if role is not None and role != "admin" and row[1] == "admin":
                self._keep_an_admin(conn, int(row[0]), "demote")
            if role is not None:
                conn.execute(f"UPDATE {_T}users SET role = %s WHERE id = %s", (role, row[0]))
            if addrs is not None:
                conn.execute(
                    f"UPDATE {_T}users SET addresses = %s WHERE id = %s",
                    (json.dumps(list(addrs)), row[0]),
                )
        return self.require_user(name)

    @staticmethod
    def _keep_an_admin(conn: psycopg.Connection[Any], user_id: int, what: str) -> None:
        others = conn.execute(
            f"SELECT count(*) FROM {_T}users WHERE role = 'admin' AND id != %s", (user_id,)
        ).fetchone()
        if not others or not others[0]:
            raise AccountError(f"refusing to {what} the last admin: make another admin first")

    def set_password(self, name: str, password: str) -> User:
        if is_external(name):
            raise AccountError(
                f"{name} signs in with the {name.split(':')[0].upper()} server's password"
            )
        digest = self.passwords.hash(password)
        with self._tx() as conn:
            row = self._user_id(conn, name)
            if row is None:
                raise AccountError(f"no user {name!r}")
            conn.execute(f"UPDATE {_T}users SET password_hash = %s WHERE id = %s", (digest, row[0]))
            conn.execute(f'DELETE FROM {_T}sessions WHERE "user" = %s', (row[0],))
        return self.require_user(name)

    def remove_user(self, name: str) -> None:
        with self._tx() as conn:
            row = self._user_id(conn, name, "id, role")
            if row is None:
                raise AccountError(f"no user {name!r}")
            if row[1] == "admin":
                self._keep_an_admin(conn, int(row[0]), "remove")
            conn.execute(f"DELETE FROM {_T}users WHERE id = %s", (row[0],))

    def authenticate(self, name: str, password: str) -> User | None:
        rows = (
            self._query(
                f"SELECT {USER_COLUMNS}, u.password_hash FROM {_T}users u "
                "WHERE lower(u.name) = lower(%s)",
                (name,),
            )
            if possible_name(name) is not None
            else []
        )
        # an IMAP or LDAP user has no password here (an empty hash): never a local login
        stored = str(rows[0][6]) if rows and not is_external(str(rows[0][1])) else None
        # verified for unknown names too (against a dummy hash): the time taken says
        # nothing about which names exist
        matched = self.passwords.verify(stored, password)
        if stored is None or not matched:
            return None
        rehashed = self.passwords.rehashed(stored, password)
        with self._tx() as conn:
            user_id = int(rows[0][0])
            conn.execute(
                f"UPDATE {_T}users SET last_login = %s WHERE id = %s", (now_iso(), user_id)
            )
            if rehashed is not None:
                conn.execute(
                    f"UPDATE {_T}users SET password_hash = %s WHERE id = %s AND password_hash = %s",
                    (rehashed, user_id, stored),
                )
        return self.require_user(str(rows[0][1]))

    # -- tokens ------------------------------------------------------------------------

    def external_user(self, origin: str, login: str, role: str, addresses: Sequence[str]) -> User:
        name = external_name(origin, login)
        check_role(role)
        addrs = json.dumps(list(check_addresses(addresses)))
        now = now_iso()
        with self._tx() as conn:
            # the directory's word is the latest: role and addresses replaced at each sign-in
            # (no last-admin check: the server decides who is admin, local admins stay)
            conn.execute(
                f"INSERT INTO {_T}users (name, role, password_hash, addresses, created, "
                "last_login) VALUES (%s, %s, '', %s, %s, %s) "
                "ON CONFLICT (lower(name)) DO UPDATE SET role = excluded.role, "
                "addresses = excluded.addresses, last_login = excluded.last_login",
                (name, role, addrs, now, now),
            )
        return self.require_user(name)

    def create_token(self, name: str, label: str = "") -> tuple[TokenInfo, str]:
        if is_external(name):
            # a token would outlive the server's say: an account disabled there keeps working
            raise AccountError(
                f"{name} signs in with the {name.split(':')[0].upper()} server: no API tokens "
                "for such users (its sessions end; a token would outlive a disabled account)"
            )
        user = self.require_user(name)
        secret = new_token()
        created = now_iso()
        label = token_label(label)
        with self._tx() as conn:
            row = conn.execute(
                f'INSERT INTO {_T}tokens ("user", sha256, label, created) '
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (user.id, token_digest(secret), label, created),
            ).fetchone()
        assert row is not None
        return TokenInfo(int(row[0]), user.name, label, created), secret

    def tokens(self, name: str) -> list[TokenInfo]:
        user = self.require_user(name)
        rows = self._query(
            f'SELECT id, label, created FROM {_T}tokens WHERE "user" = %s ORDER BY id',
            (user.id,),
        )
        return [TokenInfo(int(r[0]), user.name, str(r[1]), str(r[2])) for r in rows]

    def revoke_token(self, name: str, token_id: int | None = None) -> int:
        user = self.require_user(name)
        if token_id is not None and not 0 < token_id <= MAX_INT:
            return 0  # no such token; past 64 bits the server would refuse the number
        with self._tx() as conn:
            if token_id is None:
                cur = conn.execute(f'DELETE FROM {_T}tokens WHERE "user" = %s', (user.id,))
            else:
                cur = conn.execute(
                    f'DELETE FROM {_T}tokens WHERE "user" = %s AND id = %s', (user.id, token_id)
                )
            return cur.rowcount

    def user_for_token(self, secret: str) -> tuple[User, int] | None:
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        rows = self._query(
            f"SELECT {USER_COLUMNS}, t.id FROM {_T}tokens t "
            f'JOIN {_T}users u ON u.id = t."user" WHERE t.sha256 = %s',
            (token_digest(secret),),
        )
        if not rows:
            return None
        return user_row(rows[0]), int(rows[0][6])

    # -- sessions ----------------------------------------------------------------------

    def create_session(self, user: User, client: str, hours: float) -> tuple[str, Session]:
        session_id = new_secret()
        csrf = new_secret()
        now = self.clock()
        expires = now + hours * 3600
        with self._tx() as conn:
            conn.execute(f"DELETE FROM {_T}sessions WHERE expires <= %s", (now,))
            conn.execute(
                f'INSERT INTO {_T}sessions (sha256, "user", csrf, client, created, expires) '
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (token_digest(session_id), user.id, csrf, storable(client, 200), now, expires),
            )
        return session_id, Session(user, csrf, expires)

    def session(self, session_id: str) -> Session | None:
        if len(session_id) > 200:
            return None
        rows = self._query(
            f"SELECT {USER_COLUMNS}, s.csrf, s.expires FROM {_T}sessions s "
            f'JOIN {_T}users u ON u.id = s."user" WHERE s.sha256 = %s',
            (token_digest(session_id),),
        )
        if not rows or float(rows[0][7]) <= self.clock():
            return None
        return Session(user_row(rows[0]), str(rows[0][6]), float(rows[0][7]))

    def end_session(self, session_id: str) -> None:
        with self._tx() as conn:
            conn.execute(f"DELETE FROM {_T}sessions WHERE sha256 = %s", (token_digest(session_id),))

    # -- audit -------------------------------------------------------------------------

    def record(
        self, user: str, client: str, action: str, detail: dict[str, Any] | None = None
    ) -> AuditEntry:
        with self._tx() as conn:
            # read under the advisory lock: no other server appends between this and ours
            last = conn.execute(
                f"SELECT id, hash FROM {_T}audit ORDER BY id DESC LIMIT 1"
            ).fetchone()
            entry = next_entry(last, user, client, action, detail)
            conn.execute(
                f"INSERT INTO {_T}audit ({AUDIT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                entry_params(entry),
            )
        return entry

    def audit(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        user: str | None = None,
        action: str | None = None,
        since: str | None = None,
        until: str | None = None,
        text: str | None = None,
        before: int | None = None,
        count: bool = True,
    ) -> tuple[int, list[AuditEntry]]:
        where, params = audit_where(
            _SQL, user=user, action=action, since=since, until=until, text=text, before=before
        )
        total = (
            int(self._query(f"SELECT count(*) FROM {_T}audit WHERE {where}", params)[0][0])
            if count
            else -1
        )
        rows = self._query(
            f"SELECT {AUDIT_COLUMNS} FROM {_T}audit WHERE {where} "
            "ORDER BY id DESC LIMIT %s OFFSET %s",
            [*params, bounded(limit), bounded(offset)],
        )
        return total, [entry_row(r) for r in rows]

    def _entries(self) -> Iterator[AuditEntry]:
        """Every audit entry, oldest first, a thousand rows a query."""
        last = 0
        while True:
            rows = self._query(
                f"SELECT {AUDIT_COLUMNS} FROM {_T}audit WHERE id > %s ORDER BY id LIMIT 1000",
                (last,),
            )
            if not rows:
                return
            for r in rows:
                yield entry_row(r)
            last = int(rows[-1][0])

    def verify_audit(self) -> AuditCheck:
        return verify_entries(self._entries())
