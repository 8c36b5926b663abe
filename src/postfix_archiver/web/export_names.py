"""The file name of an export, made from its query: ``archive-from-bob-invoice-2026-11-30.mbox``.

Whatever the query holds (quotes, slashes, CR/LF, 8-bit, bidi controls, 4000 characters),
the name is a bounded run of letters, digits and hyphens: an ASCII one in ``filename`` and,
when the query has letters beyond ASCII, the Unicode one in RFC 6266's ``filename*``
(percent-encoded UTF-8), so the header is always plain ASCII.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from urllib.parse import quote

# how much of the query goes into the name: enough to recognise it, short enough for any
# file system (255 bytes; a Unicode letter is up to 4 bytes in UTF-8, and the
# percent-encoding of filename* triples that in the header)
MAX_SLUG = 60

_NOT_ASCII_WORD = re.compile(r"[^a-z0-9]+")


def _unicode_slug(query: str) -> str:
    text = unicodedata.normalize("NFC", query).casefold()
    kept = "".join(c if c.isalnum() else "-" for c in text)
    return _bounded(re.sub(r"-+", "-", kept))


def _ascii_slug(query: str) -> str:
    folded = unicodedata.normalize("NFKD", query).encode("ascii", "ignore").decode()
    return _bounded(_NOT_ASCII_WORD.sub("-", folded.lower()))


def _bounded(slug: str) -> str:
    slug = slug.strip("-")
    if len(slug) > MAX_SLUG:
        cut = slug[:MAX_SLUG]
        # at a word's end when there is one in the second half: "from-bob-inv" reads worse
        slug = cut.rsplit("-", 1)[0] if "-" in cut[MAX_SLUG // 2 :] else cut
    return slug.strip("-")


def export_disposition(query: str, ext: str, day: date) -> str:
    """``Content-Disposition`` for the export of ``query`` made on ``day``."""
    fallback = "all" if not query.strip() else "query"
    ascii_name = f"archive-{_ascii_slug(query) or fallback}-{day.isoformat()}.{ext}"
    unicode_name = f"archive-{_unicode_slug(query) or fallback}-{day.isoformat()}.{ext}"
    header = f'attachment; filename="{ascii_name}"'
    if unicode_name != ascii_name:
        header += f"; filename*=UTF-8''{quote(unicode_name, safe='')}"
    return header
