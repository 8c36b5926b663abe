"""Plain text (``text/*``, CSV), HTML and RTF: bytes to text in the right charset."""

from __future__ import annotations

import codecs
import re

from ..message import decode_text, html_to_text
from .job import Failed, Job

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I)


def decode(data: bytes, charset: str | None) -> str:
    """A byte order mark wins, then the declared charset, then UTF-8, then Latin-1 (the
    fallback every reader of mail uses; never fails)."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data.decode(codec, "replace")
    return decode_text(data, charset)


def read_text(data: bytes, charset: str | None, job: Job) -> None:
    job.add_text(decode(data, charset))


def read_html(data: bytes, charset: str | None, job: Job) -> None:
    if charset is None:
        # an attached page says its charset in a meta tag more often than its part header
        m = _META_CHARSET.search(data[:4096])
        charset = m.group(1).decode("ascii") if m else None
    job.add_text(html_to_text(decode(data, charset)))


def read_rtf(data: bytes, job: Job) -> None:
    from striprtf.striprtf import rtf_to_text  # only the workers that meet RTF load it

    if not data.lstrip()[:5] == b"{\\rtf":
        raise Failed("not an RTF document (no {\\rtf header)")
    # RTF is 7-bit with escapes for everything else; Latin-1 keeps any raw byte as it is
    text = rtf_to_text(data.decode("latin-1"), errors="replace")  # type: ignore[no-untyped-call]
    job.add_text(str(text))
