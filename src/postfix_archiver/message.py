"""Parsing raw message bytes into what the archive indexes and shows.

One parse per message: the rules, the catalog row and the full-text index all come from the
``ParsedMessage`` built here. Parsing never raises: a message that is not valid MIME is still
archived byte for byte, and what was wrong with it is listed in ``defects``.

The ``compat32`` policy is used on purpose: it is several times faster than the default
policy and never rejects input; the decoding the default policy would do (RFC 2047 words,
RFC 2231 parameters, charsets) is done here with the stdlib helpers.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.header import Header, decode_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

import nh3

_PARSER = BytesParser(policy=policy.compat32)
_WS = re.compile(r"\s+")
_SURROGATES = re.compile("[\ud800-\udfff]")
_FOLD = re.compile(r"\r?\n(?=[ \t])")


@dataclass(frozen=True, slots=True)
class Address:
    name: str
    address: str

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


@dataclass(frozen=True, slots=True)
class Attachment:
    """A MIME leaf part that is a file rather than the message text."""

    index: int  # position among the message's leaf parts, stable across parses
    filename: str
    content_type: str
    size: int  # decoded bytes
    sha256: str  # of the decoded bytes


@dataclass(slots=True)
class ParsedMessage:
    size: int
    headers: list[tuple[str, str]]
    subject: str = ""
    message_id: str = ""
    date: datetime | None = None
    from_: list[Address] = field(default_factory=list)
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    text_plain: str = ""
    text_html: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), decoded."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [value for key, value in self.headers if key.lower() == lname]

    @property
    def body_text(self) -> str:
        """The readable body: the plain text part, else the HTML part without its tags."""
        return self.text_plain or html_to_text(self.text_html)

    def index_text(self) -> str:
        """Text bodies for the full-text index (HTML with tags stripped)."""
        parts = [self.text_plain]
        if self.text_html:
            parts.append(html_to_text(self.text_html))
        return "\n".join(p for p in parts if p)

    def addresses_text(self) -> str:
        return " ".join(str(a) for a in (*self.from_, *self.to, *self.cc))


def html_to_text(markup: str) -> str:
    """Visible text of an HTML body; script and style contents are dropped."""
    cleaned = nh3.clean(markup, tags=set(), clean_content_tags={"script", "style"})
    return _WS.sub(" ", html.unescape(cleaned)).strip()


def decode_text(data: bytes, charset: str | None, defects: list[str] | None = None) -> str:
    """Bytes to text in the declared charset; unknown charsets fall back, never fail."""
    cs = charset.strip().strip('"').lower() if charset else ""
    # unknown-8bit is raw 8-bit text of no declared charset: guess like for no charset
    if cs and cs not in ("unknown-8bit", "x-unknown"):
        try:
            # codecs such as utf-7 or unicode_escape can produce lone surrogates, which
            # no UTF-8 consumer (the catalog, JSON) accepts
            return _SURROGATES.sub("\ufffd", data.decode(cs, errors="replace"))
        except (LookupError, UnicodeError):  # idna, punycode: no errors="replace"
            if defects is not None:
                defects.append(f"unknown charset {charset!r}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def decode_header_value(value: str | Header | None) -> str:
    """RFC 2047 encoded words and raw 8-bit bytes to one clean string."""
    if value is None:
        return ""
    if isinstance(value, str):
        if "=?" not in value and value.isascii():
            # the common case: nothing encoded, nothing 8-bit (decode_header is slow)
            return _WS.sub(" ", value.replace("\x00", "")).strip()
        # unfold first: decode_header strips the whitespace that starts a continuation
        # line, which glues a folded word to the one before it
        value = _FOLD.sub("", value)
    try:
        chunks = decode_header(value)
    except Exception:  # a malformed encoded word: show it as it is
        return _WS.sub(" ", str(value)).strip()
    out: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, bytes):
            out.append(decode_text(chunk, charset))
        else:
            out.append(chunk)
    # decode_header drops the space between an encoded word and plain text
    text = "".join(out) if any(cs for _, cs in chunks) else " ".join(out)
    return _WS.sub(" ", text.replace("\x00", "")).strip()


def _raw_header(msg: Message, name: str) -> list[str]:
    """Undecoded values of header ``name``; raw 8-bit bytes (SMTPUTF8) become text."""
    lname = name.lower()
    values = []
    for key, value in msg.raw_items():
        if key.lower() == lname:
            # the parser keeps 8-bit header bytes as surrogate escapes
            values.append(decode_text(str(value).encode("utf-8", "surrogateescape"), None))
    return values


def parse_addresses(values: list[str]) -> list[Address]:
    result: list[Address] = []
    for name, addr in getaddresses(values):
        if not addr and not name:
            continue
        result.append(Address(decode_header_value(name), addr.strip()))
    return result


def _header_list(msg: Message) -> list[tuple[str, str]]:
    return [(k, decode_header_value(v)) for k, v in msg.items()]


def _parse_date(value: str | None, defects: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        defects.append(f"unparseable Date header {value!r}")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def leaf_parts(msg: Message) -> Iterator[Message]:
    """Leaf parts in document order (descends into message/rfc822 attachments)."""
    for part in msg.walk():
        if not part.is_multipart():
            yield part


def attachment_filename(part: Message) -> str:
    try:
        name = part.get_filename()  # RFC 2231 continuations and charsets handled here
    except Exception:  # a broken RFC 2231 parameter
        name = None
    return decode_header_value(name) if name else ""


def _is_attachment(part: Message, filename: str, ctype: str) -> bool:
    # str(): a header with raw 8-bit bytes comes back as a Header object
    disposition = str(part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    if disposition == "attachment" or filename:
        return True
    return not ctype.startswith(("text/", "multipart/", "message/"))


def _payload(part: Message, defects: list[str]) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:  # broken base64/quoted-printable
        defects.append(f"undecodable part body: {exc}")
        return b""
    if isinstance(data, bytes):
        return data
    return b""


# the blank line that ends the header block
_BLANK_LINE = re.compile(rb"\n\r?\n")


def _parse_single_part(raw: bytes) -> Message | None:
    """The parse of a plain single-part message without feeding its body through the
    feedparser line by line (the dearest part of parsing mail that is mostly body).

    Only the header block goes through the parser; the body becomes the payload as is, which
    is what the feedparser makes of a single-part body. Anything else (multipart, message/*,
    a header block the parser finds anything wrong with, bare CRs) returns None for the full
    parse. ``tests/unit/test_message.py`` checks both give the same result."""
    m = _BLANK_LINE.search(raw)
    if m is None or raw[:1] in (b"\r", b"\n"):
        return None
    head = raw[: m.start() + 1]
    if b"\r" in head.replace(b"\r\n", b""):
        return None  # the feedparser takes a bare CR for a line end
    msg = _PARSER.parsebytes(head)
    if msg.defects or msg.get_payload() or msg.get_content_maintype() in ("multipart", "message"):
        return None
    msg.set_payload(raw[m.end() :].decode("ascii", "surrogateescape"))
    return msg


def parse_message(raw: bytes, *, fast: bool = True) -> ParsedMessage:
    """Parse ``raw``; never raises, records what is wrong in ``defects``."""
    defects: list[str] = []
    try:
        msg = (_parse_single_part(raw) if fast else None) or _PARSER.parsebytes(raw)
    except Exception as exc:  # pragma: no cover - compat32 parses anything; belt and braces
        return ParsedMessage(size=len(raw), headers=[], defects=[f"unparseable message: {exc}"])
    parsed = ParsedMessage(size=len(raw), headers=_header_list(msg), defects=defects)
    try:
        _fill(parsed, msg, defects)
    except Exception as exc:  # never lose a message to a parser corner case
        defects.append(f"parse error: {type(exc).__name__}: {exc}")
    return parsed


def _fill(parsed: ParsedMessage, msg: Message, defects: list[str]) -> None:
    parsed.subject = decode_header_value(msg.get("Subject"))
    parsed.message_id = decode_header_value(msg.get("Message-ID"))
    parsed.date = _parse_date(parsed.header("Date"), defects)
    for attr, name in (("from_", "From"), ("to", "To"), ("cc", "Cc")):
        setattr(parsed, attr, parse_addresses(_raw_header(msg, name)))
    plain: list[str] = []
    htmls: list[str] = []
    for index, part in enumerate(leaf_parts(msg)):
        ctype = part.get_content_type()
        filename = attachment_filename(part)
        payload = _payload(part, defects)
        if _is_attachment(part, filename, ctype):
            parsed.attachments.append(
                Attachment(
                    index=index,
                    filename=filename,
                    content_type=ctype,
                    size=len(payload),
                    sha256=hashlib.sha256(payload).hexdigest(),
                )
            )
        elif ctype == "text/html":
            htmls.append(decode_text(payload, part.get_content_charset(), defects))
        elif ctype.startswith("text/"):
            plain.append(decode_text(payload, part.get_content_charset(), defects))
    # after the bodies are decoded: decoding notes defects too (bad base64, padding)
    for part in msg.walk():
        defects.extend(type(d).__name__ for d in part.defects)
    parsed.text_plain = "\n".join(plain).replace("\x00", "")
    parsed.text_html = "\n".join(htmls).replace("\x00", "")
    # keep the list short and stable: the same defect on many parts is noted once
    parsed.defects[:] = list(dict.fromkeys(defects))


def attachment_payload(raw: bytes, index: int) -> tuple[Attachment, bytes]:
    """The decoded bytes of leaf part ``index`` (as numbered in ``Attachment.index``)."""
    msg = _PARSER.parsebytes(raw)
    for i, part in enumerate(leaf_parts(msg)):
        if i == index:
            payload = _payload(part, [])
            return Attachment(
                index=i,
                filename=attachment_filename(part),
                content_type=part.get_content_type(),
                size=len(payload),
                sha256=hashlib.sha256(payload).hexdigest(),
            ), payload
    raise KeyError(index)
