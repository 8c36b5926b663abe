"""Parsing raw message bytes into what the archive indexes and shows.

One parse per message: the rules, the catalog row and the full-text index all come from the
``ParsedMessage`` built here. Parsing never raises: a message that is not valid MIME is still
archived byte for byte, and what was wrong with it is listed in ``defects``.

The ``compat32`` policy is used on purpose: it is several times faster than the default
policy and never rejects input; the decoding the default policy would do (RFC 2047 words,
RFC 2231 parameters, charsets) is done here with the stdlib helpers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email import errors, policy
from email.feedparser import BytesFeedParser
from email.header import Header, decode_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses

import nh3

from .dates import parse_header_date

_PARSER = BytesParser(policy=policy.compat32)
_WS = re.compile(r"\s+")
_SURROGATES = re.compile("[\ud800-\udfff]")
# a tag of an element that breaks the line (a cell, a paragraph, a list item, <br>): its
# text must not run into the next block's ("Deal 4Deal 5", "xxxUnsubscribe"), so the tag
# itself becomes a space before cleaning (not a space beside it: nh3 is slow on deep
# nesting, and text between nested tags made it slower); inline elements (<b>, <span>,
# <a>) join their text as shown. Quoted attribute values may hold ">". A match never runs
# past the next "<" and never backtracks (possessive), so hostile markup (a million "<div "
# and no ">") costs one pass over the text, not one per tag.
_BLOCK_TAG = re.compile(
    r"</?(?:address|article|aside|blockquote|br|caption|dd|div|dl|dt|fieldset|figcaption|"
    r"figure|footer|form|h[1-6]|header|hr|li|main|nav|ol|p|pre|section|table|tbody|td|tfoot|"
    r"th|thead|tr|ul)\b(?:[^<>\"']++|\"[^<\"]*+\"|'[^<']*+')*+>",
    re.IGNORECASE,
)
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


@dataclass(frozen=True, slots=True)
class InlinePart:
    """An image of the message's own, for a ``cid:`` reference in its HTML body."""

    content_type: str
    data: bytes  # decoded


# the images kept for ``cid:`` references: types a browser shows safely, and a bound on
# what one message may make a reader hold (and a page embed as ``data:`` URIs)
INLINE_IMAGE_TYPES = ("image/png", "image/gif", "image/jpeg", "image/webp")
MAX_INLINE_IMAGE = 2 * 1024 * 1024
MAX_INLINE_TOTAL = 8 * 1024 * 1024


def normalize_message_id(value: str) -> str:
    """A Message-ID (or a Content-ID, of the same syntax) as stored and compared: without
    its angle brackets and the blanks around them. The one place that says so."""
    return value.strip().strip("<>").strip()


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
    # images by Content-ID (normalized, lower case); only ``parse_message(inline=True)``
    # collects them: the archive's readers need them, ingest does not
    inline: dict[str, InlinePart] = field(default_factory=dict)

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


def html_to_text(markup: str) -> str:
    """Visible text of an HTML body; script and style contents are dropped."""
    cleaned = nh3.clean(
        _BLOCK_TAG.sub(" ", markup), tags=set(), clean_content_tags={"script", "style"}
    )
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
    date, defect = parse_header_date(value)
    if defect:
        defects.append(defect)
    return date


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
    if name and "\ufffd" in name:
        name = _eight_bit_filename(part) or name
    return decode_header_value(name) if name else ""


def _eight_bit_filename(part: Message) -> str | None:
    """A file name in raw 8-bit bytes (UTF-8 mostly, as SMTPUTF8 mail and many clients write
    it), which the parser gives as U+FFFD: read again from the headers' raw bytes."""
    holder = Message()
    for header in ("Content-Disposition", "Content-Type"):
        values = _raw_header(part, header)
        if values:
            holder[header] = values[0]
    try:
        return holder.get_filename()
    except Exception:
        return None


