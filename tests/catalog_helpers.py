"""Catalog test helpers shared by the catalog's and the ingest service's tests."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from postfix_archiver.catalog import AddResult, HoldQueries, NewArrival, Sealer
from postfix_archiver.catalog.sqlite import SqliteCatalog
from postfix_archiver.envelope import Envelope
from postfix_archiver.message import Address, Attachment

WAIT = 10.0  # seconds; only reached when something hangs


class GatedCatalog(SqliteCatalog):
    """A real SQLite catalog that records each batch and can hold the first one back.

    Holding the committer inside its first ``add_batch`` lets a test queue arrivals behind it
    and know they are committed together in the next batch.
    """

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self._first = True

    def add_batch(
        self, arrivals: Sequence[NewArrival], seal: Sealer, holds: HoldQueries | None = None
    ) -> list[AddResult]:
        self.batches.append([a.sha256 for a in arrivals])
        if self._first:
            self._first = False
            self.entered.set()
            assert self.gate.wait(WAIT), "test never opened the gate"
        return super().add_batch(arrivals, seal, holds)


def make_arrival(n: int, *, poison: bool = False, queue_id: str | None = None) -> NewArrival:
    raw = f"From: a{n}@example.com\nSubject: arrival {n}\n\nbody {n}\n".encode()
    attachments = []
    if poison:
        # two attachments at the same leaf index: the catalog's primary key refuses this
        att = Attachment(0, "x.bin", "application/octet-stream", 1, "0" * 64)
        attachments = [att, att]
    return NewArrival(
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        stored_size=len(raw),
        date=datetime(2024, 5, 1, 12, 0, n % 60, tzinfo=UTC),
        subject=f"arrival {n}",
        message_id=f"<{n}@example.com>",
        from_=[Address("", f"a{n}@example.com")],
        to=[Address("", "b@example.com")],
        cc=[],
        attachments=attachments,
        defects=[],
        body_text=f"body {n}",
        parts=[],
        envelope=Envelope(
            "sender@example.com", ("b@example.com",), queue_id=queue_id or f"Q{n:05d}"
        ),
    )
