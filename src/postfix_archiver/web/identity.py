"""Who a request comes from, once ``auth`` has checked its session cookie or API token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..accounts import User


@dataclass(frozen=True, slots=True)
class Identity:
    user: User
    via: Literal["session", "token"]
    session_id: str | None = None
    csrf: str | None = None
    token_id: int | None = None