def _is_attachment(part: Message, filename: str, ctype: str) -> bool:
    # str(): a header with raw 8-bit bytes comes back as a Header object
    disposition = str(part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    if disposition == "attachment" or filename:
        return True
    return not ctype.startswith(("text/", "multipart/", "message/"))


_ENCODED = ("quoted-printable", "base64", "x-uuencode", "uuencode", "uue", "x-uue")


def _payload(part: Message, defects: list[str]) -> bytes:
    """The decoded body: what ``get_payload(decode=True)`` returns, with fewer copies of a big
    body. The stdlib copies it four times over before decoding base64 (a test for 8-bit
    bytes, the bytes, its lines, their join); here plain base64 is decoded from the parser's
    text as it is, and other base64 or an unencoded body is taken as bytes once. Anything
    else (quoted-printable, uuencode, a payload that is not from bytes) is the stdlib's."""
    text = getattr(part, "_payload", None)  # compat32 keeps a leaf body as it was read
    cte = str(part.get("content-transfer-encoding", "")).lower()
    if isinstance(text, str) and cte == "base64" and _plain_base64(text):
        return binascii.a2b_base64(text)  # the line ends are skipped: no copy without them
    if isinstance(text, str) and (cte == "base64" or cte not in _ENCODED):
        try:
            # the parser decoded bytes this way: these are the body's bytes, exactly
            body = text.encode("ascii", "surrogateescape")
        except UnicodeEncodeError:
            body = None
        if body is not None and cte != "base64":
            return body
        if body is not None:
            # what splitting into lines and joining them does, in one copy
            encoded = body.translate(None, b"\r\n")
            del body
            value, found = _decode_base64(encoded)
            for defect in found:
                part.policy.handle_defect(part, defect)
            return value
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:  # broken base64/quoted-printable
        defects.append(f"undecodable part body: {exc}")
        return b""
    if isinstance(data, bytes):
        return data
    return b""


# charsets in which ASCII bytes read as the same ASCII characters (not utf-7, utf-16, EBCDIC)
_ASCII_SAFE = frozenset(
    {"", "us-ascii", "ascii", "utf-8", "utf8", "iso-8859-1", "latin-1", "latin1", "iso-8859-15"}
    | {"windows-1252", "cp1252", "unknown-8bit", "x-unknown"}
)


def _ascii_text(part: Message, charset: str | None) -> str | None:
    """The text of a part whose body is plain ASCII, as ``decode_text(_payload(part))`` would
    give it: the parser's own str, where going through bytes would copy a big body twice.
    ``charset``: ``part.get_content_charset()``."""
    text = getattr(part, "_payload", None)
    if not isinstance(text, str) or not text.isascii():
        return None
    if str(part.get("content-transfer-encoding", "")).lower() in _ENCODED:
        return None
    return text if (charset.strip().strip('"') if charset else "") in _ASCII_SAFE else None


# base64 characters and line ends, padding only at the end
_PLAIN_BASE64 = re.compile(r"[A-Za-z0-9+/\r\n]*={0,2}[\r\n]*")


def _plain_base64(text: str) -> bool:
    """Whether strict decoding takes ``text`` without its line ends as it is (what
    ``_decode_base64`` tries first): no other character, whole groups of four."""
    return (
        text.isascii()
        and _PLAIN_BASE64.fullmatch(text) is not None
        and (len(text) - text.count("\r") - text.count("\n")) % 4 == 0
    )


def _decode_base64(encoded: bytes) -> tuple[bytes, list[errors.MessageDefect]]:
    """A base64 body without line ends, decoded as ``get_payload`` does (the stdlib's private
    ``email._encoded_words.decode_b``): padding fixed, bad characters skipped, each noted."""
    pad_err = len(encoded) % 4
    try:
        padded = encoded + b"==="[: 4 - pad_err] if pad_err else encoded
        return (
            base64.b64decode(padded, validate=True),
            [errors.InvalidBase64PaddingDefect()] if pad_err else [],
        )
    except binascii.Error:
        pass
    try:
        return base64.b64decode(encoded, validate=False), [errors.InvalidBase64CharactersDefect()]
    except binascii.Error:
        pass
    try:
        return (
            base64.b64decode(encoded + b"==", validate=False),
            [errors.InvalidBase64CharactersDefect(), errors.InvalidBase64PaddingDefect()],
        )
    except binascii.Error:
        return encoded, [errors.InvalidBase64LengthDefect()]


# what Parser.parse reads at a time: the same feeds give the same parse
_FEED = 8192


def _feed(raw: bytes) -> Message:
    """``BytesParser(policy=compat32).parsebytes(raw)`` without its two whole copies: it
    decodes the message into one str and reads that through a StringIO, which stores it at
    four bytes a character. The same 8,192-character feeds are taken from the bytes here."""
    parser = BytesFeedParser(policy=policy.compat32)
    for i in range(0, len(raw), _FEED):
        parser.feed(raw[i : i + _FEED])
    return parser.close()


def _parse_bytes(raw: bytes, *, hollow_from: int = 1 << 20, run: int = 64 << 10) -> Message:
    """The parse of ``raw``; a message of ``hollow_from`` bytes or more without its big base64
    bodies going through the feedparser (``_parse_hollow``)."""
    if len(raw) >= hollow_from:
        regions = _base64_regions(raw, run)
        if regions:
            msg = _parse_hollow(raw, regions)
            if msg is not None:
                return msg
    return _feed(raw)


# base64 characters and line ends; two line ends or more in a row (an empty line)
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/=\r\n]+")
# two line ends in a row that are not one CR LF: where an empty line is
_EMPTY_LINE_PAIRS = (b"\n\n", b"\n\r", b"\r\r")
_EOL = frozenset(b"\r\n")


