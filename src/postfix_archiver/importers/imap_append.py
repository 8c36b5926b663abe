"""Restore into an IMAP folder: APPEND each message byte for byte with its original date,
skipping what the folder already holds.

"Already holds" is decided by content, not by Message-ID (which a sender chooses, and which
many messages lack): the folder is searched for messages of the same size, and those are
fetched and compared. IMAP servers hand messages out with CR LF line ends whatever was
appended, so sizes and bytes are compared in that form.
"""

from __future__ import annotations

import imaplib
from datetime import datetime

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from ..errors import SourceError
from .imap import connect, imap_failure, logout_quietly
from .imap_url import ImapUrl

_ERRORS = (OSError, EOFError, imaplib.IMAP4.error, IMAPClientError)


def crlf(raw: bytes) -> bytes:
    """The message as an IMAP server gives it back: every line end CR LF."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class ImapFolder:
    """One folder of one mailbox, opened for appending (created if missing)."""

    def __init__(
        self,
        url: ImapUrl,
        password: str,
        *,
        ca_file: str | None = None,
        master: str | None = None,
        default_folder: str = "INBOX",
    ) -> None:
        self.url = url
        self.folder = url.folder or default_folder
        self._client: IMAPClient | None = connect(url, password, ca_file, master=master)
        try:
            if not self._imap.folder_exists(self.folder):
                self._imap.create_folder(self.folder)
            self._imap.select_folder(self.folder, readonly=True)
        except _ERRORS as exc:
            self.close()
            raise imap_failure(url, exc) from None

    @property
    def _imap(self) -> IMAPClient:
        if self._client is None:
            raise SourceError(f"{self.url.account}: the connection is closed")
        return self._client

    @property
    def where(self) -> str:
        return f"{self.url.account}/{self.folder}"

    def holds(self, raw: bytes) -> bool:
        """Whether the folder has a message with exactly these bytes (line ends aside)."""
        wanted = crlf(raw)
        try:
            self._imap.noop()  # see messages appended since the folder was selected
            sizes = {len(wanted), len(raw)}
            uids: set[int] = set()
            for size in sizes:
                uids.update(self._imap.search(["LARGER", size - 1, "SMALLER", size + 1]))
            if not uids:
                return False
            fetched = self._imap.fetch(sorted(uids), ["BODY.PEEK[]"])
        except _ERRORS as exc:
            raise imap_failure(self.url, exc) from None
        return any(
            isinstance(body := data.get(b"BODY[]"), bytes) and crlf(body) == wanted
            for data in fetched.values()
        )

    def append(self, raw: bytes, when: datetime) -> None:
        """APPEND with ``when`` as INTERNALDATE, no flags (a restored message is unread)."""
        try:
            self._imap.append(self.folder, raw, flags=(), msg_time=when)
        except _ERRORS as exc:
            raise imap_failure(self.url, exc) from None

    def close(self) -> None:
        client, self._client = self._client, None
        logout_quietly(client)
