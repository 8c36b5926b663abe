"""Web UI and REST API over the archive: users, roles, sessions, tokens, the audit log.

``create_app(config, archive)`` (``app``) is the FastAPI application; the accounts part
(``postfix_archiver.accounts``) keeps users, tokens, sessions and the audit log; ``auth``
says who is asking; ``pages`` and ``api`` are the routes; ``render`` shows mail without
trusting it.
"""

from __future__ import annotations

from ..accounts import Accounts
from .app import create_app

__all__ = ["Accounts", "create_app"]
