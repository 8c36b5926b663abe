"""The single catalog writer: a queue drained by one thread, committing what waits as one.

SQLite has one writer. Concurrent SMTP sessions and import workers hand their arrivals to
this thread; it commits everything waiting in one transaction (group commit), so many
sessions share one fsync, and each caller's future resolves only once its batch is durable.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

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

    def submit(self, arrival: NewArrival) -> Future[AddResult]:
        future: Future[AddResult] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("catalog writer is closed")
            self._queue.put((arrival, future))
        return future

    def add(self, arrival: NewArrival) -> AddResult:
        return self.submit(arrival).result()

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
            batch: list[tuple[NewArrival, Future[AddResult]]] = []
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
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)

    def _commit(self, batch: list[tuple[NewArrival, Future[AddResult]]]) -> None:
        outcomes = commit_each(self._catalog, [a for a, _ in batch])
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


def commit_each(catalog: Catalog, arrivals: list[NewArrival]) -> list[AddResult | Exception]:
    """Commit ``arrivals`` as one transaction; if that fails, one by one, so a bad arrival
    fails alone and its neighbours still commit. One outcome per arrival, in order."""
    if not arrivals:
        return []
    try:
        return list(catalog.add_batch(arrivals))
    except Exception as exc:
        if len(arrivals) == 1:
            return [exc]
        log.warning("group commit of %d arrivals failed (%s); retrying singly", len(arrivals), exc)
        return [outcome for a in arrivals for outcome in commit_each(catalog, [a])]
