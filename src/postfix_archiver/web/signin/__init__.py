"""Signing in: the methods of ``[web] auth`` (local, IMAP, LDAP), tried in their order.

The first method that accepts the name and password wins. One that refuses them passes the
turn to the next; one whose server cannot be reached does too, and is named if nobody
accepts, so "the directory is down" is never shown as "wrong password" (and is not counted
against the user by the rate limiter, which counts only passwords actually checked and
refused).

An IMAP or LDAP user becomes a user record named ``imap:LOGIN`` or ``ldap:LOGIN``
(``accounts.external_name``), created or updated at each sign-in with the role and addresses
the server gave and no password: sessions, the audit log and every permission check then work
as for local users. Their password is passed to the server and forgotten: never stored, never
logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ...accounts import Accounts, User
from ...auth_config import AuthSettings
from ...errors import AccountError
from .common import Refused, Unavailable, Verified, check_login

log = logging.getLogger("postfix_archiver.web.signin")

__all__ = ["Outcome", "Refused", "Unavailable", "Verified", "sign_in"]


@dataclass
class Outcome:
    user: User | None = None
    method: str | None = None  # the one that signed the user in
    refused: dict[str, str] = field(default_factory=dict)  # method -> why (for the audit)
    unavailable: dict[str, str] = field(default_factory=dict)  # method -> what went wrong

    @property
    def checked(self) -> bool:
        """Whether some method looked at the password and refused it: what the rate limiter
        counts. While a server is down, "no local user of that name" is not counted: the
        user of that server did nothing wrong, and a local password was not tried."""
        if not self.unavailable:
            return bool(self.refused)
        return any(
            not (method == "local" and why == "unknown user")
            for method, why in self.refused.items()
        )


def _verifier(auth: AuthSettings, method: str) -> Callable[[str, str], Verified]:
    if method == "imap" and auth.imap is not None:
        from .imap import check_imap

        settings_imap = auth.imap
        return lambda login, password: check_imap(settings_imap, login, password)
    if method == "ldap" and auth.ldap is not None:
        from .ldap import check_ldap

        settings_ldap = auth.ldap
        return lambda login, password: check_ldap(settings_ldap, login, password)
    raise Unavailable(f"{method} sign-in is not configured")  # config.py refuses this


def sign_in(accounts: Accounts, auth: AuthSettings, name: str, password: str) -> Outcome:
    """Try each method of ``auth`` in order. Slow (argon2, network): from a worker thread."""
    outcome = Outcome()
    for method in auth.methods:
        if method == "local":
            user = accounts.authenticate(name, password)
            if user is not None:
                outcome.user, outcome.method = user, method
                return outcome
            outcome.refused[method] = (
                "wrong password" if accounts.get_user(name) else "unknown user"
            )
            continue
        try:
            check_login(name, password)
            verified = _verifier(auth, method)(name, password)
            user = accounts.external_user(method, verified.login, verified.role, verified.addresses)
        except Refused as exc:
            outcome.refused[method] = exc.reason
            continue
        except (Unavailable, AccountError) as exc:
            # AccountError: the server's answer does not fit a user record (a login or address
            # our checks refuse); the operator has to look, the user cannot fix it
            log.warning("%s sign-in for %r failed: %s", method, name[:200], exc)
            outcome.unavailable[method] = str(exc)
            continue
        except Exception as exc:  # a client library's own bug is an outage too, never a 500
            log.exception("%s sign-in for %r failed unexpectedly", method, name[:200])
            outcome.unavailable[method] = f"{type(exc).__name__}: {exc}"
            continue
        outcome.user, outcome.method = user, method
        return outcome
    return outcome