def _base64_regions(raw: bytes, run: int) -> list[tuple[int, int]]:
    """Stretches of ``raw`` of at least ``run`` bytes made of whole lines of base64 characters
    (no empty line), each starting a line and ending just before a line end."""
    regions: list[tuple[int, int]] = []
    for m in _BASE64_RUN.finditer(raw):
        if m.end() - m.start() < run:
            continue
        start = m.start()
        for blank in (*_empty_lines(raw, m.start(), m.end()), None):
            end = m.end() if blank is None else blank[0]
            start = _line_start(raw, start, end)
            if blank is None:
                # the run ends inside a line (a boundary's "--"): end at the line end before
                end = max(raw.rfind(b"\n", start, end), raw.rfind(b"\r", start, end), start)
            while end > start and raw[end - 1] in _EOL:
                end -= 1
            if end - start >= run:
                regions.append((start, end))
            if blank is not None:
                start = blank[1]
    return regions


def _empty_lines(raw: bytes, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(first, past the last) line end of each run of line ends in ``raw[start:end]`` that
    holds an empty line. With ``find``: a regular expression tries every position."""
    ahead = {pair: raw.find(pair, start, end) for pair in _EMPTY_LINE_PAIRS}
    pos = start
    while True:
        for pair, at in ahead.items():
            if 0 <= at < pos:  # passed: the next one (each pair is searched once a stretch)
                ahead[pair] = raw.find(pair, pos, end)
        found = [at for at in ahead.values() if at >= 0]
        if not found:
            return
        first = min(found)
        if first > start and raw[first - 1 : first + 1] == b"\r\n":
            first -= 1  # the CR LF that ends the line before the empty one
        last = first
        while last < end and raw[last] in _EOL:
            last += 1
        yield first, last
        pos = last


def _line_start(raw: bytes, pos: int, end: int) -> int:
    """The first line start at or after ``pos`` (``end`` if none before it)."""
    if pos > 0 and raw[pos - 1] not in _EOL:
        ends = [i for i in (raw.find(b"\n", pos, end), raw.find(b"\r", pos, end)) if i >= 0]
        pos = min(ends, default=end)
    while pos < end and raw[pos] in _EOL:
        pos += 1
    return pos


def _parse_hollow(raw: bytes, regions: list[tuple[int, int]]) -> Message | None:
    """The parse of ``raw`` with each region read as one line (a token), then put back as the
    payload it is part of; None when that is not sure to be the parse of ``raw``.

    The feedparser holds every line of a body as a str object (1.7 times a base64 body) and
    then their join. A region's lines are all alike for it: not empty, not a header (no
    colon, no leading blank), not a boundary (no ``--``), like the token. In whatever state
    the parser reads them, it reads them as it reads the token; if the token ends up in a
    leaf part's body, the region was read as body there, and it is put back in its place."""
    marker = os.urandom(8).hex()
    tokens = [f"{marker}{i:06d}".encode() for i in range(len(regions))]
    pieces: list[bytes] = []
    pos = 0
    for (start, end), token in zip(regions, tokens, strict=True):
        pieces += (raw[pos:start], token)
        pos = end
    pieces.append(raw[pos:])
    hollow = b"".join(pieces)
    del pieces
    if any(hollow.count(t) != 1 for t in tokens):
        return None  # the marker occurs in the message (once in 2^64)
    msg = _feed(hollow)
    places: dict[str, Message] = {}
    for part in msg.walk():
        payload = getattr(part, "_payload", None)
        if isinstance(payload, str) and marker in payload:
            for token in tokens:
                if token.decode() in payload:
                    places[token.decode()] = part
    if len(places) != len(tokens):
        return None  # a token outside a body (a preamble, an epilogue): no shortcut
    for (start, end), token in zip(regions, tokens, strict=True):
        part = places[token.decode()]
        before, _, after = part._payload.partition(token.decode())  # type: ignore[attr-defined]
        text = str(memoryview(raw)[start:end], "ascii")
        if before:
            text = before + text
        if after:
            text += after
        part.set_payload(text)
    return msg


