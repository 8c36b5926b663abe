"""Web accounts: users, API tokens, sessions and the audit log, in ``web.sqlite``.

The database lives in the archive home next to the catalog, with a versioned schema
(``PRAGMA user_version``). Secrets are never stored in the clear: passwords as argon2 hashes,
API tokens and session ids as their SHA-256 (a copy of the file opens no session and
authenticates no API client). Every value is a bound parameter.

The audit log is append-only three times over: no code path here updates or deletes it,
triggers make SQLite refuse any UPDATE or DELETE of an audit row (and an INSERT that would
replace one), and each entry's hash covers the previous one, so a row edited or removed with
the triggers dropped breaks the chain (``verify_audit``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..chain import GENESIS
from ..config import Config
from ..errors import AccountError
from ..search import MAX_INT

ROLES = ("admin", "auditor", "user")
TOKEN_PREFIX = "pa_"  # noqa: S105 - a marker, not a secret
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 hashes anything, but a megabyte "password" is an attack
DB_NAME = "web.sqlite"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_ADDRESS = re.compile(r"^[^@\s<>\",;]+@[^@\s<>\",;]+$")

MIGRATIONS: list[str] = [
    # 1: the initial schema
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'auditor', 'user')),
        password_hash TEXT NOT NULL,
        addresses TEXT NOT NULL DEFAULT '[]',
        created TEXT NOT NULL
    );
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        user INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE TABLE sessions (
        sha256 TEXT PRIMARY KEY,
        user INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        client TEXT NOT NULL,
        created REAL NOT NULL,
        expires REAL NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        user TEXT NOT NULL,
        client TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE
    );
    CREATE INDEX audit_user ON audit(user, id);
    CREATE INDEX audit_action ON audit(action, id);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE refused'); END;
    CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit
    WHEN EXISTS (SELECT 1 FROM audit WHERE id = NEW.id OR hash = NEW.hash)
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: REPLACE refused'); END;
    """,
]


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: str
    addresses: tuple[str, ...]
    created: str

    @property
    def sees_all(self) -> bool:
        """Auditors and admins see every message; users only their own."""
        return self.role in ("admin", "auditor")

    @property
    def can_audit(self) -> bool:
        return self.role in ("admin", "auditor")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def visible_to(self) -> tuple[str, ...] | None:
        """The ``visible_to`` argument of ``Archive.search`` for this user."""
        return None if self.sees_all else self.addresses

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "role": self.role,
            "addresses": list(self.addresses),
            "created": self.created,
        }


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    user: str
    label: str
    created: str


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf: str
    expires: float


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    time: str
    user: str
    client: str
    action: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "time": self.time,
            "user": self.user,
            "client": self.client,
            "action": self.action,
            "detail": self.detail,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class AuditCheck:
    ok: bool
    entries: int
    head: str
    problem: str | None = None


