"""What the accounts hand out: users, API tokens, sessions, audit entries and checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROLES = ("admin", "auditor", "user")


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: str
    addresses: tuple[str, ...]
    created: str
    last_login: str | None = None  # ISO time of the last successful login; None: never

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

    def chained(self) -> dict[str, object]:
        """What the entry's hash covers (with the previous hash): see ``audit.audit_hash``."""
        return {
            "id": self.id,
            "time": self.time,
            "user": self.user,
            "client": self.client,
            "action": self.action,
            "detail": self.detail,
        }

    def to_json(self) -> dict[str, object]:
        return {**self.chained(), "hash": self.hash}


@dataclass(frozen=True, slots=True)
class AuditCheck:
    ok: bool
    entries: int
    head: str
    problem: str | None = None