# the blank line that ends the header block
_BLANK_LINE = re.compile(rb"\n\r?\n")
_BLANK_LINE_TEXT = re.compile("\n\r?\n")


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
    msg.set_payload(str(memoryview(raw)[m.end() :], "ascii", "surrogateescape"))
    return msg


def parse_message(raw: bytes, *, fast: bool = True, inline: bool = False) -> ParsedMessage:
    """Parse ``raw``; never raises, records what is wrong in ``defects``. ``inline``: keep
    the message's images by Content-ID too (``ParsedMessage.inline``), from the same parse."""
    defects: list[str] = []
    try:
        msg = (_parse_single_part(raw) if fast else None) or _parse_bytes(raw)
    except Exception as exc:  # pragma: no cover - compat32 parses anything; belt and braces
        return ParsedMessage(size=len(raw), headers=[], defects=[f"unparseable message: {exc}"])
    parsed = ParsedMessage(size=len(raw), headers=_header_list(msg), defects=defects)
    try:
        _fill(parsed, msg, defects, inline)
    except Exception as exc:  # never lose a message to a parser corner case
        defects.append(f"parse error: {type(exc).__name__}: {exc}")
    return parsed


def index_text_of(raw: bytes) -> str:
    """``parse_message(raw).index_text()`` without the rest of a parse (addresses, dates,
    attachments decoded and hashed, images): the text of many messages at once, for the
    snippets of a page of search results. Never raises."""
    try:
        return text_of_tree(text_tree(raw))
    except Exception:  # what parse_message makes of it, the long way  # pragma: no cover
        return parse_message(raw).index_text()


