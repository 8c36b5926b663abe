"""IMAP account URLs: ``imaps://USER@HOST[:PORT]/FOLDER`` (read without the IMAP library,
so that commands that only look at a URL do not load it)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ..errors import SourceError

SCHEMES = {"imaps": 993, "imap": 143}


def is_imap_url(spec: str) -> bool:
    scheme, sep, _ = spec.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


@dataclass(frozen=True, slots=True)
class ImapUrl:
    scheme: str
    user: str
    host: str
    port: int
    folder: str | None  # None: INBOX, or every folder with all_folders

    @property
    def account(self) -> str:
        """The account without any secret: names the cursors and the import run."""
        return f"{self.scheme}://{self.user}@{self.host}:{self.port}"


def parse_imap_url(spec: str) -> ImapUrl:
    """``imaps://USER@HOST[:PORT]/FOLDER`` → its parts; a ``SourceError`` naming the fix."""
    if any(
        ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF
        for c in unquote(spec, errors="surrogateescape")
    ):
        # 8-bit bytes that are not UTF-8 (surrogate escapes from argv), control characters
        raise SourceError(f"{spec!r}: not a valid IMAP URL (control or non-UTF-8 characters)")
    scheme, _, rest = spec.partition("://")
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise SourceError(f"{spec}: not an IMAP URL (imaps://USER@HOST[:PORT]/FOLDER)")
    authority, slash, path = rest.partition("/")
    user_part, at, hostport = authority.rpartition("@")
    if not at or not user_part:
        raise SourceError(f"{scheme}://{hostport}: name the user (imaps://USER@HOST/FOLDER)")
    if ":" in user_part:
        # a password in the URL would be seen in ps, shell history and logs
        raise SourceError(
            f"{scheme}://…@{hostport}: no password in the URL "
            "(use --password-stdin or --password-file)"
        )
    try:
        parts = urlsplit(f"//{hostport}")
        host = parts.hostname
        port = parts.port or SCHEMES[scheme]
    except ValueError as exc:
        raise SourceError(f"{scheme}://{hostport}: bad host or port ({exc})") from None
    if not host:
        raise SourceError(f"{spec}: no host name")
    folder = unquote(path) if slash and path else None
    return ImapUrl(scheme, unquote(user_part), host, port, folder)
