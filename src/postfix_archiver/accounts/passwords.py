"""Passwords as argon2 hashes, and the secrets (API tokens, session ids) kept as SHA-256.

Nothing here is stored in the clear: a copy of the accounts database opens no session and
authenticates no API client.
"""

from __future__ import annotations

import hashlib
import secrets
from contextlib import suppress

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .checks import MAX_PASSWORD, check_password

TOKEN_PREFIX = "pa_"  # noqa: S105 - a marker, not a secret


def token_digest(secret: str) -> str:
    """How an API token or session id is stored and looked up."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_secret() -> str:
    """A session id or CSRF token."""
    return secrets.token_urlsafe(32)


class Passwords:
    """argon2-cffi's ``PasswordHasher`` with its defaults unless given (tests pass a cheap
    one). Slow on purpose: hash and verify from a worker thread."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    def hash(self, password: str) -> str:
        """The stored form of a new password, refused if too short or too long."""
        return self.hasher.hash(check_password(password))

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``. ``None`` (no such user) and overlong
        passwords cost the same time as a wrong password: timing shows no user names."""
        if stored is None or len(password) > MAX_PASSWORD:
            self._burn(password[:MAX_PASSWORD])
            return False
        try:
            self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return True

    def rehashed(self, stored: str, password: str) -> str | None:
        """A new hash of a verified ``password`` when ``stored`` was made with weaker
        parameters than today's, else None."""
        return self.hasher.hash(password) if self.hasher.check_needs_rehash(stored) else None

    def _burn(self, password: str) -> None:
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        with suppress(VerificationError):
            self.hasher.verify(self._dummy_hash, password)