def text_tree(raw: bytes) -> Message:
    """The tree ``index_text_of`` reads: ``raw``'s parse, where a plain single part's header
    block (plain ASCII lines the parser reads without a defect, most mail) is only searched
    for the fields its text depends on (``_TEXT_FIELDS``), not parsed whole: the parse of a
    header block cost as much as everything else in a snippet together."""
    m = _BLANK_LINE.search(raw)
    head = _plain_head(raw, m)
    if m is not None and head is not None:
        msg = Message()  # compat32, as the parser makes it
        for found in _TEXT_FIELDS.finditer(head):
            # what the parser stores (policy.compat32.header_source_parse): the value from
            # after the colon, its leading blanks and final line end dropped
            msg.set_raw(found.group(1), found.group(2).lstrip(" \t").rstrip("\r\n"))
        if msg.get_content_maintype() == "multipart" and _flat_multipart(msg, raw, m.end()):
            return msg
        if msg.get_content_maintype() in ("multipart", "message"):
            return _parse_bytes(raw)  # _parse_single_part would say None too
        msg.set_payload(str(memoryview(raw)[m.end() :], "ascii", "surrogateescape"))
        return msg
    return _parse_single_part(raw) or _parse_bytes(raw)


# the rest of a boundary line after ``--boundary``, as the feedparser's expression for it
# takes it: ``--`` if it closes the multipart, blanks, the line end
_BOUNDARY_REST = re.compile(r"(--)?[ \t]*(?:\r?\n|\Z)")


def _flat_multipart(msg: Message, raw: bytes, at: int) -> bool:
    """Give ``msg`` (a multipart's header fields, ``raw[at:]`` its body) its parts as the
    feedparser would, for what ``text_of_tree`` reads of them (each part's text fields and
    body), when the body is one level of parts with plain header blocks between a first
    boundary and a closing one; False (``msg`` unchanged) for anything else, which is then
    parsed whole: nested multiparts and ``message/*`` parts, a digest (whose parts default to
    ``message/rfc822``), bare CRs (a line end to the feedparser), two boundaries in a row, no
    closing boundary, a part without its blank line. Multipart mail (text and HTML, small
    attachments) went through the feedparser line by line: a third of a snippet's cost."""
    boundary = msg.get_boundary()
    if not boundary or msg.get_content_type() == "multipart/digest":
        return False
    body = raw[at:]
    if body.count(b"\r") != body.count(b"\r\n"):
        return False
    text = str(body, "ascii", "surrogateescape")
    # boundary lines: (where the line starts, where the next starts, whether it closes)
    lines: list[tuple[int, int, bool]] = []
    sep = "--" + boundary
    pos = 0
    while (i := text.find(sep, pos)) >= 0:
        pos = i + len(sep)
        rest = _BOUNDARY_REST.match(text, pos) if i == 0 or text[i - 1] == "\n" else None
        if rest is not None:
            lines.append((i, rest.end(), rest.group(1) is not None))
            if rest.group(1):
                break
    if len(lines) < 2 or lines[0][2] or not lines[-1][2]:
        return False
    parts: list[Message] = []
    for (_, start, _), (end, _, _) in itertools.pairwise(lines):
        part = _flat_part(text[start:end])
        if part is None:
            return False
        parts.append(part)
    for part in parts:
        msg.attach(part)
    return True


def _flat_part(text: str) -> Message | None:
    """One part of ``_flat_multipart`` (its text between two boundary lines), or None."""
    if not text:
        return None  # boundaries in a row: the feedparser takes them as one
    if text.startswith(("\n", "\r\n")):
        head, payload = "", text[text.index("\n") + 1 :]
    else:
        blank = _BLANK_LINE_TEXT.search(text)
        if blank is None:
            return None
        head, payload = text[: blank.start() + 1], text[blank.end() :]
        if not head.isascii() or _PLAIN_HEAD.fullmatch(head) is None:
            return None
    part = Message()
    for found in _TEXT_FIELDS.finditer(head):
        part.set_raw(found.group(1), found.group(2).lstrip(" \t").rstrip("\r\n"))
    if part.get_content_maintype() in ("multipart", "message"):
        return None
    # the line end before a boundary belongs to the boundary (RFC 2046)
    if payload.endswith("\n"):
        payload = payload[: -2 if payload.endswith("\r\n") else -1]
    part.set_payload(payload)
    return part


