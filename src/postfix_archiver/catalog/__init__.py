"""Metadata and full-text index behind one interface, chosen by URL.

``sqlite:///path/catalog.sqlite`` (default; PostgreSQL is the next backend). Each backend
compiles the search AST (``postfix_archiver.search``) to its own SQL, always with bound
parameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol

from ..errors import CatalogError
from ..search import Node
from .records import (
    AddResult,
    AttachmentRow,
    ChainEvent,
    ChainLink,
    EnvelopeRow,
    HoldQueries,
    HoldRow,
    MessageRow,
    NewArrival,
    Sealer,
    SearchPage,
    Stats,
    StoredPart,
)


class Catalog(Protocol):
    """The archive's catalog. Contract tested for every backend in ``tests/unit/catalog``.

    - ``add_batch`` records arrivals in ONE transaction: for each, the message row (unless
      its SHA-256 is known), its addresses, attachments, parts and full-text entry, the
      envelope with the retention and tags of its arrival (unless the same ``Envelope.key`` is
      recorded for that message) and a chain event for the new envelope: the one ``seal``
      returns given the last event stored, read inside the transaction (the backend stores
      events; ``archive.events`` computes them). Either all of a batch commits or none of
      it. It is called by the archive's one committer only (``archive.ingest``). A message's
      ``retain_until`` is the latest any of its arrivals gives (None, forever, wins).
      With ``holds``, the same transaction reads the active legal holds, gets their query
      trees from ``holds`` and puts each message given a new envelope under those it matches.
    - Reads may run on any thread, concurrently with the writer.
    - ``search`` applies ``order`` (one of ``search.ORDERS``), then ``offset``/``limit``; when
      ``visible_to`` is given, only messages where one of those addresses is the envelope
      sender or recipient or in From/To/Cc are seen.
    """

    url: str

    def add_batch(
        self, arrivals: Sequence[NewArrival], seal: Sealer, holds: HoldQueries | None = None
    ) -> list[AddResult]: ...

    def find_sha(self, sha256: str) -> int | None: ...

    def search(
        self,
        query: Node,
        *,
        limit: int = 50,
        offset: int = 0,
        order: str = "-date",
        visible_to: Sequence[str] | None = None,
    ) -> SearchPage: ...

    def get(self, message: int) -> MessageRow | None: ...

    def envelopes(self, message: int) -> list[EnvelopeRow]: ...

    def attachments(self, message: int) -> list[AttachmentRow]: ...

    # -- retention and legal holds (``archive.holds`` decides; these store and fetch) --------

    def set_retain_until(self, changes: Sequence[tuple[int, datetime | None]]) -> int:
        """Sets each message's retention date (None: forever), in one transaction; the
        number of messages changed."""
        ...

    def add_hold(
        self, name: str, query_text: str, query: Node, reason: str, who: str, when: datetime
    ) -> HoldRow | None:
        """Records a hold and, in the same transaction, puts every message matching
        ``query`` under it; None (nothing written) if a hold of that name, in any case,
        exists, released or not."""
        ...

    def release_hold(self, name: str, who: str, when: datetime) -> HoldRow | None:
        """Releases the hold (a released one stays as it was); None if there is none."""
        ...

    def hold(self, name: str) -> HoldRow | None:
        """The hold of that name (in any case), active or released."""
        ...

    def holds(self) -> list[HoldRow]:
        """Every hold, active and released, oldest first."""
        ...

    def holds_of(self, message: int) -> list[HoldRow]:
        """The holds, active and released, that hold or held ``message``."""
        ...

    def held(self, messages: Sequence[int]) -> set[int]:
        """Those of ``messages`` under a legal hold not released: they may not be removed."""
        ...

    def is_visible(self, message: int, addresses: Sequence[str]) -> bool: ...

    def messages(self) -> Iterator[MessageRow]: ...

    def chain(self) -> Iterator[ChainLink]: ...

    def events(self, after: int = 0) -> Iterator[ChainEvent]:
        """The chain events as stored (seq, prev_hash, hash) with seq above ``after``, in
        order, without the rows they cover: what a signed checkpoint is checked against."""
        ...

    def last_event(self) -> ChainEvent | None:
        """The chain's head (the event with the highest seq); ``None``: no events yet."""
        ...

    def orphans(self) -> tuple[list[int], list[int]]:
        """Ids of messages and of envelopes that have no chain event."""
        ...

    def stats(self) -> Stats: ...

    def per_day(self, since: datetime | None = None) -> list[tuple[str, int, int]]: ...

    def close(self) -> None: ...


def open_catalog(url: str, *, readonly: bool = False) -> Catalog:
    """The catalog for ``url``; creates and migrates the schema as needed, unless
    ``readonly`` (commands that only read): then it must exist, and nothing is written."""
    if url.startswith("sqlite://"):
        from .sqlite import SqliteCatalog

        return SqliteCatalog(url.removeprefix("sqlite://"), readonly=readonly)
    raise CatalogError(f"unsupported catalog URL {url!r}: use sqlite:///path/catalog.sqlite")


__all__ = [
    "AddResult",
    "AttachmentRow",
    "Catalog",
    "ChainEvent",
    "ChainLink",
    "EnvelopeRow",
    "HoldQueries",
    "HoldRow",
    "MessageRow",
    "NewArrival",
    "Sealer",
    "SearchPage",
    "Stats",
    "StoredPart",
    "open_catalog",
]