def audit_hash(
    prev_hash: str,
    id: int,
    when: str,
    user: str,
    client: str,
    action: str,
    detail: dict[str, Any],
) -> str:
    body = json.dumps(
        {
            "prev": prev_hash,
            "id": id,
            "time": when,
            "user": user,
            "client": client,
            "action": action,
            "detail": detail,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(body.encode("ascii")).hexdigest()


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise AccountError(
            f"bad user name {name!r}: 1-64 letters, digits and . _ @ -, starting with a "
            "letter or digit"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def check_addresses(addresses: Sequence[str]) -> tuple[str, ...]:
    result: list[str] = []
    for raw in addresses:
        address = raw.strip().lower()
        if not address:
            continue
        if not _ADDRESS.match(address):
            raise AccountError(f"not a mail address: {raw!r} (give it as name@example.com)")
        if address not in result:
            result.append(address)
    return tuple(result)


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"password too long: at most {MAX_PASSWORD} characters")
    return password


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Accounts:
    """Users, tokens, sessions and audit entries. Thread-safe (one connection, a lock).

    ``hasher`` is argon2-cffi's ``PasswordHasher`` with its defaults unless given (tests pass
    a cheap one); ``clock`` returns Unix time for session expiry.
    """

    def __init__(
        self,
        path: Path,
        *,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
        create: bool = True,
    ) -> None:
        """``create=False``: for commands that change or read existing users; with no
        accounts database yet they fail and create nothing."""
        self.path = path
        self.hasher = hasher or PasswordHasher()
        self.clock = clock
        self._lock = threading.RLock()
        self._dummy_hash: str | None = None
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
            self._conn = sqlite3.connect(
                path, timeout=30, check_same_thread=False, isolation_level=None
            )
        except (OSError, sqlite3.Error) as exc:
            raise AccountError(f"cannot open the accounts database {path}: {exc}") from exc
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=30000")
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open(cls, config: Config, **kwargs: Any) -> Accounts:
        return cls(config.archive.home / DB_NAME, **kwargs)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Accounts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------

    def _migrate(self) -> None:
        conn = self._conn
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise AccountError(
                    f"accounts database {self.path} has schema version {version}, newer than "
                    f"this postfix-archiver knows ({len(MIGRATIONS)}): upgrade postfix-archiver"
                )
            for number in range(version, len(MIGRATIONS)):
                # executescript: trigger bodies hold semicolons, so no naive split
                try:
                    conn.executescript(
                        f"BEGIN IMMEDIATE;\n{MIGRATIONS[number]}\n"
                        f"PRAGMA user_version = {number + 1};\nCOMMIT;"
                    )
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise AccountError(f"cannot prepare the accounts database {self.path}: {exc}") from exc

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (IMMEDIATE: serialized with other processes, e.g. the CLI)."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise AccountError(f"accounts database {self.path}: {exc}") from exc

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise AccountError(f"accounts database {self.path}: {exc}") from exc

    @staticmethod
    def _user(r: Sequence[Any]) -> User:
        return User(
            id=int(r[0]),
            name=str(r[1]),
            role=str(r[2]),
            addresses=tuple(json.loads(str(r[3]))),
            created=str(r[4]),
        )

    _USER_COLUMNS = "u.id, u.name, u.role, u.addresses, u.created"

    # -- users -------------------------------------------------------------------------

    def add_user(self, name: str, role: str, password: str, addresses: Sequence[str] = ()) -> User:
        check_name(name)
        check_role(role)
        addrs = check_addresses(addresses)
        digest = self.hasher.hash(check_password(password))
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise AccountError(f"user {name!r} exists already (user passwd to reset it)")
            conn.execute(
                "INSERT INTO users (name, role, password_hash, addresses, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, role, digest, json.dumps(list(addrs)), _now_iso()),
            )
        return self.require_user(name)

    def get_user(self, name: str) -> User | None:
        rows = self._query(f"SELECT {self._USER_COLUMNS} FROM users u WHERE u.name = ?", (name,))
        return self._user(rows[0]) if rows else None

    def require_user(self, name: str) -> User:
        user = self.get_user(name)
        if user is None:
            raise AccountError(f"no user {name!r} (postfix-archiver user list shows them)")
        return user

    def users(self) -> list[User]:
        rows = self._query(f"SELECT {self._USER_COLUMNS} FROM users u ORDER BY u.name")
        return [self._user(r) for r in rows]

    def count_users(self) -> int:
        return int(self._query("SELECT count(*) FROM users")[0][0])

    def update_user(
        self, name: str, *, role: str | None = None, addresses: Sequence[str] | None = None
    ) -> User:
        if role is not None:
            check_role(role)
        addrs = None if addresses is None else check_addresses(addresses)
        with self._tx() as conn:
            row = conn.execute("SELECT id, role FROM users WHERE name = ?", (name,)).fetchone()
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
        """Set a new password; every session of the user ends (tokens stay)."""
        digest = self.hasher.hash(check_password(password))
        with self._tx() as conn:
            row = conn.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise AccountError(f"no user {name!r}")
            conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (digest, row[0]))
            conn.execute("DELETE FROM sessions WHERE user = ?", (row[0],))
        return self.require_user(name)

    def remove_user(self, name: str) -> None:
        """Remove a user with their sessions and tokens (their audit entries stay)."""
        with self._tx() as conn:
            row = conn.execute("SELECT id, role FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise AccountError(f"no user {name!r}")
            if row[1] == "admin":
                self._keep_an_admin(conn, int(row[0]), "remove")
            conn.execute("DELETE FROM users WHERE id = ?", (row[0],))

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else None. Slow on purpose (argon2): call it
        from a worker thread. Unknown names cost the same time as wrong passwords."""
        rows = self._query(
            f"SELECT {self._USER_COLUMNS}, u.password_hash FROM users u WHERE u.name = ?",
            (name,),
        )
        if not rows or len(password) > MAX_PASSWORD:
            self._burn(password[:MAX_PASSWORD])
            return None
        stored = str(rows[0][5])
        try:
            self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        user = self._user(rows[0])
        if self.hasher.check_needs_rehash(stored):
            with self._tx() as conn:
                conn.execute(
                    "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                    (self.hasher.hash(password), user.id, stored),
                )
        return user

    def _burn(self, password: str) -> None:
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        with suppress(VerificationError):
            self.hasher.verify(self._dummy_hash, password)

    # -- tokens ------------------------------------------------------------------------

    def create_token(self, name: str, label: str = "") -> tuple[TokenInfo, str]:
        """A new API token for ``name``: its record and the secret, which is shown once."""
        user = self.require_user(name)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        created = _now_iso()
        label = label.strip()[:100] or "api"
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
        """Revoke one token of ``name`` (or all with ``None``); returns how many were."""
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
        """The user a token belongs to, and the token's id; None if unknown or revoked."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        # looked up by digest: timing reveals nothing about a secret nobody can invert
        rows = self._query(
            f"SELECT {self._USER_COLUMNS}, t.id FROM tokens t "
            "JOIN users u ON u.id = t.user WHERE t.sha256 = ?",
            (token_digest(secret),),
        )
        if not rows:
            return None
        return self._user(rows[0]), int(rows[0][5])

    # -- sessions ----------------------------------------------------------------------

    def create_session(self, user: User, client: str, hours: float) -> tuple[str, Session]:
        """A new session: the id for the cookie (shown once, stored hashed) and its record."""
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self.clock()
        expires = now + hours * 3600
        with self._tx() as conn:
            conn.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
            conn.execute(
                "INSERT INTO sessions (sha256, user, csrf, client, created, expires) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (token_digest(session_id), user.id, csrf, client[:200], now, expires),
            )
        return session_id, Session(user, csrf, expires)

    def session(self, session_id: str) -> Session | None:
        if len(session_id) > 200:
            return None
        rows = self._query(
            f"SELECT {self._USER_COLUMNS}, s.csrf, s.expires FROM sessions s "
            "JOIN users u ON u.id = s.user WHERE s.sha256 = ?",
            (token_digest(session_id),),
        )
        if not rows or float(rows[0][6]) <= self.clock():
            return None
        return Session(self._user(rows[0]), str(rows[0][5]), float(rows[0][6]))

    def end_session(self, session_id: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM sessions WHERE sha256 = ?", (token_digest(session_id),))

    # -- audit -------------------------------------------------------------------------

    def record(
        self, user: str, client: str, action: str, detail: dict[str, Any] | None = None
    ) -> AuditEntry:
        """Append one audit entry, chained to the one before."""
        detail = json.loads(json.dumps(detail or {}, default=str))
        user = user[:200]
        client = client[:200]
        with self._tx() as conn:
            last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            entry_id, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
            when = _now_iso()
            digest = audit_hash(prev, entry_id, when, user, client, action, detail)
            conn.execute(
                "INSERT INTO audit (id, time, user, client, action, detail, prev_hash, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (entry_id, when, user, client, action, json.dumps(detail), prev, digest),
            )
        return AuditEntry(entry_id, when, user, client, action, detail, prev, digest)

    def _audit_where(self, user: str | None, action: str | None, params: list[object]) -> str:
        conditions = ["1=1"]
        if user:
            conditions.append("user = ?")
            params.append(user)
        if action:
            conditions.append("(action = ? OR action LIKE ? ESCAPE '\\')")
            escaped = action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.extend([action, escaped + ".%"])
        return " AND ".join(conditions)

    def audit(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        user: str | None = None,
        action: str | None = None,
    ) -> tuple[int, list[AuditEntry]]:
        """The total matching and one page of entries, newest first."""
        # past SQLite's 64 bits a bound number raises OverflowError; an offset that large is
        # past the end of any log, and a limit that large is all of it
        limit, offset = min(limit, MAX_INT), min(offset, MAX_INT)
        params: list[object] = []
        where = self._audit_where(user, action, params)
        total = int(self._query(f"SELECT count(*) FROM audit WHERE {where}", params)[0][0])
        rows = self._query(
            "SELECT id, time, user, client, action, detail, prev_hash, hash FROM audit "
            f"WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return total, [self._entry(r) for r in rows]

    @staticmethod
    def _entry(r: Sequence[Any]) -> AuditEntry:
        return AuditEntry(
            id=int(r[0]),
            time=str(r[1]),
            user=str(r[2]),
            client=str(r[3]),
            action=str(r[4]),
            detail=json.loads(str(r[5])),
            prev_hash=str(r[6]),
            hash=str(r[7]),
        )

    def verify_audit(self) -> AuditCheck:
        """Recompute the audit chain from the first entry; the first break is the problem."""
        prev = GENESIS
        expected_id = 1
        count = 0
        last = 0
        while True:
            rows = self._query(
                "SELECT id, time, user, client, action, detail, prev_hash, hash FROM audit "
                "WHERE id > ? ORDER BY id LIMIT 1000",
                (last,),
            )
            if not rows:
                return AuditCheck(True, count, prev)
            for r in rows:
                e = self._entry(r)
                if e.id != expected_id:
                    return AuditCheck(
                        False, count, prev, f"entry {expected_id} is missing (next is {e.id})"
                    )
                if e.prev_hash != prev:
                    return AuditCheck(False, count, prev, f"entry {e.id} does not link to {prev}")
                digest = audit_hash(prev, e.id, e.time, e.user, e.client, e.action, e.detail)
                if digest != e.hash:
                    return AuditCheck(False, count, prev, f"entry {e.id} was altered")
                prev = e.hash
                expected_id += 1
                count += 1
                last = e.id
