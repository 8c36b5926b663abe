"""What every external sign-in method shares: its answers, and what no login may be."""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass
from pathlib import Path

from ...accounts import MAX_PASSWORD
from ...accounts.checks import MAX_LOGIN


@dataclass(frozen=True, slots=True)
class Verified:
    """What the server said of a user whose password it accepted."""

    login: str
    role: str
    addresses: tuple[str, ...]


class Refused(Exception):
    """The server checked the login and password and said no (or would have: an empty
    password, a login no server could hold). ``reason`` goes to the audit log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unavailable(Exception):
    """The password could not be checked: the server is down, slow, misconfigured, or its
    certificate is not trusted. The message is for the server log and names the server."""


def check_login(login: str, password: str) -> None:
    """Refuse before any network: an empty password (an LDAP bind with one is an anonymous
    bind, which "succeeds"), an overlong one, and logins with control characters (a line
    break in a protocol command) or longer than a user record holds."""
    if not password:
        raise Refused("empty password")
    if len(password) > MAX_PASSWORD:
        raise Refused("password too long")
    if not login or len(login) > MAX_LOGIN or not login.isprintable():
        raise Refused("not a possible login")


@functools.lru_cache(maxsize=8)
def _context(ca_file: Path | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def tls_context(ca_file: Path | None, section: str) -> ssl.SSLContext:
    """The TLS context for a server's certificate: the system's CAs, or ``ca_file``'s. Made
    once per file (loading the system's CAs costs a quarter second of CPU: not at every
    sign-in); a changed CA file is read at the next start."""
    try:
        return _context(ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise Unavailable(f"[{section}] ca_file {ca_file}: unreadable ({exc})") from None
