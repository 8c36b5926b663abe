"""Archived mail back into a mailbox, byte for byte: one path for the CLI, the web UI and the API.

Two kinds of target:

- ``ImapTarget``: a folder of an IMAP mailbox (created if missing). Each message is appended
  with its original arrival time as INTERNALDATE, and skipped if the folder already holds the
  same bytes, so a re-run after an interruption adds nothing twice. With ``master`` the
  archive signs in as that master user on the mailbox owner's behalf (Dovecot's master
  users), so restoring needs no user's password.
- ``SmtpTarget``: the original bytes re-delivered to one address through an MTA, from the
  null sender (a copy that cannot be delivered bounces to nobody, not to the original
  sender years later). Nothing is skipped: a mailbox cannot be asked what it holds.

``restore`` is audited like every change: ``restore.intent`` before anything is sent and
``restore`` after, with what was restored and skipped, also when it failed midway (the
caller supplies the audit log: the CLI's, or the web's with the caller's name and address).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .archive import Archive
from .catalog import MessageRow
from .config import RestoreSettings
from .errors import ArchiverError, PermanentFailure, SourceError, TemporaryFailure
from .importers.imap_url import SCHEMES, ImapUrl

if TYPE_CHECKING:  # the IMAP library is loaded when an IMAP restore runs, not before
    from .importers.imap_append import ImapFolder

Audit = Callable[[str, dict[str, object]], None]
MAX_SECRET = 4096  # bytes read from a password file: a password, not a file's worth
# what a target that cannot be reached or refuses the mail raises: one line each
DELIVERY_ERRORS = (SourceError, TemporaryFailure, PermanentFailure)


class RestoreUnavailable(ArchiverError):
    """Restoring is not possible as configured (no target, an unreadable master password
    file): the operator's to fix, not the caller's."""


@dataclass(frozen=True, slots=True)
class ImapTarget:
    url: ImapUrl  # the mailbox's account and folder (None: INBOX)
    password: str = field(repr=False)  # the user's, or with ``master`` the master user's
    ca_file: str | None = None
    master: str | None = None

    @property
    def where(self) -> str:
        return f"{self.url.account}/{self.url.folder or 'INBOX'}"


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    address: str
    server: str  # HOST:PORT of the MTA that delivers
    timeout: float = 120.0

    @property
    def where(self) -> str:
        return f"smtp:{self.address}"


Target = ImapTarget | SmtpTarget


@dataclass(slots=True)
class Outcome:
    """What a restore did; filled in as it goes, so it is right after a failure too."""

    count: int  # the messages selected
    restored: int = 0
    skipped: int = 0  # already in the folder
    dry_run: bool = False

    def summary(self, where: str) -> str:
        if self.dry_run:
            return f"would restore {self.count} messages to {where} (dry run)"
        done = f"restored {self.restored} message{'s' if self.restored != 1 else ''} to {where}"
        return done + (f", {self.skipped} already there" if self.skipped else "")


def read_secret(path: str | Path, what: str) -> str:
    """The first line of ``path``: a password kept in a file of its own (never in the config
    text or on a command line, where others read it). The error names the file, never its
    contents."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SECRET)
        line = data.decode("utf-8").splitlines()[0] if data.strip() else ""
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise RestoreUnavailable(f"{path}: cannot read the {what} ({reason})") from None
    if not line:
        raise RestoreUnavailable(f"{path}: the {what} file is empty")
    return line


def restore(
    archive: Archive,
    rows: Iterable[MessageRow],
    target: Target,
    *,
    count: int,
    audit: Audit,
    detail: Mapping[str, object] | None = None,
    advance: Callable[[int], None] = lambda n: None,
    dry_run: bool = False,
) -> Outcome:
    """Restores ``rows`` (``count`` of them) to ``target``; ``detail`` (the query, the ids,
    whose mailbox) goes into both audit entries. A dry run sends nothing and records nothing.
    A failure to reach or use the target is one of ``DELIVERY_ERRORS`` (``SourceError`` for
    IMAP), of one line, raised after the audit entry that says how far it got."""
    outcome = Outcome(count, dry_run=dry_run)
    if dry_run:
        return outcome
    info: dict[str, object] = {**(detail or {}), "to": target.where, "count": count}
    audit("restore.intent", info)
    error: str | None = None
    try:
        if isinstance(target, ImapTarget):
            _to_imap(archive, rows, target, outcome, advance)
        else:
            _to_smtp(archive, rows, target, outcome, advance)
    except DELIVERY_ERRORS as exc:
        error = str(exc)
        raise
    finally:
        done: dict[str, object] = {**info, "restored": outcome.restored, "skipped": outcome.skipped}
        audit("restore", {**done, "error": error} if error else done)
    return outcome


def _to_imap(
    archive: Archive,
    rows: Iterable[MessageRow],
    target: ImapTarget,
    outcome: Outcome,
    advance: Callable[[int], None],
) -> None:
    from .importers.imap_append import ImapFolder  # the IMAP library when needed

    folder: ImapFolder = ImapFolder(
        target.url, target.password, ca_file=target.ca_file, master=target.master
    )
    try:
        for row in rows:
            raw = archive.raw(row.id)
            if folder.holds(raw):
                outcome.skipped += 1
            else:
                folder.append(raw, row.received)
                outcome.restored += 1
            advance(1)
    finally:
        folder.close()


def _to_smtp(
    archive: Archive,
    rows: Iterable[MessageRow],
    target: SmtpTarget,
    outcome: Outcome,
    advance: Callable[[int], None],
) -> None:
    from .capture.outgoing import send_sync
    from .capture.smtp_client import Outgoing

    for row in rows:
        # the null sender: see the module's docstring
        message = Outgoing(sender="", recipients=[target.address], content=archive.raw(row.id))
        send_sync(target.server, message, timeout=target.timeout)
        outcome.restored += 1
        advance(1)


def selected(
    archive: Archive, query: str, *, visible_to: tuple[str, ...] | None = None
) -> tuple[int, Iterable[MessageRow]]:
    """The messages ``query`` matches for a reader (``visible_to``: their addresses, None
    for all), oldest first: how many, and the rows, read as they are restored."""
    total = archive.search(query, limit=1, visible_to=visible_to).total
    return total, archive.iter_search(query, visible_to=visible_to)


def configured_target(settings: RestoreSettings, mailbox: str) -> Target:
    """Where ``[restore]`` sends a restore for ``mailbox``: its owner's IMAP login (the
    archive signs in as the master user on their behalf) or, for SMTP, their address.
    ``RestoreUnavailable`` when restoring is off or its password file cannot be read."""
    if settings.smtp is not None:
        return SmtpTarget(mailbox, settings.smtp)
    if (
        settings.imap is None
        or settings.master_user is None
        or settings.master_password_file is None
    ):
        raise RestoreUnavailable(
            "restoring to mailboxes is not configured: set [restore] imap or smtp"
        )
    parts = urlsplit(settings.imap)  # checked when the config was read
    scheme = parts.scheme.lower()
    url = ImapUrl(
        scheme, mailbox, parts.hostname or "", parts.port or SCHEMES[scheme], settings.folder
    )
    password = read_secret(settings.master_password_file, "master user's password")
    ca_file = str(settings.ca_file) if settings.ca_file else None
    return ImapTarget(url, password, ca_file=ca_file, master=settings.master_user)
