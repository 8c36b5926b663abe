"""The capture pipeline shared by the SMTP proxy, the pipe filter and the sink.

For each message: hand the bytes and the envelope to the archive's ingest service, which
decides by rule per recipient and archives (durably) what the rules keep; stamp the
reinjected copy with the outcome, reinject. The reply is success only if both the archive
and the reinjection listener took the message.

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

from .. import logs, metrics
from ..archive import Archive, Outcome
from ..envelope import Envelope
from ..errors import ArchiverError, TemporaryFailure
from ..rules import Policy
from . import replies
from .counting import Count
from .outgoing import Outgoing, send_sync
from .stamp import stamp

if TYPE_CHECKING:  # the pipe filter never loads the asynchronous client
    from .reinject import Reinjector

log = logging.getLogger("postfix_archiver.smtp")

_UNAVAILABLE = ("[UNAVAILABLE]", "[TEMPUNAVAIL]", "")
# the ingest service gives up this much before the session answers, so that the answer and
# the log carry its reason ("catalog ... is locked") rather than only that time ran out
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

    def envelope(self) -> Envelope:
        """The envelope as the protocol gave it (the archive completes it from the headers:
        ``archive.decide.complete_envelope``)."""
        return Envelope(
            sender=self.sender,
            recipients=tuple(self.recipients),
            queue_id=self.queue_id or _xf(self.xforward, "IDENT"),
            client_address=self.client_address or _xf(self.xforward, "ADDR"),
            client_name=self.client_name or _xf(self.xforward, "NAME"),
            helo=self.helo or _xf(self.xforward, "HELO"),
            received=datetime.now(UTC),
            source=self.source,
        )


def _xf(xforward: Mapping[str, str], name: str) -> str | None:
    value = xforward.get(name)
    if value is None:
        return None
    decoded = xtext_decode(value)
    return None if decoded in _UNAVAILABLE else decoded


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

    @property
    def sink(self) -> bool:
        return self.reinject_address is None

    def set_policy(self, policy: Policy) -> None:
        """Swap the rules in force (SIGHUP); arrivals in flight keep the ones they started with."""
        self.policy = policy

    # -- the archived copy -------------------------------------------------------------------

    def _overdue(self) -> TemporaryFailure:
        return TemporaryFailure(
            f"no answer from the archive within answer_timeout ({self.answer_timeout:g}s): "
            "is the catalog or blob pack locked by another process (a backup, a sqlite3 shell)?"
        )

    async def _archive_async(self, incoming: Incoming, until: float) -> Outcome:
        import asyncio  # here, not at the top: the pipe filter never needs it

        future = self.archive.ingester.submit(
            incoming.content, incoming.envelope(), policy=self.policy, until=until - _EARLY
        )
        try:
            # on timeout the future is cancelled: not yet begun, the message is dropped
            return await asyncio.wait_for(
                asyncio.wrap_future(future), max(0.0, until - time.monotonic())
            )
        except TimeoutError:
            raise self._overdue() from None

    def _outgoing(self, incoming: Incoming, decided: Outcome) -> Outgoing:
        return Outgoing(
            sender=incoming.sender,
            recipients=incoming.recipients,
            content=stamp(incoming.content, decided.status, decided.archive_id),
            mail_options=[o for o in incoming.mail_options if not o.upper().startswith("SIZE=")],
            xforward=incoming.xforward,
        )

    def _log(self, incoming: Incoming, decided: Outcome, reply: str, started: float) -> None:
        """The one line per message: Postfix's queue id first (``grep QUEUEID`` on the mail
        log finds it beside Postfix's own lines), the reinjected copy's queue id, the
        decision and its rule, the archive id, size and milliseconds (``logs`` keeps
        hostile values from forging lines; the JSON format gets the same as fields)."""
        verdict = decided.verdict
        rule = None
        if verdict is not None:
            rule = verdict.skip_rule or next(
                (d.rule for d in verdict.decisions if d.action == "archive" and d.rule), "default"
            )
        fields: dict[str, object] = {
            "queue_id": decided.envelope.queue_id,
            "action": "archived" if decided.archive_id is not None else "skipped",
            "rule": rule,
            "archive_id": decided.archive_id,
            "from": incoming.sender,
            "nrcpt": len(incoming.recipients),
            "size": len(incoming.content),
            "ms": round((time.monotonic() - started) * 1000),
            "reinjected_queue_id": queued_id(reply),
            "reply": reply,
        }
        log.info(
            '%s: %s%s rule="%s" from=<%s> nrcpt=%d size=%d ms=%d reinjected=%s (%s)',
            logs.queue_id(decided.envelope.queue_id),
            fields["action"],
            "" if decided.archive_id is None else f" id={decided.archive_id}",
            logs.safe(rule or "-", spaces=True),
            logs.safe(incoming.sender),
            fields["nrcpt"],
            fields["size"],
            fields["ms"],
            logs.safe(fields["reinjected_queue_id"] or "-"),
            logs.safe(reply, 200, spaces=True),
            extra={"fields": fields},
        )

    # -- the SMTP proxy and the sink ---------------------------------------------------------

    async def handle(self, incoming: Incoming) -> str:
        """The SMTP reply for the final dot. Never raises."""
        started = time.monotonic()
        until = started + self.answer_timeout
        count = Count(incoming.source, len(incoming.content))
        try:
            decided = await self._archive_async(incoming, until)
        except Exception as exc:
            log.error(
                "archiving failed (message stays queued in Postfix): %s",
                exc,
                exc_info=not isinstance(exc, OSError | ArchiverError),
            )
            count.failed(exc)
            return replies.smtp_reply(exc)
        if self.sink:
            self._log(incoming, decided, "sink", started)
            count.passed(decided)
            return replies.OK_SINK
        try:
            with metrics.REINJECT_SECONDS.time():
                reply = await self._reinjector_for().send(self._outgoing(incoming, decided))
        except Exception as exc:
            log.warning("%s: reinjection failed: %s", decided.envelope.queue_id or "-", exc)
            count.failed(exc, reinjecting=True)
            return replies.smtp_reply(exc)
        self._log(incoming, decided, reply, started)
        count.passed(decided)
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
        if self._reinjector is not None:
            await self._reinjector.close()

    # -- the pipe filter ---------------------------------------------------------------------

    def run_once(self, incoming: Incoming) -> int:
        """Archive and reinject one message synchronously; the pipe(8) exit code."""
        started = time.monotonic()
        until = started + self.answer_timeout
        count = Count(incoming.source, len(incoming.content))
        try:
            # on this thread: one message per process, no committer thread to start
            decided = self.archive.ingester.ingest(
                incoming.content, incoming.envelope(), policy=self.policy, until=until
            )
        except Exception as exc:
            log.error("archiving failed (message stays queued in Postfix): %s", exc)
            count.failed(exc)
            return replies.exit_code(exc)
        if self.sink:
            self._log(incoming, decided, "sink", started)
            count.passed(decided)
            return replies.EX_OK
        assert self.reinject_address is not None
        try:
            with metrics.REINJECT_SECONDS.time():
                reply = send_sync(
                    self.reinject_address, self._outgoing(incoming, decided), timeout=self.timeout
                )
        except Exception as exc:
            log.warning("%s: reinjection failed: %s", decided.envelope.queue_id or "-", exc)
            count.failed(exc, reinjecting=True)
            return replies.exit_code(exc)
        self._log(incoming, decided, reply, started)
        count.passed(decided)
        return replies.EX_OK


def queued_id(reply: str) -> str | None:
    """The listener's queue id from its reply ("250 2.0.0 Ok: queued as 4Xk...")."""
    m = re.search(r"queued as ([0-9A-Za-z]{1,64})\b", reply)
    return m.group(1) if m else None


def _queued(reply: str) -> str:
    queue_id = queued_id(reply)
    return f"queued as {queue_id}" if queue_id else "queued"
