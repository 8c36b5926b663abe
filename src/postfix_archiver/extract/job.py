"""What one extraction collects, and the bounds it collects within.

A ``Job`` is shared by everything an attachment leads to (the parts of an attached message,
the members of a zip file), so the caps hold for the attachment as a whole: its text, the
names found inside it, the bytes decompressed on its behalf and its wall-clock deadline.
"""

from __future__ import annotations

import re
import time

from . import Limits

# bytes a job may decompress (zip members, XML inside Office files), as a multiple of
# max_input: never what an archive declares, always what was actually inflated
INFLATE_FACTOR = 4
MIN_INFLATE = 16 << 20
# member names listed per attachment, and characters kept of one name
MAX_NAMES = 10_000
MAX_NAME = 1_000

# what the catalog and JSON cannot take or nobody searches: NUL and other C0 controls but
# tab and line ends, and lone surrogates (from RTF's \u, or broken UTF-16)
_UNWANTED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


class Full(Exception):
    """The text reached max_output: stop reading, keep what was found."""


class Failed(Exception):
    """The attachment cannot be read; ``str()`` says why, for ``show`` and the log."""


class OutOfTime(Exception):
    """The job's deadline passed."""


def clean(text: str) -> str:
    """``text`` without NUL, control characters and lone surrogates (pairs joined first)."""
    if not text.isascii():
        # RTF and UTF-16 sources give astral characters as surrogate pairs: join them
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return _UNWANTED.sub(lambda m: " " if m.group() in "\x0c\x0b" else "", text)


class Job:
    def __init__(self, limits: Limits, deadline: float) -> None:
        self.limits = limits
        self.deadline = deadline
        self.max_inflate = max(limits.max_input * INFLATE_FACTOR, MIN_INFLATE)
        self.inflated = 0
        self.names: list[str] = []
        self.notes: list[str] = []
        self._chunks: list[str] = []
        self._size = 0

    def add_text(self, text: str) -> None:
        if not text:
            return
        room = self.limits.max_output - self._size
        if len(text) >= room:
            self._chunks.append(text[:room])
            self._size += room
            raise Full
        self._chunks.append(text)
        self._size += len(text)

    def add_name(self, name: str) -> None:
        name = clean(name).strip()[:MAX_NAME]
        if not name:
            return
        if len(self.names) >= MAX_NAMES:
            self.note(f"only the first {MAX_NAMES} names inside are listed")
            return
        self.names.append(name)

    def note(self, text: str) -> None:
        if text not in self.notes and len(self.notes) < 20:
            self.notes.append(text)

    def inflate(self, size: int) -> None:
        """Count ``size`` decompressed bytes against the job's cap (a zip bomb stops here)."""
        self.inflated += size
        if self.inflated > self.max_inflate:
            raise Failed(
                f"decompresses to more than {self.max_inflate >> 20} MB (a zip bomb?): not read"
            )

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise OutOfTime

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def text(self) -> str:
        return clean("".join(self._chunks))
