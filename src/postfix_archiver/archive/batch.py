"""Archiving on one thread, a batch at a time: for the SMTP proxy.

Each message handed to a ``Batcher`` is staged (parsed, decided, its blobs compressed); then
the blobs of everything that was waiting are stored in one go (one fsync for the batch) and
its rows committed as one catalog transaction.
Compared with a pool of threads feeding a separate writer thread, a message crosses threads
twice per batch instead of four times per message: on a virtual machine every thread wake-up
is an inter-processor interrupt, and those were a quarter of the proxy's CPU time.

A message may carry a deadline (its answer is due then: ``answer_timeout``). The batch thread
skips one whose deadline has passed or whose caller stopped waiting, and a batch waits for a
database locked by another process no longer than its earliest deadline.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Generic, TypeVar

from ..catalog import AddResult
from ..catalog.writer import commit_each, earliest, too_late
from ..sqlite_db import deadline
from .service import Archive, Staged

T = TypeVar("T")
Prepare = Callable[[], tuple[T, Staged | None]]
Ready = tuple[Future[tuple[T, AddResult | None]], T, Staged | None, float | None]
Waiting = tuple[Prepare[T], Future[tuple[T, AddResult | None]], float | None]


class Batcher(Generic[T]):
    """Runs ``prepare`` functions in order on one thread and archives what they stage in
    batches.

    ``submit(prepare)`` returns a future of ``(value, AddResult or None)``: ``value`` is what
    ``prepare`` returned beside its staged arrival (``None`` when there is nothing to
    archive). The future resolves only once the arrival's catalog row is committed, after its
    blobs. Cancelling the future before the batch thread gets to it drops the message.
    """

    def __init__(self, archive: Archive, max_batch: int = 64) -> None:
        self._archive = archive
        self._max_batch = max_batch
        self._waiting: list[Waiting[T]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="capture-batcher", daemon=True)
        self._thread.start()

    def submit(
        self, prepare: Prepare[T], until: float | None = None
    ) -> Future[tuple[T, AddResult | None]]:
        """``until``: the ``time.monotonic()`` after which the answer is of no use."""
        future: Future[tuple[T, AddResult | None]] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("batcher is closed")
            self._waiting.append((prepare, future, until))
            if len(self._waiting) == 1:
                self._cond.notify()
        return future

    def close(self) -> None:
        """Finish what is waiting, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if not self._waiting:
                    return
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
            try:
                self._process(batch)
            except BaseException as exc:  # the thread must outlive any failure
                for _, future, _ in batch:
                    # a session may cancel a future not yet begun at any moment
                    with contextlib.suppress(InvalidStateError):
                        if not future.done():
                            future.set_exception(exc)
            # its messages (their bytes, in the prepare closures) must not stay in memory
            # while the thread waits for the next batch
            del batch

    def _process(self, batch: list[Waiting[T]]) -> None:
        ready: list[Ready[T]] = []
        for prepare, future, until in batch:
            # from here on a cancel() fails: the caller gets the outcome, whatever it is
            if not future.set_running_or_notify_cancel():
                continue  # the session has answered already
            if until is not None and time.monotonic() >= until:
                future.set_exception(too_late())
                continue
            try:
                value, staged = prepare()
            except Exception as exc:
                future.set_exception(exc)
                continue
            ready.append((future, value, staged, until))
        with deadline(earliest(until for *_, until in ready)):
            self._commit(self._store(ready))

    def _store(self, ready: list[Ready[T]]) -> list[Ready[T]]:
        """Store the batch's blobs; if that fails, every arrival that needed them fails."""
        try:
            self._archive.store_staged([s for _, _, s, _ in ready if s is not None])
        except Exception as exc:
            for future, _, staged, _ in ready:
                if staged is not None and staged.blobs:
                    future.set_exception(exc)
            return [r for r in ready if r[2] is None or not r[2].blobs]
        return ready

    def _commit(self, ready: list[Ready[T]]) -> None:
        arrivals = [s.arrival for _, _, s, _ in ready if s is not None]
        outcomes = iter(commit_each(self._archive.catalog, arrivals))
        for future, value, staged, _ in ready:
            outcome = next(outcomes) if staged is not None else None
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result((value, outcome))