def text_parts(msg: Message) -> Iterator[tuple[Message, str]]:
    """The leaf parts of ``msg`` that are its text (``text/*``, not attachments), with their
    content types, in order."""
    for part, ctype, _ in _text_parts(msg):
        yield part, ctype


def _text_parts(msg: Message) -> Iterator[tuple[Message, str, str | None]]:
    """``text_parts`` with each part's ``get_content_charset()``."""
    for part in leaf_parts(msg):
        ctype = part.get_content_type()
        if ctype.startswith("text/"):
            charset, attachment = _part_fields(part, ctype)
            if not attachment:
                yield part, ctype, charset


# What a text part's reading depends on in its Content-Type and Content-Disposition fields,
# by their raw values (the first of each, as ``Message.get`` takes them): its charset and
# whether it is an attachment. Parsing the fields' parameters for these (three times a part)
# was a fifth of a snippet's cost, and mail repeats a few such pairs (``text/plain;
# charset=utf-8``) endlessly. Bounded: emptied when full, and long values are not kept.
_PART_FIELDS: dict[tuple[str | None, str | None, str], tuple[str | None, bool]] = {}
_PART_FIELDS_ENTRIES = 4096
_PART_FIELD_CHARS = 1000


def _part_fields(part: Message, ctype: str) -> tuple[str | None, bool]:
    """``(part.get_content_charset(), _is_attachment(part, attachment_filename(part),
    ctype))``, from the cache when its fields were seen before."""
    # object: a field set by program (not the parser) may be a Header, which is no key
    ct: object = None
    cd: object = None
    for key, value in part.raw_items():
        lower = key.lower()
        if lower == "content-type" and ct is None:
            ct = value
        elif lower == "content-disposition" and cd is None:
            cd = value
    if not isinstance(ct, str | None) or not isinstance(cd, str | None):
        return _read_part_fields(part, ctype)
    if len(ct or "") + len(cd or "") > _PART_FIELD_CHARS:
        return _read_part_fields(part, ctype)
    cache_key = (ct, cd, ctype)
    found = _PART_FIELDS.get(cache_key)
    if found is None:
        found = _read_part_fields(part, ctype)
        if len(_PART_FIELDS) >= _PART_FIELDS_ENTRIES:
            _PART_FIELDS.clear()
        _PART_FIELDS[cache_key] = found
    return found


def _read_part_fields(part: Message, ctype: str) -> tuple[str | None, bool]:
    return part.get_content_charset(), _is_attachment(part, attachment_filename(part), ctype)


def text_of_tree(msg: Message) -> str:
    """The index text (``ParsedMessage.index_text``) of a parsed message."""
    plain: list[str] = []
    htmls: list[str] = []
    for part, ctype, charset in _text_parts(msg):
        text = _ascii_text(part, charset)
        if text is None:
            text = decode_text(_payload(part, []), charset)
        (htmls if ctype == "text/html" else plain).append(text)
    return ParsedMessage(
        size=0,
        headers=[],
        text_plain="\n".join(plain).replace("\x00", ""),
        text_html="\n".join(htmls).replace("\x00", ""),
    ).index_text()


# A header block the parser reads without a defect, as its lines: each a field name
# (printable ASCII but the colon) and a colon, or a blank-led continuation of the field
# before it. Possessive: a hostile block costs one pass.
_PLAIN_HEAD = re.compile(r"(?:[\x21-\x39\x3b-\x7e]++:[^\n]*+\n(?:[ \t][^\n]*+\n)*+)++")
# the fields a part's text depends on: its type and charset, whether it is an attachment
# (disposition, file name), its transfer encoding; each with its continuation lines
_TEXT_FIELDS = re.compile(
    r"^(content-(?:type|disposition|transfer-encoding)):([^\n]*+\n(?:[ \t][^\n]*+\n)*+)",
    re.IGNORECASE | re.MULTILINE,
)


