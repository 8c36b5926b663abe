"""mbox files (mboxrd and mboxo), read as bytes, a message at a time.

A message starts at a ``From `` line at the start of the file or after an empty line; the
empty line before it is the separator, not part of the previous message. ``>From `` quoting
is undone the mboxrd way (one ``>`` removed from ``>+From ``), which is also right for mboxo
files except for body lines that really began with ``>From ``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from ..errors import SourceError
from .base import ImportItem, import_envelope

_FROM_LINE = re.compile(rb"^From (\S*)\s+(.*?)\s*$")


def parse_from_line(line: bytes) -> tuple[str, datetime | None]:
    """Sender and time of a ``From sender asctime`` line."""
    m = _FROM_LINE.match(line.rstrip(b"\r\n"))
    if not m:
        return "", None
    sender = m.group(1).decode("utf-8", "replace")
    if sender.upper() == "MAILER-DAEMON":
        sender = ""
    when = None
    text = m.group(2).decode("ascii", "replace")
    for fmt in ("%a %b %d %H:%M:%S %Y", "%a %b %d %H:%M:%S %z %Y"):
        try:
            when = datetime.strptime(
                " ".join(text.split()[:6]) if "%z" in fmt else " ".join(text.split()[:5]), fmt
            )
            break
        except ValueError:
            continue
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return sender, when


_SEPARATOR = re.compile(rb"\n(\r?\n)From ")
_UNQUOTE = re.compile(rb"^>(>*From )", re.M)
_CHUNK = 1 << 20


def _unquote(body: bytes) -> bytes:
    return _UNQUOTE.sub(rb"\1", body) if b">From " in body else body


def split_mbox(stream: BinaryIO) -> Iterator[tuple[bytes, bytes, int]]:
    """(From_ line, message, bytes consumed) for each message of an mbox stream.

    Read in blocks and cut at each empty line followed by ``From ``: per-line Python work
    would cost more than archiving the message.
    """
    buf = bytearray(stream.read(_CHUNK))
    if not buf:
        return
    if not buf.startswith(b"From "):
        raise ValueError("does not start with a 'From ' line")
    eof = False
    start = 0  # start of the current message's From_ line in buf
    search = 0
    while True:
        m = _SEPARATOR.search(buf, max(search, start))
        if m is None:
            if eof:
                break
            more = stream.read(_CHUNK)
            if not more:
                eof = True
                continue
            # keep only the unfinished message; search again a few bytes back
            del buf[:start]
            search = max(0, len(buf) - 8)
            start = 0
            buf += more
            continue
        end = m.start() + 1  # the message keeps the line break of its last line
        yield _message(bytes(buf[start:end]), m.end() - 5 - start)
        start = m.end() - 5  # the next From_ line
        search = start
    if start < len(buf):
        last = bytes(buf[start:])
        # the file may or may not end with the separating empty line
        if last.endswith(b"\n\n"):
            last = last[:-1]
        elif last.endswith(b"\n\r\n"):
            last = last[:-2]
        yield _message(last, len(buf) - start)


def _message(entry: bytes, consumed: int) -> tuple[bytes, bytes, int]:
    nl = entry.find(b"\n")
    if nl == -1:
        return entry, b"", consumed
    return entry[: nl + 1], _unquote(entry[nl + 1 :]), consumed


class MboxSource:
    unit = "bytes"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.total = path.stat().st_size
        self.description = f"mbox {path}"

    def __iter__(self) -> Iterator[ImportItem]:
        try:
            with self.path.open("rb") as f:
                for from_line, raw, consumed in split_mbox(f):
                    sender, when = parse_from_line(from_line)
                    yield ImportItem(
                        raw,
                        import_envelope(raw, sender=sender, received=when),
                        consumed,
                        f"{self.path}: message at {from_line[:60]!r}",
                    )
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot read: {exc.strerror}") from exc
        except ValueError as exc:
            raise SourceError(f"{self.path}: not an mbox file: {exc}") from exc
