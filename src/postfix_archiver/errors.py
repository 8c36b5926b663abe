"""One exception hierarchy for the whole archiver.

Every error carries a message a mail administrator can act on. Capture code maps these to
SMTP replies and exit codes in one place (``capture.replies``)::

    ArchiverError
    ├── ConfigError            bad config file: names file, line and key; refuses to start
    ├── QueryError             bad search query: names the position in the query
    ├── NotFoundError          no message with that id (or not visible to this user)
    ├── SourceError            an import source or export target that cannot be used
    ├── StoreError             the blob store failed (disk full, permissions, S3 down)
    │   ├── IntegrityError     a blob's bytes no longer match their SHA-256 (or its seal)
    │   └── EncryptionKeyError the key file cannot be used, or lacks the key a blob needs
    ├── CatalogError           the catalog failed (locked, migration, connection)
    ├── AccountError           a web user, password or token operation refused (web accounts)
    ├── CheckpointError        a signing key, checkpoint or timestamp that cannot be made or read
    ├── MigrationError         a target `migrate` refuses, or a copy that differs
    ├── ComplianceError        a retention or legal-hold operation refused (bad name, duplicate)
    │   └── HoldExists         a hold of that name exists (names are never reused)
    ├── TemporaryFailure       anything Postfix should retry later (451 / exit 75)
    └── PermanentFailure       a permanent reject passed on from the reinjection listener
"""

from __future__ import annotations


class ArchiverError(Exception):
    """Base of every error the archiver raises on purpose."""


class ConfigError(ArchiverError):
    """The configuration cannot be used. ``str()`` reads ``file:line: key: reason``."""

    def __init__(
        self,
        reason: str,
        *,
        path: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.reason = reason
        self.path = path
        self.line = line
        self.key = key
        where = path or "<config>"
        if line is not None:
            where += f":{line}"
        text = f"{where}: {key}: {reason}" if key else f"{where}: {reason}"
        super().__init__(text)


class QueryError(ArchiverError):
    """A search query that cannot be parsed; ``position`` is the 0-based character offset."""

    def __init__(self, reason: str, position: int, query: str = "") -> None:
        self.reason = reason
        self.position = position
        self.query = query
        super().__init__(f"bad query at position {position + 1}: {reason}")


class NotFoundError(ArchiverError):
    """No such message (or it is not visible to the caller)."""


class SourceError(ArchiverError):
    """An import source or export destination that cannot be read or written."""


class StoreError(ArchiverError):
    """The blob store could not read or write."""


class IntegrityError(StoreError):
    """Stored bytes do not hash to the SHA-256 they were stored under."""


class EncryptionKeyError(StoreError):
    """The encryption key file is missing, unreadable or malformed, or does not hold the key
    (named by its id) that a blob was encrypted with."""


class CatalogError(ArchiverError):
    """The catalog could not be read or written."""


class MigrationError(ArchiverError):
    """``migrate`` refused the target, or the copy does not match its source."""


class ComplianceError(ArchiverError):
    """A retention change or legal hold that cannot be done: a bad period or hold name, a
    hold name taken, no such hold."""


class HoldExists(ComplianceError):
    """A hold of that name exists already, active or released."""


class AccountError(ArchiverError):
    """A web account operation that cannot be done: unknown user, bad role, weak password,
    removing the last admin; or the accounts database failed."""


class CheckpointError(ArchiverError):
    """A signing key, a signed checkpoint or its RFC 3161 timestamp that cannot be made,
    read or used (a missing or malformed file, an unreachable time-stamping authority)."""


class TemporaryFailure(ArchiverError):
    """Postfix should keep the message queued and retry (451 4.3.0 / exit 75)."""


class PermanentFailure(ArchiverError):
    """A permanent rejection passed through from the reinjection listener.

    ``code`` and ``text`` are the listener's own reply; we never invent a permanent failure.
    """

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f"{code} {text}")
