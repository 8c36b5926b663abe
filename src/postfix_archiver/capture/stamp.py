"""Header changes on the reinjected copy (never on the archived original)."""

from __future__ import annotations

import re

STATUS = b"X-Archive-Status"
ARCHIVE_ID = b"X-Archive-Id"
# an X-Archive-* field with its folded continuation lines
# (the last field of a headers-only message may lack its line end)
_OURS = re.compile(rb"^X-Archive-[!-9;-~]*[ \t]*:.*(?:\r?\n[ \t].*)*(?:\r?\n|\Z)", re.I | re.M)


def _header_end(raw: bytes) -> int:
    """Offset where the header block ends (the empty line), or len(raw)."""
    if raw.startswith((b"\r\n", b"\n")):
        return 0
    m = re.search(rb"\r?\n\r?\n", raw)
    return m.start() + (2 if raw[m.start()] == 0x0D else 1) if m else len(raw)


def stamp(raw: bytes, status: str, archive_id: int | None) -> bytes:
    """Drop inbound X-Archive-* fields (forgeries) and put ours on top."""
    end = _header_end(raw)
    headers = _OURS.sub(b"", raw[:end])
    eol = b"\r\n" if b"\r\n" in raw[: max(end, 1) + 2] else b"\n"
    clean = re.sub(rb"[\r\n]+", b" ", status.encode("utf-8", "replace"))
    ours = STATUS + b": " + clean + eol
    if archive_id is not None:
        ours += ARCHIVE_ID + b": " + str(archive_id).encode() + eol
    return ours + headers + raw[end:]
