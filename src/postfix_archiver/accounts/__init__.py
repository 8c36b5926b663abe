"""Web users, roles, sessions, API tokens and the audit log behind one interface, by URL.

``sqlite:///path/web.sqlite`` (default: ``web.sqlite`` in the archive home, see
``home_url``) or ``postgresql://USER@HOST:PORT/DB`` (``[archive] accounts``: several web
servers share users, sessions, tokens and one audit chain). Validation (``checks``), password
and secret hashing (``passwords``), the audit chain (``audit``) and how rows read and the
audit log is filtered (``rows``) are shared by every backend; a backend only stores, fetches
and locks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, Self

from argon2 import PasswordHasher

from ..errors import AccountError
from .checks import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    check_addresses,
    check_name,
    check_password,
    external_name,
    is_external,
    login_of,
)
from .passwords import TOKEN_PREFIX, token_digest
from .records import ROLES, AuditCheck, AuditEntry, Session, TokenInfo, User

DB_NAME = "web.sqlite"


class Accounts(Protocol):
    """Users, API tokens, sessions and the audit log. Contract tested for every backend in
    ``tests/unit/accounts``.

    - Users: a name (case-insensitive, unique; ``checks.check_name``), a role from ``ROLES``,
      the mail addresses a ``user`` may see mail of, and an argon2 password hash. Refusals
      raise ``AccountError`` saying why: a bad name, role, address or password, a name that
      exists, ``no user 'NAME'``, and demoting or removing the last admin.
      ``set_password`` ends every session of the user (tokens stay); ``remove_user`` removes
      their sessions and tokens (their audit entries stay).
    - ``authenticate`` is slow on purpose (argon2; call it from a worker thread) and costs the
      same for unknown names as for wrong passwords; a hash made with weaker parameters than
      today's is replaced on a successful login, and a successful login is kept as the
      user's ``last_login`` (ISO time; None until the first).
    - Tokens and sessions are stored as the SHA-256 of their secret, which is handed out
      once (``create_token``, ``create_session``). ``user_for_token`` and ``session`` answer
      None for unknown, revoked, expired or overlong secrets; creating a session drops
      expired ones.
    - The audit log is append-only: nothing updates or deletes an entry, and the backend
      refuses it where it can (SQLite: triggers). ``record`` chains each entry to the one
      before (``audit.audit_hash``); ``verify_audit`` recomputes the chain. ``audit`` is the
      total matching and one page, newest first; ``action="search"`` also matches
      ``search.*``. Numbers past 64 bits are answered, not raised (nothing is that far).
    - Safe to share between threads; writes are serialized with other processes (the CLI,
      other web servers on PostgreSQL).
      Storage failures raise ``AccountError`` naming the database.
    """

    url: str

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    # users

    def add_user(
        self, name: str, role: str, password: str, addresses: Sequence[str] = ()
    ) -> User: ...

    def get_user(self, name: str) -> User | None: ...

    def require_user(self, name: str) -> User: ...

    def users(self) -> list[User]:
        """Every user, by name."""
        ...

    def count_users(self) -> int: ...

    def update_user(
        self, name: str, *, role: str | None = None, addresses: Sequence[str] | None = None
    ) -> User: ...

    def set_password(self, name: str, password: str) -> User: ...

    def remove_user(self, name: str) -> None: ...

    def authenticate(self, name: str, password: str) -> User | None: ...

    def external_user(self, origin: str, login: str, role: str, addresses: Sequence[str]) -> User:
        """The user ``origin:login`` (``checks.external_name``) that the IMAP or LDAP server
        (``origin``) just signed in, created or updated with ``role`` and ``addresses`` and
        its ``last_login`` set. Such a user has no password here: ``authenticate`` never
        signs them in, ``set_password`` and ``create_token`` refuse them."""
        ...

    # API tokens

    def create_token(self, name: str, label: str = "") -> tuple[TokenInfo, str]:
        """A new token for ``name`` (label ``api`` unless given): its record and secret."""
        ...

    def tokens(self, name: str) -> list[TokenInfo]: ...

    def revoke_token(self, name: str, token_id: int | None = None) -> int:
        """Revoke one token of ``name`` (or all with ``None``); returns how many were."""
        ...

    def user_for_token(self, secret: str) -> tuple[User, int] | None:
        """The user a token belongs to, and the token's id."""
        ...

    # sessions

    def create_session(self, user: User, client: str, hours: float) -> tuple[str, Session]:
        """The session id for the cookie and the session's record."""
        ...

    def session(self, session_id: str) -> Session | None: ...

    def end_session(self, session_id: str) -> None: ...

    # the audit log

    def record(
        self, user: str, client: str, action: str, detail: dict[str, Any] | None = None
    ) -> AuditEntry: ...

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
        """``since``/``until``: ISO times, ``since <= time < until``; ``text``: a substring
        (case-insensitive for ASCII) of the user, client, action or detail (detail values
        are matched as written, non-ASCII included); ``before``: ids below it only, for
        reading a long log page by page while it grows; ``count=False``: the total is not
        counted (answered as -1), for a reader that only wants the rows."""
        ...

    def verify_audit(self) -> AuditCheck: ...


def home_url(home: Path) -> str:
    """The accounts URL of an archive home: ``web.sqlite`` beside the catalog."""
    return f"sqlite://{(home / DB_NAME).absolute()}"


def _sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite://")) if url.startswith("sqlite://") else None


_UNSUPPORTED = "use sqlite:///path/web.sqlite or postgresql://USER@HOST:PORT/DB"


def accounts_exist(url: str) -> bool:
    """Whether there are accounts at ``url`` yet; asking creates nothing."""
    path = _sqlite_path(url)
    if path is not None:
        return path.exists()
    from .postgresql import accounts_exist as postgresql_exists
    from .postgresql import is_postgresql

    if is_postgresql(url):
        return postgresql_exists(url)
    raise AccountError(f"unsupported accounts URL {_shown(url)!r}: {_UNSUPPORTED}")


def _shown(url: str) -> str:
    from .postgresql import redact

    return redact(url)[:200]


def open_accounts(
    url: str,
    *,
    hasher: PasswordHasher | None = None,
    clock: Callable[[], float] = time.time,
    create: bool = True,
) -> Accounts:
    """The accounts at ``url``, the schema created or migrated as needed. ``create=False``:
    for commands that change or read existing users; with no accounts database yet they fail
    and create nothing. ``hasher``: argon2 parameters (tests pass cheap ones); ``clock``:
    Unix time, for session expiry."""
    path = _sqlite_path(url)
    if path is not None:
        from .sqlite import SqliteAccounts

        return SqliteAccounts(path, hasher=hasher, clock=clock, create=create)
    from .postgresql import PostgresAccounts, is_postgresql

    if is_postgresql(url):
        return PostgresAccounts(url, hasher=hasher, clock=clock, create=create)
    raise AccountError(f"unsupported accounts URL {_shown(url)!r}: {_UNSUPPORTED}")


__all__ = [
    "DB_NAME",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "ROLES",
    "TOKEN_PREFIX",
    "AccountError",
    "Accounts",
    "AuditCheck",
    "AuditEntry",
    "Session",
    "TokenInfo",
    "User",
    "accounts_exist",
    "check_addresses",
    "check_name",
    "check_password",
    "external_name",
    "home_url",
    "is_external",
    "login_of",
    "open_accounts",
    "token_digest",
]
