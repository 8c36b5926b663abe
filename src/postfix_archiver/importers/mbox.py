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

from ..errors import SourceError
from .base import ImportItem, import_envelope

_QUOTED = re.compile(rb"^>+From ")
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


def split_mbox(lines: Iterator[bytes]) -> Iterator[tuple[bytes, list[bytes], int]]:
    """(From_ line, message lines, bytes consumed) for each message."""
    from_line: bytes | None = None
    body: list[bytes] = []
    consumed = 0
    prev_blank = True
    for line in lines:
        is_sep = prev_blank and line.startswith(b"From ")
        if is_sep:
            if from_line is not None:
                if body and body[-1] in (b"\n", b"\r\n"):
                    body.pop()
                yield from_line, body, consumed
            from_line, body, consumed = line, [], len(line)
        else:
            if from_line is None:
                raise ValueError("does not start with a 'From ' line")
            body.append(line[1:] if _QUOTED.match(line) else line)
            consumed += len(line)
        prev_blank = line in (b"\n", b"\r\n")
    if from_line is not None:
        # the last message may or may not have the trailing separator line
        if body and body[-1] in (b"\n", b"\r\n"):
            body.pop()
        yield from_line, body, consumed


class MboxSource:
    unit = "bytes"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.total = path.stat().st_size
        self.description = f"mbox {path}"

    def __iter__(self) -> Iterator[ImportItem]:
        try:
            with self.path.open("rb") as f:
                for from_line, lines, consumed in split_mbox(iter(f)):
                    raw = b"".join(lines)
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
