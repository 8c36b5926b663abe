"""The one ingest service: every way in hands over raw bytes and an envelope here.

For each arrival the service decides (when the way in gives rules: ``archive.decide``),
stages (parse, split, compress: ``Archive.stage``), stores the blobs of everything waiting
in one call (one fsync for the batch), and commits their rows as one catalog transaction
(group commit) through this one committer. Each caller gets an ``Outcome``: the archive id,
or skipped and by which rule, with the retention and tags stored.

Callers that already staged and stored their blobs in parallel (the importers' worker
threads and processes) hand over the staged arrival instead (``submit_staged``); the
committer then only commits it, in the same batches.

Two threads, started on first use: the stager decides and stages what waits, and hands it
to the committer, which stores and commits everything staged so far as one batch and
answers. The stager stages the next batch while the committer waits for the fsyncs (pack,
then catalog) of the one before: one thread doing both left the fsync wait and the staging
end to end, and each arrival waited for both (measured under ``serve --sink`` on 2026-12-01).
A staged arrival is taken on only by the committer: until then its caller may cancel it.
The pipe filter, one message per process, starts neither: ``ingest`` runs the same steps on
the caller's thread, under the same lock, so there is still one committer at a time.

Compared with a pool of threads feeding a separate writer thread, a proxied message crosses
threads three times per batch instead of four times per message: on a virtual machine every
thread wake-up is an inter-processor interrupt, and those were a quarter of the proxy's CPU
time.

An arrival may carry a deadline (its answer is due then: ``answer_timeout``). The committer
skips one whose deadline has passed or whose caller stopped waiting (a cancelled future),
and a batch waits for a database locked by another process no longer than its earliest
deadline.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import metrics
from ..catalog import AddResult, Catalog, NewArrival
from ..envelope import Envelope
from ..errors import TemporaryFailure
from ..message import parse_message
from ..rules import Policy, Verdict
from ..sqlite_db import deadline, is_busy
from . import events
from .decide import Kept, complete_envelope, decide
from .holds import ActiveHolds

if TYPE_CHECKING:
    from .indexer import Made
    from .ingest_index import Parsed
    from .service import Archive

log = logging.getLogger("postfix_archiver.archive")


@dataclass(frozen=True, slots=True)
class IngestResult:
    id: int
    sha256: str
    new_message: bool  # False: the same bytes were already archived (deduplicated)
    new_envelope: bool  # False: this very arrival was recorded before (a retry)
    event_seq: int | None = None  # the chain event of a new arrival


@dataclass(frozen=True, slots=True)
class Staged:
    """An arrival ready for the catalog, and the blobs that must be durable before it;
    ``made``: its index entry, made from the parse it was staged with (the importers':
    ``ingest_index``), indexed right after its row commits if that adds the message."""

    arrival: NewArrival
    blobs: tuple[tuple[str, bytes], ...]
    made: Made | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one arrival."""

    envelope: Envelope  # as the way in gave it, completed from the headers
    verdict: Verdict | None  # None: no rules were applied (an import)
    result: IngestResult | None  # None: the rules skipped it
    retention: str | None = None  # stored with the arrival
    tags: tuple[str, ...] = ()

    @property
    def archive_id(self) -> int | None:
        return None if self.result is None else self.result.id

    @property
    def status(self) -> str:
        """The ``X-Archive-Status`` value: ``Archived`` or ``Skipped; rule=NAME``."""
        return "Archived" if self.verdict is None else self.verdict.status_header()


@dataclass(slots=True)
class _Job:
    """One arrival waiting for the committer: raw bytes to decide and stage, or staged."""

    future: Future[Outcome]
    until: float | None
    content: bytes | None = None
    envelope: Envelope | None = None
    policy: Policy | None = None
    staged: Staged | None = None


@dataclass(slots=True)
class _Ready:
    job: _Job
    verdict: Verdict | None
    envelope: Envelope
    kept: Kept | None
    staged: Staged | None  # None: nothing to archive
    parsed: Parsed | None = None  # new bytes: the parse staged with, for the indexer


