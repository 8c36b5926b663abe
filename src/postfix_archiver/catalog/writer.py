"""The single catalog writer: a queue drained by one thread, committing what waits as one.

SQLite has one writer. Concurrent SMTP sessions and import workers hand their arrivals to
this thread; it commits everything waiting in one transaction (group commit), so many
sessions share one fsync, and each caller's future resolves only once its batch is durable.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future

from ..errors import TemporaryFailure
from ..sqlite_db import deadline, is_busy
from . import Catalog
from .records import AddResult, NewArrival

log = logging.getLogger("postfix_archiver.catalog")

_STOP = object()


class CatalogWriter:
    def __init__(self, catalog: Catalog, max_batch: int = 256) -> None:
        self._catalog = catalog
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="catalog-writer", daemon=True)
        self._closed = False
        self._lock = threading.Lock()
        self._thread.start()

    def submit(self, arrival: NewArrival, until: float | None = None) -> Future[AddResult]:
        """``until``: the ``time.monotonic()`` by which the caller wants its answer; the
        arrival is not committed after it, nor waits for a locked catalog beyond it."""
        future: Future[AddResult] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("catalog writer is closed")
            self._queue.put((arrival, future, until))
        return future

    def add(self, arrival: NewArrival, until: float | None = None) -> AddResult:
        return self.submit(arrival, until).result()

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[tuple[NewArrival, Future[AddResult], float | None]] = []
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)  # type: ignore[arg-type]
                if len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self._commit(batch)
                except BaseException as exc:  # the thread must outlive any failure
                    for _, future, _ in batch:
                        if not future.done():
                            future.set_exception(exc)

    def _commit(self, batch: list[tuple[NewArrival, Future[AddResult], float | None]]) -> None:
        live = []
        for arrival, future, until in batch:
            if until is not None and time.monotonic() >= until:
                future.set_exception(too_late())
            else:
                live.append((arrival, future, until))
        with deadline(earliest(until for _, _, until in live)):
            outcomes = commit_each(self._catalog, [a for a, _, _ in live])
        for (_, future, _), outcome in zip(live, outcomes, strict=True):
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


def earliest(deadlines: Iterable[float | None]) -> float | None:
    """The first of the deadlines a batch's arrivals carry (``None``: none carries one).
    A batch commits as one, so it waits no longer than its most pressed arrival can."""
    given = [d for d in deadlines if d is not None]
    return min(given) if given else None


def too_late() -> TemporaryFailure:
    return TemporaryFailure(
        "not archived within answer_timeout: held up by the mail before it (is the catalog or "
        "blob pack locked by another process, a backup or a sqlite3 shell?)"
    )


def commit_each(catalog: Catalog, arrivals: list[NewArrival]) -> list[AddResult | Exception]:
    """Commit ``arrivals`` as one transaction; if that fails, one by one, so a bad arrival
    fails alone and its neighbours still commit. One outcome per arrival, in order.

    A catalog locked by another process fails the whole batch at once: retrying singly
    would only wait for the same lock once per arrival."""
    if not arrivals:
        return []
    try:
        return list(catalog.add_batch(arrivals))
    except Exception as exc:
        if len(arrivals) == 1 or is_busy(exc):
            return [exc] * len(arrivals)
        log.warning("group commit of %d arrivals failed (%s); retrying singly", len(arrivals), exc)
        return [outcome for a in arrivals for outcome in commit_each(catalog, [a])]
