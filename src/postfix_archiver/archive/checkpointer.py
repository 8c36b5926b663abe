"""``serve``'s checkpoints: one every ``checkpoint_interval`` or ``checkpoint_messages`` new
chain events, whichever comes first, made by a thread of its own.

Mail never waits for it and never fails because of it: it reads the catalog through its own
connection, writes only under ``checkpoints/``, and a failure (a missing key, a full disk, a
rewritten chain, a TSA that is down) is logged and retried later while mail flows on. It
wakes every few seconds to look at the head (one indexed query); with nothing new since the
last checkpoint it makes none.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from ..catalog import Catalog
from ..config import IntegritySettings
from ..errors import ArchiverError
from ..integrity import checkpoint as fmt
from ..integrity.keys import load_private_key
from .checkpoint import make_checkpoint, newest_own

log = logging.getLogger("postfix_archiver.checkpoint")

POLL = 5.0  # seconds between looks at the head
RETRY = 60.0  # after a failure, at most this long before the next try


def enabled(settings: IntegritySettings) -> bool:
    """Whether ``serve`` makes checkpoints: a trigger is on and a key is configured (set in
    the file, or present at the default path)."""
    triggers = settings.checkpoint_interval > 0 or settings.checkpoint_messages > 0
    return triggers and (settings.signing_key_configured or _present(settings.signing_key))


def _present(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # there but not ours to look at: the thread's first try says so
        return True


class Checkpointer:
    """The background thread; ``start`` then ``stop`` (which waits ``join_timeout`` at most:
    a TSA request in flight is not waited for)."""

    def __init__(
        self,
        catalog: Catalog,
        settings: IntegritySettings,
        directory: Path,
        *,
        poll: float = POLL,
        retry: float = RETRY,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.directory = directory
        self.poll = poll
        self.retry = min(retry, settings.checkpoint_interval or retry)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpointer", daemon=True)
        self._previous: fmt.Checkpoint | None = None
        self._looked = False  # for the newest stored checkpoint, once
        self._since = time.monotonic()  # of the last checkpoint, or the start
        self._not_before = 0.0

    def start(self) -> None:
        log.info(
            "checkpoints every %s and/or %s new messages, signed with %s",
            f"{self.settings.checkpoint_interval:g}s" if self.settings.checkpoint_interval else "-",
            self.settings.checkpoint_messages or "-",
            self.settings.signing_key,
        )
        self._thread.start()

    def stop(self, join_timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(join_timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            if time.monotonic() < self._not_before:
                continue
            try:
                self.tick()
            except ArchiverError as exc:
                self._not_before = time.monotonic() + self.retry
                log.error("checkpoint failed, mail flows on (next try in %gs): %s", self.retry, exc)
            except Exception:  # a bug must not end the thread silently either
                self._not_before = time.monotonic() + self.retry
                log.exception("checkpoint failed, mail flows on (next try in %gs)", self.retry)

    def tick(self) -> bool:
        """A checkpoint if one is due: whether one was made."""
        key = None
        if not self._looked:
            key = load_private_key(self.settings.signing_key)
            self._previous = newest_own(self.directory, key.public_key())
            if self._previous is not None:
                age = (datetime.now(UTC) - self._previous.time).total_seconds()
                self._since = time.monotonic() - max(0.0, age)
            self._looked = True
        head = self.catalog.last_event()
        count = head.seq if head is not None else 0
        done = self._previous.events if self._previous is not None else 0
        if count <= done:
            return False
        every = self.settings.checkpoint_messages
        interval = self.settings.checkpoint_interval
        due = (every and count - done >= every) or (
            interval and time.monotonic() - self._since >= interval
        )
        if not due:
            return False
        key = key or load_private_key(self.settings.signing_key)
        written = make_checkpoint(
            self.catalog, self.settings, self.directory, key=key, previous=self._previous
        )
        self._previous = written.checkpoint
        self._since = time.monotonic()
        log.info(
            "checkpoint of %d events, head %s: %s",
            written.checkpoint.events,
            written.checkpoint.head,
            written.path,
        )
        if written.timestamp_error is not None:
            log.warning(
                "checkpoint %s is NOT timestamped: %s", written.path, written.timestamp_error
            )
        return True
