"""One message's way through the metrics (``postfix_archiver.metrics``): received when it
arrives, then exactly one of archived, skipped, deferred or rejected when it is answered,
with the time that took. The proxy, the sink and the pipe filter count the same way."""

from __future__ import annotations

import time

from .. import metrics
from ..archive import Outcome
from ..errors import PermanentFailure
from ..rules import DEFAULT_RULE


class Count:
    def __init__(self, source: str, size: int) -> None:
        self.source = source
        self.size = size
        self.started = time.monotonic()
        metrics.RECEIVED.labels(source).inc()
        metrics.RECEIVED_BYTES.labels(source).inc(size)

    def passed(self, decided: Outcome) -> None:
        """Answered with success: archived, or skipped by a rule and passed on."""
        if decided.archive_id is not None:
            metrics.ARCHIVED.labels(self.source).inc()
            metrics.ARCHIVED_BYTES.labels(self.source).inc(self.size)
        else:
            rule = decided.verdict.skip_rule if decided.verdict is not None else None
            metrics.SKIPPED.labels(self.source, rule or DEFAULT_RULE).inc()
        self._answered()

    def failed(self, exc: BaseException, *, reinjecting: bool = False) -> None:
        """Answered with a failure: rejected if permanent, else deferred, with why."""
        if isinstance(exc, PermanentFailure):
            self.rejected()
        else:
            self.deferred(metrics.DEFER_REINJECT if reinjecting else metrics.defer_reason(exc))

    def deferred(self, reason: str) -> None:
        metrics.DEFERRED.labels(self.source, reason).inc()
        self._answered()

    def rejected(self) -> None:
        metrics.REJECTED.labels(self.source).inc()
        self._answered()

    def _answered(self) -> None:
        metrics.ANSWER_SECONDS.labels(self.source).observe(time.monotonic() - self.started)
