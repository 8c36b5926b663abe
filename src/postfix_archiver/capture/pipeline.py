"""The capture pipeline shared by the SMTP proxy, the pipe filter and the sink.

For each message: parse once, decide by rule per recipient, archive (durably) what the rules
keep with only the recipients they keep, stamp the reinjected copy, reinject. The reply is
success only if both the archive and the reinjection listener took the message.

The archiving is bounded by ``answer_timeout`` from the end of DATA (the start of the pipe
filter): when it takes longer (a catalog locked by another process), the answer is a temporary
failure at that time, and Postfix retries. A copy committed after that is harmless: the retry
has the same queue id, sender and recipients, so it is recorded once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..archive import Archive
from ..archive.batch import Batcher
from ..archive.service import Staged
from ..envelope import Envelope
from ..errors import ArchiverError, TemporaryFailure
from ..message import ParsedMessage, parse_message
from ..rules import Policy, Verdict
from ..sqlite_db import deadline
from . import replies
from .outgoing import Outgoing, send_sync
from .stamp import stamp

if TYPE_CHECKING:  # the pipe filter never loads the asynchronous client
    from .reinject import Reinjector

log = logging.getLogger("postfix_archiver.smtp")

# "... by mx.example.com (Postfix) with ESMTP id 4Xk2Lq0Zz1z9rxN; ..." -> the queue id
_RECEIVED_ID = re.compile(r"\(Postfix\)\s+with\s+\S+\s+id\s+([0-9A-Za-z]+)", re.I)
_UNAVAILABLE = ("[UNAVAILABLE]", "[TEMPUNAVAIL]", "")
_HEADER_RECIPIENTS = ("X-Original-To", "Delivered-To", "X-Envelope-To")
# the batch thread gives up this much before the session answers, so that the answer and the
# log carry its reason ("catalog ... is locked") rather than only that time ran out
_EARLY = 0.2


def xtext_decode(value: str) -> str:
    return re.sub(r"\+([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), value)


@dataclass(frozen=True)
class Incoming:
    """A message as a protocol front received it."""

    content: bytes
    sender: str
    recipients: Sequence[str]
    source: str  # "smtp", "pipe" or "sink"
    mail_options: Sequence[str] = ()
    xforward: Mapping[str, str] = field(default_factory=dict)  # raw xtext values
    queue_id: str | None = None
    client_address: str | None = None
    client_name: str | None = None
    helo: str | None = None


@dataclass(frozen=True)
class Decided:
    status: str  # the X-Archive-Status value
    archive_id: int | None
    verdict: Verdict
    queue_id: str | None


def _xf(xforward: Mapping[str, str], name: str) -> str | None:
    value = xforward.get(name)
    if value is None:
        return None
    decoded = xtext_decode(value)
    return None if decoded in _UNAVAILABLE else decoded


def queue_id_of(incoming: Incoming, parsed: ParsedMessage) -> str | None:
    """Postfix's queue id: XFORWARD IDENT, the pipe macro, else the newest Received header."""
    qid = incoming.queue_id or _xf(incoming.xforward, "IDENT")
    if qid:
        return qid
    received = parsed.header("Received")
    if received:
        m = _RECEIVED_ID.search(received)
        if m:
            return m.group(1)
    return None


def header_recipients(parsed: ParsedMessage) -> list[str]:
    """Recipients a delivery agent or journaling MTA wrote into the headers (sink mode)."""
    found: list[str] = []
    for name in _HEADER_RECIPIENTS:
        for value in parsed.header_all(name):
            for addr in re.findall(r"[^\s<>,;\"]+@[^\s<>,;\"]+", value):
                if addr.lower() not in (f.lower() for f in found):
                    found.append(addr)
    return found


