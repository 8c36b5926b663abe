"""Accounts in one SQLite file (``web.sqlite`` in the archive home). See ``Accounts``.

The file is created readable by the archiver only (password hashes, the audit log), with a
versioned schema (``sqlite_schema``). Every value is a bound parameter.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from ..errors import AccountError
from ..sqlite_db import SchemaTooNew, connect_durable, migrate, write_transaction
from .audit import verify_entries
from .checks import check_addresses, check_name, check_role, external_name, is_external
from .passwords import TOKEN_PREFIX, Passwords, new_secret, new_token, token_digest
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
from .sqlite_schema import MIGRATIONS

_SQL = Dialect(param="?", like="LIKE")  # SQLite's LIKE folds ASCII letters only


class SqliteAccounts:
    """See ``Accounts``. One connection behind a lock; writes are ``BEGIN IMMEDIATE``, so
    they are serialized with other processes (the CLI beside a running web server)."""

    def __init__(
        self,
        path: Path,
        *,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
        create: bool = True,
    ) -> None:
        self.path = path
        self.url = f"sqlite://{path}"
        self.passwords = Passwords(hasher)
        self.clock = clock
        self._lock = threading.RLock()
        if not create and not path.exists():
            raise AccountError(
                f"no web users yet ({path} does not exist): add one with "
                "`postfix-archiver user add NAME`, or give --config for another archive"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                # password hashes and the audit log: readable by the archiver only
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._conn = connect_durable(path, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise AccountError(f"cannot open the accounts database {path}: {exc}") from exc
        try:
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteAccounts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------

    def _migrate(self) -> None:
        try:
            migrate(self._conn, MIGRATIONS)
        except SchemaTooNew as exc:
            raise AccountError(
                f"accounts database {self.path} has schema version {exc.version}, newer than "
                f"this postfix-archiver knows ({exc.known}): upgrade postfix-archiver"
            ) from None
        except sqlite3.Error as exc:
            raise AccountError(f"cannot prepare the accounts database {self.path}: {exc}") from exc

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; SQLite's errors become ``AccountError``."""
        with self._lock:
            try:
                with write_transaction(self._conn) as conn:
                    yield conn
            except sqlite3.Error as exc:
                raise AccountError(f"accounts database {self.path}: {exc}") from exc

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise AccountError(f"accounts database {self.path}: {exc}") from exc

    # -- users -------------------------------------------------------------------------

    def add_user(self, name: str, role: str, password: str, addresses: Sequence[str] = ()) -> User:
        check_name(name)
        check_role(role)
        addrs = check_addresses(addresses)
        digest = self.passwords.hash(password)
        with self._tx() as conn:
            if self._find(conn, name, "id") is not None:
                raise AccountError(f"user {name!r} exists already (user passwd to reset it)")
            conn.execute(
                "INSERT INTO users (name, role, password_hash, addresses, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, role, digest, json.dumps(list(addrs)), now_iso()),
            )
        return self.require_user(name)

    @staticmethod
    def _find(conn: sqlite3.Connection, name: str, columns: str) -> Any:
        if possible_name(name) is None:
            return None
        return conn.execute(f"SELECT {columns} FROM users WHERE name = ?", (name,)).fetchone()

    def get_user(self, name: str) -> User | None:
        if possible_name(name) is None:
            return None
        rows = self._query(f"SELECT {USER_COLUMNS} FROM users u WHERE u.name = ?", (name,))
        return user_row(rows[0]) if rows else None

    def require_user(self, name: str) -> User:
        user = self.get_user(name)
        if user is None:
            raise AccountError(f"no user {name!r} (postfix-archiver user list shows them)")
        return user

    def users(self) -> list[User]:
        rows = self._query(f"SELECT {USER_COLUMNS} FROM users u ORDER BY u.name")
        return [user_row(r) for r in rows]

    def count_users(self) -> int:
        return int(self._query("SELECT count(*) FROM users")[0][0])

    def update_user(
        self, name: str, *, role: str | None = None, addresses: Sequence[str] | None = None
    ) -> User:
        if role is not None:
            check_role(role)
        addrs = None if addresses is None else check_addresses(addresses)
        with self._tx() as conn:
            row = self._find(conn, name, "id, role")
            if row is None:
                raise AccountError(f"no user {name!r}")
            if role is not None and role != "admin" and row[1] == "admin":
                self._keep_an_admin(conn, int(row[0]), "demote")
            if role is not None:
                conn.execute("UPDATE users SET role = ? WHERE id = ?", (role, row[0]))
            if addrs is not None:
                conn.execute(
                    "UPDATE users SET addresses = ? WHERE id = ?", (json.dumps(list(addrs)), row[0])
                )
        return self.require_user(name)

    @staticmethod
    def _keep_an_admin(conn: sqlite3.Connection, user_id: int, what: str) -> None:
        others = conn.execute(
            "SELECT count(*) FROM users WHERE role = 'admin' AND id != ?", (user_id,)
        ).fetchone()[0]
        if not others:
            raise AccountError(f"refusing to {what} the last admin: make another admin first")

    def set_password(self, name: str, password: str) -> User:
        if is_external(name):
            raise AccountError(
                f"{name} signs in with the {name.split(':')[0].upper()} server's password"
            )
        digest = self.passwords.hash(password)
        with self._tx() as conn:
            row = self._find(conn, name, "id")
            if row is None:
                raise AccountError(f"no user {name!r}")
            conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (digest, row[0]))
            conn.execute("DELETE FROM sessions WHERE user = ?", (row[0],))
        return self.require_user(name)

    def remove_user(self, name: str) -> None:
        with self._tx() as conn:
            row = self._find(conn, name, "id, role")
            if row is None:
                raise AccountError(f"no user {name!r}")
            if row[1] == "admin":
                self._keep_an_admin(conn, int(row[0]), "remove")
            conn.execute("DELETE FROM users WHERE id = ?", (row[0],))

    def authenticate(self, name: str, password: str) -> User | None:
        rows = (
            self._query(
                f"SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.name = ?", (name,)
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
            conn.execute("UPDATE users SET last_login = ? WHERE id = ?", (now_iso(), user_id))
            if rehashed is not None:
                conn.execute(
                    "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                    (rehashed, user_id, stored),
                )
        return self.require_user(str(rows[0][1]))

    def external_user(self, origin: str, login: str, role: str, addresses: Sequence[str]) -> User:
        name = external_name(origin, login)
        check_role(role)
        addrs = json.dumps(list(check_addresses(addresses)))
        now = now_iso()
        with self._tx() as conn:
            # the directory's word is the latest: role and addresses replaced at each sign-in
            # (no last-admin check: the server decides who is admin, local admins stay)
            conn.execute(
                "INSERT INTO users (name, role, password_hash, addresses, created, last_login) "
                "VALUES (?, ?, '', ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "role = excluded.role, addresses = excluded.addresses, "
                "last_login = excluded.last_login",
                (name, role, addrs, now, now),
            )
        return self.require_user(name)

    # -- tokens ------------------------------------------------------------------------

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
            cur = conn.execute(
                "INSERT INTO tokens (user, sha256, label, created) VALUES (?, ?, ?, ?)",
                (user.id, token_digest(secret), label, created),
            )
            token_id = cur.lastrowid
        assert token_id is not None
        return TokenInfo(token_id, user.name, label, created), secret

    def tokens(self, name: str) -> list[TokenInfo]:
        user = self.require_user(name)
        rows = self._query(
            "SELECT id, label, created FROM tokens WHERE user = ? ORDER BY id", (user.id,)
        )
        return [TokenInfo(int(r[0]), user.name, str(r[1]), str(r[2])) for r in rows]

    def revoke_token(self, name: str, token_id: int | None = None) -> int:
        user = self.require_user(name)
        if token_id is not None and not 0 < token_id <= MAX_INT:
            return 0  # no such token; SQLite would raise OverflowError past 64 bits
        with self._tx() as conn:
            if token_id is None:
                cur = conn.execute("DELETE FROM tokens WHERE user = ?", (user.id,))
            else:
                cur = conn.execute(
                    "DELETE FROM tokens WHERE user = ? AND id = ?", (user.id, token_id)
                )
            return cur.rowcount

    def user_for_token(self, secret: str) -> tuple[User, int] | None:
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        # looked up by digest: timing reveals nothing about a secret nobody can invert
        rows = self._query(
            f"SELECT {USER_COLUMNS}, t.id FROM tokens t "
            "JOIN users u ON u.id = t.user WHERE t.sha256 = ?",
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
            conn.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
            conn.execute(
                "INSERT INTO sessions (sha256, user, csrf, client, created, expires) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (token_digest(session_id), user.id, csrf, storable(client, 200), now, expires),
            )
        return session_id, Session(user, csrf, expires)

    def session(self, session_id: str) -> Session | None:
        if len(session_id) > 200:
            return None
        rows = self._query(
            f"SELECT {USER_COLUMNS}, s.csrf, s.expires FROM sessions s "
            "JOIN users u ON u.id = s.user WHERE s.sha256 = ?",
            (token_digest(session_id),),
        )
        if not rows or float(rows[0][7]) <= self.clock():
            return None
        return Session(user_row(rows[0]), str(rows[0][6]), float(rows[0][7]))

    def end_session(self, session_id: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM sessions WHERE sha256 = ?", (token_digest(session_id),))

    # -- audit -------------------------------------------------------------------------

    def record(
        self, user: str, client: str, action: str, detail: dict[str, Any] | None = None
    ) -> AuditEntry:
        with self._tx() as conn:
            last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            entry = next_entry(last, user, client, action, detail)
            conn.execute(
                f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
            int(self._query(f"SELECT count(*) FROM audit WHERE {where}", params)[0][0])
            if count
            else -1
        )
        rows = self._query(
            f"SELECT {AUDIT_COLUMNS} FROM audit WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            [*params, bounded(limit), bounded(offset)],
        )
        return total, [entry_row(r) for r in rows]

    def _entries(self) -> Iterator[AuditEntry]:
        """Every audit entry, oldest first, a thousand rows a query."""
        last = 0
        while True:
            rows = self._query(
                f"SELECT {AUDIT_COLUMNS} FROM audit WHERE id > ? ORDER BY id LIMIT 1000", (last,)
            )
            if not rows:
                return
            for r in rows:
                yield entry_row(r)
            last = int(rows[-1][0])

    def verify_audit(self) -> AuditCheck:
        return verify_entries(self._entries())
