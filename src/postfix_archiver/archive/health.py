"""What the health endpoints and the archive's gauges read: readiness checks of the store
and the catalog, sizes, the index's lag, the newest checkpoint, and the last ``verify``.

``verify`` records its result in ``HOME/verify-last.json`` (``record_verify``), so a
process that never ran it (the web listener, Prometheus through it) can say how long ago the
archive was last verified and whether that found problems.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .checkpoint import checkpoint_directory, stored_checkpoints
from .document import lag_seconds
from .service import Archive

log = logging.getLogger("postfix_archiver.archive")

VERIFY_FILE = "verify-last.json"
# stats() sums over every message: a scrape every 15 s must not do that each time
STATS_TTL = 60.0
PROBE_PREFIX = ".readyz-"


@dataclass(frozen=True, slots=True)
class LastVerify:
    finished: float  # Unix time
    ok: bool
    problems: int


def record_verify(home: Path, ok: bool, problems: int) -> None:
    """Record a finished ``verify`` in ``home`` (replaced atomically). A failure to write is
    logged and otherwise ignored: the verify's own answer matters more."""
    doc = {"finished": time.time(), "ok": ok, "problems": problems}
    try:
        fd, tmp = tempfile.mkstemp(prefix=".verify-", dir=home)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, home / VERIFY_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.warning("cannot record the verify result in %s: %s", home, exc.strerror or exc)


def last_verify(home: Path) -> LastVerify | None:
    """The last recorded ``verify``; ``None`` if none is recorded or the file is unreadable."""
    try:
        doc = json.loads((home / VERIFY_FILE).read_bytes()[:4096])
        finished, ok, problems = doc["finished"], doc["ok"], doc["problems"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not (
        isinstance(finished, int | float)
        and isinstance(ok, bool)
        and isinstance(problems, int)
        and 0 <= finished < 1e11
    ):
        return None
    return LastVerify(float(finished), ok, problems)


def newest_checkpoint_time(home_dir: Path) -> float | None:
    """When the newest checkpoint statement was written (its file's time), if any."""
    try:
        found = stored_checkpoints(home_dir)
        return found[-1].stat().st_mtime if found else None
    except Exception:  # a gauge missing beats a scrape failing
        return None


@dataclass(frozen=True, slots=True)
class Observed:
    """The archive's gauges at one moment."""

    messages: int
    raw_bytes: int
    stored_bytes: int
    catalog_bytes: int
    index_queued: int
    index_lag_seconds: int
    checkpoint_time: float | None
    verify: LastVerify | None
    disk_free_bytes: int | None
    disk_size_bytes: int | None


class Observer:
    """Reads ``Observed`` from an archive, the costly totals at most once a ``STATS_TTL``."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self._lock = threading.Lock()
        self._stats_at = -STATS_TTL
        self._stats: tuple[int, int, int, int] = (0, 0, 0, 0)

    def observe(self) -> Observed:
        home = self.archive.config.archive.home
        with self._lock:
            now = time.monotonic()
            if now - self._stats_at >= STATS_TTL:
                s = self.archive.stats()
                self._stats = (s.messages, s.raw_bytes, s.stored_bytes, s.catalog_bytes)
                self._stats_at = now
            messages, raw, stored, catalog = self._stats
        index = self.archive.catalog.index_status()
        free: int | None = None
        size: int | None = None
        try:
            fs = os.statvfs(home)
            free, size = fs.f_bavail * fs.f_frsize, fs.f_blocks * fs.f_frsize
        except OSError:
            pass  # the gauges are left out
        return Observed(
            messages=messages,
            raw_bytes=raw,
            stored_bytes=stored,
            catalog_bytes=catalog,
            index_queued=index.queued,
            index_lag_seconds=lag_seconds(index, datetime.now(UTC)),
            checkpoint_time=newest_checkpoint_time(checkpoint_directory(self.archive.config)),
            verify=last_verify(home),
            disk_free_bytes=free,
            disk_size_bytes=size,
        )


# -- readiness ---------------------------------------------------------------------------------


def store_problem(archive: Archive) -> str | None:
    """Why the blob store cannot take mail now, or ``None``. A file store: a small file
    written, fsync'd and removed in its directory (a full or read-only disk fails here). Any
    other store (S3): reachable, by looking a key up (a test write there would cost requests
    and, under Object Lock, could not be removed)."""
    url = archive.config.archive.store_url
    try:
        if url.startswith("file://"):
            directory = Path(url.removeprefix("file://"))
            fd, name = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=directory)
            try:
                os.write(fd, b"ok\n")
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(name)
        else:
            archive.store.exists("m/readyz-probe")
    except Exception as exc:
        return f"store not writable: {_reason(exc)}"
    return None


def catalog_problem(archive: Archive) -> str | None:
    """Why the catalog cannot be read now, or ``None``."""
    try:
        archive.catalog.index_status()
    except Exception as exc:
        return f"catalog not reachable: {_reason(exc)}"
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split())[:200] or type(exc).__name__
