"""Import from an IMAP server: every message byte for byte, with its INTERNALDATE and folder.

``imaps://USER@HOST[:PORT]/FOLDER`` (TLS from the start) or ``imap://…`` (STARTTLS, which
is required: a password never crosses the network in clear). The user may be written with
its ``@`` as is (``imaps://alice@example.com@mail.example.com/INBOX``: the last ``@`` ends
it) or as ``%40``. No folder means INBOX; ``all_folders`` takes every selectable folder.

Resuming: each folder's UIDVALIDITY and the highest UID archived are kept in the catalog
(``cursor`` / the items' ``mark``) once the messages up to it are committed, so a re-run
fetches only mail it has not seen. A changed UIDVALIDITY (the server renumbered the folder)
means the folder is read again from the start: what was archived already is recognised by
its bytes and recorded once.

Every server or network failure becomes a ``SourceError`` of one line. One that happens
while messages are flowing ends the iteration cleanly instead (``failure`` holds it), so
everything fetched before it is still archived and its cursor recorded.
"""

from __future__ import annotations

import contextlib
import imaplib
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from ..errors import SourceError
from .base import ImportItem, import_envelope
from .imap_url import ImapUrl

TIMEOUT = 60.0  # seconds without an answer before the server counts as gone
BATCH_MESSAGES = 100  # messages fetched in one round trip …
BATCH_BYTES = 16 << 20  # … or about this many bytes, whichever comes first


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise SourceError(f"{ca_file}: cannot read the CA file ({exc})") from None


def imap_failure(url: ImapUrl, exc: BaseException) -> SourceError:
    """One line for what went wrong talking to the server."""
    where = url.account
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SourceError(
            f"{where}: the server's TLS certificate is not trusted ({exc.verify_message}); "
            "give its CA with --ca-file"
        )
    if isinstance(exc, ssl.SSLError):
        return SourceError(f"{where}: TLS failed ({exc.reason or exc})")
    if isinstance(exc, socket.timeout | TimeoutError):
        return SourceError(f"{where}: the server stopped answering (no reply in {TIMEOUT:.0f} s)")
    if isinstance(exc, ConnectionRefusedError):
        return SourceError(f"{where}: connection refused (is the IMAP server listening there?)")
    if isinstance(exc, socket.gaierror):
        return SourceError(f"{where}: unknown host ({exc.strerror})")
    if isinstance(exc, OSError | imaplib.IMAP4.abort | EOFError):
        return SourceError(f"{where}: connection lost ({exc or type(exc).__name__})")
    return SourceError(f"{where}: the server said: {exc}")


def connect(
    url: ImapUrl, password: str, ca_file: str | None, *, master: str | None = None
) -> IMAPClient:
    """A signed-in connection over TLS; ``SourceError`` of one line otherwise. With
    ``master``, ``password`` is that master user's and the session is ``url.user``'s
    (Dovecot's master users: a restore into anyone's mailbox without their password)."""
    context = _tls_context(ca_file)
    client: IMAPClient | None = None
    try:
        client = IMAPClient(
            url.host,
            port=url.port,
            ssl=url.scheme == "imaps",
            ssl_context=context,
            timeout=TIMEOUT,
        )
        client.normalise_times = False  # INTERNALDATE with its zone, not local naive time
        if url.scheme == "imap":
            if b"STARTTLS" not in client.capabilities():
                raise SourceError(
                    f"{url.account}: the server does not offer STARTTLS, and the password "
                    "is never sent in clear: use imaps://"
                )
            client.starttls(context)
        # AUTHENTICATE PLAIN carries UTF-8 (a password with "ä" in it) and an authorization
        # identity (the master user's login as another user); LOGIN only ASCII
        if b"AUTH=PLAIN" in client.capabilities():
            if master is None:
                client.plain_login(url.user, password)
            else:
                client.plain_login(master, password, authorization_identity=url.user)
        elif master is None and password.isascii() and url.user.isascii():
            client.login(url.user, password)
        else:
            raise SourceError(
                f"{url.account}: the server offers only LOGIN, which cannot carry a "
                "non-ASCII user name or password, nor a master user's login"
            )
        return client
    except LoginError:
        logout_quietly(client)
        who = f"master user {master!r} for {url.user!r}" if master else "the login"
        raise SourceError(
            f"{url.account}: the server refused {who} (check the user name and password)"
        ) from None
    except SourceError:
        logout_quietly(client)
        raise
    except (OSError, EOFError, imaplib.IMAP4.error, IMAPClientError) as exc:
        logout_quietly(client)
        raise imap_failure(url, exc) from None


@dataclass(frozen=True, slots=True)
class _Folder:
    name: str
    uidvalidity: int
    uids: list[int]  # those not archived yet, ascending


