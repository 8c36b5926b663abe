"""The parses the ingest service staged new messages with, kept for the background indexer.

Without them the indexer reads each message just archived back from its blobs (decompress,
rebuild) and parses it a second time: measured under ``serve --sink`` on 2026-12-01, that
was three quarters of the indexer's time holding the GIL, and the GIL is what the SMTP
sessions wait for. With them the indexer makes the entry from the same parse, with the same
function as from the blobs (``indexer.made_of``, as an import does: ``ingest_index``).

Bounded by count and bytes. When full, a new parse is not kept (the oldest are kept instead):
the indexer takes the oldest queued messages first, so dropping those would make a lagging
indexer miss every one. A parse nobody took within ``MAX_AGE`` (another process's indexer
indexed the message: ``web`` on the same catalog) gives way to new ones. A message not found
here is read from its blobs, as before; nothing depends on a parse being kept.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .ingest_index import Parsed

# a burst's worth of mail at 100 kB; a message bigger than a quarter of the bytes is not kept
ENTRIES = 512
MAX_BYTES = 48 << 20
MAX_AGE = 120.0  # seconds: the indexer reaches a burst's mail well within this


class StagedParses:
    """Thread-safe: the committer keeps, the indexer takes."""

    def __init__(
        self, entries: int = ENTRIES, max_bytes: int = MAX_BYTES, max_age: float = MAX_AGE
    ) -> None:
        self.entries = entries
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._lock = threading.Lock()
        # in the order kept: the oldest first
        self._kept: dict[str, tuple[Parsed, int, float]] = {}
        self._bytes = 0

    def keep(self, parsed: Parsed) -> bool:
        """Keep ``parsed`` for the indexer if there is room; returns whether it was kept."""
        # the raw bytes and the parts cut from them (held by the split) are what weighs
        weight = len(parsed.raw) + sum(len(p) for p in parsed.split.parts.values())
        if weight > self.max_bytes // 4:
            return False
        now = time.monotonic()
        with self._lock:
            if parsed.sha in self._kept:
                return True
            if self._full(weight):
                self._forget_older_than(now - self.max_age)
                if self._full(weight):
                    return False
            self._kept[parsed.sha] = (parsed, weight, now)
            self._bytes += weight
        return True

    def _full(self, weight: int) -> bool:
        return len(self._kept) >= self.entries or self._bytes + weight > self.max_bytes

    def _forget_older_than(self, when: float) -> None:
        for sha, (_, weight, at) in list(self._kept.items()):
            if at > when:
                break
            del self._kept[sha]
            self._bytes -= weight

    def take(self, sha: str) -> Parsed | None:
        """The parse kept for message ``sha``, given up (None: not kept, read the blobs)."""
        with self._lock:
            found = self._kept.pop(sha, None)
            if found is None:
                return None
            self._bytes -= found[1]
        return found[0]

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)