class IngestService:
    """See the module's docstring. ``max_batch``: arrivals a batch stages at most, and
    staged arrivals waiting for the committer at most; ``max_staging``: of a batch, at most
    this many staged by the stager (the rest came staged)."""

    def __init__(self, archive: Archive, *, max_batch: int = 256, max_staging: int = 64) -> None:
        self._archive = archive
        self._max_batch = max_batch
        self._max_staging = max_staging
        self._waiting: list[_Job] = []
        self._cond = threading.Condition()
        self._commit_lock = threading.Lock()  # one committer: the thread or an inline caller
        self._holds = ActiveHolds()  # parsed once per hold, shared by every commit
        self._closed = False
        self._thread: threading.Thread | None = None
        # staged arrivals for the committer: the stager stages the next batch while the
        # committer waits on the fsyncs of the one before
        self._ready: list[_Ready] = []
        self._ready_cond = threading.Condition()
        self._staging_done = False
        self._committer: threading.Thread | None = None

    # -- handing over ------------------------------------------------------------------------

    def submit(
        self,
        content: bytes,
        envelope: Envelope,
        *,
        policy: Policy | None = None,
        until: float | None = None,
    ) -> Future[Outcome]:
        """Archive ``content`` (as ``policy`` decides; without one, keep it), on the
        committer thread. ``until``: the ``time.monotonic()`` after which the answer is of no
        use. The future resolves once the catalog row is committed, after its blobs;
        cancelling it before the committer gets to it drops the arrival."""
        return self._put(_Job(Future(), until, content, envelope, policy))

    def submit_staged(self, staged: Staged, until: float | None = None) -> Future[Outcome]:
        """Commit an arrival staged by the caller (the importers stage in parallel, and store
        the blobs of a chunk at once: their ``Staged`` then carries no blobs). Blobs it still
        carries are stored with the batch, before its rows."""
        return self._put(_Job(Future(), until, staged=staged))

    def ingest(
        self,
        content: bytes,
        envelope: Envelope,
        *,
        policy: Policy | None = None,
        until: float | None = None,
    ) -> Outcome:
        """``submit`` and wait, with the work done on this thread (no committer thread is
        started: the pipe filter archives one message per process)."""
        job = _Job(Future(), until, content, envelope, policy)
        with self._commit_lock:
            self._process([job])
        return job.future.result()

    def _put(self, job: _Job) -> Future[Outcome]:
        with self._cond:
            if self._closed:
                raise RuntimeError("ingest service is closed")
            if self._thread is None:
                self._committer = threading.Thread(
                    target=self._commit_staged, name="archive-committer", daemon=True
                )
                self._committer.start()
                self._thread = threading.Thread(
                    target=self._run, name="archive-stager", daemon=True
                )
                self._thread.start()
            self._waiting.append(job)
            if len(self._waiting) == 1:
                self._cond.notify()
        return job.future

    def close(self) -> None:
        """Finish what is waiting, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread, committer = self._thread, self._committer
        if thread is not None:
            thread.join()
        if committer is not None:
            committer.join()

    # -- the committer -----------------------------------------------------------------------

    def _take(self) -> list[_Job]:
        """The next batch: what waits, up to the limits."""
        staging = 0
        count = 0
        for job in self._waiting:
            if count >= self._max_batch:
                break
            if job.staged is None:
                if staging >= self._max_staging:
                    break
                staging += 1
            count += 1
        batch = self._waiting[:count]
        del self._waiting[:count]
        return batch

    def _run(self) -> None:
        """The stager: stages what waits and hands it to the committer, then goes on with
        what arrived meanwhile (parsing, hashing and compressing the next batch while the
        committer waits for the fsyncs of the one before; hashing, compression and fsync
        release the GIL)."""
        try:
            while True:
                with self._cond:
                    while not self._waiting and not self._closed:
                        self._cond.wait()
                    if not self._waiting:
                        return
                    batch = self._take()
                ready = self._stage_guarded(batch)
                with self._ready_cond:
                    # at most a batch staged ahead: their bytes wait in memory
                    while len(self._ready) >= self._max_batch:
                        self._ready_cond.wait()
                    self._ready.extend(ready)
                    self._ready_cond.notify_all()
                # its messages (their bytes, in the jobs) must not stay in memory while the
                # thread waits for the next batch
                del batch, ready
        finally:
            with self._ready_cond:
                self._staging_done = True
                self._ready_cond.notify_all()

    def _commit_staged(self) -> None:
        """The committer: everything staged so far, as one batch."""
        while True:
            with self._ready_cond:
                while not self._ready and not self._staging_done:
                    self._ready_cond.wait()
                if not self._ready:
                    return
                # no bigger a transaction than before the stager (it may run a batch ahead)
                ready = self._ready[: self._max_batch]
                del self._ready[: self._max_batch]
                self._ready_cond.notify_all()
            with self._commit_lock:
                self._finish(self._claim(ready))
            del ready

    def _process(self, batch: list[_Job]) -> None:
        """Stage and commit ``batch`` on this thread (``ingest``)."""
        self._finish(self._claim(self._stage_guarded(batch)))

    def _stage_guarded(self, batch: list[_Job]) -> list[_Ready]:
        try:
            return self._stage(batch)
        except BaseException as exc:  # the thread must outlive any failure
            _fail([job.future for job in batch], exc)
            return []

    def _finish(self, ready: list[_Ready]) -> None:
        """Store the blobs of ``ready``, commit its rows, answer."""
        try:
            metrics.BATCH_SIZE.observe(len(ready))
            with deadline(earliest(r.job.until for r in ready)), metrics.COMMIT_SECONDS.time():
                self._commit(self._store(ready))
        except BaseException as exc:  # the thread must outlive any failure
            _fail([r.job.future for r in ready], exc)

    def _stage(self, batch: list[_Job]) -> list[_Ready]:
        """Decide and stage each job; a job whose caller stopped waiting, or that is past its
        deadline, is not staged. The caller may still cancel a staged job: ``_claim``."""
        ready: list[_Ready] = []
        for job in batch:
            if job.future.cancelled():
                continue  # the caller has answered already
            if job.until is not None and time.monotonic() >= job.until:
                _fail([job.future], too_late())
                continue
            try:
                ready.append(self._prepare(job))
            except Exception as exc:
                _fail([job.future], exc)
        return ready

    def _claim(self, ready: list[_Ready]) -> list[_Ready]:
        """Of the staged jobs, those still wanted and in time, now taken on: from here on a
        cancel() fails, and the caller gets the outcome, whatever it is."""
        claimed: list[_Ready] = []
        for r in ready:
            if r.job.future.done() or not r.job.future.set_running_or_notify_cancel():
                continue  # failed at staging, or the caller has answered already
            if r.job.until is not None and time.monotonic() >= r.job.until:
                r.job.future.set_exception(too_late())
                continue
            claimed.append(r)
        return claimed

    def _prepare(self, job: _Job) -> _Ready:
        """Parse once, complete the envelope, decide, and stage what is kept."""
        if job.staged is not None:
            return _Ready(job, None, job.staged.arrival.envelope, None, job.staged)
        assert job.content is not None
        assert job.envelope is not None
        if job.policy is None:
            staged, fresh = self._archive.stage_parsed(job.content, job.envelope)
            return _Ready(job, None, job.envelope, None, staged, fresh)
        parsed = parse_message(job.content)
        envelope = complete_envelope(job.envelope, parsed)
        verdict, kept = decide(job.policy, parsed, envelope)
        if kept is None:
            return _Ready(job, verdict, envelope, None, None)
        staged, fresh = self._archive.stage_parsed(
            job.content, kept.envelope, parsed, retention=kept.retention, tags=kept.tags
        )
        return _Ready(job, verdict, envelope, kept, staged, fresh)

    def _store(self, ready: list[_Ready]) -> list[_Ready]:
        """Store the batch's blobs; if that fails, every arrival that needed them fails."""
        needing = [r.staged for r in ready if r.staged is not None and r.staged.blobs]
        if not needing:
            return ready
        try:
            self._archive.store_staged(needing)
        except Exception as exc:
            for r in ready:
                if r.staged is not None and r.staged.blobs:
                    r.job.future.set_exception(exc)
            return [r for r in ready if r.staged is None or not r.staged.blobs]
        return ready

    def _commit(self, ready: list[_Ready]) -> None:
        arrivals = [r.staged.arrival for r in ready if r.staged is not None]
        committed = commit_each(self._archive.catalog, arrivals, self._holds)
        new = sum(1 for c in committed if isinstance(c, AddResult) and c.new_message)
        if new > self._index_made(ready, committed):
            self._keep_parses(ready, committed)
            self._archive.wake_indexer()  # their entries are made after the answer
        outcomes = iter(committed)
        for r in ready:
            if r.staged is None:
                r.job.future.set_result(Outcome(r.envelope, r.verdict, None))
                continue
            added = next(outcomes)
            if isinstance(added, Exception):
                r.job.future.set_exception(added)
                continue
            arrival = r.staged.arrival
            result = IngestResult(
                added.id, arrival.sha256, added.new_message, added.new_envelope, added.event_seq
            )
            r.job.future.set_result(
                Outcome(r.envelope, r.verdict, result, arrival.retention, arrival.tags)
            )

    def _keep_parses(self, ready: list[_Ready], committed: list[AddResult | Exception]) -> None:
        """The parses of the messages this commit queued for the indexer, so that it makes
        their entries from them instead of reading and parsing each again (only with an
        indexer in this process: the pipe filter and the other listening processes have
        none, and what they keep nobody would take)."""
        if not self._archive.indexing_here:
            return
        staged = [r for r in ready if r.staged is not None]
        for r, c in zip(staged, committed, strict=True):
            if r.parsed is not None and isinstance(c, AddResult) and c.new_message:
                self._archive.staged_parses.keep(r.parsed)

    def _index_made(self, ready: list[_Ready], committed: list[AddResult | Exception]) -> int:
        """Indexes the entries made at staging of the messages this commit added (not of a
        message that was there already: it has its entry, or is queued for it); returns
        how many. A failure leaves them queued, for the indexer: the rows are committed."""
        staged = [r.staged for r in ready if r.staged is not None]
        made = [
            (c.id, s.made)
            for s, c in zip(staged, committed, strict=True)
            if s.made is not None and isinstance(c, AddResult) and c.new_message
        ]
        if not made:
            return 0
        from .ingest_index import index_made

        try:
            return index_made(self._archive, made, self._holds)
        except Exception as exc:
            log.warning("%d imported messages left for the indexer (%s)", len(made), exc)
            return 0


def _fail(futures: Iterable[Future[Outcome]], exc: BaseException) -> None:
    for future in futures:
        # a caller may cancel a future not yet begun at any moment
        with contextlib.suppress(InvalidStateError):
            if not future.done():
                future.set_exception(exc)


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


def commit_each(
    catalog: Catalog, arrivals: list[NewArrival], holds: ActiveHolds | None = None
) -> list[AddResult | Exception]:
    """Commit ``arrivals`` as one transaction; if that fails, one by one, so a bad arrival
    fails alone and its neighbours still commit. One outcome per arrival, in order.

    A catalog locked by another process fails the whole batch at once: retrying singly
    would only wait for the same lock once per arrival. ``holds``: the active legal holds
    take the new arrivals they match in the same transaction."""
    if not arrivals:
        return []
    try:
        return list(catalog.add_batch(arrivals, events.seal, holds))
    except Exception as exc:
        if len(arrivals) == 1 or is_busy(exc):
            return [exc] * len(arrivals)
        log.warning("group commit of %d arrivals failed (%s); retrying singly", len(arrivals), exc)
        return [outcome for a in arrivals for outcome in commit_each(catalog, [a], holds)]