class CapturePipeline:
    def __init__(
        self,
        archive: Archive,
        policy: Policy,
        *,
        reinject: str | None,
        timeout: float = 120.0,
        answer_timeout: float | None = None,
    ) -> None:
        self.archive = archive
        self.policy = policy
        self.reinject_address = reinject
        self.timeout = timeout
        self.answer_timeout = (
            archive.config.smtp.answer_timeout if answer_timeout is None else answer_timeout
        )
        self._reinjector: Reinjector | None = None
        self._batcher: Batcher[tuple[Verdict, Envelope]] | None = None

    @property
    def sink(self) -> bool:
        return self.reinject_address is None

    def set_policy(self, policy: Policy) -> None:
        """Swap the rules in force (SIGHUP); arrivals in flight keep the ones they started with."""
        self.policy = policy

    # -- the decision and the archived copy (blocking; runs in a worker thread) ---------------

    def _envelope(self, incoming: Incoming, parsed: ParsedMessage) -> Envelope:
        recipients = list(incoming.recipients)
        if incoming.source == "sink":
            lowered = {r.lower() for r in recipients}
            recipients += [r for r in header_recipients(parsed) if r.lower() not in lowered]
        return Envelope(
            sender=incoming.sender,
            recipients=tuple(recipients),
            queue_id=queue_id_of(incoming, parsed),
            client_address=incoming.client_address or _xf(incoming.xforward, "ADDR"),
            client_name=incoming.client_name or _xf(incoming.xforward, "NAME"),
            helo=incoming.helo or _xf(incoming.xforward, "HELO"),
            received=datetime.now(UTC),
            source=incoming.source,
        )

    def _decide_and_stage(
        self, incoming: Incoming
    ) -> tuple[tuple[Verdict, Envelope], Staged | None]:
        """Parse, decide, and (if kept) stage the blobs: everything before they are stored
        and the catalog commits, in one go on one thread."""
        parsed = parse_message(incoming.content)
        envelope = self._envelope(incoming, parsed)
        verdict = self.policy.decide(parsed, envelope)
        if not verdict.archive:
            return (verdict, envelope), None
        kept = (
            envelope.with_recipients(verdict.archived_recipients)
            if envelope.recipients
            else envelope
        )
        return (verdict, envelope), self.archive.stage(incoming.content, kept, parsed)

    def decide_and_archive(self, incoming: Incoming, until: float | None = None) -> Decided:
        """``until``: the ``time.monotonic()`` by which the answer is due."""
        (verdict, envelope), staged = self._decide_and_stage(incoming)
        added = None
        if staged is not None:
            with deadline(until):
                self.archive.store_staged([staged])
            added = self.archive.writer.add(staged.arrival, until)
        return Decided(
            verdict.status_header(), added.id if added else None, verdict, envelope.queue_id
        )

    def _overdue(self) -> TemporaryFailure:
        return TemporaryFailure(
            f"no answer from the archive within answer_timeout ({self.answer_timeout:g}s): "
            "is the catalog or blob pack locked by another process (a backup, a sqlite3 shell)?"
        )

    async def _decide_and_archive_async(self, incoming: Incoming, until: float) -> Decided:
        import asyncio  # here, not at the top: the pipe filter never needs it

        if self._batcher is None:
            self._batcher = Batcher(self.archive)
        future = self._batcher.submit(lambda: self._decide_and_stage(incoming), until - _EARLY)
        try:
            # on timeout the future is cancelled: not yet begun, the message is dropped
            (verdict, envelope), added = await asyncio.wait_for(
                asyncio.wrap_future(future), max(0.0, until - time.monotonic())
            )
        except TimeoutError:
            raise self._overdue() from None
        return Decided(
            verdict.status_header(), added.id if added else None, verdict, envelope.queue_id
        )

    def _outgoing(self, incoming: Incoming, decided: Decided) -> Outgoing:
        return Outgoing(
            sender=incoming.sender,
            recipients=incoming.recipients,
            content=stamp(incoming.content, decided.status, decided.archive_id),
            mail_options=[o for o in incoming.mail_options if not o.upper().startswith("SIZE=")],
            xforward=incoming.xforward,
        )

    def _log(self, incoming: Incoming, decided: Decided, reply: str) -> None:
        action = (
            f"archived id={decided.archive_id}"
            if decided.archive_id is not None
            else decided.status.lower()
        )
        log.info(
            "%s: %s from=<%s> nrcpt=%d size=%d, %s",
            decided.queue_id or "-",
            action,
            incoming.sender,
            len(incoming.recipients),
            len(incoming.content),
            reply,
        )

    # -- the SMTP proxy and the sink ---------------------------------------------------------

    async def handle(self, incoming: Incoming) -> str:
        """The SMTP reply for the final dot. Never raises."""
        until = time.monotonic() + self.answer_timeout
        try:
            decided = await self._decide_and_archive_async(incoming, until)
        except Exception as exc:
            log.error(
                "archiving failed (message stays queued in Postfix): %s",
                exc,
                exc_info=not isinstance(exc, OSError | ArchiverError),
            )
            return replies.smtp_reply(exc)
        if self.sink:
            self._log(incoming, decided, "sink")
            return replies.OK_SINK
        try:
            reply = await self._reinjector_for().send(self._outgoing(incoming, decided))
        except Exception as exc:
            log.warning("%s: reinjection failed: %s", decided.queue_id or "-", exc)
            return replies.smtp_reply(exc)
        self._log(incoming, decided, f"reinjected: {reply}")
        return (
            f"250 2.0.0 Ok: archived as {decided.archive_id}, {_queued(reply)}"
            if decided.archive_id is not None
            else f"250 2.0.0 Ok: skipped, {_queued(reply)}"
        )

    def _reinjector_for(self) -> Reinjector:
        if self._reinjector is None:
            from .reinject import Reinjector

            assert self.reinject_address is not None
            self._reinjector = Reinjector(
                self.reinject_address,
                timeout=self.timeout,
                idle_limit=self.archive.config.smtp.reinject_idle,
            )
        return self._reinjector

    async def aclose(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
        if self._reinjector is not None:
            await self._reinjector.close()

    # -- the pipe filter ---------------------------------------------------------------------

    def run_once(self, incoming: Incoming) -> int:
        """Archive and reinject one message synchronously; the pipe(8) exit code."""
        until = time.monotonic() + self.answer_timeout
        try:
            decided = self.decide_and_archive(incoming, until)
        except Exception as exc:
            log.error("archiving failed (message stays queued in Postfix): %s", exc)
            return replies.exit_code(exc)
        if self.sink:
            self._log(incoming, decided, "sink")
            return replies.EX_OK
        assert self.reinject_address is not None
        try:
            reply = send_sync(
                self.reinject_address, self._outgoing(incoming, decided), timeout=self.timeout
            )
        except Exception as exc:
            log.warning("%s: reinjection failed: %s", decided.queue_id or "-", exc)
            return replies.exit_code(exc)
        self._log(incoming, decided, f"reinjected: {reply}")
        return replies.EX_OK


def _queued(reply: str) -> str:
    """The listener's queue id from its reply ("250 2.0.0 Ok: queued as 4Xk...")."""
    m = re.search(r"queued as (\S+)", reply)
    return f"queued as {m.group(1)}" if m else "queued"