class ImapSource:
    """The messages of one IMAP account not archived yet, folder by folder, oldest UID
    first. ``cursor(key)`` reads what an earlier run recorded (``"UIDVALIDITY:UID"``); each
    item's ``mark`` is what to record once it is committed."""

    unit = "messages"

    def __init__(
        self,
        url: ImapUrl,
        password: str,
        *,
        all_folders: bool = False,
        ca_file: str | None = None,
        cursor: Callable[[str], str | None] = lambda key: None,
    ) -> None:
        self.url = url
        self.failure: SourceError | None = None
        self.skipped_folders: list[str] = []  # UIDVALIDITY changed: read again
        self._client: IMAPClient | None = None
        self._client = connect(url, password, ca_file)
        try:
            names = self._folder_names(all_folders)
            self.folders = [self._plan(name, cursor) for name in names]
        except BaseException:
            self.close()
            raise
        self.total = sum(len(f.uids) for f in self.folders)
        shown = ", ".join(f.name for f in self.folders)
        self.description = f"{url.account} ({shown})"

    @property
    def _imap(self) -> IMAPClient:
        if self._client is None:  # closed: a failure ended the import
            raise imaplib.IMAP4.abort("the connection was closed")
        return self._client

    def cursor_key(self, folder: str) -> str:
        return f"{self.url.account}/{folder}"

    def _folder_names(self, all_folders: bool) -> list[str]:
        client = self._imap
        try:
            if not all_folders:
                name = self.url.folder or "INBOX"
                if not client.folder_exists(name):
                    known = ", ".join(sorted(self._selectable()))
                    raise SourceError(
                        f"{self.url.account}: no folder {name!r} (there are: {known})"
                    )
                return [name]
            return sorted(self._selectable())
        except SourceError:
            raise
        except (OSError, EOFError, imaplib.IMAP4.error, IMAPClientError) as exc:
            raise imap_failure(self.url, exc) from None

    def _selectable(self) -> list[str]:
        names = []
        for flags, _, name in self._imap.list_folders():
            lowered = {f.lower() for f in flags}
            if b"\\noselect" in lowered or b"\\nonexistent" in lowered:
                continue
            names.append(name if isinstance(name, str) else name.decode("utf-8", "replace"))
        return names

    def _plan(self, name: str, cursor: Callable[[str], str | None]) -> _Folder:
        try:
            status = self._imap.select_folder(name, readonly=True)
            uidvalidity = int(status[b"UIDVALIDITY"])
            last = 0
            recorded = cursor(self.cursor_key(name))
            if recorded is not None:
                validity, _, uid = recorded.partition(":")
                if validity == str(uidvalidity) and uid.isascii() and uid.isdigit():
                    last = int(uid)
                else:
                    self.skipped_folders.append(name)
            # "UID n:*" always names the highest UID, even below n: filter
            uids = sorted(u for u in self._imap.search(["UID", f"{last + 1}:*"]) if u > last)
            return _Folder(name, uidvalidity, uids)
        except (OSError, EOFError, imaplib.IMAP4.error, IMAPClientError) as exc:
            raise imap_failure(self.url, exc) from None

    def __iter__(self) -> Iterator[ImportItem]:
        try:
            for folder in self.folders:
                yield from self._fetch_folder(folder)
        except (OSError, EOFError, imaplib.IMAP4.error, IMAPClientError) as exc:
            # what was fetched so far is archived; the caller reports this afterwards
            self.failure = imap_failure(self.url, exc)
        finally:
            self.close()

    def _fetch_folder(self, folder: _Folder) -> Iterator[ImportItem]:
        client = self._imap
        client.select_folder(folder.name, readonly=True)
        for start in range(0, len(folder.uids), 1000):
            span = folder.uids[start : start + 1000]
            sizes = client.fetch(span, ["RFC822.SIZE"])
            batch: list[int] = []
            batch_bytes = 0
            for uid in span:
                size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
                if batch and (len(batch) >= BATCH_MESSAGES or batch_bytes + size > BATCH_BYTES):
                    yield from self._fetch(folder, batch)
                    batch, batch_bytes = [], 0
                batch.append(uid)
                batch_bytes += size
            if batch:
                yield from self._fetch(folder, batch)

    def _fetch(self, folder: _Folder, uids: list[int]) -> Iterator[ImportItem]:
        fetched = self._imap.fetch(uids, ["BODY.PEEK[]", "INTERNALDATE"])
        for uid in uids:
            data = fetched.get(uid)
            if data is None:  # expunged meanwhile: nothing to archive
                continue
            raw = data.get(b"BODY[]")
            if not isinstance(raw, bytes):
                continue
            when = data.get(b"INTERNALDATE")
            received = when.astimezone(UTC) if isinstance(when, datetime) else None
            yield ImportItem(
                raw=raw,
                envelope=import_envelope(raw, received=received),
                advance=1,
                origin=f"{folder.name} UID {uid}",
                mark=(self.cursor_key(folder.name), f"{folder.uidvalidity}:{uid}"),
            )

    def close(self) -> None:
        client, self._client = self._client, None
        logout_quietly(client)


def logout_quietly(client: IMAPClient | None) -> None:
    if client is None:
        return
    # closing a connection that may already be gone: nothing to report
    try:
        client.logout()
    except Exception:
        with contextlib.suppress(Exception):
            client.shutdown()