def _plain_head(raw: bytes, blank: re.Match[bytes] | None) -> str | None:
    """The header block of ``raw`` (up to the empty line ``blank``) as text, if the parser
    would read it as ``_parse_single_part`` does and without a defect: plain ASCII, line ends
    LF or CR LF, every line a field or a continuation (``_PLAIN_HEAD``); else None."""
    if blank is None or raw[:1] in (b"\r", b"\n"):
        return None
    head = raw[: blank.start() + 1]
    if not head.isascii() or b"\r" in head.replace(b"\r\n", b""):
        return None
    text = head.decode("ascii")
    return text if _PLAIN_HEAD.fullmatch(text) is not None else None


def _fill(parsed: ParsedMessage, msg: Message, defects: list[str], inline: bool) -> None:
    parsed.subject = decode_header_value(msg.get("Subject"))
    parsed.message_id = decode_header_value(msg.get("Message-ID"))
    parsed.date = _parse_date(parsed.header("Date"), defects)
    for attr, name in (("from_", "From"), ("to", "To"), ("cc", "Cc")):
        setattr(parsed, attr, parse_addresses(_raw_header(msg, name)))
    plain: list[str] = []
    htmls: list[str] = []
    images = _InlineImages(parsed.inline) if inline else None
    for index, part in enumerate(leaf_parts(msg)):
        ctype = part.get_content_type()
        filename = attachment_filename(part)
        attachment = _is_attachment(part, filename, ctype)
        text = (
            None
            if attachment or not ctype.startswith("text/")
            else _ascii_text(part, part.get_content_charset())
        )
        if text is not None:
            (htmls if ctype == "text/html" else plain).append(text)
            continue
        payload = _payload(part, defects)
        if images is not None and ctype in INLINE_IMAGE_TYPES:
            images.add(part, ctype, payload)
        if attachment:
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


class _InlineImages:
    """Collects images by Content-ID, in document order, within the bounds above: an image
    too big is skipped, and past the total nothing more is kept."""

    def __init__(self, found: dict[str, InlinePart]) -> None:
        self.found = found
        self.total = 0

    def add(self, part: Message, ctype: str, payload: bytes) -> None:
        if self.total > MAX_INLINE_TOTAL:
            return
        cid = normalize_message_id(str(part.get("Content-ID") or ""))
        if not cid or len(payload) > MAX_INLINE_IMAGE:
            return
        self.total += len(payload)
        if self.total <= MAX_INLINE_TOTAL:
            self.found[cid.lower()] = InlinePart(ctype, payload)


# For code that walks a message's parts itself (the text of attached messages, in
# ``extract``): the same parse, attachment test, decoding and addresses as parse_message.


def parse_tree(raw: bytes) -> Message:
    """The ``email`` tree of ``raw`` as ``parse_message`` reads it."""
    return _parse_bytes(raw)


def is_attachment(part: Message) -> bool:
    """Whether a leaf part is a file rather than the message text."""
    return _is_attachment(part, attachment_filename(part), part.get_content_type())


def part_payload(part: Message) -> bytes:
    """A leaf part's decoded body."""
    return _payload(part, [])


def header_addresses(msg: Message, name: str) -> list[Address]:
    """The addresses in header ``name`` of ``msg`` (all of its occurrences)."""
    return parse_addresses(_raw_header(msg, name))


def decode_body(body: bytes, transfer_encoding: str) -> bytes:
    """A part body as stored in the message, decoded from ``transfer_encoding`` exactly as
    parsing the whole message decodes it (the same ``_payload``): for serving a part that
    is stored on its own without parsing the message around it."""
    part = Message()
    if transfer_encoding:
        part["Content-Transfer-Encoding"] = transfer_encoding
    # how the parser holds a body: its bytes as ASCII, 8-bit bytes as surrogate escapes
    part.set_payload(str(body, "ascii", "surrogateescape"))
    return _payload(part, [])


def attachment_payload(raw: bytes, index: int) -> tuple[Attachment, bytes]:
    """The decoded bytes of leaf part ``index`` (as numbered in ``Attachment.index``)."""
    msg = _parse_bytes(raw)
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
