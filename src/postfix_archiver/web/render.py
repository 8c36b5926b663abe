"""Showing mail without trusting it.

Nothing that comes from a message (headers, names, subjects, file names, bodies) is trusted:

- text goes through Jinja2's autoescaping, after ``clean_text`` replaced control and
  bidirectional-override characters (which can disguise ``exe`` as ``pdf``);
- an HTML body goes through ``sanitize_html`` (nh3 with a small allowlist: no script, no
  style sheets, no forms or frames, no event handlers, links only to http(s) and mailto,
  images only as ``data:`` URIs, so remote images are never fetched) and is then shown in a
  sandboxed iframe whose own Content-Security-Policy forbids scripts and remote loads again;
  its links open in a new tab (``target=_blank``, ``rel="noopener noreferrer"``: the page
  opened learns neither the archive's address nor gets a handle on its window);
- downloads get a sanitized file name (``content_disposition``) and are always attachments.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import nh3

from ..accounts import User
from ..archive import MessageView, document
from ..catalog import AttachmentRow, EnvelopeRow, ExtractRecord
from ..message import InlinePart, ParsedMessage, normalize_message_id

# control characters (but tab and newline) and the bidirectional controls
_UNSAFE_CHARS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
_FILENAME_ASCII = re.compile(r"[^A-Za-z0-9._()+,=@ -]")

ALLOWED_TAGS = {
    "a", "abbr", "b", "big", "blockquote", "br", "caption", "center", "cite", "code", "col",
    "colgroup", "dd", "del", "div", "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "i", "img", "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "small", "span",
    "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
    "tt", "u", "ul",
}  # fmt: skip
# removed together with everything inside them
DROPPED_TAGS = {"script", "style", "title", "noscript", "template", "head"}
ALLOWED_ATTRIBUTES = {
    "*": {"align", "dir", "lang", "style", "title", "valign"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "font": {"color", "face", "size"},
    "table": {"width", "border", "cellpadding", "cellspacing", "bgcolor"},
    "td": {"width", "height", "colspan", "rowspan", "bgcolor", "nowrap"},
    "th": {"width", "height", "colspan", "rowspan", "bgcolor", "nowrap"},
    "tr": {"bgcolor"},
    "col": {"span", "width"},
    "colgroup": {"span", "width"},
    "ol": {"start", "type"},
    "ul": {"type"},
}
# CSS properties that cannot load anything (no background-image, list-style-image, content)
ALLOWED_STYLES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-variant", "font-weight", "text-align", "text-decoration", "text-indent",
    "text-transform", "line-height", "letter-spacing", "word-spacing", "white-space",
    "vertical-align", "direction", "margin", "margin-top", "margin-right", "margin-bottom",
    "margin-left", "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "border", "border-top", "border-right", "border-bottom", "border-left", "border-color",
    "border-style", "border-width", "border-collapse", "border-spacing", "border-radius",
    "width", "height", "max-width", "min-width", "max-height", "min-height", "display",
    "table-layout", "list-style-type", "overflow-wrap", "word-break",
}  # fmt: skip
_DATA_IMAGE = re.compile(r"^data:image/(png|gif|jpeg|webp);base64,[A-Za-z0-9+/=\s]*$", re.I)
_REMOTE = re.compile(r"^\s*(https?:)?//", re.I)


def clean_text(value: object) -> str:
    """``value`` as text with control and bidi-override characters made visible as U+FFFD."""
    text = "" if value is None else str(value)
    return _UNSAFE_CHARS.sub("\ufffd", text.replace("\r\n", "\n"))


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def safe_filename(name: str, fallback: str) -> str:
    """A file name to offer a browser: no directories, no control characters, no dot files."""
    base = re.split(r"[/\\]", name)[-1]
    base = unicodedata.normalize("NFC", _UNSAFE_CHARS.sub("", base))
    base = base.strip().lstrip(".").strip()
    if len(base) > 150:
        stem, dot, ext = base.rpartition(".")
        base = (stem[:140] + dot + ext[:9]) if dot and len(ext) < 10 else base[:150]
    return base or fallback


def content_disposition(filename: str, fallback: str) -> str:
    """``attachment`` with an ASCII ``filename`` and the exact name as RFC 6266 ``filename*``."""
    name = safe_filename(filename, fallback)
    ascii_name = _FILENAME_ASCII.sub("_", name).strip() or fallback
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


@dataclass(slots=True)
class SanitizedHtml:
    html: str
    remote_images: int = 0  # images whose remote source was removed
    inline_images: int = 0  # cid: images shown from the message's own parts


def inline_images(parts: Mapping[str, InlinePart]) -> dict[str, str]:
    """``data:`` URIs of the message's own images by Content-ID, for ``cid:`` references
    (the images are the read model's: ``ParsedMessage.inline``, bounded there)."""
    return {
        cid: f"data:{p.content_type};base64,{base64.b64encode(p.data).decode()}"
        for cid, p in parts.items()
    }


def sanitize_html(markup: str, inline: Mapping[str, str] | None = None) -> SanitizedHtml:
    """``markup`` reduced to harmless formatting; remote images removed and counted."""
    result = SanitizedHtml("")
    images = inline or {}

    def keep(tag: str, attr: str, value: str) -> str | None:
        if attr == "src":
            if tag == "img" and _DATA_IMAGE.match(value):
                return value
            if tag == "img" and value.lower().startswith("cid:"):
                data = images.get(normalize_message_id(value[4:]).lower())
                if data is not None:
                    result.inline_images += 1
                return data
            if tag == "img" and _REMOTE.match(value):
                result.remote_images += 1
            return None
        if attr == "href":
            return value if value.lower().startswith(("http://", "https://", "mailto:")) else None
        return value

    result.html = nh3.clean(
        markup,
        tags=ALLOWED_TAGS,
        clean_content_tags=DROPPED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=keep,
        url_schemes={"http", "https", "mailto", "data", "cid"},
        link_rel="noopener noreferrer",
        # a link leaves the frame for a tab of its own (the frame may show only this
        # site's pages, so a link followed inside it is the browser's broken-frame icon);
        # the iframe's sandbox allows popups, and nothing else, for this
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
        filter_style_properties=ALLOWED_STYLES,
    )
    return result


# -- envelopes: who may see which recipients ---------------------------------------------


@dataclass(slots=True)
class RecipientShown:
    address: str
    bcc: bool  # an envelope recipient not named in To or Cc


@dataclass(slots=True)
class EnvelopeShown:
    row: EnvelopeRow
    recipients: list[RecipientShown]
    hidden: int = 0  # recipients withheld from this user (other people's Bcc)


@dataclass(slots=True)
class EnvelopesShown:
    envelopes: list[EnvelopeShown] = field(default_factory=list)
    hidden_arrivals: int = 0  # arrivals of the same bytes to other people


def envelopes_for(
    user: User, envelopes: Sequence[EnvelopeRow], parsed: ParsedMessage
) -> EnvelopesShown:
    """The envelopes ``user`` may see. Auditors and admins, and whoever sent the message,
    see every recipient, Bcc included. Anyone else sees only their own addresses among the
    envelope recipients: another person's Bcc is not theirs to learn."""
    mine = {a.lower() for a in user.addresses}
    named = {a.address.lower() for a in (*parsed.to, *parsed.cc)}
    author = any(a.address.lower() in mine for a in parsed.from_)
    shown = EnvelopesShown()
    for row in envelopes:
        env = row.envelope
        everything = user.sees_all or author or env.sender.lower() in mine
        rcpts = [RecipientShown(r, r.lower() not in named) for r in env.recipients]
        if everything:
            shown.envelopes.append(EnvelopeShown(row, rcpts))
            continue
        own = [r for r in rcpts if r.address.lower() in mine]
        if not own:
            shown.hidden_arrivals += 1
            continue
        shown.envelopes.append(EnvelopeShown(row, own, len(rcpts) - len(own)))
    return shown


def message_document(
    view: MessageView, parsed: ParsedMessage, envelopes: EnvelopesShown, *, show_holds: bool
) -> dict[str, object]:
    """The API's JSON for one message: the document of ``archive.message_document`` with
    the envelopes this user may see and a download URL per attachment."""
    return document.message_document(
        view,
        parsed,
        envelopes=[
            (e.row, [r.address for r in e.recipients], e.hidden) for e in envelopes.envelopes
        ],
        attachment_url=lambda a: attachment_url(view.row.id, a),
        show_holds=show_holds,
    )


def attachment_json(
    message: int, a: AttachmentRow, extraction: ExtractRecord | None = None
) -> dict[str, object]:
    return {**document.attachment_document(a, extraction), "url": attachment_url(message, a)}


def attachment_url(message: int, a: AttachmentRow) -> str:
    return f"/api/v1/messages/{message}/attachments/{a.index}"


# -- the statistics chart ----------------------------------------------------------------
