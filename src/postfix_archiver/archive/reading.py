"""The read model: what a message page, ``show --json`` and the API show of one message,
from one parse; and attachments served from the part stored on its own.

A page view is three requests (the page, the sandboxed iframe's body, and the body's
``cid:`` images, which come with it as ``data:`` URIs); each used to parse the message anew.
``Archive.read`` parses once and keeps the last few parses (``ParseCache``), by the message's
SHA-256: the bytes behind a hash never change, so a kept parse is never stale, while the
rows (envelopes, and whatever is stored about an arrival later) are read fresh each time.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..catalog import AttachmentRow, EnvelopeRow, MessageRow
from ..message import ParsedMessage, decode_body
from . import skeleton

if TYPE_CHECKING:
    from .service import MessageView

# already the decoded bytes: a body in one of these is stored as it is decoded
_IDENTITY = frozenset({"", "7bit", "8bit", "binary"})


@dataclass(frozen=True, slots=True)
class MessageRead:
    """One message as its readers see it: the catalog's rows and the one parse of its bytes
    (headers, text and HTML bodies, defects, images by Content-ID in ``parsed.inline``).

    ``parsed`` may be shared with other readers of the same message: read it, never change it.
    """

    view: MessageView
    parsed: ParsedMessage

    @property
    def row(self) -> MessageRow:
        return self.view.row

    @property
    def envelopes(self) -> list[EnvelopeRow]:
        return self.view.envelopes

    @property
    def attachments(self) -> list[AttachmentRow]:
        return self.view.attachments


class ParseCache:
    """The last ``entries`` parses by message SHA-256, at most ``max_bytes`` of messages in
    all (a message bigger than that is parsed each time, never kept). Thread-safe; two
    threads asking for the same message at once may both parse it, and both get a parse."""

    def __init__(self, entries: int = 8, max_bytes: int = 64 << 20) -> None:
        self.entries = entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, tuple[ParsedMessage, int]] = OrderedDict()
        self._bytes = 0

    def peek(self, sha256: str) -> ParsedMessage | None:
        """The kept parse of ``sha256``, if there is one (it stays where it is: a glance,
        such as a search result's snippet, is no reason to keep it longer)."""
        with self._lock:
            found = self._kept.get(sha256)
        return None if found is None else found[0]

    def get(self, sha256: str, parse: Callable[[], ParsedMessage]) -> ParsedMessage:
        with self._lock:
            found = self._kept.get(sha256)
            if found is not None:
                self._kept.move_to_end(sha256)
                return found[0]
        parsed = parse()  # outside the lock: other readers go on meanwhile
        weight = parsed.size + sum(len(p.data) for p in parsed.inline.values())
        if weight > self.max_bytes or self.entries <= 0:
            return parsed
        with self._lock:
            if sha256 not in self._kept:
                self._kept[sha256] = (parsed, weight)
                self._bytes += weight
            while len(self._kept) > self.entries or self._bytes > self.max_bytes:
                _, (_, dropped) = self._kept.popitem(last=False)
                self._bytes -= dropped
        return parsed


class TextCache:
    """The index text of the last ``entries`` messages read for snippets, by SHA-256, at most
    ``max_chars`` in all: a search page shown again (after a message page, or paging back)
    reads no blob. Only the start that snippets look at is kept. Thread-safe."""

    def __init__(self, keep: int, entries: int = 1024, max_chars: int = 16 << 20) -> None:
        self.keep = keep
        self.entries = entries
        self.max_chars = max_chars
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, str] = OrderedDict()
        self._chars = 0

    def get(self, sha256: str, read: Callable[[], str]) -> str:
        with self._lock:
            found = self._kept.get(sha256)
            if found is not None:
                self._kept.move_to_end(sha256)
                return found
        text = read()[: self.keep]  # outside the lock
        if not text:  # nothing (an attachment not extracted yet): read again next time
            return text
        with self._lock:
            if sha256 not in self._kept:
                self._kept[sha256] = text
                self._chars += len(text)
            while len(self._kept) > self.entries or self._chars > self.max_chars:
                _, dropped = self._kept.popitem(last=False)
                self._chars -= len(dropped)
        return text


def stored_attachment(
    segments: list[skeleton.Segment], sha256: str, fetch: Callable[[str], bytes]
) -> bytes | None:
    """The decoded bytes of an attachment with the SHA-256 ``sha256`` from the parts a
    message's skeleton (``segments``) cut out, read with ``fetch`` (which checks each
    part's own SHA-256); None when no part is that attachment (a small one stays in the
    skeleton, malformed MIME may not be cut): the caller then parses the whole message.

    A part stored decoded (regular base64) or never encoded is the attachment itself, found
    by its hash. A part kept as it was encoded (quoted-printable, irregular base64) is
    decoded the way parsing decodes it, and only taken if the result has the hash: what this
    returns is always the bytes the full parse gives."""
    refs = [(i, seg) for i, seg in enumerate(segments) if isinstance(seg, skeleton.PartRef)]
    for _, ref in refs:
        if ref.sha256 == sha256:
            return fetch(ref.sha256)
    for i, ref in refs:
        before = segments[i - 1] if i else b""
        if ref.encoding != "raw" or not isinstance(before, bytes):
            continue
        encoding = skeleton.transfer_encoding_before(before)
        if encoding in _IDENTITY:
            continue  # its bytes are its content: the hash would have matched above
        decoded = decode_body(fetch(ref.sha256), encoding)
        if hashlib.sha256(decoded).hexdigest() == sha256:
            return decoded
    return None
