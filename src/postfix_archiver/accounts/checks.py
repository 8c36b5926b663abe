"""What a user name, role, address list and password must look like, for every backend."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import AccountError
from .records import ROLES

MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 hashes anything, but a megabyte "password" is an attack
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_ADDRESS = re.compile(r"^[^@\s<>\",;]+@[^@\s<>\",;]+$")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise AccountError(
            f"bad user name {name!r}: 1-64 letters, digits and . _ @ -, starting with a "
            "letter or digit"
        )
    return name


EXTERNAL_ORIGINS = ("imap", "ldap")
MAX_LOGIN = 200


def external_name(origin: str, login: str) -> str:
    """The user name of someone signed in by IMAP or LDAP: ``imap:alice``, ``ldap:jörg``.

    The prefix keeps them apart from local users, whose names cannot hold a ``:``
    (``check_name``): a local ``alice`` and the mail server's ``alice`` are two users with
    two roles and two address lists, and the audit log tells them apart. The login is as the
    server took it (any script, up to 200 characters), with no control characters.
    """
    if origin not in EXTERNAL_ORIGINS:
        raise AccountError(f"unknown sign-in method {origin!r}")
    login = login.strip()
    if not login or len(login) > MAX_LOGIN or not login.isprintable():
        raise AccountError(f"bad login {login[:80]!r}: 1-{MAX_LOGIN} printable characters")
    return f"{origin}:{login}"


def is_external(name: str) -> bool:
    """Whether ``name`` is a user signed in by IMAP or LDAP (no password of ours)."""
    return name.partition(":")[0] in EXTERNAL_ORIGINS and ":" in name


def login_of(name: str) -> str:
    """The login a user gave the mail server or directory: ``alice`` for ``imap:alice``; a
    local user's name as it is."""
    return name.partition(":")[2] if is_external(name) else name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def check_addresses(addresses: Sequence[str]) -> tuple[str, ...]:
    """The addresses in lower case, each once, blanks dropped."""
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
